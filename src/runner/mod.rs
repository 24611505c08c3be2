//! One `run`: every unit of every source, each in its own child process,
//! then one snapshot.
//!
//! Owns: the run lock, the list of units (asking every source in the
//! registry; a source that cannot list a prefix of its units is reported
//! like a failed unit), the choice of which units this run scrubs and which
//! further flags it draws (seeded, so tests are deterministic), the unit
//! state recorded after each unit, cleaning up after a killed run, the
//! free-space rule before any unit writes (`gc-min-free-percent`,
//! `gc-min-free-bytes`: [`crate::snapshot::prune::make_room`] removes old
//! snapshots, down to `gc-min-keep`), and the snapshot at the end (taken
//! even when units failed, not when the run was interrupted).
//!
//! The children, their logs, pools and console lines are [`crate::jobs`]'s:
//! one job per unit, `strata -c CONFIG <source> backup ...`, in a pool per
//! source `<source>-workers` wide.

use crate::backup_root::{BackupRoot, LockError, PidLock, state};
use crate::config::Config;
use crate::exec::{Cmd, Termination};
use crate::jobs::{self, Console, Job, Outcome, Verbosity};
use crate::snapshot::{SnapshotName, SnapshotStore};
use crate::sources::{self, Check, Source, Unit, UnitPlan, UnitReport, UnitsError};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod shared;

pub use jobs::FAILURE_TAIL_LINES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    Take,
    Skip,
}

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub snapshot: SnapshotMode,
    /// `--only` globs over unit paths; empty = every unit.
    pub only: Vec<glob::Pattern>,
    /// Seed of the scrub draw (`STRATA_SEED`); `None` = random.
    pub seed: Option<u64>,
    /// Force every unit to scrub (`run --scrub`).
    pub scrub_all: bool,
    /// The strata binary to run children with.
    pub exe: PathBuf,
    pub verbosity: Verbosity,
    /// Pass `--allow-root` on to children.
    pub allow_root: bool,
    /// `--appliance`: which appliance of `appliances:` this is (default:
    /// the host name).
    pub appliance: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("the Logs directory {} is not writable: {source}", path.display())]
    LogsUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--only {0:?} matches no configured unit")]
    NoMatch(Vec<String>),
    #[error("{}: appliances: this is appliance `{name}`{how}, which the config does not name (it names {}); give --appliance NAME", file.display(), known.join(", "))]
    UnknownAppliance {
        file: PathBuf,
        name: String,
        how: &'static str,
        known: Vec<String>,
    },
    #[error("--appliance needs an `appliances:` section in {}", .0.display())]
    NoAppliances(PathBuf),
    #[error(
        "--only cannot narrow a run shared by several appliances, which ends in one snapshot of every unit; add --no-snapshot to back up only those units"
    )]
    OnlyInSharedRun,
    #[error("the shared run directory {}: {source}", path.display())]
    Shared {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How one unit ended.
#[derive(Debug, Clone)]
pub struct UnitOutcome {
    pub unit: String,
    pub check: Check,
    pub end: Termination,
    pub report: Option<UnitReport>,
    pub secs: f64,
    /// Why it failed, for state and output (None = ok).
    pub failure: Option<String>,
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    pub outcomes: Vec<UnitOutcome>,
    pub snapshot: Option<Result<SnapshotName, String>>,
    pub lock_taken_over_from: Option<String>,
    /// The signal that interrupted the run (its units stopped, no snapshot).
    pub interrupted: Option<i32>,
}

impl RunSummary {
    #[must_use]
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.failure.is_some()).count()
    }
    /// Exit code: 1 if any unit or the snapshot failed, or the run was
    /// interrupted.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        u8::from(
            self.failed() > 0
                || matches!(self.snapshot, Some(Err(_)))
                || self.interrupted.is_some(),
        )
    }
}

/// Decide each unit's check and drawn flags: a pure function of the units
/// and the rng (one draw per probability, in unit order).
pub fn plan_checks(units: &[Unit], rng: &mut impl Rng, scrub_all: bool) -> Vec<UnitPlan> {
    units
        .iter()
        .map(|u| {
            let check = if scrub_all || rng.gen_bool(u.scrub_probability.clamp(0.0, 1.0)) {
                Check::Scrub
            } else {
                Check::Normal
            };
            let flags = u
                .draws
                .iter()
                .filter(|d| d.probability > 0.0 && rng.gen_bool(d.probability.clamp(0.0, 1.0)))
                .map(|d| d.flag)
                .collect();
            UnitPlan { check, flags }
        })
        .collect()
}

/// Whether a source's units can match any of the `--only` globs: the first
/// component of a glob is matched against the source's name, so that
/// `--only 'rsync/*'` does not make the github source list organisations.
fn source_wanted(only: &[glob::Pattern], source: &str) -> bool {
    only.is_empty()
        || only.iter().any(|p| {
            let first = p.as_str().split('/').next().unwrap_or("");
            glob::Pattern::new(first).map_or(true, |f| f.matches(source))
        })
}

/// The units selected by `--only` (all when empty), and the prefixes whose
/// units could not be listed.
pub fn select_units(
    config: &Config,
    only: &[glob::Pattern],
) -> Result<(Vec<Unit>, Vec<UnitsError>), RunError> {
    select_from(sources::all(), config, only)
}

fn select_from(
    registry: &[&'static dyn Source],
    config: &Config,
    only: &[glob::Pattern],
) -> Result<(Vec<Unit>, Vec<UnitsError>), RunError> {
    let mut units = Vec::new();
    let mut failures = Vec::new();
    let listed = registry
        .iter()
        .filter(|s| source_wanted(only, s.name()))
        .flat_map(|s| s.units(config));
    for r in listed {
        match r {
            Ok(u) if only.is_empty() || only.iter().any(|p| p.matches(u.path.as_str())) => {
                units.push(u);
            }
            Err(e)
                if only.is_empty()
                    || only
                        .iter()
                        .any(|p| p.matches(&e.prefix) || p.as_str().starts_with(&e.prefix)) =>
            {
                failures.push(e);
            }
            Ok(_) | Err(_) => {}
        }
    }
    if units.is_empty() && failures.is_empty() && !only.is_empty() {
        return Err(RunError::NoMatch(
            only.iter().map(|p| p.as_str().to_owned()).collect(),
        ));
    }
    Ok((units, failures))
}

/// Back up every selected unit, then snapshot. `config_path` is passed to the
/// children; output goes to `out` (start/end lines) and `err` (failures).
pub fn run(
    config: &Config,
    config_path: &Path,
    store: Option<&dyn SnapshotStore>,
    opts: &RunOptions,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
) -> Result<RunSummary, RunError> {
    if !config.appliances.is_empty() {
        let (name, how) = match &opts.appliance {
            Some(n) => (n.clone(), ""),
            None => (
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                " (the host name; --appliance not given)",
            ),
        };
        let Some(me) = config.appliances.get(&name) else {
            return Err(RunError::UnknownAppliance {
                file: config.file.clone(),
                name,
                how,
                known: config
                    .appliances
                    .names()
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            });
        };
        if !opts.only.is_empty() && opts.snapshot == SnapshotMode::Take {
            return Err(RunError::OnlyInSharedRun);
        }
        let console = Console::new(out, err, opts.verbosity);
        return shared::run(config, config_path, store, opts, me, &console);
    }
    if opts.appliance.is_some() {
        return Err(RunError::NoAppliances(config.file.clone()));
    }
    let root = BackupRoot::new(&config.settings.root);
    check_logs_writable(&root)?;
    let lock = PidLock::run(&root.state_dir())?;
    let deltaic_lock = match PidLock::deltaic(root.path(), "backup") {
        Ok(l) => l,
        Err(e) => {
            let _ = lock.close();
            return Err(e.into());
        }
    };
    let console = Console::new(out, err, opts.verbosity);
    if let Some(pid) = &lock.taken_over_from {
        console.failure(&format!(
            "warning: a previous run (PID {pid}) did not finish; taking over its lock"
        ));
    }
    if let Some(store) = store {
        make_room(config, store, &console);
        if opts.snapshot == SnapshotMode::Take {
            warn_at_snapshot_limit(store, &console);
        }
    }
    let (units, list_failures) = match select_units(config, &opts.only) {
        Ok(u) => u,
        Err(e) => {
            let _ = lock.close();
            return Err(e);
        }
    };
    let mut rng = match opts.seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_entropy(),
    };
    let plans = plan_checks(&units, &mut rng, opts.scrub_all);

    let mut outcomes: Vec<UnitOutcome> = list_failures
        .iter()
        .map(|e| listing_failed(&root, e, &console))
        .collect();
    let pools: BTreeMap<String, usize> = sources::all()
        .iter()
        .map(|s| (s.name().to_owned(), s.workers(config).max(1) as usize))
        .collect();
    let cuts = JobConfigs::new(&root);
    let jobs: Vec<Job> = units
        .iter()
        .zip(&plans)
        .enumerate()
        .map(|(i, (u, plan))| {
            let mut job = unit_job(&root, config_path, u, plan, opts);
            if let Some(path) = cuts.write(i, config, u) {
                job.cmd = job.cmd.env(jobs::CONFIG_ENV, path);
            }
            job
        })
        .collect();
    let checks: BTreeMap<String, Check> = units
        .iter()
        .zip(&plans)
        .map(|(u, p)| (u.path.to_string(), p.check))
        .collect();
    let runner = jobs::Runner {
        title: "strata run",
        pools: &pools,
        state_dir: &root.state_dir(),
        console: &console,
        claim: None,
    };
    let record = |job: &Job, o: &Outcome<UnitReport>| record_state(&root, job, o, &console, None);
    let ran = runner.run(&jobs, &record);
    cuts.remove();
    outcomes.extend(ran.outcomes.into_iter().map(|o| unit_outcome(o, &checks)));

    let snapshot = match (ran.interrupted, opts.snapshot, store) {
        (Some(sig), _, _) => {
            console.failure(&format!(
                "run interrupted by signal {sig}: its units were stopped; no snapshot taken"
            ));
            None
        }
        (None, SnapshotMode::Take, Some(store)) => {
            let today = chrono::Local::now().date_naive();
            Some(match store.create(today) {
                Ok(name) => {
                    console.line(&format!("snapshot {name} taken"));
                    Ok(name)
                }
                Err(e) => {
                    console.failure(&format!("snapshot FAILED: {e}"));
                    Err(e.to_string())
                }
            })
        }
        _ => None,
    };
    let taken_over = lock.taken_over_from.clone();
    deltaic_lock.close()?;
    lock.close()?;
    Ok(RunSummary {
        outcomes,
        snapshot,
        lock_taken_over_from: taken_over,
        interrupted: ran.interrupted,
    })
}

/// A store already holding as many snapshots as it can (CephFS): said before
/// the units run, since the snapshot at the end will fail (EMLINK).
fn warn_at_snapshot_limit(store: &dyn SnapshotStore, console: &Console) {
    let Some(limit) = store.snapshot_limit() else {
        return;
    };
    if let Ok(list) = store.list()
        && list.len() >= limit as usize
    {
        console.failure(&format!(
            "warning: {} snapshots already, the most this store holds (cephfs-max-snapshots {limit}): \
             this run's snapshot will fail; run `strata prune` first",
            list.len()
        ));
    }
}

/// The free-space rule before the units write: old snapshots go while space
/// is short, down to `gc-min-keep`. Never fatal: a run that cannot make
/// room still runs (and its units may fail for space, which they report).
fn make_room(config: &Config, store: &dyn SnapshotStore, console: &Console) {
    use crate::snapshot::prune::{self, PruneEvent, PruneMode};
    if config.settings.retention.free_space_rule().is_none() {
        return;
    }
    let (incomplete, unreadable) = crate::archive::sets::incomplete_sets(config);
    for (profile, e) in unreadable {
        console.failure(&format!(
            "warning: cannot list the archive sets of profile {profile} ({e}); snapshots its incomplete sets read are not protected"
        ));
    }
    let mut protected = BTreeMap::new();
    for (name, profile) in incomplete {
        protected
            .entry(name)
            .or_insert(crate::retention::ProtectReason::ArchiveSetReading { profile });
    }
    let today = chrono::Local::now().date_naive();
    let report = match prune::make_room(
        store,
        &config.settings.retention,
        today,
        protected,
        PruneMode::Apply,
    ) {
        Ok(r) => r,
        Err(e) => {
            console.failure(&format!(
                "cannot make room before the run: {}",
                crate::error::chain(&e)
            ));
            return;
        }
    };
    for e in report.events {
        match e {
            PruneEvent::FreeSpace {
                name,
                data,
                meta,
                min_free,
                free_bytes,
                min_free_bytes,
                ..
            } => console.line(&format!(
                "removed snapshot {name} before the run: {}",
                prune::shortage(data, meta, min_free, free_bytes, min_free_bytes)
            )),
            PruneEvent::FreeSpaceExhausted {
                data,
                meta,
                min_free,
                free_bytes,
                min_free_bytes,
            } => console.failure(&format!(
                "warning: {}, and no more snapshots may be removed (gc-min-keep)",
                prune::shortage(data, meta, min_free, free_bytes, min_free_bytes)
            )),
            PruneEvent::RemoveFailed { name, error } => console.failure(&format!(
                "cannot remove snapshot {name} to make room before the run: {error}"
            )),
            _ => {}
        }
    }
}

/// The cut-down configs of one run's jobs (`Config::unit_config_text`),
/// under `<state>/job-configs/`: written before the jobs start, removed when
/// they have ended (and, after a killed run, by the next run, which holds
/// the same run lock). A job whose config could not be cut or written gets
/// none, and its child reads the whole file.
struct JobConfigs {
    dir: Option<PathBuf>,
}

impl JobConfigs {
    fn new(root: &BackupRoot) -> JobConfigs {
        JobConfigs::in_dir(root.state_dir().join("job-configs"))
    }

    /// Under `dir` (an appliance's own, when several share the root).
    fn in_dir(dir: PathBuf) -> JobConfigs {
        // why: what a killed run left; nobody else writes here while we hold the run lock
        let _ = std::fs::remove_dir_all(&dir);
        JobConfigs {
            dir: std::fs::create_dir_all(&dir).ok().map(|()| dir),
        }
    }

    fn write(&self, i: usize, config: &Config, unit: &Unit) -> Option<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let text = config.unit_config_text(&unit.path)?;
        let path = self.dir.as_ref()?.join(format!("{i}.yaml"));
        // why: the settings may hold inline secrets, as the config file does
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ok()?;
        f.write_all(text.as_bytes()).ok()?;
        Some(path)
    }

    fn remove(self) {
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unit_job(
    root: &BackupRoot,
    config_path: &Path,
    unit: &Unit,
    plan: &UnitPlan,
    opts: &RunOptions,
) -> Job {
    let mut cmd = Cmd::new(&opts.exe)
        .arg("-c")
        .arg(config_path)
        .args(unit.child_args(plan));
    if opts.allow_root {
        cmd = cmd.env("STRATA_ALLOW_ROOT", "1");
    }
    let mut notes: Vec<&str> = Vec::new();
    if plan.check == Check::Scrub {
        notes.push("scrub");
    }
    notes.extend(plan.flags.iter().copied());
    Job {
        name: unit.path.to_string(),
        pool: unit.source.name().to_owned(),
        note: (!notes.is_empty()).then(|| notes.join(" ")),
        cmd,
        log_dir: root.log_dir(&unit.path),
    }
}

/// A job's outcome as the run reports it, with the unit's drawn check.
fn unit_outcome(o: Outcome<UnitReport>, checks: &BTreeMap<String, Check>) -> UnitOutcome {
    UnitOutcome {
        check: checks.get(&o.name).copied().unwrap_or(Check::Normal),
        unit: o.name,
        end: o.end,
        report: o.report,
        secs: o.secs,
        failure: o.failure,
    }
}

fn record_state(
    root: &BackupRoot,
    job: &Job,
    o: &Outcome<UnitReport>,
    console: &Console,
    appliance: Option<&str>,
) {
    let attempt = match (&o.failure, &o.report) {
        (None, Some(r)) => state::Attempt::Succeeded {
            scrubbed: r.scrubbed,
            bytes: r.bytes,
        },
        (Some(why), _) => state::Attempt::Failed { why },
        (None, None) => state::Attempt::Failed { why: "no report" },
    };
    let Ok(unit) = crate::config::UnitPath::parse(&job.name) else {
        return;
    };
    match state::record(root, &unit, o.started, o.secs, &attempt, appliance) {
        Ok(state::Recorded::Written) => {}
        Ok(state::Recorded::CorruptKeptAt(p)) => console.failure(&format!(
            "{}: its state file was corrupt; kept at {} and a new one written",
            job.name,
            p.display()
        )),
        Err(e) => console.failure(&format!("{}: cannot record its state: {e}", job.name)),
    }
}

/// A prefix whose units could not be listed, reported as a failed unit:
/// the end line, the reason on stderr, and a line in `Logs/<prefix>/`.
fn listing_failed(root: &BackupRoot, e: &UnitsError, console: &Console) -> UnitOutcome {
    let why = crate::error::chain(e);
    console.line(&format!(
        "{} done  {} FAILED: {why} (0.0s)",
        chrono::Local::now().format("%H:%M:%S"),
        e.prefix
    ));
    console.failure(&format!("{} FAILED: {why}", e.prefix));
    if let Ok(unit) = crate::config::UnitPath::parse(&e.prefix) {
        let dir = root.log_dir(&unit);
        let day = chrono::Local::now().format("%Y%m%d");
        let line = format!(
            "=== {} strata run: cannot list units: {why}\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
        );
        let _ = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{day}.err")))?
                .write_all(line.as_bytes())
        });
    }
    UnitOutcome {
        unit: e.prefix.clone(),
        check: Check::Normal,
        end: Termination::Exited(-1),
        report: None,
        secs: 0.0,
        failure: Some(why),
    }
}

fn check_logs_writable(root: &BackupRoot) -> Result<(), RunError> {
    let logs = root.logs();
    let fail = |source| RunError::LogsUnwritable {
        path: logs.clone(),
        source,
    };
    std::fs::create_dir_all(&logs).map_err(fail)?;
    tempfile::Builder::new()
        .prefix(".strata-probe-")
        .tempfile_in(&logs)
        .map(drop)
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnitPath;
    use crate::sources::Draw;

    fn unit(p: f64) -> Unit {
        Unit::new(
            crate::sources::find("dump").unwrap(),
            UnitPath::parse("dump/x").unwrap(),
            &["x"],
            p,
        )
    }

    #[test]
    fn scrub_plan_is_deterministic_for_a_seed_and_respects_probabilities() {
        let units: Vec<Unit> = (0..1000)
            .map(|_| unit(0.25))
            .chain([unit(0.0), unit(1.0)])
            .collect();
        let a = plan_checks(&units, &mut rand::rngs::StdRng::seed_from_u64(7), false);
        let b = plan_checks(&units, &mut rand::rngs::StdRng::seed_from_u64(7), false);
        assert_eq!(a, b);
        let scrubs = a[..1000].iter().filter(|c| c.check == Check::Scrub).count();
        assert!((180..320).contains(&scrubs), "{scrubs} of 1000 at p=0.25");
        assert_eq!(a[1000].check, Check::Normal);
        assert_eq!(a[1001].check, Check::Scrub);
        assert!(
            plan_checks(&units, &mut rand::rngs::StdRng::seed_from_u64(7), true)
                .iter()
                .all(|c| c.check == Check::Scrub)
        );
    }

    #[test]
    fn drawn_flags_follow_their_probability() {
        let mut u = unit(0.0);
        u.draws.push(Draw {
            probability: 0.5,
            flag: "-A",
        });
        let units = vec![u; 1000];
        let plans = plan_checks(&units, &mut rand::rngs::StdRng::seed_from_u64(3), false);
        let drawn = plans.iter().filter(|p| p.flags == ["-A"]).count();
        assert!((400..600).contains(&drawn), "{drawn} of 1000 at p=0.5");
        let mut never = unit(0.0);
        never.draws.push(Draw {
            probability: 0.0,
            flag: "-A",
        });
        let p = plan_checks(&[never], &mut rand::rngs::StdRng::seed_from_u64(3), false);
        assert!(p[0].flags.is_empty());
    }

    #[test]
    fn check_flags_and_drawn_flags_go_after_the_verb() {
        let mut u = unit(0.0);
        u.args = vec!["-s".into(), "p".into(), "n".into()];
        let plan = UnitPlan {
            check: Check::Scrub,
            flags: vec!["-A"],
        };
        assert_eq!(
            u.child_args(&plan),
            ["dump", "backup", "-c", "-A", "-s", "p", "n"]
        );
        let plan = UnitPlan {
            check: Check::Normal,
            flags: vec![],
        };
        assert_eq!(u.child_args(&plan), ["dump", "backup", "-s", "p", "n"]);
    }

    /// A source that lists one unit under `ok/a` and fails to list `bad/x`.
    struct Flaky;
    static FLAKY: Flaky = Flaky;
    impl Source for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn about(&self) -> &'static str {
            "a test source"
        }
        fn workers(&self, _: &Config) -> u32 {
            1
        }
        fn units(&self, _: &Config) -> Vec<Result<Unit, UnitsError>> {
            vec![
                Ok(Unit::new(
                    &FLAKY,
                    UnitPath::parse("flaky/ok/a").unwrap(),
                    &[],
                    0.0,
                )),
                Err(UnitsError {
                    prefix: "flaky/bad".into(),
                    cause: crate::sources::SourceError::Usage(crate::error::UsageError(
                        "401 Bad credentials".into(),
                    )),
                }),
            ]
        }
        fn command(&self) -> clap::Command {
            clap::Command::new("flaky")
        }
        fn run(
            &self,
            _: &crate::sources::Cx,
            _: &clap::ArgMatches,
        ) -> Result<crate::error::ExitCode, crate::sources::SourceError> {
            Ok(crate::error::ExitCode::Ok)
        }
    }

    #[test]
    fn a_listing_failure_is_kept_beside_the_other_units() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("c.yaml");
        let text = format!(
            "settings:\n  root: {}\n  snapshot-store: dir\ndump:\n  x:\n    command: [true]\n",
            d.path().display()
        );
        let config = crate::config::parse(&text, &cfg).unwrap();
        let registry: &[&'static dyn Source] = &[&FLAKY, crate::sources::find("dump").unwrap()];
        let (units, failures) = select_from(registry, &config, &[]).unwrap();
        let names: Vec<&str> = units.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(names, ["flaky/ok/a", "dump/x"]);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].prefix, "flaky/bad");
        assert!(failures[0].to_string().contains("401 Bad credentials"));
        // --only on another source does not even ask this one.
        let only = [glob::Pattern::new("dump/*").unwrap()];
        let (units, failures) = select_from(registry, &config, &only).unwrap();
        assert_eq!(units.len(), 1);
        assert!(failures.is_empty());
        // --only naming the failed prefix reports it.
        let only = [glob::Pattern::new("flaky/bad/*").unwrap()];
        let (units, failures) = select_from(registry, &config, &only).unwrap();
        assert!(units.is_empty());
        assert_eq!(failures.len(), 1);
    }

    #[test]
    fn only_globs_skip_sources_they_cannot_match() {
        let p = |g: &str| vec![glob::Pattern::new(g).unwrap()];
        assert!(source_wanted(&[], "github"));
        assert!(!source_wanted(&p("rsync/*"), "github"));
        assert!(source_wanted(&p("rsync/*"), "rsync"));
        assert!(source_wanted(&p("*"), "github"));
        assert!(source_wanted(&p("git*/org/*"), "github"));
    }
}
