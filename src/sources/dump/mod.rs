//! The `dump` source: a configured command's stdout stored as one file of the
//! unit (`pg_dump DB`, `pg_dumpall -g`, `mysqldump`, `svnadmin dump`,
//! `slapcat`, anything), as btw-backup and s3napback did; or the last
//! stdout of a `pipeline:` of commands connected by pipes, no shell
//! (`[[mysqldump, db], [zstd]]`, as PALHM's exec pipelines), where every
//! stage's exit status counts: one failing stage fails the unit.
//!
//! Protocol, so that a failure or a crash never costs the previous copy:
//! 1. the command's stdout streams into `<unit>/.strata-new-<file>.<pid>`
//!    while it is hashed (the name is unique to the process, and the unit's
//!    lock keeps a second backup of the unit from starting at all); a non-zero exit removes that file and keeps the stored copy;
//! 2. on success the stored file is marked `user.strata.pending-sha256`, then
//!    updated block by block from the new file (only differing blocks are
//!    written: DESIGN §2), then the mark is replaced by `user.strata.sha256`
//!    and the new file removed. A first copy is simply renamed into place.
//!
//! A run that finds the mark and a complete new file (its hash equals the
//! mark) finishes step 2 before anything else; new files left by processes
//! that died are removed.
//!
//! A scrub re-reads the stored copy and checks it against the sha256 recorded
//! after its last update, reporting a mismatch (the update then repairs it).

mod cmd;

pub use cmd::DUMP;

use crate::backup_root::{self, BlockUpdate, UpdateStats, xattrs};
use crate::config::{Config, DumpCommand, DumpUnit};
use crate::exec::{Cmd, ExecError};
use crate::sources::{Check, UnitReport};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("no dump unit named `{name}` in {}", config.display())]
    Unknown { name: String, config: PathBuf },
    #[error("the dump command failed; the previous copy is kept: {0}")]
    Command(#[source] ExecError),
    #[error("the dump pipeline failed; the previous copy is kept: {0}")]
    Pipeline(#[source] ExecError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has no stored copy to restore", path.display())]
    NothingStored { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DumpError + '_ {
    move |source| DumpError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Find a dump unit by name.
pub fn find<'c>(config: &'c Config, name: &str) -> Result<&'c DumpUnit, DumpError> {
    config
        .dump
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| DumpError::Unknown {
            name: name.to_owned(),
            config: config.file.clone(),
        })
}

/// The commands to run for a unit: one, or a pipeline's stages in order.
#[must_use]
pub fn commands(unit: &DumpUnit) -> Vec<Cmd> {
    let stages: Vec<Cmd> = match &unit.command {
        DumpCommand::Argv(argv) => vec![Cmd::new(&argv[0]).args(&argv[1..])],
        DumpCommand::Shell(script) => vec![Cmd::shell(script)],
        DumpCommand::Pipeline(stages) => stages
            .iter()
            .map(|argv| Cmd::new(&argv[0]).args(&argv[1..]))
            .collect(),
    };
    stages
        .into_iter()
        .map(|base| {
            let base = match &unit.user {
                // why: sudo's -n never prompts; a missing sudoers rule fails loudly instead of hanging cron
                Some(user) => Cmd::new("sudo")
                    .args(["-n", "-u", user, "--"])
                    .args(base.argv()),
                None => base,
            };
            base.current_dir(&unit.cwd)
        })
        .collect()
}

/// Where a unit's output comes from: one command, or a pipeline.
enum Producer {
    One(crate::exec::ChildReader),
    Pipeline(crate::exec::PipelineReader),
}

impl Producer {
    fn start(unit: &DumpUnit) -> Result<Producer, DumpError> {
        let mut stages = commands(unit);
        if matches!(unit.command, DumpCommand::Pipeline(_)) {
            let shown: Vec<String> = stages.iter().map(Cmd::display).collect();
            println!("running {}", shown.join(" | "));
            crate::exec::spawn_pipeline(&stages)
                .map(Producer::Pipeline)
                .map_err(DumpError::Pipeline)
        } else {
            let cmd = stages.remove(0);
            println!("running {}", cmd.display());
            cmd.spawn_reader()
                .map(Producer::One)
                .map_err(DumpError::Command)
        }
    }

    fn kill(self) {
        match self {
            Producer::One(c) => c.kill(),
            Producer::Pipeline(p) => p.kill(),
        }
    }

    /// Wait for every process; their stderr on success.
    fn finish(self) -> Result<Vec<u8>, DumpError> {
        match self {
            Producer::One(c) => c
                .finish()
                .map(|done| done.stderr)
                .map_err(DumpError::Command),
            Producer::Pipeline(p) => p
                .finish()
                .map(|done| done.stderr.concat())
                .map_err(DumpError::Pipeline),
        }
    }
}

impl Read for Producer {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Producer::One(c) => c.read(buf),
            Producer::Pipeline(p) => p.read(buf),
        }
    }
}

/// Back up one dump unit into `root`.
pub fn backup(root: &Path, unit: &DumpUnit, check: Check) -> Result<UnitReport, DumpError> {
    let dir = root.join(unit.unit.as_str());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let dest = dir.join(&unit.file);
    let staged = dir.join(format!(
        "{}{}",
        staged_prefix(&unit.file),
        std::process::id()
    ));

    let mut notes = Vec::new();
    if let Some(note) = finish_interrupted(&dest, &dir, &unit.file)? {
        notes.push(note);
    }
    let mut repaired = 0;
    let scrub_against = if check == Check::Scrub && dest.exists() {
        xattrs::get_text(&dest, xattrs::STRATA_SHA256).map_err(io(&dest))?
    } else {
        None
    };
    if let Some(recorded) = scrub_against {
        let (actual, _) = hash_file(&dest)?;
        if actual == recorded {
            notes.push("scrub: stored copy matches its recorded sha256".to_owned());
        } else {
            repaired = 1;
            notes.push(format!("scrub: stored copy did not match its recorded sha256 {recorded} (found {actual}); repaired by this run"));
        }
    }

    for n in &notes {
        eprintln!("{n}");
    }

    let sha = stage(unit, &staged)?;
    let first = !dest.exists();
    let recorded = if first {
        None
    } else {
        xattrs::get_text(&dest, xattrs::STRATA_SHA256).map_err(io(&dest))?
    };
    if check == Check::Normal && recorded.as_deref() == Some(sha.as_str()) {
        // why: a normal run trusts the checksum recorded after the last update;
        // the common "unchanged" case then reads and syncs nothing more
        std::fs::remove_file(&staged).map_err(io(&staged))?;
        let size = std::fs::metadata(&dest).map_err(io(&dest))?.len();
        let summary = format!("unchanged, {size} bytes");
        println!("{summary}");
        return Ok(UnitReport {
            bytes: size,
            changed: false,
            scrubbed: false,
            repaired,
            summary,
        });
    }
    // The staged copy must be durable before the stored one is marked pending.
    File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io(&staged))?;
    let stats = if first {
        let size = std::fs::metadata(&staged).map_err(io(&staged))?.len();
        xattr::set(&staged, xattrs::STRATA_SHA256, sha.as_bytes()).map_err(io(&staged))?;
        std::fs::rename(&staged, &dest).map_err(io(&dest))?;
        backup_root::sync_dir(&dir).map_err(io(&dir))?;
        UpdateStats {
            size,
            bytes_written: size,
            blocks_changed: 1,
            resized: true,
            ..UpdateStats::default()
        }
    } else {
        apply_staged(&dest, &staged, &sha)?
    };
    let summary = if first {
        format!("first copy, {} bytes", stats.size)
    } else if stats.unchanged() {
        format!("unchanged, {} bytes", stats.size)
    } else {
        format!(
            "{} blocks changed, {} bytes written, {} bytes punched, {} bytes",
            stats.blocks_changed, stats.bytes_written, stats.bytes_punched, stats.size
        )
    };
    println!("{summary}");
    Ok(UnitReport {
        bytes: stats.size,
        changed: !stats.unchanged() || first,
        scrubbed: check == Check::Scrub,
        repaired,
        summary,
    })
}

/// Run the command (or pipeline) into `staged`, returning the sha256 of its output.
fn stage(unit: &DumpUnit, staged: &Path) -> Result<String, DumpError> {
    let mut child = Producer::start(unit)?;
    let mut file = match File::create(staged) {
        Ok(f) => f,
        Err(e) => {
            child.kill();
            return Err(io(staged)(e));
        }
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let copied: Result<(), DumpError> = (|| loop {
        let n = child.read(&mut buf).map_err(io(staged))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io(staged))?;
    })();
    if let Err(e) = copied {
        child.kill();
        let _ = std::fs::remove_file(staged);
        return Err(e);
    }
    match child.finish() {
        Ok(stderr) => {
            if !stderr.is_empty() {
                eprint!("{}", String::from_utf8_lossy(&stderr));
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(staged);
            return Err(e);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Step 2 of the protocol: mark, update in place, unmark, drop the staged file.
fn apply_staged(dest: &Path, staged: &Path, sha: &str) -> Result<UpdateStats, DumpError> {
    xattr::set(dest, xattrs::STRATA_PENDING_SHA256, sha.as_bytes()).map_err(io(dest))?;
    let src = File::open(staged).map_err(io(staged))?;
    let stats = BlockUpdate::apply(dest, std::io::BufReader::with_capacity(1 << 20, src))
        .map_err(io(dest))?;
    xattr::set(dest, xattrs::STRATA_SHA256, sha.as_bytes()).map_err(io(dest))?;
    xattrs::remove_if_present(dest, xattrs::STRATA_PENDING_SHA256).map_err(io(dest))?;
    std::fs::remove_file(staged).map_err(io(staged))?;
    Ok(stats)
}

/// `.strata-new-<file>.`: the start of the names of new copies in a unit.
fn staged_prefix(file: &str) -> String {
    format!(".strata-new-{file}.")
}

/// New copies of `file` in `dir` left by earlier processes (the unit's lock
/// guarantees that no other process is writing one now), including the
/// fixed name strata used before names were unique.
fn leftovers(dir: &Path, file: &str) -> Result<Vec<PathBuf>, DumpError> {
    let prefix = staged_prefix(file);
    let legacy = format!(".strata-new-{file}");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n == legacy
                || n.strip_prefix(&prefix)
                    .is_some_and(|pid| pid.parse::<u32>().is_ok())
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Finish an update a crash interrupted, if there is one; says what it did.
fn finish_interrupted(dest: &Path, dir: &Path, file: &str) -> Result<Option<String>, DumpError> {
    let pending = if dest.exists() {
        xattrs::get_text(dest, xattrs::STRATA_PENDING_SHA256).map_err(io(dest))?
    } else {
        None
    };
    let mut staged = leftovers(dir, file)?;
    let Some(want) = pending else {
        // why: a crash while the command was still running: the stored copy was never touched
        for s in staged {
            let _ = std::fs::remove_file(s);
        }
        return Ok(None);
    };
    let mut complete = None;
    for s in &staged {
        if complete.is_none() && hash_file(s)?.0 == want {
            complete = Some(s.clone());
        }
    }
    staged.retain(|s| Some(s) != complete.as_ref());
    for s in staged {
        let _ = std::fs::remove_file(s);
    }
    match complete {
        Some(s) => {
            apply_staged(dest, &s, &want)?;
            Ok(Some(format!(
                "finished an update interrupted by a crash ({want})"
            )))
        }
        None => Ok(Some(
            "the stored copy was mid-update when a run was interrupted; this run rewrites it"
                .to_owned(),
        )),
    }
}

fn hash_file(path: &Path) -> Result<(String, u64), DumpError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok((hex::encode(h.finalize()), n))
}

/// Copy a unit's stored file from `from` (the backup root or a mounted
/// snapshot) to `dest` (a file path, a directory, or `-` for stdout).
pub fn restore(from: &Path, unit: &DumpUnit, dest: &Path) -> Result<u64, DumpError> {
    let src = from.join(unit.unit.as_str()).join(&unit.file);
    let mut input = File::open(&src).map_err(|_| DumpError::NothingStored { path: src.clone() })?;
    if dest == Path::new("-") {
        return std::io::copy(&mut input, &mut std::io::stdout().lock()).map_err(io(&src));
    }
    let target = if dest.is_dir() {
        dest.join(&unit.file)
    } else {
        dest.to_owned()
    };
    let tmp = target.with_file_name(format!(".strata-restore-{}", unit.file));
    let mut out = File::create(&tmp).map_err(io(&tmp))?;
    let n = std::io::copy(&mut input, &mut out).map_err(io(&tmp))?;
    out.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnitPath;

    fn unit(dir: &Path, argv: &[&str]) -> DumpUnit {
        DumpUnit {
            name: "db".into(),
            unit: UnitPath::parse("dump/db").unwrap(),
            command: DumpCommand::Argv(argv.iter().map(|s| (*s).to_owned()).collect()),
            file: "db.sql".into(),
            user: None,
            scrub: None,
            cwd: dir.to_owned(),
        }
    }

    fn stored(root: &Path) -> PathBuf {
        root.join("dump/db/db.sql")
    }

    #[test]
    fn first_copy_then_unchanged_then_changed_blocks_only() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::write(&src, vec![b'x'; 500_000]).unwrap();
        let u = unit(d.path(), &["cat", "src"]);
        let r = backup(d.path(), &u, Check::Normal).unwrap();
        assert!(r.changed && r.summary.starts_with("first copy"), "{r:?}");
        let r = backup(d.path(), &u, Check::Normal).unwrap();
        assert!(!r.changed && r.summary.starts_with("unchanged"), "{r:?}");
        let mut data = vec![b'x'; 500_000];
        data[200_000] = b'y';
        std::fs::write(&src, &data).unwrap();
        let r = backup(d.path(), &u, Check::Normal).unwrap();
        assert!(
            r.changed
                && r.summary
                    .starts_with("1 blocks changed, 65536 bytes written"),
            "{r:?}"
        );
        assert_eq!(std::fs::read(stored(d.path())).unwrap(), data);
        assert!(
            leftovers(&d.path().join("dump/db"), "db.sql")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_failing_command_keeps_the_previous_copy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("src"), b"v1").unwrap();
        backup(d.path(), &unit(d.path(), &["cat", "src"]), Check::Normal).unwrap();
        let err = backup(
            d.path(),
            &unit(d.path(), &["sh", "-c", "echo partial; exit 4"]),
            Check::Normal,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("previous copy is kept")
                && err.to_string().contains("exit status 4"),
            "{err}"
        );
        assert_eq!(std::fs::read(stored(d.path())).unwrap(), b"v1");
        assert!(
            leftovers(&d.path().join("dump/db"), "db.sql")
                .unwrap()
                .is_empty()
        );
    }

    fn pipeline_unit(dir: &Path, stages: &[&[&str]]) -> DumpUnit {
        DumpUnit {
            command: DumpCommand::Pipeline(
                stages
                    .iter()
                    .map(|s| s.iter().map(|a| (*a).to_owned()).collect())
                    .collect(),
            ),
            ..unit(dir, &["true"])
        }
    }

    #[test]
    fn a_pipeline_stores_its_last_stage_and_any_failing_stage_keeps_the_previous_copy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("src"), "b\na\nc\n").unwrap();
        let good: [&[&str]; 3] = [&["cat", "src"], &["sort"], &["gzip", "-n", "-c"]];
        backup(d.path(), &pipeline_unit(d.path(), &good), Check::Normal).unwrap();
        let stored_v1 = std::fs::read(stored(d.path())).unwrap();
        let plain = crate::exec::Cmd::new("gzip")
            .args(["-d", "-c"])
            .arg(stored(d.path()))
            .run()
            .unwrap();
        assert_eq!(plain.stdout, b"a\nb\nc\n");
        std::fs::write(d.path().join("src"), "changed\n").unwrap();
        for k in 0..3 {
            let mut stages = good;
            let broken: &[&str] = &["sh", "-c", "echo partial; echo 'no such table' >&2; exit 5"];
            stages[k] = broken;
            let err = backup(d.path(), &pipeline_unit(d.path(), &stages), Check::Normal)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("previous copy is kept")
                    && err.contains(&format!("stage {} of 3", k + 1))
                    && err.contains("exit status 5")
                    && err.contains("no such table"),
                "stage {}: {err}",
                k + 1
            );
            assert_eq!(std::fs::read(stored(d.path())).unwrap(), stored_v1);
            assert!(
                leftovers(&d.path().join("dump/db"), "db.sql")
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn scrub_finds_a_corrupted_copy_and_repairs_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("src"), b"the data").unwrap();
        let u = unit(d.path(), &["cat", "src"]);
        backup(d.path(), &u, Check::Normal).unwrap();
        // Bit rot on the backup side, size kept: a normal run trusts the checksum...
        std::fs::write(stored(d.path()), b"the dbta").unwrap();
        let r = backup(d.path(), &u, Check::Normal).unwrap();
        assert!(!r.changed);
        assert_eq!(std::fs::read(stored(d.path())).unwrap(), b"the dbta");
        // ...a scrub does not.
        let r = backup(d.path(), &u, Check::Scrub).unwrap();
        assert_eq!((r.scrubbed, r.repaired), (true, 1));
        assert_eq!(std::fs::read(stored(d.path())).unwrap(), b"the data");
    }

    #[test]
    fn an_update_interrupted_by_a_crash_is_finished_by_the_next_run() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("src"), vec![1u8; 200_000]).unwrap();
        let u = unit(d.path(), &["cat", "src"]);
        backup(d.path(), &u, Check::Normal).unwrap();
        // The state a crash in the middle of step 2 leaves: a complete staged copy,
        // the stored file marked pending and half updated.
        let new = vec![2u8; 200_000];
        // why: the name a process with PID 4242 staged under
        let staged = d.path().join("dump/db/.strata-new-db.sql.4242");
        std::fs::write(&staged, &new).unwrap();
        let sha = hex::encode(Sha256::digest(&new));
        xattr::set(
            stored(d.path()),
            xattrs::STRATA_PENDING_SHA256,
            sha.as_bytes(),
        )
        .unwrap();
        let mut half = vec![2u8; 100_000];
        half.extend(vec![1u8; 100_000]);
        std::fs::write(stored(d.path()), &half).unwrap();
        // The source moved on to yet another content in the meantime; the run
        // finishes the interrupted update first, then applies the new one.
        std::fs::write(d.path().join("src"), vec![3u8; 200_000]).unwrap();
        backup(d.path(), &u, Check::Normal).unwrap();
        assert_eq!(std::fs::read(stored(d.path())).unwrap(), vec![3u8; 200_000]);
        assert_eq!(
            xattrs::get_text(&stored(d.path()), xattrs::STRATA_PENDING_SHA256).unwrap(),
            None
        );
        assert!(!staged.exists());
    }

    #[test]
    fn restore_copies_the_stored_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("src"), b"payload").unwrap();
        let u = unit(d.path(), &["cat", "src"]);
        backup(d.path(), &u, Check::Normal).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(restore(d.path(), &u, &out).unwrap(), 7);
        assert_eq!(std::fs::read(out.join("db.sql")).unwrap(), b"payload");
        let err = restore(&d.path().join("nowhere"), &u, &out).unwrap_err();
        assert!(err.to_string().contains("has no stored copy"), "{err}");
    }
}
