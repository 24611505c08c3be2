//! The hostile source tree of the rsync round trip (issue 4), reused by the
//! archive tests: every attribute a backup can lose, on real files.
//!
//! [`build_hostile_tree`] creates, under a root directory: several numeric
//! owners and groups without passwd entries, setuid/setgid/sticky and odd
//! modes, POSIX access and default ACLs (through `setfacl`), user xattrs with
//! binary and empty values, a group of three hard links, symlinks (dangling,
//! absolute, relative, to a directory, owned by another uid), a fifo, a char
//! and a block device node, sparse files (a 64 MiB hole between two bytes,
//! and one that is all hole), names with spaces, a newline, a tab, a
//! backslash, glob characters, a leading dash and non-UTF-8 bytes, a 0700
//! directory owned by another uid, an empty directory, and N small files
//! spread over subdirectories. Every entry gets a distinct nanosecond mtime
//! (utimensat, symlinks included), set last and deepest first.
//!
//! Ownership and device nodes need root; ACLs and xattrs need filesystem
//! support. What cannot be built is left out and listed in
//! [`TreeManifest::skipped`], never silently. The tree is deterministic: the
//! same arguments build the same tree (same names, contents, modes, owners,
//! mtimes).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{AT_FDCWD, AtFlags};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, mkfifo};

use super::env;

/// A feature of the hostile tree that may be skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Entries owned by other uids and gids (needs root).
    Ownership,
    /// Access and default POSIX ACLs (needs `setfacl` and filesystem
    /// support).
    Acls,
    /// `user.*` xattrs (needs filesystem support).
    Xattrs,
    /// Char and block device nodes (needs root / `CAP_MKNOD`).
    DeviceNodes,
    /// Holes in the sparse files (needs filesystem support).
    Holes,
}

/// A feature left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub feature: Feature,
    pub reason: String,
}

/// What [`build_hostile_tree`] built. Paths are relative to `root`.
#[derive(Clone, Debug)]
pub struct TreeManifest {
    pub root: PathBuf,
    /// Features that could not be built here.
    pub skipped: Vec<Skipped>,
    /// Number of entries under `root` (`root` not counted).
    pub entries: usize,
    /// The small files, and the directory holding their subdirectories.
    pub small_files: usize,
    pub small_files_dir: PathBuf,
    /// A plain regular file (for the scrub test: change a byte, keep size
    /// and mtime).
    pub plain_file: PathBuf,
    /// Three names of one inode.
    pub hard_links: [PathBuf; 3],
    /// 1 byte, a 64 MiB hole, 1 byte.
    pub sparse_file: PathBuf,
    /// 16 MiB, all hole.
    pub fully_sparse_file: PathBuf,
    /// A file with an access ACL.
    pub acl_file: PathBuf,
    /// A directory with access and default ACLs, and files that inherited
    /// them.
    pub default_acl_dir: PathBuf,
    /// A file with `user.*` xattrs, one of them binary with NUL bytes.
    pub xattr_file: PathBuf,
    pub fifo: PathBuf,
    /// Char device 1:3.
    pub char_device: PathBuf,
    /// Block device 7:0.
    pub block_device: PathBuf,
    pub dangling_symlink: PathBuf,
    /// A 0700 directory owned by uid 1234 (by the builder when not root).
    pub restricted_dir: PathBuf,
    /// The entries whose names are not plain ASCII words.
    pub odd_names: Vec<PathBuf>,
}

impl TreeManifest {
    /// True unless `feature` was skipped.
    pub fn built(&self, feature: Feature) -> bool {
        !self.skipped.iter().any(|s| s.feature == feature)
    }

    /// The skipped features, one per line, for a test's output.
    pub fn skipped_summary(&self) -> String {
        let mut out = String::new();
        for s in &self.skipped {
            let _ = writeln!(out, "{:?}: {}", s.feature, s.reason);
        }
        out
    }
}

/// Owners used in the tree; none needs a passwd or group entry.
pub const UID_A: u32 = 1234;
pub const GID_A: u32 = 5678;
pub const UID_B: u32 = 4321;
pub const GID_B: u32 = 8765;
/// Small files per subdirectory of `many/`.
const FILES_PER_DIR: usize = 100;
/// The hole of the sparse file.
const HOLE: u64 = 64 << 20;
/// Size of the all-hole file.
const ALL_HOLE: u64 = 16 << 20;
/// The first mtime handed out, seconds since the epoch (2020-09-13).
const MTIME_BASE: i64 = 1_600_000_000;

/// Builds the hostile tree under `root` (created if missing, must be empty)
/// with `small_files` small files, and returns what was built. Panics on
/// an unexpected I/O error; features this machine cannot provide are
/// skipped and listed in the manifest.
pub fn build_hostile_tree(root: &Path, small_files: usize) -> TreeManifest {
    fs::create_dir_all(root).expect("create the tree root");
    assert!(
        fs::read_dir(root)
            .expect("read the tree root")
            .next()
            .is_none(),
        "build_hostile_tree needs an empty root: {}",
        root.display()
    );
    let mut b = Builder {
        root: root.to_owned(),
        root_user: env::is_root(),
        skipped: Vec::new(),
    };
    if !b.root_user {
        b.skip(
            Feature::Ownership,
            "not root: chown to other uids needs root",
        );
        b.skip(Feature::DeviceNodes, "not root: mknod needs CAP_MKNOD");
    }
    b.chmod("", 0o755);
    b.owners_and_modes();
    b.acls();
    b.xattrs();
    b.links();
    b.special_files();
    b.sparse_files();
    let odd_names = b.odd_names();
    b.small_files(small_files);

    let entries = b.set_all_mtimes();
    TreeManifest {
        root: root.to_owned(),
        skipped: b.skipped,
        entries,
        small_files,
        small_files_dir: "many".into(),
        plain_file: "files/plain.txt".into(),
        hard_links: ["links/a".into(), "links/b".into(), "links/sub/c".into()],
        sparse_file: "sparse/holey".into(),
        fully_sparse_file: "sparse/all-hole".into(),
        acl_file: "acl/file".into(),
        default_acl_dir: "acl/default-dir".into(),
        xattr_file: "xattr/file".into(),
        fifo: "special/fifo".into(),
        char_device: "special/null".into(),
        block_device: "special/loop0".into(),
        dangling_symlink: "links/dangling".into(),
        restricted_dir: "dirs/restricted".into(),
        odd_names,
    }
}

/// The tree under construction and what was skipped so far.
struct Builder {
    root: PathBuf,
    root_user: bool,
    skipped: Vec<Skipped>,
}

impl Builder {
    /// Directories and files with several owners, groups and modes.
    fn owners_and_modes(&mut self) {
        self.dir("files", 0o755);
        self.file(
            "files/plain.txt",
            b"strata hostile tree: a plain file\n",
            0o644,
        );
        self.chown("files/plain.txt", UID_A, GID_A);
        self.file("files/readonly", b"read only\n", 0o444);
        self.chown("files/readonly", UID_B, GID_B);
        self.file("files/mode-zero", b"no permissions at all\n", 0o000);
        self.file("files/exec-only", b"#!/bin/sh\ntrue\n", 0o711);
        // why: chown clears setuid/setgid, so owners first, then the mode.
        self.file("files/setuid", b"setuid\n", 0o644);
        self.chown("files/setuid", UID_A, GID_A);
        self.chmod("files/setuid", 0o4755);
        self.file("files/setgid", b"setgid\n", 0o644);
        self.chown("files/setgid", 0, GID_B);
        self.chmod("files/setgid", 0o2755);
        self.file("files/all-special-bits", b"ugs\n", 0o644);
        self.chmod("files/all-special-bits", 0o7777);
        self.dir("dirs", 0o755);
        self.dir("dirs/sticky", 0o755);
        self.chmod("dirs/sticky", 0o1777);
        self.dir("dirs/setgid", 0o755);
        self.chown("dirs/setgid", 0, GID_A);
        self.chmod("dirs/setgid", 0o2775);
        self.dir("dirs/restricted", 0o755);
        self.file(
            "dirs/restricted/secret",
            b"only uid 1234 reads this\n",
            0o600,
        );
        self.chown("dirs/restricted/secret", UID_A, GID_A);
        self.chown("dirs/restricted", UID_A, GID_A);
        self.chmod("dirs/restricted", 0o700);
        self.dir("dirs/empty", 0o755);
    }

    /// An access ACL on a file, access + default ACLs on a directory, and
    /// entries created inside it afterwards that inherit the default.
    fn acls(&mut self) {
        self.dir("acl", 0o755);
        self.file("acl/file", b"a file with an access ACL\n", 0o640);
        self.dir("acl/default-dir", 0o750);
        let acls_ok = self.setfacl(
            "acl/file",
            &["-m", "u:1234:rw-,g:5678:r--,u:4321:r--,m::rw-"],
        ) && self.setfacl("acl/default-dir", &["-m", "u:4321:r-x,m::r-x"])
            && self.setfacl(
                "acl/default-dir",
                &["-d", "-m", "u:1234:rwx,g:5678:r-x,m::rwx,o::---"],
            );
        if acls_ok {
            self.file(
                "acl/default-dir/inherited",
                b"inherits the default ACL\n",
                0o644,
            );
            self.dir("acl/default-dir/subdir", 0o755);
        }
    }

    /// `user.*` xattrs on a file (text, binary, empty, 1000 bytes) and a
    /// directory.
    fn xattrs(&mut self) {
        self.dir("xattr", 0o755);
        self.file("xattr/file", b"a file with xattrs\n", 0o644);
        let binary: Vec<u8> = (0..=255u8).collect();
        let big: Vec<u8> = (0..1000u32)
            .map(|i| u8::try_from(i % 251).expect("< 251"))
            .collect();
        let _ = self.xattr("xattr/file", "user.text", b"hello world")
            && self.xattr("xattr/file", "user.binary", &binary)
            && self.xattr("xattr/file", "user.empty", b"")
            && self.xattr("xattr/file", "user.big", &big)
            && self.xattr("xattr", "user.on-a-directory", b"yes");
    }

    /// Three hard links, and symlinks: dangling, absolute, relative, to a
    /// directory, owned by another uid.
    fn links(&mut self) {
        self.dir("links", 0o755);
        self.dir("links/sub", 0o755);
        self.file("links/a", b"three names, one inode\n", 0o644);
        self.hard_link("links/a", "links/b");
        self.hard_link("links/a", "links/sub/c");
        self.symlink("does/not/exist", "links/dangling");
        self.symlink("/etc/passwd", "links/absolute");
        self.symlink("../files/plain.txt", "links/relative");
        self.symlink("../dirs", "links/to-a-directory");
        self.symlink("a", "links/owned-symlink");
        self.lchown("links/owned-symlink", UID_B, GID_B);
    }

    /// A fifo, a char device and a block device.
    fn special_files(&mut self) {
        self.dir("special", 0o755);
        mkfifo(&self.path("special/fifo"), Mode::from_bits_truncate(0o640))
            .expect("mkfifo special/fifo");
        self.chmod("special/fifo", 0o640);
        if self.device("special/null", SFlag::S_IFCHR, (1, 3), 0o666)
            && self.device("special/loop0", SFlag::S_IFBLK, (7, 0), 0o660)
        {
            self.chown("special/loop0", 0, 6);
        }
    }

    /// A file with a 64 MiB hole between two bytes, and one all hole.
    fn sparse_files(&mut self) {
        self.dir("sparse", 0o755);
        let holey = File::create(self.path("sparse/holey")).expect("create sparse/holey");
        holey.write_all_at(b"<", 0).expect("write the first byte");
        holey
            .write_all_at(b">", HOLE + 1)
            .expect("write the last byte");
        drop(holey);
        let all_hole = File::create(self.path("sparse/all-hole")).expect("create sparse/all-hole");
        all_hole.set_len(ALL_HOLE).expect("extend sparse/all-hole");
        drop(all_hole);
        self.chmod("sparse/holey", 0o644);
        self.chmod("sparse/all-hole", 0o644);
        let blocks = fs::metadata(self.path("sparse/holey"))
            .expect("stat sparse/holey")
            .blocks();
        if blocks * 512 >= HOLE {
            self.skip(
                Feature::Holes,
                &format!(
                    "the filesystem under {} allocated the hole ({blocks} blocks)",
                    self.root.display()
                ),
            );
        }
    }

    /// Files (and a directory) with hostile names; returns their paths.
    fn odd_names(&mut self) -> Vec<PathBuf> {
        self.dir("names", 0o755);
        let odd: [&[u8]; 10] = [
            b"names/with space",
            b"names/new\nline",
            b"names/tab\there",
            b"names/latin1-\xe9t\xe9",
            b"names/bad-utf8-\xff\xfe\x80",
            b"names/-dash-first",
            b"names/back\\slash",
            b"names/glob*?[x]",
            b"names/caf\xc3\xa9 utf-8",
            b"names/ trailing and leading space ",
        ];
        let mut odd_names = Vec::new();
        for (i, name) in odd.iter().enumerate() {
            let rel = PathBuf::from(std::ffi::OsStr::from_bytes(name));
            self.file(&rel, format!("odd name {i}\n").as_bytes(), 0o644);
            odd_names.push(rel);
        }
        let odd_dir = PathBuf::from(std::ffi::OsStr::from_bytes(b"names/dir with\nnewline \xff"));
        self.dir(&odd_dir, 0o755);
        self.file(odd_dir.join("inside"), b"inside an odd directory\n", 0o644);
        odd_names.push(odd_dir);
        odd_names
    }

    /// `n` small files of 0-6 lines, 100 per directory under `many/`.
    fn small_files(&mut self, n: usize) {
        self.dir("many", 0o755);
        for i in 0..n {
            let dir = PathBuf::from(format!("many/d{:03}", i / FILES_PER_DIR));
            if i % FILES_PER_DIR == 0 {
                self.dir(&dir, 0o755);
            }
            let line = format!("small file {i}\n");
            let mode = [0o644, 0o600, 0o664][i % 3];
            self.file(
                dir.join(format!("f{i:05}")),
                line.repeat(i % 7).as_bytes(),
                mode,
            );
            if i % 10 == 3 {
                self.chown(
                    dir.join(format!("f{i:05}")),
                    UID_A + u32::try_from(i % 4).expect("< 4"),
                    GID_A,
                );
            }
        }
    }

    fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    fn skip(&mut self, feature: Feature, reason: &str) {
        if !self.skipped.iter().any(|s| s.feature == feature) {
            self.skipped.push(Skipped {
                feature,
                reason: reason.to_owned(),
            });
        }
    }

    fn dir(&self, rel: impl AsRef<Path>, mode: u32) {
        let path = self.path(rel);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        self.chmod(&path, mode);
    }

    fn file(&self, rel: impl AsRef<Path>, contents: &[u8], mode: u32) {
        let path = self.path(rel);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.chmod(&path, mode);
    }

    /// chmod (never on a symlink).
    fn chmod(&self, rel: impl AsRef<Path>, mode: u32) {
        let path = self.path(rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
    }

    /// chown when root; otherwise leaves the builder's own ids (the
    /// Ownership feature is already marked skipped).
    fn chown(&self, rel: impl AsRef<Path>, uid: u32, gid: u32) {
        self.chown_at(rel.as_ref(), uid, gid, AtFlags::empty());
    }

    fn lchown(&self, rel: impl AsRef<Path>, uid: u32, gid: u32) {
        self.chown_at(rel.as_ref(), uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW);
    }

    fn chown_at(&self, rel: &Path, uid: u32, gid: u32, flags: AtFlags) {
        if !self.root_user {
            return;
        }
        let path = self.path(rel);
        fchownat(
            AT_FDCWD,
            &path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            flags,
        )
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", path.display()));
    }

    fn hard_link(&self, existing: &str, new: &str) {
        fs::hard_link(self.path(existing), self.path(new))
            .unwrap_or_else(|e| panic!("ln {existing} {new}: {e}"));
    }

    fn symlink(&self, target: &str, rel: &str) {
        symlink(target, self.path(rel)).unwrap_or_else(|e| panic!("ln -s {target} {rel}: {e}"));
    }

    /// Sets a `user.*` xattr; false (and Xattrs skipped) when the
    /// filesystem refuses.
    fn xattr(&mut self, rel: &str, name: &str, value: &[u8]) -> bool {
        match xattr::set(self.path(rel), name, value) {
            Ok(()) => true,
            Err(e) => {
                self.skip(Feature::Xattrs, &format!("setxattr {name} on {rel}: {e}"));
                false
            }
        }
    }

    /// Runs `setfacl ARGS rel`; false (and Acls skipped) when setfacl is
    /// missing or fails.
    // why: ACLs are set with the real setfacl, as an administrator would.
    #[allow(clippy::disallowed_methods)]
    fn setfacl(&mut self, rel: &str, args: &[&str]) -> bool {
        let Some(setfacl) = env::find_program("setfacl") else {
            self.skip(Feature::Acls, "setfacl not installed (apt: acl)");
            return false;
        };
        let out = Command::new(setfacl)
            .args(args)
            .arg(self.path(rel))
            .output()
            .expect("run setfacl");
        if out.status.success() {
            return true;
        }
        let reason = format!(
            "setfacl {} {rel}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.skip(Feature::Acls, &reason);
        false
    }

    /// Creates a device node; false (and `DeviceNodes` skipped) when not
    /// permitted.
    fn device(&mut self, rel: &str, kind: SFlag, (major, minor): (u64, u64), mode: u32) -> bool {
        if !self.root_user {
            return false;
        }
        let path = self.path(rel);
        match mknod(
            &path,
            kind,
            Mode::from_bits_truncate(mode),
            makedev(major, minor),
        ) {
            Ok(()) => {
                self.chmod(rel, mode);
                true
            }
            // why: root in a user namespace or without CAP_MKNOD.
            Err(e) => {
                self.skip(Feature::DeviceNodes, &format!("mknod {rel}: {e}"));
                false
            }
        }
    }

    /// Gives every entry, root included, a distinct nanosecond mtime (and
    /// the same atime), deepest first and without following symlinks.
    /// Returns the number of entries below the root.
    fn set_all_mtimes(&self) -> usize {
        let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(&self.root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.expect("walk the built tree").into_path())
            .collect();
        let entries = paths.len() - 1;
        // why: stable order first (sorted walk), so mtimes are reproducible;
        // then deepest first, so setting a child does not touch a parent's
        // mtime after the parent was set.
        let order: Vec<(usize, PathBuf)> = {
            let mut indexed: Vec<(usize, PathBuf)> = paths.drain(..).enumerate().collect();
            indexed.sort_by_key(|(_, p)| std::cmp::Reverse(p.components().count()));
            indexed
        };
        for (i, path) in order {
            let n = i64::try_from(i).expect("entry count fits i64");
            // why: distinct seconds and nanoseconds, never a round number.
            let ts = TimeSpec::new(MTIME_BASE + n * 61, (n * 7_919 + 123_457) % 1_000_000_000);
            utimensat(AT_FDCWD, &path, &ts, &ts, UtimensatFlags::NoFollowSymlink)
                .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt as _;

    use super::*;
    use crate::support::treecmp::{
        CompareOptions, DiffKind, Difference, assert_trees_equal, compare_trees, format_differences,
    };

    #[test]
    fn hostile_tree_builds_what_it_can_and_equals_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = build_hostile_tree(&dir.path().join("src"), 20);
        if env::is_root() {
            assert!(m.built(Feature::Ownership) && m.built(Feature::DeviceNodes));
        } else {
            assert!(!m.built(Feature::Ownership) && !m.built(Feature::DeviceNodes));
            eprintln!("not root; skipped:\n{}", m.skipped_summary());
        }
        assert!(root_path_exists(&m, &m.sparse_file) && root_path_exists(&m, &m.fifo));
        assert_eq!(
            m.built(Feature::DeviceNodes),
            root_path_exists(&m, &m.char_device)
        );
        // why: as non-root, files/mode-zero (0000) is unreadable to its own
        // owner, and the comparison must say so rather than pass.
        let diffs = compare_trees(&m.root, &m.root, &CompareOptions::default());
        if env::is_root() {
            assert!(diffs.is_empty(), "{}", format_differences(&diffs, 20));
        } else {
            assert!(
                diffs
                    .iter()
                    .all(|d| matches!(d.kind, DiffKind::Unreadable { .. })),
                "{}",
                format_differences(&diffs, 20)
            );
        }
    }

    fn root_path_exists(m: &TreeManifest, rel: &Path) -> bool {
        m.root.join(rel).symlink_metadata().is_ok()
    }

    #[test]
    fn root_hostile_tree_smoke() {
        if !env::require("root (owners, device nodes)", env::is_root()) {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("src");
        let m = build_hostile_tree(&root, 250);
        assert!(
            m.skipped.is_empty(),
            "skipped on this machine:\n{}",
            m.skipped_summary()
        );
        assert_eq!(m.small_files, 250);
        assert!(m.entries > 250 + 40, "{}", m.entries);

        let meta = |rel: &Path| fs::symlink_metadata(root.join(rel)).expect("lstat");
        let null = meta(&m.char_device);
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert!(meta(&m.block_device).file_type().is_block_device());
        assert!(meta(&m.fifo).file_type().is_fifo());
        let restricted = meta(&m.restricted_dir);
        assert_eq!(
            (
                restricted.uid(),
                restricted.gid(),
                restricted.mode() & 0o7777
            ),
            (UID_A, GID_A, 0o700)
        );
        assert_eq!(meta(Path::new("files/setuid")).mode() & 0o7777, 0o4755);
        assert_eq!(meta(Path::new("dirs/sticky")).mode() & 0o7777, 0o1777);
        let holey = meta(&m.sparse_file);
        assert_eq!(holey.len(), HOLE + 2);
        assert!(holey.blocks() * 512 < 1 << 20, "{} blocks", holey.blocks());
        assert_eq!(meta(&m.fully_sparse_file).blocks(), 0);
        for link in &m.hard_links {
            assert_eq!(meta(link).nlink(), 3);
            assert_eq!(meta(link).ino(), meta(&m.hard_links[0]).ino());
        }
        assert!(!root.join(&m.dangling_symlink).exists());
        assert_eq!(meta(&m.dangling_symlink).uid(), 0);
        assert_eq!(meta(Path::new("links/owned-symlink")).uid(), UID_B);
        let binary = xattr::get(root.join(&m.xattr_file), "user.binary").expect("getxattr");
        assert_eq!(binary, Some((0..=255u8).collect::<Vec<u8>>()));
        for (rel, name) in [
            (&m.acl_file, "system.posix_acl_access"),
            (&m.default_acl_dir, "system.posix_acl_access"),
            (&m.default_acl_dir, "system.posix_acl_default"),
        ] {
            assert!(
                xattr::get(root.join(rel), name)
                    .expect("getxattr")
                    .is_some(),
                "{name} on {rel:?}"
            );
        }
        let inherited = m.default_acl_dir.join("inherited");
        assert!(
            xattr::get(root.join(inherited), "system.posix_acl_access")
                .expect("getxattr")
                .is_some(),
            "the default ACL was inherited"
        );
        let mtime = meta(&m.plain_file);
        assert_ne!(mtime.mtime_nsec(), 0);
        assert!(
            m.odd_names
                .iter()
                .all(|n| root.join(n).symlink_metadata().is_ok())
        );

        assert_trees_equal(&root, &root, &CompareOptions::default());
        // why: deterministic, so two builds compare equal attribute by
        // attribute (inode numbers aside).
        let again = dir.path().join("again");
        build_hostile_tree(&again, 250);
        assert_trees_equal(&root, &again, &CompareOptions::default());
    }

    /// Runs a program to completion, panicking with its stderr on failure.
    // why: the copies are made by the real cp/setfacl/touch, the tools a
    // restore is compared against.
    #[allow(clippy::disallowed_methods)]
    fn run(program: &str, args: &[&std::ffi::OsStr]) {
        let out = Command::new(program).args(args).output().expect("spawn");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cp -a src dst`.
    fn cp_a(src: &Path, dst: &Path) {
        run(
            "cp",
            &[std::ffi::OsStr::new("-a"), src.as_os_str(), dst.as_os_str()],
        );
    }

    /// The mtime of `path` (not following symlinks), to put back after a
    /// mutation that should change one other attribute only.
    fn keep_mtime(path: &Path, mutate: impl FnOnce()) {
        let meta = fs::symlink_metadata(path).expect("lstat");
        mutate();
        let ts = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
        utimensat(AT_FDCWD, path, &ts, &ts, UtimensatFlags::NoFollowSymlink).expect("utimensat");
    }

    /// One change to a copy of the tree, and the difference it must cause.
    struct Mutation {
        what: &'static str,
        rel: PathBuf,
        apply: Box<dyn Fn(&Path)>,
        /// The mutation is about mtimes or presence: do not put the entry's
        /// mtime back.
        touches_mtime: bool,
        expect: fn(&DiffKind) -> bool,
    }

    fn mutation(
        what: &'static str,
        rel: impl Into<PathBuf>,
        apply: impl Fn(&Path) + 'static,
        expect: fn(&DiffKind) -> bool,
    ) -> Mutation {
        Mutation {
            what,
            rel: rel.into(),
            apply: Box::new(apply),
            touches_mtime: false,
            expect,
        }
    }

    // why: a flat table of cases reads better than splitting it to please
    // the line count.
    #[allow(clippy::too_many_lines)]
    fn mutations(m: &TreeManifest) -> Vec<Mutation> {
        let os = std::ffi::OsStr::new;
        vec![
            mutation(
                "mode",
                "files/setuid",
                |p| fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod"),
                |k| {
                    matches!(
                        k,
                        DiffKind::Mode {
                            a: 0o104_755,
                            b: 0o100_755
                        }
                    )
                },
            ),
            mutation(
                "owner of a symlink",
                "links/owned-symlink",
                |p| {
                    let root = Some(Uid::from_raw(0));
                    fchownat(AT_FDCWD, p, root, None, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .expect("lchown");
                },
                |k| matches!(k, DiffKind::Uid { a: UID_B, b: 0 }),
            ),
            mutation(
                "access ACL",
                &m.acl_file,
                move |p| run("setfacl", &[os("-m"), os("u:999:r--"), p.as_os_str()]),
                |k| matches!(k, DiffKind::Acl { .. }),
            ),
            mutation(
                "default ACL removed",
                &m.default_acl_dir,
                move |p| run("setfacl", &[os("-k"), p.as_os_str()]),
                |k| matches!(k, DiffKind::Acl { b: None, .. }),
            ),
            mutation(
                "binary xattr",
                &m.xattr_file,
                |p| xattr::set(p, "user.binary", b"\0changed").expect("setxattr"),
                |k| matches!(k, DiffKind::Xattr { .. }),
            ),
            mutation(
                "one byte, same size and mtime",
                &m.plain_file,
                |p| {
                    let file = File::options().write(true).open(p).expect("open");
                    file.write_all_at(b"S", 0).expect("write");
                },
                |k| matches!(k, DiffKind::Content { offset: 0 }),
            ),
            mutation(
                "hole filled",
                &m.sparse_file,
                move |p| {
                    let dense = p.with_extension("dense");
                    run(
                        "cp",
                        &[os("--sparse=never"), p.as_os_str(), dense.as_os_str()],
                    );
                    fs::rename(&dense, p).expect("rename");
                },
                |k| matches!(k, DiffKind::Holes { .. }),
            ),
            mutation(
                "hard link broken",
                &m.hard_links[1],
                |p| {
                    let copy = p.with_extension("copy");
                    fs::copy(p, &copy).expect("copy");
                    fs::rename(&copy, p).expect("rename");
                },
                |k| matches!(k, DiffKind::HardLinks { .. } | DiffKind::Nlink { .. }),
            ),
            mutation(
                "device number",
                &m.char_device,
                |p| {
                    fs::remove_file(p).expect("rm");
                    let mode = Mode::from_bits_truncate(0o666);
                    mknod(p, SFlag::S_IFCHR, mode, makedev(1, 5)).expect("mknod");
                },
                |k| matches!(k, DiffKind::Rdev { .. }),
            ),
            Mutation {
                touches_mtime: true,
                ..mutation(
                    "symlink mtime",
                    &m.dangling_symlink,
                    move |p| {
                        run(
                            "touch",
                            &[os("-h"), os("-d"), os("2001-01-01"), p.as_os_str()],
                        );
                    },
                    |k| matches!(k, DiffKind::Mtime { .. }),
                )
            },
            Mutation {
                touches_mtime: true,
                ..mutation(
                    "non-UTF-8 name removed",
                    &m.odd_names[4],
                    |p| fs::remove_file(p).expect("rm"),
                    |k| matches!(k, DiffKind::Missing(crate::support::treecmp::Side::B)),
                )
            },
        ]
    }

    #[test]
    fn root_hostile_tree_equals_its_cp_a_copy_and_each_mutation_is_found() {
        if !env::require("root (owners, device nodes)", env::is_root())
            || !env::require("setfacl (apt: acl)", env::have_program("setfacl"))
        {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("src");
        let m = build_hostile_tree(&src, 300);
        assert!(m.skipped.is_empty(), "{}", m.skipped_summary());
        let pristine = dir.path().join("pristine");
        cp_a(&src, &pristine);
        assert_trees_equal(&src, &pristine, &CompareOptions::default());

        for case in mutations(&m) {
            let (what, rel) = (case.what, &case.rel);
            let copy = dir.path().join("copy");
            cp_a(&src, &copy);
            let target = copy.join(rel);
            let parent = target.parent().expect("below the root").to_owned();
            // why: only the attribute under test may change: the entry and
            // its directory keep their mtimes unless mtime is the test.
            keep_mtime(&parent, || {
                if case.touches_mtime {
                    (case.apply)(&target);
                } else {
                    keep_mtime(&target, || (case.apply)(&target));
                }
            });
            let diffs = compare_trees(&src, &copy, &CompareOptions::default());
            let listing = format_differences(&diffs, 20);
            assert!(
                diffs
                    .iter()
                    .any(|d| &d.path == rel && (case.expect)(&d.kind)),
                "{what}: expected difference at {rel:?} not found in:\n{listing}"
            );
            let hard_link_case = what == "hard link broken";
            let others: Vec<&Difference> = diffs
                .iter()
                .filter(|d| &d.path != rel && !(hard_link_case && m.hard_links.contains(&d.path)))
                .collect();
            assert!(
                others.is_empty(),
                "{what}: unrelated differences:\n{listing}"
            );
            fs::remove_dir_all(&copy).expect("rm the copy");
        }
    }
}
