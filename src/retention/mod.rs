//! Retention: which snapshots to keep, as a pure plan computed before anything
//! is removed (DESIGN §5).
//!
//! Owns the policies ([`calendar`], the default and Deltaic's; [`hanoi`]), the
//! emergency order for a pool short of space ([`free_space`]) and the choice
//! of unit logs to delete ([`logs`]). It does not list, remove, mount or
//! measure anything, and it does not read the clock: the caller passes
//! `today` and the set of protected snapshots, then carries out the plan.
//!
//! Invariants of a [`Plan`] returned by [`plan`]:
//! - every distinct input name appears exactly once, oldest first;
//! - a policy's decision only ever turns from `Remove` into `Protected`,
//!   never the other way: protection never removes, and never changes a keep.

pub mod calendar;
pub mod free_space;
pub mod hanoi;
pub mod logs;
pub mod snap_limit;

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use crate::names::SnapshotName;

pub use calendar::CalendarPolicy;
pub use free_space::{FreeSpaceRule, below_threshold, emergency_order, pre_run_order};
pub use hanoi::HanoiPolicy;
pub use logs::logs_to_remove;

/// How the history of snapshots is thinned out (`gc-policy`).
///
/// Serializes (for showing the effective configuration) as
/// `{"calendar": {"duplicate-days": 14, ...}}` or `{"hanoi": {"discs": 10}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Deltaic's calendar schedule (`gc-policy: calendar`, the default).
    Calendar(CalendarPolicy),
    /// s3napback's Tower-of-Hanoi rotation (`gc-policy: hanoi`).
    Hanoi(HanoiPolicy),
}

impl Default for Policy {
    fn default() -> Self {
        Policy::Calendar(CalendarPolicy::default())
    }
}

/// What happens to one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// The policy keeps it.
    Keep(KeepReason),
    /// The policy removes it and nothing protects it.
    Remove(RemoveReason),
    /// The policy would remove it, but the caller protects it.
    Protected(ProtectReason),
}

impl Mark {
    /// True for `Remove`: the only mark that leads to deletion.
    #[must_use]
    pub fn is_remove(&self) -> bool {
        matches!(self, Mark::Remove(_))
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mark::Keep(reason) => write!(f, "keep ({reason})"),
            Mark::Remove(reason) => write!(f, "remove ({reason})"),
            Mark::Protected(reason) => write!(f, "protected ({reason})"),
        }
    }
}

/// Which rule of the policy keeps a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// Calendar: the oldest snapshot is always kept.
    Oldest,
    /// Calendar: every snapshot of a day within `gc-duplicate-days` is kept.
    WithinDuplicateDays { days: u32 },
    /// Calendar: the last snapshot of a day within `gc-daily-weeks`.
    LastOfDay { date: NaiveDate },
    /// Calendar: the first kept day of an ISO week within `gc-weekly-months`.
    FirstOfIsoWeek { iso_year: i32, week: u32 },
    /// Calendar: the first kept day of a 28-day month, kept forever.
    FirstOfMonth { iso_year: i32, month: u32 },
    /// Hanoi: the newest snapshot assigned to this disc.
    HanoiDisc { disc: u32 },
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Oldest => f.write_str("oldest snapshot"),
            KeepReason::WithinDuplicateDays { days } => write!(f, "within {days} days"),
            KeepReason::LastOfDay { date } => write!(f, "last of day {date}"),
            KeepReason::FirstOfIsoWeek { iso_year, week } => {
                write!(f, "first of ISO week {iso_year}-W{week:02}")
            }
            KeepReason::FirstOfMonth { iso_year, month } => {
                write!(f, "forever: first of 28-day month {iso_year}-M{month:02}")
            }
            KeepReason::HanoiDisc { disc } => write!(f, "newest on Hanoi disc {disc}"),
        }
    }
}

/// Why the policy lets a snapshot go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveReason {
    /// A later snapshot of the same day is the one that counts for that day.
    NotLastOfDay { date: NaiveDate },
    /// Calendar: within `gc-weekly-months`, but an older snapshot of the same
    /// ISO week comes first.
    NotFirstOfIsoWeek { iso_year: i32, week: u32 },
    /// Calendar: beyond `gc-weekly-months`, and an older snapshot of the same
    /// 28-day month comes first.
    NotFirstOfMonth { iso_year: i32, month: u32 },
    /// Hanoi: a newer snapshot holds this disc.
    HanoiDiscReused { disc: u32 },
    /// The policy keeps it, but the store holds at most `limit` snapshots
    /// (CephFS's `mds_max_snaps_per_dir`): see [`snap_limit::cap`].
    OverSnapshotLimit { limit: u32, kept_as: KeepReason },
}

impl fmt::Display for RemoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveReason::NotLastOfDay { date } => write!(f, "not the last of day {date}"),
            RemoveReason::NotFirstOfIsoWeek { iso_year, week } => {
                write!(f, "not the first of ISO week {iso_year}-W{week:02}")
            }
            RemoveReason::NotFirstOfMonth { iso_year, month } => {
                write!(f, "not the first of 28-day month {iso_year}-M{month:02}")
            }
            RemoveReason::HanoiDiscReused { disc } => {
                write!(f, "Hanoi disc {disc} holds a newer snapshot")
            }
            RemoveReason::OverSnapshotLimit { limit, kept_as } => write!(
                f,
                "over the limit of {limit} snapshots per directory; was kept: {kept_as}"
            ),
        }
    }
}

/// Why the caller forbids removing a snapshot, whatever the policy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectReason {
    /// It is mounted under `<root>/Snapshots/<name>`.
    Mounted,
    /// An incomplete archive set of this archiver profile is being made
    /// from it; the set is `<profile>/<snapshot>`.
    ArchiveSetReading { profile: String },
}

impl fmt::Display for ProtectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtectReason::Mounted => f.write_str("mounted"),
            ProtectReason::ArchiveSetReading { profile } => {
                write!(f, "read by an incomplete archive set of profile {profile}")
            }
        }
    }
}

/// One snapshot and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    pub name: SnapshotName,
    pub mark: Mark,
}

impl fmt::Display for PlanEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mark {
            // why: the set is named `<profile>/<snapshot>`, and only the entry
            // knows the snapshot.
            Mark::Protected(ProtectReason::ArchiveSetReading { profile }) => write!(
                f,
                "{} protected (read by incomplete archive set {profile}/{})",
                self.name, self.name
            ),
            mark => write!(f, "{} {mark}", self.name),
        }
    }
}

/// The decision for every snapshot, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
}

impl Plan {
    /// The snapshots to remove, oldest first.
    #[must_use]
    pub fn to_remove(&self) -> Vec<&SnapshotName> {
        self.entries
            .iter()
            .filter(|entry| entry.mark.is_remove())
            .map(|entry| &entry.name)
            .collect()
    }

    /// The snapshots that stay (kept or protected), oldest first.
    #[must_use]
    pub fn to_keep(&self) -> Vec<&SnapshotName> {
        self.entries
            .iter()
            .filter(|entry| !entry.mark.is_remove())
            .map(|entry| &entry.name)
            .collect()
    }
}

/// What a policy decides for one snapshot, before protection is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Keep(KeepReason),
    Remove(RemoveReason),
}

/// Decides the fate of every snapshot under `policy` as of `today`.
///
/// `snapshots` may come in any order; duplicates collapse into one entry.
/// A snapshot the policy would remove but that `protected` names is marked
/// [`Mark::Protected`] with the caller's reason; a protected snapshot the
/// policy keeps is simply [`Mark::Keep`]. Names in `protected` that are not in
/// `snapshots` are ignored.
#[must_use]
pub fn plan(
    snapshots: &[SnapshotName],
    policy: &Policy,
    today: NaiveDate,
    protected: &BTreeMap<SnapshotName, ProtectReason>,
) -> Plan {
    let mut sorted = snapshots.to_vec();
    sorted.sort();
    sorted.dedup();

    let verdicts = match policy {
        Policy::Calendar(calendar_policy) => calendar::verdicts(&sorted, calendar_policy, today),
        Policy::Hanoi(hanoi_policy) => hanoi::verdicts(&sorted, *hanoi_policy),
    };
    debug_assert_eq!(verdicts.len(), sorted.len());

    let entries = sorted
        .into_iter()
        .zip(verdicts)
        .map(|(name, verdict)| {
            let mark = match verdict {
                Verdict::Keep(reason) => Mark::Keep(reason),
                Verdict::Remove(reason) => match protected.get(&name) {
                    Some(protect) => Mark::Protected(protect.clone()),
                    None => Mark::Remove(reason),
                },
            };
            PlanEntry { name, mark }
        })
        .collect();
    Plan { entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SnapshotName {
        SnapshotName::parse(s).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn names(list: &[&str]) -> Vec<SnapshotName> {
        list.iter().map(|s| name(s)).collect()
    }

    #[test]
    fn policy_serializes_for_the_effective_config() {
        let calendar = serde_json::to_string(&Policy::default()).unwrap();
        assert_eq!(
            calendar,
            r#"{"calendar":{"duplicate-days":14,"daily-weeks":8,"weekly-months":12}}"#
        );
        let hanoi = serde_json::to_string(&Policy::Hanoi(HanoiPolicy { discs: 10 })).unwrap();
        assert_eq!(hanoi, r#"{"hanoi":{"discs":10}}"#);
    }

    #[test]
    fn empty_input_gives_empty_plan() {
        for policy in [Policy::default(), Policy::Hanoi(HanoiPolicy { discs: 5 })] {
            let plan = plan(&[], &policy, day(2026, 11, 1), &BTreeMap::new());
            assert!(plan.entries.is_empty());
            assert!(plan.to_remove().is_empty());
        }
    }

    #[test]
    fn every_input_appears_once_oldest_first() {
        let input = names(&[
            "20261101-2",
            "20250101-1",
            "20261101-10",
            "20250101-1",
            "20261101-9",
        ]);
        let plan = plan(
            &input,
            &Policy::default(),
            day(2026, 11, 1),
            &BTreeMap::new(),
        );
        let listed: Vec<&str> = plan.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            listed,
            ["20250101-1", "20261101-2", "20261101-9", "20261101-10"]
        );
    }

    #[test]
    fn protection_turns_removal_into_protected_only() {
        // Three snapshots a day older than the duplicate window: the first
        // two of the day are removed by the policy.
        let input = names(&["20260101-1", "20260101-2", "20260101-3", "20260105-1"]);
        let protected = BTreeMap::from([
            (name("20260101-1"), ProtectReason::Mounted),
            (
                name("20260101-3"),
                ProtectReason::ArchiveSetReading {
                    profile: "default".to_owned(),
                },
            ),
            // Not in the input: ignored.
            (name("20250101-1"), ProtectReason::Mounted),
        ]);
        let plan = plan(&input, &Policy::default(), day(2026, 11, 1), &protected);
        let marks: Vec<(&str, &Mark)> = plan
            .entries
            .iter()
            .map(|e| (e.name.as_str(), &e.mark))
            .collect();
        assert_eq!(
            marks,
            [
                ("20260101-1", &Mark::Protected(ProtectReason::Mounted)),
                (
                    "20260101-2",
                    &Mark::Remove(RemoveReason::NotLastOfDay {
                        date: day(2026, 1, 1)
                    })
                ),
                // Kept by the policy anyway: the protection does not show.
                ("20260101-3", &Mark::Keep(KeepReason::Oldest)),
                (
                    "20260105-1",
                    &Mark::Keep(KeepReason::FirstOfIsoWeek {
                        iso_year: 2026,
                        week: 2
                    })
                ),
            ]
        );
        assert_eq!(plan.to_remove(), [&name("20260101-2")]);
        assert_eq!(
            plan.to_keep(),
            [
                &name("20260101-1"),
                &name("20260101-3"),
                &name("20260105-1")
            ]
        );
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one table of phrases")]
    fn display_phrases() {
        let cases: Vec<(String, &str)> = vec![
            (KeepReason::Oldest.to_string(), "oldest snapshot"),
            (
                KeepReason::WithinDuplicateDays { days: 14 }.to_string(),
                "within 14 days",
            ),
            (
                KeepReason::LastOfDay {
                    date: day(2026, 11, 1),
                }
                .to_string(),
                "last of day 2026-11-01",
            ),
            (
                KeepReason::FirstOfIsoWeek {
                    iso_year: 2026,
                    week: 44,
                }
                .to_string(),
                "first of ISO week 2026-W44",
            ),
            (
                KeepReason::FirstOfIsoWeek {
                    iso_year: 2027,
                    week: 1,
                }
                .to_string(),
                "first of ISO week 2027-W01",
            ),
            (
                KeepReason::FirstOfMonth {
                    iso_year: 2026,
                    month: 11,
                }
                .to_string(),
                "forever: first of 28-day month 2026-M11",
            ),
            (
                KeepReason::HanoiDisc { disc: 3 }.to_string(),
                "newest on Hanoi disc 3",
            ),
            (
                RemoveReason::NotLastOfDay {
                    date: day(2026, 11, 1),
                }
                .to_string(),
                "not the last of day 2026-11-01",
            ),
            (
                RemoveReason::NotFirstOfIsoWeek {
                    iso_year: 2026,
                    week: 53,
                }
                .to_string(),
                "not the first of ISO week 2026-W53",
            ),
            (
                RemoveReason::NotFirstOfMonth {
                    iso_year: 2026,
                    month: 14,
                }
                .to_string(),
                "not the first of 28-day month 2026-M14",
            ),
            (
                RemoveReason::HanoiDiscReused { disc: 0 }.to_string(),
                "Hanoi disc 0 holds a newer snapshot",
            ),
            (ProtectReason::Mounted.to_string(), "mounted"),
            (
                ProtectReason::ArchiveSetReading {
                    profile: "default".to_owned(),
                }
                .to_string(),
                "read by an incomplete archive set of profile default",
            ),
            (
                Mark::Keep(KeepReason::Oldest).to_string(),
                "keep (oldest snapshot)",
            ),
            (
                Mark::Protected(ProtectReason::Mounted).to_string(),
                "protected (mounted)",
            ),
            (
                PlanEntry {
                    name: name("20261101-1"),
                    mark: Mark::Protected(ProtectReason::ArchiveSetReading {
                        profile: "default".to_owned(),
                    }),
                }
                .to_string(),
                "20261101-1 protected (read by incomplete archive set default/20261101-1)",
            ),
            (
                PlanEntry {
                    name: name("20261101-1"),
                    mark: Mark::Remove(RemoveReason::NotLastOfDay {
                        date: day(2026, 11, 1),
                    }),
                }
                .to_string(),
                "20261101-1 remove (not the last of day 2026-11-01)",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
