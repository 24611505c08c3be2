//! A Deltaic installation switching to strata: Deltaic's crontab runs as
//! is, Deltaic's lock is honoured both ways, and an unmounted backup volume
//! is refused as Deltaic refused it.

use crate::run::{Setup, text};
use crate::support::env::{TestHome, strata};
use nix::fcntl::{Flock, FlockArg};
use std::path::Path;

/// The crontab Deltaic's `mkconf crontab` writes (its template, with `prog`
/// the absolute path of the `deltaic` command and the default email).
fn deltaic_crontab(prog: &Path) -> String {
    let p = prog.display();
    format!(
        "MAILTO = root\n\n0 23 * * * {p} prune\n55 23 * * * {p} df -c\n0 0 * * * {p} run >/dev/null && echo \"OK\"\n\n\
         # To run offsite archives, enable these jobs and configure their schedule\n\
         #0 0 1 1,4,7,10 * {p} archive run\n#0 4 * * * {p} archive prune\n#0 3 30 6,12 * {p} archive resync\n"
    )
}

#[test]
fn deltaics_crontab_runs_unchanged_against_a_deltaic_conf() {
    let home = TestHome::new();
    let root = home.join("backup");
    std::fs::create_dir(&root).unwrap();
    let store = home.join("offsite");
    let spool = home.join("spool");
    std::fs::create_dir_all(home.join(".config")).unwrap();
    // Deltaic's config path, found by default.
    std::fs::write(
        home.join(".config/deltaic.conf"),
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  archive-spool: {}\n  archivers:\n    default:\n      archiver: local\n      local-path: {}\ndump:\n  db:\n    command: [echo, data]\n",
            root.display(),
            spool.display(),
            store.display()
        ),
    )
    .unwrap();
    // `deltaic` on the crontab's path is strata.
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let prog = bin.join("deltaic");
    std::os::unix::fs::symlink(crate::support::env::strata_bin(), &prog).unwrap();
    let crontab = deltaic_crontab(&prog);
    let mut ran = 0;
    for line in crontab.lines() {
        // Every job, the commented archive jobs included.
        let job = line.trim_start_matches('#');
        let fields: Vec<&str> = job.splitn(6, ' ').collect();
        if fields.len() < 6 || !fields[5].starts_with(&prog.display().to_string()) {
            continue;
        }
        let out = home
            .command("sh")
            .args(["-c", fields[5]])
            .env("STRATA_ALLOW_ROOT", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{}` failed: {}{}",
            fields[5],
            text(&out.stdout),
            text(&out.stderr)
        );
        ran += 1;
    }
    assert_eq!(ran, 6, "{crontab}");
    assert_eq!(
        std::fs::read(root.join("dump/db/db")).unwrap(),
        b"data\n",
        "the run job backed the unit up"
    );
}

#[test]
fn an_unmounted_root_is_refused_for_lvm_thin_with_how_to_mount_it() {
    let home = TestHome::new();
    let root = home.join("backup");
    std::fs::create_dir(&root).unwrap();
    let cfg = home.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "settings:\n  root: {}\n  backup-lv: backupvg/backup\ndump:\n  db:\n    command: [echo, x]\n",
            root.display()
        ),
    )
    .unwrap();
    for args in [&["run"][..], &["dump", "backup", "db"], &["prune"]] {
        let out = strata(&home)
            .arg("-c")
            .arg(&cfg)
            .arg("--allow-root")
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{}:2: settings.root:", cfg.display()))
                && stderr.contains("is not a mount point")
                && stderr.contains("mount /dev/backupvg/backup"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        std::fs::read_dir(&root).unwrap().next().is_none(),
        "nothing was written into the unmounted root"
    );
    // config check judges the file, not the machine: still valid.
    let out = strata(&home)
        .arg("-c")
        .arg(&cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn hold(path: &Path) -> Flock<std::fs::File> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    Flock::lock(f, FlockArg::LockExclusiveNonblock).unwrap_or_else(|(_, e)| panic!("{e}"))
}

#[test]
fn deltaics_lock_is_honoured_both_ways() {
    let s = Setup::new("", "  slow:\n    command: [sh, -c, 'sleep 2; echo x']\n");
    let deltaic_lock = s.root.join(".lock/backup");
    // Deltaic is running: strata does not start.
    let held = hold(&deltaic_lock);
    let out = s.run(&["run", "--no-snapshot"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Deltaic's lock") && text(&out.stderr).contains(".lock/backup"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.root.join("dump/slow").exists());
    drop(held);
    // strata is running: Deltaic's lock is taken.
    let mut run = s
        .cmd()
        .args(["run", "--no-snapshot"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let mut seen_held = false;
    while t.elapsed() < std::time::Duration::from_secs(10) {
        if s.root.join("dump/slow").exists() {
            let f = std::fs::File::open(&deltaic_lock).unwrap();
            seen_held = Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(run.wait().unwrap().success());
    assert!(seen_held, "a strata run holds Deltaic's lock");
}
