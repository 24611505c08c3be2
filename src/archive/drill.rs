//! `archive drill`: a restore, tried. A random (or the named) unit of the
//! newest complete set is retrieved into the spool, unpacked, and compared
//! with the snapshot it came from, attribute by attribute.
//!
//! The snapshot is mounted for the comparison by a [`MountedSnapshot`]
//! guard, so it is unmounted on every path, error paths included (unless
//! it was mounted before). The retrieved and unpacked files live in a spool
//! directory removed at the end.

use super::{ArchiveEnv, ArchiveError, Archiver, compare, retrieve, unpack};
use crate::snapshot::{MountedSnapshot, SnapshotName, SnapshotStore};
use rand::Rng;
use rand::seq::SliceRandom;

/// What a drill found.
#[derive(Debug, Clone)]
pub struct DrillReport {
    pub set: String,
    pub unit: String,
    /// The archive's size.
    pub size: u64,
    /// Every difference between the restored unit and the snapshot; empty
    /// means equal.
    pub differences: Vec<String>,
}

/// Which unit to drill.
#[derive(Debug, Clone)]
pub enum DrillUnit {
    Named(String),
    /// A random unit of the set.
    Random,
}

/// Drill one unit of the newest complete set of `profile`; `started` is
/// told the set, unit and size before the (possibly slow) retrieval.
pub fn drill(
    env: &ArchiveEnv,
    archiver: &dyn Archiver,
    store: &dyn SnapshotStore,
    profile: &str,
    which: &DrillUnit,
    rng: &mut impl Rng,
    started: impl FnOnce(&str, &str, u64),
) -> Result<DrillReport, ArchiveError> {
    let sets = archiver.list_sets()?;
    let set = sets
        .iter()
        .rev()
        .find(|(_, s)| s.complete)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| ArchiveError::NoCompleteSet(profile.to_owned()))?;
    let unit = match which {
        DrillUnit::Named(u) => u.clone(),
        DrillUnit::Random => {
            let names: Vec<String> = archiver.list_set_units(&set)?.into_keys().collect();
            names
                .choose(rng)
                .ok_or_else(|| ArchiveError::NoSuchSet(set.clone()))?
                .clone()
        }
    };
    let meta = archiver.archive_meta(&set, &unit)?;
    started(&set, &unit, meta.size);
    std::fs::create_dir_all(&env.spool).map_err(ArchiveError::io(&env.spool))?;
    let work = tempfile::Builder::new()
        .prefix(&format!("drill-{}-", std::process::id()))
        .tempdir_in(&env.spool)
        .map_err(ArchiveError::io(&env.spool))?;
    let wanted = [retrieve::Wanted {
        set: set.clone(),
        unit: unit.clone(),
        meta: meta.clone(),
    }];
    // why: the default rate of `retrieve` (1 GiB/hour) for archivers that retrieve by jobs; streams are not limited
    let rate = retrieve::Rate {
        stream: None,
        bytes_per_hour: 1 << 30,
    };
    let mut fetched = None;
    retrieve::retrieve_many(archiver, &wanted, work.path(), rate, &mut |_, r| {
        fetched = Some(r);
    })?;
    let fetched = fetched.unwrap_or_else(|| Err(ArchiveError::no_such_archive(&set, &unit)))?;
    let out = work.path().join("tree");
    // why: everything, as the snapshot has it, to compare; into the drill's own 0700 directory, removed after
    let opts = unpack::UnpackOptions {
        devices: unpack::Devices::Restore,
        privileges: unpack::Privileges::Restore,
        ..unpack::UnpackOptions::default()
    };
    unpack::unpack(env, &fetched, &out, opts)?;
    let name = SnapshotName::parse(&set).map_err(|e| ArchiveError::BadSetName {
        name: set.clone(),
        reason: e.to_string(),
    })?;
    let mounted = MountedSnapshot::mount(store, &name)?;
    let differences = compare::compare_trees(&mounted.path().join(&unit), &out.join(&unit))
        .map_err(ArchiveError::io(mounted.path().join(&unit)));
    mounted.close()?;
    let differences = differences?;
    work.close().map_err(ArchiveError::io(&env.spool))?;
    Ok(DrillReport {
        set,
        unit,
        size: meta.size,
        differences,
    })
}
