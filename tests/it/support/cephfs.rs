//! A CephFS for the cephfs store's tests: an MDS and a file system added
//! (`tests/support/cephfs/add-cephfs.sh`) to the test Ceph the rbd and rgw
//! tests share ([`Ceph::shared`]), so that CI starts one cluster, not two.
//!
//! Owns: the admin mount (`/` with `client.admin`, under a temp dir) and the
//! mounts tests make with path-restricted keys ([`CephfsMount`]); each is
//! undone by `umount-cephfs.sh`, which signals only the recorded ceph-fuse
//! PID. The MDS stays with the cluster: `stop-ceph.sh` unmounts what is
//! still recorded and stops the MDS first when the last `Arc<Ceph>` drops.
//!
//! Prerequisites: ceph-mds and ceph-fuse (scripts/install-test-deps.sh
//! --ceph), `/dev/fuse`, root (ceph-fuse mounts with mount(2); no
//! fusermount). A failed start is an `Err` with the script's message.

#![allow(dead_code)] // why: each test file uses a different part of the fixture

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use strata::exec::Cmd;

use super::ceph::Ceph;

/// The CephFS on the shared test cluster, mounted at [`Cephfs::admin`].
pub struct Cephfs {
    /// Holds `admin`'s parent.
    tmp: tempfile::TempDir,
    admin: PathBuf,
    /// Dropped after `Drop::drop` has unmounted the admin mount.
    ceph: Arc<Ceph>,
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cephfs")
}

impl Cephfs {
    /// The file system shared by every test that holds one; the MDS is added
    /// to the shared Ceph on first use.
    pub fn shared() -> Result<Arc<Cephfs>, String> {
        static SHARED: Mutex<Weak<Cephfs>> = Mutex::new(Weak::new());
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(fs) = slot.upgrade() {
            return Ok(fs);
        }
        let fs = Arc::new(Cephfs::start()?);
        *slot = Arc::downgrade(&fs);
        Ok(fs)
    }

    fn start() -> Result<Cephfs, String> {
        let ceph = Ceph::shared()?;
        Cmd::new("timeout")
            .arg("180")
            .arg(scripts_dir().join("add-cephfs.sh"))
            .arg(ceph.dir())
            .run()
            .map_err(|e| format!("add-cephfs.sh failed: {e}"))?;
        let tmp = tempfile::Builder::new()
            .prefix("strata-cephfs.")
            // why: under /tmp, short paths; and 0755 so a test's backup user can reach the mounts
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| format!("chmod temp dir: {e}"))?;
        let admin = tmp.path().join("admin");
        Cmd::new("timeout")
            .arg("60")
            .arg(scripts_dir().join("mount-cephfs.sh"))
            .arg(ceph.dir())
            .arg(&admin)
            .run()
            .map_err(|e| format!("mount-cephfs.sh (admin) failed: {e}"))?;
        Ok(Cephfs { tmp, admin, ceph })
    }

    /// `/` of the file system, mounted with `client.admin`.
    pub fn admin(&self) -> &Path {
        &self.admin
    }

    /// The test cluster.
    pub fn ceph(&self) -> &Ceph {
        &self.ceph
    }

    /// A new directory `/<name>` of the file system (a unique name per
    /// test), made through the admin mount.
    pub fn new_dir(&self, name: &str) -> PathBuf {
        let d = self.admin.join(name);
        std::fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        d
    }

    /// A new directory `/<name>` owned by `uid:gid` (a test's backup user);
    /// returns its path in the file system.
    pub fn owned_dir(&self, name: &str, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> String {
        let d = self.new_dir(name);
        nix::unistd::chown(&d, Some(uid), Some(gid)).unwrap();
        format!("/{name}")
    }

    /// Remove the directory `fs_path` made by [`Cephfs::owned_dir`]: first
    /// the snapshots of it and of its subdirectories `subs` (a directory
    /// with snapshots cannot be removed; ancestors' `_...` aliases go with
    /// their own), then the tree. Unmount every test mount of it first.
    pub fn remove_dir(&self, fs_path: &str, subs: &[&str]) {
        let top = self.admin.join(fs_path.trim_start_matches('/'));
        for dir in subs.iter().map(|s| top.join(s)).chain([top.clone()]) {
            if let Ok(entries) = std::fs::read_dir(dir.join(".snap")) {
                for e in entries.flatten() {
                    if !e.file_name().to_string_lossy().starts_with('_') {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&top);
    }

    /// `ceph fs authorize cephfs client.ID /PATH CAPS`, written to a
    /// keyring file (mode 0644) under `dir`; returns its path.
    pub fn authorize(&self, id: &str, fs_path: &str, caps: &str, dir: &Path) -> PathBuf {
        let out = self
            .ceph
            .ceph_cmd()
            .args([
                "fs",
                "authorize",
                "cephfs",
                &format!("client.{id}"),
                fs_path,
                caps,
            ])
            .run()
            .unwrap_or_else(|e| panic!("ceph fs authorize: {e}"));
        let keyring = dir.join(format!("{id}.keyring"));
        std::fs::write(&keyring, &out.stdout).unwrap();
        keyring
    }

    /// Mount `/fs_path` at `mnt` (which must not exist or be empty) with
    /// `client.id` and its keyring.
    pub fn mount(&self, mnt: &Path, fs_path: &str, id: &str, keyring: &Path) -> CephfsMount {
        Cmd::new("timeout")
            .arg("60")
            .arg(scripts_dir().join("mount-cephfs.sh"))
            .arg(self.ceph.dir())
            .arg(mnt)
            .arg(fs_path)
            .env("CEPHFS_CLIENT_ID", id)
            .env("CEPHFS_KEYRING", keyring)
            .run()
            .unwrap_or_else(|e| panic!("mount-cephfs.sh {}: {e}", mnt.display()));
        CephfsMount {
            dir: self.ceph.dir().to_owned(),
            mnt: mnt.to_owned(),
        }
    }
}

/// A temp directory under `/tmp` (short paths for mounts and sockets),
/// mode 0755 so that a test's backup user can reach the mounts in it.
pub fn reachable_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

fn umount(dir: &Path, mnt: &Path) {
    let res = Cmd::new("timeout")
        .arg("60")
        .arg(scripts_dir().join("umount-cephfs.sh"))
        .arg(dir)
        .arg(mnt)
        .run();
    if let Err(e) = res {
        eprintln!("warning: unmounting {}: {e}", mnt.display());
    }
}

impl Drop for Cephfs {
    fn drop(&mut self) {
        umount(self.ceph.dir(), &self.admin);
    }
}

/// One ceph-fuse mount; unmounted on drop.
pub struct CephfsMount {
    dir: PathBuf,
    mnt: PathBuf,
}

impl CephfsMount {
    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for CephfsMount {
    fn drop(&mut self) {
        umount(&self.dir, &self.mnt);
    }
}
