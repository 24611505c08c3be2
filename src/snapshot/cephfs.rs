//! The `cephfs` store: the backup root is a directory on a mounted CephFS
//! (kernel client or ceph-fuse) and each snapshot a CephFS snapshot of it,
//! `<root>/.snap/<name>`. No sudo and no helper: the client key needs the
//! `s` flag on the root's path (`ceph fs authorize FS client.NAME /path
//! rws`, printed by `strata mkconf sudoers` for this store) and the backup
//! user needs Unix write permission on the root.
//!
//! - `create`: `syncfs` on the root (CephFS snapshots are consistent per
//!   client only: this client's buffered writes must be flushed first),
//!   then `mkdir <root>/.snap/<name>`. EMLINK (the MDS's
//!   `mds_max_snaps_per_dir`, 100 by default, ancestors' snapshots
//!   included) and EEXIST are typed errors, never a missing snapshot.
//! - `list`: readdir of `<root>/.snap`, skipping `_<name>_<inode>` entries
//!   (an ancestor's snapshots seen from here). Existence is judged from that
//!   listing only, never by `stat`: a client that read a snapshot can keep
//!   `stat`-ing and reading it for a minute after another client removed it.
//! - `remove`: `rmdir <root>/.snap/<name>`.
//! - `mount`/`umount`: nothing to mount; `mount` returns where the snapshot
//!   is readable (`<root>/.snap/<name>`), `umount` does nothing, and no
//!   snapshot is ever "mounted".
//! - [`settle`]: after a unit's backup, every file and directory it changed
//!   is opened read-only, fsynced and closed. ceph-fuse otherwise keeps
//!   write caps on files it has closed, and the MDS takes each one back
//!   only on its 5-second tick when another reader (a snapshot read, or
//!   another appliance) needs it: reading a snapshot of 2,000 freshly
//!   rsynced files took hours; settled, seconds. It also makes the data
//!   durable, which `syncfs` does not do on ceph-fuse.
//! - `space`: statvfs of the mount, bounded by the root's quota
//!   (`ceph.quota.max_bytes`, used bytes from `ceph.dir.rbytes`); CephFS's
//!   `st_blocks` is always `size/512`, so nothing here reads allocation.

use super::{Removed, SnapshotError, SnapshotInfo, SnapshotName, SnapshotStore, Space};
use crate::config::StoreKind;
use chrono::NaiveDate;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The virtual xattr holding a directory's quota in bytes (0 or absent: none).
const QUOTA_XATTR: &str = "ceph.quota.max_bytes";
/// The virtual xattr holding a directory's recursive size in bytes.
const RBYTES_XATTR: &str = "ceph.dir.rbytes";

/// What [`settle`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Files and directories opened, fsynced and closed.
    pub synced: u64,
    /// Entries changed in the backup that could not be opened (removed
    /// meanwhile, or unreadable): left to the MDS's slow path.
    pub skipped: u64,
}

/// Open read-only, fsync and close every regular file and directory under
/// `dir` whose ctime is not before `since` (Unix seconds): what a unit's
/// backup changed. Directories are settled after their contents. Symlinks
/// and special files are left alone (nothing to flush).
pub fn settle(dir: &Path, since: i64) -> std::io::Result<Settled> {
    let mut out = Settled::default();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .contents_first(true)
    {
        // why: removed under us, or unreadable: nothing this walk can flush
        let Ok(entry) = entry else {
            out.skipped += 1;
            continue;
        };
        let ft = entry.file_type();
        if !(ft.is_file() || ft.is_dir()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            out.skipped += 1;
            continue;
        };
        if meta.ctime() < since {
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(entry.path());
        match opened.and_then(|f| f.sync_all()) {
            Ok(()) => out.synced += 1,
            Err(_) => out.skipped += 1,
        }
    }
    Ok(out)
}

pub struct CephfsStore {
    root: PathBuf,
    /// `mds_max_snaps_per_dir` as configured (`cephfs-max-snapshots`).
    max_snaps: u32,
}

impl CephfsStore {
    #[must_use]
    pub fn new(root: &Path, max_snaps: u32) -> CephfsStore {
        CephfsStore {
            root: root.to_owned(),
            max_snaps,
        }
    }

    fn snap_dir(&self) -> PathBuf {
        self.root.join(".snap")
    }

    fn path_of(&self, name: &SnapshotName) -> PathBuf {
        self.snap_dir().join(name.as_str())
    }

    fn listed(&self, name: &SnapshotName) -> Result<bool, SnapshotError> {
        Ok(self.list()?.iter().any(|s| &s.name == name))
    }
}

fn xattr_u64(path: &Path, name: &str) -> Option<u64> {
    let v = xattr::get(path, name).ok()??;
    String::from_utf8_lossy(&v).trim().parse().ok()
}

impl SnapshotStore for CephfsStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Cephfs
    }

    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let dir = self.snap_dir();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(SnapshotError::io(&dir))? {
            let entry = entry.map_err(SnapshotError::io(&dir))?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            // why: `_<name>_<inode>` is an ancestor's snapshot seen from here; not ours to list or remove
            if file_name.starts_with('_') {
                continue;
            }
            let Ok(name) = SnapshotName::parse(&file_name) else {
                continue;
            };
            out.push(SnapshotInfo {
                name,
                mounted: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn create(&self, today: NaiveDate) -> Result<SnapshotName, SnapshotError> {
        let root = std::fs::File::open(&self.root).map_err(SnapshotError::io(&self.root))?;
        // why: a CephFS snapshot holds what the MDS knows of; this client's buffered writes must reach it first
        nix::unistd::syncfs(&root).map_err(|e| SnapshotError::Io {
            path: self.root.clone(),
            source: e.into(),
        })?;
        let existing: Vec<SnapshotName> = self.list()?.into_iter().map(|s| s.name).collect();
        let name = SnapshotName::next_for_day(&existing, today);
        let path = self.path_of(&name);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(name),
            Err(e) => Err(match e.raw_os_error() {
                Some(nix::libc::EMLINK) => SnapshotError::CephfsSnapLimit {
                    name,
                    root: self.root.clone(),
                    existing: existing.len(),
                    max: self.max_snaps,
                },
                Some(nix::libc::EEXIST) => SnapshotError::CephfsSnapExists {
                    name,
                    root: self.root.clone(),
                },
                Some(nix::libc::EACCES) => SnapshotError::CephfsSnapDenied {
                    name,
                    root: self.root.clone(),
                },
                _ => SnapshotError::Io { path, source: e },
            }),
        }
    }

    fn remove(&self, name: &SnapshotName) -> Result<Removed, SnapshotError> {
        if !self.listed(name)? {
            return Ok(Removed::AlreadyGone);
        }
        let path = self.path_of(name);
        match std::fs::remove_dir(&path) {
            Ok(()) => Ok(Removed::Removed),
            // why: another client removed it between our listing and the rmdir
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Removed::AlreadyGone),
            Err(e) => Err(SnapshotError::Io { path, source: e }),
        }
    }

    fn mount(&self, name: &SnapshotName) -> Result<PathBuf, SnapshotError> {
        if !self.listed(name)? {
            return Err(SnapshotError::NotFound(name.clone()));
        }
        Ok(self.path_of(name))
    }

    fn umount(&self, _name: &SnapshotName) -> Result<(), SnapshotError> {
        Ok(())
    }

    fn space(&self) -> Result<Space, SnapshotError> {
        let fs = super::fs_space(&self.root)?;
        let quota = xattr_u64(&self.root, QUOTA_XATTR).filter(|q| *q > 0);
        let used = xattr_u64(&self.root, RBYTES_XATTR);
        Ok(bounded_by_quota(fs, quota, used))
    }

    fn snapshot_limit(&self) -> Option<u32> {
        Some(self.max_snaps)
    }
}

/// The space a root with `quota` bytes of which `used` are used really
/// has: the smaller of the filesystem's (the data pool's) and the quota's.
fn bounded_by_quota(fs: Space, quota: Option<u64>, used: Option<u64>) -> Space {
    let Some(quota) = quota else {
        return fs;
    };
    let quota_free = quota.saturating_sub(used.unwrap_or(0));
    Space {
        fs_size: if fs.fs_size == 0 {
            quota
        } else {
            fs.fs_size.min(quota)
        },
        fs_free: fs.fs_free.min(quota_free),
        ..fs
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn settle_syncs_what_changed_since_and_leaves_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path().join("dump/u");
        std::fs::create_dir_all(u.join("sub")).unwrap();
        std::fs::write(u.join("a"), "a").unwrap();
        std::fs::write(u.join("sub/b"), "b").unwrap();
        std::os::unix::fs::symlink("a", u.join("link")).unwrap();
        let now = chrono::Utc::now().timestamp();
        // Two files and two directories changed; the symlink is left alone.
        assert_eq!(
            settle(&u, now - 5).unwrap(),
            Settled {
                synced: 4,
                skipped: 0
            }
        );
        // Nothing changed since a later time; a missing unit is no error.
        assert_eq!(settle(&u, now + 60).unwrap(), Settled::default());
        assert_eq!(
            settle(&d.path().join("none"), 0).unwrap(),
            Settled::default()
        );
    }

    use super::*;

    fn space(size: u64, free: u64) -> Space {
        Space {
            fs_size: size,
            fs_free: free,
            inodes: 10,
            inodes_free: 5,
            pool: None,
        }
    }

    #[test]
    fn quota_bounds_space_table() {
        // (pool size, pool free, quota, used) -> (size, free)
        type Row = (u64, u64, Option<u64>, Option<u64>, u64, u64);
        let table: &[Row] = &[
            (1000, 600, None, Some(300), 1000, 600),
            (1000, 600, Some(200), Some(50), 200, 150),
            (1000, 100, Some(500), Some(50), 500, 100),
            (1000, 600, Some(200), Some(300), 200, 0),
            // why: without the mgr statfs says 0; the quota still gives a size
            (0, 0, Some(200), Some(50), 200, 0),
        ];
        for &(size, free, quota, used, want_size, want_free) in table {
            let s = bounded_by_quota(space(size, free), quota, used);
            assert_eq!(
                (s.fs_size, s.fs_free),
                (want_size, want_free),
                "{size} {free} {quota:?} {used:?}"
            );
            assert_eq!((s.inodes, s.inodes_free), (10, 5));
        }
    }

    #[test]
    fn listing_skips_ancestors_and_foreign_names() {
        // why: a plain directory stands in for `.snap` here; the real thing is tested in tests/it/cephfs.rs
        let d = tempfile::tempdir().unwrap();
        for n in [
            "20261130-1",
            "_20261129-1_1099511627776",
            "20261130-2",
            "junk",
        ] {
            std::fs::create_dir_all(d.path().join(".snap").join(n)).unwrap();
        }
        let store = CephfsStore::new(d.path(), 100);
        let names: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["20261130-1", "20261130-2"]);
        let gone = SnapshotName::parse("20261129-1").unwrap();
        assert_eq!(store.remove(&gone).unwrap(), Removed::AlreadyGone);
        assert!(matches!(
            store.mount(&gone),
            Err(SnapshotError::NotFound(_))
        ));
    }
}
