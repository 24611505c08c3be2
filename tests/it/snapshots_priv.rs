//! The root helper `strata-snapshot` refuses what it must: bad names, extra
//! or unknown arguments, another VG/LV, mount points that are symlinks or
//! not its own, an unsafe config. Each refusal exits 2 with one line on
//! stderr, and a PATH shim that records every lvm/mount/btrfs call proves
//! that nothing ran. Positive controls (the same shim sees `list`, `create`
//! and `mount`) prove the shim would have seen a call.
//!
//! The temp config and the shim are reached through the debug-build-only
//! overrides `STRATA_SNAPSHOT_CONFIG` / `STRATA_SNAPSHOT_TEST_PATH`
//! (honoured only outside sudo; see `privileged::Overrides`).

use crate::snap_env::{self, clean, helper_bin, is_root, require, text};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

const TOOLS: [&str; 7] = [
    "lvs", "lvcreate", "lvchange", "lvremove", "mount", "umount", "btrfs",
];

/// Where a rig may live: a directory whose ancestors are all root-owned and
/// not group- or world-writable, as the helper demands of its config's
/// directories. Cargo's target/tmp usually is; a target dir under /tmp is not
/// (/tmp is 1777), so then /run, then /root.
fn scratch_base() -> PathBuf {
    let safe = |dir: &Path| {
        dir.ancestors()
            .all(|a| fs::metadata(a).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0))
    };
    [
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        PathBuf::from("/run"),
        PathBuf::from("/root"),
    ]
    .into_iter()
    .find(|d| d.is_dir() && safe(&fs::canonicalize(d).unwrap_or_else(|_| d.clone())))
    .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// A root-owned scratch tree in [`scratch_base`].
struct Rig {
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(store: &str) -> Rig {
        let dir = tempfile::Builder::new()
            .prefix("snap-priv.")
            .tempdir_in(scratch_base())
            .unwrap();
        let rig = Rig { dir };
        fs::create_dir(rig.root()).unwrap();
        fs::create_dir(rig.shim()).unwrap();
        fs::write(rig.log(), "").unwrap();
        let fixture = snap_env::repo().join("tests/fixtures/lvm/lvs-with-snapshots.json");
        for tool in TOOLS {
            let p = rig.shim().join(tool);
            let body = format!(
                "#!/bin/sh\nprintf '%s\\n' \"{tool} $*\" >> {log}\n{extra}exit 0\n",
                log = rig.log().display(),
                extra = match tool {
                    "lvs" => format!("/bin/cat {}\n", fixture.display()),
                    // why: the window between the helper's checks and its mount:
                    // a racing user swaps <root>/Snapshots for a symlink here
                    "lvchange" => format!(
                        "if [ -e {d}/swap ]; then /bin/mv {r}/Snapshots {r}/Snapshots.old && /bin/ln -s {d}/decoy {r}/Snapshots; fi\n",
                        d = rig.dir.path().display(),
                        r = rig.root().display()
                    ),
                    // why: record where the target really resolves to
                    "mount" | "umount" => format!(
                        "for a; do last=$a; done; printf 'target %s\\n' \"$(/bin/readlink -f \"$last\")\" >> {}\n",
                        rig.log().display()
                    ),
                    _ => String::new(),
                }
            );
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = match store {
            "btrfs" => format!("store: btrfs\nroot: {}\n", rig.root().display()),
            _ => format!(
                "store: lvm-thin\nroot: {}\nbackup-lv: stratavg/backup\n",
                rig.root().display()
            ),
        };
        rig.write_config(&config);
        rig
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn shim(&self) -> PathBuf {
        self.dir.path().join("shim")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("snapshot.yaml")
    }
    fn write_config(&self, text: &str) {
        fs::write(self.config(), text).unwrap();
        fs::set_permissions(self.config(), fs::Permissions::from_mode(0o644)).unwrap();
    }
    fn calls(&self) -> String {
        fs::read_to_string(self.log()).unwrap()
    }
    fn clear_calls(&self) {
        fs::write(self.log(), "").unwrap();
    }

    fn helper(&self, args: &[&str]) -> Output {
        self.helper_with_config(&self.config(), args)
    }

    fn helper_with_config(&self, config: &Path, args: &[&str]) -> Output {
        clean(helper_bin(), self.dir.path())
            .args(args)
            .env("STRATA_SNAPSHOT_CONFIG", config)
            .env("STRATA_SNAPSHOT_TEST_PATH", self.shim())
            .output()
            .unwrap()
    }

    /// Exit 2, exactly one line on stderr containing `why`, no tool run.
    #[track_caller]
    fn assert_refused(&self, args: &[&str], why: &str) {
        self.assert_refused_out(&self.helper(args), args, why, true);
    }

    #[track_caller]
    fn assert_refused_out(&self, out: &Output, args: &[&str], why: &str, no_calls: bool) {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(err.contains(why), "{args:?}: {err:?} should say {why:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        if no_calls {
            assert_eq!(self.calls(), "", "{args:?} ran a command");
        }
    }
}

#[test]
fn helper_refuses_bad_arguments() {
    // Argument refusals come before anything else, so they hold for any caller.
    let rig = Rig::new("lvm-thin");
    let long = "2".repeat(40);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "no verb"),
        (vec!["mount", "../x"], "invalid snapshot name"),
        (vec!["remove", "20260101-1;rm"], "invalid snapshot name"),
        (vec!["mount", ""], "invalid snapshot name"),
        (vec!["mount", "20260101-1234567890"], "too long"),
        (vec!["remove", &long], "longer than"),
        (
            vec!["remove", "othervg/20260101-1"],
            "invalid snapshot name",
        ),
        (
            vec!["mount", "20260101-1", "/etc"],
            "exactly one snapshot name",
        ),
        (
            vec!["mount", "/srv/backup/Snapshots/20260101-1"],
            "too long",
        ),
        (vec!["mount", "/etc/x"], "invalid snapshot name"),
        (vec!["list", "--all"], "takes no arguments"),
        (vec!["create", "20260101-1"], "takes no arguments"),
        (vec!["create", "othervg/backup"], "takes no arguments"),
        (vec!["pool-status", "othervg/pool"], "takes no arguments"),
        (vec!["remove"], "needs exactly one"),
        (vec!["--config", "/tmp/evil.yaml"], "unknown verb"),
        (vec!["sh"], "unknown verb"),
        (vec!["lvremove", "-f", "vg/lv"], "unknown verb"),
    ];
    for (args, why) in cases {
        rig.assert_refused(&args, why);
    }
}

#[test]
fn root_helper_refuses_unsafe_state() {
    if !require("root", is_root()) {
        return;
    }
    let rig = Rig::new("lvm-thin");
    let nobody = nix::unistd::Uid::from_raw(65534);

    // The config: not root-owned, writable by others, a symlink, in a world-writable dir.
    nix::unistd::chown(&rig.config(), Some(nobody), None).unwrap();
    rig.assert_refused(&["list"], "not root");
    nix::unistd::chown(&rig.config(), Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    fs::set_permissions(rig.config(), fs::Permissions::from_mode(0o664)).unwrap();
    rig.assert_refused(&["list"], "group- or world-writable");
    fs::set_permissions(rig.config(), fs::Permissions::from_mode(0o644)).unwrap();
    let link = rig.dir.path().join("link.yaml");
    std::os::unix::fs::symlink(rig.config(), &link).unwrap();
    let out = rig.helper_with_config(&link, &["list"]);
    rig.assert_refused_out(
        &out,
        &["list (symlinked config)"],
        "cannot open config",
        true,
    );
    let tmp = tempfile::Builder::new()
        .prefix("snap-priv-cfg.")
        .tempdir_in("/tmp")
        .unwrap();
    let in_tmp = tmp.path().join("snapshot.yaml");
    fs::copy(rig.config(), &in_tmp).unwrap();
    let out = rig.helper_with_config(&in_tmp, &["list"]);
    rig.assert_refused_out(
        &out,
        &["list (config under /tmp)"],
        "config directory /tmp",
        true,
    );

    // Another VG/LV or root cannot be named on the command line; a config
    // that names them badly is refused.
    rig.write_config(&format!(
        "store: lvm-thin\nroot: {}\nbackup-lv: stratavg/-backup\n",
        rig.root().display()
    ));
    rig.assert_refused(&["list"], "plain LVM name");
    rig.write_config(&format!(
        "store: lvm-thin\nroot: {}/../root\nbackup-lv: stratavg/backup\n",
        rig.root().display()
    ));
    rig.assert_refused(&["list"], "without . or ..");
    let alias = rig.dir.path().join("alias");
    std::os::unix::fs::symlink(rig.root(), &alias).unwrap();
    rig.write_config(&format!(
        "store: lvm-thin\nroot: {}\nbackup-lv: stratavg/backup\n",
        alias.display()
    ));
    rig.assert_refused(&["list"], "not a canonical path");
    rig.write_config(&format!(
        "store: lvm-thin\nroot: {}\nbackup-lv: stratavg/backup\nmount-point: /etc\n",
        rig.root().display()
    ));
    rig.assert_refused(&["list"], "unknown field");
    rig.write_config(&format!(
        "store: lvm-thin\nroot: {}\nbackup-lv: stratavg/backup\n",
        rig.root().display()
    ));

    // Mount points: only <root>/Snapshots/<name>, never a symlink, never
    // something the helper did not make.
    let snaps = rig.root().join("Snapshots");
    std::os::unix::fs::symlink("/etc", &snaps).unwrap();
    rig.assert_refused(&["mount", "20260101-1"], "is a symlink");
    rig.assert_refused(&["umount", "20260101-1"], "is a symlink");
    fs::remove_file(&snaps).unwrap();
    fs::create_dir(&snaps).unwrap();
    nix::unistd::chown(&snaps, Some(nobody), None).unwrap();
    rig.assert_refused(&["mount", "20260101-1"], "not root");
    nix::unistd::chown(&snaps, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    fs::set_permissions(&snaps, fs::Permissions::from_mode(0o777)).unwrap();
    rig.assert_refused(&["mount", "20260101-1"], "group- or world-writable");
    fs::set_permissions(&snaps, fs::Permissions::from_mode(0o755)).unwrap();
    let mp = snaps.join("20260101-1");
    std::os::unix::fs::symlink("/etc", &mp).unwrap();
    rig.assert_refused(&["mount", "20260101-1"], "is a symlink");
    fs::remove_file(&mp).unwrap();
    fs::write(&mp, "").unwrap();
    rig.assert_refused(&["mount", "20260101-1"], "not a directory");
    fs::remove_file(&mp).unwrap();
    fs::create_dir(&mp).unwrap();
    fs::write(mp.join("planted"), "").unwrap();
    rig.assert_refused(&["mount", "20260101-1"], "not empty");
    fs::remove_file(mp.join("planted")).unwrap();
    fs::remove_dir(&mp).unwrap();

    // LVs that are not our snapshots: only `lvs` runs, then a refusal.
    for (args, why) in [
        (["remove", "20260101-9"], "not a backup-snapshot snapshot"),
        (["mount", "20260101-8"], "not a backup-snapshot snapshot"),
        (["mount", "20260101-3"], "does not exist"),
    ] {
        rig.clear_calls();
        let out = rig.helper(&args);
        rig.assert_refused_out(&out, &args, why, false);
        let calls = rig.calls();
        assert!(
            calls.lines().all(|l| l.starts_with("lvs ")),
            "{args:?} ran more than lvs: {calls}"
        );
    }
}

#[test]
fn root_helper_runs_fixed_argv() {
    if !require("root", is_root()) {
        return;
    }
    let rig = Rig::new("lvm-thin");
    // why: as on a real appliance, the backup user (here nobody) owns the root
    nix::unistd::chown(&rig.root(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    // list: one lvs call; only the tagged snapshots of backup.
    let out = rig.helper(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"snapshots":[{"name":"20260101-1","mounted":null},{"name":"20260101-2","mounted":null}]}"#
    );
    assert_eq!(
        rig.calls(),
        "lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_tags,origin,pool_lv,lv_attr,lv_size,data_percent,lv_metadata_size,metadata_percent stratavg\n"
    );
    // pool-status
    let out = rig.helper(&["pool-status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#""pool":"pool","data_size":536870912"#),
        "{}",
        text(&out.stdout)
    );
    // create: today's first number, every LV name of the VG counted.
    rig.clear_calls();
    let out = rig.helper(&["create"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let today = chrono::Local::now()
        .date_naive()
        .format("%Y%m%d")
        .to_string();
    let expected = if today == "20260101" {
        "20260101-10".to_owned()
    } else {
        format!("{today}-1")
    };
    assert_eq!(
        text(&out.stdout).trim(),
        format!(r#"{{"created":"{expected}"}}"#)
    );
    assert!(
        rig.calls().ends_with(&format!(
            "lvcreate -s stratavg/backup -p r -n {expected} --addtag backup-snapshot\n"
        )),
        "{}",
        rig.calls()
    );
    // mount: the helper makes <root>/Snapshots/<name>, root-owned 0755.
    rig.clear_calls();
    let out = rig.helper(&["mount", "20260101-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mp = rig.root().join("Snapshots/20260101-1");
    let calls = rig.calls();
    let lines: Vec<&str> = calls
        .lines()
        .filter(|l| !l.starts_with("target "))
        .collect();
    assert_eq!(lines.len(), 3, "{calls}");
    assert!(
        calls.contains(&format!("target {}\n", mp.display())),
        "{calls}"
    );
    assert_eq!(lines[1], "lvchange -ay -K stratavg/20260101-1");
    // The target is the helper's pinned descriptor of the mount point, not a path a user could swap.
    let target = lines[2]
        .strip_prefix(
            "mount -c -t ext4 -o ro,nosuid,nodev,noexec,noload /dev/stratavg/20260101-1 /proc/",
        )
        .unwrap_or_else(|| panic!("{}", lines[2]));
    assert!(target.contains("/fd/"), "{}", lines[2]);
    for d in [rig.root().join("Snapshots"), mp.clone()] {
        let m = fs::symlink_metadata(&d).unwrap();
        assert!(
            m.is_dir() && m.uid() == 0 && m.mode() & 0o7777 == 0o755,
            "{}",
            d.display()
        );
    }
    // umount of a snapshot that is not mounted: no umount, lvchange -an, dir removed.
    rig.clear_calls();
    let out = rig.helper(&["umount", "20260101-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        rig.calls().ends_with("lvchange -an stratavg/20260101-1\n"),
        "{}",
        rig.calls()
    );
    assert!(!mp.exists());
    // remove
    rig.clear_calls();
    let out = rig.helper(&["remove", "20260101-2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        rig.calls().ends_with("lvremove -f stratavg/20260101-2\n"),
        "{}",
        rig.calls()
    );
    let out = rig.helper(&["remove", "20260102-1"]);
    assert_eq!(text(&out.stdout).trim(), r#"{"removed":false}"#);
}

#[test]
fn root_helper_btrfs_refuses_mount_and_symlinked_dir() {
    if !require("root", is_root()) {
        return;
    }
    let rig = Rig::new("btrfs");
    rig.assert_refused(&["mount", "20260101-1"], "need no mount");
    std::os::unix::fs::symlink("/", rig.root().join(".snapshots")).unwrap();
    rig.assert_refused(&["create"], "is a symlink");
    rig.assert_refused(&["remove", "20260101-1"], "is a symlink");
    rig.assert_refused(&["list"], "is a symlink");
}

#[test]
fn root_helper_mount_survives_a_swapped_snapshots_dir() {
    if !require("root", is_root()) {
        return;
    }
    let rig = Rig::new("lvm-thin");
    nix::unistd::chown(&rig.root(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    fs::create_dir(rig.dir.path().join("decoy")).unwrap();
    fs::write(rig.dir.path().join("swap"), "").unwrap();
    let out = rig.helper(&["mount", "20260101-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let calls = rig.calls();
    // The swap happened (during lvchange), yet mount got the directory that was checked.
    assert!(
        fs::symlink_metadata(rig.root().join("Snapshots"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let target = calls
        .lines()
        .find_map(|l| l.strip_prefix("target "))
        .unwrap_or_else(|| panic!("{calls}"));
    assert_eq!(
        Path::new(target),
        rig.root().join("Snapshots.old/20260101-1"),
        "{calls}"
    );
    assert!(!rig.dir.path().join("decoy/20260101-1").exists());
}

#[test]
fn root_helper_refuses_a_non_root_caller() {
    use std::os::unix::process::CommandExt;
    if !require("root", is_root()) {
        return;
    }
    let rig = Rig::new("lvm-thin");
    // why: the helper where nobody can reach it (the target dir may not be)
    let exposed = tempfile::tempdir().unwrap();
    fs::set_permissions(exposed.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let helper = crate::support::env::expose_bin(&helper_bin(), exposed.path());
    let out = clean(&helper, Path::new("/"))
        .arg("list")
        .env("STRATA_SNAPSHOT_CONFIG", rig.config())
        .env("STRATA_SNAPSHOT_TEST_PATH", rig.shim())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    rig.assert_refused_out(&out, &["list as nobody"], "must run as root", true);
}
