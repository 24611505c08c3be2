//! Archive-set decisions: which sets `prune` deletes, which set `archive
//! run` archives into, and which snapshots incomplete sets still read.
//!
//! Prune ([`plan_prune`]), a pure function of the sets, the profile's
//! [`KeepRules`] and which sets each set's archives apply onto (chains):
//! 1. the policy picks the complete sets to keep: the newest `keep-count`
//!    (as Deltaic), or s3napback's Tower-of-Hanoi rotation over `keep-discs`
//!    (the same schedule as `gc-policy: hanoi`, by the set's date), where
//!    `keep-oldest` also keeps every set that leaves the oldest disc
//!    (s3napback's `ArchiveOldestDisc`: one set every 2^(discs-1) days, kept
//!    for good);
//! 2. of the incomplete sets only the newest set of all is kept (a run in
//!    progress or one to resume);
//! 3. a set the archiver protects (its storage class's minimum period) is
//!    never removed;
//! 4. a set that a staying set's diffs apply onto stays too, and so on down
//!    each chain: prune never breaks a chain it keeps;
//! 5. `keep-bytes`: while the staying sets hold more than that, the oldest
//!    complete set goes, with every set whose diffs apply onto it, unless
//!    that would take the newest complete set, the kept incomplete one or a
//!    protected one (then the next oldest is tried).

use super::{ArchiveError, SetInfo, archivers};
use crate::config::{ArchiverProfile, Config, KeepPolicy};
use crate::retention::{self, HanoiPolicy, Mark, Policy};
use crate::snapshot::{SnapshotInfo, SnapshotName};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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

/// Which sets a profile keeps (its `keep-*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepRules {
    pub policy: SetPolicy,
    /// `keep-bytes`.
    pub max_bytes: Option<u64>,
}

/// The policy over complete sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetPolicy {
    /// The newest `n` complete sets.
    Count(u32),
    /// Tower of Hanoi over `discs`; `keep_oldest` keeps every set of the
    /// oldest disc.
    Hanoi { discs: u32, keep_oldest: bool },
}

impl KeepRules {
    #[must_use]
    pub fn of(p: &ArchiverProfile) -> KeepRules {
        KeepRules {
            policy: match p.keep_policy {
                KeepPolicy::Count => SetPolicy::Count(p.keep_count),
                KeepPolicy::Hanoi => SetPolicy::Hanoi {
                    discs: p.keep_discs,
                    keep_oldest: p.keep_oldest,
                },
            },
            max_bytes: p.keep_bytes,
        }
    }
}

/// Why a set is kept, removed or protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum SetReason {
    /// One of the newest `keep-count` complete sets.
    Newest { count: u32 },
    /// Beyond the newest `keep-count`.
    Older { count: u32 },
    /// The newest set on its Hanoi disc.
    HanoiDisc { disc: u32 },
    /// A newer set holds its Hanoi disc (or its day).
    HanoiReplaced { why: String },
    /// Left the oldest Hanoi disc, kept for good (`keep-oldest`).
    OldestDisc { disc: u32 },
    /// The newest set, incomplete: `archive run -r` finishes it.
    Resumable,
    /// An incomplete set older than the newest.
    Abandoned,
    /// The diffs of `of` apply onto it.
    BaseOf { of: String },
    /// Dropped to bring the profile under `keep-bytes`.
    OverKeepBytes { total: u64, max: u64 },
    /// A set name that is not a snapshot name: never touched.
    Foreign,
}

impl std::fmt::Display for SetReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetReason::Newest { count } => write!(f, "one of the newest {count} complete sets"),
            SetReason::Older { count } => write!(f, "older than the newest {count} complete sets"),
            SetReason::HanoiDisc { disc } => write!(f, "newest on Hanoi disc {disc}"),
            SetReason::HanoiReplaced { why } => f.write_str(why),
            SetReason::OldestDisc { disc } => {
                write!(
                    f,
                    "left the oldest Hanoi disc {disc}: kept for good (keep-oldest)"
                )
            }
            SetReason::Resumable => {
                f.write_str("the newest set, incomplete: archive run -r finishes it")
            }
            SetReason::Abandoned => f.write_str("an incomplete set older than the newest"),
            SetReason::BaseOf { of } => write!(f, "the diffs of set {of} apply onto it"),
            SetReason::OverKeepBytes { total, max } => {
                write!(f, "the sets hold {total} bytes, more than keep-bytes {max}")
            }
            SetReason::Foreign => f.write_str("not a snapshot name; never touched"),
        }
    }
}

/// The plan for one set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetPlan {
    pub name: String,
    pub mark: SetMark,
    pub reason: SetReason,
}

/// What prune does with every set, oldest first, and the total the staying
/// sets hold when `keep-bytes` could not be met (`None` when it was, or
/// there is no `keep-bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PrunePlan {
    pub sets: Vec<SetPlan>,
    pub over_keep_bytes: Option<u64>,
}

/// The prune plan for `sets` (names sort oldest first, as snapshot names
/// do); `bases` says, for each set, the sets its archives apply onto.
#[must_use]
pub fn plan_prune(
    sets: &BTreeMap<String, SetInfo>,
    rules: KeepRules,
    bases: &BTreeMap<String, BTreeSet<String>>,
) -> PrunePlan {
    let mut marks: BTreeMap<&str, (SetMark, SetReason)> = BTreeMap::new();
    // 1. the policy, over complete sets
    let complete: Vec<&str> = sets
        .iter()
        .filter(|(_, s)| s.complete)
        .map(|(n, _)| n.as_str())
        .collect();
    match rules.policy {
        SetPolicy::Count(n) => {
            let from = complete.len().saturating_sub(n as usize);
            for (i, name) in complete.iter().enumerate() {
                marks.insert(
                    name,
                    if i >= from {
                        (SetMark::Keep, SetReason::Newest { count: n })
                    } else {
                        (SetMark::Remove, SetReason::Older { count: n })
                    },
                );
            }
        }
        SetPolicy::Hanoi { discs, keep_oldest } => {
            let named: Vec<SnapshotName> = complete
                .iter()
                .filter_map(|n| SnapshotName::parse(n).ok())
                .collect();
            for n in &complete {
                if SnapshotName::parse(n).is_err() {
                    marks.insert(n, (SetMark::Keep, SetReason::Foreign));
                }
            }
            let policy = Policy::Hanoi(HanoiPolicy { discs });
            // why: the Hanoi schedule does not depend on the date it is evaluated at
            let today = chrono::NaiveDate::MIN;
            let plan = retention::plan(&named, &policy, today, &BTreeMap::new());
            let last_disc = discs.max(1) - 1;
            for e in plan.entries {
                let name = complete
                    .iter()
                    .find(|n| **n == e.name.as_str())
                    .copied()
                    .unwrap_or_default();
                let v = match e.mark {
                    Mark::Keep(retention::KeepReason::HanoiDisc { disc }) => {
                        (SetMark::Keep, SetReason::HanoiDisc { disc })
                    }
                    Mark::Remove(why)
                        if keep_oldest
                            && !matches!(why, retention::RemoveReason::NotLastOfDay { .. })
                            && retention::hanoi::disc_of(e.name.date(), discs) == last_disc =>
                    {
                        (SetMark::Keep, SetReason::OldestDisc { disc: last_disc })
                    }
                    mark => (
                        SetMark::Remove,
                        SetReason::HanoiReplaced {
                            why: mark.to_string(),
                        },
                    ),
                };
                marks.insert(name, v);
            }
        }
    }
    // 2. incomplete sets
    let newest = sets.keys().next_back().map(String::as_str);
    for (name, info) in sets.iter().filter(|(_, s)| !s.complete) {
        marks.insert(
            name,
            if Some(name.as_str()) == newest {
                (SetMark::Keep, SetReason::Resumable)
            } else {
                (SetMark::Remove, SetReason::Abandoned)
            },
        );
        let _ = info;
    }
    // 3. protection
    for (name, info) in sets {
        if let Some(m) = marks.get_mut(name.as_str())
            && m.0 == SetMark::Remove
            && info.protected
        {
            m.0 = SetMark::Protected;
        }
    }
    // 4. chains: what a staying set applies onto stays
    close_over_bases(&mut marks, bases);
    // 5. keep-bytes
    let mut over = None;
    if let Some(max) = rules.max_bytes {
        let total = |marks: &BTreeMap<&str, (SetMark, SetReason)>| -> u64 {
            sets.iter()
                .filter(|(n, _)| {
                    marks
                        .get(n.as_str())
                        .is_some_and(|m| m.0 != SetMark::Remove)
                })
                .map(|(_, s)| s.size)
                .sum()
        };
        let newest_complete = complete.last().copied();
        let mut t = total(&marks);
        let candidates: Vec<&str> = complete.clone();
        for c in candidates {
            if t <= max {
                break;
            }
            if marks.get(c).is_none_or(|m| m.0 != SetMark::Keep) {
                continue;
            }
            let group = dependents(c, &marks, bases);
            let blocked = group.iter().any(|g| {
                Some(*g) == newest_complete
                    || sets.get(*g).is_some_and(|s| s.protected || !s.complete)
                    || marks.get(g).is_some_and(|m| m.0 == SetMark::Protected)
            });
            if blocked {
                continue;
            }
            for g in group {
                marks.insert(
                    g,
                    (SetMark::Remove, SetReason::OverKeepBytes { total: t, max }),
                );
            }
            t = total(&marks);
        }
        if t > max {
            over = Some(t);
        }
    }
    PrunePlan {
        sets: sets
            .keys()
            .map(|n| {
                let (mark, reason) = marks
                    .remove(n.as_str())
                    .unwrap_or((SetMark::Keep, SetReason::Foreign));
                SetPlan {
                    name: n.clone(),
                    mark,
                    reason,
                }
            })
            .collect(),
        over_keep_bytes: over,
    }
}

/// Keep every set that a staying set (kept or protected) applies onto, to
/// the end of each chain.
fn close_over_bases<'a>(
    marks: &mut BTreeMap<&'a str, (SetMark, SetReason)>,
    bases: &'a BTreeMap<String, BTreeSet<String>>,
) {
    loop {
        let mut changed = false;
        let staying: Vec<&str> = marks
            .iter()
            .filter(|(_, m)| m.0 != SetMark::Remove)
            .map(|(n, _)| *n)
            .collect();
        for s in staying {
            for b in bases.get(s).into_iter().flatten() {
                if let Some(m) = marks.get_mut(b.as_str())
                    && m.0 == SetMark::Remove
                {
                    *m = (SetMark::Keep, SetReason::BaseOf { of: s.to_owned() });
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// `set` and every staying set whose archives apply onto it, directly or
/// down a chain.
fn dependents<'a>(
    set: &'a str,
    marks: &BTreeMap<&'a str, (SetMark, SetReason)>,
    bases: &'a BTreeMap<String, BTreeSet<String>>,
) -> Vec<&'a str> {
    let mut group: BTreeSet<&str> = BTreeSet::from([set]);
    loop {
        let before = group.len();
        for (s, bs) in bases {
            if marks
                .get(s.as_str())
                .is_some_and(|m| m.0 != SetMark::Remove)
                && bs.iter().any(|b| group.contains(b.as_str()))
            {
                group.insert(s.as_str());
            }
        }
        if group.len() == before {
            return group.into_iter().collect();
        }
    }
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

    fn count(n: u32) -> KeepRules {
        KeepRules {
            policy: SetPolicy::Count(n),
            max_bytes: None,
        }
    }

    /// Sets from `(name, "c"|"i" complete or not, + "p" protected, size)`.
    fn sets_of(spec: &[(&str, &str, u64)]) -> BTreeMap<String, SetInfo> {
        spec.iter()
            .map(|(n, flags, size)| {
                (
                    (*n).to_owned(),
                    SetInfo {
                        count: 1,
                        size: *size,
                        complete: flags.contains('c'),
                        protected: flags.contains('p'),
                    },
                )
            })
            .collect()
    }

    fn bases_of(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        spec.iter()
            .map(|(s, bs)| {
                (
                    (*s).to_owned(),
                    bs.iter().map(|b| (*b).to_owned()).collect(),
                )
            })
            .collect()
    }

    /// The marks as one letter per set: K keep, R remove, P protected.
    fn letters(plan: &PrunePlan) -> String {
        plan.sets
            .iter()
            .map(|p| match p.mark {
                SetMark::Keep => 'K',
                SetMark::Remove => 'R',
                SetMark::Protected => 'P',
            })
            .collect()
    }

    #[test]
    fn prune_keeps_newest_complete_and_newest_incomplete_and_protected() {
        let sets = sets_of(&[
            ("20260101-1", "c", 1),
            ("20260102-1", "i", 1),
            ("20260103-1", "cp", 1),
            ("20260104-1", "c", 1),
            ("20260105-1", "c", 1),
            ("20260106-1", "i", 1),
        ]);
        let plan = plan_prune(&sets, count(2), &BTreeMap::new());
        assert_eq!(letters(&plan), "RRPKKK");
        assert_eq!(plan.sets[5].reason, SetReason::Resumable);
        assert!(
            plan_prune(&BTreeMap::new(), count(1), &BTreeMap::new())
                .sets
                .is_empty()
        );
    }

    #[test]
    fn chains_keep_their_bases_whatever_the_policy() {
        // F = full, D = diff onto the set before: FDD FDD, keep-count 1 or 4
        let names = [
            "20260101-1",
            "20260102-1",
            "20260103-1",
            "20260104-1",
            "20260105-1",
            "20260106-1",
        ];
        let sets = sets_of(&names.map(|n| (n, "c", 10)));
        let bases = bases_of(&[
            ("20260102-1", &["20260101-1"]),
            ("20260103-1", &["20260102-1"]),
            ("20260105-1", &["20260104-1"]),
            ("20260106-1", &["20260105-1"]),
        ]);
        // (keep-count, marks)
        let cases = [
            (1, "RRRKKK"),
            (2, "RRRKKK"),
            (3, "RRRKKK"),
            (4, "KKKKKK"),
            (0, "RRRRRR"),
        ];
        for (n, want) in cases {
            let plan = plan_prune(&sets, count(n), &bases);
            assert_eq!(letters(&plan), want, "keep-count {n}");
        }
        let plan = plan_prune(&sets, count(1), &bases);
        assert_eq!(
            plan.sets[3].reason,
            SetReason::BaseOf {
                of: "20260105-1".into()
            }
        );
        // a protected diff keeps its base too
        let mut sets2 = sets.clone();
        sets2.get_mut("20260102-1").unwrap().protected = true;
        assert_eq!(letters(&plan_prune(&sets2, count(1), &bases)), "KPRKKK");
        // a unit that started a new full in set 5 while others went on: set 5 applies onto 4 and 2
        let mixed = bases_of(&[
            ("20260106-1", &["20260105-1", "20260102-1"]),
            ("20260102-1", &["20260101-1"]),
        ]);
        assert_eq!(letters(&plan_prune(&sets, count(1), &mixed)), "KKRRKK");
    }

    #[test]
    fn hanoi_keeps_one_set_per_disc_and_keep_oldest_keeps_the_oldest_disc() {
        // one complete set a day for 40 days from 2026-01-27 (day number 20480, so
        // day k's disc is the trailing zeros of k, capped at discs - 1)
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 27).unwrap();
        let names: Vec<String> = (1..=40u64)
            .map(|k| SnapshotName::new(start + chrono::Days::new(k), 1).to_string())
            .collect();
        let sets = sets_of(
            &names
                .iter()
                .map(|n| (n.as_str(), "c", 1))
                .collect::<Vec<_>>(),
        );
        let kept = |rules: KeepRules| -> Vec<u64> {
            plan_prune(&sets, rules, &BTreeMap::new())
                .sets
                .iter()
                .zip(1..)
                .filter(|(p, _)| p.mark == SetMark::Keep)
                .map(|(_, k)| k)
                .collect()
        };
        let hanoi = |discs, keep_oldest| KeepRules {
            policy: SetPolicy::Hanoi { discs, keep_oldest },
            max_bytes: None,
        };
        // (discs, keep-oldest, the days kept)
        let cases: Vec<(u32, bool, Vec<u64>)> = vec![
            (5, false, vec![32, 36, 38, 39, 40]),
            (5, true, vec![16, 32, 36, 38, 39, 40]),
            (3, false, vec![38, 39, 40]),
            (3, true, vec![4, 8, 12, 16, 20, 24, 28, 32, 36, 38, 39, 40]),
            (1, false, vec![40]),
        ];
        for (discs, keep_oldest, want) in cases {
            assert_eq!(
                kept(hanoi(discs, keep_oldest)),
                want,
                "{discs} discs, keep-oldest {keep_oldest}"
            );
        }
        let plan = plan_prune(&sets, hanoi(5, true), &BTreeMap::new());
        assert_eq!(plan.sets[15].reason, SetReason::OldestDisc { disc: 4 });
    }

    #[test]
    fn keep_bytes_drops_the_oldest_whole_chains_but_never_the_newest_or_a_protected_set() {
        let rules = |n, max| KeepRules {
            policy: SetPolicy::Count(n),
            max_bytes: Some(max),
        };
        let plain = sets_of(&[
            ("20260101-1", "c", 100),
            ("20260102-1", "c", 100),
            ("20260103-1", "cp", 100),
            ("20260104-1", "c", 100),
            ("20260105-1", "c", 100),
            ("20260106-1", "i", 50),
        ]);
        let none = BTreeMap::new();
        // (keep-count, keep-bytes, marks, over)
        let cases: Vec<(u32, u64, &str, Option<u64>)> = vec![
            (9, 1000, "KKKKKK", None),
            (9, 450, "RKKKKK", None),
            (9, 350, "RRKKKK", None),
            (9, 0, "RRKRKK", Some(250)),
            (2, 0, "RRPRKK", Some(250)),
        ];
        for (n, max, want, over) in cases {
            let plan = plan_prune(&plain, rules(n, max), &none);
            assert_eq!(letters(&plan), want, "keep-count {n}, keep-bytes {max}");
            assert_eq!(
                plan.over_keep_bytes, over,
                "keep-count {n}, keep-bytes {max}"
            );
        }
        // chains go whole: 1 <- 2, 4 <- 5 <- 6
        let chained = sets_of(&[
            ("20260101-1", "c", 100),
            ("20260102-1", "c", 10),
            ("20260104-1", "c", 100),
            ("20260105-1", "c", 10),
            ("20260106-1", "c", 10),
        ]);
        let bases = bases_of(&[
            ("20260102-1", &["20260101-1"]),
            ("20260105-1", &["20260104-1"]),
            ("20260106-1", &["20260105-1"]),
        ]);
        let plan = plan_prune(&chained, rules(9, 200), &bases);
        assert_eq!(letters(&plan), "RRKKK");
        assert_eq!(
            plan.sets[1].reason,
            SetReason::OverKeepBytes {
                total: 230,
                max: 200
            }
        );
        // the newest complete set's chain never goes
        let plan = plan_prune(&chained, rules(9, 1), &bases);
        assert_eq!(letters(&plan), "RRKKK");
        assert_eq!(plan.over_keep_bytes, Some(120));
    }
}
