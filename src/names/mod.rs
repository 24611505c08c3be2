//! Names validated at the edge: [`SnapshotName`] (`YYYYMMDD-N`) and
//! [`UnitPath`] (`rsync/octopus`). Each is built only by its `parse` (or a
//! constructor that cannot produce an invalid one), so code that holds one
//! need not check it again.
//!
//! A leaf module: it depends on nothing else in the crate, so that both the
//! user side (`config`, `snapshot`, `runner`, ...) and the root helper
//! (`privileged`) can share these types without depending on each other.
//! They are re-exported where they are mostly used: `snapshot::SnapshotName`
//! and `config::UnitPath`.

pub mod snapshot;
pub mod unit;

pub use snapshot::{SnapshotName, SnapshotNameError};
pub use unit::{UnitPath, UnitPathError};
