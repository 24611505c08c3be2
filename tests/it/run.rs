//! `run` end to end with dump units and the dir store: logs, state, status,
//! snapshots, failures, a unit killed by SIGKILL, the lock, `--only`.

use crate::support::env::{TestHome, strata};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Setup {
    pub home: TestHome,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Setup {
    /// A backup root and a config whose settings are `extra` and whose units are `dump`.
    pub fn new(extra: &str, dump: &str) -> Setup {
        let home = TestHome::new();
        let root = home.join("backup");
        std::fs::create_dir(&root).unwrap();
        let config = home.join("strata.yaml");
        std::fs::write(
            &config,
            format!(
                "settings:\n  root: {}\n  snapshot-store: dir\n{extra}dump:\n{dump}",
                root.display()
            ),
        )
        .unwrap();
        Setup { home, root, config }
    }

    pub fn cmd(&self) -> Command {
        let mut c = strata(&self.home);
        c.arg("-c").arg(&self.config).env("STRATA_ALLOW_ROOT", "1");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run strata")
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

fn snapshots(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join(".snapshots"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

const UNITS: &str = "  alpha:\n    command: [printf, 'alpha\\n']\n  beta:\n    command: [sh, -c, 'head -c 300000 /dev/zero | tr \"\\0\" b']\n    file: beta.bin\n";

#[test]
fn a_run_backs_up_logs_records_state_and_snapshots() {
    let s = Setup::new("", UNITS);
    let out = s.run(&["run"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    for unit in ["dump/alpha", "dump/beta"] {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.contains(&format!("start {unit}")))
                .count(),
            1,
            "{stdout}"
        );
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.contains(&format!("done  {unit} ok")))
                .count(),
            1,
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("snapshot {}-1 taken", today())),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(s.root.join("dump/alpha/alpha")).unwrap(),
        b"alpha\n"
    );
    assert_eq!(
        std::fs::read(s.root.join("dump/beta/beta.bin")).unwrap(),
        vec![b'b'; 300_000]
    );
    // Logs: appended, with start and end lines.
    let log =
        std::fs::read_to_string(s.root.join(format!("Logs/dump/alpha/{}.out", today()))).unwrap();
    assert!(
        log.contains("strata run: start") && log.contains("strata run: end: ok"),
        "{log}"
    );
    assert!(
        s.root
            .join(format!("Logs/dump/alpha/{}.err", today()))
            .exists()
    );
    // State persisted.
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root.join(".strata/state/dump/beta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["bytes"], 300_000);
    assert_eq!(state["failures_in_row"], 0);
    assert!(state["last_success"].is_i64());

    // Again: the incremental says unchanged and rewrites nothing; a second snapshot.
    let out = s.run(&["run"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("done  dump/beta ok") && stdout.contains("unchanged, 300000 bytes"),
        "{stdout}"
    );
    assert_eq!(
        snapshots(&s.root),
        vec![format!("{}-1", today()), format!("{}-2", today())]
    );
    let log =
        std::fs::read_to_string(s.root.join(format!("Logs/dump/alpha/{}.out", today()))).unwrap();
    assert_eq!(
        log.matches("strata run: start").count(),
        2,
        "logs are appended per run"
    );
    // The snapshot holds the data, read-only.
    let snap = s
        .root
        .join(format!(".snapshots/{}-1/dump/alpha/alpha", today()));
    assert_eq!(std::fs::read(&snap).unwrap(), b"alpha\n");

    // status: a table, exit 0, nothing stale; --json parses.
    let out = s.run(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("dump/beta") && text(&out.stdout).contains("293.0 KiB"),
        "{}",
        text(&out.stdout)
    );
    let out = s.run(&["--json", "status"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&doc["kind"], &doc["schema_version"]),
        (&"status".into(), &1.into())
    );
    let v = &doc["units"];
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["unit"], "dump/beta");
    assert_eq!(v[1]["stale"], false);
    // ls lists both snapshots.
    let out = s.run(&["ls"]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
    // metrics
    let prom = s.home.join("strata.prom");
    let out = s.run(&["metrics", prom.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains("strata_unit_bytes{unit=\"dump/beta\",source=\"dump\"} 300000"),
        "{m}"
    );
    assert!(
        m.contains("strata_unit_failures_in_row{unit=\"dump/alpha\",source=\"dump\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("# TYPE strata_filesystem_free_bytes gauge"),
        "{m}"
    );
}

#[test]
fn a_failed_unit_keeps_its_previous_copy_reports_its_log_and_the_snapshot_is_still_taken() {
    let flag = tempfile::NamedTempFile::new().unwrap();
    let units = format!(
        "  flaky:\n    command: [sh, -c, 'if [ -s {f} ]; then echo \"disk on fire\" >&2; exit 3; fi; echo good']\n  fine:\n    command: [echo, fine]\n",
        f = flag.path().display()
    );
    let s = Setup::new("", &units);
    assert!(s.run(&["run"]).status.success());
    std::fs::write(flag.path(), "fail").unwrap();
    let out = s.run(&["run"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("done  dump/flaky FAILED"), "{stdout}");
    assert!(stdout.contains("done  dump/fine ok"), "{stdout}");
    assert!(
        stderr.contains("dump/flaky FAILED: exit status 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("disk on fire"),
        "the failure shows the last lines of the unit's log:\n{stderr}"
    );
    assert!(stderr.contains("the previous copy is kept"), "{stderr}");
    assert!(
        stdout.contains("snapshot") && stdout.contains("-2 taken"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(s.root.join("dump/flaky/flaky")).unwrap(),
        b"good\n"
    );
    assert!(
        !s.root.join("dump/flaky/.strata-new-flaky").exists(),
        "no staged file left behind"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root.join(".strata/state/dump/flaky.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["failures_in_row"], 1);
    let out = s.run(&["status"]);
    assert!(
        text(&out.stdout).contains("failing (1 in a row)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_unit_killed_by_sigkill_is_reported_the_others_finish_and_the_next_run_succeeds() {
    let flag = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(flag.path(), "kill").unwrap();
    // The command kills its parent, the unit's `strata dump backup` child, once.
    let units = format!(
        "  victim:\n    command: [sh, -c, 'if [ -s {f} ]; then : > {f}; kill -9 $PPID; sleep 5; fi; echo survived']\n  a:\n    command: [echo, a]\n  b:\n    command: [echo, b]\n",
        f = flag.path().display()
    );
    let s = Setup::new("  dump-workers: 2\n", &units);
    let out = s.run(&["run"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("dump/victim FAILED: killed by signal 9"),
        "{stderr}"
    );
    assert!(
        stdout.contains("done  dump/a ok") && stdout.contains("done  dump/b ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains(" taken"),
        "the snapshot is taken anyway: {stdout}"
    );
    let out = s.run(&["run"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(s.root.join("dump/victim/victim")).unwrap(),
        b"survived\n"
    );
}

#[test]
fn a_second_run_is_refused_while_one_holds_the_lock_and_a_dead_holder_is_taken_over() {
    let s = Setup::new("", "  slow:\n    command: [sh, -c, 'sleep 3; echo done']\n");
    let mut first = s
        .cmd()
        .args(["run", "--no-snapshot"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock.
    let lock = s.root.join(".strata/run.lock");
    for _ in 0..100 {
        if std::fs::read_to_string(&lock).is_ok_and(|s| !s.trim().is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = s.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "another strata run is in progress (PID {}",
            first.id()
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(first.wait().unwrap().success());
    // A lock file left by a dead run (PID written, no flock held) is taken over with a warning.
    std::fs::write(&lock, "999999\n").unwrap();
    let out = s.run(&["run", "--no-snapshot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("a previous run (PID 999999) did not finish; taking over its lock"),
        "{}",
        text(&out.stderr)
    );
    assert!(snapshots(&s.root).is_empty(), "--no-snapshot takes none");
}

#[test]
fn only_selects_units_by_glob_and_a_glob_matching_nothing_is_a_usage_error() {
    let s = Setup::new(
        "",
        "  db-one:\n    command: [echo, 1]\n  db-two:\n    command: [echo, 2]\n  web:\n    command: [echo, w]\n",
    );
    let out = s.run(&["run", "--no-snapshot", "--only", "dump/db-*"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        s.root.join("dump/db-one/db-one").exists() && s.root.join("dump/db-two/db-two").exists()
    );
    assert!(!s.root.join("dump/web").exists());
    let out = s.run(&["run", "--only", "rsync/*"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("matches no configured unit"),
        "{}",
        text(&out.stderr)
    );
}

/// A run's children read the config cut out for them, not the whole file
/// again (config/job.rs): with one worker, the first unit wrecks the config
/// file and the units after it still back up, with paths resolved as in
/// the original file; by hand the file is read, so the wreck is then seen.
#[test]
fn a_units_child_reads_the_config_its_run_cut_for_it() {
    let s = Setup::new("  dump-workers: 1\n", "");
    let config = s.config.display().to_string();
    let dump = format!(
        "  wreck:\n    command: [sh, -c, 'echo \"not: [valid\" > {config}']\n  here:\n    command: [pwd]\n  after:\n    command: [echo, still fine]\n    file: after.txt\n"
    );
    let text_before = std::fs::read_to_string(&s.config).unwrap() + &dump;
    std::fs::write(&s.config, &text_before).unwrap();
    let out = s.run(&["run", "--no-snapshot"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let pwd = std::fs::read_to_string(s.root.join("dump/here/here")).unwrap();
    assert_eq!(Path::new(pwd.trim()), s.config.parent().unwrap());
    assert_eq!(
        std::fs::read_to_string(s.root.join("dump/after/after.txt")).unwrap(),
        "still fine\n"
    );
    assert!(!s.root.join(".strata/job-configs").exists());
    let by_hand = s.run(&["dump", "backup", "after"]);
    assert_eq!(by_hand.status.code(), Some(2), "{}", text(&by_hand.stderr));

    // A section that cannot be cut (flow style) is read whole by the child.
    std::fs::write(&s.config, text_before.replace(&dump, "")).unwrap();
    let flow = "dump: {a: {command: [echo, a]}, b: {command: [echo, b]}}\n";
    let mut t = std::fs::read_to_string(&s.config).unwrap();
    t = t.replace("dump:\n", flow);
    std::fs::write(&s.config, t).unwrap();
    let out = s.run(&["run", "--no-snapshot"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(s.root.join("dump/a/a").exists() && s.root.join("dump/b/b").exists());
}

#[test]
fn scrub_choice_is_reproducible_with_a_seed() {
    let units = (0..12)
        .map(|i| format!("  u{i}:\n    command: [echo, {i}]\n"))
        .collect::<Vec<_>>()
        .concat();
    let s = Setup::new("  dump-scrub-probability: 0.5\n", &units);
    let scrubbed = |out: &Output| -> Vec<String> {
        text(&out.stdout)
            .lines()
            .filter(|l| l.contains("(scrub)"))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_owned())
            .collect()
    };
    let a = scrubbed(&s.run(&["run", "--no-snapshot", "--seed", "42"]));
    let b = scrubbed(&s.run(&["run", "--no-snapshot", "--seed", "42"]));
    assert_eq!(a, b);
    assert!(!a.is_empty() && a.len() < 12, "p=0.5 over 12 units: {a:?}");
    let c = scrubbed(
        &s.cmd()
            .args(["run", "--no-snapshot"])
            .env("STRATA_SEED", "42")
            .output()
            .unwrap(),
    );
    assert_eq!(a, c, "STRATA_SEED is the same seed");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root.join(format!(".strata/state/{}.json", a[0]))).unwrap(),
    )
    .unwrap();
    assert!(state["last_scrub"].is_i64(), "a scrub is recorded");
}

#[test]
fn root_is_refused_without_allow_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: root_is_refused_without_allow_root runs only as root");
        return;
    }
    let s = Setup::new("", "  a:\n    command: [echo, a]\n");
    let out = strata(&s.home)
        .arg("-c")
        .arg(&s.config)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refusing to run `strata run` as root"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&s.root).unwrap().count(), 0);
    // Read-only commands run as root without it.
    let out = strata(&s.home)
        .arg("-c")
        .arg(&s.config)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn an_unwritable_logs_directory_stops_the_run_before_anything_is_written() {
    let s = Setup::new("", "  a:\n    command: [echo, a]\n");
    // why: root ignores permissions, so make Logs unusable as a directory instead
    std::fs::write(s.root.join("Logs"), "not a directory").unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Logs directory")
            && text(&out.stderr).contains("is not writable"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.root.join("dump").exists() && !s.root.join(".snapshots").exists());
}

#[test]
fn status_flags_units_without_a_recent_success_and_exits_1() {
    let s = Setup::new(
        "  stale-days: 2\n",
        "  fresh:\n    command: [echo, f]\n  old:\n    command: [echo, o]\n  never:\n    command: [echo, n]\n",
    );
    assert!(
        s.run(&[
            "run",
            "--no-snapshot",
            "--only",
            "dump/fresh",
            "--only",
            "dump/old"
        ])
        .status
        .success()
    );
    // Age the last success of dump/old to 3 days ago.
    let path = s.root.join(".strata/state/dump/old.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let three_days_ago = chrono::Utc::now().timestamp() - 3 * 86_400;
    state["last_success"] = three_days_ago.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = s.run(&["status"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = |unit: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(unit))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("dump/fresh").ends_with("ok"), "{stdout}");
    assert!(
        line("dump/old").contains("STALE (no success for 2+ days)"),
        "{stdout}"
    );
    assert!(
        line("dump/never").contains("STALE (never succeeded)"),
        "{stdout}"
    );
    let prom = s.home.join("m.prom");
    assert!(s.run(&["metrics", prom.to_str().unwrap()]).status.success());
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains("strata_unit_stale{unit=\"dump/old\",source=\"dump\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("strata_unit_stale{unit=\"dump/fresh\",source=\"dump\"} 0"),
        "{m}"
    );
    assert!(m.contains(&format!("strata_unit_last_success_timestamp_seconds{{unit=\"dump/old\",source=\"dump\"}} {three_days_ago}")), "{m}");
}

#[test]
fn dump_restore_brings_back_a_snapshot_copy() {
    let flag = tempfile::NamedTempFile::new().unwrap();
    let s = Setup::new(
        "",
        &format!(
            "  db:\n    command: [cat, {}]\n    file: db.sql\n",
            flag.path().display()
        ),
    );
    std::fs::write(flag.path(), "version 1\n").unwrap();
    assert!(s.run(&["run"]).status.success());
    std::fs::write(flag.path(), "version 2\n").unwrap();
    assert!(s.run(&["run"]).status.success());
    let mounted = s.run(&["mount", &format!("{}-1", today())]);
    assert!(mounted.status.success(), "{}", text(&mounted.stderr));
    let mp = text(&mounted.stdout).trim().to_owned();
    let dest = s.home.join("restored.sql");
    let out = s.run(&[
        "dump",
        "restore",
        "--from",
        &mp,
        "db",
        dest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "version 1\n");
    let out = s.run(&["dump", "restore", "db", "-"]);
    assert_eq!(text(&out.stdout), "version 2\n");
    assert!(
        s.run(&["umount", &format!("{}-1", today())])
            .status
            .success()
    );
}

#[test]
fn every_json_listing_and_report_names_its_kind_and_schema_version() {
    let spool = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let s = Setup::new(
        &format!(
            "  archive-spool: {}\n  archivers:\n    default:\n      archiver: local\n      local-path: {}\n",
            spool.path().display(),
            store.path().display()
        ),
        "  alpha:\n    command: [echo, a]\n",
    );
    assert!(s.run(&["run"]).status.success());
    assert!(s.run(&["archive", "run"]).status.success());
    for (args, kind) in [
        (&["ls"][..], "ls"),
        (&["status"], "status"),
        (&["df"], "df"),
        (&["prune", "-n"], "prune"),
        (&["config", "check"], "config-check"),
        (&["archive", "ls"], "archive-ls"),
        (&["archive", "ls", "-s"], "archive-sets"),
        (&["archive", "cost"], "archive-cost"),
    ] {
        let out = s.cmd().arg("--json").args(args).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out.stdout)));
        assert_eq!(v["kind"], kind, "{args:?}: {v}");
        assert_eq!(v["schema_version"], 1, "{args:?}: {v}");
    }
}

#[test]
fn output_that_cannot_be_written_is_one_line_and_exit_1_not_a_panic() {
    let s = Setup::new("", "  a:\n    command: [echo, a]\n");
    assert!(s.run(&["run"]).status.success());
    for args in [&["status"][..], &["--json", "status"], &["ls"], &["df"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = s.cmd().args(args).stdout(full).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err, "strata: cannot write its output: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}

#[test]
fn status_quiet_lists_only_the_units_that_need_a_look() {
    let s = Setup::new(
        "",
        "  good:\n    command: [echo, a]\n  bad:\n    command: [sh, -c, 'exit 3']\n",
    );
    assert!(!s.run(&["run"]).status.success());
    let out = s.run(&["-q", "status"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("dump/bad") && said.contains("UNIT") && !said.contains("dump/good"),
        "{said}"
    );
    let full = text(&s.run(&["status"]).stdout);
    assert!(
        full.contains("dump/good") && full.contains("dump/bad"),
        "{full}"
    );

    let ok = Setup::new("", "  good:\n    command: [echo, a]\n");
    assert!(ok.run(&["run"]).status.success());
    let out = ok.run(&["-q", "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "nothing to say under -q");
}

#[test]
fn a_source_backup_under_quiet_prints_only_problems_and_a_restore_to_stdout_still_writes() {
    let s = Setup::new(
        "",
        "  a:\n    command: [echo, a]\n  bad:\n    command: [sh, -c, 'echo oops >&2; exit 3']\n",
    );
    let loud = s.run(&["dump", "backup", "a"]);
    assert!(loud.status.success() && !loud.stdout.is_empty());
    let quiet = s.run(&["-q", "dump", "backup", "a"]);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert_eq!(text(&quiet.stdout), "");
    assert_eq!(text(&quiet.stderr), "");
    let failed = s.run(&["-q", "dump", "backup", "bad"]);
    assert!(!failed.status.success());
    assert!(
        text(&failed.stderr).contains("oops"),
        "{}",
        text(&failed.stderr)
    );
    let restored = s.run(&["-q", "dump", "restore", "a", "-"]);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(text(&restored.stdout), "a\n");
}

#[test]
fn a_failures_quoted_log_lines_are_from_its_own_run_only() {
    let s = Setup::new("", "");
    let counter = s.home.join("count");
    std::fs::write(
        &s.config,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\ndump:\n  flaky:\n    command: [sh, -c, 'n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo \"failure number $n\" >&2; exit 1']\n",
            s.root.display(),
            c = counter.display()
        ),
    )
    .unwrap();
    let first = s.run(&["run"]);
    assert!(
        text(&first.stderr).contains("failure number 1"),
        "{}",
        text(&first.stderr)
    );
    let second = s.run(&["run"]);
    let said = text(&second.stderr);
    assert!(said.contains("failure number 2"), "{said}");
    assert!(
        !said.contains("failure number 1"),
        "an earlier run's lines quoted: {said}"
    );
}
