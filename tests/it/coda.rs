//! The coda source against real programs (issue 14): the real sshd on
//! 127.0.0.1 runs, as root, fake `volutil` and `codadump2tar` tools
//! (`support::coda`; Coda is packaged nowhere) that emit what the real ones
//! emit; backups run as a throwaway unprivileged user into a backup root
//! with the `dir` snapshot store; restores run as root through the same
//! sshd into fresh directories, compared attribute by attribute with the
//! volume.
//!
//! Every test needs root (sshd logs in as root; the volume's owners) and is
//! named `root_...`.

use crate::support::coda::CodaServer;
use crate::support::env::{self, TestHome};
use crate::support::sshd::{self, Sshd};
use crate::support::system_user::SystemUser;
use crate::support::treecmp::{
    Check, CompareOptions, HoleCheck, assert_trees_equal, compare_trees,
};
use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VOLUME: &str = "u:alice";
const VOLUME_ID: &str = "7f000001";
const BACKUP_ID: &str = "7e000001";
/// The unit of VOLUME on server 127.0.0.1: named up to the first dot.
const UNIT: &str = "coda/127/u:alice";

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn yaml(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// why: tests drive real tools (cp); STYLE rule 2 confines Command::new to
// src/exec for the product, not its tests.
#[allow(clippy::disallowed_methods)]
fn tool(program: &str) -> Command {
    Command::new(program)
}

/// A backup site: the backup user, its home, root and config, the fake
/// Coda server, and an admin home (root) for restores.
struct Site {
    user: SystemUser,
    home: TestHome,
    root: PathBuf,
    config: PathBuf,
    admin: TestHome,
    admin_config: PathBuf,
    server: CodaServer,
    scratch: tempfile::TempDir,
}

impl Site {
    #[track_caller]
    fn new(tag: &str, sshd: &Sshd) -> Option<Site> {
        let user = SystemUser::create(tag)?;
        let server = CodaServer::install()?;
        let home = TestHome::for_user(user.uid, user.gid);
        let root = home.join("backup");
        std::fs::create_dir(&root).expect("create the backup root");
        nix::unistd::chown(&root, Some(user.uid), Some(user.gid)).expect("chown the backup root");
        let scratch = tempfile::Builder::new()
            .prefix("strata-coda-test.")
            .tempdir()
            .expect("create a scratch directory");
        let site = Site {
            config: home.join("config.yaml"),
            admin_config: scratch.path().join("admin.yaml"),
            admin: TestHome::new(),
            user,
            home,
            root,
            server,
            scratch,
        };
        site.server.add_volume(VOLUME, VOLUME_ID);
        site.write_config(sshd, 0.0, &[VOLUME]);
        Some(site)
    }

    /// The backup user's config (and the admin's, the same settings with
    /// root's key for restores).
    fn write_config(&self, sshd: &Sshd, full_probability: f64, volumes: &[&str]) {
        let key = sshd.identity_file_for(self.user.uid, self.user.gid);
        let settings = format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  coda-full-probability: {full_probability}\n  \
             coda-volutil-path: {}\n  coda-codadump2tar-path: {}\n",
            yaml(&self.root.display().to_string()),
            yaml(&self.server.volutil().display().to_string()),
            yaml(&self.server.codadump2tar().display().to_string()),
        );
        let vols = volumes
            .iter()
            .map(|v| yaml(v))
            .collect::<Vec<_>>()
            .join(", ");
        let coda = format!(
            "coda:\n  - servers: [{}]\n    volumes: [{vols}]\n    ssh-port: {}\n    ssh-identity: {}\n",
            sshd::HOST,
            sshd.port(),
            yaml(&key.display().to_string())
        );
        std::fs::write(&self.config, format!("{settings}{coda}")).expect("write the config");
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o644))
            .expect("chmod the config");
        // why: a restore target is no configured host; root reaches it with
        // the fixture's key through rsync-ssh-options
        let admin = format!(
            "{settings}  rsync-ssh-options: ['-oPort={}', '-oIdentityFile={}', '-oIdentitiesOnly=yes']\n{coda}",
            sshd.port(),
            sshd.identity_file().display()
        );
        std::fs::write(&self.admin_config, admin).expect("write the admin config");
    }

    /// `strata -c CONFIG ARGS...` as the backup user, with `env` set.
    fn strata_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = env::strata(&self.home);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run strata")
    }

    fn strata(&self, args: &[&str]) -> Output {
        self.strata_env(&[], args)
    }

    /// `strata coda backup [ARGS] 127.0.0.1 VOLUME` as the backup user.
    fn backup(&self, args: &[&str]) -> Output {
        let mut all = vec!["coda", "backup"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[sshd::HOST, VOLUME]);
        self.strata(&all)
    }

    fn unit_dir(&self) -> PathBuf {
        self.root.join(UNIT)
    }

    fn stage_dir(&self) -> PathBuf {
        self.root.join(".strata/stage").join(UNIT)
    }

    /// Restore `source` as root over ssh into a fresh directory (with
    /// `rsync restore --coda`, or with `coda restore` when `via_coda`).
    fn restore(&self, source: &Path, name: &str, via_coda: bool) -> PathBuf {
        let dest = self.scratch.path().join(name);
        std::fs::create_dir(&dest).expect("create the restore directory");
        let verb: &[&str] = if via_coda {
            &["coda", "restore"]
        } else {
            &["rsync", "restore", "--coda"]
        };
        let out = env::strata(&self.admin)
            .arg("-c")
            .arg(&self.admin_config)
            .args(verb)
            .args(["-u", "root"])
            .arg(source)
            .arg(sshd::HOST)
            .arg(&dest)
            .output()
            .expect("run strata restore");
        assert!(out.status.success(), "restore: {}", text(&out));
        dest
    }

    /// A copy of the stored unit, every attribute kept (to prove a failed
    /// backup changed nothing).
    fn keep_copy(&self, name: &str) -> PathBuf {
        let copy = self.scratch.path().join(name);
        let out = tool("cp")
            .args(["-a", "--preserve=all"])
            .arg(self.unit_dir())
            .arg(&copy)
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "cp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        copy
    }

    fn dumps(&self) -> Vec<String> {
        self.server
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("volutil dump"))
            .collect()
    }
}

/// What a restore must give back: the volume itself, but for what Coda's
/// dumps and the fake-super store cannot carry (symlink owners; holes; a
/// file's sub-second mtime is whole seconds in the volume already).
fn restored_equals_volume() -> CompareOptions {
    CompareOptions {
        holes: HoleCheck::Ignore,
        symlink_owner: Check::Ignore,
        ..CompareOptions::default()
    }
}

/// The stored copy is unchanged: everything compared, but the root's
/// `user.coda.incremental-ok`, which a full dump removes before it starts
/// (so that a failed full dump is tried again).
fn unchanged_store() -> CompareOptions {
    CompareOptions {
        ignore_xattr_prefixes: vec!["user.coda.incremental-ok".into()],
        ..CompareOptions::default()
    }
}

fn set_mtime(p: &Path, secs: i64) {
    let t = TimeSpec::new(secs, 0);
    utimensat(AT_FDCWD, p, &t, &t, UtimensatFlags::NoFollowSymlink).expect("set an mtime");
}

fn chown(p: &Path, uid: u32) {
    nix::unistd::fchownat(
        AT_FDCWD,
        p,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(0)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .expect("chown");
}

fn write(p: &Path, data: &[u8], mode: u32, uid: u32) {
    std::fs::write(p, data).expect("write a volume file");
    // why: chown first, since a chown clears the setuid bit
    chown(p, uid);
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mkdir(p: &Path, uid: u32) {
    std::fs::create_dir_all(p).expect("mkdir in the volume");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    chown(p, uid);
}

/// Data that no block of repeats: a 64 KiB block changed is one block.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let i = i as u64;
            u8::try_from((i.wrapping_mul(2_654_435_761) >> 13) & 0xff).unwrap() ^ seed
        })
        .collect()
}

/// A Coda volume's tree: owners (gid 0: Coda has no groups), modes,
/// directories 0755 (codadump2tar dumps every directory as 0755), hard links
/// within a directory (all Coda allows), symlinks, odd names, a path long
/// enough for the ustar prefix field, a 98-byte name, whole-second mtimes
/// (Coda keeps seconds), set last.
fn build_volume(live: &Path) {
    mkdir(&live.join("docs"), 1000);
    write(
        &live.join("docs/readme.txt"),
        b"Coda volumes hold home directories.\n",
        0o644,
        1000,
    );
    write(&live.join("docs/a"), b"one inode, two names\n", 0o640, 1000);
    std::fs::hard_link(live.join("docs/a"), live.join("docs/a-link")).unwrap();
    mkdir(&live.join("links"), 1001);
    write(&live.join("links/x"), b"three names\n", 0o600, 1001);
    std::fs::hard_link(live.join("links/x"), live.join("links/y")).unwrap();
    std::fs::hard_link(live.join("links/x"), live.join("links/z")).unwrap();
    write(&live.join("secret"), b"only for 1001\n", 0o600, 1001);
    write(&live.join("script.sh"), b"#!/bin/sh\necho hi\n", 0o755, 0);
    write(
        &live.join("setuid-tool"),
        b"\x7fELF not really\n",
        0o4755,
        0,
    );
    write(&live.join("big.bin"), &pattern(4 << 20, 0), 0o644, 4242);
    write(&live.join("zeros.bin"), &vec![0u8; 1 << 20], 0o644, 4242);
    write(&live.join("empty"), b"", 0o444, 1000);
    mkdir(&live.join("empty dir"), 1000);
    mkdir(&live.join("will-be-a-file"), 1000);
    write(
        &live.join("will-be-a-file/inside"),
        b"gone when the dir goes\n",
        0o644,
        1000,
    );
    write(
        &live.join("will-be-a-dir"),
        b"a file for now\n",
        0o644,
        1000,
    );
    for name in [
        &b"with space"[..],
        b"new\nline",
        b"tab\there",
        b"back\\slash",
        b"-leading-dash",
        b"glob*?[x]",
        b"caf\xe9",
        "na\u{ef}ve \u{2603}".as_bytes(),
        b"quote'\"both",
    ] {
        write(&live.join(OsStr::from_bytes(name)), name, 0o644, 1000);
    }
    let long_name = "n".repeat(98);
    write(&live.join(&long_name), b"a name of 98 bytes\n", 0o644, 1000);
    // why: a full path past the ustar name field's 100 bytes goes through the prefix field
    let deep = live.join("deep").join("d".repeat(60)).join("e".repeat(60));
    mkdir(&live.join("deep"), 1000);
    mkdir(deep.parent().unwrap(), 1000);
    mkdir(&deep, 1000);
    write(&deep.join("f".repeat(90)), b"deep\n", 0o644, 1000);
    symlink("docs/readme.txt", live.join("rel-link")).unwrap();
    symlink("/coda/cs.cmu.edu/usr/alice", live.join("abs-link")).unwrap();
    symlink("nowhere", live.join("dangling")).unwrap();
    symlink("docs", live.join("dir-link")).unwrap();
    chown(&live.join("rel-link"), 1000);
    set_times(live);
}

/// Distinct whole-second mtimes on every entry, deepest first, the root last.
fn set_times(live: &Path) {
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(live)
        .min_depth(1)
        .contents_first(true)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    all.push(live.to_owned());
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i64::try_from(i).unwrap() * 7);
    }
}

/// Changes between dumps: content (one block of a big file), a mode, an
/// owner, a new file, a new hard link, a symlink retargeted, a directory
/// turned into a file and a file into a directory, a hard link broken, and
/// deletions (which only a full dump carries).
fn change_volume(live: &Path) {
    let mut big = std::fs::read(live.join("big.bin")).unwrap();
    big[(1 << 20) + 5] ^= 0xff;
    std::fs::write(live.join("big.bin"), &big).unwrap();
    std::fs::set_permissions(live.join("secret"), std::fs::Permissions::from_mode(0o640)).unwrap();
    chown(&live.join("script.sh"), 1002);
    write(
        &live.join("docs/new.txt"),
        b"written after the first dump\n",
        0o644,
        1000,
    );
    std::fs::hard_link(live.join("docs/new.txt"), live.join("docs/new-link")).unwrap();
    std::fs::remove_file(live.join("rel-link")).unwrap();
    symlink("secret", live.join("rel-link")).unwrap();
    std::fs::remove_dir_all(live.join("will-be-a-file")).unwrap();
    write(&live.join("will-be-a-file"), b"now a file\n", 0o644, 1000);
    std::fs::remove_file(live.join("will-be-a-dir")).unwrap();
    mkdir(&live.join("will-be-a-dir"), 1000);
    write(&live.join("will-be-a-dir/child"), b"child\n", 0o644, 1000);
    // why: links/z leaves the group and gets content of its own
    std::fs::remove_file(live.join("links/z")).unwrap();
    write(&live.join("links/z"), b"on its own now\n", 0o600, 1001);
    std::fs::remove_file(live.join("secret")).ok();
    write(
        &live.join("secret"),
        b"only for 1001, changed\n",
        0o640,
        1001,
    );
    std::fs::remove_file(live.join("empty")).unwrap();
    std::fs::remove_file(live.join(OsStr::from_bytes(b"caf\xe9"))).unwrap();
    std::fs::remove_dir_all(live.join("empty dir")).unwrap();
    set_times(live);
}

fn stat_of(p: &Path) -> Option<String> {
    xattr::get(p, "user.rsync.%stat")
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

#[test]
fn root_coda_full_incremental_full_then_rsync_restore_gives_the_volume_back() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(site) = Site::new("cdrt", &sshd) else {
        return;
    };
    let live = site.server.live(VOLUME);
    build_volume(&live);

    // Run 1: `strata run` asks for an incremental dump (-i; full-probability
    // 0), but nothing is stored yet: a full dump.
    let out = site.strata(&["run", "--no-snapshot"]);
    assert!(out.status.success(), "run 1: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("done  {UNIT} ok")),
        "{}",
        text(&out)
    );
    let calls = site.server.calls();
    assert_eq!(
        calls,
        [
            format!("volutil info {VOLUME}"),
            format!("volutil lock {VOLUME_ID}"),
            format!("volutil backup {VOLUME_ID}"),
            format!("volutil info {VOLUME}"),
            format!("volutil dump {BACKUP_ID}"),
            format!("volutil ancient {BACKUP_ID}"),
        ],
        "a first backup is a full dump, marked ancient"
    );
    let unit = site.unit_dir();
    assert_eq!(
        xattr::get(&unit, "user.coda.incremental-ok")
            .unwrap()
            .as_deref(),
        Some(&b"true"[..])
    );
    assert_eq!(
        stat_of(&unit.join("secret")).as_deref(),
        Some("100600 0,0 1001:0")
    );
    assert_eq!(
        stat_of(&unit.join("docs")).as_deref(),
        Some("40755 0,0 1000:0")
    );
    assert_eq!(
        stat_of(&unit.join("setuid-tool")).as_deref(),
        Some("104755 0,0 0:0")
    );
    assert!(
        unit.join("..CodaACLs.yaml").is_file(),
        "the ACL file is stored"
    );
    assert_eq!(
        stat_of(&unit.join("..CodaACLs.yaml")).as_deref(),
        Some("100400 0,0 0:0")
    );
    assert_eq!(
        std::fs::metadata(unit.join("docs/a")).unwrap().ino(),
        std::fs::metadata(unit.join("docs/a-link")).unwrap().ino()
    );
    let zeros = std::fs::metadata(unit.join("zeros.bin")).unwrap();
    assert!(
        zeros.blocks() * 512 < 64 * 1024,
        "zeros are stored as holes: {} blocks",
        zeros.blocks()
    );
    assert!(!site.stage_dir().exists(), "the stage is gone");
    let big_ino = std::fs::metadata(unit.join("big.bin")).unwrap().ino();

    // Run 2: an incremental dump; what it does not hold stays, deletions
    // included (an incremental dump cannot carry them).
    change_volume(&live);
    site.server.clear_calls();
    let out = site.strata(&["run", "--no-snapshot"]);
    assert!(out.status.success(), "run 2: {}", text(&out));
    assert!(
        site.dumps() == [format!("volutil dump -i -1 {BACKUP_ID}")],
        "{:?}",
        site.server.calls()
    );
    assert!(
        !site
            .server
            .calls()
            .iter()
            .any(|c| c.starts_with("volutil ancient")),
        "no ancient after an incremental dump: {:?}",
        site.server.calls()
    );
    assert!(
        unit.join("empty").exists(),
        "an incremental dump deletes nothing"
    );
    assert_eq!(
        std::fs::read(unit.join("big.bin")).unwrap(),
        std::fs::read(live.join("big.bin")).unwrap()
    );
    assert_eq!(
        std::fs::metadata(unit.join("big.bin")).unwrap().ino(),
        big_ino,
        "a changed file is updated in place"
    );
    let day = chrono::Local::now().format("%Y%m%d").to_string();
    let log = std::fs::read_to_string(site.root.join("Logs").join(UNIT).join(format!("{day}.out")))
        .unwrap();
    let last = log
        .lines()
        .rfind(|l| l.starts_with("incremental dump:"))
        .unwrap_or_default()
        .to_owned();
    // why: one 64 KiB block of big.bin changed, plus the small new files
    let written: u64 = last
        .split(", ")
        .find_map(|p| p.strip_suffix(" bytes written"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {last:?}\n{log}"));
    assert!(
        written < 200 * 1024,
        "an incremental dump wrote {written} bytes: {last}"
    );
    assert_eq!(
        stat_of(&unit.join("script.sh")).as_deref(),
        Some("100755 0,0 1002:0")
    );
    assert!(unit.join("will-be-a-dir/child").is_file() && unit.join("will-be-a-file").is_file());
    assert_ne!(
        std::fs::metadata(unit.join("links/z")).unwrap().ino(),
        std::fs::metadata(unit.join("links/x")).unwrap().ino(),
        "the broken hard link is broken in the store"
    );
    assert_eq!(
        std::fs::read(unit.join("links/x")).unwrap(),
        b"three names\n"
    );

    // Run 3: `run --scrub` draws the full dump for every unit: deletions
    // happen, the dump is marked ancient, and a snapshot is taken.
    site.server.clear_calls();
    let out = site.strata(&["run", "--scrub"]);
    assert!(out.status.success(), "run 3: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("start {UNIT} (scrub)")),
        "{}",
        text(&out)
    );
    assert_eq!(site.dumps(), [format!("volutil dump {BACKUP_ID}")]);
    assert!(
        site.server
            .calls()
            .contains(&format!("volutil ancient {BACKUP_ID}"))
    );
    assert!(!unit.join("empty").exists() && !unit.join("empty dir").exists());

    // The restore, from the snapshot, as root, to a fresh directory.
    let snaps: Vec<PathBuf> = std::fs::read_dir(site.root.join(".snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let dest = site.restore(&snaps[0].join(UNIT), "restored", false);
    assert!(
        !dest.join("..CodaACLs.yaml").exists(),
        "the ACL file is not restored as a file"
    );
    assert_trees_equal(&live, &dest, &restored_equals_volume());
    // `strata coda restore` is the same restore.
    let again = site.restore(&snaps[0].join(UNIT), "restored-again", true);
    assert_trees_equal(&live, &again, &restored_equals_volume());

    // An incremental after the full dump: nothing changed, nothing written.
    site.server.clear_calls();
    let before = site.keep_copy("before-noop");
    let out = site.backup(&["-i", "-R"]);
    assert!(out.status.success(), "no-op incremental: {}", text(&out));
    assert!(
        !site
            .server
            .calls()
            .iter()
            .any(|c| c.contains("lock") || c.contains("backup ")),
        "-R skips the refresh: {:?}",
        site.server.calls()
    );
    // why: codadump2tar stamps its ACL file with the time of the dump
    let skip_acls = CompareOptions {
        skip: vec![PathBuf::from("..CodaACLs.yaml")],
        ..unchanged_store()
    };
    let diffs = compare_trees(&before, &unit, &skip_acls);
    assert!(
        diffs.is_empty(),
        "an unchanged volume changed the store: {diffs:?}"
    );
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("incremental dump: ") && out.contains(", 0 files updated, 0 bytes written"),
        "{out}"
    );
}

/// (what, faults armed, dump attempts, message)
type FailureCase<'a> = (&'a str, &'a [(&'a str, &'a str)], usize, &'a str);

#[test]
fn root_coda_failed_dumps_keep_the_previous_copy() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(site) = Site::new("cdft", &sshd) else {
        return;
    };
    let live = site.server.live(VOLUME);
    build_volume(&live);
    let out = site.backup(&[]);
    assert!(out.status.success(), "first backup: {}", text(&out));
    // why: what a partial full dump would delete if it were applied
    change_volume(&live);
    let copy = site.keep_copy("before");
    let assert_unchanged = |what: &str| {
        let diffs = compare_trees(&copy, &site.unit_dir(), &unchanged_store());
        assert!(
            diffs.is_empty(),
            "{what} changed the stored copy: {diffs:?}"
        );
        assert!(!site.stage_dir().exists(), "{what} left its stage");
    };

    // Failures that persist: every attempt fails, the tenth fails the unit.
    // Refused dumps: the first attempt fails the unit.
    let cases: &[FailureCase] = &[
        (
            "a stream cut short",
            &[("c2t-truncate", "always"), ("c2t-truncate-bytes", "70000")],
            10,
            "the tar stream ended early",
        ),
        (
            "volutil dump failing midway (codadump2tar still exits 0)",
            &[("volutil-dump-exit", "always")],
            10,
            "`volutil dump` exited with status 1",
        ),
        (
            "a member named with ..",
            &[("c2t-member", "always"), ("c2t-member-kind", "dotdot")],
            1,
            "a `..` component",
        ),
        (
            "an absolute member",
            &[("c2t-member", "always"), ("c2t-member-kind", "absolute")],
            1,
            "an absolute name",
        ),
        (
            "a fifo member",
            &[("c2t-member", "always"), ("c2t-member-kind", "fifo")],
            1,
            "which a Coda dump never holds",
        ),
        (
            "a member under a file",
            &[("c2t-member", "always"), ("c2t-member-kind", "under-file")],
            1,
            "lies under `plainfile`, which is a File",
        ),
    ];
    for (i, (what, faults, attempts, message)) in cases.iter().enumerate() {
        site.server.clear_faults();
        site.server.clear_calls();
        for (k, v) in *faults {
            site.server.fault(k, v);
        }
        // why: the first case refreshes the clone (the changed volume); the
        // others dump that clone again (-R), which keeps the test short
        let out = site.backup(if i == 0 { &[] } else { &["-R"] });
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(message),
            "{what}: `{message}` not in:\n{}",
            text(&out)
        );
        assert!(
            stderr.contains("the stored copy is unchanged"),
            "{what}: {}",
            text(&out)
        );
        assert_eq!(
            site.dumps().len(),
            *attempts,
            "{what}: {:?}",
            site.server.calls()
        );
        assert!(
            !site
                .server
                .calls()
                .iter()
                .any(|c| c.starts_with("volutil ancient")),
            "{what}: a failed dump is not marked ancient"
        );
        assert_unchanged(what);
        assert!(!Path::new("/tmp/strata-coda-absolute").exists());
        assert!(!site.root.join("escaped").exists() && !site.root.join("coda/escaped").exists());
    }

    // Failures that pass: codadump2tar exiting non-zero once, then a stream
    // cut at a header boundary twice; each time a later attempt succeeds.
    for (faults, attempts, message) in [
        (
            &[("c2t-exit", "1")][..],
            2,
            "dump attempt 1 of 10 failed: the dump pipeline failed",
        ),
        (
            &[("c2t-truncate", "2"), ("c2t-truncate-bytes", "1536")][..],
            3,
            "dump attempt 2 of 10 failed: the tar stream ended early, at byte 1536 (a header)",
        ),
    ] {
        site.server.clear_faults();
        site.server.clear_calls();
        for (k, v) in faults {
            site.server.fault(k, v);
        }
        let out = site.backup(&[]);
        assert!(out.status.success(), "{faults:?}: {}", text(&out));
        assert_eq!(
            site.dumps().len(),
            attempts,
            "{faults:?}: {:?}",
            site.server.calls()
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{}",
            text(&out)
        );
    }

    let dest = site.restore(&site.unit_dir(), "restored", false);
    assert_trees_equal(&live, &dest, &restored_equals_volume());

    // A volume the server does not have: volutil info says so.
    site.write_config(&sshd, 0.0, &[VOLUME, "u:nobody"]);
    let out = site.strata(&["coda", "backup", sshd::HOST, "u:nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("VolInfo failed with VNOVOL"),
        "{}",
        text(&out)
    );
}

#[test]
fn root_coda_killed_at_each_step_the_next_backup_finishes() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(site) = Site::new("cdkl", &sshd) else {
        return;
    };
    let live = site.server.live(VOLUME);
    build_volume(&live);
    let out = site.backup(&[]);
    assert!(out.status.success(), "first backup: {}", text(&out));
    let mut round = 0;
    for step in ["coda-stage", "coda-committed", "coda-apply", "coda-applied"] {
        round += 1;
        // A change the killed dump carries: a file rewritten, one removed.
        write(
            &live.join(format!("round-{round}")),
            &pattern(200_000, round),
            0o644,
            1000,
        );
        std::fs::remove_file(live.join("script.sh")).ok();
        write(&live.join("big.bin"), &pattern(4 << 20, round), 0o644, 4242);
        set_times(&live);
        let copy = site.keep_copy(&format!("before-{step}"));

        let out = site.strata_env(
            &[("STRATA_FAULT_KILL_AT", step)],
            &["coda", "backup", sshd::HOST, VOLUME],
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{step}: {}",
            text(&out)
        );
        let committed = site.stage_dir().join("COMMITTED").exists();
        match step {
            "coda-stage" | "coda-committed" => {
                // Nothing of the stored copy changed before the apply.
                let diffs = compare_trees(&copy, &site.unit_dir(), &unchanged_store());
                assert!(
                    diffs.is_empty(),
                    "{step}: the stored copy changed: {diffs:?}"
                );
                assert_eq!(committed, step == "coda-committed", "{step}");
            }
            _ => assert!(
                committed,
                "{step}: the apply is committed, so it will be finished"
            ),
        }

        if committed {
            // The next backup finishes the committed apply before anything
            // else: proved with a dump that is then refused, so that only the
            // finished apply can have made the stored copy equal the volume.
            site.server.fault("c2t-member", "1");
            site.server.fault("c2t-member-kind", "fifo");
            let out = site.backup(&["-R"]);
            assert_eq!(out.status.code(), Some(1), "after {step}: {}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("finishing the apply"),
                "{step}: {}",
                text(&out)
            );
            assert!(!site.stage_dir().exists(), "{step}");
            let dest = site.restore(&site.unit_dir(), &format!("finished-{step}"), false);
            assert_trees_equal(&live, &dest, &restored_equals_volume());
        }

        // And the next good backup (-R: no new clone, the same dump) ends
        // where an uninterrupted one would have.
        let out = site.backup(&["-R"]);
        assert!(out.status.success(), "after {step}: {}", text(&out));
        if !committed {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("removing the stage"),
                "{step}: {}",
                text(&out)
            );
        }
        assert!(!site.stage_dir().exists(), "{step}");
        let dest = site.restore(&site.unit_dir(), &format!("after-{step}"), false);
        assert_trees_equal(&live, &dest, &restored_equals_volume());
    }

    // A committed stage that cannot be applied (here its record is garbage)
    // is dropped, and the backup makes a full dump instead of failing forever.
    std::fs::create_dir_all(site.stage_dir()).unwrap();
    std::fs::write(site.stage_dir().join("COMMITTED"), "garbage\n").unwrap();
    nix::unistd::chown(&site.stage_dir(), Some(site.user.uid), Some(site.user.gid)).unwrap();
    site.server.clear_calls();
    let out = site.backup(&["-i", "-R"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be applied"),
        "{}",
        text(&out)
    );
    assert_eq!(
        site.dumps(),
        [format!("volutil dump {BACKUP_ID}")],
        "a full dump"
    );
    assert!(!site.stage_dir().exists());
}
