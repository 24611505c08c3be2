//! `archive run`: archive every unit of one snapshot that is present in it
//! and not yet in its set, `workers` at a time, each in a child process
//! (`strata archive -p PROFILE unit SNAPSHOT MOUNTPOINT UNIT`, run as a job
//! of [`crate::jobs`], with its logs under
//! `Logs/Archive/<profile>/<unit>/<YYYYMMDD>.{out,err}`); then mark the set
//! complete, only if every unit is in.
//!
//! One run per profile at a time (a lock under the spool). Spool files left
//! by killed processes are removed first. The snapshot is mounted through the
//! store for the run ([`MountedSnapshot`]) and unmounted after, unless it was
//! mounted before.
//!
//! Crash behaviour: a killed run leaves an incomplete set; `archive run -r`
//! archives the units that are missing (an archive is listed only once its
//! metadata is stored, so a half-uploaded unit is simply uploaded again, or,
//! on an archiver that keeps uploads resumable, finished from where it
//! stopped).
//!
//! A store that refuses uploads for a while (Drive's daily cap,
//! [`Archiver::upload_paused`]) pauses the set: units that meet the refusal
//! report `paused` instead of failing, no unit starts uploading while it
//! lasts, and the set stays incomplete for `archive run -r`.

use super::{ArchiveEnv, ArchiveError, ArchiveMeta, Archiver, unit_skipped};
use crate::backup_root::{BackupRoot, PidLock};
use crate::config::Config;
use crate::exec::Cmd;
use crate::jobs::{self, Console, Job, JobReport, Outcome, Verbosity};
use crate::snapshot::{MountedSnapshot, SnapshotName, SnapshotStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// Units left for later because the store refuses uploads for now.
    pub paused: Vec<String>,
    /// Until when it refuses them (RFC 3339), when it does.
    pub paused_until: Option<String>,
    pub completed: bool,
    /// The signal that interrupted the run.
    pub interrupted: Option<i32>,
}

/// What `archive unit` reports to its run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Archived {
    pub size: u64,
    pub compression: String,
    pub encryption: String,
    pub sha256: String,
    /// Not archived: the store refuses uploads until this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
}

impl Archived {
    #[must_use]
    pub fn of(meta: &ArchiveMeta) -> Archived {
        Archived {
            size: meta.size,
            compression: meta.compression.name().to_owned(),
            encryption: meta.encryption.name().to_owned(),
            sha256: meta.sha256.clone(),
            paused_until: None,
        }
    }

    /// The report of a unit left for later: uploads refused until `until`.
    #[must_use]
    pub fn paused(until: &str) -> Archived {
        Archived {
            size: 0,
            compression: String::new(),
            encryption: String::new(),
            sha256: String::new(),
            paused_until: Some(until.to_owned()),
        }
    }
}

impl JobReport for Archived {
    fn summary(&self) -> String {
        match &self.paused_until {
            Some(until) => format!("paused: uploads refused until {until}"),
            None => format!(
                "{} bytes, {} {}",
                self.size, self.compression, self.encryption
            ),
        }
    }
    fn bytes(&self) -> u64 {
        self.size
    }
}

/// The units of `config` present in the mounted snapshot and not skipped.
#[must_use]
pub fn units_in_snapshot(config: &Config, profile: &str, mount: &Path) -> Vec<String> {
    crate::sources::stored_units(config, mount)
        .into_iter()
        .map(|u| u.as_str().to_owned())
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
    let lock = PidLock::acquire(
        &env.spool
            .join(format!(".archive-run-{}", opts.profile))
            .join("run.lock"),
        &format!("another `archive run` of profile {}", opts.profile),
    )
    .map_err(|source| ArchiveError::Locked {
        profile: opts.profile.clone(),
        source,
    })?;
    // why: Deltaic's archive lock too, so a Deltaic `archive run` left in cron never runs beside this one
    let deltaic_lock = PidLock::deltaic(&config.settings.root, "archive").map_err(|source| {
        ArchiveError::Locked {
            profile: opts.profile.clone(),
            source,
        }
    })?;
    env.clean_spool()?;
    let mounted = MountedSnapshot::mount(store, snapshot)?;
    let result = run_mounted(config, archiver, snapshot, mounted.path(), workers, opts);
    mounted.close()?;
    let _ = deltaic_lock.close();
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
    if let Some(until) = archiver.upload_paused()? {
        // why: every unit would meet the refusal after packing; none is started
        summary.paused = all
            .into_iter()
            .filter(|u| !existing.contains_key(u))
            .collect();
        summary.paused_until = Some(until);
        return Ok(summary);
    }
    if all.iter().any(|u| !existing.contains_key(u)) {
        archiver.prepare_set(set)?;
    }
    let root = BackupRoot::new(&config.settings.root);
    let jobs: Vec<Job> = all
        .into_iter()
        .filter(|u| !existing.contains_key(u))
        .map(|unit| {
            let mut cmd = Cmd::new(&opts.exe)
                .arg("-c")
                .arg(&opts.config_path)
                .args(["archive", "-p", &opts.profile, "unit", set])
                .arg(mount)
                .arg(&unit);
            if opts.allow_root {
                cmd = cmd.env("STRATA_ALLOW_ROOT", "1");
            }
            Job {
                log_dir: root.archive_log_dir(&opts.profile, &unit),
                name: unit,
                pool: opts.profile.clone(),
                note: None,
                cmd,
            }
        })
        .collect();
    let pools = BTreeMap::from([(opts.profile.clone(), workers.max(1))]);
    let verbosity = if opts.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let console = Console::new(
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
        verbosity,
    );
    let runner = jobs::Runner {
        title: "strata archive run",
        pools: &pools,
        state_dir: &root.state_dir(),
        console: &console,
    };
    let ran = runner.run(&jobs, &|_: &Job, _: &Outcome<Archived>| {});
    for o in ran.outcomes {
        match (o.failure, o.report.and_then(|r| r.paused_until)) {
            (None, Some(until)) => {
                summary.paused.push(o.name);
                summary.paused_until = Some(until);
            }
            (None, None) => summary.archived.push(o.name),
            (Some(why), _) => summary.failed.push((o.name, why)),
        }
    }
    summary.interrupted = ran.interrupted;
    if summary.failed.is_empty() && summary.paused.is_empty() && summary.interrupted.is_none() {
        archiver.complete_set(set)?;
        summary.completed = true;
    }
    Ok(summary)
}
