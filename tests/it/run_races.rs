//! A run and the processes around it: a unit backup started by hand while a
//! run backs the same unit up, a run killed with SIGKILL or stopped with
//! SIGTERM (its units and their commands end with it), and a corrupt unit
//! state file (named, kept aside, the other units unaffected).

use crate::run::{Setup, text};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

/// Wait until `path` holds a PID (written by a unit's command).
fn wait_for_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never held a PID", path.display());
}

/// Whether a process is gone (or a zombie nobody reaps).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone(pid)
}

#[test]
fn a_unit_backup_started_by_hand_during_a_run_of_that_unit_is_refused() {
    let home_data = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let data_file = home_data.path().join("data");
    std::fs::write(&data_file, &data).unwrap();
    let started = home_data.path().join("started");
    let units = format!(
        "  slow:\n    command: [sh, -c, 'echo $$ > {s}; sleep 2; cat {d}']\n    file: out\n",
        s = started.display(),
        d = data_file.display()
    );
    let s = Setup::new("", &units);
    let run = s
        .cmd()
        .args(["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pid(&started);
    let by_hand = s.run(&["dump", "backup", "slow"]);
    let run = run.wait_with_output().unwrap();
    assert!(
        run.status.success(),
        "{}\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    assert_eq!(
        by_hand.status.code(),
        Some(1),
        "the second backup must be refused: {}",
        text(&by_hand.stderr)
    );
    assert!(
        text(&by_hand.stderr).contains("a backup of dump/slow is in progress (PID"),
        "{}",
        text(&by_hand.stderr)
    );
    let sha = hex::encode(Sha256::digest(&data));
    let stored = s.root.join("dump/slow/out");
    assert_eq!(std::fs::read(&stored).unwrap(), data);
    let snaps: Vec<_> = std::fs::read_dir(s.root.join(".snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let copy = snaps[0].join("dump/slow/out");
    assert_eq!(std::fs::read(&copy).unwrap(), data, "the snapshot's copy");
    assert_eq!(
        xattr::get(&copy, "user.strata.sha256").unwrap().unwrap(),
        sha.as_bytes()
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.root.join("dump/slow"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "out")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A unit whose command, the first time only, records its PID and sleeps.
fn sleeper(dir: &Path) -> (String, std::path::PathBuf) {
    let flag = dir.join("flag");
    let pid = dir.join("pid");
    std::fs::write(&flag, "once").unwrap();
    let units = format!(
        "  long:\n    command: [sh, -c, 'if [ -e {f} ]; then rm {f}; echo $$ > {p}; sleep 60; fi; echo ok']\n  quick:\n    command: [echo, quick]\n",
        f = flag.display(),
        p = pid.display()
    );
    (units, pid)
}

#[test]
fn a_run_killed_by_sigkill_takes_its_units_and_their_commands_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (units, pid_file) = sleeper(dir.path());
    let s = Setup::new("", &units);
    let mut run = s
        .cmd()
        .args(["run", "--no-snapshot"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let command = wait_for_pid(&pid_file);
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    assert!(
        wait_gone(command, Duration::from_secs(10)),
        "the unit's command (PID {command}) outlived its killed run"
    );
    // The next run takes over the lock and backs everything up.
    let out = s.run(&["run", "--no-snapshot"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(stderr.contains("taking over its lock"), "{stderr}");
    assert_eq!(
        std::fs::read(s.root.join("dump/long/long")).unwrap(),
        b"ok\n"
    );
    let jobs = s.root.join(".strata/jobs");
    let records: Vec<_> = std::fs::read_dir(&jobs)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(records.is_empty(), "job records left: {records:?}");
}

#[test]
fn sigterm_to_a_run_stops_its_units_and_takes_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (units, pid_file) = sleeper(dir.path());
    let s = Setup::new("", &units);
    let run = s
        .cmd()
        .args(["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let command = wait_for_pid(&pid_file);
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(run.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = run.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the run took {:?} to stop",
        t.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted by signal 15"), "{stderr}");
    assert!(stdout.contains("done  dump/long FAILED"), "{stdout}");
    assert!(gone(command), "the unit's command outlived the run");
    assert!(
        !s.root.join(".snapshots").exists()
            || std::fs::read_dir(s.root.join(".snapshots"))
                .unwrap()
                .all(|e| e.unwrap().file_name().to_string_lossy().starts_with('.')),
        "an interrupted run takes no snapshot"
    );
}

#[test]
fn a_corrupt_unit_state_is_named_kept_aside_and_the_others_are_still_shown() {
    let s = Setup::new(
        "",
        "  alpha:\n    command: [echo, a]\n  beta:\n    command: [echo, b]\n",
    );
    assert!(s.run(&["run", "--no-snapshot"]).status.success());
    let state = s.root.join(".strata/state/dump/alpha.json");
    let full = std::fs::read(&state).unwrap();
    std::fs::write(&state, &full[..full.len() / 3]).unwrap();

    let out = s.run(&["status"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains(&state.display().to_string()) && stderr.contains("corrupt"),
        "the broken file is named: {stderr}"
    );
    let beta = stdout
        .lines()
        .find(|l| l.starts_with("dump/beta"))
        .unwrap_or_else(|| panic!("beta is still shown:\n{stdout}"));
    assert!(beta.ends_with("ok"), "{beta}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("dump/alpha") && l.contains("unreadable state file")),
        "{stdout}"
    );
    let json = s.run(&["--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["units"].as_array().unwrap().len(), 2, "{v}");

    // The next backup of alpha keeps the corrupt file aside and starts afresh.
    let out = s.run(&["run", "--no-snapshot", "--only", "dump/alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("state file was corrupt; kept at"),
        "{}",
        text(&out.stderr)
    );
    let aside: Vec<_> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("alpha.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let out = s.run(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}
