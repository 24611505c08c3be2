//! The `rbd` command line, the only way strata talks to Ceph (the `ceph`
//! crate has no RBD API; `ceph-rust` no longer builds).
//!
//! Owns: the argument vectors of every `rbd` call strata makes, and parsing
//! their `--format=json` output in pure `parse_*` functions tested on
//! recorded output (`tests/fixtures/rbd/`). The cluster is whatever `rbd`
//! finds by itself: `/etc/ceph/ceph.conf`, or `CEPH_CONF` in the environment.
//!
//! Does not own: what the calls mean for the backup (see [`super::image`]).
//!
//! Invariants: progress output is always off (`--no-progress`); listings are
//! always JSON; an image is always named `POOL/IMAGE[@SNAP]` in one argument,
//! built from names checked by [`check_name`].

use super::RbdError;
use crate::exec::{ChildReader, Cmd, ExecError};
use serde::Deserialize;
use std::path::Path;

/// The prefix of the RBD snapshots strata creates on images it backs up.
pub const SNAPSHOT_PREFIX: &str = "backup-";

/// One snapshot of an image, as `rbd snap ls --format=json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapInfo {
    /// The snapshot id: unique within the pool, never reused.
    pub id: u64,
    pub name: String,
    pub size: u64,
    /// As rbd prints it ("Sun Nov 22 00:23:26 2026"): not ISO 8601, kept as text.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// One line of `rbd ls -l --format=json`: an image, or one of its snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LsEntry {
    pub image: String,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub snapshot_id: Option<u64>,
    pub size: u64,
}

/// Parse `rbd snap ls --format=json POOL/IMAGE`.
///
/// # Errors
/// The output is not the JSON rbd prints.
pub fn parse_snap_ls(json: &[u8]) -> Result<Vec<SnapInfo>, serde_json::Error> {
    serde_json::from_slice(json)
}

/// Parse `rbd ls -l --format=json POOL`.
///
/// # Errors
/// The output is not the JSON rbd prints.
pub fn parse_ls_long(json: &[u8]) -> Result<Vec<LsEntry>, serde_json::Error> {
    // why: an empty pool prints nothing at all on some releases, `[]` on others
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(json)
}

/// A name that is safe to put in a `POOL/IMAGE@SNAP` spec: non-empty, no
/// `/`, `@`, NUL or leading `-`.
///
/// # Errors
/// [`RbdError::BadName`].
pub fn check_name(what: &'static str, name: &str) -> Result<(), RbdError> {
    let bad = name.is_empty() || name.starts_with('-') || name.contains(['/', '@', '\0', '\n']);
    if bad {
        return Err(RbdError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Whether a snapshot is one strata created.
#[must_use]
pub fn is_backup_snapshot(name: &str) -> bool {
    name.starts_with(SNAPSHOT_PREFIX)
}

/// A new snapshot name, `backup-<uuid v4>` (Deltaic used uuid1; only the
/// prefix matters).
#[must_use]
pub fn new_snapshot_name() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{SNAPSHOT_PREFIX}{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What removing a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    AlreadyGone,
}

/// `rbd` against one pool.
#[derive(Debug, Clone)]
pub struct Rbd {
    pool: String,
}

impl Rbd {
    /// # Errors
    /// The pool name is not safe in a spec.
    pub fn new(pool: &str) -> Result<Rbd, RbdError> {
        check_name("pool", pool)?;
        Ok(Rbd {
            pool: pool.to_owned(),
        })
    }

    #[must_use]
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// `POOL/IMAGE` or `POOL/IMAGE@SNAP`.
    #[must_use]
    pub fn spec(&self, image: &str, snap: Option<&str>) -> String {
        match snap {
            Some(s) => format!("{}/{image}@{s}", self.pool),
            None => format!("{}/{image}", self.pool),
        }
    }

    fn cmd() -> Cmd {
        Cmd::new("rbd")
    }

    /// The snapshots of an image.
    ///
    /// # Errors
    /// rbd failed (the image does not exist, say) or printed something else.
    pub fn snap_ls(&self, image: &str) -> Result<Vec<SnapInfo>, RbdError> {
        let out = Self::cmd()
            .args(["snap", "ls", "--format=json", &self.spec(image, None)])
            .run()?;
        parse_snap_ls(&out.stdout).map_err(|source| RbdError::Json {
            what: "rbd snap ls",
            source,
        })
    }

    /// Every image of the pool and every snapshot of each.
    ///
    /// # Errors
    /// rbd failed or printed something else.
    pub fn ls_long(&self) -> Result<Vec<LsEntry>, RbdError> {
        let out = Self::cmd()
            .args(["ls", "-l", "--format=json", &self.pool])
            .run()?;
        parse_ls_long(&out.stdout).map_err(|source| RbdError::Json {
            what: "rbd ls -l",
            source,
        })
    }

    /// The image holding a snapshot of this name, if any.
    ///
    /// # Errors
    /// As [`Rbd::ls_long`].
    pub fn image_of_snapshot(&self, snap: &str) -> Result<Option<String>, RbdError> {
        Ok(self
            .ls_long()?
            .into_iter()
            .find(|e| e.snapshot.as_deref() == Some(snap))
            .map(|e| e.image))
    }

    /// # Errors
    /// rbd failed.
    pub fn snap_create(&self, image: &str, snap: &str) -> Result<(), RbdError> {
        Self::cmd()
            .args([
                "snap",
                "create",
                "--no-progress",
                &self.spec(image, Some(snap)),
            ])
            .run()?;
        Ok(())
    }

    /// Remove a snapshot; one that does not exist is `AlreadyGone`.
    ///
    /// # Errors
    /// rbd failed for another reason (a protected snapshot, say).
    pub fn snap_rm(&self, image: &str, snap: &str) -> Result<Removal, RbdError> {
        let res = Self::cmd()
            .args(["snap", "rm", "--no-progress", &self.spec(image, Some(snap))])
            .run();
        match res {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if is_enoent(&e) => Ok(Removal::AlreadyGone),
            Err(e) => Err(e.into()),
        }
    }

    /// Start `rbd export-diff` of `image@snap` (from `from`, or a full one)
    /// to stdout.
    ///
    /// # Errors
    /// rbd could not be started.
    pub fn export_diff(
        &self,
        image: &str,
        from: Option<&str>,
        snap: &str,
    ) -> Result<ChildReader, RbdError> {
        let mut cmd = Self::cmd().args(["export-diff", "--no-progress"]);
        if let Some(f) = from {
            cmd = cmd.args(["--from-snap", f]);
        }
        Ok(cmd
            .args([&self.spec(image, Some(snap)), "-"])
            .spawn_reader()?)
    }

    /// Start `rbd export` of `image@snap` (the raw image) to stdout.
    ///
    /// # Errors
    /// rbd could not be started.
    pub fn export(&self, image: &str, snap: &str) -> Result<ChildReader, RbdError> {
        Ok(Self::cmd()
            .args([
                "export",
                "--no-progress",
                &self.spec(image, Some(snap)),
                "-",
            ])
            .spawn_reader()?)
    }

    /// `rbd import PATH POOL/IMAGE`: a new image from a raw image file
    /// (sparse: runs of zeros are not written).
    ///
    /// # Errors
    /// rbd failed (the image exists already, say).
    pub fn import(&self, path: &Path, image: &str) -> Result<(), RbdError> {
        Self::cmd()
            .args(["import", "--no-progress"])
            .arg(path)
            .arg(self.spec(image, None))
            .run()?;
        Ok(())
    }
}

/// rbd exits 2 with "(2) No such file or directory" for a missing image or snapshot.
fn is_enoent(e: &ExecError) -> bool {
    e.status() == Some(2) && e.stderr_tail().contains("No such file or directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAP_LS: &[u8] = include_bytes!("../../../tests/fixtures/rbd/snap-ls.json");
    const LS_L: &[u8] = include_bytes!("../../../tests/fixtures/rbd/ls-l.json");

    #[test]
    fn parses_recorded_snap_ls_with_its_non_iso_timestamps() {
        let snaps = parse_snap_ls(SNAP_LS).unwrap();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].id, 4);
        assert_eq!(snaps[0].name, "backup-8a1f5c2e-0c1d-4b8e-9e3f-2f4c6a7d9b10");
        assert_eq!(snaps[0].size, 64 << 20);
        assert_eq!(
            snaps[0].timestamp.as_deref(),
            Some("Sun Nov 22 01:46:28 2026")
        );
        assert_eq!(snaps[1].name, "release-1");
        assert!(is_backup_snapshot(&snaps[0].name) && !is_backup_snapshot(&snaps[1].name));
    }

    #[test]
    fn parses_recorded_ls_long_images_and_snapshots() {
        let ls = parse_ls_long(LS_L).unwrap();
        assert_eq!(ls.len(), 5);
        assert_eq!(ls[0].image, "img1");
        assert_eq!(ls[0].snapshot, None);
        assert_eq!(ls[2].snapshot.as_deref(), Some("release-1"));
        assert_eq!(ls[2].snapshot_id, Some(5));
        assert_eq!(ls[4].image, "img2");
        assert!(parse_ls_long(b"").unwrap().is_empty());
        assert!(parse_ls_long(b"[]\n").unwrap().is_empty());
        assert!(parse_ls_long(b"rbd: error").is_err());
    }

    #[test]
    fn names_that_would_change_a_spec_are_refused() {
        for bad in ["", "a/b", "a@b", "-x", "a\0b"] {
            assert!(check_name("image", bad).is_err(), "{bad:?}");
        }
        check_name("image", "vm-disk.1_x").unwrap();
    }

    #[test]
    fn new_snapshot_names_are_prefixed_uuids() {
        let a = new_snapshot_name();
        assert!(is_backup_snapshot(&a));
        assert_eq!(a.len(), SNAPSHOT_PREFIX.len() + 36);
        assert_ne!(a, new_snapshot_name());
        check_name("snapshot", &a).unwrap();
    }
}
