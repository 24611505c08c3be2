//! The stored copy of a volume under `<root>/<unit>`, reached without ever
//! following a symlink: a dump may turn a stored directory into a symlink
//! (or the reverse), and a path through a stored symlink could read or
//! write outside the unit.
//!
//! Every operation on an entry first makes sure its ancestors are real
//! directories: [`Tree::parents_are_dirs`] only looks (staging compares
//! against the stored copy and changes nothing); [`Tree::make_parents`]
//! creates missing ones and replaces whatever else stands in the way
//! (applying). The last directory found real is remembered, so a sorted
//! pass costs one `lstat` per new directory, not per component; anything
//! removed forgets it. Nothing else writes into the unit while its lock is
//! held, so what was checked stays true.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::entry::parent;

pub struct Tree {
    root: PathBuf,
    /// A directory (relative path) whose every component is known to be a
    /// real directory.
    known_dir: Option<Vec<u8>>,
}

impl Tree {
    #[must_use]
    pub fn new(root: &Path) -> Tree {
        Tree {
            root: root.to_owned(),
            known_dir: None,
        }
    }

    /// The unit directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of an entry path (`""` is the unit directory).
    #[must_use]
    pub fn abs(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    /// `lstat` of an entry, `None` when it does not exist. The caller has
    /// checked its ancestors.
    pub fn lstat(&self, rel: &[u8]) -> std::io::Result<Option<Metadata>> {
        match std::fs::symlink_metadata(self.abs(rel)) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn known(&self, dir: &[u8]) -> bool {
        self.known_dir.as_deref().is_some_and(|k| {
            dir.is_empty()
                || k == dir
                || (k.len() > dir.len() && k.starts_with(dir) && k[dir.len()] == b'/')
        })
    }

    /// Whether every ancestor of `rel` is a real directory (changes nothing).
    pub fn parents_are_dirs(&mut self, rel: &[u8]) -> std::io::Result<bool> {
        let dir = parent(rel);
        if dir.is_empty() || self.known(dir) {
            return Ok(true);
        }
        let mut end = 0;
        while end < dir.len() {
            end = dir[end + 1..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(dir.len(), |i| end + 1 + i);
            let prefix = &dir[..end];
            if self.known(prefix) {
                continue;
            }
            match self.lstat(prefix)? {
                Some(m) if m.is_dir() => {}
                _ => return Ok(false),
            }
        }
        self.known_dir = Some(dir.to_vec());
        Ok(true)
    }

    /// Make every ancestor of `rel` a real directory: missing ones are
    /// created, a file or symlink in the way is removed first. Returns how
    /// many were replaced.
    pub fn make_parents(&mut self, rel: &[u8]) -> std::io::Result<u64> {
        let dir = parent(rel);
        if dir.is_empty() || self.known(dir) {
            return Ok(0);
        }
        let mut replaced = 0;
        let mut end = 0;
        while end < dir.len() {
            end = dir[end + 1..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(dir.len(), |i| end + 1 + i);
            let prefix = &dir[..end];
            if self.known(prefix) {
                continue;
            }
            match self.lstat(prefix)? {
                Some(m) if m.is_dir() => {}
                Some(m) => {
                    self.remove(prefix, &m)?;
                    std::fs::create_dir(self.abs(prefix))?;
                    replaced += 1;
                }
                None => std::fs::create_dir(self.abs(prefix))?,
            }
        }
        self.known_dir = Some(dir.to_vec());
        Ok(replaced)
    }

    /// Remove an entry whatever it is (a directory with its contents; std's
    /// `remove_dir_all` never follows a symlink).
    pub fn remove(&mut self, rel: &[u8], meta: &Metadata) -> std::io::Result<()> {
        self.known_dir = None;
        let p = self.abs(rel);
        if meta.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        }
    }

    /// Forget what is known (after something was renamed or removed by
    /// other means).
    pub fn forget(&mut self) {
        self.known_dir = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_parent_is_never_gone_through() {
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("unit");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(unit.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, unit.join("a/evil")).unwrap();
        std::fs::write(unit.join("a/file"), "f").unwrap();

        let mut t = Tree::new(&unit);
        assert!(t.parents_are_dirs(b"a/b/c").unwrap());
        assert!(t.parents_are_dirs(b"a/x").unwrap());
        assert!(t.parents_are_dirs(b"top").unwrap());
        assert!(!t.parents_are_dirs(b"a/evil/secret").unwrap());
        assert!(!t.parents_are_dirs(b"a/file/x").unwrap());
        assert!(t.parents_are_dirs(b"a/missing/x").is_ok_and(|ok| !ok));

        assert_eq!(t.make_parents(b"a/evil/secret").unwrap(), 1);
        assert!(unit.join("a/evil").symlink_metadata().unwrap().is_dir());
        assert!(
            outside.join("secret").exists(),
            "the symlink was removed, not its target"
        );
        assert_eq!(t.make_parents(b"a/file/x/y").unwrap(), 1);
        assert!(unit.join("a/file/x").is_dir());
        assert_eq!(t.make_parents(b"a/file/x/z").unwrap(), 0);
    }
}
