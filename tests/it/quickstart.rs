//! The README's first command, `./quickstart/run.sh`, run on a copy of the
//! quick start (the repository's `src`, `Cargo.toml` and a one-commit git
//! history beside it) with the binary under test: the whole job end to end.

use crate::run::text;
use crate::snap_env;
use crate::support::env::{TestHome, strata_bin};

#[test]
fn the_quick_start_runs_the_whole_job_end_to_end() {
    let home = TestHome::new();
    let repo = home.join("repo");
    let q = repo.join("quickstart");
    std::fs::create_dir_all(q.join("backup-root")).unwrap();
    let src = snap_env::repo();
    for f in ["config.yaml", "run.sh"] {
        std::fs::copy(src.join("quickstart").join(f), q.join(f)).unwrap();
    }
    std::fs::copy(src.join("Cargo.toml"), repo.join("Cargo.toml")).unwrap();
    std::os::unix::fs::symlink(src.join("src"), repo.join("src")).unwrap();
    let git = |args: &[&str]| {
        let out = home
            .command("git")
            .current_dir(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "Cargo.toml"]);
    git(&["commit", "-q", "-m", "one commit"]);
    let out = home
        .command("bash")
        .arg(q.join("run.sh"))
        .env("STRATA_BIN", strata_bin())
        .env("STRATA_ALLOW_ROOT", "1")
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{all}");
    for want in [
        "done  rsync/demo-host ok",
        " taken",
        "set ",
        "is equal to the snapshot",
        "notes.txt as it was in",
        "Where things are:",
    ] {
        assert!(all.contains(want), "missing {want:?}:\n{all}");
    }
    // The second run writes only the change: notes.txt and new-file.txt (and
    // the demo directory when its mtime moved to another second, which
    // depends on how fast the script ran), never the 300 kB photo again.
    let second = all
        .lines()
        .filter(|l| l.contains("done  rsync/demo-host ok"))
        .nth(1)
        .unwrap_or_else(|| panic!("no second rsync run:\n{all}"));
    let number_before = |word: &str| -> u64 {
        let at = second
            .find(word)
            .unwrap_or_else(|| panic!("{word:?} in {second:?}"));
        second[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.trim_start_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("a number before {word:?} in {second:?}"))
    };
    let changed = number_before(" changed");
    assert!((2..=3).contains(&changed), "{second}");
    assert_eq!(number_before(" deleted"), 0, "{second}");
    assert!(number_before(" bytes transferred") < 10_000, "{second}");
    assert_eq!(
        std::fs::read_to_string(q.join("restored/notes.txt")).unwrap(),
        "first line\n",
        "the older snapshot's notes.txt"
    );
    // Run again: it goes on (two more snapshots, four in all).
    let out = home
        .command("bash")
        .arg(q.join("run.sh"))
        .env("STRATA_BIN", strata_bin())
        .env("STRATA_ALLOW_ROOT", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snaps = std::fs::read_dir(q.join("backup-root/.snapshots"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(snaps, 4);
}
