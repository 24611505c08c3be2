//! One `run`: every configured unit, each in its own child process, then one
//! snapshot.
//!
//! Owns: the run lock, per-source worker pools (`<source>-workers` at a
//! time), the choice of which units a run scrubs (seeded, so tests are
//! deterministic), unit logs (`Logs/<unit>/<YYYYMMDD>.{out,err}`, appended,
//! with start/end lines), unit state, the one start and one end line per unit
//! on the run's output, the last lines of a failed unit's log, and the
//! snapshot at the end (taken even when units failed).
//!
//! A unit's child is `strata -c CONFIG <source> backup [-c] ...`; it reports
//! what it did in a small JSON file named by `STRATA_UNIT_REPORT`. A child
//! that dies by a signal, or writes no report, failed.

pub mod lock;
pub mod state;

use crate::backup_root::BackupRoot;
use crate::config::Config;
use crate::exec::{Cmd, Termination};
use crate::snapshot::{SnapshotName, SnapshotStore};
use crate::sources::{self, Check, SourceKind, Unit, UnitReport};
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use lock::{LockError, RunLock};

/// How many lines of a failed unit's log the run prints.
pub const FAILURE_TAIL_LINES: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    Take,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only failures (cron).
    Quiet,
    Normal,
}

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub snapshot: SnapshotMode,
    /// `--only` globs over unit paths; empty = every unit.
    pub only: Vec<glob::Pattern>,
    /// Seed of the scrub draw (`STRATA_SEED`); `None` = random.
    pub seed: Option<u64>,
    /// Force every unit to scrub (`run -c`).
    pub scrub_all: bool,
    /// The strata binary to run children with.
    pub exe: PathBuf,
    pub verbosity: Verbosity,
    /// Pass `--allow-root` on to children.
    pub allow_root: bool,
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
}

impl RunSummary {
    #[must_use]
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.failure.is_some()).count()
    }
    /// Exit code: 1 if any unit or the snapshot failed.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed() > 0 || matches!(self.snapshot, Some(Err(_))))
    }
}

/// Decide which units this run scrubs: a pure function of the units and the rng.
pub fn plan_checks(units: &[Unit], rng: &mut impl Rng, scrub_all: bool) -> Vec<Check> {
    units
        .iter()
        .map(|u| {
            if scrub_all || rng.gen_bool(u.scrub_probability.clamp(0.0, 1.0)) {
                Check::Scrub
            } else {
                Check::Normal
            }
        })
        .collect()
}

/// The units selected by `--only` (all when empty).
pub fn select_units(config: &Config, only: &[glob::Pattern]) -> Result<Vec<Unit>, RunError> {
    let all = sources::units(config);
    if only.is_empty() {
        return Ok(all);
    }
    let chosen: Vec<Unit> = all
        .into_iter()
        .filter(|u| only.iter().any(|p| p.matches(u.path.as_str())))
        .collect();
    if chosen.is_empty() {
        return Err(RunError::NoMatch(
            only.iter().map(|p| p.as_str().to_owned()).collect(),
        ));
    }
    Ok(chosen)
}

/// Output shared by worker threads: one line at a time.
struct Console {
    out: Mutex<Box<dyn Write + Send>>,
    err: Mutex<Box<dyn Write + Send>>,
    verbosity: Verbosity,
}

impl Console {
    fn line(&self, s: &str) {
        if self.verbosity == Verbosity::Normal {
            let mut o = self
                .out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        }
    }
    fn failure(&self, s: &str) {
        let mut e = self
            .err
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(e, "{s}");
        let _ = e.flush();
    }
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
    let root = BackupRoot::new(&config.settings.root);
    let units = select_units(config, &opts.only)?;
    check_logs_writable(&root)?;
    let lock = RunLock::acquire(&root.state_dir())?;
    let console = Arc::new(Console {
        out: Mutex::new(out),
        err: Mutex::new(err),
        verbosity: opts.verbosity,
    });
    if let Some(pid) = &lock.taken_over_from {
        console.failure(&format!(
            "warning: a previous run (PID {pid}) did not finish; taking over its lock"
        ));
    }
    let mut rng = match opts.seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_entropy(),
    };
    let checks = plan_checks(&units, &mut rng, opts.scrub_all);
    let outcomes = run_pools(
        config,
        config_path,
        &root,
        &units.into_iter().zip(checks).collect::<Vec<_>>(),
        opts,
        &console,
    );

    let snapshot = match (opts.snapshot, store) {
        (SnapshotMode::Take, Some(store)) => {
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
    lock.close()?;
    Ok(RunSummary {
        outcomes,
        snapshot,
        lock_taken_over_from: taken_over,
    })
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

fn run_pools(
    config: &Config,
    config_path: &Path,
    root: &BackupRoot,
    work: &[(Unit, Check)],
    opts: &RunOptions,
    console: &Arc<Console>,
) -> Vec<UnitOutcome> {
    let results: Arc<Mutex<Vec<(usize, UnitOutcome)>>> = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for kind in SourceKind::ALL {
            let queue: VecDeque<(usize, Unit, Check)> = work
                .iter()
                .enumerate()
                .filter(|(_, (u, _))| u.kind == kind)
                .map(|(i, (u, c))| (i, u.clone(), *c))
                .collect();
            if queue.is_empty() {
                continue;
            }
            let workers = kind.workers(config).max(1) as usize;
            let queue = Arc::new(Mutex::new(queue));
            for _ in 0..workers.min(queue.lock().map_or(1, |q| q.len())) {
                let queue = Arc::clone(&queue);
                let results = Arc::clone(&results);
                let console = Arc::clone(console);
                scope.spawn(move || {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                        let Some((i, unit, check)) = next else { break };
                        let outcome = run_unit(config_path, root, &unit, check, opts, &console);
                        if let Ok(mut r) = results.lock() {
                            r.push((i, outcome));
                        }
                    }
                });
            }
        }
    });
    let mut results = Arc::try_unwrap(results)
        .map(|m| m.into_inner().unwrap_or_default())
        .unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, o)| o).collect()
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn run_unit(
    config_path: &Path,
    root: &BackupRoot,
    unit: &Unit,
    check: Check,
    opts: &RunOptions,
    console: &Console,
) -> UnitOutcome {
    let started = Instant::now();
    let started_unix = chrono::Utc::now().timestamp();
    let name = unit.path.to_string();
    let check_label = if check == Check::Scrub {
        " (scrub)"
    } else {
        ""
    };
    console.line(&format!(
        "{} start {name}{check_label}",
        chrono::Local::now().format("%H:%M:%S")
    ));

    let outcome =
        |end: Termination, report: Option<UnitReport>, failure: Option<String>| UnitOutcome {
            unit: name.clone(),
            check,
            end,
            report,
            secs: started.elapsed().as_secs_f64(),
            failure,
        };
    let log_dir = root.log_dir(&unit.path);
    let day = chrono::Local::now().format("%Y%m%d").to_string();
    let (out_path, err_path) = (
        log_dir.join(format!("{day}.out")),
        log_dir.join(format!("{day}.err")),
    );
    let logs = std::fs::create_dir_all(&log_dir)
        .and_then(|()| Ok((open_log(&out_path)?, open_log(&err_path)?)));
    let (mut out_log, mut err_log) = match logs {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot open its logs in {}: {e}", log_dir.display());
            return finish(
                root,
                unit,
                console,
                started_unix,
                outcome(Termination::Exited(-1), None, Some(why)),
                None,
            );
        }
    };
    let report_dir = root.state_dir().join("reports");
    let report_path = report_dir.join(format!(
        "{}-{}.json",
        unit.path.as_str().replace('/', "%"),
        std::process::id()
    ));
    let _ = std::fs::create_dir_all(&report_dir);
    let _ = std::fs::remove_file(&report_path);

    let args = unit.child_args(check);
    let mut cmd = Cmd::new(&opts.exe)
        .arg("-c")
        .arg(config_path)
        .args(&args)
        .env(sources::REPORT_ENV, &report_path);
    if opts.allow_root {
        cmd = cmd.env("STRATA_ALLOW_ROOT", "1");
    }
    let header = format!(
        "=== {} strata run: start {} (run PID {})\n",
        stamp(),
        cmd.display(),
        std::process::id()
    );
    let _ = out_log.write_all(header.as_bytes());
    let _ = err_log.write_all(header.as_bytes());
    let (child_out, child_err) = match (out_log.try_clone(), err_log.try_clone()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            return finish(
                root,
                unit,
                console,
                started_unix,
                outcome(Termination::Exited(-1), None, Some(e.to_string())),
                None,
            );
        }
    };
    let (end, failure) = match cmd.run_to_files(child_out, child_err) {
        Ok(end) if end.success() => (end, None),
        Ok(end @ Termination::Signaled(sig)) => (end, Some(format!("killed by signal {sig}"))),
        Ok(end) => (end, Some(end.to_string())),
        Err(e) => (Termination::Exited(-1), Some(e.to_string())),
    };
    let report: Option<UnitReport> = std::fs::read(&report_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let _ = std::fs::remove_file(&report_path);
    let failure = match (failure, &report) {
        (None, None) => Some("it exited 0 but reported nothing".to_owned()),
        (f, _) => f,
    };
    let footer = format!(
        "=== {} strata run: end: {} ({:.1} s)\n",
        stamp(),
        failure.as_deref().unwrap_or("ok"),
        started.elapsed().as_secs_f64()
    );
    let _ = out_log.write_all(footer.as_bytes());
    let _ = err_log.write_all(footer.as_bytes());
    finish(
        root,
        unit,
        console,
        started_unix,
        outcome(end, report, failure),
        Some(&err_path),
    )
}

fn finish(
    root: &BackupRoot,
    unit: &Unit,
    console: &Console,
    started: i64,
    o: UnitOutcome,
    err_log: Option<&Path>,
) -> UnitOutcome {
    let attempt = match (&o.failure, &o.report) {
        (None, Some(r)) => state::Attempt::Succeeded {
            scrubbed: r.scrubbed,
            bytes: r.bytes,
        },
        (Some(why), _) => state::Attempt::Failed { why },
        (None, None) => state::Attempt::Failed { why: "no report" },
    };
    if let Err(e) = state::record(root, &unit.path, started, o.secs, &attempt) {
        console.failure(&format!("{}: cannot record its state: {e}", o.unit));
    }
    let time = chrono::Local::now().format("%H:%M:%S");
    match &o.failure {
        None => {
            let summary = o
                .report
                .as_ref()
                .map(|r| r.summary.clone())
                .unwrap_or_default();
            console.line(&format!(
                "{time} done  {} ok {:.1}s{}{summary}",
                o.unit,
                o.secs,
                if summary.is_empty() { "" } else { ": " }
            ));
        }
        Some(why) => {
            console.line(&format!(
                "{time} done  {} FAILED {:.1}s: {why}",
                o.unit, o.secs
            ));
            let tail = err_log
                .map(|p| log_tail(p, FAILURE_TAIL_LINES))
                .unwrap_or_default();
            let mut msg = format!("{} FAILED: {why}", o.unit);
            if !tail.is_empty() {
                let _ = write!(
                    msg,
                    "\n  last lines of {}:\n",
                    err_log.map(|p| p.display().to_string()).unwrap_or_default()
                );
                for l in tail.lines() {
                    msg.push_str("    ");
                    msg.push_str(l);
                    msg.push('\n');
                }
            }
            console.failure(msg.trim_end());
        }
    }
    o
}

/// The last `n` lines of a log file (lossily decoded).
#[must_use]
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnitPath;

    fn unit(p: f64) -> Unit {
        Unit {
            kind: SourceKind::Dump,
            path: UnitPath::parse("dump/x").unwrap(),
            backup_args: vec![],
            scrub_probability: p,
        }
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
        let scrubs = a[..1000].iter().filter(|c| **c == Check::Scrub).count();
        assert!((180..320).contains(&scrubs), "{scrubs} of 1000 at p=0.25");
        assert_eq!(a[1000], Check::Normal);
        assert_eq!(a[1001], Check::Scrub);
        assert!(
            plan_checks(&units, &mut rand::rngs::StdRng::seed_from_u64(7), true)
                .iter()
                .all(|c| *c == Check::Scrub)
        );
    }

    #[test]
    fn scrub_flag_goes_after_the_verb() {
        let u = Unit {
            backup_args: vec![
                "rbd".into(),
                "backup".into(),
                "-s".into(),
                "p".into(),
                "n".into(),
            ],
            ..unit(0.0)
        };
        assert_eq!(
            u.child_args(Check::Scrub),
            ["rbd", "backup", "-c", "-s", "p", "n"]
        );
        assert_eq!(
            u.child_args(Check::Normal),
            ["rbd", "backup", "-s", "p", "n"]
        );
    }
}
