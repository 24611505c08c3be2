//! Archive-set decisions: which sets `prune` deletes, which set `archive
//! run` archives into, and which snapshots incomplete sets still read.
//!
//! As Deltaic: keep the newest `keep-count` complete sets; delete older
//! complete ones and every incomplete set but the newest set of all (it may
//! be a run in progress or one to resume); never delete a protected set.

use super::{ArchiveError, SetInfo, archivers};
use crate::config::Config;
use crate::snapshot::{SnapshotInfo, SnapshotName};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which set `archive run` works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunTarget {
    /// The snapshot named on the command line.
    Named(String),
    /// `-r`: the newest set, which must be incomplete.
    Resume,
    /// The newest snapshot.
    Newest,
}

/// The snapshot whose set `archive run` archives: a pure function of the
/// request, the archiver's sets and the store's snapshots (oldest first).
pub fn choose_run_set(
    target: &RunTarget,
    sets: &BTreeMap<String, SetInfo>,
    snapshots: &[SnapshotInfo],
) -> Result<SnapshotName, ArchiveError> {
    let parse = |s: &str| {
        SnapshotName::parse(s).map_err(|e| ArchiveError::BadSetName {
            name: s.to_owned(),
            reason: e.to_string(),
        })
    };
    match target {
        RunTarget::Named(s) => parse(s),
        RunTarget::Resume => {
            let (name, info) = sets
                .iter()
                .next_back()
                .ok_or(ArchiveError::NothingToResume)?;
            if info.complete {
                return Err(ArchiveError::AlreadyComplete(name.clone()));
            }
            parse(name)
        }
        RunTarget::Newest => snapshots
            .last()
            .map(|s| s.name.clone())
            .ok_or(ArchiveError::NoSnapshot),
    }
}

/// [`incomplete_sets`]: (snapshot, profile) pairs, and the profiles that
/// could not be listed with why.
pub type IncompleteSets = (Vec<(SnapshotName, String)>, Vec<(String, ArchiveError)>);

/// The snapshots that an incomplete archive set of some profile still needs
/// (so that `archive run -r` can finish it), with the profile; and, for a
/// profile whose archiver cannot be listed, the reason (its sets are then
/// not protected).
// why: not fatal: snapshot pruning must not stall on an offsite outage (the pool would fill and backups fail); the cost is that the set is restarted from a newer snapshot
#[must_use]
pub fn incomplete_sets(config: &Config) -> IncompleteSets {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for (profile, p) in &config.settings.archivers {
        match archivers::open(&config.settings.archive, p).and_then(|a| a.list_sets()) {
            Ok(sets) => out.extend(
                sets.into_iter()
                    .filter(|(_, info)| !info.complete)
                    .filter_map(|(n, _)| SnapshotName::parse(&n).ok())
                    .map(|n| (n, profile.clone())),
            ),
            Err(e) => unreadable.push((profile.clone(), e)),
        }
    }
    (out, unreadable)
}

/// What prune does with one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetMark {
    Keep,
    Remove,
    /// Would be removed, but the archiver protects it.
    Protected,
}

/// The prune plan for `sets` (names sort oldest first, as snapshot names do).
#[must_use]
pub fn plan_prune(sets: &BTreeMap<String, SetInfo>, keep_count: u32) -> Vec<(String, SetMark)> {
    let newest = sets.keys().next_back().cloned();
    let complete: Vec<&String> = sets
        .iter()
        .filter(|(_, s)| s.complete)
        .map(|(n, _)| n)
        .collect();
    let keep_from = complete.len().saturating_sub(keep_count as usize);
    let kept_complete: Vec<&String> = complete[keep_from..].to_vec();
    sets.iter()
        .map(|(name, info)| {
            let remove = if info.complete {
                !kept_complete.contains(&name)
            } else {
                Some(name) != newest.as_ref()
            };
            let mark = match (remove, info.protected) {
                (false, _) => SetMark::Keep,
                (true, true) => SetMark::Protected,
                (true, false) => SetMark::Remove,
            };
            (name.clone(), mark)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(complete: bool, protected: bool) -> SetInfo {
        SetInfo {
            count: 1,
            size: 1,
            complete,
            protected,
        }
    }

    #[test]
    fn the_run_set_is_the_named_the_resumable_or_the_newest_snapshot() {
        let sets: BTreeMap<String, SetInfo> = [("20260101-1", set(true, false))]
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s))
            .collect();
        let snaps: Vec<SnapshotInfo> = ["20260101-1", "20260102-1"]
            .iter()
            .map(|n| SnapshotInfo {
                name: SnapshotName::parse(n).unwrap(),
                mounted: None,
            })
            .collect();
        let pick = |t: &RunTarget, sets: &BTreeMap<String, SetInfo>| {
            choose_run_set(t, sets, &snaps).map(|n| n.to_string())
        };
        assert_eq!(pick(&RunTarget::Newest, &sets).unwrap(), "20260102-1");
        assert_eq!(
            pick(&RunTarget::Named("20260101-1".into()), &sets).unwrap(),
            "20260101-1"
        );
        assert!(matches!(
            pick(&RunTarget::Resume, &sets),
            Err(ArchiveError::AlreadyComplete(_))
        ));
        let mut open = sets.clone();
        open.insert("20260102-1".into(), set(false, false));
        assert_eq!(pick(&RunTarget::Resume, &open).unwrap(), "20260102-1");
        assert!(matches!(
            pick(&RunTarget::Resume, &BTreeMap::new()),
            Err(ArchiveError::NothingToResume)
        ));
        assert!(matches!(
            choose_run_set(&RunTarget::Newest, &sets, &[]),
            Err(ArchiveError::NoSnapshot)
        ));
        assert!(pick(&RunTarget::Named("nope".into()), &sets).is_err());
    }

    #[test]
    fn prune_keeps_newest_complete_and_newest_incomplete_and_protected() {
        let sets: BTreeMap<String, SetInfo> = [
            ("20260101-1", set(true, false)),
            ("20260102-1", set(false, false)),
            ("20260103-1", set(true, true)),
            ("20260104-1", set(true, false)),
            ("20260105-1", set(true, false)),
            ("20260106-1", set(false, false)),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
        let plan: Vec<SetMark> = plan_prune(&sets, 2).into_iter().map(|(_, m)| m).collect();
        assert_eq!(
            plan,
            [
                SetMark::Remove,
                SetMark::Remove,
                SetMark::Protected,
                SetMark::Keep,
                SetMark::Keep,
                SetMark::Keep
            ]
        );
        assert!(plan_prune(&BTreeMap::new(), 1).is_empty());
    }
}
