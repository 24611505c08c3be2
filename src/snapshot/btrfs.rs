//! The `btrfs` store, for hosts without LVM: the backup root is a btrfs
//! subvolume and each snapshot a read-only subvolume snapshot at
//! `<root>/.snapshots/<name>`, created and deleted by the root helper (the
//! same sudoers rule as lvm-thin serves). `<root>/.snapshots` is made by the
//! helper, root-owned: the backup user cannot alter a snapshot.
//!
//! Listing needs no privilege (the directory is world-readable), nor does
//! "mounting": a read-only subvolume is already readable, so `mount` makes
//! the symlink `<root>/Snapshots/<name>` -> `<root>/.snapshots/<name>` and
//! `umount` removes it; a snapshot with that symlink counts as mounted.
//! `create` ignores the date it is given: the helper names the snapshot.

use super::helper::HelperClient;
use super::{Removed, SnapshotError, SnapshotInfo, SnapshotName, SnapshotStore, Space};
use crate::config::StoreKind;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};

pub struct BtrfsStore {
    root: PathBuf,
    helper: HelperClient,
}

impl BtrfsStore {
    #[must_use]
    pub fn new(root: &Path, helper: HelperClient) -> BtrfsStore {
        BtrfsStore {
            root: root.to_owned(),
            helper,
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(".snapshots")
    }

    fn mount_point(&self, name: &SnapshotName) -> PathBuf {
        self.root.join("Snapshots").join(name.as_str())
    }
}

impl SnapshotStore for BtrfsStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Btrfs
    }

    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        super::list_linked(&self.dir(), &self.root)
    }

    fn create(&self, _today: NaiveDate) -> Result<SnapshotName, SnapshotError> {
        self.helper.create()
    }

    fn remove(&self, name: &SnapshotName) -> Result<Removed, SnapshotError> {
        if self.mount_point(name).symlink_metadata().is_ok() {
            return Err(SnapshotError::Mounted(name.clone()));
        }
        Ok(if self.helper.remove(name)? {
            Removed::Removed
        } else {
            Removed::AlreadyGone
        })
    }

    fn mount(&self, name: &SnapshotName) -> Result<PathBuf, SnapshotError> {
        super::link_mount(&self.root, name, &self.dir().join(name.as_str()))
    }

    fn umount(&self, name: &SnapshotName) -> Result<(), SnapshotError> {
        super::link_umount(&self.root, name, "btrfs")
    }

    fn space(&self) -> Result<Space, SnapshotError> {
        super::fs_space(&self.root)
    }
}
