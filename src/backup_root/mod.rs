//! The backup root: its layout (DESIGN §2), and the one way strata writes
//! file contents into it.
//!
//! Owns: where a unit, its logs and its state live; the block-update writer
//! that rewrites only the blocks that differ (every block rewritten without
//! need is stored twice in the thin pool, forever); atomic small-file writes;
//! the xattr names strata and Deltaic put on stored files.
//!
//! Also: the locks held while a run, a unit's backup or an archive runs
//! ([`lock`]), and each unit's persisted state ([`state`]), both under
//! `<root>/.strata`.
//!
//! Does not own: what a source stores (sources decide), snapshots (snapshot/).

pub mod block;
pub mod lock;
pub mod state;
pub mod xattrs;

pub use block::{BlockUpdate, UpdateStats};
pub use lock::{LockError, PidLock};

use crate::config::UnitPath;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Paths under the backup root.
#[derive(Debug, Clone)]
pub struct BackupRoot {
    root: PathBuf,
}

impl BackupRoot {
    #[must_use]
    pub fn new(root: &Path) -> BackupRoot {
        BackupRoot {
            root: root.to_owned(),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `<root>/<unit>`: where a unit's data lives.
    #[must_use]
    pub fn unit_dir(&self, unit: &UnitPath) -> PathBuf {
        self.root.join(unit.as_str())
    }

    /// `<root>/Logs/<unit>`: the unit's `YYYYMMDD.out` / `.err` logs.
    #[must_use]
    pub fn log_dir(&self, unit: &UnitPath) -> PathBuf {
        self.root.join("Logs").join(unit.as_str())
    }

    /// `<root>/Logs`.
    #[must_use]
    pub fn logs(&self) -> PathBuf {
        self.root.join("Logs")
    }

    /// `<root>/.strata`: strata's own state (run lock, unit state). Not a unit.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".strata")
    }

    /// `<root>/.strata/appliances/<name>`: what is an appliance's own when
    /// several share the root (its run lock, job records and configs, its
    /// last run).
    #[must_use]
    pub fn appliance_dir(&self, name: &str) -> PathBuf {
        self.state_dir().join("appliances").join(name)
    }

    /// `<root>/Logs/Archive/<profile>/<unit>`: the logs of a unit's archive
    /// jobs.
    #[must_use]
    pub fn archive_log_dir(&self, profile: &str, unit: &str) -> PathBuf {
        self.logs().join("Archive").join(profile).join(unit)
    }

    /// `<root>/Snapshots`: mount points made by `strata mount`.
    #[must_use]
    pub fn snapshot_mounts(&self) -> PathBuf {
        self.root.join("Snapshots")
    }
}

/// Commands that write into the backup root or the spool refuse to run as
/// root unless allowed (`--allow-root`, DESIGN §4): files root creates there
/// would break the backup user's later runs.
pub fn refuse_root(allow_root: bool, what: &str) -> Result<(), crate::error::UsageError> {
    if nix::unistd::geteuid().is_root() && !allow_root {
        return Err(crate::error::UsageError(format!(
            "refusing to run `strata {what}` as root: files root creates in the backup root or spool would break \
             the backup user's later runs; run it as the backup user, or pass --allow-root (STRATA_ALLOW_ROOT=1)"
        )));
    }
    Ok(())
}

/// Write `bytes` to `path` atomically: a temp file in the same directory,
/// fsync, rename, fsync the directory. Readers see the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-tmp-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// fsync a directory so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
