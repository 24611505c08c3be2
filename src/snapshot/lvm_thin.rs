//! The `lvm-thin` store, the appliance's: each snapshot is a read-only thin
//! snapshot LV of `backup-lv`, tagged `backup-snapshot`, named `YYYYMMDD-N`.
//! Every operation goes through the root helper (`sudo -n strata-snapshot`),
//! which reads the VG/LV from its own root-owned config: this side never
//! names an LV, only a validated [`SnapshotName`].
//!
//! `create` ignores the date it is given: the helper names the snapshot from
//! its own clock (a caller cannot pick names). Mounting activates the LV
//! (`lvchange -ay -K`) and mounts it read-only at `<root>/Snapshots/<name>`;
//! unmounting deactivates it again.

use super::helper::HelperClient;
use super::{PoolSpace, Removed, SnapshotError, SnapshotInfo, SnapshotName, SnapshotStore, Space};
use crate::config::StoreKind;
use crate::privileged::protocol;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};

pub struct LvmThinStore {
    root: PathBuf,
    helper: HelperClient,
}

impl LvmThinStore {
    #[must_use]
    pub fn new(root: &Path, helper: HelperClient) -> LvmThinStore {
        LvmThinStore {
            root: root.to_owned(),
            helper,
        }
    }
}

impl SnapshotStore for LvmThinStore {
    fn kind(&self) -> StoreKind {
        StoreKind::LvmThin
    }

    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        Ok(self
            .helper
            .list()?
            .into_iter()
            .map(|(name, mounted)| SnapshotInfo { name, mounted })
            .collect())
    }

    fn create(&self, _today: NaiveDate) -> Result<SnapshotName, SnapshotError> {
        self.helper.create()
    }

    fn remove(&self, name: &SnapshotName) -> Result<Removed, SnapshotError> {
        if self
            .list()?
            .iter()
            .any(|s| &s.name == name && s.mounted.is_some())
        {
            return Err(SnapshotError::Mounted(name.clone()));
        }
        Ok(if self.helper.remove(name)? {
            Removed::Removed
        } else {
            Removed::AlreadyGone
        })
    }

    fn mount(&self, name: &SnapshotName) -> Result<PathBuf, SnapshotError> {
        let reply: protocol::MountReply = self.helper.call("mount", Some(name))?;
        Ok(reply.mounted)
    }

    fn umount(&self, name: &SnapshotName) -> Result<(), SnapshotError> {
        let _: protocol::UmountReply = self.helper.call("umount", Some(name))?;
        Ok(())
    }

    fn space(&self) -> Result<Space, SnapshotError> {
        let mut space = super::fs_space(&self.root)?;
        let reply: protocol::PoolReply = self.helper.call("pool-status", None)?;
        space.pool = reply.pool.map(|p| PoolSpace {
            data_size: p.data_size,
            data_free_percent: 100.0 - p.data_percent,
            metadata_size: p.metadata_size,
            metadata_free_percent: 100.0 - p.metadata_percent,
        });
        Ok(space)
    }
}
