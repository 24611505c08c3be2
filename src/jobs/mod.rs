//! Jobs: child processes of strata, run a bounded number at a time per pool,
//! each with its own log files. `run` makes one job per unit (a pool per
//! source, `<source>-workers` wide); `archive run` one job per unit of a set
//! (one pool, the profile's `workers` wide).
//!
//! Owns, for every job: the start line and the end line on the console, the
//! log files `<log_dir>/<YYYYMMDD>.{out,err}` (appended, between a header and
//! a footer line), the report the child writes ([`child::report`]), the
//! verdict (a non-zero exit, a signal, or a missing report is a failure),
//! and the last lines of a failed job's log on stderr.
//!
//! And the life of the children:
//! - every child leads its own process group, so a job and everything it
//!   started is signalled as one;
//! - a child dies with its runner: it asks the kernel for SIGTERM when the
//!   runner dies and then kills its whole group ([`child::adopt`]);
//! - SIGINT, SIGTERM or SIGHUP to the runner stops every running job the
//!   same way, starts no new one, and the runner reports the interruption;
//! - each running job is recorded under `<state_dir>/jobs/` with a token
//!   that every process of the job inherits, so that a later runner finds
//!   and kills what a killed runner left behind ([`orphans`]).
//!
//! Does not own: what a job's outcome means (the caller's `on_end` records
//! unit state or archive results).

pub mod child;
pub mod orphans;

use crate::exec::{Cmd, Termination};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The file where a job's child writes its report (JSON).
pub const REPORT_ENV: &str = crate::exec::JOB_PRIVATE_ENV[0];
/// The PID of the runner, which the child must not outlive.
pub const PARENT_ENV: &str = crate::exec::JOB_PRIVATE_ENV[1];
/// A config file holding only what the job reads (`Config::unit_config_text`),
/// which the child reads instead of the whole file named by `-c`.
pub const CONFIG_ENV: &str = crate::exec::JOB_PRIVATE_ENV[2];
/// A token unique to one job, inherited by every process of the job.
pub const TOKEN_ENV: &str = "STRATA_JOB_TOKEN";

/// How many lines of a failed job's log the runner prints.
pub const FAILURE_TAIL_LINES: usize = 15;

/// What a job's child reports when it succeeds.
pub trait JobReport: DeserializeOwned + Send {
    /// One line for the console's end line (may be empty).
    fn summary(&self) -> String;
    /// Bytes the job produced or holds, for the progress line.
    fn bytes(&self) -> u64 {
        0
    }
}

/// One child to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// What the console and the logs call it: a unit path.
    pub name: String,
    /// The pool it waits in.
    pub pool: String,
    /// Shown after the name on the start line (`scrub`).
    pub note: Option<String>,
    /// The child (`strata ...`); its stdout and stderr go to the logs.
    pub cmd: Cmd,
    /// Where `<YYYYMMDD>.out` and `.err` are appended.
    pub log_dir: PathBuf,
}

/// How one job ended.
#[derive(Debug, Clone)]
pub struct Outcome<R> {
    pub name: String,
    pub end: Termination,
    /// What the child reported (`None` if it failed before reporting).
    pub report: Option<R>,
    /// When it started (Unix seconds) and how long it took.
    pub started: i64,
    pub secs: f64,
    /// Why it failed; `None` = it succeeded.
    pub failure: Option<String>,
    /// Its stderr log, when it was opened.
    pub err_log: Option<PathBuf>,
}

/// How much the console says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only failures (cron).
    Quiet,
    Normal,
}

/// The runner's output, shared by worker threads: one line at a time.
pub struct Console {
    out: Mutex<Box<dyn Write + Send>>,
    err: Mutex<Box<dyn Write + Send>>,
    verbosity: Verbosity,
    /// On a terminal: units done, the running ones, bytes so far.
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    bar: Option<crate::progress::Bar>,
    running: Vec<String>,
    bytes: u64,
}

impl Progress {
    fn show(&self) {
        let Some(bar) = &self.bar else { return };
        let mut msg = match self.running.as_slice() {
            [] => String::new(),
            [a] => a.clone(),
            [a, b] => format!("{a}, {b}"),
            [a, b, rest @ ..] => format!("{a}, {b} +{} more", rest.len()),
        };
        if self.bytes > 0 {
            let _ = write!(msg, " | {} MiB so far", self.bytes >> 20);
        }
        bar.set_message(msg);
    }
}

impl Console {
    #[must_use]
    pub fn new(
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
        verbosity: Verbosity,
    ) -> Console {
        Console {
            out: Mutex::new(out),
            err: Mutex::new(err),
            verbosity,
            progress: Mutex::new(Progress::default()),
        }
    }

    fn start_progress(&self, label: &str, jobs: usize) {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        p.bar = Some(crate::progress::Bar::units(label, jobs as u64));
    }

    fn end_progress(&self) {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = p.bar.take() {
            b.finish();
        }
    }

    fn job_started(&self, name: &str) {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        p.running.push(name.to_owned());
        p.show();
    }

    fn job_ended(&self, name: &str, bytes: u64) {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        p.running.retain(|n| n != name);
        p.bytes += bytes;
        if let Some(b) = &p.bar {
            b.inc(1);
        }
        p.show();
    }

    /// Print with the progress bar out of the way.
    fn print(&self, to: &Mutex<Box<dyn Write + Send>>, s: &str) {
        let p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let write = || {
            let mut o = to.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        };
        match &p.bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }

    /// A progress line (stdout), unless quiet.
    pub fn line(&self, s: &str) {
        if self.verbosity == Verbosity::Normal {
            self.print(&self.out, s);
        }
    }

    /// A problem (stderr), always.
    pub fn failure(&self, s: &str) {
        self.print(&self.err, s);
    }
}

/// Runs jobs; see the module documentation.
pub struct Runner<'a> {
    /// Who starts the jobs, for the log headers: `strata run`.
    pub title: &'a str,
    /// Pool name -> how many of its jobs run at once (at least one).
    pub pools: &'a BTreeMap<String, usize>,
    /// Where reports and the records of running jobs live (`<root>/.strata`).
    pub state_dir: &'a Path,
    pub console: &'a Console,
    /// Asked before each job starts (several appliances sharing a root):
    /// `None` skips the job (another holds it, or it is done already);
    /// `Some(guard)` runs it, the guard dropped after `on_end`.
    pub claim: Option<&'a Claim<'a>>,
}

/// See [`Runner::claim`].
pub type Claim<'a> = dyn Fn(&Job) -> Option<Box<dyn std::any::Any + Send>> + Sync + 'a;

/// What [`Runner::run`] returns: every job's outcome, in the order given,
/// and the signal that interrupted the run, if one did (jobs never started
/// then have no outcome).
pub struct Ran<R> {
    pub outcomes: Vec<Outcome<R>>,
    /// The jobs [`Runner::claim`] skipped.
    pub skipped: Vec<String>,
    pub interrupted: Option<i32>,
}

/// Signals that stop a runner and its jobs.
pub const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// The running jobs' PIDs (= process groups), for the interrupt forwarder.
type Running = Arc<Mutex<std::collections::BTreeSet<u32>>>;

impl Runner<'_> {
    /// Run every job, `pools[job.pool]` at a time per pool; `on_end` is
    /// called once per finished job, before its end line is printed.
    pub fn run<R: JobReport>(
        &self,
        jobs: &[Job],
        on_end: &(dyn Fn(&Job, &Outcome<R>) + Sync),
    ) -> Ran<R> {
        self.reap_killed_runs();
        self.console.start_progress(self.title, jobs.len());
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        let mut registered: Vec<signal_hook::SigId> = Vec::new();
        for sig in STOP_SIGNALS {
            // why: these handlers only store into atomics, which is async-signal-safe
            registered.extend(signal_hook::flag::register(sig, Arc::clone(&stop)).ok());
            registered.extend(
                signal_hook::flag::register_usize(
                    sig,
                    Arc::clone(&which),
                    sig.unsigned_abs() as usize,
                )
                .ok(),
            );
        }
        let running: Running = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let results: Mutex<Vec<(usize, Outcome<R>)>> = Mutex::new(Vec::new());
        let skipped: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
        let mut queues: BTreeMap<&str, VecDeque<(usize, &Job)>> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            queues.entry(&job.pool).or_default().push_back((i, job));
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            // The forwarder: on a stop signal, stop every running job.
            let forwarder = scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if stop.load(Ordering::Relaxed) {
                        let pids: Vec<u32> = running
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .iter()
                            .copied()
                            .collect();
                        for pid in pids {
                            stop_group(pid);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let mut workers = Vec::new();
            for (pool, queue) in queues {
                let width = self.pools.get(pool).copied().unwrap_or(1).max(1);
                let n = width.min(queue.len());
                let queue = Arc::new(Mutex::new(queue));
                for _ in 0..n {
                    let queue = Arc::clone(&queue);
                    let (results, running, stop, skipped) = (&results, &running, &stop, &skipped);
                    workers.push(scope.spawn(move || {
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let next = queue
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .pop_front();
                            let Some((i, job)) = next else { break };
                            let guard = self.claim.map(|claim| claim(job));
                            if let Some(None) = guard {
                                skipped
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push((i, job.name.clone()));
                                continue;
                            }
                            let o = self.run_one(job, running, on_end);
                            drop(guard);
                            results
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((i, o));
                        }
                    }));
                }
            }
            for w in workers {
                let _ = w.join();
            }
            done.store(true, Ordering::Relaxed);
            let _ = forwarder.join();
        });
        for id in registered {
            signal_hook::low_level::unregister(id);
        }
        self.console.end_progress();
        let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
        results.sort_by_key(|(i, _)| *i);
        let mut skipped = skipped.into_inner().unwrap_or_else(PoisonError::into_inner);
        skipped.sort_by_key(|(i, _)| *i);
        let signal = i32::try_from(which.load(Ordering::Relaxed)).unwrap_or(0);
        Ran {
            outcomes: results.into_iter().map(|(_, o)| o).collect(),
            skipped: skipped.into_iter().map(|(_, n)| n).collect(),
            interrupted: stop.load(Ordering::Relaxed).then_some(signal),
        }
    }

    /// A runner killed with SIGKILL leaves jobs whose tools may still be
    /// writing: end them before any job starts (see [`orphans`]).
    fn reap_killed_runs(&self) {
        match orphans::reap(self.state_dir) {
            Ok(r) if r.jobs > 0 => {
                self.console.failure(&format!(
                    "warning: {} job(s) of a killed run were still running; {} process(es) stopped",
                    r.jobs, r.processes
                ));
                if !r.survivors.is_empty() {
                    self.console.failure(&format!(
                        "warning: processes of a killed run would not stop: {:?}",
                        r.survivors
                    ));
                }
            }
            Ok(_) => {}
            Err(e) => self.console.failure(&format!(
                "warning: cannot look for jobs of a killed run: {e}"
            )),
        }
    }

    fn run_one<R: JobReport>(
        &self,
        job: &Job,
        running: &Running,
        on_end: &(dyn Fn(&Job, &Outcome<R>) + Sync),
    ) -> Outcome<R> {
        let started = Instant::now();
        let started_unix = chrono::Utc::now().timestamp();
        let note = job
            .note
            .as_ref()
            .map_or(String::new(), |n| format!(" ({n})"));
        self.console
            .line(&format!("{} start {}{note}", clock(), job.name));
        self.console.job_started(&job.name);
        let mut outcome = Outcome {
            name: job.name.clone(),
            end: Termination::Exited(-1),
            report: None,
            started: started_unix,
            secs: 0.0,
            failure: None,
            err_log: None,
        };
        let (end, report, failure) = self.spawn_and_wait(job, running, &mut outcome.err_log);
        outcome.end = end;
        outcome.report = report;
        outcome.failure = failure;
        outcome.secs = started.elapsed().as_secs_f64();
        on_end(job, &outcome);
        self.console.job_ended(
            &job.name,
            outcome.report.as_ref().map_or(0, JobReport::bytes),
        );
        self.end_line(&outcome);
        outcome
    }

    /// Open the logs, start the child, wait, read its report.
    fn spawn_and_wait<R: JobReport>(
        &self,
        job: &Job,
        running: &Running,
        err_log: &mut Option<PathBuf>,
    ) -> (Termination, Option<R>, Option<String>) {
        let failed = |why: String| (Termination::Exited(-1), None, Some(why));
        let day = chrono::Local::now().format("%Y%m%d").to_string();
        let (out_path, err_path) = (
            job.log_dir.join(format!("{day}.out")),
            job.log_dir.join(format!("{day}.err")),
        );
        let logs = std::fs::create_dir_all(&job.log_dir)
            .and_then(|()| Ok((open_log(&out_path)?, open_log(&err_path)?)));
        let (mut out_log, mut err_log_file) = match logs {
            Ok(l) => l,
            Err(e) => {
                return failed(format!(
                    "cannot open its logs in {}: {e}",
                    job.log_dir.display()
                ));
            }
        };
        *err_log = Some(err_path);
        let run_pid = std::process::id();
        let report_dir = self.state_dir.join("reports");
        let report_path = report_dir.join(format!("{}-{run_pid}.json", job.name.replace('/', "%")));
        let _ = std::fs::create_dir_all(&report_dir);
        let _ = std::fs::remove_file(&report_path);
        let token = orphans::new_token();
        let cmd = job
            .cmd
            .clone()
            .own_process_group()
            .env(REPORT_ENV, &report_path)
            .env(PARENT_ENV, run_pid.to_string())
            .env(TOKEN_ENV, &token);
        let header = format!(
            "=== {} {}: start {} (PID {run_pid})\n",
            stamp(),
            self.title,
            cmd.display(),
        );
        let _ = out_log.write_all(header.as_bytes());
        let _ = err_log_file.write_all(header.as_bytes());
        let (child_out, child_err) = match (out_log.try_clone(), err_log_file.try_clone()) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => return failed(e.to_string()),
        };
        let (end, failure) = match cmd.spawn_to_files(child_out, child_err) {
            Ok(child) => {
                let pid = child.pid();
                let record = orphans::Record::create(self.state_dir, &token, pid);
                running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(pid);
                let ended = child.wait();
                running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&pid);
                if let Ok(r) = record {
                    r.remove();
                }
                match ended {
                    Ok(end) if end.success() => (end, None),
                    Ok(end) => (end, Some(end.to_string())),
                    Err(e) => (Termination::Exited(-1), Some(e.to_string())),
                }
            }
            Err(e) => (Termination::Exited(-1), Some(e.to_string())),
        };
        let report: Option<R> = std::fs::read(&report_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let _ = std::fs::remove_file(&report_path);
        let failure = match (failure, &report) {
            (None, None) => Some("it exited 0 but reported nothing".to_owned()),
            (f, _) => f,
        };
        let footer = format!(
            "=== {} {}: end: {}\n",
            stamp(),
            self.title,
            failure.as_deref().unwrap_or("ok"),
        );
        let _ = out_log.write_all(footer.as_bytes());
        let _ = err_log_file.write_all(footer.as_bytes());
        (end, report, failure)
    }

    fn end_line<R: JobReport>(&self, o: &Outcome<R>) {
        match &o.failure {
            None => {
                let summary = o
                    .report
                    .as_ref()
                    .map(JobReport::summary)
                    .unwrap_or_default();
                self.console.line(&format!(
                    "{} done  {} ok {:.1}s{}{summary}",
                    clock(),
                    o.name,
                    o.secs,
                    if summary.is_empty() { "" } else { ": " }
                ));
            }
            Some(why) => {
                self.console.line(&format!(
                    "{} done  {} FAILED: {why} ({:.1}s)",
                    clock(),
                    o.name,
                    o.secs
                ));
                let tail = o
                    .err_log
                    .as_deref()
                    .map(|p| log_tail(p, FAILURE_TAIL_LINES))
                    .unwrap_or_default();
                let mut msg = format!("{} FAILED: {why}", o.name);
                if let (false, Some(p)) = (tail.is_empty(), &o.err_log) {
                    let _ = write!(msg, "\n  last lines of {}:\n", p.display());
                    for l in tail.lines() {
                        msg.push_str("    ");
                        msg.push_str(l);
                        msg.push('\n');
                    }
                }
                self.console.failure(msg.trim_end());
            }
        }
    }
}

/// Ask a job to stop: SIGTERM to its leader, which kills its group
/// ([`child::adopt`]); SIGKILL to the group if the leader is not a strata
/// that adopted (it would ignore nothing, but a tool might).
fn stop_group(pid: u32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(pid) else { return };
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

fn stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The last `n` lines of a log file (lossily decoded), from the last job's
/// part only: a unit's log holds every run of its day, and a failure's
/// quote must not show what earlier runs said.
#[must_use]
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let this_run = lines
        .iter()
        .rposition(|l| l.starts_with("=== ") && l.contains(": start "))
        .map_or(0, |i| i + 1);
    let lines = &lines[this_run..];
    lines[lines.len().saturating_sub(n)..].join("\n")
}
