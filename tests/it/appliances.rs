//! Two appliances sharing one backup root on a real CephFS: two ceph-fuse
//! mounts of the same directory, each with its own path-restricted `rws`
//! key, each appliance's strata run by its own unprivileged account (the
//! same uid, as CephFS permissions require; docs/scale-out.md).
//!
//! - a shared run: each appliance backs up its own units at the same time,
//!   the run ends in exactly one snapshot holding every unit, no unit is
//!   written by two appliances at once (each unit's command counts its
//!   concurrent writers with a flock of its own), `status` names each
//!   unit's appliance and each appliance's last run;
//! - one appliance killed (SIGKILL, then its mount removed) in the middle of
//!   its share: the other takes its units over after `appliance-lease`, the
//!   run still ends in one snapshot with every unit complete, never two
//!   writers at once;
//! - `archive run` on both at once: every unit archived exactly once, the
//!   set completed once, `archive drill` equal.

use crate::snap_env::{clean, strata_bin, text};
use crate::support::cephfs::{Cephfs, CephfsMount, reachable_tempdir};
use crate::support::env::{self, expose_bin};
use crate::support::sshd::Sshd;
use crate::support::system_user::SystemUser;
use crate::support::tree_builder::{Feature, build_hostile_tree};
use crate::support::treecmp::{CompareOptions, assert_trees_equal};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What each unit's command does: hold a flock on `<counts>/<unit>.active`
/// for its whole life (a second writer of the unit at the same time cannot
/// get it, and says so in `<unit>.violations`), log one line per start in
/// `<unit>.runs`, sleep, then print the unit's data.
const WRITER: &str = r#"#!/bin/sh
set -e
d="$1"; u="$2"; secs="$3"
exec 9>>"$d/$u.active"
if ! flock -n 9; then echo "two writers of $u at once" >> "$d/$u.violations"; fi
echo "start $$" >> "$d/$u.runs"
sleep "$secs"
echo "data of $u"
"#;

struct Appliance {
    mount: Option<CephfsMount>,
    user: SystemUser,
    config: PathBuf,
    home: PathBuf,
}

/// One CephFS directory mounted twice, two appliances, four dump units.
struct Pair {
    a: Appliance,
    b: Appliance,
    fs: Arc<Cephfs>,
    dir: tempfile::TempDir,
    fs_path: String,
}

const UNITS: [(&str, &str); 4] = [
    ("a1", "alpha"),
    ("a2", "alpha"),
    ("b1", "beta"),
    ("b2", "beta"),
];

impl Pair {
    /// `secs`: how long each unit's command sleeps (in the order of
    /// [`UNITS`]); `extra`: more settings.
    fn setup(tag: &str, secs: [u32; 4], extra: &str) -> Option<Pair> {
        Pair::setup_with(tag, secs, extra, "")
    }

    /// `more`: further top-level sections (units alpha owns: `rsync/*`).
    fn setup_with(tag: &str, secs: [u32; 4], extra: &str, more: &str) -> Option<Pair> {
        if !env::require("root (ceph-fuse mounts, useradd)", env::is_root())
            || !env::require("flock (util-linux)", env::have_program("flock"))
        {
            return None;
        }
        let fs = match Cephfs::shared() {
            Ok(fs) => fs,
            Err(e) => {
                env::require(&format!("a CephFS on the test Ceph ({e})"), false);
                return None;
            }
        };
        let user_a = SystemUser::create(&format!("{tag}a"))?;
        let user_b = SystemUser::alias(&user_a, &format!("{tag}b"));
        let dir = reachable_tempdir("strata-appl-it.");
        let name = format!("t{}-{tag}", std::process::id());
        let fs_path = fs.owned_dir(&name, user_a.uid, user_a.gid);
        fs::create_dir(dir.path().join("bin")).unwrap();
        expose_bin(&strata_bin(), &dir.path().join("bin"));
        let counts = dir.path().join("counts");
        fs::create_dir(&counts).unwrap();
        fs::set_permissions(&counts, fs::Permissions::from_mode(0o777)).unwrap();
        let writer = dir.path().join("writer.sh");
        fs::write(&writer, WRITER).unwrap();
        fs::set_permissions(&writer, fs::Permissions::from_mode(0o755)).unwrap();
        let mut units = String::from("dump:\n");
        for ((u, _), secs) in UNITS.iter().zip(secs) {
            let _ = write!(
                units,
                "  {u}:\n    command: [{}, {}, {u}, '{secs}']\n    file: {u}.txt\n",
                writer.display(),
                counts.display()
            );
        }
        let make = |id: &'static str, user: SystemUser| -> Appliance {
            let keyring = fs.authorize(&format!("{name}-{id}"), &fs_path, "rws", dir.path());
            let mnt = dir.path().join(format!("mnt-{id}"));
            let mount = fs.mount(&mnt, &fs_path, &format!("{name}-{id}"), &keyring);
            let home = dir.path().join(format!("home-{id}"));
            fs::create_dir(&home).unwrap();
            nix::unistd::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
            let spool = dir.path().join(format!("spool-{id}"));
            fs::create_dir(&spool).unwrap();
            nix::unistd::chown(&spool, Some(user.uid), Some(user.gid)).unwrap();
            let config = dir.path().join(format!("{id}.yaml"));
            fs::write(
                &config,
                format!(
                    "settings:\n  root: {}\n  snapshot-store: cephfs\n  gc-policy: hanoi\n  dump-workers: 1\n  archive-spool: {}\n{extra}{units}{more}appliances:\n  alpha: ['dump/a*', 'rsync/*']\n  beta: ['dump/b*']\n",
                    mnt.display(),
                    spool.display()
                ),
            )
            .unwrap();
            Appliance {
                mount: Some(mount),
                user,
                config,
                home,
            }
        };
        let a = make("alpha", user_a);
        let b = make("beta", user_b);
        Some(Pair {
            a,
            b,
            fs,
            dir,
            fs_path,
        })
    }

    fn counts(&self) -> PathBuf {
        self.dir.path().join("counts")
    }

    /// The shared root, as appliance `a` sees it.
    fn root(&self) -> PathBuf {
        self.a.mount.as_ref().unwrap().path().to_owned()
    }

    fn snapshots(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root().join(".snap"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('_'))
            .collect();
        v.sort();
        v
    }

    fn runs_of(&self, unit: &str) -> usize {
        fs::read_to_string(self.counts().join(format!("{unit}.runs")))
            .map_or(0, |s| s.lines().count())
    }

    #[track_caller]
    fn assert_never_two_writers(&self) {
        for (u, _) in UNITS {
            let v = self.counts().join(format!("{u}.violations"));
            assert!(
                !v.exists(),
                "{}",
                fs::read_to_string(&v).unwrap_or_default()
            );
        }
    }

    /// Every unit's data in snapshot `name`, read through appliance `a`.
    #[track_caller]
    fn assert_snapshot_holds_every_unit(&self, name: &str) {
        for (u, _) in UNITS {
            let p = self
                .root()
                .join(".snap")
                .join(name)
                .join("dump")
                .join(u)
                .join(format!("{u}.txt"));
            assert_eq!(
                fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
                format!("data of {u}\n")
            );
        }
    }
}

impl Appliance {
    fn cmd(&self, dir: &Path, args: &[&str]) -> std::process::Command {
        let mut c = clean(dir.join("bin/strata"), &self.home);
        c.arg("-c")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.home)
            .uid(self.user.uid.as_raw())
            .gid(self.user.gid.as_raw());
        c
    }

    fn spawn(&self, dir: &Path, args: &[&str]) -> Child {
        self.cmd(dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn output(&self, dir: &Path, args: &[&str]) -> Output {
        self.cmd(dir, args).output().unwrap()
    }
}

#[track_caller]
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.a.mount.take();
        self.b.mount.take();
        self.fs.remove_dir(&self.fs_path, &[]);
    }
}

#[test]
fn appliances_share_a_run_on_cephfs_and_end_it_in_one_snapshot() {
    let Some(p) = Pair::setup("apr", [2; 4], "") else {
        return;
    };
    let d = p.dir.path();
    let t = Instant::now();
    let a = p.a.spawn(d, &["run", "--appliance", "alpha"]);
    let b = p.b.spawn(d, &["run", "--appliance", "beta"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let took = t.elapsed();
    let (out_a, out_b) = (ok(&a, "alpha's run"), ok(&b, "beta's run"));
    // Each backed up its own two units, side by side: 2 x 2 s each, not 8 s.
    assert!(took < Duration::from_secs(30), "{took:?}");
    for (u, owner) in UNITS {
        assert_eq!(p.runs_of(u), 1, "{u} backed up once");
        let out = if owner == "alpha" { &out_a } else { &out_b };
        assert!(
            out.contains(&format!("start dump/{u}")),
            "{owner} ran {u}:\n{out}"
        );
    }
    p.assert_never_two_writers();
    let snaps = p.snapshots();
    assert_eq!(
        snaps.len(),
        1,
        "one snapshot for the run: {snaps:?}\n{out_a}\n{out_b}"
    );
    let both = format!("{out_a}{out_b}");
    assert_eq!(both.matches(" taken (run ").count(), 1, "{both}");
    assert!(both.contains("is taken by appliance "), "{both}");
    p.assert_snapshot_holds_every_unit(&snaps[0]);

    // status: each unit's appliance, each appliance's last run.
    let st = ok(&p.b.output(d, &["status"]), "status");
    for (u, owner) in UNITS {
        let line = st
            .lines()
            .find(|l| l.starts_with(&format!("dump/{u} ")))
            .unwrap_or_else(|| panic!("{u} in:\n{st}"));
        assert!(line.contains(owner), "{line}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(&p.a.output(d, &["--json", "status"]), "status --json")).unwrap();
    let appl = json["appliances"].as_array().unwrap();
    assert_eq!(appl.len(), 2, "{json}");
    let snapped: Vec<&str> = appl
        .iter()
        .filter_map(|a| a["last_run"]["snapshot"].as_str())
        .collect();
    assert_eq!(snapped, [snaps[0].as_str()], "{json}");
    for a in appl {
        assert_eq!(a["last_run"]["units"], 2, "{json}");
        assert_eq!(a["last_run"]["failed"], 0, "{json}");
    }

    // A second shared run: another snapshot, never the same name.
    let a = p.a.spawn(d, &["run", "--appliance", "alpha"]);
    let b = p.b.spawn(d, &["run", "--appliance", "beta"]);
    ok(&a.wait_with_output().unwrap(), "alpha's 2nd run");
    ok(&b.wait_with_output().unwrap(), "beta's 2nd run");
    let again = p.snapshots();
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.contains(&snaps[0]));
    p.assert_never_two_writers();

    // Who is this appliance: the config must name it.
    let out = p.a.output(d, &["run", "--appliance", "gamma"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "this is appliance `gamma`, which the config does not name (it names alpha, beta)"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_rsync_unit_backed_up_by_one_appliance_is_restored_attribute_for_attribute() {
    let Some(sshd) = Sshd::start() else { return };
    let src_dir = tempfile::Builder::new()
        .prefix("strata-appl-src.")
        .tempdir()
        .unwrap();
    let src = src_dir.path().join("tree");
    let manifest = build_hostile_tree(&src, 2_000);
    for f in [
        Feature::Ownership,
        Feature::Acls,
        Feature::Xattrs,
        Feature::Holes,
    ] {
        let what = format!(
            "the hostile tree's {f:?} ({})",
            manifest.skipped_summary().trim()
        );
        if !env::require(&what, manifest.built(f)) {
            return;
        }
    }
    let rsync = format!(
        "rsync:\n  '{}':\n    alias: octopus\n    mounts: ['{}']\n    ssh-port: {}\n    ssh-identity: KEYFILE\n",
        crate::support::sshd::HOST,
        src.display(),
        sshd.port(),
    );
    let Some(p) = Pair::setup_with("aps", [1; 4], "", &rsync) else {
        return;
    };
    // why: ssh wants a key only its user can read; both appliances share the uid
    let key = sshd.identity_file_for(p.a.user.uid, p.a.user.gid);
    for app in [&p.a, &p.b] {
        let c = fs::read_to_string(&app.config)
            .unwrap()
            .replace("KEYFILE", &format!("'{}'", key.display()));
        fs::write(&app.config, c).unwrap();
    }
    let d = p.dir.path();
    let a = p.a.spawn(d, &["run", "--appliance", "alpha"]);
    let b = p.b.spawn(d, &["run", "--appliance", "beta"]);
    let out_a = ok(&a.wait_with_output().unwrap(), "alpha's run");
    ok(&b.wait_with_output().unwrap(), "beta's run");
    assert!(out_a.contains("done  rsync/octopus ok"), "{out_a}");
    let snaps = p.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    p.assert_snapshot_holds_every_unit(&snaps[0]);
    let stored = p
        .root()
        .join(".snap")
        .join(&snaps[0])
        .join("rsync/octopus")
        .join(src.strip_prefix("/").unwrap());
    // Restore as root "to another host" (the same sshd, a fresh directory).
    let dest = src_dir.path().join("restored");
    fs::create_dir(&dest).unwrap();
    let admin = crate::support::env::TestHome::new();
    let mut restore = crate::support::env::strata(&admin)
        .arg("-c")
        .arg(&p.a.config)
        .args(["rsync", "restore"])
        .arg(&stored)
        .arg(crate::support::sshd::HOST)
        .arg(&dest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // why: unsettled caps made every lookup in the snapshot wait 5 s (hours
    // for this tree); settled, the restore takes seconds
    let t = Instant::now();
    while restore.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_mins(2) {
            let _ = restore.kill();
            panic!(
                "the restore from the snapshot took over 2 minutes: reading the snapshot stalls"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&restore.wait_with_output().unwrap(), "rsync restore");
    assert_trees_equal(&src, &dest, &CompareOptions::default());
}

#[test]
fn a_killed_appliances_units_are_taken_over_after_the_lease() {
    let Some(mut p) = Pair::setup("apk", [3; 4], "  appliance-lease: 12s\n") else {
        return;
    };
    let d = p.dir.path().to_owned();
    let mut a = p.a.spawn(&d, &["run", "--appliance", "alpha"]);
    let b = p.b.spawn(&d, &["run", "--appliance", "beta"]);
    // Kill alpha in the middle of its first unit, then take its mount away.
    let t = Instant::now();
    while p.runs_of("a1") == 0 {
        assert!(
            t.elapsed() < Duration::from_mins(1),
            "alpha never started a1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(a.id()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = a.wait();
    // why: its unit's command dies with it (PR_SET_PDEATHSIG); give it a moment
    std::thread::sleep(Duration::from_secs(1));
    p.a.mount.take();

    let b = b.wait_with_output().unwrap();
    let out_b = ok(&b, "beta's run");
    assert!(out_b.contains("took over"), "{out_b}");
    for u in ["dump/a1", "dump/a2"] {
        assert!(
            out_b
                .lines()
                .any(|l| l.contains("took over") && l.contains(u)),
            "{u}: {out_b}"
        );
    }
    p.assert_never_two_writers();
    assert!(p.runs_of("a2") == 1, "a2 backed up once, by beta");
    assert!(p.runs_of("a1") == 2, "a1: killed once, then beta's");
    // The snapshot, read through beta's mount (alpha's is gone).
    let root = p.b.mount.as_ref().unwrap().path().to_owned();
    let snaps: Vec<String> = fs::read_dir(root.join(".snap"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('_'))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}\n{out_b}");
    for (u, _) in UNITS {
        let f = root
            .join(".snap")
            .join(&snaps[0])
            .join(format!("dump/{u}/{u}.txt"));
        assert_eq!(fs::read_to_string(&f).unwrap(), format!("data of {u}\n"));
    }
    let st = ok(&p.b.output(&d, &["status"]), "status");
    let a1 = st.lines().find(|l| l.starts_with("dump/a1 ")).unwrap();
    assert!(a1.contains("alpha (last by beta)"), "{st}");
}

#[test]
fn after_the_lease_a_live_appliance_keeps_the_unit_it_is_backing_up() {
    // alpha is slow (a1 and a2 take 10 s each), beta fast; after beta's
    // 4-second lease it takes over only what alpha has not started.
    let Some(p) = Pair::setup("apl", [10, 10, 0, 0], "  appliance-lease: 4s\n") else {
        return;
    };
    let d = p.dir.path();
    let a = p.a.spawn(d, &["run", "--appliance", "alpha"]);
    let b = p.b.spawn(d, &["run", "--appliance", "beta"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (out_a, out_b) = (ok(&a, "alpha's run"), ok(&b, "beta's run"));
    p.assert_never_two_writers();
    assert_eq!(p.runs_of("a1"), 1, "a1 once, by alpha:\n{out_a}\n{out_b}");
    assert_eq!(p.runs_of("a2"), 1, "a2 once, by beta:\n{out_a}\n{out_b}");
    assert!(
        out_a.contains("start dump/a1") && !out_a.contains("start dump/a2"),
        "{out_a}"
    );
    assert!(
        out_b.contains("took over 1 unit(s) not done within the lease (4s): dump/a2"),
        "{out_b}"
    );
    let snaps = p.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    p.assert_snapshot_holds_every_unit(&snaps[0]);
}

#[test]
fn archive_run_on_both_appliances_archives_each_unit_once() {
    let profile = "  archivers:\n    shared:\n      archiver: local\n      local-path: ARCHIVES\n      compression: none\n      workers: 1\n";
    let Some(p) = Pair::setup("apa", [0; 4], "") else {
        return;
    };
    let d = p.dir.path();
    let archives = d.join("archives");
    fs::create_dir(&archives).unwrap();
    nix::unistd::chown(&archives, Some(p.a.user.uid), Some(p.a.user.gid)).unwrap();
    for app in [&p.a, &p.b] {
        let c = fs::read_to_string(&app.config).unwrap().replace(
            "  archive-spool:",
            &format!(
                "{}  archive-spool:",
                profile.replace("ARCHIVES", &archives.display().to_string())
            ),
        );
        fs::write(&app.config, c).unwrap();
    }
    let a = p.a.spawn(d, &["run", "--appliance", "alpha"]);
    let b = p.b.spawn(d, &["run", "--appliance", "beta"]);
    ok(&a.wait_with_output().unwrap(), "alpha's run");
    ok(&b.wait_with_output().unwrap(), "beta's run");
    let snaps = p.snapshots();
    assert_eq!(snaps.len(), 1);

    let args = |me: &'static str| ["archive", "-p", "shared", "run", "--appliance", me];
    let a = p.a.spawn(d, &args("alpha"));
    let b = p.b.spawn(d, &args("beta"));
    let (out_a, out_b) = (
        ok(&a.wait_with_output().unwrap(), "alpha's archive run"),
        ok(&b.wait_with_output().unwrap(), "beta's archive run"),
    );
    let both = format!("{out_a}{out_b}");
    for (u, _) in UNITS {
        assert_eq!(
            both.matches(&format!("start dump/{u}")).count(),
            1,
            "{u} archived exactly once:\n{both}"
        );
    }
    let completes = both.matches(&format!("set {} complete:", snaps[0])).count();
    assert_eq!(completes, 1, "the set completed once:\n{both}");
    let ls = ok(
        &p.a.output(d, &["archive", "-p", "shared", "ls", "-s"]),
        "ls -s",
    );
    assert!(ls.contains(&snaps[0]), "{ls}");
    let drill = p.b.output(d, &["archive", "-p", "shared", "drill"]);
    ok(&drill, "drill");
}
