//! One entry of a Coda dump as the coda source keeps it: a tar member's name
//! made safe under the unit, its kind, owner, mode and time, and where its
//! content is; the on-disk record of it in a stage; and the order in which
//! entries are sorted.
//!
//! Invariants: an entry's `path` is relative, `/`-separated, without `.`,
//! `..` or empty components, and `""` for the volume root; a member whose
//! name leaves the unit (absolute, `..`) never becomes an entry. Records are
//! read back exactly as written (a short record is an error, not an end).

use super::ustar::{Header, MemberKind};
use std::cmp::Ordering;
use std::io::{Read, Write};

/// What an entry is. A hard link is a second name of a regular file (Coda
/// has no hard links to anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    HardLink,
}

/// Where a regular file's content is during an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Equal to the stored file's: nothing to write.
    Same,
    /// In the stage's data file number `n`.
    Staged(u64),
}

/// One entry of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub path: Vec<u8>,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// A regular file's length.
    pub size: u64,
    /// A symlink's target (raw) or a hard link's target entry path.
    pub link: Vec<u8>,
    pub content: Content,
}

/// Why a member cannot be an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("an empty name")]
    Empty,
    #[error("an absolute name")]
    Absolute,
    #[error("a `..` component")]
    DotDot,
    #[error("a component longer than 255 bytes")]
    TooLong,
}

/// A member name (`./dir/f`, `.`, `./..CodaACLs.yaml`) as a path under the
/// unit: `.` and empty components dropped, a trailing `/` allowed, anything
/// that could leave the unit refused.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, NameProblem> {
    if raw.is_empty() {
        return Err(NameProblem::Empty);
    }
    if raw[0] == b'/' {
        return Err(NameProblem::Absolute);
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(NameProblem::DotDot),
            c if c.len() > 255 => return Err(NameProblem::TooLong),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// The file-type bits rsync keeps in `user.rsync.%stat`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

/// `user.rsync.%stat` of a directory or regular file, as `rsync
/// --fake-super` writes and reads it: `"<octal mode with type> 0,0
/// uid:gid"`. Symlinks and hard links get none (a user xattr cannot be set
/// on a symlink; a hard link shares its file's).
#[must_use]
pub fn fake_super_stat(e: &Entry) -> Option<String> {
    let kind = match e.kind {
        Kind::Dir => S_IFDIR,
        Kind::File => S_IFREG,
        Kind::Symlink | Kind::HardLink => return None,
    };
    Some(format!(
        "{:o} 0,0 {}:{}",
        kind | (e.mode & 0o7777),
        e.uid,
        e.gid
    ))
}

impl Entry {
    /// The entry a header stands for; the content is filled in by the
    /// stage. `Err` names what is wrong with the member.
    pub fn from_header(h: &Header) -> Result<Entry, NameProblem> {
        let path = normalize(&h.name)?;
        let (kind, link) = match h.kind {
            MemberKind::Directory => (Kind::Dir, Vec::new()),
            MemberKind::Regular => (Kind::File, Vec::new()),
            MemberKind::Symlink => (Kind::Symlink, h.link.clone()),
            MemberKind::HardLink => (Kind::HardLink, normalize(&h.link)?),
        };
        Ok(Entry {
            kind,
            path,
            mode: h.mode & 0o7777,
            uid: h.uid,
            gid: h.gid,
            mtime: h.mtime,
            size: h.size,
            link,
            content: Content::Same,
        })
    }

    /// Append this entry's record to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let kind = match self.kind {
            Kind::Dir => b'd',
            Kind::File => b'f',
            Kind::Symlink => b's',
            Kind::HardLink => b'h',
        };
        let (tag, n) = match self.content {
            Content::Same => (0u8, 0u64),
            Content::Staged(n) => (1u8, n),
        };
        w.write_all(&[kind, tag])?;
        w.write_all(&self.mode.to_le_bytes())?;
        w.write_all(&self.uid.to_le_bytes())?;
        w.write_all(&self.gid.to_le_bytes())?;
        w.write_all(&self.mtime.to_le_bytes())?;
        w.write_all(&self.size.to_le_bytes())?;
        w.write_all(&n.to_le_bytes())?;
        for bytes in [&self.path, &self.link] {
            let len = u32::try_from(bytes.len()).map_err(|_| invalid("a name too long"))?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(bytes)?;
        }
        Ok(())
    }

    /// The next record of `r`; `None` at a clean end of the file.
    pub fn read_from(r: &mut impl Read) -> std::io::Result<Option<Entry>> {
        let mut head = [0u8; 2 + 4 * 3 + 8 * 3];
        let n = crate::backup_root::block::read_full(r, &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        if n < head.len() {
            return Err(invalid("a stage record cut short"));
        }
        let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
        let kind = match head[0] {
            b'd' => Kind::Dir,
            b'f' => Kind::File,
            b's' => Kind::Symlink,
            b'h' => Kind::HardLink,
            _ => return Err(invalid("a stage record of no known kind")),
        };
        let content = match head[1] {
            0 => Content::Same,
            1 => Content::Staged(u64_at(30)),
            _ => return Err(invalid("a stage record of no known content")),
        };
        let mut bytes = || -> std::io::Result<Vec<u8>> {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)?;
            let len = u32::from_le_bytes(len) as usize;
            if len > 1 << 16 {
                return Err(invalid("a stage record with an impossible name length"));
            }
            let mut v = vec![0u8; len];
            r.read_exact(&mut v)?;
            Ok(v)
        };
        let path = bytes()?;
        let link = bytes()?;
        Ok(Some(Entry {
            kind,
            path,
            mode: u32_at(2),
            uid: u32_at(6),
            gid: u32_at(10),
            mtime: i64::from_le_bytes(head[14..22].try_into().expect("8 bytes")),
            size: u64_at(22),
            link,
            content,
        }))
    }
}

fn invalid(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// The order of a depth-first walk that visits each directory's names in
/// byte order: `a`, `a/b`, `a.b` (a `/` sorts before every byte a name can
/// hold). Sorted entries and a sorted walk of the stored tree (walkdir
/// sorting names) therefore meet in the same order.
#[must_use]
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: &u8| if *c == b'/' { 0 } else { *c };
    a.iter().map(key).cmp(b.iter().map(key))
}

/// Whether `ancestor` is a proper ancestor of `path` (`""`, the root, is
/// the ancestor of every other path).
#[must_use]
pub fn is_ancestor(ancestor: &[u8], path: &[u8]) -> bool {
    if ancestor.is_empty() {
        return !path.is_empty();
    }
    path.len() > ancestor.len() && path.starts_with(ancestor) && path[ancestor.len()] == b'/'
}

/// The parent of a path (`""` for a top-level name and for the root).
#[must_use]
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_become_paths_under_the_unit_or_are_refused() {
        type Case<'a> = (&'a [u8], Result<&'a [u8], NameProblem>);
        let cases: &[Case] = &[
            (b".", Ok(b"")),
            (b"./", Ok(b"")),
            (b"./a", Ok(b"a")),
            (b"./a/b c/d", Ok(b"a/b c/d")),
            (b"a/./b/", Ok(b"a/b")),
            (b"./a//b", Ok(b"a/b")),
            (b"./..CodaACLs.yaml", Ok(b"..CodaACLs.yaml")),
            (b"./...", Ok(b"...")),
            (b"./-rf", Ok(b"-rf")),
            (b"./\xff\xfe", Ok(b"\xff\xfe")),
            (b"", Err(NameProblem::Empty)),
            (b"..", Err(NameProblem::DotDot)),
            (b"./..", Err(NameProblem::DotDot)),
            (b"../x", Err(NameProblem::DotDot)),
            (b"./a/../../etc", Err(NameProblem::DotDot)),
            (b"a/..", Err(NameProblem::DotDot)),
            (b"/etc/passwd", Err(NameProblem::Absolute)),
        ];
        for (raw, want) in cases {
            let got = normalize(raw);
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                want.clone(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let long = [b'x'; 256];
        assert_eq!(normalize(&long), Err(NameProblem::TooLong));
    }

    #[test]
    fn fake_super_stat_is_what_rsync_reads() {
        let mut e = Entry {
            kind: Kind::File,
            path: b"f".to_vec(),
            mode: 0o4755,
            uid: 1234,
            gid: 0,
            mtime: 0,
            size: 0,
            link: Vec::new(),
            content: Content::Same,
        };
        assert_eq!(fake_super_stat(&e).as_deref(), Some("104755 0,0 1234:0"));
        e.kind = Kind::Dir;
        e.mode = 0o755;
        assert_eq!(fake_super_stat(&e).as_deref(), Some("40755 0,0 1234:0"));
        e.kind = Kind::Symlink;
        assert_eq!(fake_super_stat(&e), None);
    }

    #[test]
    fn records_round_trip_and_a_short_one_is_an_error() {
        let e = Entry {
            kind: Kind::HardLink,
            path: b"a/\xffb".to_vec(),
            mode: 0o644,
            uid: u32::MAX,
            gid: 7,
            mtime: -5,
            size: 1 << 40,
            link: b"a/t".to_vec(),
            content: Content::Staged(42),
        };
        let mut buf = Vec::new();
        e.write_to(&mut buf).unwrap();
        e.write_to(&mut buf).unwrap();
        let mut r = &buf[..];
        assert_eq!(Entry::read_from(&mut r).unwrap().as_ref(), Some(&e));
        assert_eq!(Entry::read_from(&mut r).unwrap().as_ref(), Some(&e));
        assert_eq!(Entry::read_from(&mut r).unwrap(), None);
        let mut short = &buf[..buf.len() - 1];
        Entry::read_from(&mut short).unwrap();
        assert!(Entry::read_from(&mut short).is_err());
    }

    #[test]
    fn paths_sort_as_a_walk_visits_them() {
        let mut v: Vec<&[u8]> = vec![b"a.b", b"a/b", b"", b"a", b"a/b/c", b"a-", b"b", b"a/a"];
        v.sort_by(|x, y| path_cmp(x, y));
        assert_eq!(
            v,
            [
                &b""[..],
                b"a",
                b"a/a",
                b"a/b",
                b"a/b/c",
                b"a-",
                b"a.b",
                b"b"
            ]
        );
        assert!(is_ancestor(b"", b"a"));
        assert!(!is_ancestor(b"", b""));
        assert!(is_ancestor(b"a", b"a/b"));
        assert!(!is_ancestor(b"a", b"ab"));
        assert!(!is_ancestor(b"a", b"a"));
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
    }
}
