//! Applying a committed stage to the stored copy of a volume.
//!
//! Four passes, each streaming a sorted record file of the stage:
//!
//! 1. directories, files and symlinks in path order (parents first):
//!    whatever stands at a name with another type is removed; a new file's
//!    staged content is renamed into place, a changed file is updated block
//!    by block from its staged content (`BlockUpdate`: unchanged blocks are
//!    not rewritten), a file equal to its stored copy is not touched; then
//!    `user.rsync.%stat` (files and directories) and the mtime (files and
//!    symlinks), each only when it differs;
//! 2. hard links, by name: each name made a link to its target;
//! 3. for a full dump, everything stored that the dump did not name is
//!    removed (a walk of the stored tree in the same order as the sorted
//!    names; a directory holding a named entry is kept);
//! 4. directory mtimes, last, since every change inside a directory moves
//!    its mtime.
//!
//! Hard links: a stored file that shares its inode with other names is
//! written in place only if every other name of that inode is, in the dump,
//! a hard link to it; otherwise it gets an inode of its own first (its
//! staged content renamed in, or a copy), so that no other name changes
//! with it.
//!
//! A rename of a file over a name that holds no directory changes no
//! directory, so it keeps what [`Tree`] knows; only a removal forgets it.
//!
//! Every step is idempotent: an apply interrupted anywhere is done again
//! from the start by the next backup, with the same result. A staged data
//! file is consumed only by a rename into the unit; found missing on a
//! second apply, its content is already in place.

use super::entry::{Content, Entry, Kind, fake_super_stat, is_ancestor, path_cmp};
use super::remote::DumpMode;
use super::sort::{Cursor, Records};
use super::stage::{Commit, LastOfEach, Stage, StageError, io, next_of};
use super::tree::Tree;
use crate::backup_root::{BlockUpdate, xattrs};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Names that did not exist.
    pub created: u64,
    /// Names that held another type of entry, replaced.
    pub replaced: u64,
    /// Stored files whose content changed in place.
    pub files_updated: u64,
    /// Bytes written into the unit's files: blocks that differed, new
    /// files, and copies made to break a hard link.
    pub bytes_written: u64,
    /// Bytes of zeros turned into holes.
    pub bytes_punched: u64,
    /// Hard links made.
    pub links_made: u64,
    /// Stored files given an inode of their own (a hard link broken).
    pub detached: u64,
    /// Entries a full dump removed (a directory counts once).
    pub removed: u64,
    /// `user.rsync.%stat` values written.
    pub stats_set: u64,
    /// Mtimes set.
    pub times_set: u64,
    /// Symlinks with an empty target, which cannot be made (skipped).
    pub empty_symlinks: u64,
    /// Names the stream held twice (the later one applied).
    pub duplicates: u64,
    /// How the bytes of regular files changed (an estimate of the volume's
    /// growth for an incremental dump).
    pub size_delta: i64,
}

/// Apply `stage` (committed as `commit`) to the stored copy in `tree`.
pub fn apply(stage: &Stage, commit: &Commit, tree: &mut Tree) -> Result<Applied, StageError> {
    let mut a = Applied::default();
    main_pass(stage, commit, tree, &mut a)?;
    links_pass(stage, tree, &mut a)?;
    if commit.mode == DumpMode::Full {
        removal_pass(stage, tree, &mut a)?;
    }
    dir_times_pass(stage, tree, &mut a)?;
    Ok(a)
}

fn shape(s: String) -> StageError {
    StageError::Shape(s)
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn main_pass(
    stage: &Stage,
    commit: &Commit,
    tree: &mut Tree,
    a: &mut Applied,
) -> Result<(), StageError> {
    let sorted = stage.entries_sorted();
    let by_target = stage.links_by_target();
    let mut entries = LastOfEach::new(Records::open(&sorted).map_err(io(&sorted))?);
    let mut links = Cursor::new(Records::open(&by_target).map_err(io(&by_target))?);
    let halfway = (commit.entries / 2).max(1);
    let mut done = 0u64;
    for e in &mut entries {
        let e = e.map_err(io(&sorted))?;
        let abs = tree.abs(&e.path);
        a.replaced += tree.make_parents(&e.path).map_err(io(&abs))?;
        let meta = tree.lstat(&e.path).map_err(io(&abs))?;
        match e.kind {
            Kind::Dir => {
                match meta {
                    Some(m) if m.is_dir() => {}
                    Some(m) => {
                        tree.remove(&e.path, &m).map_err(io(&abs))?;
                        std::fs::create_dir(&abs).map_err(io(&abs))?;
                        a.replaced += 1;
                    }
                    None => {
                        std::fs::create_dir(&abs).map_err(io(&abs))?;
                        a.created += 1;
                    }
                }
                set_stat(&abs, &e, a)?;
            }
            Kind::File => {
                // The hard links to this file, for the in-place check.
                let mut group: Vec<Entry> = Vec::new();
                while let Some(l) = links.peek().map_err(io(&by_target))? {
                    match path_cmp(&l.link, &e.path) {
                        std::cmp::Ordering::Less => {
                            links.take().map_err(io(&by_target))?;
                        }
                        std::cmp::Ordering::Equal => {
                            group.extend(links.take().map_err(io(&by_target))?);
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
                group.dedup_by(|x, y| x.path == y.path);
                apply_file(stage, tree, &e, meta, &group, a)?;
                set_stat(&abs, &e, a)?;
                set_mtime(&abs, e.mtime, a)?;
            }
            Kind::Symlink => {
                if e.link.is_empty() {
                    eprintln!(
                        "warning: the symlink `{}` has an empty target, which Linux cannot store; skipped",
                        show(&e.path)
                    );
                    a.empty_symlinks += 1;
                } else {
                    let target = OsStr::from_bytes(&e.link);
                    match meta {
                        Some(m)
                            if m.is_symlink()
                                && std::fs::read_link(&abs)
                                    .is_ok_and(|t| t.as_os_str() == target) => {}
                        Some(m) => {
                            tree.remove(&e.path, &m).map_err(io(&abs))?;
                            std::os::unix::fs::symlink(target, &abs).map_err(io(&abs))?;
                            a.replaced += 1;
                        }
                        None => {
                            std::os::unix::fs::symlink(target, &abs).map_err(io(&abs))?;
                            a.created += 1;
                        }
                    }
                    set_mtime(&abs, e.mtime, a)?;
                }
            }
            Kind::HardLink => {
                return Err(shape(format!(
                    "a hard link `{}` among the entries",
                    show(&e.path)
                )));
            }
        }
        done += 1;
        if done == halfway {
            crate::fault::point("coda-apply");
        }
    }
    a.duplicates += entries.dropped;
    Ok(())
}

/// Whether a stored file of `nlink` names must get an inode of its own
/// before it is written: unless every other name is, in the dump, a hard
/// link to it (`linked_back` of them are), writing it would change them too.
#[must_use]
pub fn must_detach(nlink: u64, linked_back: u64) -> bool {
    nlink > 1 && linked_back != nlink - 1
}

fn apply_file(
    stage: &Stage,
    tree: &mut Tree,
    e: &Entry,
    meta: Option<Metadata>,
    group: &[Entry],
    a: &mut Applied,
) -> Result<(), StageError> {
    let abs = tree.abs(&e.path);
    let meta = match meta {
        Some(m) if !m.is_file() => {
            tree.remove(&e.path, &m).map_err(io(&abs))?;
            a.replaced += 1;
            None
        }
        other => other,
    };
    let old_len = meta.as_ref().map_or(0, Metadata::len);
    a.size_delta +=
        i64::try_from(e.size).unwrap_or(i64::MAX) - i64::try_from(old_len).unwrap_or(i64::MAX);
    let detach = match &meta {
        Some(m) if m.nlink() > 1 => {
            let mut linked_back = 0;
            for l in group {
                let labs = tree.abs(&l.path);
                if tree.parents_are_dirs(&l.path).map_err(io(&labs))?
                    && let Some(lm) = tree.lstat(&l.path).map_err(io(&labs))?
                    && lm.is_file()
                    && lm.dev() == m.dev()
                    && lm.ino() == m.ino()
                {
                    linked_back += 1;
                }
            }
            must_detach(m.nlink(), linked_back)
        }
        _ => false,
    };
    match (e.content, meta) {
        (Content::Staged(n), None) => {
            let data = stage.data(n);
            std::fs::rename(&data, &abs).map_err(io(&abs))?;
            a.created += 1;
            a.bytes_written += e.size;
        }
        (Content::Staged(n), Some(_)) => {
            let data = stage.data(n);
            if !data.exists() {
                // why: an earlier, interrupted apply renamed it into place
            } else if detach {
                std::fs::rename(&data, &abs).map_err(io(&abs))?;
                a.detached += 1;
                a.bytes_written += e.size;
            } else {
                let src = std::fs::File::open(&data).map_err(io(&data))?;
                let stats = BlockUpdate::apply(&abs, BufReader::with_capacity(1 << 20, src))
                    .map_err(io(&abs))?;
                a.bytes_written += stats.bytes_written;
                a.bytes_punched += stats.bytes_punched;
                if !stats.unchanged() {
                    a.files_updated += 1;
                }
            }
        }
        (Content::Same, Some(_)) => {
            if detach {
                let copy = stage.dir.join("detached");
                a.bytes_written += copy_sparse(&abs, &copy).map_err(io(&copy))?;
                std::fs::rename(&copy, &abs).map_err(io(&abs))?;
                a.detached += 1;
            }
        }
        (Content::Same, None) => {
            return Err(shape(format!(
                "`{}` was equal to its stored copy when staged, and the stored copy is gone",
                show(&e.path)
            )));
        }
    }
    Ok(())
}

/// Copy a file's content to a new file, zeros left as holes; returns the
/// bytes copied.
fn copy_sparse(src: &Path, dest: &Path) -> std::io::Result<u64> {
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::File::create(dest)?;
    let mut buf = vec![0u8; crate::backup_root::block::BLOCK];
    let mut len = 0u64;
    loop {
        let n = crate::backup_root::block::read_full(&mut from, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|&c| c == 0) {
            std::io::Seek::seek(
                &mut to,
                std::io::SeekFrom::Current(i64::try_from(n).expect("a block")),
            )?;
        } else {
            to.write_all(&buf[..n])?;
        }
        len += n as u64;
    }
    to.set_len(len)?;
    to.sync_all()?;
    Ok(len)
}

/// Set `user.rsync.%stat` of a file or directory if it differs.
fn set_stat(abs: &Path, e: &Entry, a: &mut Applied) -> Result<(), StageError> {
    let Some(want) = fake_super_stat(e) else {
        return Ok(());
    };
    let have = xattr::get(abs, xattrs::RSYNC_STAT).map_err(io(abs))?;
    if have.as_deref() != Some(want.as_bytes()) {
        xattr::set(abs, xattrs::RSYNC_STAT, want.as_bytes()).map_err(io(abs))?;
        a.stats_set += 1;
    }
    Ok(())
}

/// Set an entry's mtime (not following a symlink) if it differs.
fn set_mtime(abs: &Path, mtime: i64, a: &mut Applied) -> Result<(), StageError> {
    let m = std::fs::symlink_metadata(abs).map_err(io(abs))?;
    if m.mtime() == mtime && m.mtime_nsec() == 0 {
        return Ok(());
    }
    let t = TimeSpec::new(mtime, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        abs,
        &TimeSpec::UTIME_OMIT,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io(abs)(e.into()))?;
    a.times_set += 1;
    Ok(())
}

fn links_pass(stage: &Stage, tree: &mut Tree, a: &mut Applied) -> Result<(), StageError> {
    let by_name = stage.links_by_name();
    let mut links = LastOfEach::new(Records::open(&by_name).map_err(io(&by_name))?);
    for l in &mut links {
        let l = l.map_err(io(&by_name))?;
        let abs = tree.abs(&l.path);
        let target = tree.abs(&l.link);
        let t = if tree.parents_are_dirs(&l.link).map_err(io(&target))? {
            tree.lstat(&l.link).map_err(io(&target))?
        } else {
            None
        };
        let Some(t) = t.filter(Metadata::is_file) else {
            return Err(shape(format!(
                "the hard link `{}` points at `{}`, which is no longer a regular file",
                show(&l.path),
                show(&l.link)
            )));
        };
        a.replaced += tree.make_parents(&l.path).map_err(io(&abs))?;
        match tree.lstat(&l.path).map_err(io(&abs))? {
            Some(m) if m.is_file() && m.dev() == t.dev() && m.ino() == t.ino() => {}
            Some(m) => {
                tree.remove(&l.path, &m).map_err(io(&abs))?;
                std::fs::hard_link(&target, &abs).map_err(io(&abs))?;
                a.links_made += 1;
            }
            None => {
                std::fs::hard_link(&target, &abs).map_err(io(&abs))?;
                a.links_made += 1;
            }
        }
    }
    a.duplicates += links.dropped;
    Ok(())
}

fn removal_pass(stage: &Stage, tree: &mut Tree, a: &mut Applied) -> Result<(), StageError> {
    let sorted = stage.entries_sorted();
    let by_name = stage.links_by_name();
    let mut entries = Cursor::new(LastOfEach::new(
        Records::open(&sorted).map_err(io(&sorted))?,
    ));
    let mut links = Cursor::new(LastOfEach::new(
        Records::open(&by_name).map_err(io(&by_name))?,
    ));
    // why: the next name of the dump not yet passed by the walk
    let mut next_name = next_of(&mut entries, &mut links).map_err(io(&stage.dir))?;
    tree.forget();
    let root = tree.root().to_owned();
    let mut walk = walkdir::WalkDir::new(&root)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|x, y| x.file_name().cmp(y.file_name()))
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| {
            let p = e.path().unwrap_or(&root).to_owned();
            io(&p)(e.into())
        })?;
        let rel = entry
            .path()
            .strip_prefix(&root)
            .expect("walkdir stays under its root")
            .as_os_str()
            .as_bytes();
        let mut keep = false;
        while let Some((n, _)) = &next_name {
            match path_cmp(&n.path, rel) {
                std::cmp::Ordering::Less => {
                    next_name = next_of(&mut entries, &mut links).map_err(io(&stage.dir))?;
                }
                std::cmp::Ordering::Equal => {
                    keep = true;
                    break;
                }
                std::cmp::Ordering::Greater => {
                    // why: a directory the dump never named but that holds
                    // named entries (a parent made for them) stays
                    keep = entry.file_type().is_dir() && is_ancestor(rel, &n.path);
                    break;
                }
            }
        }
        if keep {
            continue;
        }
        println!("- {}", show(rel));
        if entry.file_type().is_dir() {
            walk.skip_current_dir();
            std::fs::remove_dir_all(entry.path()).map_err(io(entry.path()))?;
        } else {
            std::fs::remove_file(entry.path()).map_err(io(entry.path()))?;
        }
        a.removed += 1;
    }
    Ok(())
}

fn dir_times_pass(stage: &Stage, tree: &mut Tree, a: &mut Applied) -> Result<(), StageError> {
    let sorted = stage.entries_sorted();
    for e in LastOfEach::new(Records::open(&sorted).map_err(io(&sorted))?) {
        let e = e.map_err(io(&sorted))?;
        if e.kind == Kind::Dir {
            set_mtime(&tree.abs(&e.path), e.mtime, a)?;
        }
    }
    Ok(())
}

/// Bytes in the regular files of a stored volume, each inode once (for a
/// stored copy whose size was never recorded).
pub fn stored_bytes(root: &Path) -> std::io::Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(std::io::Error::from)?;
        if entry.file_type().is_file() {
            let m = entry.metadata().map_err(std::io::Error::from)?;
            if m.nlink() == 1 || seen.insert(m.ino()) {
                total += m.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_inode_is_written_in_place_only_when_all_its_names_stay_linked() {
        assert!(!must_detach(1, 0));
        assert!(!must_detach(2, 1));
        assert!(!must_detach(3, 2));
        assert!(must_detach(2, 0));
        assert!(must_detach(3, 1));
    }

    use super::super::stage::StageWriter;
    use super::super::ustar::tests::header;
    use std::os::unix::fs::symlink;

    /// One member of a test stream: (type, prefix, name, mode, uid, data, link).
    type Member<'a> = (u8, &'a [u8], &'a [u8], u32, u32, &'a [u8], &'a [u8]);

    fn stream(members: &[Member]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, (kind, prefix, name, mode, uid, data, link)) in members.iter().enumerate() {
            let mtime = 1_600_000_000 + i as u64;
            v.extend_from_slice(&header(
                *kind,
                prefix,
                name,
                *mode,
                *uid,
                data.len() as u64,
                mtime,
                link,
            ));
            v.extend_from_slice(data);
            v.resize(v.len().div_ceil(512) * 512, 0);
        }
        v.resize(v.len() + 1024, 0);
        v
    }

    /// Receive, commit and apply one dump into `unit`; the stage lives beside it.
    fn dump(unit: &Path, mode: DumpMode, members: &[Member]) -> Result<Applied, StageError> {
        let stage = Stage::new(&unit.with_extension("stage"));
        stage.discard()?;
        let mut tree = Tree::new(unit);
        let mut w = StageWriter::create(&stage, &mut tree, mode, "7e000001")?;
        w.receive(&stream(members)[..])?;
        let commit = w.commit()?;
        let a = apply(&stage, &commit, &mut tree)?;
        // why: an apply done again (a crash before the stage was dropped) changes nothing
        let again = apply(&stage, &commit, &mut tree)?;
        assert_eq!(
            (again.bytes_written, again.created, again.removed),
            (0, 0, 0),
            "{again:?}"
        );
        stage.discard()?;
        Ok(a)
    }

    const D: u8 = b'5';
    const F: u8 = b'0';
    const L: u8 = b'1';
    const S: u8 = b'2';

    #[test]
    fn a_stored_symlink_is_never_gone_through() {
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("unit");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&unit).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f"), "outside").unwrap();
        symlink(&outside, unit.join("a")).unwrap();
        // The stored copy has `a` as a symlink; the dump makes it a directory.
        dump(
            &unit,
            DumpMode::Incremental,
            &[
                (D, b"", b".", 0o755, 0, b"", b""),
                (F, b"./a", b"f", 0o644, 7, b"new", b""),
                (D, b".", b"a", 0o755, 7, b"", b""),
            ],
        )
        .unwrap();
        assert!(unit.join("a").symlink_metadata().unwrap().is_dir());
        assert_eq!(std::fs::read(unit.join("a/f")).unwrap(), b"new");
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"outside");
        // A hard link through a stored symlink is refused before anything changes.
        symlink(&outside, unit.join("b")).unwrap();
        let e = dump(
            &unit,
            DumpMode::Incremental,
            &[(L, b".", b"x", 0, 0, b"", b"./b/f")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(!unit.join("x").exists());
    }

    #[test]
    fn a_full_dump_removes_what_it_does_not_name_and_keeps_parents_it_needs() {
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("unit");
        std::fs::create_dir_all(unit.join("gone/deep")).unwrap();
        std::fs::write(unit.join("gone/deep/f"), "x").unwrap();
        std::fs::write(unit.join("old"), "x").unwrap();
        std::fs::write(unit.join("a.b"), "x").unwrap();
        let a = dump(
            &unit,
            DumpMode::Full,
            &[
                (D, b"", b".", 0o755, 0, b"", b""),
                (D, b".", b"a", 0o755, 0, b"", b""),
                (F, b"./a", b"b", 0o644, 0, b"b", b""),
                // why: codadump2tar names an orphan ./lost+found/<vnode>.<unique> without a directory entry
                (
                    F,
                    b"./lost+found",
                    b"00000002.00000003",
                    0o644,
                    0,
                    b"orphan",
                    b"",
                ),
            ],
        )
        .unwrap();
        assert_eq!(a.removed, 3, "{a:?}");
        assert!(
            !unit.join("gone").exists() && !unit.join("old").exists() && !unit.join("a.b").exists()
        );
        assert_eq!(std::fs::read(unit.join("a/b")).unwrap(), b"b");
        assert_eq!(
            std::fs::read(unit.join("lost+found/00000002.00000003")).unwrap(),
            b"orphan"
        );
        // An incremental dump removes nothing.
        std::fs::write(unit.join("kept"), "x").unwrap();
        let a = dump(
            &unit,
            DumpMode::Incremental,
            &[(D, b"", b".", 0o755, 0, b"", b"")],
        )
        .unwrap();
        assert_eq!(a.removed, 0);
        assert!(unit.join("kept").exists());
    }

    #[test]
    fn types_change_names_repeat_and_broken_links_break() {
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("unit");
        std::fs::create_dir_all(unit.join("x/y")).unwrap();
        std::fs::write(unit.join("p"), "shared").unwrap();
        std::fs::hard_link(unit.join("p"), unit.join("q")).unwrap();
        symlink("t", unit.join("s")).unwrap();
        let a = dump(
            &unit,
            DumpMode::Full,
            &[
                (D, b"", b".", 0o755, 0, b"", b""),
                (F, b".", b"x", 0o600, 5, b"a file now", b""),
                (F, b".", b"p", 0o644, 0, b"changed", b""),
                (F, b".", b"q", 0o644, 0, b"shared", b""),
                (F, b".", b"s", 0o644, 0, b"first", b""),
                (S, b".", b"s", 0o777, 0, b"", b"second"),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read(unit.join("x")).unwrap(), b"a file now");
        assert_eq!(
            xattr::get(unit.join("x"), xattrs::RSYNC_STAT)
                .unwrap()
                .as_deref(),
            Some(&b"100600 0,0 5:0"[..])
        );
        assert_eq!(std::fs::read(unit.join("p")).unwrap(), b"changed");
        assert_eq!(std::fs::read(unit.join("q")).unwrap(), b"shared");
        assert_eq!(a.detached, 1, "{a:?}");
        assert_eq!(
            std::fs::read_link(unit.join("s")).unwrap(),
            Path::new("second")
        );
        assert_eq!(a.duplicates, 1, "{a:?}");

        // Linked again: a changed file whose names all stay linked is written in place.
        let ino = std::fs::metadata(unit.join("p")).unwrap().ino();
        dump(
            &unit,
            DumpMode::Full,
            &[
                (D, b"", b".", 0o755, 0, b"", b""),
                (F, b".", b"p", 0o644, 0, b"changed", b""),
                (L, b".", b"q", 0, 0, b"", b"./p"),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::metadata(unit.join("q")).unwrap().ino(), ino);
        let a = dump(
            &unit,
            DumpMode::Full,
            &[
                (D, b"", b".", 0o755, 0, b"", b""),
                (F, b".", b"p", 0o644, 0, b"changed again", b""),
                (L, b".", b"q", 0, 0, b"", b"./p"),
            ],
        )
        .unwrap();
        assert_eq!(a.detached, 0, "{a:?}");
        assert_eq!(std::fs::metadata(unit.join("p")).unwrap().ino(), ino);
        assert_eq!(std::fs::read(unit.join("q")).unwrap(), b"changed again");
    }
}
