//! A store's cap on the number of snapshots (CephFS: `mds_max_snaps_per_dir`,
//! 100 by default) applied to a plan, and how soon a policy reaches it.
//!
//! [`cap`] turns the fewest `Keep`s into removals so that at most `max_kept`
//! snapshots stay, taking first the oldest monthly ones (and the oldest
//! snapshot, which the calendar keeps for the same reason), then the oldest
//! weekly ones, then the oldest daily ones, then the rest, oldest first. It
//! never takes the newest snapshot nor a protected one; if those alone are
//! more than `max_kept`, more stay.
//!
//! [`first_day_over`] simulates one run (and one prune) a day under a
//! policy and says on which day a new snapshot would be the one past the
//! limit: `config check` warns about it.

use chrono::{Days, NaiveDate};

use super::{KeepReason, Mark, Plan, Policy, RemoveReason};
use crate::names::SnapshotName;
use std::collections::BTreeMap;

/// Which kept snapshots go first when the count is over the limit.
fn sacrifice_rank(reason: &KeepReason) -> u8 {
    match reason {
        KeepReason::FirstOfMonth { .. } | KeepReason::Oldest => 0,
        KeepReason::FirstOfIsoWeek { .. } => 1,
        KeepReason::LastOfDay { .. } => 2,
        KeepReason::HanoiDisc { .. } => 3,
        KeepReason::WithinDuplicateDays { .. } => 4,
    }
}

/// `plan` with the fewest `Keep`s turned into
/// [`RemoveReason::OverSnapshotLimit`] so that at most `max_kept` stay;
/// `limit` is the store's limit, for the reason's text.
#[must_use]
pub fn cap(mut plan: Plan, max_kept: usize, limit: u32) -> Plan {
    let kept = plan.to_keep().len();
    if kept <= max_kept {
        return plan;
    }
    let newest = plan.entries.len().saturating_sub(1);
    let mut candidates: Vec<(u8, usize)> = plan
        .entries
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != newest)
        .filter_map(|(i, e)| match &e.mark {
            Mark::Keep(reason) => Some((sacrifice_rank(reason), i)),
            _ => None,
        })
        .collect();
    // why: entries are oldest first, so the index orders by age within a rank
    candidates.sort_unstable();
    for (_, i) in candidates.into_iter().take(kept - max_kept) {
        let entry = &mut plan.entries[i];
        if let Mark::Keep(reason) = &entry.mark {
            entry.mark = Mark::Remove(RemoveReason::OverSnapshotLimit {
                limit,
                kept_as: reason.clone(),
            });
        }
    }
    plan
}

/// With one snapshot a day from `start` and a prune (capped at `limit - 1`
/// when `capped`) after each, the first day whose new snapshot would make
/// more than `limit`, within `horizon_days`: `(days since start, count)`.
#[must_use]
pub fn first_day_over(
    policy: &Policy,
    limit: u32,
    start: NaiveDate,
    horizon_days: u32,
) -> Option<(u32, usize)> {
    let limit = limit as usize;
    let mut names: Vec<SnapshotName> = Vec::new();
    let none = BTreeMap::new();
    for day in 0..horizon_days {
        let today = start.checked_add_days(Days::new(u64::from(day)))?;
        names.push(SnapshotName::next_for_day(&names, today));
        if names.len() > limit {
            return Some((day, names.len()));
        }
        let plan = super::plan(&names, policy, today, &none);
        names = plan.to_keep().into_iter().cloned().collect();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::{CalendarPolicy, HanoiPolicy, PlanEntry, ProtectReason};

    fn name(s: &str) -> SnapshotName {
        SnapshotName::parse(s).unwrap()
    }

    fn keep(n: &str, reason: KeepReason) -> PlanEntry {
        PlanEntry {
            name: name(n),
            mark: Mark::Keep(reason),
        }
    }

    fn month(m: u32) -> KeepReason {
        KeepReason::FirstOfMonth {
            iso_year: 2025,
            month: m,
        }
    }

    fn week(w: u32) -> KeepReason {
        KeepReason::FirstOfIsoWeek {
            iso_year: 2026,
            week: w,
        }
    }

    fn day(d: &str) -> KeepReason {
        KeepReason::LastOfDay {
            date: name(d).date(),
        }
    }

    fn sample() -> Plan {
        Plan {
            entries: vec![
                keep("20250101-1", KeepReason::Oldest),
                keep("20250201-1", month(2)),
                keep("20250301-1", month(3)),
                PlanEntry {
                    name: name("20250401-1"),
                    mark: Mark::Protected(ProtectReason::Mounted),
                },
                keep("20260105-1", week(2)),
                keep("20260112-1", week(3)),
                keep("20261101-1", day("20261101-1")),
                keep("20261102-1", day("20261102-1")),
            ],
        }
    }

    fn removed(plan: &Plan) -> Vec<&str> {
        plan.to_remove().iter().map(|n| n.as_str()).collect()
    }

    #[test]
    fn cap_table() {
        // (max kept, removed in order)
        let table: &[(usize, &[&str])] = &[
            (8, &[]),
            (20, &[]),
            (7, &["20250101-1"]),
            (5, &["20250101-1", "20250201-1", "20250301-1"]),
            (4, &["20250101-1", "20250201-1", "20250301-1", "20260105-1"]),
            (
                2,
                &[
                    "20250101-1",
                    "20250201-1",
                    "20250301-1",
                    "20260105-1",
                    "20260112-1",
                    "20261101-1",
                ],
            ),
            // why: the newest and the protected one always stay, even past the cap
            (
                0,
                &[
                    "20250101-1",
                    "20250201-1",
                    "20250301-1",
                    "20260105-1",
                    "20260112-1",
                    "20261101-1",
                ],
            ),
        ];
        for (max, want) in table {
            let plan = cap(sample(), *max, 100);
            assert_eq!(&removed(&plan), want, "max {max}");
            assert_eq!(plan.entries.len(), 8);
        }
    }

    #[test]
    fn cap_says_why_and_what_it_was_kept_as() {
        let plan = cap(sample(), 7, 100);
        assert_eq!(
            plan.entries[0].to_string(),
            "20250101-1 remove (over the limit of 100 snapshots per directory; was kept: oldest snapshot)"
        );
        let plan = cap(sample(), 6, 100);
        assert_eq!(
            plan.entries[1].mark.to_string(),
            "remove (over the limit of 100 snapshots per directory; was kept: forever: first of 28-day month 2025-M02)"
        );
    }

    #[test]
    fn calendar_defaults_pass_100_in_the_second_year_hanoi_never() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let (day, count) = first_day_over(
            &Policy::Calendar(CalendarPolicy::default()),
            100,
            start,
            1500,
        )
        .expect("Deltaic's calendar keeps monthly snapshots forever");
        assert_eq!(count, 101);
        assert!((365..730).contains(&day), "day {day}");
        assert_eq!(
            first_day_over(&Policy::Hanoi(HanoiPolicy { discs: 10 }), 100, start, 1500),
            None
        );
        assert!(
            first_day_over(&Policy::Hanoi(HanoiPolicy { discs: 10 }), 9, start, 1500).is_some()
        );
    }

    #[test]
    fn two_years_of_daily_runs_with_a_capped_daily_prune_never_pass_100() {
        let policy = Policy::Calendar(CalendarPolicy::default());
        let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut names: Vec<SnapshotName> = Vec::new();
        let (mut most, mut most_uncapped) = (0, 0);
        let mut first_capped: Option<String> = None;
        for d in 0..730 {
            let today = start + Days::new(d);
            names.push(SnapshotName::next_for_day(&names, today));
            most = most.max(names.len());
            let plan = crate::retention::plan(&names, &policy, today, &BTreeMap::new());
            most_uncapped = most_uncapped.max(plan.to_keep().len() + 1);
            let plan = cap(plan, 99, 100);
            if first_capped.is_none()
                && let Some(e) = plan.entries.iter().find(|e| {
                    matches!(e.mark, Mark::Remove(RemoveReason::OverSnapshotLimit { .. }))
                })
            {
                first_capped = Some(e.mark.to_string());
            }
            names = plan.to_keep().into_iter().cloned().collect();
        }
        assert!(most <= 100, "{most}");
        assert!(
            most_uncapped > 100,
            "{most_uncapped}: the cap had nothing to do"
        );
        let first = first_capped.unwrap();
        assert!(
            first.contains("oldest snapshot") || first.contains("first of 28-day month"),
            "{first}"
        );
    }
}
