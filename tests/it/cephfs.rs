//! The cephfs store for real: the backup root is a directory of a CephFS
//! (`support::cephfs`, on the shared test Ceph) mounted with ceph-fuse and a
//! key restricted to that directory with `rws`, written by a throwaway
//! unprivileged user. No sudo, no helper.
//!
//! - run (a dump unit) -> a snapshot in `.snap` and in `ls`, holding the
//!   data; mount says where to read it; prune removes by rmdir; df is
//!   bounded by the root's quota; mkconf prints the `ceph fs authorize` line.
//! - a run whose snapshot would be the 101st of the directory fails with
//!   the clear EMLINK error; prune brings the count under the limit.
//! - two years of daily snapshots (mkdir, as a run would) with a weekly
//!   `prune --as-of` never exceed the MDS's limit.

use crate::snap_env::{clean, strata_bin, text};
use crate::support::cephfs::{Cephfs, CephfsMount, reachable_tempdir};
use crate::support::env::{self, expose_bin};
use crate::support::system_user::SystemUser;
use chrono::{Days, NaiveDate};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

/// One backup root on CephFS, its user, its key and mount.
struct Rig {
    mount: Option<CephfsMount>,
    fs: Arc<Cephfs>,
    user: SystemUser,
    dir: tempfile::TempDir,
    /// The directory in the file system, `/<name>`.
    fs_path: String,
    /// The backup root's path under the mount ("" = the mount itself).
    sub: &'static str,
}

impl Rig {
    /// `None` (after a loud skip) when a prerequisite is missing.
    fn setup(tag: &str, sub: &'static str, extra_settings: &str) -> Option<Rig> {
        if !env::require("root (ceph-fuse mounts, useradd)", env::is_root()) {
            return None;
        }
        let fs = match Cephfs::shared() {
            Ok(fs) => fs,
            Err(e) => {
                env::require(&format!("a CephFS on the test Ceph ({e})"), false);
                return None;
            }
        };
        let user = SystemUser::create(tag)?;
        let dir = reachable_tempdir("strata-cephfs-it.");
        let name = format!("t{}-{tag}", std::process::id());
        let fs_path = fs.owned_dir(&name, user.uid, user.gid);
        let keyring = fs.authorize(&name, &fs_path, "rws", dir.path());
        let mount = fs.mount(&dir.path().join("root"), &fs_path, &name, &keyring);
        fs::create_dir(dir.path().join("home")).unwrap();
        nix::unistd::chown(&dir.path().join("home"), Some(user.uid), Some(user.gid)).unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        expose_bin(&strata_bin(), &dir.path().join("bin"));
        let rig = Rig {
            mount: Some(mount),
            fs,
            user,
            dir,
            fs_path,
            sub,
        };
        if !sub.is_empty() {
            fs::create_dir(rig.root()).unwrap();
            nix::unistd::chown(&rig.root(), Some(rig.user.uid), Some(rig.user.gid)).unwrap();
        }
        fs::write(rig.source(), "v1\n").unwrap();
        fs::set_permissions(rig.source(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(
            rig.config(),
            format!(
                "settings:\n  root: {}\n  snapshot-store: cephfs\n{extra_settings}dump:\n  greeting:\n    command: [cat, {}]\n    file: greeting.txt\n",
                rig.root().display(),
                rig.source().display()
            ),
        )
        .unwrap();
        Some(rig)
    }

    fn mount_path(&self) -> PathBuf {
        self.mount.as_ref().unwrap().path().to_owned()
    }
    fn root(&self) -> PathBuf {
        self.mount_path().join(self.sub)
    }
    fn snap(&self) -> PathBuf {
        self.root().join(".snap")
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }
    fn source(&self) -> PathBuf {
        self.dir.path().join("greeting.txt")
    }

    /// `.snap`'s listing, sorted (what strata judges existence by).
    fn listed(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.snap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// `strata -c CONFIG ARGS` as the backup user.
    fn strata(&self, args: &[&str]) -> Output {
        clean(self.dir.path().join("bin/strata"), &self.home())
            .arg("-c")
            .arg(self.config())
            .args(args)
            .current_dir(self.home())
            .uid(self.user.uid.as_raw())
            .gid(self.user.gid.as_raw())
            .output()
            .unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        assert!(
            out.status.success(),
            "strata {args:?}: {}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `mkdir .snap/NAME` as the backup user (what a run's snapshot does).
    fn mkdir_snap(&self, name: &str) -> std::io::Result<()> {
        self.mkdir_as_user(&self.snap().join(name))
    }

    fn mkdir_as_user(&self, path: &Path) -> std::io::Result<()> {
        let out = clean("mkdir", &self.home())
            .arg(path)
            .uid(self.user.uid.as_raw())
            .gid(self.user.gid.as_raw())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(text(&out.stderr)))
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // why: unmount before the directory's snapshots go; the admin mount removes them
        self.mount.take();
        self.fs.remove_dir(&self.fs_path, &[self.sub]);
    }
}

fn day_name(d: NaiveDate) -> String {
    format!("{}-1", d.format("%Y%m%d"))
}

#[test]
fn cephfs_run_snapshots_in_dot_snap_ls_mount_prune_df_mkconf() {
    let Some(rig) = Rig::setup("cfa", "data", "") else {
        return;
    };
    let out = rig.ok(&["run"]);
    let first = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("snapshot ")
                .and_then(|l| l.strip_suffix(" taken"))
        })
        .unwrap_or_else(|| panic!("no snapshot line in: {out}"))
        .to_owned();
    assert_eq!(rig.listed(), std::slice::from_ref(&first));
    fs::write(rig.source(), "v2\n").unwrap();
    rig.ok(&["run"]);
    let listed = rig.listed();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let second = listed[1].clone();
    assert_eq!(rig.ok(&["ls"]), format!("{first}\n{second}\n"));

    // Each snapshot holds the data of its time, read-only.
    let stored = |n: &str| {
        fs::read_to_string(rig.snap().join(n).join("dump/greeting/greeting.txt")).unwrap()
    };
    assert_eq!(
        (stored(&first), stored(&second)),
        ("v1\n".into(), "v2\n".into())
    );
    let err = fs::write(rig.snap().join(&first).join("x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");

    // mount says where to read; nothing is mounted.
    let mp = rig.ok(&["mount", &first]);
    assert_eq!(Path::new(mp.trim()), rig.snap().join(&first));
    rig.ok(&["umount", &first]);
    assert!(!rig.root().join("Snapshots").exists());

    // A snapshot of the directory above the root shows in the root's `.snap`
    // as `_<name>_<inode>`: not strata's, neither listed nor removed.
    rig.mkdir_as_user(&rig.mount_path().join(".snap/20200101-1"))
        .unwrap();
    let listed = rig.listed();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let alias = listed
        .iter()
        .find(|n| n.starts_with("_20200101-1_"))
        .unwrap_or_else(|| panic!("no ancestor alias in {listed:?}"))
        .clone();
    assert_eq!(rig.ok(&["ls"]), format!("{first}\n{second}\n"));

    // prune a year later: the first is not the last of its day and goes, by rmdir.
    let later = (chrono::Local::now().date_naive() + Days::new(400)).to_string();
    let out = rig.ok(&["-v", "prune", "--as-of", &later]);
    assert!(out.contains(&format!("removed {first}")), "{out}");
    assert_eq!(rig.listed(), [second.clone(), alias]);
    assert_eq!(rig.ok(&["ls"]).trim(), second);

    // df: the root's quota bounds the free space (statvfs, never st_blocks).
    let top = rig.fs.admin().join(rig.fs_path.trim_start_matches('/'));
    xattr::set(top.join("data"), "ceph.quota.max_bytes", b"100000000").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let size = loop {
        let df: serde_json::Value = serde_json::from_str(&rig.ok(&["--json", "df"])).unwrap();
        let size = df["space"]["fs_size"].as_u64().unwrap();
        // why: the client learns of a new quota asynchronously
        if size <= 100_000_000 || std::time::Instant::now() > deadline {
            break size;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        size <= 100_000_000 && size > 100_000_000 - (8 << 20),
        "fs_size {size}"
    );

    // mkconf: the key to create, not a sudoers rule.
    let caps = rig.ok(&[
        "mkconf",
        "sudoers",
        "--user",
        &rig.user.name,
        "--cephfs-path",
        &rig.fs_path,
    ]);
    assert!(
        caps.contains(&format!(
            "ceph fs authorize cephfs client.{} {} rws",
            rig.user.name, rig.fs_path
        )),
        "{caps}"
    );
    assert!(!caps.contains("NOPASSWD"), "{caps}");
}

#[test]
fn cephfs_snapshot_past_the_limit_fails_the_run_and_prune_makes_room() {
    let Some(rig) = Rig::setup("cfl", "", "") else {
        return;
    };
    // 100 snapshots, each the first of its 28-day month: the policy keeps them all.
    let start = NaiveDate::from_ymd_opt(2018, 1, 1).unwrap();
    let names: Vec<String> = (0..100)
        .map(|i| day_name(start + Days::new(28 * i)))
        .collect();
    for n in &names {
        rig.mkdir_snap(n)
            .unwrap_or_else(|e| panic!("mkdir .snap/{n}: {e}"));
    }
    let out = rig.strata(&["run"]);
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("mds_max_snaps_per_dir") && all.contains("EMLINK"),
        "{all}"
    );
    assert!(
        all.contains("100 snapshots already, the most this store holds"),
        "{all}"
    );
    assert_eq!(rig.listed(), names, "no snapshot was added or lost");

    // config check says the default policy outgrows the limit.
    let check = rig.strata(&["config", "check"]);
    let check_all = format!("{}{}", text(&check.stdout), text(&check.stderr));
    assert!(
        check_all.contains("cephfs-max-snapshots (100)"),
        "{check_all}"
    );

    // prune takes the oldest to stay one under the limit, and says so.
    let out = rig.ok(&["prune"]);
    assert!(
        out.contains(&format!("removed {} (over the limit of 100", names[0])),
        "{out}"
    );
    assert_eq!(rig.listed(), names[1..]);
    let out = rig.ok(&["run"]);
    assert!(out.contains("snapshot "), "{out}");
    assert_eq!(rig.listed().len(), 100);
}

#[test]
fn cephfs_two_years_of_daily_snapshots_with_weekly_prune_stay_under_the_limit() {
    // why: cephfs-max-snapshots 93 leaves room for the 7 snapshots of a week between prunes
    let Some(rig) = Rig::setup("cfy", "", "  cephfs-max-snapshots: 93\n") else {
        return;
    };
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let mut most = 0;
    for d in 0..730u64 {
        let today = start + Days::new(d);
        // why: the MDS itself refuses a 101st (EMLINK): a failure here is the limit exceeded
        rig.mkdir_snap(&day_name(today))
            .unwrap_or_else(|e| panic!("day {d}: mkdir .snap/{}: {e}", day_name(today)));
        most = most.max(rig.listed().len());
        if d % 7 == 6 {
            rig.ok(&["prune", "--as-of", &today.to_string()]);
            assert!(rig.listed().len() <= 92, "day {d}: {:?}", rig.listed());
        }
    }
    assert!(most <= 100, "{most}");
    // why: without the cap the calendar keeps more than 93 by then, so the cap did work
    assert!(most > 85, "{most}");
}
