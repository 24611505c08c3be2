//! Whether the backup root is the backup volume. A thin volume that failed
//! to mount at boot leaves an empty directory at the root's path; writing
//! there fills the system disk and snapshots nothing, so (as Deltaic did)
//! commands that use the root refuse it.
//!
//! - `lvm-thin`: the root must be a mount point, of `backup-lv`'s device.
//! - `btrfs`: the root must be a subvolume (inode 256 on btrfs).
//! - `cephfs`: a directory on a mounted CephFS (it answers `ceph.dir.rbytes`).
//! - `dir`: any directory.

use super::{StoreKind, VgLv};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why the root is not the volume, and what to do.
pub(super) struct NotMounted {
    pub why: String,
    pub how: String,
}

/// The inode number of a btrfs subvolume's root directory.
const BTRFS_SUBVOLUME_INO: u64 = 256;

pub(super) fn check(root: &Path, store: StoreKind, lv: Option<&VgLv>) -> Result<(), NotMounted> {
    match store {
        StoreKind::Dir => Ok(()),
        StoreKind::LvmThin => check_lvm(root, lv),
        StoreKind::Btrfs => check_btrfs(root),
        StoreKind::Cephfs => check_cephfs(root),
    }
}

fn check_cephfs(root: &Path) -> Result<(), NotMounted> {
    // why: only CephFS answers this virtual xattr (kernel client or ceph-fuse); ceph-fuse's statfs type is plain FUSE
    if matches!(xattr::get(root, "ceph.dir.rbytes"), Ok(Some(_))) {
        return Ok(());
    }
    Err(NotMounted {
        why: "is not on a mounted CephFS".into(),
        how: format!(
            "Mount the CephFS first (`ceph-fuse --id NAME -r /PATH {}`, or the kernel client), then run again",
            root.display()
        ),
    })
}

fn check_lvm(root: &Path, lv: Option<&VgLv>) -> Result<(), NotMounted> {
    let device = lv.map(|l| format!("/dev/{}/{}", l.vg, l.lv));
    let shown = device.as_deref().unwrap_or("/dev/VG/LV");
    let how = format!(
        "Mount the backup volume first (`mount {shown} {}`, or list it in /etc/fstab), then run again",
        root.display()
    );
    let dev_of = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
    let parent = root.parent().unwrap_or(root);
    match (dev_of(root), dev_of(parent)) {
        (Ok(a), Ok(b)) if a == b && root != parent => {
            return Err(NotMounted {
                why: "is not a mount point (the backup volume is not mounted there)".into(),
                how,
            });
        }
        _ => {}
    }
    let Some(device) = device else {
        return Ok(()); // why: a missing backup-lv is a config error reported elsewhere
    };
    let Ok(root_dev) = dev_of(root) else {
        return Ok(());
    };
    match std::fs::metadata(&device) {
        Ok(m) if m.rdev() == root_dev => Ok(()),
        Ok(_) => Err(NotMounted {
            why: format!("is a mount point, but not of backup-lv ({device} is another device)"),
            how,
        }),
        Err(_) => Err(NotMounted {
            why: format!("is a mount point, but {device} (backup-lv) does not exist"),
            how: format!(
                "Activate the volume (`lvchange -ay {}`) and mount it at {}",
                device.trim_start_matches("/dev/"),
                root.display()
            ),
        }),
    }
}

fn check_btrfs(root: &Path) -> Result<(), NotMounted> {
    let on_btrfs = nix::sys::statfs::statfs(root)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC);
    let subvolume = std::fs::metadata(root).is_ok_and(|m| m.ino() == BTRFS_SUBVOLUME_INO);
    if on_btrfs && subvolume {
        return Ok(());
    }
    Err(NotMounted {
        why: if on_btrfs {
            "is a directory on btrfs, not a subvolume".into()
        } else {
            "is not on a mounted btrfs filesystem".into()
        },
        how: format!(
            "Mount the btrfs filesystem, and make the root a subvolume (`btrfs subvolume create {}`)",
            root.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_directory_is_refused_for_lvm_btrfs_and_cephfs_and_fine_for_dir() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("backup");
        std::fs::create_dir(&root).unwrap();
        assert!(check(&root, StoreKind::Dir, None).is_ok());
        let lv = VgLv {
            vg: "vg".into(),
            lv: "backup".into(),
        };
        let e = check(&root, StoreKind::LvmThin, Some(&lv)).err().unwrap();
        assert!(e.why.contains("not a mount point"), "{}", e.why);
        assert!(e.how.contains("mount /dev/vg/backup"), "{}", e.how);
        let e = check(&root, StoreKind::Cephfs, None).err().unwrap();
        assert_eq!(e.why, "is not on a mounted CephFS");
        let e = check(&root, StoreKind::Btrfs, None).err().unwrap();
        assert!(e.why.contains("btrfs"), "{}", e.why);
    }

    #[test]
    fn a_mount_point_of_another_device_is_refused() {
        // /proc is a mount point of its own, never of a backup LV.
        let lv = VgLv {
            vg: "strata-no-such-vg".into(),
            lv: "backup".into(),
        };
        let e = check(Path::new("/proc"), StoreKind::LvmThin, Some(&lv))
            .err()
            .unwrap();
        assert!(e.why.contains("does not exist"), "{}", e.why);
        assert!(e.how.contains("lvchange -ay"), "{}", e.how);
    }
}
