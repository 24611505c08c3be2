//! Faults: SIGKILL of `archive run`'s units mid-upload, a full spool, the S3 server
//! stopped mid-retrieve; and the retrieval rate limit shared by two
//! concurrent retrieves.

use super::fixtures::{World, entries, text};
use crate::support::env;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn random_unit(name: &str, bytes: u64) -> String {
    format!("  {name}:\n    command: [head, -c, '{bytes}', /dev/urandom]\n    file: data\n")
}

fn has_tmp(dir: &Path) -> bool {
    entries(dir).iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
    })
}

#[test]
fn sigkill_mid_upload_then_run_r_finishes_the_set_without_duplicates() {
    let units = format!(
        "{}{}",
        random_unit("big", 96 << 20),
        random_unit("small", 1 << 20)
    );
    let Some(w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    let config = w.config("plain", false, "");
    let set_dir = w.store.join("plain/none").join(&w.snapshot);
    // why: a fault point, not a kill from outside timed by polling: a spool on
    // the store's filesystem is linked into place, too fast to catch
    let out = w
        .cmd(&config)
        .args(["archive", "-p", "local-none", "run"])
        .env(strata::fault::FAULT_ENV, "archive-upload")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("done  dump/big FAILED: killed by signal 9"),
        "{said}"
    );
    assert!(
        has_tmp(&set_dir),
        "a killed upload leaves its temporary file"
    );
    let sets = w.ok(&config, &["archive", "-p", "local-none", "ls", "-s"]);
    assert!(!sets.contains("  complete"), "{sets}");

    // another run holding the profile's lock: cron's continuation is quiet, a person is told
    {
        let _held = env::hold_flock(&w.spool.join(".archive-run-local-none/run.lock"));
        let out = w
            .cmd(&config)
            .args([
                "-q",
                "archive",
                "-p",
                "local-none",
                "run",
                "-r",
                "--if-incomplete",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{:?} {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        let out = w
            .cmd(&config)
            .args(["archive", "-p", "local-none", "run", "-r"])
            .output()
            .unwrap();
        assert!(
            !out.status.success()
                && text(&out.stderr).contains(
                    "strata: another `archive run` of profile local-none is in progress (PID"
                ),
            "{}",
            text(&out.stderr)
        );
    }

    let out = w.ok(
        &config,
        &[
            "archive",
            "-p",
            "local-none",
            "run",
            "-r",
            "--if-incomplete",
        ],
    );
    assert!(out.contains("complete"), "{out}");
    let listed = w.ok(&config, &["archive", "-p", "local-none", "ls"]);
    for unit in ["dump/big", "dump/small"] {
        assert_eq!(listed.matches(unit).count(), 1, "{listed}");
    }
    let resync = w.ok(&config, &["archive", "-p", "local-none", "resync"]);
    let archives: Vec<PathBuf> = entries(&set_dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".archive"))
        .collect();
    assert_eq!(archives.len(), 2, "{archives:?} (resync: {resync})");
    assert!(!has_tmp(&set_dir), "resync removes the interrupted upload");
    let spool_left: Vec<_> = entries(&w.spool)
        .into_iter()
        .filter(|p| p.to_string_lossy().starts_with("archive-"))
        .collect();
    assert!(
        spool_left.is_empty(),
        "the killed run's spool files are gone: {spool_left:?}"
    );
}

/// A tmpfs mounted for the life of the value.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount(&self.0);
    }
}

#[test]
fn root_a_full_spool_fails_cleanly_leaves_it_empty_and_the_set_incomplete() {
    if !env::require("root (to mount a small tmpfs)", env::is_root()) {
        return;
    }
    let Some(w) = World::new(&random_unit("big", 4 << 20), false, false, |_| {}) else {
        return;
    };
    std::fs::create_dir_all(&w.spool).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &w.spool,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    let _guard = Tmpfs(w.spool.clone());
    let config = w.config("plain", false, "");
    let out = w.strata(&config, &["archive", "-p", "local-none", "run"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("dump/big"), "{err}");
    let log = std::fs::read_dir(w.root.join("Logs/Archive/local-none/dump/big"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(log.contains("No space left on device"), "{log}");
    let left: Vec<_> = entries(&w.spool)
        .into_iter()
        .filter(|p| !p.to_string_lossy().starts_with(".archive-run"))
        .collect();
    assert!(left.is_empty(), "spool not empty: {left:?}");
    let sets = w.ok(&config, &["archive", "-p", "local-none", "ls", "-s"]);
    assert!(!sets.contains("  complete"), "{sets}");
}

#[test]
fn s3_server_stopped_mid_retrieve_then_retrieve_resumes() {
    let Some(w) = World::new(&random_unit("big", 24 << 20), false, true, |_| {}) else {
        return;
    };
    let config = w.config("plain", false, "");
    let t0 = Instant::now();
    w.ok(&config, &["archive", "-p", "s3-none", "run"]);
    eprintln!("uploaded at {:?}", t0.elapsed());
    let dest = w.home.join("ret");
    let part = dest.join(format!("{}:dump-big.part", w.snapshot));
    let child = w
        .cmd(&config)
        .env("STRATA_RETRIEVE_BYTES_PER_SEC", "8388608")
        .env("STRATA_S3_READ_TIMEOUT_SECS", "2")
        .args([
            "archive",
            "-p",
            "s3-none",
            "retrieve",
            &w.snapshot,
            dest.to_str().unwrap(),
            "dump/big",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let moto = w.moto.as_ref().unwrap();
    let t = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the retrieve did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("stopping the server at {:?}", t0.elapsed());
    moto.signal(Signal::SIGSTOP);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "retrieve failed at {:?}: {}",
        t0.elapsed(),
        text(&out.stderr)
    );
    moto.signal(Signal::SIGCONT);
    assert!(
        !out.status.success(),
        "the retrieve cannot finish with the server stopped"
    );
    let partial = std::fs::metadata(&part).unwrap().len();
    assert!(
        partial > 0 && partial < 24 << 20,
        "partial file of {partial} bytes"
    );
    let again = w
        .cmd(&config)
        .env("STRATA_RETRIEVE_BYTES_PER_SEC", "33554432")
        .args([
            "archive",
            "-p",
            "s3-none",
            "retrieve",
            &w.snapshot,
            dest.to_str().unwrap(),
            "dump/big",
        ])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again.stderr));
    let got = text(&again.stdout);
    let file = PathBuf::from(got.trim());
    eprintln!("resumed at {:?}", t0.elapsed());
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    assert!(!part.exists());
    let out = w.home.join("out");
    w.ok(
        &config,
        &[
            "archive",
            "unpack",
            out.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(out.join("dump/big/data")).unwrap(),
        std::fs::read(w.snapshot_unit("dump/big").join("data")).unwrap()
    );
}

#[test]
fn two_concurrent_retrieves_share_the_rate_limit() {
    let units = format!("{}{}", random_unit("a", 2 << 20), random_unit("b", 2 << 20));
    let Some(w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    let config = w.config("plain", false, "");
    w.ok(&config, &["archive", "-p", "local-none", "run"]);
    let sizes: u64 = ["a", "b"]
        .iter()
        .map(|u| {
            std::fs::metadata(
                w.store
                    .join("plain/none")
                    .join(&w.snapshot)
                    .join(format!("dump%2F{u}.archive")),
            )
            .unwrap()
            .len()
        })
        .sum();
    let rate = 1u64 << 20;
    let t = Instant::now();
    let children: Vec<_> = ["dump/a", "dump/b"]
        .iter()
        .enumerate()
        .map(|(i, unit)| {
            w.cmd(&config)
                .env("STRATA_RETRIEVE_BYTES_PER_SEC", rate.to_string())
                .args(["archive", "-p", "local-none", "retrieve", &w.snapshot])
                .arg(w.home.join(format!("ret{i}")))
                .arg(unit)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let secs = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let achieved = sizes as f64 / secs;
    #[allow(clippy::cast_precision_loss)]
    let limit = rate as f64;
    assert!(
        achieved <= limit * 1.1,
        "{achieved:.0} B/s together, limit {limit} B/s"
    );
    assert!(
        achieved >= limit * 0.6,
        "{achieved:.0} B/s together is far below the limit {limit} B/s"
    );
}
