//! The `dump` source: a configured command's stdout stored as one file of the
//! unit (`pg_dump DB`, `pg_dumpall -g`, `mysqldump`, `svnadmin dump`,
//! `slapcat`, anything), as btw-backup and s3napback did.
//!
//! Protocol, so that a failure or a crash never costs the previous copy:
//! 1. the command's stdout streams into `<unit>/.strata-new-<file>` while it
//!    is hashed; a non-zero exit removes that file and keeps the stored copy;
//! 2. on success the stored file is marked `user.strata.pending-sha256`, then
//!    updated block by block from the new file (only differing blocks are
//!    written: DESIGN §2), then the mark is replaced by `user.strata.sha256`
//!    and the new file removed. A first copy is simply renamed into place.
//! A run that finds the mark and a complete new file (its hash equals the
//! mark) finishes step 2 before anything else.
//!
//! A scrub re-reads the stored copy and checks it against the sha256 recorded
//! after its last update, reporting a mismatch (the update then repairs it).

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

/// The command to run for a unit.
#[must_use]
pub fn command(unit: &DumpUnit) -> Cmd {
    let base = match &unit.command {
        DumpCommand::Argv(argv) => Cmd::new(&argv[0]).args(&argv[1..]),
        DumpCommand::Shell(script) => Cmd::shell(script),
    };
    let base = match &unit.user {
        // why: sudo's -n never prompts; a missing sudoers rule fails loudly instead of hanging cron
        Some(user) => Cmd::new("sudo")
            .args(["-n", "-u", user, "--"])
            .args(base.argv()),
        None => base,
    };
    base.current_dir(&unit.cwd)
}

/// Back up one dump unit into `root`.
pub fn backup(root: &Path, unit: &DumpUnit, check: Check) -> Result<UnitReport, DumpError> {
    let dir = root.join(unit.unit.as_str());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let dest = dir.join(&unit.file);
    let staged = dir.join(format!(".strata-new-{}", unit.file));

    let mut notes = Vec::new();
    if let Some(note) = finish_interrupted(&dest, &staged)? {
        notes.push(note);
    }
    let mut repaired = 0;
    if check == Check::Scrub && dest.exists() {
        if let Some(recorded) = xattrs::get_text(&dest, xattrs::STRATA_SHA256).map_err(io(&dest))? {
            let (actual, _) = hash_file(&dest)?;
            if actual != recorded {
                repaired = 1;
                notes.push(format!("scrub: stored copy did not match its recorded sha256 {recorded} (found {actual}); repaired by this run"));
            } else {
                notes.push("scrub: stored copy matches its recorded sha256".to_owned());
            }
        }
    }

    let sha = stage(unit, &staged)?;
    let first = !dest.exists();
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
    for n in &notes {
        eprintln!("{n}");
    }
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

/// Run the command into `staged`, returning the sha256 of its output.
fn stage(unit: &DumpUnit, staged: &Path) -> Result<String, DumpError> {
    let cmd = command(unit);
    println!("running {}", cmd.display());
    let mut child = cmd.spawn_reader().map_err(DumpError::Command)?;
    let mut file = File::create(staged).map_err(io(staged))?;
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
        Ok(done) => {
            if !done.stderr.is_empty() {
                eprint!("{}", String::from_utf8_lossy(&done.stderr));
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(staged);
            return Err(DumpError::Command(e));
        }
    }
    file.sync_all().map_err(io(staged))?;
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

/// Finish an update a crash interrupted, if there is one; says what it did.
fn finish_interrupted(dest: &Path, staged: &Path) -> Result<Option<String>, DumpError> {
    let pending = if dest.exists() {
        xattrs::get_text(dest, xattrs::STRATA_PENDING_SHA256).map_err(io(dest))?
    } else {
        None
    };
    match (pending, staged.exists()) {
        (Some(want), true) => {
            let (have, _) = hash_file(staged)?;
            if have == want {
                apply_staged(dest, staged, &want)?;
                Ok(Some(format!(
                    "finished an update interrupted by a crash ({want})"
                )))
            } else {
                let _ = std::fs::remove_file(staged);
                Ok(Some("an interrupted update left an incomplete new copy; discarded, the stored copy will be rewritten".to_owned()))
            }
        }
        (Some(_), false) => Ok(Some(
            "the stored copy was mid-update when a run was interrupted; this run rewrites it"
                .to_owned(),
        )),
        (None, true) => {
            // why: a crash while the command was still running: the stored copy was never touched
            let _ = std::fs::remove_file(staged);
            Ok(None)
        }
        (None, false) => Ok(None),
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
