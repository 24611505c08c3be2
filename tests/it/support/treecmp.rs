//! Attribute-by-attribute comparison of two directory trees: the proof of
//! every round trip (rsync restore, archive unpack, drill).
//!
//! For every entry of either tree (names as raw bytes, never assumed
//! UTF-8) it compares: presence, file type, owner uid, group gid, the full
//! `st_mode` (setuid, setgid, sticky included), the POSIX ACLs as the raw
//! `system.posix_acl_access` / `system.posix_acl_default` xattrs, every other
//! xattr (names and values), hard-link structure (which names share an
//! inode) and link count, symlink targets, device numbers, size, the
//! data/hole map (`SEEK_DATA`/`SEEK_HOLE`), content (streamed), and mtime to
//! the nanosecond. [`CompareOptions`] relaxes the few checks that
//! legitimately vary; its default compares everything.
//!
//! Invariants: it never follows a symlink and never opens anything but a
//! regular file (a fifo would block). It never fails silently: anything it
//! cannot read (a missing root, a permission error) is itself reported as a
//! [`Difference`]. It does not compare atime or ctime (no tool preserves
//! ctime), directory sizes or directory link counts (both are
//! filesystem-specific).

// why: data extents are `Range<u64>`; a file with one extent is a one-element
// Vec of a range on purpose, not a mistyped `(0..n).collect()`.
#![allow(clippy::single_range_in_vec_init)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::fs::{File, Metadata};
use std::io;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{Whence, lseek};

/// How the data/hole map of regular files is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoleCheck {
    /// Both files have the same data extents (same filesystem block size
    /// assumed).
    Exact,
    /// Holes are not compared (content still is).
    Ignore,
    /// Every hole of `a` is a hole of `b`: `b` may be sparser (a restore
    /// that turns runs of zeros into holes), never denser.
    AtLeastAsSparse,
}

/// Whether one attribute is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Compare,
    Ignore,
}

/// What [`compare_trees`] compares. `Default` compares everything.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Data/hole maps of regular files.
    pub holes: HoleCheck,
    /// Modification times of directories.
    pub dir_mtime: Check,
    /// Modification times of symlinks.
    pub symlink_mtime: Check,
    /// Owner and group of symlinks (a store that keeps owners in user
    /// xattrs cannot keep a symlink's: Linux allows none on symlinks).
    pub symlink_owner: Check,
    /// Link counts of non-directories (grouping of names inside the tree is
    /// always compared; the count also sees links from outside the tree).
    pub nlink: Check,
    /// The attributes of the two root directories themselves (their
    /// contents are always compared).
    pub root: Check,
    /// Xattrs whose name starts with one of these are not compared, e.g.
    /// `security.`; this applies to the ACL xattrs (`system.posix_acl_`) as
    /// well.
    pub ignore_xattr_prefixes: Vec<String>,
    /// Paths relative to the roots whose entries and subtrees are not
    /// compared, e.g. `lost+found`.
    pub skip: Vec<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            holes: HoleCheck::Exact,
            dir_mtime: Check::Compare,
            symlink_mtime: Check::Compare,
            symlink_owner: Check::Compare,
            nlink: Check::Compare,
            root: Check::Compare,
            ignore_xattr_prefixes: Vec::new(),
            skip: Vec::new(),
        }
    }
}

/// One of the two trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// The file type of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

/// Which POSIX ACL of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclKind {
    Access,
    Default,
}

/// How two entries at the same path differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffKind {
    /// The entry (and, for a directory, its whole subtree) exists only on
    /// the other side.
    Missing(Side),
    FileType {
        a: FileKind,
        b: FileKind,
    },
    Uid {
        a: u32,
        b: u32,
    },
    Gid {
        a: u32,
        b: u32,
    },
    /// The full `st_mode`, type bits included.
    Mode {
        a: u32,
        b: u32,
    },
    /// Raw ACL xattr values; `None` when the entry has no such ACL.
    Acl {
        which: AclKind,
        a: Option<Vec<u8>>,
        b: Option<Vec<u8>>,
    },
    /// A non-ACL xattr; `None` when absent on that side.
    Xattr {
        name: OsString,
        a: Option<Vec<u8>>,
        b: Option<Vec<u8>>,
    },
    /// The names in the tree that share this entry's inode (itself
    /// included), sorted.
    HardLinks {
        a: Vec<PathBuf>,
        b: Vec<PathBuf>,
    },
    Nlink {
        a: u64,
        b: u64,
    },
    SymlinkTarget {
        a: PathBuf,
        b: PathBuf,
    },
    Rdev {
        a: u64,
        b: u64,
    },
    Size {
        a: u64,
        b: u64,
    },
    /// Data extents (everything else is a hole).
    Holes {
        a: Vec<Range<u64>>,
        b: Vec<Range<u64>>,
    },
    /// Same size, different bytes; the first differing offset.
    Content {
        offset: u64,
    },
    /// (seconds, nanoseconds).
    Mtime {
        a: (i64, i64),
        b: (i64, i64),
    },
    /// Something could not be read on one side; the comparison of this
    /// entry is incomplete.
    Unreadable {
        side: Side,
        error: String,
    },
}

/// A difference at one path, relative to the roots (`.` for the roots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub path: PathBuf,
    pub kind: DiffKind,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.as_os_str().is_empty() {
            ".".to_owned()
        } else {
            escape_bytes(self.path.as_os_str().as_bytes())
        };
        write!(f, "{path}: ")?;
        match &self.kind {
            DiffKind::Missing(side) => write!(f, "missing in {side}"),
            DiffKind::FileType { a, b } => write!(f, "type {a} != {b}"),
            DiffKind::Uid { a, b } => write!(f, "uid {a} != {b}"),
            DiffKind::Gid { a, b } => write!(f, "gid {a} != {b}"),
            DiffKind::Mode { a, b } => write!(f, "mode 0{a:o} != 0{b:o}"),
            DiffKind::Acl { which, a, b } => write!(
                f,
                "acl {which} {} != {}",
                describe_acl(a.as_deref()),
                describe_acl(b.as_deref())
            ),
            DiffKind::Xattr { name, a, b } => write!(
                f,
                "xattr {} {} != {}",
                escape_bytes(name.as_bytes()),
                describe_value(a.as_deref()),
                describe_value(b.as_deref())
            ),
            DiffKind::HardLinks { a, b } => {
                write!(
                    f,
                    "hard links {} != {}",
                    describe_paths(a),
                    describe_paths(b)
                )
            }
            DiffKind::Nlink { a, b } => write!(f, "nlink {a} != {b}"),
            DiffKind::SymlinkTarget { a, b } => write!(
                f,
                "symlink -> \"{}\" != -> \"{}\"",
                escape_bytes(a.as_os_str().as_bytes()),
                escape_bytes(b.as_os_str().as_bytes())
            ),
            DiffKind::Rdev { a, b } => write!(
                f,
                "rdev {}:{} != {}:{}",
                nix::sys::stat::major(*a),
                nix::sys::stat::minor(*a),
                nix::sys::stat::major(*b),
                nix::sys::stat::minor(*b)
            ),
            DiffKind::Size { a, b } => write!(f, "size {a} != {b}"),
            DiffKind::Holes { a, b } => write!(
                f,
                "data extents {} != {}",
                describe_extents(a),
                describe_extents(b)
            ),
            DiffKind::Content { offset } => write!(f, "content differs at byte {offset}"),
            DiffKind::Mtime { a, b } => {
                write!(f, "mtime {}.{:09} != {}.{:09}", a.0, a.1, b.0, b.1)
            }
            DiffKind::Unreadable { side, error } => write!(f, "cannot read {side}: {error}"),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "a",
            Side::B => "b",
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "char device",
            FileKind::BlockDevice => "block device",
            FileKind::Unknown => "unknown type",
        })
    }
}

impl fmt::Display for AclKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclKind::Access => "access",
            AclKind::Default => "default",
        })
    }
}

/// How many differences [`assert_trees_equal`] lists.
const SHOWN_DIFFERENCES: usize = 20;
/// The xattr holding the access ACL.
const ACL_ACCESS: &str = "system.posix_acl_access";
/// The xattr holding a directory's default ACL.
const ACL_DEFAULT: &str = "system.posix_acl_default";
/// Read size of the content comparison.
const CHUNK: usize = 256 * 1024;

/// Panics when the trees at `a` and `b` differ under `opts`, listing the
/// first 20 differences (and how many there are).
#[track_caller]
pub fn assert_trees_equal(a: &Path, b: &Path, opts: &CompareOptions) {
    let diffs = compare_trees(a, b, opts);
    assert!(
        diffs.is_empty(),
        "trees differ: a = {}, b = {}: {} difference(s){}:\n{}",
        a.display(),
        b.display(),
        diffs.len(),
        if diffs.len() > SHOWN_DIFFERENCES {
            format!(", first {SHOWN_DIFFERENCES}")
        } else {
            String::new()
        },
        format_differences(&diffs, SHOWN_DIFFERENCES)
    );
}

/// The first `max` differences, one per line, indented.
pub fn format_differences(diffs: &[Difference], max: usize) -> String {
    let mut out = String::new();
    for d in diffs.iter().take(max) {
        let _ = writeln!(out, "  {d}");
    }
    out
}

/// Every difference between the trees rooted at `a` and `b`, in path
/// order (an entry's own attributes in the order of [`DiffKind`]). Empty
/// when they are equal under `opts`. An entry missing on one side is
/// reported once, not once per entry of its subtree.
pub fn compare_trees(a: &Path, b: &Path, opts: &CompareOptions) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let tree_a = Tree::scan(a, Side::A, opts, &mut diffs);
    let tree_b = Tree::scan(b, Side::B, opts, &mut diffs);

    let paths: BTreeSet<&PathBuf> = tree_a.entries.keys().chain(tree_b.entries.keys()).collect();
    let mut missing_dir: Option<&Path> = None;
    let mut reported_groups: BTreeSet<Vec<PathBuf>> = BTreeSet::new();
    for rel in paths {
        if missing_dir.is_some_and(|dir| rel.starts_with(dir)) {
            continue;
        }
        missing_dir = None;
        let (meta_a, meta_b) = match (tree_a.entries.get(rel), tree_b.entries.get(rel)) {
            (Some(ma), Some(mb)) => (ma, mb),
            (Some(_), None) | (None, Some(_)) => {
                let side = if tree_a.entries.contains_key(rel) {
                    Side::B
                } else {
                    Side::A
                };
                diffs.push(Difference {
                    path: rel.clone(),
                    kind: DiffKind::Missing(side),
                });
                // why: PathBuf orders component-wise, so a directory's
                // subtree follows it directly and is skipped as a block.
                missing_dir = Some(rel);
                continue;
            }
            (None, None) => unreachable!("the path came from one of the trees"),
        };
        let mut entry = EntryDiff {
            rel,
            out: &mut diffs,
        };
        if rel.as_os_str().is_empty() && opts.root == Check::Ignore {
            continue;
        }
        let (kind_a, kind_b) = (kind_of(meta_a), kind_of(meta_b));
        if kind_a != kind_b {
            entry.push(DiffKind::FileType {
                a: kind_a,
                b: kind_b,
            });
            continue;
        }
        let (path_a, path_b) = (tree_a.root.join(rel), tree_b.root.join(rel));
        if kind_a != FileKind::Symlink || opts.symlink_owner == Check::Compare {
            entry.differ(meta_a.uid(), meta_b.uid(), |a, b| DiffKind::Uid { a, b });
            entry.differ(meta_a.gid(), meta_b.gid(), |a, b| DiffKind::Gid { a, b });
        }
        entry.differ(meta_a.mode(), meta_b.mode(), |a, b| DiffKind::Mode { a, b });
        compare_xattrs(&mut entry, &path_a, &path_b, kind_a, opts);
        if kind_a != FileKind::Directory {
            let group_a = tree_a.link_group(rel, meta_a);
            let group_b = tree_b.link_group(rel, meta_b);
            if group_a != group_b && reported_groups.insert(group_a.clone()) {
                entry.push(DiffKind::HardLinks {
                    a: group_a,
                    b: group_b,
                });
            }
            if opts.nlink == Check::Compare {
                entry.differ(meta_a.nlink(), meta_b.nlink(), |a, b| DiffKind::Nlink {
                    a,
                    b,
                });
            }
        }
        match kind_a {
            FileKind::Symlink => compare_symlinks(&mut entry, &path_a, &path_b),
            FileKind::CharDevice | FileKind::BlockDevice => {
                entry.differ(meta_a.rdev(), meta_b.rdev(), |a, b| DiffKind::Rdev { a, b });
            }
            FileKind::Regular => {
                entry.differ(meta_a.size(), meta_b.size(), |a, b| DiffKind::Size { a, b });
                if meta_a.size() == meta_b.size() {
                    compare_regular(&mut entry, &path_a, &path_b, meta_a.size(), opts);
                }
            }
            _ => {}
        }
        let mtime_checked = match kind_a {
            FileKind::Directory => opts.dir_mtime,
            FileKind::Symlink => opts.symlink_mtime,
            _ => Check::Compare,
        };
        if mtime_checked == Check::Compare {
            entry.differ(
                (meta_a.mtime(), meta_a.mtime_nsec()),
                (meta_b.mtime(), meta_b.mtime_nsec()),
                |a, b| DiffKind::Mtime { a, b },
            );
        }
    }
    diffs
}

/// One scanned tree: lstat of every entry by relative path, and which
/// relative paths share each inode.
struct Tree {
    root: PathBuf,
    entries: BTreeMap<PathBuf, Metadata>,
    inodes: HashMap<(u64, u64), Vec<PathBuf>>,
}

impl Tree {
    /// Walks `root` without following symlinks; read errors become
    /// [`DiffKind::Unreadable`] in `diffs`.
    fn scan(root: &Path, side: Side, opts: &CompareOptions, diffs: &mut Vec<Difference>) -> Tree {
        let mut tree = Tree {
            root: root.to_owned(),
            entries: BTreeMap::new(),
            inodes: HashMap::new(),
        };
        let walk = walkdir::WalkDir::new(root)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                !opts.skip.iter().any(|s| s == rel)
            });
        for item in walk {
            let entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    let rel = e
                        .path()
                        .and_then(|p| p.strip_prefix(root).ok())
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    let error = match e.path() {
                        Some(p) => format!("{}: {e}", p.display()),
                        None => e.to_string(),
                    };
                    diffs.push(Difference {
                        path: rel,
                        kind: DiffKind::Unreadable { side, error },
                    });
                    continue;
                }
            };
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("walkdir yields paths under its root")
                .to_path_buf();
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) => {
                    diffs.push(Difference {
                        path: rel,
                        kind: DiffKind::Unreadable {
                            side,
                            error: format!("lstat {}: {e}", entry.path().display()),
                        },
                    });
                    continue;
                }
            };
            if !meta.is_dir() {
                tree.inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(rel.clone());
            }
            tree.entries.insert(rel, meta);
        }
        tree
    }

    /// The sorted names in this tree sharing `rel`'s inode, `rel` included.
    fn link_group(&self, rel: &Path, meta: &Metadata) -> Vec<PathBuf> {
        let mut group = self
            .inodes
            .get(&(meta.dev(), meta.ino()))
            .cloned()
            .unwrap_or_else(|| vec![rel.to_owned()]);
        group.sort();
        group
    }
}

/// Collects the differences of one path.
struct EntryDiff<'a> {
    rel: &'a Path,
    out: &'a mut Vec<Difference>,
}

impl EntryDiff<'_> {
    fn push(&mut self, kind: DiffKind) {
        self.out.push(Difference {
            path: self.rel.to_owned(),
            kind,
        });
    }

    fn differ<T: PartialEq>(&mut self, a: T, b: T, kind: impl FnOnce(T, T) -> DiffKind) {
        if a != b {
            self.push(kind(a, b));
        }
    }

    fn unreadable(&mut self, side: Side, error: String) {
        self.push(DiffKind::Unreadable { side, error });
    }
}

fn kind_of(meta: &Metadata) -> FileKind {
    let t = meta.file_type();
    if t.is_file() {
        FileKind::Regular
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_fifo() {
        FileKind::Fifo
    } else if t.is_socket() {
        FileKind::Socket
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else {
        FileKind::Unknown
    }
}

fn ignored_xattr(name: &OsStr, opts: &CompareOptions) -> bool {
    opts.ignore_xattr_prefixes
        .iter()
        .any(|p| name.as_bytes().starts_with(p.as_bytes()))
}

/// Compares the ACL xattrs and every other xattr of one entry.
fn compare_xattrs(
    entry: &mut EntryDiff<'_>,
    a: &Path,
    b: &Path,
    kind: FileKind,
    opts: &CompareOptions,
) {
    // why: the ACL xattrs are read by name, not trusted to show up in
    // listxattr (not every filesystem lists them).
    if kind != FileKind::Symlink {
        for (which, name) in [
            (AclKind::Access, ACL_ACCESS),
            (AclKind::Default, ACL_DEFAULT),
        ] {
            if ignored_xattr(OsStr::new(name), opts) {
                continue;
            }
            match (
                get_xattr(a, OsStr::new(name)),
                get_xattr(b, OsStr::new(name)),
            ) {
                (Ok(va), Ok(vb)) => {
                    if va != vb {
                        entry.push(DiffKind::Acl {
                            which,
                            a: va,
                            b: vb,
                        });
                    }
                }
                (Err(e), _) => entry.unreadable(Side::A, format!("{name} of {}: {e}", a.display())),
                (_, Err(e)) => entry.unreadable(Side::B, format!("{name} of {}: {e}", b.display())),
            }
        }
    }
    let (names_a, names_b) = match (list_xattrs(a, opts), list_xattrs(b, opts)) {
        (Ok(na), Ok(nb)) => (na, nb),
        (Err(e), _) => return entry.unreadable(Side::A, format!("listxattr {}: {e}", a.display())),
        (_, Err(e)) => return entry.unreadable(Side::B, format!("listxattr {}: {e}", b.display())),
    };
    for name in names_a.union(&names_b) {
        match (get_xattr(a, name), get_xattr(b, name)) {
            (Ok(va), Ok(vb)) => {
                if va != vb {
                    entry.push(DiffKind::Xattr {
                        name: name.clone(),
                        a: va,
                        b: vb,
                    });
                }
            }
            (Err(e), _) => entry.unreadable(Side::A, format!("xattr of {}: {e}", a.display())),
            (_, Err(e)) => entry.unreadable(Side::B, format!("xattr of {}: {e}", b.display())),
        }
    }
}

/// The xattr names of `path` (not following symlinks), without the ACLs
/// and the ignored prefixes.
fn list_xattrs(path: &Path, opts: &CompareOptions) -> io::Result<BTreeSet<OsString>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    Ok(names
        .filter(|n| n != ACL_ACCESS && n != ACL_DEFAULT && !ignored_xattr(n, opts))
        .collect())
}

/// One xattr of `path` (not following symlinks); `None` when absent or
/// when the filesystem has no xattrs of that namespace.
fn get_xattr(path: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    match xattr::get(path, name) {
        Ok(value) => Ok(value),
        Err(e) if unsupported(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::EOPNOTSUPP as i32)
}

fn compare_symlinks(entry: &mut EntryDiff<'_>, a: &Path, b: &Path) {
    match (std::fs::read_link(a), std::fs::read_link(b)) {
        (Ok(ta), Ok(tb)) => entry.differ(ta, tb, |a, b| DiffKind::SymlinkTarget { a, b }),
        (Err(e), _) => entry.unreadable(Side::A, format!("readlink {}: {e}", a.display())),
        (_, Err(e)) => entry.unreadable(Side::B, format!("readlink {}: {e}", b.display())),
    }
}

/// Holes and content of two regular files of the same `size`.
fn compare_regular(
    entry: &mut EntryDiff<'_>,
    a: &Path,
    b: &Path,
    size: u64,
    opts: &CompareOptions,
) {
    let (file_a, file_b) = match (File::open(a), File::open(b)) {
        (Ok(fa), Ok(fb)) => (fa, fb),
        (Err(e), _) => return entry.unreadable(Side::A, format!("open {}: {e}", a.display())),
        (_, Err(e)) => return entry.unreadable(Side::B, format!("open {}: {e}", b.display())),
    };
    let (extents_a, extents_b) = match (data_extents(&file_a, size), data_extents(&file_b, size)) {
        (Ok(ea), Ok(eb)) => (ea, eb),
        (Err(e), _) => return entry.unreadable(Side::A, format!("SEEK_DATA {}: {e}", a.display())),
        (_, Err(e)) => return entry.unreadable(Side::B, format!("SEEK_DATA {}: {e}", b.display())),
    };
    let holes_differ = match opts.holes {
        HoleCheck::Exact => extents_a != extents_b,
        HoleCheck::Ignore => false,
        HoleCheck::AtLeastAsSparse => !covers(&extents_a, &extents_b),
    };
    // why: when the maps agree, holes read as zeros on both sides and only
    // the data extents need reading (a 64 MiB hole costs nothing).
    let ranges = if extents_a == extents_b {
        extents_a.clone()
    } else {
        vec![0..size]
    };
    if holes_differ {
        entry.push(DiffKind::Holes {
            a: extents_a,
            b: extents_b,
        });
    }
    match first_difference(&file_a, &file_b, &ranges) {
        Ok(None) => {}
        Ok(Some(offset)) => entry.push(DiffKind::Content { offset }),
        Err((failed, e)) => {
            let path = if failed == Side::A { a } else { b };
            entry.unreadable(failed, format!("read {}: {e}", path.display()));
        }
    }
}

/// The data extents of `file` (of `size` bytes), from `SEEK_DATA` /
/// `SEEK_HOLE`. A filesystem without hole reporting gives one extent.
fn data_extents(file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    let mut extents = Vec::new();
    let mut offset: u64 = 0;
    while offset < size {
        let at = to_off(offset)?;
        let start = match lseek(file, at, Whence::SeekData) {
            Ok(start) => from_off(start)?,
            // why: ENXIO = no data at or after the offset (the rest is a
            // hole); EINVAL = the filesystem does not report holes.
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL) => return Ok(vec![0..size]),
            Err(e) => return Err(e.into()),
        };
        let end = from_off(lseek(file, to_off(start)?, Whence::SeekHole)?)?.min(size);
        if end <= start {
            break;
        }
        extents.push(start..end);
        offset = end;
    }
    Ok(extents)
}

fn to_off(offset: u64) -> io::Result<nix::libc::off_t> {
    nix::libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset beyond off_t"))
}

fn from_off(offset: nix::libc::off_t) -> io::Result<u64> {
    u64::try_from(offset).map_err(|_| io::Error::other("negative offset from lseek"))
}

/// True when every byte inside `inner`'s extents is inside `outer`'s.
fn covers(outer: &[Range<u64>], inner: &[Range<u64>]) -> bool {
    // why: merge touching extents first; SEEK_HOLE never splits a data run,
    // but be safe against filesystems that report pieces.
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in outer {
        match merged.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => merged.push(r.clone()),
        }
    }
    inner
        .iter()
        .filter(|r| !r.is_empty())
        .all(|r| merged.iter().any(|m| m.start <= r.start && r.end <= m.end))
}

/// The first offset inside `ranges` where the files differ.
fn first_difference(
    a: &File,
    b: &File,
    ranges: &[Range<u64>],
) -> Result<Option<u64>, (Side, io::Error)> {
    let mut buf_a = vec![0u8; CHUNK];
    let mut buf_b = vec![0u8; CHUNK];
    for range in ranges {
        let mut offset = range.start;
        while offset < range.end {
            let want = usize::try_from(range.end - offset)
                .unwrap_or(CHUNK)
                .min(CHUNK);
            a.read_exact_at(&mut buf_a[..want], offset)
                .map_err(|e| (Side::A, e))?;
            b.read_exact_at(&mut buf_b[..want], offset)
                .map_err(|e| (Side::B, e))?;
            if buf_a[..want] != buf_b[..want] {
                let at = buf_a[..want]
                    .iter()
                    .zip(&buf_b[..want])
                    .position(|(x, y)| x != y)
                    .expect("the slices differ");
                return Ok(Some(offset + at as u64));
            }
            offset += want as u64;
        }
    }
    Ok(None)
}

/// Bytes as text: valid UTF-8 as is, control characters and invalid bytes
/// escaped (`\n`, `\t`, `\xff`), so a name prints on one line.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_unicode()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn describe_value(value: Option<&[u8]>) -> String {
    const MAX: usize = 48;
    match value {
        None => "(absent)".to_owned(),
        Some(v) if v.len() > MAX => {
            format!("\"{}\"... ({} bytes)", escape_bytes(&v[..MAX]), v.len())
        }
        Some(v) => format!("\"{}\"", escape_bytes(v)),
    }
}

fn describe_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths
        .iter()
        .map(|p| escape_bytes(p.as_os_str().as_bytes()))
        .collect();
    format!("[{}]", names.join(", "))
}

fn describe_extents(extents: &[Range<u64>]) -> String {
    const MAX: usize = 8;
    let mut parts: Vec<String> = extents
        .iter()
        .take(MAX)
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    if extents.len() > MAX {
        parts.push(format!("... {} in all", extents.len()));
    }
    format!("[{}]", parts.join(", "))
}

/// A raw POSIX ACL xattr in `getfacl` short form (`user::rwx,user:1234:r-x,...`),
/// or the raw bytes when it does not parse.
fn describe_acl(value: Option<&[u8]>) -> String {
    let Some(raw) = value else {
        return "(none)".to_owned();
    };
    // why: the kernel's format: u32 version 2, then 8-byte entries of
    // u16 tag, u16 permissions, u32 qualifier (all little-endian).
    let parsed = (|| {
        let (header, body) = raw.split_at_checked(4)?;
        if u32::from_le_bytes(header.try_into().ok()?) != 2 || body.len() % 8 != 0 {
            return None;
        }
        let entries: Option<Vec<String>> = body
            .chunks_exact(8)
            .map(|e| {
                let tag = u16::from_le_bytes([e[0], e[1]]);
                let perm = u16::from_le_bytes([e[2], e[3]]);
                let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                let who = match tag {
                    0x01 => "user::".to_owned(),
                    0x02 => format!("user:{id}:"),
                    0x04 => "group::".to_owned(),
                    0x08 => format!("group:{id}:"),
                    0x10 => "mask::".to_owned(),
                    0x20 => "other::".to_owned(),
                    _ => return None,
                };
                let rwx: String = [(4, 'r'), (2, 'w'), (1, 'x')]
                    .iter()
                    .map(|&(bit, c)| if perm & bit != 0 { c } else { '-' })
                    .collect();
                Some(format!("{who}{rwx}"))
            })
            .collect();
        entries.map(|e| e.join(","))
    })();
    parsed.unwrap_or_else(|| describe_value(Some(raw)))
}

#[cfg(test)]
mod tests {
    //! Each test builds two equal trees, changes one attribute on one side,
    //! and expects exactly that difference: a comparison that cannot fail
    //! proves nothing.

    use std::fs;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use nix::fcntl::AT_FDCWD;
    use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
    use nix::sys::time::TimeSpec;
    use nix::unistd::{Gid, Uid, mkfifo};

    use super::*;
    use crate::support::env;

    /// A fixed mtime with nanoseconds, so independently built trees agree.
    const T: (i64, i64) = (1_500_000_000, 123_456_789);

    /// Two sibling trees `a` and `b` in one temporary directory.
    struct Pair {
        _dir: tempfile::TempDir,
        a: PathBuf,
        b: PathBuf,
    }

    impl Pair {
        /// Builds the same tree twice with `build` and pins every mtime to
        /// [`T`].
        fn new(build: impl Fn(&Path)) -> Pair {
            let dir = tempfile::tempdir().expect("temp dir");
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            for root in [&a, &b] {
                fs::create_dir(root).expect("mkdir root");
                build(root);
                pin_times(root);
            }
            Pair { _dir: dir, a, b }
        }

        fn diffs(&self) -> Vec<Difference> {
            self.diffs_with(&CompareOptions::default())
        }

        fn diffs_with(&self, opts: &CompareOptions) -> Vec<Difference> {
            compare_trees(&self.a, &self.b, opts)
        }

        /// Asserts that the only difference is `kind` at `path`.
        #[track_caller]
        fn expect_only(&self, path: &str, kind: DiffKind) {
            self.expect_only_with(&CompareOptions::default(), path, kind);
        }

        #[track_caller]
        fn expect_only_with(&self, opts: &CompareOptions, path: &str, kind: DiffKind) {
            let diffs = self.diffs_with(opts);
            assert_eq!(
                diffs,
                vec![Difference {
                    path: PathBuf::from(path),
                    kind
                }],
                "got:\n{}",
                format_differences(&diffs, 50)
            );
        }
    }

    /// Sets every mtime under `root` (root included, symlinks themselves)
    /// to [`T`], deepest first so directories keep theirs.
    fn pin_times(root: &Path) {
        let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.expect("walk").into_path())
            .collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in paths {
            set_mtime(&p, T);
        }
    }

    fn set_mtime(path: &Path, t: (i64, i64)) {
        let ts = TimeSpec::new(t.0, t.1);
        utimensat(AT_FDCWD, path, &ts, &ts, UtimensatFlags::NoFollowSymlink).expect("utimensat");
    }

    /// Writes `contents` to `path` keeping the mtime pinned.
    fn rewrite(path: &Path, contents: &[u8]) {
        fs::write(path, contents).expect("write");
        set_mtime(path, T);
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// A raw access/default ACL: owner rwx, a named user, group r-x, mask
    /// rwx, other r-x.
    fn raw_acl(named_uid: u32) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (0x01u16, 7u16, u32::MAX),
            (0x02, 7, named_uid),
            (0x04, 5, u32::MAX),
            (0x10, 7, u32::MAX),
            (0x20, 5, u32::MAX),
        ] {
            v.extend(tag.to_le_bytes());
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        v
    }

    fn sparse_file(path: &Path, data_at: &[u64], size: u64) {
        let f = File::create(path).expect("create");
        f.set_len(size).expect("set_len");
        for &at in data_at {
            f.write_all_at(b"x", at).expect("write_at");
        }
    }

    fn basic(root: &Path) {
        fs::create_dir(root.join("dir")).expect("mkdir");
        fs::write(root.join("dir/f"), b"hello").expect("write");
        fs::write(root.join("g"), vec![7u8; 300_000]).expect("write");
        symlink("dir/f", root.join("link")).expect("symlink");
        symlink("/nonexistent/dangling", root.join("dangling")).expect("symlink");
        fs::hard_link(root.join("dir/f"), root.join("hard")).expect("link");
        xattr::set(root.join("g"), "user.bin", &[0, 1, 255]).expect("xattr (user_xattr needed)");
        sparse_file(&root.join("sparse"), &[0, 1 << 20], (1 << 20) + 1);
        mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644)).expect("mkfifo");
        fs::create_dir(root.join("empty")).expect("mkdir");
    }

    #[test]
    fn equal_trees_have_no_differences() {
        let pair = Pair::new(basic);
        assert_eq!(pair.diffs(), vec![]);
        assert_trees_equal(&pair.a, &pair.b, &CompareOptions::default());
        assert_trees_equal(&pair.a, &pair.a, &CompareOptions::default());
    }

    #[test]
    fn missing_entries_on_either_side_once_per_subtree() {
        let pair = Pair::new(basic);
        fs::remove_file(pair.b.join("g")).expect("rm");
        fs::create_dir_all(pair.b.join("extra/deep/er")).expect("mkdir");
        fs::rename(pair.b.join("dir"), pair.b.join("zz")).expect("mv");
        set_mtime(&pair.b, T);
        let diffs = pair.diffs();
        let got: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        // why: renaming dir also changes what "hard" links to (a name
        // outside the tree's dir/f group), reported once.
        assert_eq!(
            got,
            vec![
                "dir: missing in b",
                "extra: missing in a",
                "g: missing in b",
                "hard: hard links [dir/f, hard] != [hard, zz/f]",
                "zz: missing in a",
            ]
        );
    }

    #[test]
    fn file_type() {
        let pair = Pair::new(|r| fs::write(r.join("x"), b"").expect("write"));
        fs::remove_file(pair.b.join("x")).expect("rm");
        mkfifo(&pair.b.join("x"), Mode::from_bits_truncate(0o644)).expect("mkfifo");
        pin_times(&pair.b);
        pair.expect_only(
            "x",
            DiffKind::FileType {
                a: FileKind::Regular,
                b: FileKind::Fifo,
            },
        );
    }

    #[test]
    fn mode_and_display() {
        let pair = Pair::new(|r| {
            fs::create_dir(r.join("path")).expect("mkdir");
            fs::write(r.join("path/x"), b"").expect("write");
            chmod(&r.join("path/x"), 0o644);
        });
        chmod(&pair.b.join("path/x"), 0o755);
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].to_string(), "path/x: mode 0100644 != 0100755");
    }

    #[test]
    fn setuid_setgid_sticky_bits() {
        for bit in [0o4000, 0o2000, 0o1000] {
            let pair = Pair::new(|r| {
                fs::create_dir(r.join("d")).expect("mkdir");
                chmod(&r.join("d"), 0o755);
            });
            chmod(&pair.b.join("d"), 0o755 | bit);
            pair.expect_only(
                "d",
                DiffKind::Mode {
                    a: 0o40755,
                    b: 0o40755 | bit,
                },
            );
        }
    }

    #[test]
    fn root_uid_and_gid() {
        if !env::require("root (chown)", env::is_root()) {
            return;
        }
        let pair = Pair::new(|r| fs::write(r.join("f"), b"x").expect("write"));
        let f = pair.b.join("f");
        nix::unistd::chown(&f, Some(Uid::from_raw(1234)), None).expect("chown");
        pair.expect_only("f", DiffKind::Uid { a: 0, b: 1234 });
        nix::unistd::chown(&f, Some(Uid::from_raw(0)), Some(Gid::from_raw(5678))).expect("chown");
        pair.expect_only("f", DiffKind::Gid { a: 0, b: 5678 });
        // why: symlinks have owners too (lchown), compared without following.
        let pair = Pair::new(|r| symlink("t", r.join("l")).expect("symlink"));
        nix::unistd::fchownat(
            AT_FDCWD,
            &pair.b.join("l"),
            Some(Uid::from_raw(42)),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .expect("lchown");
        pair.expect_only("l", DiffKind::Uid { a: 0, b: 42 });
        let no_symlink_owners = CompareOptions {
            symlink_owner: Check::Ignore,
            ..CompareOptions::default()
        };
        assert_eq!(pair.diffs_with(&no_symlink_owners), vec![]);
        // why: the option is about symlinks only
        let pair = Pair::new(|r| fs::write(r.join("f"), b"x").expect("write"));
        nix::unistd::chown(&pair.b.join("f"), Some(Uid::from_raw(7)), None).expect("chown");
        pair.expect_only_with(&no_symlink_owners, "f", DiffKind::Uid { a: 0, b: 7 });
    }

    #[test]
    fn access_acl() {
        let pair = Pair::new(|r| {
            fs::write(r.join("f"), b"x").expect("write");
            xattr::set(r.join("f"), ACL_ACCESS, &raw_acl(1234))
                .expect("set ACL (acl support needed)");
        });
        xattr::set(pair.b.join("f"), ACL_ACCESS, &raw_acl(4321)).expect("set ACL");
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(
            diffs[0].to_string(),
            "f: acl access user::rwx,user:1234:rwx,group::r-x,mask::rwx,other::r-x != \
             user::rwx,user:4321:rwx,group::r-x,mask::rwx,other::r-x"
        );
    }

    #[test]
    fn default_acl() {
        let pair = Pair::new(|r| fs::create_dir(r.join("d")).expect("mkdir"));
        xattr::set(pair.b.join("d"), ACL_DEFAULT, &raw_acl(1234)).expect("set default ACL");
        pair.expect_only(
            "d",
            DiffKind::Acl {
                which: AclKind::Default,
                a: None,
                b: Some(raw_acl(1234)),
            },
        );
    }

    #[test]
    fn xattr_value_presence_and_ignored_prefixes() {
        let pair = Pair::new(|r| {
            fs::write(r.join("f"), b"x").expect("write");
            xattr::set(r.join("f"), "user.v", b"\x00\x01binary\xff").expect("xattr");
        });
        xattr::set(pair.b.join("f"), "user.v", b"\x00\x01binary\xfe").expect("xattr");
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(
            diffs[0].to_string(),
            "f: xattr user.v \"\\u{0}\\u{1}binary\\xff\" != \"\\u{0}\\u{1}binary\\xfe\""
        );

        let pair = Pair::new(|r| fs::write(r.join("f"), b"x").expect("write"));
        xattr::set(pair.b.join("f"), "user.only.b", b"").expect("xattr");
        pair.expect_only(
            "f",
            DiffKind::Xattr {
                name: "user.only.b".into(),
                a: None,
                b: Some(Vec::new()),
            },
        );
        let opts = CompareOptions {
            ignore_xattr_prefixes: vec!["user.only.".into()],
            ..CompareOptions::default()
        };
        assert_eq!(pair.diffs_with(&opts), vec![]);
    }

    #[test]
    fn hard_link_structure_and_nlink() {
        let pair = Pair::new(|r| {
            fs::write(r.join("f1"), b"same").expect("write");
            fs::hard_link(r.join("f1"), r.join("f2")).expect("link");
        });
        fs::remove_file(pair.b.join("f2")).expect("rm");
        fs::copy(pair.b.join("f1"), pair.b.join("f2")).expect("cp");
        pin_times(&pair.b);
        let got: Vec<String> = pair.diffs().iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "f1: hard links [f1, f2] != [f1]",
                "f1: nlink 2 != 1",
                "f2: nlink 2 != 1",
            ]
        );
        let opts = CompareOptions {
            nlink: Check::Ignore,
            ..CompareOptions::default()
        };
        pair.expect_only_with(
            &opts,
            "f1",
            DiffKind::HardLinks {
                a: vec!["f1".into(), "f2".into()],
                b: vec!["f1".into()],
            },
        );
    }

    #[test]
    fn nlink_from_outside_the_tree() {
        let pair = Pair::new(|r| fs::write(r.join("f"), b"x").expect("write"));
        let outside = pair.b.with_file_name("outside");
        fs::hard_link(pair.b.join("f"), outside).expect("link");
        pair.expect_only("f", DiffKind::Nlink { a: 1, b: 2 });
    }

    #[test]
    fn symlink_target() {
        let pair = Pair::new(|r| symlink("target-a", r.join("l")).expect("symlink"));
        fs::remove_file(pair.b.join("l")).expect("rm");
        symlink("target-b", pair.b.join("l")).expect("symlink");
        pin_times(&pair.b);
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(
            diffs[0].to_string(),
            "l: symlink -> \"target-a\" != -> \"target-b\""
        );
    }

    #[test]
    fn root_device_numbers() {
        if !env::require("root (mknod)", env::is_root()) {
            return;
        }
        let pair = Pair::new(|r| {
            mknod(
                &r.join("c"),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o600),
                makedev(1, 3),
            )
            .expect("mknod");
        });
        fs::remove_file(pair.b.join("c")).expect("rm");
        mknod(
            &pair.b.join("c"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o600),
            makedev(1, 5),
        )
        .expect("mknod");
        pin_times(&pair.b);
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].to_string(), "c: rdev 1:3 != 1:5");
    }

    #[test]
    fn size() {
        let pair = Pair::new(|r| fs::write(r.join("f"), b"abc").expect("write"));
        rewrite(&pair.b.join("f"), b"abcd");
        pair.expect_only("f", DiffKind::Size { a: 3, b: 4 });
    }

    #[test]
    fn content_same_size_and_mtime() {
        let data = vec![9u8; 700_000];
        let pair = Pair::new(|r| fs::write(r.join("f"), &data).expect("write"));
        let mut changed = data.clone();
        changed[600_001] = 8;
        rewrite(&pair.b.join("f"), &changed);
        pair.expect_only("f", DiffKind::Content { offset: 600_001 });
    }

    #[test]
    fn content_inside_a_sparse_file_data_extent() {
        let pair = Pair::new(|r| sparse_file(&r.join("s"), &[0, 8 << 20], (8 << 20) + 10));
        File::options()
            .write(true)
            .open(pair.b.join("s"))
            .expect("open")
            .write_all_at(b"y", 8 << 20)
            .expect("write_at");
        set_mtime(&pair.b.join("s"), T);
        pair.expect_only("s", DiffKind::Content { offset: 8 << 20 });
    }

    #[test]
    fn holes_exact_ignore_and_at_least_as_sparse() {
        let size = (1 << 20) + 1;
        let pair = Pair::new(|r| sparse_file(&r.join("s"), &[0, 1 << 20], size));
        let mut dense = vec![0u8; usize::try_from(size).expect("small")];
        dense[0] = b'x';
        dense[1 << 20] = b'x';
        rewrite(&pair.b.join("s"), &dense);
        let diffs = pair.diffs();
        assert_eq!(
            diffs.len(),
            1,
            "content is equal, only the holes differ: {diffs:?}"
        );
        assert!(
            matches!(&diffs[0].kind, DiffKind::Holes { a, b } if a.len() == 2 && b == &vec![0..size]),
            "{diffs:?}"
        );
        let ignore = CompareOptions {
            holes: HoleCheck::Ignore,
            ..CompareOptions::default()
        };
        assert_eq!(pair.diffs_with(&ignore), vec![]);
        let sparser = CompareOptions {
            holes: HoleCheck::AtLeastAsSparse,
            ..CompareOptions::default()
        };
        // b is denser than a: refused; a is sparser than b: accepted.
        assert_eq!(pair.diffs_with(&sparser).len(), 1);
        assert_eq!(compare_trees(&pair.b, &pair.a, &sparser), vec![]);
        // A fully sparse file against an allocated one of zeros.
        let pair = Pair::new(|r| sparse_file(&r.join("z"), &[], 1 << 20));
        rewrite(&pair.b.join("z"), &vec![0u8; 1 << 20]);
        pair.expect_only(
            "z",
            DiffKind::Holes {
                a: vec![],
                b: vec![0..1 << 20],
            },
        );
    }

    #[test]
    fn mtime_nanoseconds() {
        let pair = Pair::new(|r| fs::write(r.join("f"), b"x").expect("write"));
        set_mtime(&pair.b.join("f"), (T.0, T.1 + 1));
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(
            diffs[0].to_string(),
            "f: mtime 1500000000.123456789 != 1500000000.123456790"
        );
    }

    #[test]
    fn directory_and_symlink_mtimes_can_be_ignored() {
        let pair = Pair::new(|r| {
            fs::create_dir(r.join("d")).expect("mkdir");
            symlink("d", r.join("l")).expect("symlink");
        });
        set_mtime(&pair.b.join("d"), (T.0 + 1, T.1));
        pair.expect_only(
            "d",
            DiffKind::Mtime {
                a: T,
                b: (T.0 + 1, T.1),
            },
        );
        let no_dirs = CompareOptions {
            dir_mtime: Check::Ignore,
            ..CompareOptions::default()
        };
        assert_eq!(pair.diffs_with(&no_dirs), vec![]);
        set_mtime(&pair.b.join("l"), (T.0 + 2, T.1));
        pair.expect_only_with(
            &no_dirs,
            "l",
            DiffKind::Mtime {
                a: T,
                b: (T.0 + 2, T.1),
            },
        );
        let neither = CompareOptions {
            symlink_mtime: Check::Ignore,
            ..no_dirs
        };
        assert_eq!(pair.diffs_with(&neither), vec![]);
    }

    #[test]
    fn roots_compared_unless_ignored() {
        let pair = Pair::new(|_| {});
        chmod(&pair.b, 0o700);
        chmod(&pair.a, 0o755);
        let diffs = pair.diffs();
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].to_string(), ".: mode 040755 != 040700");
        let opts = CompareOptions {
            root: Check::Ignore,
            ..CompareOptions::default()
        };
        assert_eq!(pair.diffs_with(&opts), vec![]);
    }

    #[test]
    fn non_utf8_and_newline_names() {
        let odd = OsStr::from_bytes(b"bad\xff\xfe name");
        let pair = Pair::new(|r| {
            fs::write(r.join(odd), b"x").expect("write");
            fs::write(r.join("new\nline"), b"y").expect("write");
        });
        assert_eq!(pair.diffs(), vec![]);
        chmod(&pair.b.join(odd), 0o600);
        chmod(&pair.a.join(odd), 0o644);
        rewrite(&pair.b.join("new\nline"), b"z");
        let got: Vec<String> = pair.diffs().iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "bad\\xff\\xfe name: mode 0100644 != 0100600",
                "new\\nline: content differs at byte 0",
            ]
        );
    }

    #[test]
    fn skipped_paths() {
        let pair = Pair::new(|r| fs::create_dir(r.join("lost+found")).expect("mkdir"));
        fs::write(pair.b.join("lost+found/junk"), b"").expect("write");
        set_mtime(&pair.b.join("lost+found"), T);
        pair.expect_only("lost+found/junk", DiffKind::Missing(Side::A));
        let opts = CompareOptions {
            skip: vec!["lost+found".into()],
            ..CompareOptions::default()
        };
        assert_eq!(pair.diffs_with(&opts), vec![]);
    }

    #[test]
    fn unreadable_root_is_a_difference() {
        let dir = tempfile::tempdir().expect("temp dir");
        let diffs = compare_trees(
            &dir.path().join("nonexistent"),
            dir.path(),
            &CompareOptions::default(),
        );
        assert!(
            diffs
                .iter()
                .any(|d| matches!(d.kind, DiffKind::Unreadable { side: Side::A, .. })),
            "{diffs:?}"
        );
    }

    #[test]
    fn assert_lists_at_most_twenty() {
        let pair = Pair::new(|_| {});
        for i in 0..25 {
            fs::write(pair.b.join(format!("f{i:02}")), b"").expect("write");
        }
        set_mtime(&pair.b, T);
        let (a, b) = (pair.a.clone(), pair.b.clone());
        let panic =
            std::panic::catch_unwind(|| assert_trees_equal(&a, &b, &CompareOptions::default()))
                .expect_err("the trees differ");
        let message = panic
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(message.contains("25 difference(s), first 20:"), "{message}");
        assert!(message.contains("f19: missing in a"), "{message}");
        assert!(!message.contains("f20"), "{message}");
    }

    #[test]
    fn extent_cover() {
        assert!(covers(&[0..10, 20..30], &[0..5, 22..30]));
        assert!(covers(&[0..10, 10..30], &[5..15]));
        assert!(!covers(&[0..10], &[5..15]));
        assert!(covers(&[], &[]));
    }
}
