//! What `strata-snapshot` prints on stdout, one JSON object per call, and
//! what the unprivileged stores read back. Shared by both sides so that the
//! two can never disagree on a field name.
//!
//! Exit codes of the helper: 0 done (JSON on stdout), 1 the operation failed
//! (one line on stderr), 2 refused: nothing was run (one line on stderr).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Exit code: the request was refused before any command ran.
pub const EXIT_REFUSED: i32 = 2;
/// Exit code: the request was valid and an operation failed.
pub const EXIT_FAILED: i32 = 1;

/// One snapshot as the helper lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedSnapshot {
    pub name: String,
    /// Where it is mounted (lvm-thin only; btrfs snapshots need no mount).
    pub mounted: Option<PathBuf>,
}

/// `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListReply {
    pub snapshots: Vec<ListedSnapshot>,
}

/// `create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReply {
    pub created: String,
}

/// `remove NAME`: `removed` is false when it was already gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveReply {
    pub removed: bool,
}

/// `mount NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountReply {
    pub mounted: PathBuf,
}

/// `umount NAME`: `unmounted` is false when it was not mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UmountReply {
    pub unmounted: bool,
}

/// Thin-pool usage, in bytes and percent used (as lvs reports it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolStatus {
    pub pool: String,
    pub data_size: u64,
    pub data_percent: f64,
    pub metadata_size: u64,
    pub metadata_percent: f64,
}

/// `pool-status`: `pool` is null for stores without a pool (btrfs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolReply {
    pub pool: Option<PoolStatus>,
}
