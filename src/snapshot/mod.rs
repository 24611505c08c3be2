//! Snapshot stores: where the read-only history of the backup root lives.
//!
//! Owns: the [`SnapshotStore`] trait and the factory that picks a store from
//! the config. One file per store: `dir.rs` (a copy, for hosts without a
//! volume manager), and the privileged ones, `lvm_thin.rs` and `btrfs.rs`,
//! that go through the `strata-snapshot` root helper (`helper.rs`: `sudo -n`,
//! JSON replies; DESIGN §4, docs/privilege.md), and `cephfs.rs` (CephFS
//! snapshots of a root on a mounted CephFS, no privilege; docs/scale-out.md).
//!
//! Contract shared by every store: names are [`SnapshotName`]s (`YYYYMMDD-N`,
//! N the first unused number of the day); a snapshot is never modified after
//! `create` returns; `remove` refuses a mounted snapshot; a crash during
//! `create` leaves no half snapshot under a valid name.

pub mod btrfs;
pub mod cephfs;
pub mod dir;
pub mod helper;
pub mod lvm_thin;
pub mod prune;

pub use crate::names::SnapshotName;

use crate::config::{Config, StoreKind};
use chrono::NaiveDate;
use serde::Serialize;
use std::path::PathBuf;

/// One snapshot as a store lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub name: SnapshotName,
    /// Where it is mounted, if it is.
    pub mounted: Option<PathBuf>,
}

/// Free space of the backup filesystem and, where there is one, its pool.
#[derive(Debug, Clone, Serialize)]
pub struct Space {
    pub fs_size: u64,
    pub fs_free: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    pub pool: Option<PoolSpace>,
}

/// Thin-pool usage.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSpace {
    pub data_size: u64,
    pub data_free_percent: f64,
    pub metadata_size: u64,
    pub metadata_free_percent: f64,
}

impl Space {
    #[allow(clippy::cast_precision_loss)] // why: percentages
    #[must_use]
    pub fn fs_free_percent(&self) -> f64 {
        if self.fs_size == 0 {
            0.0
        } else {
            100.0 * self.fs_free as f64 / self.fs_size as f64
        }
    }
    #[allow(clippy::cast_precision_loss)]
    #[must_use]
    pub fn inodes_free_percent(&self) -> f64 {
        if self.inodes == 0 {
            100.0
        } else {
            100.0 * self.inodes_free as f64 / self.inodes as f64
        }
    }
    /// The free bytes that `gc-min-free-bytes` watches: the pool's free data
    /// where there is a pool, else the filesystem's free bytes.
    #[must_use]
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // why: a percentage of a size, rounded down
    pub fn free_bytes_for_pruning(&self) -> u64 {
        match &self.pool {
            Some(p) => (p.data_size as f64 * p.data_free_percent.clamp(0.0, 100.0) / 100.0) as u64,
            None => self.fs_free,
        }
    }

    /// The free percentage that the emergency pruning rule watches: the
    /// pool's data and metadata where there is a pool, else the filesystem.
    #[must_use]
    pub fn free_for_pruning(&self) -> (f64, f64) {
        match &self.pool {
            Some(p) => (p.data_free_percent, p.metadata_free_percent),
            None => (self.fs_free_percent(), self.inodes_free_percent()),
        }
    }
}

/// What `remove` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Removed,
    AlreadyGone,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0} does not exist")]
    NotFound(SnapshotName),
    #[error("snapshot {0} is mounted; unmount it first (strata umount {0})")]
    Mounted(SnapshotName),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error("snapshot-store {0} is not supported by this build yet; use snapshot-store: dir")]
    Unsupported(&'static str),
    #[error("snapshot-dir {} must be outside the backup root or directly inside it", dir.display())]
    SnapshotDirNested { dir: PathBuf },
    #[error("{} is not a {store}-store mount (a symlink); not touching it", path.display())]
    NotOurMount { path: PathBuf, store: &'static str },
    #[error("strata-snapshot {verb} returned a bad name: {source}")]
    HelperBadName {
        verb: &'static str,
        #[source]
        source: crate::names::SnapshotNameError,
    },
    #[error("`{argv}` {}: {reason}", if *refused { "refused" } else { "failed" })]
    Helper {
        argv: String,
        /// Exit 2: the helper refused before running anything.
        refused: bool,
        reason: String,
    },
    #[error(
        "cannot take snapshot {name} of {}: CephFS allows at most mds_max_snaps_per_dir snapshots \
         per directory, ancestors' snapshots included (mkdir .snap/{name}: EMLINK, with {existing} \
         of this root's own; cephfs-max-snapshots is {max}). Remove old snapshots \
         (`strata prune`, which keeps the count under cephfs-max-snapshots), or raise the limit \
         with `ceph config set mds mds_max_snaps_per_dir N` and set cephfs-max-snapshots to N",
        root.display()
    )]
    CephfsSnapLimit {
        name: SnapshotName,
        root: PathBuf,
        existing: usize,
        max: u32,
    },
    #[error(
        "cannot take snapshot {name} of {}: a CephFS snapshot of that name already exists \
         (mkdir .snap/{name}: EEXIST); snapshot names are never reused",
        root.display()
    )]
    CephfsSnapExists { name: SnapshotName, root: PathBuf },
    #[error(
        "cannot take snapshot {name} of {}: permission denied (mkdir .snap/{name}: EACCES). \
         The client key needs the `s` flag on this path (`ceph fs authorize FS client.NAME /PATH rws`, \
         see `strata mkconf sudoers`) and the backup user needs write permission on the root",
        root.display()
    )]
    CephfsSnapDenied { name: SnapshotName, root: PathBuf },
    #[error("strata-snapshot {verb}: unreadable reply: {source}")]
    HelperReply {
        verb: String,
        #[source]
        source: serde_json::Error,
    },
}

impl SnapshotError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SnapshotError {
        let path = path.into();
        move |source| SnapshotError::Io { path, source }
    }
}

/// A place that keeps read-only snapshots of the backup root.
pub trait SnapshotStore {
    /// The store's kind, for messages.
    fn kind(&self) -> StoreKind;
    /// Every snapshot, oldest first.
    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError>;
    /// Take a snapshot of the root now, named for `today`.
    fn create(&self, today: NaiveDate) -> Result<SnapshotName, SnapshotError>;
    /// Remove a snapshot; refuses a mounted one.
    fn remove(&self, name: &SnapshotName) -> Result<Removed, SnapshotError>;
    /// Make a snapshot readable at `<root>/Snapshots/<name>` (cephfs: it
    /// already is, at `<root>/.snap/<name>`); returns where it is readable.
    fn mount(&self, name: &SnapshotName) -> Result<PathBuf, SnapshotError>;
    /// Undo `mount`.
    fn umount(&self, name: &SnapshotName) -> Result<(), SnapshotError>;
    /// Free space of the filesystem (and pool).
    fn space(&self) -> Result<Space, SnapshotError>;
    /// How many snapshots the store can hold at most, when it has a limit
    /// (CephFS: `mds_max_snaps_per_dir`); `prune` keeps the count below it.
    fn snapshot_limit(&self) -> Option<u32> {
        None
    }
}

/// A snapshot mounted for the life of this value. If this value mounted
/// it, [`MountedSnapshot::close`] unmounts it (and dropping it does, as a
/// last resort, when an error path returns early); a snapshot that was
/// mounted before is left mounted.
pub struct MountedSnapshot<'a> {
    store: &'a dyn SnapshotStore,
    name: SnapshotName,
    path: PathBuf,
    mounted_here: bool,
}

impl<'a> MountedSnapshot<'a> {
    pub fn mount(
        store: &'a dyn SnapshotStore,
        name: &SnapshotName,
    ) -> Result<MountedSnapshot<'a>, SnapshotError> {
        let was_mounted = store
            .list()?
            .iter()
            .any(|s| &s.name == name && s.mounted.is_some());
        let path = store.mount(name)?;
        Ok(MountedSnapshot {
            store,
            name: name.clone(),
            path,
            mounted_here: !was_mounted,
        })
    }

    /// Where the snapshot is readable.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Unmount it if this value mounted it, reporting a failure.
    pub fn close(mut self) -> Result<(), SnapshotError> {
        let r = if self.mounted_here {
            self.store.umount(&self.name)
        } else {
            Ok(())
        };
        self.mounted_here = false;
        r
    }
}

impl Drop for MountedSnapshot<'_> {
    fn drop(&mut self) {
        if self.mounted_here {
            let _ = self.store.umount(&self.name);
        }
    }
}

/// The store the config selects.
pub fn open(config: &Config) -> Result<Box<dyn SnapshotStore>, SnapshotError> {
    match config.settings.snapshot_store {
        StoreKind::Dir => Ok(Box::new(dir::DirStore::new(
            &config.settings.root,
            &config.settings.snapshot_dir,
        )?)),
        StoreKind::LvmThin => Ok(Box::new(lvm_thin::LvmThinStore::new(
            &config.settings.root,
            helper::HelperClient::from_env(),
        ))),
        StoreKind::Btrfs => Ok(Box::new(btrfs::BtrfsStore::new(
            &config.settings.root,
            helper::HelperClient::from_env(),
        ))),
        StoreKind::Cephfs => Ok(Box::new(cephfs::CephfsStore::new(
            &config.settings.root,
            config.settings.cephfs_max_snapshots,
        ))),
    }
}

/// Filesystem space of the directory `path`.
pub fn fs_space(path: &std::path::Path) -> Result<Space, SnapshotError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| SnapshotError::Io {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let frsize = st.fragment_size();
    Ok(Space {
        fs_size: st.blocks() * frsize,
        fs_free: st.blocks_available() * frsize,
        inodes: st.files(),
        inodes_free: st.files_available(),
        pool: None,
    })
}

/// The snapshots kept as directories in `dir` (dir and btrfs stores), oldest
/// first; "mounted" when `<root>/Snapshots/<name>` exists. Other entries are
/// ignored; a missing `dir` holds none.
pub(crate) fn list_linked(
    dir: &std::path::Path,
    root: &std::path::Path,
) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SnapshotError::Io {
                path: dir.to_owned(),
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(SnapshotError::io(dir))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(name) = SnapshotName::parse(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        let mp = root.join("Snapshots").join(name.as_str());
        let mounted = mp.symlink_metadata().is_ok().then_some(mp);
        out.push(SnapshotInfo { name, mounted });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// "Mount" a snapshot that is readable where it lies (dir and btrfs stores):
/// the symlink `<root>/Snapshots/<name>` -> `target`. Mounting twice is fine.
pub(crate) fn link_mount(
    root: &std::path::Path,
    name: &SnapshotName,
    target: &std::path::Path,
) -> Result<PathBuf, SnapshotError> {
    if !target.is_dir() {
        return Err(SnapshotError::NotFound(name.clone()));
    }
    let parent = root.join("Snapshots");
    let mp = parent.join(name.as_str());
    if mp.symlink_metadata().is_ok() {
        return Ok(mp);
    }
    std::fs::create_dir_all(&parent).map_err(SnapshotError::io(&parent))?;
    std::os::unix::fs::symlink(target, &mp).map_err(SnapshotError::io(&mp))?;
    Ok(mp)
}

/// Undo [`link_mount`]; anything but a symlink at the mount point is left
/// alone and reported (it is not this store's).
pub(crate) fn link_umount(
    root: &std::path::Path,
    name: &SnapshotName,
    store: &'static str,
) -> Result<(), SnapshotError> {
    let mp = root.join("Snapshots").join(name.as_str());
    match mp.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(&mp).map_err(SnapshotError::io(&mp))
        }
        Ok(_) => Err(SnapshotError::NotOurMount { path: mp, store }),
        Err(_) => Ok(()),
    }
}
