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
    /// The appliance this is, when several share the root (`appliances:`):
    /// they archive the same set together, each unit claimed by one.
    pub appliance: Option<String>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub archived: Vec<String>,
    /// What each archived unit's child reported, in the order they ended.
    pub reports: Vec<(String, Archived)>,
    pub already: usize,
    pub failed: Vec<(String, String)>,
    /// Units left for later because the store refuses uploads for now.
    pub paused: Vec<String>,
    /// Until when it refuses them (RFC 3339), when it does.
    pub paused_until: Option<String>,
    pub completed: bool,
    /// Another appliance completed the set (several share the root).
    pub completed_by: Option<String>,
    /// Units this appliance left to the others, which hold them now.
    pub left_to_others: usize,
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
    /// Seconds spent packing (tar, compression, gpg).
    #[serde(default)]
    pub pack_secs: f64,
    /// The chain level (0 a full) and base, when the profile has diffs.
    #[serde(default)]
    pub level: Option<u32>,
    #[serde(default)]
    pub base: Option<String>,
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
            pack_secs: 0.0,
            level: None,
            base: None,
            paused_until: None,
        }
    }

    /// The chain position in words: `full`, `diff 2 onto SET`, or nothing.
    #[must_use]
    pub fn chain_words(&self) -> String {
        match (self.level, &self.base) {
            (Some(0), _) => "full".to_owned(),
            (Some(l), Some(b)) => format!("diff {l} onto {b}"),
            _ => String::new(),
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
            pack_secs: 0.0,
            level: None,
            base: None,
            paused_until: Some(until.to_owned()),
        }
    }
}

impl JobReport for Archived {
    fn summary(&self) -> String {
        if let Some(until) = &self.paused_until {
            return format!("paused: uploads refused until {until}");
        }
        let chain = self.chain_words();
        format!(
            "{} bytes, {} {}{}{}",
            self.size,
            self.compression,
            self.encryption,
            if chain.is_empty() { "" } else { ", " },
            chain
        )
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
    // why: Deltaic's archive lock too, so a Deltaic `archive run` left in cron never runs beside
    // this one; not when several appliances share the root, whose runs do run side by side
    let deltaic_lock = match &opts.appliance {
        Some(_) => None,
        None => Some(
            PidLock::deltaic(&config.settings.root, "archive").map_err(|source| {
                ArchiveError::Locked {
                    profile: opts.profile.clone(),
                    source,
                }
            })?,
        ),
    };
    env.clean_spool()?;
    let mounted = MountedSnapshot::mount(store, snapshot)?;
    let result = run_mounted(config, archiver, snapshot, mounted.path(), workers, opts);
    mounted.close()?;
    if let Some(l) = deltaic_lock {
        let _ = l.close();
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
    // why: a diff's base is in a complete set; one listing here spares every unit its own
    let complete: Option<String> = if config
        .settings
        .archivers
        .get(&opts.profile)
        .is_some_and(|p| p.diffs > 0)
    {
        let names: Vec<String> = archiver
            .list_sets()?
            .into_iter()
            .filter(|(_, info)| info.complete)
            .map(|(n, _)| n)
            .collect();
        Some(names.join(","))
    } else {
        None
    };
    let jobs: Vec<Job> = all
        .into_iter()
        .filter(|u| !existing.contains_key(u))
        .map(|unit| {
            let mut cmd = Cmd::new(&opts.exe).arg("-c").arg(&opts.config_path).args([
                "archive",
                "-p",
                &opts.profile,
                "unit",
            ]);
            if let Some(c) = &complete {
                cmd = cmd.arg(format!("--complete-sets={c}"));
            }
            cmd = cmd.arg(set).arg(mount).arg(&unit);
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
    let together = opts
        .appliance
        .as_ref()
        .map(|me| Together::new(&root, &opts.profile, set, me));
    let state_dir = match &opts.appliance {
        Some(me) => root.appliance_dir(me),
        None => root.state_dir(),
    };
    let claim = |job: &Job| -> Option<Box<dyn std::any::Any + Send>> {
        together
            .as_ref()?
            .claim(&job.name)
            .map(|l| Box::new(l) as Box<dyn std::any::Any + Send>)
    };
    let on_end = |job: &Job, o: &Outcome<Archived>| {
        if let Some(t) = &together
            && o.failure.is_none()
            && o.report.as_ref().is_some_and(|r| r.paused_until.is_none())
        {
            t.mark_done(&job.name);
        }
    };
    let runner = jobs::Runner {
        title: "strata archive run",
        pools: &pools,
        state_dir: &state_dir,
        console: &console,
        claim: together.as_ref().map(|_| &claim as &jobs::Claim),
    };
    let ran = runner.run(&jobs, &on_end);
    summary.left_to_others = ran.skipped.len();
    for o in ran.outcomes {
        let paused = o.report.as_ref().and_then(|r| r.paused_until.clone());
        match (o.failure, paused) {
            (None, Some(until)) => {
                summary.paused.push(o.name);
                summary.paused_until = Some(until);
            }
            (None, None) => {
                if let Some(r) = o.report {
                    summary.reports.push((o.name.clone(), r));
                }
                summary.archived.push(o.name);
            }
            (Some(why), _) => summary.failed.push((o.name, why)),
        }
    }
    summary.interrupted = ran.interrupted;
    if !(summary.failed.is_empty() && summary.paused.is_empty() && summary.interrupted.is_none()) {
        return Ok(summary);
    }
    match &together {
        None => {
            archiver.complete_set(set)?;
            summary.completed = true;
        }
        Some(t) => {
            // why: listed after this appliance's last upload is stored, so the
            // appliance that stores the set's last unit sees every unit in
            let now_in = archiver.list_set_units(set)?;
            let missing = units_in_snapshot(config, &opts.profile, mount)
                .into_iter()
                .filter(|u| !now_in.contains_key(u))
                .count();
            summary.left_to_others = missing;
            if missing == 0 {
                match t.elect()? {
                    None => {
                        if let Err(e) = archiver.complete_set(set) {
                            // why: so that a later `archive run -r` may complete it
                            let _ = std::fs::remove_file(t.dir.join("complete.claim"));
                            return Err(e);
                        }
                        summary.completed = true;
                    }
                    Some(by) => summary.completed_by = Some(by),
                }
            }
        }
    }
    Ok(summary)
}

/// `archive run` on several appliances at once (`appliances:`): each unit of
/// the set is archived by the one appliance that claims it, and the set is
/// completed once, by the one that wins the election after seeing every
/// unit in. Its files: `<state>/archive-runs/<profile>/<set>/`, with
/// `claims/<unit>.lock` (flock, held while the unit is archived),
/// `done/<unit>` (archived by this round of runs) and `complete.claim`
/// (`O_EXCL`: who completes the set).
struct Together {
    dir: PathBuf,
    me: String,
}

impl Together {
    fn new(root: &BackupRoot, profile: &str, set: &str, me: &str) -> Together {
        Together {
            dir: root
                .state_dir()
                .join("archive-runs")
                .join(profile)
                .join(set),
            me: me.to_owned(),
        }
    }

    fn done_path(&self, unit: &str) -> PathBuf {
        self.dir.join("done").join(unit)
    }

    /// `None` when another appliance archives the unit now, or has done so.
    fn claim(&self, unit: &str) -> Option<PidLock> {
        PidLock::claim(
            &self.dir.join("claims").join(format!("{unit}.lock")),
            &format!("archiving {unit}"),
            &self.done_path(unit),
        )
    }

    fn mark_done(&self, unit: &str) {
        let p = self.done_path(unit);
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(&p, format!("{}\n", self.me));
    }

    /// `None`: this appliance completes the set; `Some(other)`: another does.
    fn elect(&self) -> Result<Option<String>, ArchiveError> {
        let path = self.dir.join("complete.claim");
        crate::backup_root::lock::elect(&path, &self.me).map_err(ArchiveError::io(&path))
    }
}
