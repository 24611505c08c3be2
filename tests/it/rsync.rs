//! The rsync source against real programs (issue 4): a real sshd on
//! 127.0.0.1, the hostile tree, backups run by `strata run` as a throwaway
//! unprivileged system user into a backup root with the `dir` snapshot
//! store, and restores run as root "to another host" (the same sshd,
//! another path), compared attribute by attribute.
//!
//! Tests that need root (the sshd fixture, the system user, the tree's
//! owners and device nodes) are named `root_...`; without root they skip
//! loudly, or fail under `STRATA_TEST_STRICT=1`.

use crate::support::env::{self, TestHome};
use crate::support::sshd::{self, Sshd};
use crate::support::system_user::SystemUser;
use crate::support::tree_builder::{Feature, build_hostile_tree};
use crate::support::treecmp::{CompareOptions, assert_trees_equal};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use strata::config::UnitPath;
use strata::runner::plan_checks;
use strata::sources::{self, Check, Unit};

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A single-quoted YAML scalar.
fn yaml(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One rsync host entry of a test config.
struct HostEntry<'a> {
    host: &'a str,
    alias: &'a str,
    mount: &'a Path,
    port: u16,
    identity: &'a Path,
    pre: Option<String>,
    post: Option<String>,
}

/// A backup site: the backup user, its home, a backup root in it, and a
/// config file there.
struct Site {
    user: SystemUser,
    home: TestHome,
    root: PathBuf,
    config: PathBuf,
}

impl Site {
    fn new(user: SystemUser) -> Site {
        let home = TestHome::for_user(user.uid, user.gid);
        let root = home.join("backup");
        std::fs::create_dir(&root).expect("create the backup root");
        nix::unistd::chown(&root, Some(user.uid), Some(user.gid)).expect("chown the backup root");
        let config = home.join("config.yaml");
        Site {
            user,
            home,
            root,
            config,
        }
    }

    /// Write the config: a dir snapshot store, this scrub probability and
    /// these hosts.
    fn write_config(&self, scrub_probability: f64, hosts: &[HostEntry]) {
        let mut y = format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  rsync-scrub-probability: {scrub_probability}\nrsync:\n",
            yaml(&self.root.display().to_string())
        );
        for h in hosts {
            let _ = writeln!(y, "  {}:", yaml(h.host));
            let _ = writeln!(y, "    alias: {}", h.alias);
            let _ = writeln!(y, "    mounts: [{}]", yaml(&h.mount.display().to_string()));
            let _ = writeln!(y, "    ssh-port: {}", h.port);
            let _ = writeln!(
                y,
                "    ssh-identity: {}",
                yaml(&h.identity.display().to_string())
            );
            if let Some(pre) = &h.pre {
                let _ = writeln!(y, "    pre: {}", yaml(pre));
            }
            if let Some(post) = &h.post {
                let _ = writeln!(y, "    post: {}", yaml(post));
            }
        }
        std::fs::write(&self.config, y).expect("write the config");
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o644))
            .expect("chmod the config");
    }

    /// `strata -c CONFIG ARGS...` as the backup user.
    fn strata(&self, args: &[&str]) -> Output {
        run(env::strata(&self.home)
            .arg("-c")
            .arg(&self.config)
            .args(args))
    }

    /// The only snapshot of the dir store.
    fn only_snapshot(&self) -> PathBuf {
        let dir = self.root.join(".snapshots");
        let names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("the dir store made its directory")
            .map(|e| e.expect("read .snapshots").path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        assert_eq!(names.len(), 1, "one snapshot expected: {names:?}");
        names.into_iter().next().unwrap()
    }

    /// Today's stdout log of a unit.
    fn unit_out_log(&self, unit: &str) -> String {
        let day = chrono::Local::now().format("%Y%m%d").to_string();
        let path = self.root.join("Logs").join(unit).join(format!("{day}.out"));
        String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned()
    }
}

/// Where a mount lands under a unit: rsync -R keeps the full path.
fn stored(unit_dir: &Path, mount: &Path) -> PathBuf {
    unit_dir.join(mount.strip_prefix("/").expect("mounts are absolute"))
}

/// A root-owned scratch directory, readable by nobody else.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-rsync-test.")
        .tempdir()
        .expect("create a scratch directory")
}

#[test]
fn root_rsync_round_trip_over_ssh_restores_every_attribute() {
    let t0 = std::time::Instant::now();
    // why: the slow test of the file; its phases are printed to show where time goes (--nocapture)
    let phase = |what: &str| eprintln!("round trip: {what} at {:.1}s", t0.elapsed().as_secs_f64());
    let Some(sshd) = Sshd::start() else { return };
    let Some(user) = SystemUser::create("rt") else {
        return;
    };
    let scratch = scratch();
    let src = scratch.path().join("src host/tree");
    let manifest = build_hostile_tree(&src, 20_000);
    for f in [
        Feature::Ownership,
        Feature::Acls,
        Feature::Xattrs,
        Feature::DeviceNodes,
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

    phase("tree built");
    let site = Site::new(user);
    let key = sshd.identity_file_for(site.user.uid, site.user.gid);
    site.write_config(
        0.0,
        &[HostEntry {
            host: sshd::HOST,
            alias: "octopus",
            mount: &src,
            port: sshd.port(),
            identity: &key,
            pre: None,
            post: None,
        }],
    );

    // The backup: `strata run` as the unprivileged backup user, then a snapshot.
    let out = site.strata(&["run"]);
    assert!(out.status.success(), "strata run: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("done  rsync/octopus ok"), "{}", text(&out));
    assert!(stdout.contains("snapshot "), "{}", text(&out));
    let known_hosts = site.home.join(".config/strata/known_hosts");
    assert!(
        std::fs::read_to_string(&known_hosts).is_ok_and(|k| k.contains("ssh-ed25519")),
        "the first contact records the host key in strata's own known_hosts"
    );
    let snap_src = stored(&site.only_snapshot().join("rsync/octopus"), &src);
    phase("backed up and snapshotted");

    // The restore: as root, from the snapshot, to "another host" (the same
    // sshd, a fresh directory), with the same config.
    let dest = scratch.path().join("restored");
    std::fs::create_dir(&dest).expect("create the restore directory");
    let admin = TestHome::new();
    let out = run(env::strata(&admin)
        .arg("-c")
        .arg(&site.config)
        .args(["rsync", "restore"])
        .arg(&snap_src)
        .arg(sshd::HOST)
        .arg(&dest));
    assert!(out.status.success(), "strata rsync restore: {}", text(&out));
    phase("restored");

    assert_trees_equal(&src, &dest, &CompareOptions::default());
    phase("compared");
    drop(scratch);
    phase("scratch removed");
    drop(site);
    phase("site removed");
    drop(sshd);
    phase("sshd stopped");
}

#[test]
fn root_rsync_scrub_repairs_what_a_normal_run_misses() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(user) = SystemUser::create("sc") else {
        return;
    };
    let scratch = scratch();
    let src = scratch.path().join("src");
    let manifest = build_hostile_tree(&src, 10);
    let site = Site::new(user);
    let key = sshd.identity_file_for(site.user.uid, site.user.gid);
    site.write_config(
        0.5,
        &[HostEntry {
            host: sshd::HOST,
            alias: "squid",
            mount: &src,
            port: sshd.port(),
            identity: &key,
            pre: None,
            post: None,
        }],
    );
    let out = site.strata(&["run", "--no-snapshot", "--scrub"]);
    assert!(out.status.success(), "first run: {}", text(&out));

    // Rot one byte of the stored copy, keeping its size and mtime.
    let copy = stored(&site.root.join("rsync/squid"), &src).join(&manifest.plain_file);
    let before = std::fs::metadata(&copy).expect("the stored copy exists");
    let mut bytes = std::fs::read(&copy).expect("read the stored copy");
    assert!(!bytes.is_empty(), "the plain file has content");
    bytes[0] ^= 0x20;
    std::fs::write(&copy, &bytes).expect("rot the stored copy");
    let mtime = filetime(&before);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &copy,
        &mtime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("put the mtime back");
    let original = std::fs::read(src.join(&manifest.plain_file)).expect("read the source file");
    assert_ne!(std::fs::read(&copy).unwrap(), original);

    // The runner draws scrubs with rsync-scrub-probability (0.5 here) from
    // an injectable seed: find one seed that draws a normal run and one that
    // draws a scrub, with the runner's own planning function.
    let seed_for = |want: Check| {
        (0u64..1000)
            .find(|s| {
                let unit = Unit::new(
                    sources::find("rsync").unwrap(),
                    UnitPath::parse("rsync/squid").unwrap(),
                    &["squid"],
                    0.5,
                );
                plan_checks(&[unit], &mut StdRng::seed_from_u64(*s), false)[0].check == want
            })
            .expect("some seed draws it")
            .to_string()
    };

    // A normal run trusts size and mtime: the rot stays.
    let out = run(env::strata(&site.home)
        .env("STRATA_SEED", seed_for(Check::Normal))
        .arg("-c")
        .arg(&site.config)
        .args(["run", "--no-snapshot"]));
    assert!(out.status.success(), "normal run: {}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("(scrub)"));
    assert_ne!(
        std::fs::read(&copy).unwrap(),
        original,
        "a normal run does not see the rot"
    );

    // A scrub run compares content: repaired, and said so.
    let out = site.strata(&["run", "--no-snapshot", "--seed", &seed_for(Check::Scrub)]);
    assert!(out.status.success(), "scrub run: {}", text(&out));
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        original,
        "the scrub repaired the copy"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("start rsync/squid (scrub)") && stdout.contains("1 files differed"),
        "{}",
        text(&out)
    );
    let log = site.unit_out_log("rsync/squid");
    assert!(
        log.contains("scrub: repaired 1 files"),
        "the unit log says what the scrub repaired:\n{log}"
    );
    assert!(log.contains("--checksum"), "{log}");
}

fn filetime(m: &std::fs::Metadata) -> nix::sys::time::TimeSpec {
    use std::os::unix::fs::MetadataExt as _;
    nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec())
}

#[test]
fn root_rsync_faults_fail_their_unit_with_the_cause() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let Some(user) = SystemUser::create("ft") else {
        return;
    };
    let scratch = scratch();
    let src = scratch.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello"), "hello\n").unwrap();
    let marks = scratch.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let mark = |name: &str| marks.join(name).display().to_string();

    let site = Site::new(user);
    let key = sshd.identity_file_for(site.user.uid, site.user.gid);
    site.write_config(
        0.0,
        &[
            HostEntry {
                host: sshd::HOST,
                alias: "good",
                mount: &src,
                port: sshd.port(),
                identity: &key,
                pre: Some(format!("touch {}", mark("good-pre"))),
                post: Some(format!("touch {}", mark("good-post"))),
            },
            // why: sshd listens on 127.0.0.1 only, so this address refuses: an unreachable host
            HostEntry {
                host: "127.0.0.2",
                alias: "down",
                mount: &src,
                port: sshd.port(),
                identity: &key,
                pre: None,
                post: None,
            },
            HostEntry {
                host: "localhost",
                alias: "prefail",
                mount: &src,
                port: sshd.port(),
                identity: &key,
                pre: Some("echo 'the database would not freeze' >&2; exit 3".into()),
                post: Some(format!("touch {}", mark("prefail-post"))),
            },
        ],
    );

    let out = site.strata(&["run", "--no-snapshot"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    // The good unit finished, pre and post ran.
    assert!(stdout.contains("done  rsync/good ok"), "{all}");
    assert!(marks.join("good-pre").exists() && marks.join("good-post").exists());
    assert!(
        stored(&site.root.join("rsync/good"), &src)
            .join("hello")
            .is_file()
    );

    // The unreachable host failed with ssh's own words in its excerpt.
    assert!(stderr.contains("rsync/down FAILED"), "{all}");
    let down = excerpt(&stderr, "rsync/down");
    assert!(
        down.contains("ssh: connect to host 127.0.0.2") && down.contains("Connection refused"),
        "ssh's error is in the failure excerpt:\n{down}"
    );
    assert!(down.contains("cannot reach 127.0.0.2 over ssh"), "{down}");

    // The failed pre: no rsync, no post, and the pre's own message.
    let pre = excerpt(&stderr, "rsync/prefail");
    assert!(
        pre.contains("the pre command on localhost failed") && pre.contains("would not freeze"),
        "{pre}"
    );
    assert!(!site.unit_out_log("rsync/prefail").contains("rsync -aHRxi"));
    assert!(
        !site.root.join("rsync/prefail").join("tmp").exists(),
        "rsync did not run"
    );
    assert!(!marks.join("prefail-post").exists(), "post did not run");

    // A changed host key fails the unit, naming the problem.
    sshd.rotate_host_key();
    let out = site.strata(&["run", "--no-snapshot", "--only", "rsync/good"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let good = excerpt(&stderr, "rsync/good");
    assert!(
        good.contains("the ssh host key of 127.0.0.1 does not match")
            && good.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            && good.contains("ssh-keygen -f"),
        "the key problem is named:\n{good}"
    );
}

/// The failure block of one unit in `strata run`'s stderr.
fn excerpt(stderr: &str, unit: &str) -> String {
    let start = stderr
        .find(&format!("{unit} FAILED"))
        .unwrap_or_else(|| panic!("no failure of {unit} in:\n{stderr}"));
    let rest = &stderr[start..];
    // why: the next unit's block starts at a line that is not indented
    let end = rest[1..].find("\nrsync/").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

/// An rsync that refuses `--acls`/`--xattrs` (as rsync 2.6 did) makes strata
/// retry once without them; a local transport needs no ssh; a restore passes
/// the arguments after `--` on to rsync.
#[test]
fn rsync_retries_without_acls_and_xattrs_for_an_old_far_side() {
    if !env::require("rsync (apt: rsync)", env::have_program("rsync")) {
        return;
    }
    let home = TestHome::new();
    let src = home.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f"), "data\n").unwrap();
    let old = home.join("old-rsync");
    std::fs::write(
        &old,
        "#!/bin/sh\nfor a; do case $a in --acls|--xattrs) \
         echo 'rsync: --acls: unknown option' >&2; exit 2;; esac; done\nexec rsync \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = home.join("backup");
    std::fs::create_dir(&root).unwrap();
    let config = home.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  rsync-local-binary: {}\n\
             rsync:\n  appliance.example.org:\n    mounts: [{}]\n    transport: local\n",
            yaml(&root.display().to_string()),
            yaml(&old.display().to_string()),
            yaml(&src.display().to_string()),
        ),
    )
    .unwrap();
    let out = run(env::strata(&home).arg("-c").arg(&config).args([
        "--allow-root",
        "rsync",
        "backup",
        "appliance",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("retrying once without --acls --xattrs"),
        "{}",
        text(&out)
    );
    let copy = stored(&root.join("rsync/appliance"), &src);
    assert_eq!(std::fs::read(copy.join("d/f")).unwrap(), b"data\n");

    // Restore to the local host: arguments after `--` reach rsync.
    if !env::is_root() {
        // why: -M--super makes the receiver chown, which only root may do
        return;
    }
    let dest = home.join("restored");
    std::fs::create_dir(&dest).unwrap();
    let restore = |extra: &[&str]| {
        run(env::strata(&home)
            .arg("-c")
            .arg(&config)
            .args(["rsync", "restore"])
            .arg(&copy)
            .arg("appliance")
            .arg(&dest)
            .arg("--")
            .args(extra))
    };
    let out = restore(&["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--dry-run"),
        "{}",
        text(&out)
    );
    assert!(!dest.join("d").exists(), "a dry run restores nothing");
    let out = restore(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(dest.join("d/f")).unwrap(), b"data\n");
}

/// What a rewrite of an entry would change: its inode (a new file renamed
/// over it), size, mtime, ctime (any write, chmod, chown or xattr set) and
/// xattrs (the `user.rsync.*` attributes `--fake-super` keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    xattrs: Vec<(std::ffi::OsString, Vec<u8>)>,
}

/// The [`Stamp`] of every entry under `dir` (`dir` itself included, as the
/// empty path), symlinks not followed.
fn stamps(dir: &Path) -> std::collections::BTreeMap<PathBuf, Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = std::collections::BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.unwrap_or_else(|e| panic!("walk {}: {e}", dir.display()));
        let m = entry
            .metadata()
            .unwrap_or_else(|e| panic!("lstat {}: {e}", entry.path().display()));
        // why: the xattr crate reads a symlink's own attributes (llistxattr)
        let mut xattrs: Vec<_> = xattr::list(entry.path())
            .unwrap_or_else(|e| panic!("listxattr {}: {e}", entry.path().display()))
            .map(|name| {
                let value = xattr::get(entry.path(), &name)
                    .unwrap_or_else(|e| panic!("getxattr {}: {e}", entry.path().display()))
                    .unwrap_or_default();
                (name, value)
            })
            .collect();
        xattrs.sort();
        let rel = entry.path().strip_prefix(dir).unwrap().to_owned();
        out.insert(
            rel,
            Stamp {
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
                xattrs,
            },
        );
    }
    out
}

/// Every path whose stamp differs between `before` and `after` (or that
/// exists on one side only), one per line, with what differs.
fn rewritten(
    before: &std::collections::BTreeMap<PathBuf, Stamp>,
    after: &std::collections::BTreeMap<PathBuf, Stamp>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, b) in before {
        match after.get(path) {
            None => out.push(format!("{}: removed", path.display())),
            Some(a) if a != b => {
                let mut what = Vec::new();
                if a.ino != b.ino {
                    what.push("inode");
                }
                if a.size != b.size {
                    what.push("size");
                }
                if a.mtime != b.mtime {
                    what.push("mtime");
                }
                if a.ctime != b.ctime {
                    what.push("ctime");
                }
                if a.xattrs != b.xattrs {
                    what.push("xattrs");
                }
                out.push(format!("{}: {}", path.display(), what.join(", ")));
            }
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("{}: new", path.display()));
    }
    out
}

/// Taking over a Deltaic root (issue 17): a unit Deltaic's rsync source
/// wrote (its exact argv, run as the backup user over ssh) is continued by
/// `strata rsync backup` without rewriting one entry when nothing changed at
/// the source; a changed file is then updated, and only it and its directory
/// change.
#[test]
fn root_rsync_takes_over_a_deltaic_unit_rewriting_nothing_unchanged() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(user) = SystemUser::create("dt") else {
        return;
    };
    let scratch = scratch();
    let src = scratch.path().join("src");
    let manifest = build_hostile_tree(&src, 300);
    let site = Site::new(user);
    let key = sshd.identity_file_for(site.user.uid, site.user.gid);
    site.write_config(
        0.0,
        &[HostEntry {
            host: sshd::HOST,
            alias: "legacy",
            mount: &src,
            port: sshd.port(),
            identity: &key,
            pre: None,
            post: None,
        }],
    );

    // Deltaic's backup_host: make_dir_path(root_dir), then rsync with its
    // own options; its `--rsh` value first, then the fixture's port, key and
    // known hosts (what Deltaic's user had in ~/.ssh/config).
    let unit = site.root.join("rsync/legacy");
    let out = run(site.home.command("mkdir").arg("-p").arg(&unit));
    assert!(out.status.success(), "mkdir: {}", text(&out));
    let mut rsh: Vec<String> = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"]
        .map(str::to_owned)
        .to_vec();
    rsh.extend(sshd.ssh_options_with(&key));
    let deltaic = run(site
        .home
        .command("rsync")
        .args([
            "-aHRxi",
            "--acls",
            "--xattrs",
            "--fake-super",
            "--delete",
            "--delete-excluded",
            "--numeric-ids",
            "--stats",
            "--partial",
        ])
        .arg(format!("--rsh={}", sshd::rsh_string(&rsh)))
        .arg(format!("root@{}:{}", sshd::HOST, src.display()))
        .arg(&unit));
    assert!(
        matches!(deltaic.status.code(), Some(0 | 24)),
        "Deltaic's rsync: {}",
        text(&deltaic)
    );
    let copy = stored(&unit, &src);
    assert!(
        copy.join(&manifest.plain_file).is_file(),
        "Deltaic's rsync filled the unit"
    );
    let before = stamps(&unit);
    let outer = outer_mtimes(&src);

    // strata's first backup over it, nothing changed at the source.
    let out = site.strata(&["rsync", "backup", "legacy"]);
    assert!(out.status.success(), "strata rsync backup: {}", text(&out));
    let mut changed = rewritten(&before, &stamps(&unit));
    changed.retain(|line| !outer_changed(&outer, line));
    assert!(
        changed.is_empty(),
        "strata rewrote {} of {} entries of Deltaic's unit:\n{}\n{}",
        changed.len(),
        before.len(),
        changed.join("\n"),
        text(&out)
    );

    // A changed file is updated; it and its directory alone change.
    let source_file = src.join(&manifest.plain_file);
    let mut data = std::fs::read(&source_file).unwrap();
    data.extend_from_slice(b"one more line\n");
    std::fs::write(&source_file, &data).unwrap();
    let out = site.strata(&["rsync", "backup", "legacy"]);
    assert!(out.status.success(), "second backup: {}", text(&out));
    assert_eq!(
        std::fs::read(copy.join(&manifest.plain_file)).unwrap(),
        data,
        "the change reached the unit"
    );
    let file_rel = copy.join(&manifest.plain_file);
    let file_rel = file_rel.strip_prefix(&unit).unwrap();
    let dir_rel = file_rel.parent().unwrap();
    let mut changed = rewritten(&before, &stamps(&unit));
    changed.retain(|line| {
        let path = line.rsplit_once(": ").unwrap().0;
        Path::new(path) != file_rel && Path::new(path) != dir_rel && !outer_changed(&outer, line)
    });
    assert!(
        changed.is_empty(),
        "besides {} and its directory, strata rewrote:\n{}",
        file_rel.display(),
        changed.join("\n")
    );
}

/// The mtimes of the directories above `mount` (`tmp`, `tmp/scratch...`),
/// keyed by where `-R` stores them in the unit. They are outside the tree:
/// other tests create files in /tmp meanwhile, and rsync rightly copies the
/// new mtime.
fn outer_mtimes(mount: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    mount
        .ancestors()
        .skip(1)
        .filter_map(|a| {
            let rel = a.strip_prefix("/").ok()?;
            (!rel.as_os_str().is_empty()).then(|| {
                (
                    rel.to_owned(),
                    std::fs::metadata(a).unwrap().modified().unwrap(),
                )
            })
        })
        .collect()
}

/// True when `line` (from [`rewritten`]) names an outer directory whose
/// mtime at the source changed since `outer` was taken, and only its times.
fn outer_changed(outer: &[(PathBuf, std::time::SystemTime)], line: &str) -> bool {
    let (path, what) = line.rsplit_once(": ").unwrap();
    outer.iter().any(|(rel, mtime)| {
        Path::new(path) == rel
            && what == "mtime, ctime"
            && std::fs::metadata(Path::new("/").join(rel))
                .unwrap()
                .modified()
                .unwrap()
                != *mtime
    })
}
