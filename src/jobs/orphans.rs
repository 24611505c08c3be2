//! What a killed runner leaves behind, and how the next one ends it.
//!
//! While a job runs, `<state_dir>/jobs/<token>.json` records the runner
//! (PID and start time) and the job's process group. Every process of the
//! job inherits [`super::TOKEN_ENV`]`=<token>`. A runner killed with
//! SIGKILL cannot stop its jobs; their children die by the parent-death
//! signal ([`super::child::adopt`]), but a tool they started may still run.
//! [`reap`] finds the records whose runner is gone and kills, by PID, each
//! process that is in the recorded group *and* carries the token (so a
//! reused PID or group number is never mistaken for the job), waits until
//! they are gone, and removes the record.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    runner_pid: u32,
    runner_start: u64,
    group: u32,
    token: String,
}

/// A running job's record; removed when the job ends.
pub struct Record {
    path: PathBuf,
}

/// A token no other job shares: the runner's PID, the time, a counter.
#[must_use]
pub fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("jobs")
}

impl Record {
    /// Record that the job `token` runs as process group `group`.
    pub fn create(state_dir: &Path, token: &str, group: u32) -> std::io::Result<Record> {
        let me = std::process::id();
        let entry = Entry {
            runner_pid: me,
            runner_start: start_time(me).unwrap_or(0),
            group,
            token: token.to_owned(),
        };
        let path = dir(state_dir).join(format!("{token}.json"));
        let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(dir(state_dir))?;
        // why: not fsynced: after a machine crash every process is gone anyway
        std::fs::write(&path, bytes)?;
        Ok(Record { path })
    }

    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What [`reap`] ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// Jobs of dead runners found.
    pub jobs: usize,
    /// Their processes killed.
    pub processes: usize,
    /// Processes still there after waiting (should be none).
    pub survivors: Vec<u32>,
}

/// End what jobs of dead runners left running; see the module docs.
pub fn reap(state_dir: &Path) -> std::io::Result<Reaped> {
    let mut out = Reaped::default();
    let entries = match std::fs::read_dir(dir(state_dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let path = e?.path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let alive = start_time(entry.runner_pid).is_some_and(|t| t == entry.runner_start);
        if alive {
            continue; // why: another live runner's job (a concurrent `archive run`)
        }
        out.jobs += 1;
        let members = job_processes(entry.group, &entry.token);
        for pid in &members {
            if let Ok(p) = i32::try_from(*pid) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        out.processes += members.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = job_processes(entry.group, &entry.token);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = job_processes(entry.group, &entry.token);
        }
        out.survivors.extend(left);
        let _ = std::fs::remove_file(&path);
    }
    Ok(out)
}

/// PIDs in process group `group` whose environment holds the job's token.
fn job_processes(group: u32, token: &str) -> Vec<u32> {
    let needle = format!("{}={token}", super::TOKEN_ENV);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f.pgrp == group && !f.zombie))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

struct Stat {
    pgrp: u32,
    start: u64,
    zombie: bool,
}

/// The fields of `/proc/PID/stat` we need: after the command name in
/// parentheses (which may itself hold spaces and parentheses) come the state,
/// ppid, pgrp, ... and, 20th after the name, the start time.
fn stat_fields(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        zombie: *f.first()? == "Z",
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).map(|s| s.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line =
            "4242 (a) b (c)) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.pgrp, s.start, s.zombie), (4240, 987_654, false));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn a_dead_runners_job_is_killed_and_a_live_runners_is_left() {
        let d = tempfile::tempdir().unwrap();
        let token = new_token();
        // A job of this (live) runner: reap must leave it alone.
        let live = crate::exec::Cmd::new("sleep")
            .arg("30")
            .own_process_group()
            .env(super::super::TOKEN_ENV, &token);
        let (o, e) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        let child = live.spawn_to_files(o, e).unwrap();
        let pid = child.pid();
        let rec = Record::create(d.path(), &token, pid).unwrap();
        assert_eq!(reap(d.path()).unwrap(), Reaped::default());
        assert_eq!(job_processes(pid, &token), vec![pid]);
        // Pretend its runner died: a record naming a runner that is gone.
        let path = rec.path.clone();
        let mut entry: Entry = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        entry.runner_start += 1;
        std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
        let waiter = std::thread::spawn(move || child.wait());
        let r = reap(d.path()).unwrap();
        assert_eq!((r.jobs, r.processes), (1, 1), "{r:?}");
        assert!(r.survivors.is_empty(), "{r:?}");
        assert!(waiter.join().unwrap().is_ok());
        assert!(!path.exists());
    }
}
