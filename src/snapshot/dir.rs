//! The `dir` store: a snapshot is a copy of the backup root under
//! `snapshot-dir`, made with reflinks where the filesystem has them (btrfs,
//! XFS) and full copies otherwise. Slow and large on ext4; it exists so that
//! strata runs anywhere with no root and no volume manager (the quick start,
//! the tests).
//!
//! Layout: `<snapshot-dir>/<name>/` holds the copy; it is made under
//! `<snapshot-dir>/.tmp-<name>` and renamed into place only when complete, so
//! a crash never leaves a half snapshot under a valid name (leftovers are
//! removed by the next `create`). The copy skips the snapshot dir itself and
//! `<root>/Snapshots`. It keeps every mode as the root has it: the dir
//! store once removed write permission to mark copies read-only, and since
//! rsync's fake-super records a mode only when it is unusual, every file and
//! directory restored from such a copy (or from its archive) came back
//! read-only. Unlike the lvm-thin, btrfs and cephfs stores, nothing keeps
//! the backup user from writing into a copy. `remove` still makes
//! directories writable to delete (copies made before kept no write bit).
//! "Mounting" makes the symlink `<root>/Snapshots/<name>` -> the copy.

use super::{Removed, SnapshotError, SnapshotInfo, SnapshotName, SnapshotStore, Space};
use crate::config::StoreKind;
use crate::exec::Cmd;
use chrono::NaiveDate;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

pub struct DirStore {
    root: PathBuf,
    dir: PathBuf,
    /// The root's entry that holds the snapshots, when `dir` is directly inside the root.
    skip: Option<std::ffi::OsString>,
}

impl DirStore {
    /// A store keeping copies of `root` in `dir`, which must be outside the
    /// root or directly inside it.
    pub fn new(root: &Path, dir: &Path) -> Result<DirStore, SnapshotError> {
        let skip = match dir.strip_prefix(root) {
            Ok(rel) => {
                let comps: Vec<Component> = rel.components().collect();
                match comps.as_slice() {
                    [Component::Normal(name)] => Some(name.to_os_string()),
                    _ => {
                        return Err(SnapshotError::SnapshotDirNested {
                            dir: dir.to_owned(),
                        });
                    }
                }
            }
            Err(_) => None,
        };
        Ok(DirStore {
            root: root.to_owned(),
            dir: dir.to_owned(),
            skip,
        })
    }

    fn path_of(&self, name: &SnapshotName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    fn mount_point(&self, name: &SnapshotName) -> PathBuf {
        self.root.join("Snapshots").join(name.as_str())
    }

    fn clear_leftovers(&self) -> Result<(), SnapshotError> {
        for entry in std::fs::read_dir(&self.dir).map_err(SnapshotError::io(&self.dir))? {
            let entry = entry.map_err(SnapshotError::io(&self.dir))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                remove_tree(&entry.path())?;
            }
        }
        Ok(())
    }
}

impl SnapshotStore for DirStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Dir
    }

    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        super::list_linked(&self.dir, &self.root)
    }

    fn create(&self, today: NaiveDate) -> Result<SnapshotName, SnapshotError> {
        std::fs::create_dir_all(&self.dir).map_err(SnapshotError::io(&self.dir))?;
        self.clear_leftovers()?;
        let existing: Vec<SnapshotName> = self.list()?.into_iter().map(|s| s.name).collect();
        let name = SnapshotName::next_for_day(&existing, today);
        let tmp = self.dir.join(format!(".tmp-{name}"));
        std::fs::create_dir(&tmp).map_err(SnapshotError::io(&tmp))?;
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(SnapshotError::io(&self.root))? {
            let entry = entry.map_err(SnapshotError::io(&self.root))?;
            let n = entry.file_name();
            if Some(&n) == self.skip.as_ref() || n == "Snapshots" {
                continue;
            }
            sources.push(entry.path());
        }
        if !sources.is_empty() {
            // why: GNU cp knows reflinks, sparse files, xattrs and hard links; -a keeps them all
            let copied = Cmd::new("cp")
                .args(["-a", "--reflink=auto", "--"])
                .args(&sources)
                .arg(&tmp)
                .run();
            if let Err(e) = copied {
                // why: a copy that failed (a full disk) must give its space back at once,
                // not hold it until the next snapshot clears the leftover
                let _ = remove_tree(&tmp);
                return Err(e.into());
            }
        }
        let dest = self.path_of(&name);
        std::fs::rename(&tmp, &dest).map_err(SnapshotError::io(&dest))?;
        crate::backup_root::sync_dir(&self.dir).map_err(SnapshotError::io(&self.dir))?;
        Ok(name)
    }

    fn remove(&self, name: &SnapshotName) -> Result<Removed, SnapshotError> {
        if self.mount_point(name).symlink_metadata().is_ok() {
            return Err(SnapshotError::Mounted(name.clone()));
        }
        let path = self.path_of(name);
        if !path.exists() {
            return Ok(Removed::AlreadyGone);
        }
        // why: rename first, so a crash mid-delete leaves a `.tmp-` leftover, not a half snapshot
        let doomed = self.dir.join(format!(".tmp-{name}-removing"));
        match std::fs::rename(&path, &doomed) {
            Ok(()) => {}
            // why: another prune removed it between the check and the rename
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Removed::AlreadyGone),
            Err(e) => return Err(SnapshotError::io(&path)(e)),
        }
        remove_tree(&doomed)?;
        Ok(Removed::Removed)
    }

    fn mount(&self, name: &SnapshotName) -> Result<PathBuf, SnapshotError> {
        super::link_mount(&self.root, name, &self.path_of(name))
    }

    fn umount(&self, name: &SnapshotName) -> Result<(), SnapshotError> {
        super::link_umount(&self.root, name, "dir")
    }

    fn space(&self) -> Result<Space, SnapshotError> {
        super::fs_space(&self.root)
    }
}

fn remove_tree(top: &Path) -> Result<(), SnapshotError> {
    for entry in walkdir::WalkDir::new(top) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
    std::fs::remove_dir_all(top).map_err(SnapshotError::io(top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_mount_remove() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("dump/a")).unwrap();
        std::fs::write(root.join("dump/a/file"), b"v1").unwrap();
        std::fs::set_permissions(
            root.join("dump/a/file"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(root.join("dump/a"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let store = DirStore::new(&root, &root.join(".snapshots")).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let s1 = store.create(day).unwrap();
        std::fs::write(root.join("dump/a/file"), b"v2").unwrap();
        let s2 = store.create(day).unwrap();
        assert_eq!((s1.as_str(), s2.as_str()), ("20261122-1", "20261122-2"));
        assert_eq!(
            std::fs::read(root.join(".snapshots/20261122-1/dump/a/file")).unwrap(),
            b"v1"
        );
        assert_eq!(
            std::fs::read(root.join(".snapshots/20261122-2/dump/a/file")).unwrap(),
            b"v2"
        );
        // Modes are kept as they are: a restore from the copy gets them back.
        for (path, mode) in [
            (".snapshots/20261122-1/dump/a/file", 0o100_644),
            (".snapshots/20261122-1/dump/a", 0o040_755),
        ] {
            assert_eq!(
                std::fs::metadata(root.join(path))
                    .unwrap()
                    .permissions()
                    .mode(),
                mode,
                "{path}"
            );
        }
        // The second snapshot did not copy the first into itself.
        assert!(!root.join(".snapshots/20261122-2/.snapshots").exists());
        let mp = store.mount(&s1).unwrap();
        assert_eq!(std::fs::read(mp.join("dump/a/file")).unwrap(), b"v1");
        assert!(matches!(store.remove(&s1), Err(SnapshotError::Mounted(_))));
        store.umount(&s1).unwrap();
        assert_eq!(store.remove(&s1).unwrap(), Removed::Removed);
        assert_eq!(store.remove(&s1).unwrap(), Removed::AlreadyGone);
        let names: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, vec!["20261122-2"]);
    }

    #[test]
    fn snapshot_dir_deep_inside_root_is_refused() {
        let err = DirStore::new(Path::new("/r"), Path::new("/r/a/b"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("directly inside"), "{err}");
    }

    #[test]
    fn umount_leaves_alone_a_mount_point_that_is_not_its_symlink() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let store = DirStore::new(&root, &d.path().join("snaps")).unwrap();
        let name = SnapshotName::parse("20261122-1").unwrap();
        let mp = root.join("Snapshots/20261122-1");
        std::fs::create_dir_all(&mp).unwrap();
        let err = store.umount(&name).unwrap_err();
        assert!(
            matches!(&err, SnapshotError::NotOurMount { path, store: "dir" } if *path == mp),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a dir-store mount (a symlink); not touching it",
                mp.display()
            )
        );
        assert!(mp.is_dir());
    }
}
