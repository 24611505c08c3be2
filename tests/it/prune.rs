//! `prune` on a dir store: the calendar policy over 400 daily snapshots
//! against an independent computation, `--as-of`, mounted snapshots, the
//! Hanoi policy, and log pruning.

use crate::run::{Setup, text};
use chrono::{Duration, NaiveDate};
use std::collections::BTreeSet;
use strata::retention::calendar::{CalendarPolicy, oracle::reference_calendar_keep};
use strata::snapshot::SnapshotName;

fn make_snapshots(s: &Setup, names: &[SnapshotName]) {
    let dir = s.root.join(".snapshots");
    for n in names {
        std::fs::create_dir_all(dir.join(n.as_str()).join("dump")).unwrap();
    }
}

/// A root with snapshots 20260310-1 to -3 and a policy that keeps only
/// the newest of them (no duplicates, dailies or weeklies).
fn three_snapshots_of_one_day() -> Setup {
    let s = Setup::new(
        "  gc-duplicate-days: 0\n  gc-daily-weeks: 0\n  gc-weekly-months: 0\n",
        "  a:\n    command: [echo, a]\n",
    );
    let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let names: Vec<SnapshotName> = (1..=3).map(|n| SnapshotName::new(day, n)).collect();
    make_snapshots(&s, &names);
    s
}

fn remaining(s: &Setup) -> BTreeSet<SnapshotName> {
    std::fs::read_dir(s.root.join(".snapshots"))
        .unwrap()
        .filter_map(|e| SnapshotName::parse(&e.unwrap().file_name().to_string_lossy()).ok())
        .collect()
}

#[test]
fn prune_as_of_keeps_exactly_what_the_policy_keeps_over_400_daily_snapshots() {
    let s = Setup::new("", "  a:\n    command: [echo, a]\n");
    let first = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
    let names: Vec<SnapshotName> = (0..400)
        .map(|i| SnapshotName::new(first + Duration::days(i), 1))
        .collect();
    make_snapshots(&s, &names);
    let as_of = first + Duration::days(399);
    let expected = reference_calendar_keep(&names, &CalendarPolicy::default(), as_of);

    // Dry run first: it removes nothing, and names exactly what a real prune will.
    let out = s.run(&["prune", "-n", "--as-of", &as_of.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let would: BTreeSet<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("would remove "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(remaining(&s).len(), 400, "a dry run removes nothing");
    assert_eq!(would.len(), 400 - expected.len());

    let out = s.run(&["prune", "--as-of", &as_of.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let left = remaining(&s);
    assert_eq!(
        left, expected,
        "prune and the reference computation disagree"
    );
    assert!(would.iter().all(|w| !left.iter().any(|l| l.as_str() == w)));
    // Default policy, 400 consecutive days: every day for 8 weeks, weekly for 12
    // 28-day months, monthly before (the oracle's count, pinned).
    assert_eq!(left.len(), 100);

    // A month later, a prune as of then removes more: what the user would see next month.
    let out = s.run(&[
        "prune",
        "-n",
        "--as-of",
        &(as_of + Duration::days(30)).to_string(),
    ]);
    assert!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("would remove"))
            .count()
            > 0
    );
}

#[test]
fn a_mounted_snapshot_is_never_removed_and_prune_says_so() {
    let s = three_snapshots_of_one_day();
    let out = s.run(&["mount", "20260310-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = s.run(&["prune", "-v", "--as-of", "2026-06-01"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("kept 20260310-1: mounted (the policy would remove it)"),
        "{stdout}"
    );
    assert!(stdout.contains("removed 20260310-2"), "{stdout}");
    let left: Vec<String> = remaining(&s).iter().map(ToString::to_string).collect();
    assert_eq!(left, ["20260310-1", "20260310-3"]);
    assert!(s.run(&["umount", "-a"]).status.success());
    let out = s.run(&["ls"]);
    assert!(
        !text(&out.stdout).contains("mounted"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn hanoi_policy_is_selected_by_config() {
    let s = Setup::new(
        "  gc-policy: hanoi\n  gc-hanoi-discs: 3\n",
        "  a:\n    command: [echo, a]\n",
    );
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let names: Vec<SnapshotName> = (0..20)
        .map(|i| SnapshotName::new(first + Duration::days(i), 1))
        .collect();
    make_snapshots(&s, &names);
    let out = s.run(&["prune", "--as-of", "2026-01-20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 3 discs: one snapshot per disc, plus the newest.
    let left = remaining(&s);
    assert!(left.len() <= 4 && left.len() >= 3, "{left:?}");
    assert!(left.contains(names.last().unwrap()));
}

#[test]
fn logs_keep_the_newest_distinct_days_per_unit() {
    let s = Setup::new(
        "  gc-log-distinct-days: 5\n",
        "  a:\n    command: [echo, a]\n",
    );
    let dir = s.root.join("Logs/dump/a");
    std::fs::create_dir_all(&dir).unwrap();
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    for i in 0..8 {
        let d = (first + Duration::days(i)).format("%Y%m%d").to_string();
        std::fs::write(dir.join(format!("{d}.out")), "o").unwrap();
        std::fs::write(dir.join(format!("{d}.err")), "e").unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "kept").unwrap();
    let out = s.run(&["prune"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 11, "{left:?}");
    assert!(
        left.contains(&"20260104.out".to_owned()) && !left.contains(&"20260103.err".to_owned()),
        "{left:?}"
    );
    assert!(left.contains(&"notes.txt".to_owned()));
}

#[test]
fn df_reports_space_and_check_mode_fires_below_the_threshold() {
    let s = Setup::new("  df-warning: 100\n", "  a:\n    command: [echo, a]\n");
    let out = s.run(&["df"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("Free filesystem space:")
            && text(&out.stdout).contains("Free inodes:"),
        "{}",
        text(&out.stdout)
    );
    // df-warning 100: everything is below it.
    let out = s.run(&["df", "-c"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("Free filesystem space:"));
    let s = Setup::new("  df-warning: 0\n", "  a:\n    command: [echo, a]\n");
    let out = s.run(&["df", "-c"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
}

#[test]
fn the_free_space_rule_removes_the_oldest_until_min_keep() {
    // why: 100% free can never be met, so the rule runs down to gc-min-keep
    let s = Setup::new(
        "  gc-min-free-percent: 100\n  gc-min-keep: 2\n",
        "  a:\n    command: [echo, a]\n",
    );
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    let names: Vec<SnapshotName> = (1..=5).map(|n| SnapshotName::new(day, n)).collect();
    make_snapshots(&s, &names);
    let out = s.run(&["prune", "-n", "--as-of", "2026-05-02"]);
    assert!(
        text(&out.stdout).contains("would remove 20260501-1 (free space"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(remaining(&s).len(), 5);
    let out = s.run(&["prune", "--as-of", "2026-05-02"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for n in 1..=3 {
        assert!(
            stdout.contains(&format!("removed 20260501-{n}: free space")),
            "{stdout}"
        );
    }
    assert!(
        stderr.contains("no more snapshots may be removed (gc-min-keep)"),
        "{stderr}"
    );
    let left: Vec<String> = remaining(&s).iter().map(ToString::to_string).collect();
    assert_eq!(left, ["20260501-4", "20260501-5"]);
}

#[test]
fn run_makes_room_before_its_units_write_by_bytes_too() {
    // why: a petabyte free can never be met, so the rule runs down to gc-min-keep
    let s = Setup::new(
        "  gc-min-free-bytes: 1P\n  gc-min-keep: 2\n",
        "  a:\n    command: [echo, a]\n",
    );
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    let names: Vec<SnapshotName> = (1..=4).map(|n| SnapshotName::new(day, n)).collect();
    make_snapshots(&s, &names);
    // prune reads the byte rule as it reads the percentage
    let out = s.run(&["prune", "-n", "--as-of", "2026-05-02"]);
    assert!(
        text(&out.stdout).contains("would remove 20260501-1 (free space")
            && text(&out.stdout).contains("below gc-min-free-bytes 1125899906842624"),
        "{}",
        text(&out.stdout)
    );
    let out = s.run(&["run"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for n in 1..=2 {
        assert!(
            stdout.contains(&format!(
                "removed snapshot 20260501-{n} before the run: free space"
            )),
            "{stdout}"
        );
    }
    // the removals come before the unit starts, and the run goes on to its snapshot
    let removed_at = stdout.find("removed snapshot 20260501-2").unwrap();
    let started_at = stdout.find("start dump/a").unwrap();
    assert!(removed_at < started_at, "{stdout}");
    assert!(
        stderr.contains("no more snapshots may be removed (gc-min-keep)"),
        "{stderr}"
    );
    let left: Vec<String> = remaining(&s).iter().map(ToString::to_string).collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(&left[..2], ["20260501-3", "20260501-4"]);
    // without a rule, run removes nothing
    let s = Setup::new("", "  a:\n    command: [echo, a]\n");
    make_snapshots(&s, &names);
    let out = s.run(&["run"]);
    assert!(out.status.success());
    assert!(!text(&out.stdout).contains("before the run"));
    assert_eq!(remaining(&s).len(), 5);
}

#[test]
fn a_second_prune_is_refused_while_one_runs_and_a_dry_run_is_not() {
    let s = three_snapshots_of_one_day();
    let held = crate::support::env::hold_flock(&s.root.join(".strata/prune.lock"));
    let out = s.run(&["prune", "--as-of", "2026-06-01"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("another strata prune is in progress (PID"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(remaining(&s).len(), 3, "nothing removed while refused");
    let out = s.run(&["prune", "-n", "--as-of", "2026-06-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(held);
    let out = s.run(&["prune", "--as-of", "2026-06-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(remaining(&s).len(), 1);
}
