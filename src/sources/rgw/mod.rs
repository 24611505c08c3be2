//! The `rgw` source: RADOS Gateway buckets, backed up through the S3 API
//! with the bucket owner's credentials (found with `radosgw-admin`), as
//! Deltaic did.
//!
//! Owns: the unit directory `<root>/rgw/<bucket>/`: per object a data file and
//! two sidecars (metadata, ACL) at paths given by [`keymap`], and the bucket's
//! ACL and CORS files; backup ([`backup`]), scrub (a backup with
//! [`Check::Scrub`](crate::sources::Check)) and restore ([`restore`]).
//! Does not own: scheduling (the runner), snapshots.
//!
//! Invariants:
//! - A data file's mtime equals its object's Last-Modified (to the
//!   millisecond; files Deltaic wrote hold whole seconds, compared by the second)
//!   only once the data and its metadata sidecar are complete: an update
//!   first sets the mtime to 0, so a crash mid-update is refetched next run.
//! - Object bytes land in memory (up to 1 MiB) or a temporary `*_t` file
//!   beside their final place, and are renamed in (new objects, through a
//!   `*_t` file) or block-updated in (changed objects: unchanged blocks are
//!   not rewritten, DESIGN §2, and the file is synced before its mtime marks
//!   it complete); a failed or cancelled download removes its temporary
//!   file, and a run removes any it finds.
//! - Local entries are deleted only after a complete listing and a run
//!   without a bucket-wide failure.
//!
//! What a restore cannot bring back: S3 sets Last-Modified and the `ETag`
//! itself (an object uploaded in parts gets a single-part `ETag` when restored
//! with one PUT), so both are kept in the metadata sidecar for reference only.
//! Grants to users that do not exist on the target radosgw are left out and
//! named.

pub mod admin;
mod backup;
mod cmd;
mod http;
pub mod keymap;
mod restore;
pub mod s3;
pub mod sidecar;

pub use backup::{AclRefresh, BackupOptions, Fetch, Listed, Stored, backup, plan};
pub use cmd::RGW;
pub use restore::{RestoreOptions, RestoreReport, restore};

use crate::exec::ExecError;
use std::path::PathBuf;

/// Where radosgw is, from the settings (`rgw-server`, `rgw-secure`, `rgw-threads`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub server: String,
    pub secure: bool,
    /// Concurrent transfers.
    pub threads: usize,
}

impl Endpoint {
    /// From the validated settings; `None` when `rgw-server` is not set.
    #[must_use]
    pub fn from_settings(s: &crate::config::RgwSettings) -> Option<Endpoint> {
        Some(Endpoint {
            server: s.server.clone()?,
            secure: s.secure,
            threads: usize::try_from(s.threads).unwrap_or(4).max(1),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RgwError {
    #[error("{what}: {source}")]
    Admin {
        what: String,
        #[source]
        source: ExecError,
    },
    #[error("{what}: unexpected radosgw-admin output: {source}")]
    AdminOutput {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("radosgw user {uid} does not exist")]
    NoSuchUser { uid: String },
    #[error("radosgw user {uid} has no S3 keys (radosgw-admin key create --uid {uid})")]
    NoKeys { uid: String },
    #[error("{op} {target}: {failure}")]
    S3 {
        op: &'static str,
        target: String,
        failure: s3::S3Failure,
    },
    #[error("{step}: {failure}")]
    S3Parts {
        step: String,
        failure: s3::S3Failure,
    },
    #[error(
        "radosgw refused the credentials of {who} ({failure}); check `radosgw-admin user info --uid {who}` and rgw-server"
    )]
    Credentials { who: String, failure: s3::S3Failure },
    #[error(
        "bucket {bucket} does not exist (or disappeared during the run); nothing local was deleted"
    )]
    BucketGone { bucket: String },
    #[error(
        "{key:?} changed between listing and download; the previous copy is kept and the next run fetches it"
    )]
    ChangedDuringBackup { key: String },
    #[error("{key:?}: got {got} bytes, expected {want}; discarded")]
    ShortRead { key: String, got: u64, want: u64 },
    #[error("{} objects of {listed} in bucket {bucket} could not be backed up (first: {first})", .failed)]
    ObjectsFailed {
        bucket: String,
        failed: usize,
        listed: usize,
        first: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Sidecar {
        path: PathBuf,
        #[source]
        source: sidecar::SidecarError,
    },
    #[error("{} holds no rgw backup (no bucket_A)", path.display())]
    NoBackup { path: PathBuf },
    #[error("bucket {bucket} is not empty; use -f to restore into it anyway")]
    NotEmpty { bucket: String },
    #[error("building an S3 request: {0}")]
    Build(String),
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl RgwError {
    /// Turn an S3 call's failure into the right error: a vanished bucket and
    /// refused credentials are bucket-wide, the rest belong to one target.
    pub(crate) fn s3<E>(
        op: &'static str,
        bucket: &str,
        target: &str,
        who: &str,
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> RgwError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self::classify(bucket, who, s3::S3Failure::from_sdk(e), |failure| {
            RgwError::S3 {
                op,
                target: target.to_owned(),
                failure,
            }
        })
    }

    /// As [`RgwError::s3`], for a failure already in words; `other` makes
    /// the error of one target.
    pub(crate) fn classify(
        bucket: &str,
        who: &str,
        failure: s3::S3Failure,
        other: impl FnOnce(s3::S3Failure) -> RgwError,
    ) -> RgwError {
        if failure.is("NoSuchBucket") {
            RgwError::BucketGone {
                bucket: bucket.to_owned(),
            }
        } else if failure.bad_credentials() {
            RgwError::Credentials {
                who: who.to_owned(),
                failure,
            }
        } else {
            other(failure)
        }
    }

    /// Whether the whole unit must stop (the bucket or the credentials are gone).
    #[must_use]
    pub fn is_bucket_wide(&self) -> bool {
        matches!(
            self,
            RgwError::BucketGone { .. } | RgwError::Credentials { .. }
        )
    }
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RgwError + '_ {
    move |source| RgwError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write `bytes` to `path` atomically unless it already holds exactly them;
/// returns whether it wrote.
pub(crate) fn write_if_changed(path: &std::path::Path, bytes: &[u8]) -> Result<bool, RgwError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    crate::backup_root::write_atomic(path, bytes).map_err(io(path))?;
    Ok(true)
}

/// Like [`write_if_changed`] but without fsync: for the per-object sidecars,
/// of which a bucket has thousands. A backup ends with one sync of each
/// directory that got new names instead (and a crash at worst costs a
/// refetch: `docs/rgw.md`).
pub(crate) fn put_if_changed(path: &std::path::Path, bytes: &[u8]) -> Result<bool, RgwError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let n: u64 = rand::random();
    let tmp = dir.join(format!(".strata-{n:016x}_t"));
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(source) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(RgwError::Io {
            path: path.to_owned(),
            source,
        });
    }
    Ok(true)
}

pub(crate) fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, RgwError> {
    tokio::runtime::Builder::new_multi_thread()
        // why: transfers are I/O-bound; a few threads serve many connections
        .worker_threads(threads.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(RgwError::Runtime)
}
