//! A run shared by several appliances (`appliances:` in the config): each
//! backs up the units it owns, the last one to see every unit done takes
//! the one snapshot, and an appliance that has not finished its share
//! within `appliance-lease` has what is left of it taken over by the others.
//!
//! Everything they share lives on the backup root, which every appliance
//! mounts (CephFS), under `<root>/.strata/runs/<id>/`:
//!
//! | file | what |
//! | --- | --- |
//! | `run.json` | when the run was opened, and by whom |
//! | `appliances/<name>.json` | each appliance's part: joined, last seen, share done |
//! | `claims/<unit>.lock` | held (flock) by the appliance backing the unit up now |
//! | `done/<unit>.json` | the unit is done in this run (ok or failed), and by whom |
//! | `snapshot.claim` | made with `O_EXCL` by the one appliance that snapshots |
//! | `snapshot.json` | the snapshot's name, or why it failed |
//!
//! The rules, each one decided by the file system, not by clocks compared
//! across machines:
//! - **Which run.** An appliance joins the newest run if it is still open
//!   (no `snapshot.json`) and was opened less than a lease ago; otherwise it
//!   opens the next one with `mkdir` (the loser of a race joins the winner's).
//! - **Who backs up a unit.** Whoever holds its claim (a non-blocking flock,
//!   which CephFS keeps across clients), and only if the unit has no `done`
//!   file yet, read after the claim is held. The unit's own lock
//!   (`unit-locks/`) is still taken by the backup itself.
//! - **Done.** After a unit's child has ended (its files closed: ceph-fuse
//!   writes a file's data to the cluster on close), its appliance calls
//!   `syncfs` on the root (what flushes the kernel client; on ceph-fuse it
//!   flushes nothing) and then writes the unit's `done` file, before
//!   releasing the claim. So when every unit is done, every writer has
//!   finished and flushed: the condition for a consistent CephFS snapshot
//!   across clients. A unit stopped by a signal is not done (another
//!   appliance redoes it).
//! - **Lease.** Measured on each appliance's own clock from when it joined.
//!   After it, an appliance that has finished its own share tries every unit
//!   that is not done: claims held by a live appliance are skipped, claims
//!   of a dead one were released by the kernel (its process) or by the MDS
//!   (its whole machine, once its session is evicted).
//! - **Snapshot.** When every unit is done, each waiting appliance tries to
//!   create `snapshot.claim` with `O_EXCL`; exactly one succeeds and takes
//!   the snapshot. Names are never reused (`YYYYMMDD-N`, N above the day's
//!   highest in `.snap`), across appliances too.

use super::{
    JobConfigs, RunError, RunOptions, RunSummary, SnapshotMode, UnitOutcome, check_logs_writable,
    listing_failed, make_room, plan_checks, record_state, select_units, unit_job, unit_outcome,
    warn_at_snapshot_limit,
};
use crate::backup_root::{BackupRoot, PidLock};
use crate::config::{Appliance, Config};
use crate::exec::Termination;
use crate::jobs::{self, Console, Job, Outcome};
use crate::snapshot::SnapshotStore;
use crate::sources::{Check, UnitReport};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs kept under `runs/` (the newest; older ones are removed by the
/// appliance that opens a run).
const RUNS_KEPT: usize = 30;

/// `runs/<id>/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// Unix seconds, on the opener's clock.
    pub opened: i64,
    pub opened_by: String,
}

/// `runs/<id>/appliances/<name>.json`, and `appliances/<name>/last-run.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplianceRecord {
    pub run: String,
    pub host: String,
    pub pid: u32,
    pub joined: i64,
    /// Last time it wrote this record (Unix seconds, its own clock).
    pub seen: i64,
    /// Its own share is done (every unit it owns is done or held by another).
    pub share_done: bool,
    /// When it left the run (None = still in it, or killed).
    pub ended: Option<i64>,
    /// Units it backed up in this run, of them failed, and those it took
    /// over from other appliances.
    pub units: usize,
    pub failed: usize,
    pub taken_over: Vec<String>,
    /// The run's snapshot, when it is known to this appliance.
    pub snapshot: Option<String>,
}

/// `runs/<id>/done/<unit>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneRecord {
    pub appliance: String,
    pub ok: bool,
    pub at: i64,
}

/// `runs/<id>/snapshot.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub by: String,
    pub name: Option<String>,
    pub error: Option<String>,
}

/// One shared run's directory.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    pub id: String,
    pub record: RunRecord,
    /// This appliance opened it.
    pub opened_here: bool,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |source| RunError::Shared {
        path: path.to_owned(),
        source,
    }
}

/// Write `data` to `path` through a temporary file and a rename.
fn write_json<T: Serialize>(path: &Path, data: &T) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, data).map_err(std::io::Error::other)?;
    tmp.write_all(b"\n")?;
    // why: durable, and on ceph-fuse an fsynced file is readable by the
    // other appliances at once (see snapshot::cephfs::settle)
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The runs under `runs/`, by number.
fn run_ids(runs: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    match std::fs::read_dir(runs) {
        Ok(rd) => {
            for e in rd {
                if let Some(n) = e?.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
                    ids.push(n);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    ids.sort_unstable();
    Ok(ids)
}

fn run_name(n: u64) -> String {
    format!("{n:08}")
}

impl RunDir {
    /// Join the newest run if it is open and younger than `lease`, else
    /// open the next one.
    pub fn join(runs: &Path, me: &str, lease: Duration) -> Result<RunDir, RunError> {
        std::fs::create_dir_all(runs).map_err(io_err(runs))?;
        for _ in 0..20 {
            let ids = run_ids(runs).map_err(io_err(runs))?;
            if let Some(&newest) = ids.last() {
                let path = runs.join(run_name(newest));
                if let Some(record) = RunDir::wait_record(&path)
                    && !path.join("snapshot.json").exists()
                    && !path.join("abandoned").exists()
                {
                    let age = chrono::Utc::now().timestamp() - record.opened;
                    if u64::try_from(age).unwrap_or(0) < lease.as_secs() {
                        return Ok(RunDir {
                            id: record.id.clone(),
                            path,
                            record,
                            opened_here: false,
                        });
                    }
                    // why: an open run older than a lease has no live appliance waiting in it
                    let _ = std::fs::write(path.join("abandoned"), format!("{me}\n"));
                }
            }
            let next = ids.last().map_or(1, |n| n + 1);
            let id = run_name(next);
            let path = runs.join(&id);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let record = RunRecord {
                        id: id.clone(),
                        opened: chrono::Utc::now().timestamp(),
                        opened_by: me.to_owned(),
                    };
                    write_json(&path.join("run.json"), &record).map_err(io_err(&path))?;
                    RunDir::forget_old(runs, &ids);
                    return Ok(RunDir {
                        path,
                        id,
                        record,
                        opened_here: true,
                    });
                }
                // why: another appliance opened it first: join that one
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Err(io_err(runs)(std::io::Error::other(
            "could not open or join a run after 20 tries",
        )))
    }

    /// `run.json` of a run another appliance is opening: written just after
    /// its `mkdir`, so give it a few seconds.
    fn wait_record(path: &Path) -> Option<RunRecord> {
        for _ in 0..50 {
            if let Some(r) = read_json(&path.join("run.json")) {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn forget_old(runs: &Path, ids: &[u64]) {
        if ids.len() > RUNS_KEPT {
            for n in &ids[..ids.len() - RUNS_KEPT] {
                let _ = std::fs::remove_dir_all(runs.join(run_name(*n)));
            }
        }
    }

    fn done_path(&self, unit: &str) -> PathBuf {
        self.path.join("done").join(format!("{unit}.json"))
    }

    #[must_use]
    pub fn done(&self, unit: &str) -> Option<DoneRecord> {
        read_json(&self.done_path(unit))
    }

    /// Claim `unit`: `None` if another appliance holds it, or it is done.
    #[must_use]
    pub fn claim(&self, unit: &str) -> Option<PidLock> {
        PidLock::claim(
            &self.path.join("claims").join(format!("{unit}.lock")),
            &format!("{unit} in run {}", self.id),
            &self.done_path(unit),
        )
    }

    pub fn mark_done(&self, unit: &str, record: &DoneRecord) -> std::io::Result<()> {
        write_json(&self.done_path(unit), record)
    }

    /// Try to become the appliance that snapshots: `Ok(None)` for exactly
    /// one; the others learn the winner.
    pub fn elect(&self, me: &str) -> std::io::Result<Option<String>> {
        crate::backup_root::lock::elect(&self.path.join("snapshot.claim"), me)
    }

    #[must_use]
    pub fn snapshot(&self) -> Option<SnapshotRecord> {
        read_json(&self.path.join("snapshot.json"))
    }

    pub fn write_appliance(&self, me: &str, rec: &ApplianceRecord) -> std::io::Result<()> {
        write_json(
            &self.path.join("appliances").join(format!("{me}.json")),
            rec,
        )
    }
}

/// The last run of `name`, for `status`.
#[must_use]
pub fn last_run(root: &BackupRoot, name: &str) -> Option<ApplianceRecord> {
    read_json(&root.appliance_dir(name).join("last-run.json"))
}

/// How often a waiting appliance looks at the run: one `stat` of the first
/// unit not yet seen done (a cursor over the run's units), so polling
/// often costs the MDS little whatever the number of units.
const POLL: Duration = Duration::from_millis(250);

/// How often a waiting appliance rewrites its record (`seen`).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// The stop signals, watched while the appliance waits between its jobs.
fn watch_signals() -> (Arc<AtomicBool>, Vec<signal_hook::SigId>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ids = jobs::STOP_SIGNALS
        .into_iter()
        .filter_map(|s| signal_hook::flag::register(s, Arc::clone(&stop)).ok())
        .collect();
    (stop, ids)
}

/// What one appliance does in a shared run (see the module's doc), under
/// its own run lock, released cleanly whatever the run's end.
pub(super) fn run(
    config: &Config,
    config_path: &Path,
    store: Option<&dyn SnapshotStore>,
    opts: &RunOptions,
    me: &Appliance,
    console: &Console,
) -> Result<RunSummary, RunError> {
    let root = BackupRoot::new(&config.settings.root);
    check_logs_writable(&root)?;
    let lock = PidLock::run(&root.appliance_dir(&me.name))?;
    if let Some(pid) = &lock.taken_over_from {
        console.failure(&format!(
            "warning: a previous run of appliance {} (PID {pid}) did not finish; taking over its lock",
            me.name
        ));
    }
    let result = run_locked(config, config_path, store, opts, me, console, &root);
    let taken_over_from = lock.taken_over_from.clone();
    lock.close()?;
    result.map(|summary| RunSummary {
        lock_taken_over_from: taken_over_from,
        ..summary
    })
}

#[allow(clippy::too_many_lines)] // why: one sequence of phases, each short, read top to bottom
fn run_locked(
    config: &Config,
    config_path: &Path,
    store: Option<&dyn SnapshotStore>,
    opts: &RunOptions,
    me: &Appliance,
    console: &Console,
    root: &BackupRoot,
) -> Result<RunSummary, RunError> {
    let my_dir = root.appliance_dir(&me.name);
    let lease = Duration::from_secs(config.settings.appliance_lease);
    let barrier = opts.snapshot == SnapshotMode::Take;
    let run = if barrier {
        let run = RunDir::join(&root.state_dir().join("runs"), &me.name, lease)?;
        if run.opened_here {
            console.line(&format!("appliance {}: opened run {}", me.name, run.id));
        } else {
            console.line(&format!(
                "appliance {}: joined run {} (opened by {})",
                me.name, run.id, run.record.opened_by
            ));
        }
        Some(run)
    } else {
        None
    };
    let joined = Instant::now();
    let mut mine = ApplianceRecord {
        run: run.as_ref().map_or_else(String::new, |r| r.id.clone()),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        joined: chrono::Utc::now().timestamp(),
        seen: chrono::Utc::now().timestamp(),
        ..ApplianceRecord::default()
    };
    let heartbeat = |rec: &mut ApplianceRecord| {
        rec.seen = chrono::Utc::now().timestamp();
        if let Some(run) = &run
            && let Err(e) = run.write_appliance(&me.name, rec)
        {
            console.failure(&format!(
                "warning: cannot record appliance {}: {e}",
                me.name
            ));
        }
    };
    heartbeat(&mut mine);
    if let Some(store) = store {
        if run.as_ref().is_some_and(|r| r.opened_here) {
            make_room(config, store, console);
        }
        if barrier {
            warn_at_snapshot_limit(store, console);
        }
    }

    let (units, list_failures) = select_units(config, &opts.only)?;
    let owner_of = |unit: &str| config.appliances.owner(unit).map(|a| a.name.as_str());
    let first = config.appliances.0.first().map(|a| a.name.as_str());
    let mut outcomes: Vec<UnitOutcome> = list_failures
        .iter()
        .filter(|e| owner_of(&e.prefix) == Some(me.name.as_str()))
        .map(|e| listing_failed(root, e, console))
        .collect();
    let mut rng = match opts.seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_entropy(),
    };
    let plans = plan_checks(&units, &mut rng, opts.scrub_all);
    let cuts = JobConfigs::in_dir(my_dir.join("job-configs"));
    let mut jobs: Vec<(Job, Option<&str>)> = Vec::new();
    for (i, (u, plan)) in units.iter().zip(&plans).enumerate() {
        let owner = owner_of(u.path.as_str());
        if owner.is_none() {
            // why: reported once, by the first appliance of the config
            if first == Some(me.name.as_str()) {
                console.failure(&format!(
                    "{} FAILED: owned by no appliance (add a glob matching it to `appliances:`)",
                    u.path
                ));
                outcomes.push(UnitOutcome {
                    unit: u.path.to_string(),
                    check: Check::Normal,
                    end: Termination::Exited(-1),
                    report: None,
                    secs: 0.0,
                    failure: Some("owned by no appliance".to_owned()),
                });
            }
            continue;
        }
        let mut job = unit_job(root, config_path, u, plan, opts);
        if let Some(path) = cuts.write(i, config, u) {
            job.cmd = job.cmd.env(jobs::CONFIG_ENV, path);
        }
        jobs.push((job, owner));
    }
    let checks: BTreeMap<String, Check> = units
        .iter()
        .zip(&plans)
        .map(|(u, p)| (u.path.to_string(), p.check))
        .collect();
    let pools: BTreeMap<String, usize> = crate::sources::all()
        .iter()
        .map(|s| (s.name().to_owned(), s.workers(config).max(1) as usize))
        .collect();
    let claim = |job: &Job| -> Option<Box<dyn std::any::Any + Send>> {
        let run = run.as_ref()?;
        run.claim(&job.name)
            .map(|l| Box::new(l) as Box<dyn std::any::Any + Send>)
    };
    let on_end = |job: &Job, o: &Outcome<UnitReport>| {
        record_state(root, job, o, console, Some(&me.name));
        let Some(run) = &run else { return };
        if matches!(o.end, Termination::Signaled(_)) {
            return;
        }
        // why: a unit is done only once what its child wrote is on the cluster
        if let Err(e) = std::fs::File::open(root.path())
            .and_then(|f| nix::unistd::syncfs(&f).map_err(std::io::Error::from))
        {
            console.failure(&format!("warning: syncfs of the root failed: {e}"));
        }
        let rec = DoneRecord {
            appliance: me.name.clone(),
            ok: o.failure.is_none(),
            at: chrono::Utc::now().timestamp(),
        };
        if let Err(e) = run.mark_done(&job.name, &rec) {
            console.failure(&format!(
                "{}: cannot record it done in run {}: {e}",
                job.name, run.id
            ));
        }
    };
    let runner = jobs::Runner {
        title: "strata run",
        pools: &pools,
        state_dir: &my_dir,
        console,
        claim: run.as_ref().map(|_| &claim as &jobs::Claim),
    };
    let mut interrupted = None;
    let absorb = |ran: jobs::Ran<UnitReport>,
                  outcomes: &mut Vec<UnitOutcome>,
                  interrupted: &mut Option<i32>| {
        if ran.interrupted.is_some() {
            *interrupted = ran.interrupted;
        }
        outcomes.extend(ran.outcomes.into_iter().map(|o| unit_outcome(o, &checks)));
    };

    // Phase 1: the units this appliance owns.
    let own: Vec<Job> = jobs
        .iter()
        .filter(|(_, o)| *o == Some(me.name.as_str()))
        .map(|(j, _)| j.clone())
        .collect();
    let ran = runner.run(&own, &on_end);
    if !ran.skipped.is_empty() {
        console.line(&format!(
            "appliance {}: {} of its units were done or being backed up by another appliance",
            me.name,
            ran.skipped.len()
        ));
    }
    absorb(ran, &mut outcomes, &mut interrupted);
    mine.share_done = interrupted.is_none();
    heartbeat(&mut mine);

    // Phase 2: wait for the others; after the lease, take over what is left.
    let (stop, signal_ids) = watch_signals();
    let mut taken_over: Vec<String> = Vec::new();
    if let Some(run) = &run {
        let all: Vec<&Job> = jobs.iter().map(|(j, _)| j).collect();
        // why: units before the cursor were seen done; done files are never removed
        let mut cursor = 0;
        let mut said_waiting = false;
        let mut beat = Instant::now();
        while interrupted.is_none() {
            while cursor < all.len() && run.done(&all[cursor].name).is_some() {
                cursor += 1;
            }
            if cursor == all.len() {
                break;
            }
            if stop.load(Ordering::Relaxed) {
                interrupted = Some(signal_hook::consts::SIGTERM);
                break;
            }
            if joined.elapsed() >= lease {
                let left: Vec<Job> = all[cursor..]
                    .iter()
                    .filter(|j| run.done(&j.name).is_none())
                    .map(|j| (*j).clone())
                    .collect();
                let ran = runner.run(&left, &on_end);
                let names: Vec<String> = ran.outcomes.iter().map(|o| o.name.clone()).collect();
                if !names.is_empty() {
                    console.line(&format!(
                        "appliance {}: took over {} unit(s) not done within the lease ({}s): {}",
                        me.name,
                        names.len(),
                        lease.as_secs(),
                        names.join(", ")
                    ));
                }
                taken_over.extend(names);
                absorb(ran, &mut outcomes, &mut interrupted);
            } else if !said_waiting {
                let waiting: Vec<(&Job, Option<&str>)> = jobs
                    .iter()
                    .filter(|(j, _)| run.done(&j.name).is_none())
                    .map(|(j, o)| (j, *o))
                    .collect();
                let owners: std::collections::BTreeSet<&str> =
                    waiting.iter().filter_map(|(_, o)| *o).collect();
                console.line(&format!(
                    "appliance {}: share done; waiting for {} unit(s) of {} (lease {}s)",
                    me.name,
                    waiting.len(),
                    owners.into_iter().collect::<Vec<_>>().join(", "),
                    lease.as_secs()
                ));
                said_waiting = true;
            }
            if beat.elapsed() >= HEARTBEAT {
                heartbeat(&mut mine);
                beat = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }
    for id in signal_ids {
        signal_hook::low_level::unregister(id);
    }
    cuts.remove();

    // Phase 3: one snapshot, by the appliance that wins the election.
    let mut snapshot = None;
    if let Some(sig) = interrupted {
        console.failure(&format!(
            "run interrupted by signal {sig}: this appliance's units were stopped; \
             the others take them over after the lease"
        ));
    } else if let (Some(run), Some(store)) = (&run, store) {
        match run.elect(&me.name) {
            Ok(None) => {
                let today = chrono::Local::now().date_naive();
                let result = store.create(today);
                let rec = match &result {
                    Ok(name) => {
                        console.line(&format!("snapshot {name} taken (run {})", run.id));
                        mine.snapshot = Some(name.to_string());
                        SnapshotRecord {
                            by: me.name.clone(),
                            name: Some(name.to_string()),
                            error: None,
                        }
                    }
                    Err(e) => {
                        console.failure(&format!("snapshot FAILED: {e}"));
                        SnapshotRecord {
                            by: me.name.clone(),
                            name: None,
                            error: Some(e.to_string()),
                        }
                    }
                };
                if let Err(e) = write_json(&run.path.join("snapshot.json"), &rec) {
                    console.failure(&format!("warning: cannot record the run's snapshot: {e}"));
                }
                snapshot = Some(result.map_err(|e| e.to_string()));
            }
            Ok(Some(by)) => {
                console.line(&format!(
                    "the snapshot of run {} is taken by appliance {by}",
                    run.id
                ));
            }
            Err(e) => {
                console.failure(&format!(
                    "snapshot FAILED: cannot claim it in run {}: {e}",
                    run.id
                ));
                snapshot = Some(Err(e.to_string()));
            }
        }
    }

    mine.ended = Some(chrono::Utc::now().timestamp());
    mine.units = outcomes.len();
    mine.failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    mine.taken_over = taken_over;
    if interrupted.is_none() {
        heartbeat(&mut mine);
    }
    if let Err(e) = write_json(&my_dir.join("last-run.json"), &mine) {
        console.failure(&format!("warning: cannot record this appliance's run: {e}"));
    }
    Ok(RunSummary {
        outcomes,
        snapshot,
        lock_taken_over_from: None,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appliances_racing_to_open_a_run_all_join_one() {
        let d = tempfile::tempdir().unwrap();
        let runs = d.path().join("runs");
        let lease = Duration::from_hours(1);
        let ids: Vec<(String, bool)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..12)
                .map(|i| {
                    let runs = runs.clone();
                    s.spawn(move || {
                        let r = RunDir::join(&runs, &format!("a{i}"), lease).unwrap();
                        (r.id, r.opened_here)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|(id, _)| id == "00000001"), "{ids:?}");
        assert_eq!(
            ids.iter().filter(|(_, opened)| *opened).count(),
            1,
            "{ids:?}"
        );
    }

    #[test]
    fn a_closed_or_expired_run_is_not_joined() {
        let d = tempfile::tempdir().unwrap();
        let runs = d.path().join("runs");
        let lease = Duration::from_hours(1);
        let first = RunDir::join(&runs, "a", lease).unwrap();
        assert!(first.opened_here);
        assert!(!RunDir::join(&runs, "b", lease).unwrap().opened_here);
        write_json(
            &first.path.join("snapshot.json"),
            &SnapshotRecord {
                by: "a".into(),
                name: Some("20261201-1".into()),
                error: None,
            },
        )
        .unwrap();
        let second = RunDir::join(&runs, "b", lease).unwrap();
        assert_eq!((second.id.as_str(), second.opened_here), ("00000002", true));
        // Opened longer than a lease ago: abandoned, and a new run opened.
        let mut old = second.record.clone();
        old.opened -= 7200;
        write_json(&second.path.join("run.json"), &old).unwrap();
        let third = RunDir::join(&runs, "a", lease).unwrap();
        assert_eq!((third.id.as_str(), third.opened_here), ("00000003", true));
        assert!(second.path.join("abandoned").exists());
    }

    #[test]
    fn claims_exclude_each_other_and_done_units_and_one_appliance_is_elected() {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::join(&d.path().join("runs"), "a", Duration::from_mins(1)).unwrap();
        let held = run.claim("dump/x").expect("the first claim");
        assert!(run.claim("dump/x").is_none(), "held by another");
        drop(held);
        let again = run
            .claim("dump/x")
            .expect("released when its holder is gone");
        run.mark_done(
            "dump/x",
            &DoneRecord {
                appliance: "a".into(),
                ok: true,
                at: 0,
            },
        )
        .unwrap();
        drop(again);
        assert!(run.claim("dump/x").is_none(), "done in this run");
        assert_eq!(run.done("dump/x").unwrap().appliance, "a");
        let won: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let run = &run;
                    s.spawn(move || run.elect(&format!("a{i}")).unwrap().is_none())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        assert!(run.elect("late").unwrap().unwrap().starts_with('a'));
    }
}
