//! `archive run`: archive every unit of one snapshot that is present in it
//! and not yet in its set, `workers` at a time, each in a child process
//! (`strata archive -p PROFILE unit SNAPSHOT MOUNTPOINT UNIT`) whose output is
//! appended to `Logs/Archive/<profile>/<unit>/<YYYYMMDD>.{out,err}`; then mark
//! the set complete, only if every unit is in.
//!
//! One run per profile at a time (a lock under the spool). Spool files left
//! by killed processes are removed first. The snapshot is mounted through the
//! store for the run and unmounted after, unless it was mounted before.
//!
//! Crash behaviour: a killed run leaves an incomplete set; `archive run -r`
//! archives the units that are missing (an archive is listed only once its
//! metadata is stored, so a half-uploaded unit is simply uploaded again).

use super::{ArchiveEnv, ArchiveError, Archiver, unit_skipped};
use crate::backup_root::BackupRoot;
use crate::config::Config;
use crate::exec::{Cmd, Termination};
use crate::runner::RunLock;
use crate::snapshot::{SnapshotName, SnapshotStore};
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How to start unit children.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub exe: PathBuf,
    pub config_path: PathBuf,
    pub profile: String,
    pub allow_root: bool,
    pub quiet: bool,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub archived: Vec<String>,
    pub already: usize,
    pub failed: Vec<(String, String)>,
    pub completed: bool,
}

/// The units of `config` present in the mounted snapshot and not skipped.
#[must_use]
pub fn units_in_snapshot(config: &Config, profile: &str, mount: &Path) -> Vec<String> {
    crate::sources::units(config)
        .into_iter()
        .map(|u| u.path.as_str().to_owned())
        .filter(|u| mount.join(u).symlink_metadata().is_ok())
        .filter(|u| !unit_skipped(config, profile, u))
        .collect()
}

/// Archive `snapshot` into its set on `archiver`.
pub fn run(
    config: &Config,
    env: &ArchiveEnv,
    archiver: &dyn Archiver,
    store: &dyn SnapshotStore,
    snapshot: &SnapshotName,
    workers: usize,
    opts: &RunOptions,
) -> Result<RunSummary, ArchiveError> {
    std::fs::create_dir_all(&env.spool).map_err(ArchiveError::io(&env.spool))?;
    let lock = RunLock::acquire(&env.spool.join(format!(".archive-run-{}", opts.profile)))
        .map_err(|source| ArchiveError::Locked {
            profile: opts.profile.clone(),
            source,
        })?;
    env.clean_spool()?;
    let was_mounted = store
        .list()?
        .iter()
        .any(|s| &s.name == snapshot && s.mounted.is_some());
    let mount = store.mount(snapshot)?;
    let result = run_mounted(config, archiver, snapshot, &mount, workers, opts);
    if !was_mounted {
        store.umount(snapshot)?;
    }
    let _ = lock.close();
    result
}

fn run_mounted(
    config: &Config,
    archiver: &dyn Archiver,
    snapshot: &SnapshotName,
    mount: &Path,
    workers: usize,
    opts: &RunOptions,
) -> Result<RunSummary, ArchiveError> {
    let set = snapshot.as_str();
    let existing = archiver.list_set_units(set)?;
    let all = units_in_snapshot(config, &opts.profile, mount);
    let mut summary = RunSummary {
        already: all.iter().filter(|u| existing.contains_key(*u)).count(),
        ..RunSummary::default()
    };
    let todo: VecDeque<String> = all
        .into_iter()
        .filter(|u| !existing.contains_key(u))
        .collect();
    let root = BackupRoot::new(&config.settings.root);
    let queue = Mutex::new(todo);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(unit) = next else { break };
                    if !opts.quiet {
                        println!("{} start {unit}", chrono::Local::now().format("%H:%M:%S"));
                    }
                    let r = run_unit(&root, set, mount, &unit, opts);
                    if !opts.quiet || r.is_err() {
                        let line = match &r {
                            Ok(()) => format!("done  {unit} ok"),
                            Err(why) => format!("done  {unit} FAILED: {why}"),
                        };
                        println!("{} {line}", chrono::Local::now().format("%H:%M:%S"));
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push((unit, r));
                    }
                }
            });
        }
    });
    for (unit, r) in results.into_inner().unwrap_or_default() {
        match r {
            Ok(()) => summary.archived.push(unit),
            Err(why) => summary.failed.push((unit, why)),
        }
    }
    if summary.failed.is_empty() {
        archiver.complete_set(set)?;
        summary.completed = true;
    }
    Ok(summary)
}

/// Run one unit's child with its logs; `Err` says why it failed.
fn run_unit(
    root: &BackupRoot,
    set: &str,
    mount: &Path,
    unit: &str,
    opts: &RunOptions,
) -> Result<(), String> {
    let log_dir = root.logs().join("Archive").join(&opts.profile).join(unit);
    let day = chrono::Local::now().format("%Y%m%d").to_string();
    let open = |ext: &str| {
        std::fs::create_dir_all(&log_dir)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{day}.{ext}")))
    };
    let (mut out, mut err) = match (open("out"), open("err")) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            return Err(format!(
                "cannot open its logs in {}: {e}",
                log_dir.display()
            ));
        }
    };
    let mut cmd = Cmd::new(&opts.exe)
        .arg("-c")
        .arg(&opts.config_path)
        .args(["archive", "-p", &opts.profile, "unit", set])
        .arg(mount)
        .arg(unit);
    if opts.allow_root {
        cmd = cmd.env("STRATA_ALLOW_ROOT", "1");
    }
    let header = format!(
        "=== {} strata archive run: start {}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        cmd.display()
    );
    let _ = out.write_all(header.as_bytes());
    let _ = err.write_all(header.as_bytes());
    let (o, e) = match (out.try_clone(), err.try_clone()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
    };
    let end = cmd.run_to_files(o, e).map_err(|e| e.to_string())?;
    let verdict = match end {
        Termination::Exited(0) => Ok(()),
        other => {
            let tail = crate::runner::log_tail(&log_dir.join(format!("{day}.err")), 3);
            Err(format!("{other}: {}", tail.lines().last().unwrap_or("")))
        }
    };
    let footer = format!(
        "=== {} strata archive run: end: {}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        verdict.as_ref().err().map_or("ok", String::as_str)
    );
    let _ = out.write_all(footer.as_bytes());
    let _ = err.write_all(footer.as_bytes());
    verdict
}
