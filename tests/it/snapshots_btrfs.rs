//! The btrfs store for real: a loop-mounted btrfs, the backup root a
//! subvolume owned by a throwaway unprivileged user, the helper reached
//! through real sudo with the rule `strata mkconf sudoers` writes. As that
//! user: `run` (a dump unit) -> snapshot -> second run -> `ls` -> `mount`
//! -> read -> `prune` (keeps the mounted one, says so) -> `umount` ->
//! `prune` removes by policy.
//!
//! Touches the host: a user, /etc/sudoers.d/strata-test-btrfs and
//! /etc/strata/snapshot.yaml (an existing one is put back), all undone in
//! `Drop`. Needs root, btrfs in the kernel, btrfs-progs, sudo, useradd.

use crate::snap_env::{self, clean, have, helper_bin, is_root, require, strata_bin, text};
use crate::support::env::expose_bin;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const ETC_CONFIG: &str = "/etc/strata/snapshot.yaml";
const SUDOERS: &str = "/etc/sudoers.d/strata-test-btrfs";

/// One rig at a time: they share the user name, the sudoers file and
/// /etc/strata/snapshot.yaml.
static ONE_RIG: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct BtrfsRig {
    _one: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    user: String,
    uid: u32,
    gid: u32,
    mounted: bool,
    loopdev: Option<String>,
    etc_backup: Option<Vec<u8>>,
    made_etc_dir: bool,
}

impl BtrfsRig {
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn root(&self) -> PathBuf {
        self.mnt().join("root")
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn helper(&self) -> PathBuf {
        self.dir.path().join("bin/strata-snapshot")
    }
    fn config(&self) -> PathBuf {
        self.home().join("config.yaml")
    }
    fn source(&self) -> PathBuf {
        self.dir.path().join("greeting.txt")
    }

    fn setup() -> BtrfsRig {
        let dir = tempfile::Builder::new()
            .prefix("strata-btrfs.")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let user = format!("stratabt{}", std::process::id() % 100_000);
        let mut rig = BtrfsRig {
            // why: a test that failed holding it poisons it; the next rig is still fine
            _one: ONE_RIG
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            dir,
            user,
            uid: 0,
            gid: 0,
            mounted: false,
            loopdev: None,
            etc_backup: None,
            made_etc_dir: false,
        };
        fs::create_dir(rig.home()).unwrap();
        snap_env::sh(
            "useradd",
            &[
                "-M",
                "-N",
                "-r",
                "-s",
                "/usr/sbin/nologin",
                "-d",
                rig.home().to_str().unwrap(),
                &rig.user,
            ],
        );
        let u = nix::unistd::User::from_name(&rig.user).unwrap().unwrap();
        (rig.uid, rig.gid) = (u.uid.as_raw(), u.gid.as_raw());
        nix::unistd::chown(&rig.home(), Some(u.uid), Some(u.gid)).unwrap();

        // A sparse image, btrfs, loop-mounted; the root a subvolume of the user's.
        let img = rig.dir.path().join("btrfs.img");
        fs::File::create(&img).unwrap().set_len(400 << 20).unwrap();
        snap_env::sh("mkfs.btrfs", &["-q", "-f", img.to_str().unwrap()]);
        fs::create_dir(rig.mnt()).unwrap();
        let out = snap_env::sh("losetup", &["-f", "--show", img.to_str().unwrap()]);
        rig.loopdev = Some(text(&out.stdout).trim().to_owned());
        snap_env::sh(
            "mount",
            &[
                "-t",
                "btrfs",
                rig.loopdev.as_deref().unwrap(),
                rig.mnt().to_str().unwrap(),
            ],
        );
        rig.mounted = true;
        snap_env::sh(
            "btrfs",
            &["subvolume", "create", rig.root().to_str().unwrap()],
        );
        nix::unistd::chown(&rig.root(), Some(u.uid), Some(u.gid)).unwrap();

        // The helper, root-owned in a root-owned directory the user cannot change.
        fs::create_dir(rig.dir.path().join("bin")).unwrap();
        fs::copy(helper_bin(), rig.helper()).unwrap();
        fs::set_permissions(rig.helper(), fs::Permissions::from_mode(0o755)).unwrap();
        // strata itself, where the user can reach it (the target dir may not be).
        expose_bin(&strata_bin(), &rig.dir.path().join("bin"));

        // Its config, the one path a sudo'ed helper reads.
        let etc = Path::new(ETC_CONFIG);
        if etc.parent().unwrap().exists() {
            rig.etc_backup = fs::read(etc).ok();
        } else {
            fs::create_dir_all(etc.parent().unwrap()).unwrap();
            rig.made_etc_dir = true;
        }
        fs::write(
            etc,
            format!("store: btrfs\nroot: {}\n", rig.root().display()),
        )
        .unwrap();
        fs::set_permissions(etc, fs::Permissions::from_mode(0o644)).unwrap();

        // The sudoers rule, as mkconf writes it, checked by visudo.
        let rule = clean(strata_bin(), rig.dir.path())
            .args([
                "mkconf",
                "sudoers",
                "--user",
                &rig.user,
                "--helper",
                rig.helper().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(rule.status.success(), "{}", text(&rule.stderr));
        let staged = rig.dir.path().join("sudoers");
        fs::write(&staged, &rule.stdout).unwrap();
        snap_env::sh("visudo", &["-c", "-q", "-f", staged.to_str().unwrap()]);
        fs::write(SUDOERS, &rule.stdout).unwrap();
        fs::set_permissions(SUDOERS, fs::Permissions::from_mode(0o440)).unwrap();

        // The user's strata config: one dump unit reading a file we change between runs.
        fs::write(rig.source(), "v1\n").unwrap();
        fs::set_permissions(rig.source(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(
            rig.config(),
            format!(
                "settings:\n  root: {}\n  snapshot-store: btrfs\ndump:\n  greeting:\n    command: [cat, {}]\n    file: greeting.txt\n",
                rig.root().display(),
                rig.source().display()
            ),
        )
        .unwrap();
        rig
    }

    /// `strata -c CONFIG ARGS` as the throwaway user.
    fn strata(&self, args: &[&str]) -> Output {
        clean(self.dir.path().join("bin/strata"), &self.home())
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("STRATA_SNAPSHOT_HELPER", self.helper())
            .current_dir(self.home())
            .uid(self.uid)
            .gid(self.gid)
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
}

impl Drop for BtrfsRig {
    #[allow(clippy::disallowed_methods)] // why: teardown of real mounts, devices and users
    fn drop(&mut self) {
        let run = |p: &str, a: &[&str]| {
            let _ = std::process::Command::new(p).args(a).output();
        };
        let _ = fs::remove_file(SUDOERS);
        if let Some(b) = &self.etc_backup {
            let _ = fs::write(ETC_CONFIG, b);
        } else {
            let _ = fs::remove_file(ETC_CONFIG);
            if self.made_etc_dir {
                let _ = fs::remove_dir(Path::new(ETC_CONFIG).parent().unwrap());
            }
        }
        if self.mounted {
            run("umount", &[self.mnt().to_str().unwrap()]);
        }
        if let Some(dev) = &self.loopdev {
            run("losetup", &["-d", dev]);
        }
        if self.uid != 0 {
            run("userdel", &[&self.user]);
        }
    }
}

#[test]
fn root_btrfs_run_snapshot_mount_prune_as_unprivileged_user() {
    if !require("root", is_root()) {
        return;
    }
    let kernel_btrfs = fs::read_to_string("/proc/filesystems").is_ok_and(|t| t.contains("btrfs"));
    if !require("btrfs in the kernel", kernel_btrfs)
        || !require("btrfs-progs (apt: btrfs-progs)", have("mkfs.btrfs"))
        || !require(
            "sudo, visudo, useradd, losetup",
            have("sudo") && have("visudo") && have("useradd") && have("losetup"),
        )
    {
        return;
    }
    let rig = BtrfsRig::setup();

    let out = rig.ok(&["run"]);
    let first = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("snapshot ")
                .and_then(|l| l.strip_suffix(" taken"))
        })
        .unwrap_or_else(|| panic!("no snapshot line in: {out}"))
        .to_owned();
    fs::write(rig.source(), "v2\n").unwrap();
    let out = rig.ok(&["run"]);
    assert!(!out.contains(&format!("snapshot {first} taken")), "{out}");
    let listed = rig.ok(&["ls"]);
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert_eq!(names[0], first);
    let second = names[1].to_owned();

    // Snapshots are root-owned, read-only subvolumes with the content of their time.
    let snap_dir = rig.root().join(".snapshots");
    let meta = fs::symlink_metadata(&snap_dir).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            meta.permissions().mode() & 0o7777
        ),
        (0, 0o755)
    );
    let stored =
        |n: &str| fs::read_to_string(snap_dir.join(n).join("dump/greeting/greeting.txt")).unwrap();
    assert_eq!(
        (stored(&first).as_str(), stored(&second).as_str()),
        ("v1\n", "v2\n")
    );
    let err = fs::write(snap_dir.join(&first).join("x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");

    // mount, read through the mount point
    let mp = rig.ok(&["mount", &first]);
    assert_eq!(
        fs::read_to_string(Path::new(mp.trim()).join("dump/greeting/greeting.txt")).unwrap(),
        "v1\n"
    );
    assert!(rig.ok(&["ls"]).contains(&format!("{first}  (mounted at")));

    // prune, a year and more later: the policy would remove the first (same
    // day as the second); it is mounted, so it stays and prune says so.
    let later = (chrono::Local::now().date_naive() + chrono::Days::new(400)).to_string();
    let out = rig.ok(&["prune", "--as-of", &later]);
    assert!(out.contains(&format!("kept {first}")), "{out}");
    assert!(snap_dir.join(&first).is_dir());
    rig.ok(&["umount", &first]);
    let out = rig.ok(&["-v", "prune", "--as-of", &later]);
    assert!(out.contains(&format!("removed {first}")), "{out}");
    assert_eq!(rig.ok(&["ls"]).trim(), second);
    assert!(!snap_dir.join(&first).exists());
    rig.ok(&["df"]);

    // The sudo rule allows the helper and nothing else.
    let out = clean("sudo", &rig.home())
        .args(["-n", "/bin/true"])
        .uid(rig.uid)
        .gid(rig.gid)
        .output()
        .unwrap();
    assert!(!out.status.success(), "sudo allowed /bin/true");
    // Through sudo the helper ignores the test-only overrides (sudo refuses to pass them anyway).
    let out = clean("sudo", &rig.home())
        .args(["-n", rig.helper().to_str().unwrap(), "remove", "../x"])
        .uid(rig.uid)
        .gid(rig.gid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

const MIB: u64 = 1 << 20;

/// Free bytes of the filesystem holding `path`, as strata measures them.
fn free_bytes(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks_available() * st.fragment_size()
}

#[test]
fn root_btrfs_run_makes_room_before_its_units_write() {
    if !require("root", is_root()) {
        return;
    }
    let kernel_btrfs = fs::read_to_string("/proc/filesystems").is_ok_and(|t| t.contains("btrfs"));
    if !require("btrfs in the kernel", kernel_btrfs)
        || !require("btrfs-progs (apt: btrfs-progs)", have("mkfs.btrfs"))
        || !require(
            "sudo, visudo, useradd, losetup",
            have("sudo") && have("visudo") && have("useradd") && have("losetup"),
        )
    {
        return;
    }
    let rig = BtrfsRig::setup();
    // Each run stores 40 MiB of new random bytes; each snapshot pins its own.
    let config = |min_free: u64| {
        fs::write(
            rig.config(),
            format!(
                "settings:\n  root: {}\n  snapshot-store: btrfs\n  gc-min-keep: 1\n  gc-min-free-bytes: {min_free}\ndump:\n  fill:\n    command: [head, -c, '{}', /dev/urandom]\n    file: fill.bin\n",
                rig.root().display(),
                40 * MIB
            ),
        )
        .unwrap();
    };
    config(0);
    let mut snaps = Vec::new();
    for _ in 0..4 {
        let out = rig.ok(&["run"]);
        assert!(!out.contains("before the run"), "{out}");
        snaps.push(
            out.lines()
                .find_map(|l| {
                    l.strip_prefix("snapshot ")
                        .and_then(|l| l.strip_suffix(" taken"))
                })
                .unwrap_or_else(|| panic!("{out}"))
                .to_owned(),
        );
    }
    // Removing the oldest snapshot frees its 40 MiB, the next another 40;
    // the newest two share theirs with the live file. Ask for 60 MiB more
    // than is free: exactly two snapshots must go, and the space be measured
    // after each (btrfs frees a deleted subvolume's space in the background).
    let free = free_bytes(&rig.root());
    config(free + 60 * MIB);
    let out = rig.ok(&["run"]);
    for s in &snaps[..2] {
        assert!(
            out.contains(&format!("removed snapshot {s} before the run")),
            "{out}"
        );
    }
    assert!(
        !out.contains(&format!("removed snapshot {}", snaps[2])),
        "{out}"
    );
    let removed_at = out.find("before the run").unwrap();
    assert!(removed_at < out.find("start dump/fill").unwrap(), "{out}");
    let listed = rig.ok(&["ls"]);
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names.len(), 3, "{listed}");
    assert_eq!(&names[..2], [snaps[2].as_str(), snaps[3].as_str()]);
}
