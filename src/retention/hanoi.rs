//! s3napback's Tower-of-Hanoi rotation (`gc-policy: hanoi`, `gc-hanoi-discs`).
//!
//! Each day is assigned to one of `n` discs, numbered `0..n`, like the tapes of
//! the classic rotation: disc 0 takes every other day, disc 1 every fourth,
//! disc `k` every `2^(k+1)`-th, and the last disc every `2^(n-1)`-th. Each disc
//! holds one snapshot, the newest assigned to it. With a snapshot every day
//! this keeps `n` snapshots whose ages are about 0, 1, 2, 4, ..., and the
//! oldest is between `2^(n-2)` and `2^(n-1) - 1` days old (5 discs: 8 to 15
//! days, s3napback's "between 8 and 16").
//!
//! Precisely:
//! - the *day number* of a date is the count of days since 1970-01-01 (that
//!   day is 0; earlier dates are negative);
//! - a day's *disc* is the number of trailing zero bits of its day number in
//!   two's complement, capped at `n - 1` (day 0 has them all, so it goes to
//!   the last disc);
//! - only the newest snapshot of a day counts for that day; the others of
//!   the day are removed;
//! - of the snapshots that count, each disc keeps its newest; the others are
//!   removed.
//!
//! The newest snapshot overall is always kept: it is the newest of its day
//! and of its disc. The plan does not depend on `today`, and pruning after
//! every new snapshot removes exactly what one prune at the end would.
//! `discs: 0` is read as 1 (keep only the newest); rejecting it is the
//! configuration's job.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::Serialize;

use super::{KeepReason, RemoveReason, Verdict};
use crate::names::SnapshotName;

/// The `gc-hanoi-*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HanoiPolicy {
    /// `gc-hanoi-discs`: how many snapshots the rotation keeps.
    pub discs: u32,
}

/// The disc that `date` is assigned to when there are `discs` discs
/// (0 read as 1); see the module documentation.
#[must_use]
pub fn disc_of(date: NaiveDate, discs: u32) -> u32 {
    let last_disc = discs.max(1) - 1;
    date.to_epoch_days().trailing_zeros().min(last_disc)
}

/// The Hanoi policy's verdict for each of `sorted` (oldest first, no
/// duplicates), in the same order.
pub(super) fn verdicts(sorted: &[SnapshotName], policy: HanoiPolicy) -> Vec<Verdict> {
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    let mut newer_date: Option<NaiveDate> = None;
    let mut newest_first: Vec<Verdict> = Vec::with_capacity(sorted.len());
    for name in sorted.iter().rev() {
        let date = name.date();
        let verdict = if newer_date == Some(date) {
            Verdict::Remove(RemoveReason::NotLastOfDay { date })
        } else {
            let disc = disc_of(date, policy.discs);
            if taken.insert(disc) {
                Verdict::Keep(KeepReason::HanoiDisc { disc })
            } else {
                Verdict::Remove(RemoveReason::HanoiDiscReused { disc })
            }
        };
        newest_first.push(verdict);
        newer_date = Some(date);
    }
    newest_first.reverse();
    newest_first
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Days;

    use super::*;
    use crate::retention::{Mark, Plan, Policy, ProtectReason, plan};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn name(s: &str) -> SnapshotName {
        SnapshotName::parse(s).unwrap()
    }

    fn plan_hanoi(snapshots: &[SnapshotName], discs: u32) -> Plan {
        // why: `today` is irrelevant to this policy; any date will do.
        plan(
            snapshots,
            &Policy::Hanoi(HanoiPolicy { discs }),
            day(2000, 1, 1),
            &BTreeMap::new(),
        )
    }

    #[test]
    fn disc_of_table() {
        let cases: &[((i32, u32, u32), u32, u32)] = &[
            // (date, discs, disc); day numbers in the comments.
            ((1970, 1, 1), 5, 4),   // 0: every bit is zero
            ((1970, 1, 2), 5, 0),   // 1
            ((1970, 1, 3), 5, 1),   // 2
            ((1970, 1, 4), 5, 0),   // 3
            ((1970, 1, 5), 5, 2),   // 4
            ((1970, 1, 9), 5, 3),   // 8
            ((1970, 1, 17), 5, 4),  // 16
            ((1970, 2, 2), 5, 4),   // 32: capped
            ((1970, 2, 2), 7, 5),   // 32
            ((1969, 12, 31), 5, 0), // -1
            ((1969, 12, 30), 5, 1), // -2
            ((1969, 12, 24), 5, 3), // -8
            ((2026, 1, 27), 5, 4),  // 20480 = 2^12 * 5
            ((2026, 1, 27), 20, 12),
            ((2026, 1, 28), 5, 0), // 20481
            ((2026, 1, 27), 1, 0),
            ((2026, 1, 27), 0, 0), // 0 discs read as 1
            ((1970, 1, 1), 0, 0),
            ((1970, 1, 1), u32::MAX, 32),
        ];
        for &((y, m, d), discs, want) in cases {
            assert_eq!(
                disc_of(day(y, m, d), discs),
                want,
                "{y}-{m}-{d} with {discs} discs"
            );
        }
    }

    #[test]
    fn empty_list() {
        assert!(plan_hanoi(&[], 5).entries.is_empty());
    }

    #[test]
    fn only_the_newest_of_a_day_counts() {
        // 2026-01-28 is day 20481 (disc 0), 2026-01-29 is 20482 (disc 1).
        let snapshots: Vec<SnapshotName> = [
            "20260128-1",
            "20260128-2",
            "20260129-1",
            "20260129-2",
            "20260129-3",
        ]
        .into_iter()
        .map(name)
        .collect();
        let plan = plan_hanoi(&snapshots, 5);
        let marks: Vec<(&str, &Mark)> = plan
            .entries
            .iter()
            .map(|e| (e.name.as_str(), &e.mark))
            .collect();
        let not_last = |s: &str| {
            Mark::Remove(RemoveReason::NotLastOfDay {
                date: name(s).date(),
            })
        };
        assert_eq!(
            marks,
            [
                ("20260128-1", &not_last("20260128-1")),
                ("20260128-2", &Mark::Keep(KeepReason::HanoiDisc { disc: 0 })),
                ("20260129-1", &not_last("20260129-1")),
                ("20260129-2", &not_last("20260129-2")),
                ("20260129-3", &Mark::Keep(KeepReason::HanoiDisc { disc: 1 })),
            ]
        );
    }

    #[test]
    fn one_disc_keeps_only_the_newest() {
        let snapshots: Vec<SnapshotName> = ["20260101-1", "20260102-1", "20260103-1"]
            .into_iter()
            .map(name)
            .collect();
        for discs in [0, 1] {
            let plan = plan_hanoi(&snapshots, discs);
            assert_eq!(plan.to_keep(), [&name("20260103-1")], "{discs} discs");
        }
    }

    #[test]
    fn newest_is_always_kept_and_protection_applies() {
        // Days 20481 (disc 0) and 20483 (disc 0): the older loses disc 0.
        let snapshots = [name("20260128-1"), name("20260130-1")];
        let protected = BTreeMap::from([(name("20260128-1"), ProtectReason::Mounted)]);
        let plan = plan(
            &snapshots,
            &Policy::Hanoi(HanoiPolicy { discs: 5 }),
            day(2026, 1, 30),
            &protected,
        );
        assert_eq!(
            plan.entries[0].mark,
            Mark::Protected(ProtectReason::Mounted)
        );
        assert_eq!(
            plan.entries[1].mark,
            Mark::Keep(KeepReason::HanoiDisc { disc: 0 })
        );
        let unprotected = plan_hanoi(&snapshots, 5);
        assert_eq!(
            unprotected.entries[0].mark,
            Mark::Remove(RemoveReason::HanoiDiscReused { disc: 0 })
        );
    }

    /// 64 days, one snapshot a day, 5 discs, pruned after every snapshot as
    /// `strata run` does. Day 0 is 2026-01-27 (day number 20480 = 64 * 320),
    /// so day `k` of the run has disc = trailing zeros of `k`, capped at 4.
    #[test]
    fn hanoi_schedule_over_64_days_with_5_discs() {
        let start = day(2026, 1, 27);
        let at = |k: u64| start + Days::new(k);
        let mut held: Vec<SnapshotName> = Vec::new();
        let mut every: Vec<SnapshotName> = Vec::new();

        // (day k, the offsets k - age of what is held after pruning on day k)
        let checkpoints: BTreeMap<u64, Vec<u64>> = BTreeMap::from([
            (1, vec![1]),
            (2, vec![1, 2]),
            (3, vec![2, 3]),
            (4, vec![2, 3, 4]),
            (5, vec![2, 4, 5]),
            (8, vec![4, 6, 7, 8]),
            (15, vec![8, 12, 14, 15]),
            (16, vec![8, 12, 14, 15, 16]),
            (17, vec![8, 12, 14, 16, 17]),
            (24, vec![16, 20, 22, 23, 24]),
            (31, vec![16, 24, 28, 30, 31]),
            (32, vec![24, 28, 30, 31, 32]),
            (48, vec![40, 44, 46, 47, 48]),
            (63, vec![48, 56, 60, 62, 63]),
            (64, vec![56, 60, 62, 63, 64]),
        ]);

        for k in 1..=64 {
            let new = SnapshotName::new(at(k), 1);
            held.push(new.clone());
            every.push(new);
            let plan = plan_hanoi(&held, 5);
            held = plan.to_keep().into_iter().cloned().collect();

            assert!(held.len() <= 5, "day {k}: {held:?}");
            assert_eq!(held.last().map(SnapshotName::date), Some(at(k)), "day {k}");
            // Pruning every day and pruning once agree.
            let once: Vec<SnapshotName> = plan_hanoi(&every, 5)
                .to_keep()
                .into_iter()
                .cloned()
                .collect();
            assert_eq!(held, once, "day {k}");
            if k >= 16 {
                let oldest_age = at(k).signed_duration_since(held[0].date()).num_days();
                assert!(
                    (8..=15).contains(&oldest_age),
                    "day {k}: oldest is {oldest_age} days old"
                );
                assert_eq!(held.len(), 5, "day {k}");
            }
            if let Some(offsets) = checkpoints.get(&k) {
                let want: Vec<NaiveDate> = offsets.iter().map(|&o| at(o)).collect();
                let got: Vec<NaiveDate> = held.iter().map(SnapshotName::date).collect();
                assert_eq!(got, want, "day {k}");
            }
        }

        let final_plan = plan_hanoi(&every, 5);
        let reasons: Vec<(NaiveDate, Mark)> = final_plan
            .entries
            .iter()
            .filter(|e| !e.mark.is_remove())
            .map(|e| (e.name.date(), e.mark.clone()))
            .collect();
        let disc = |disc| Mark::Keep(KeepReason::HanoiDisc { disc });
        assert_eq!(
            reasons,
            [
                (day(2026, 3, 24), disc(3)),
                (day(2026, 3, 28), disc(2)),
                (day(2026, 3, 30), disc(1)),
                (day(2026, 3, 31), disc(0)),
                (day(2026, 4, 1), disc(4)),
            ]
        );
        assert_eq!(final_plan.to_remove().len(), 59);
    }

    #[test]
    fn gaps_in_the_history_keep_the_newest_per_disc() {
        // Day numbers: 20480 disc 4, 20484 disc 2, 20488 disc 3, 20490 disc 1,
        // 20496 disc 4, 20500 disc 2.
        let snapshots: Vec<SnapshotName> = [
            "20260127-1",
            "20260131-1",
            "20260204-1",
            "20260206-1",
            "20260212-1",
            "20260216-1",
        ]
        .into_iter()
        .map(name)
        .collect();
        let plan = plan_hanoi(&snapshots, 5);
        let marks: Vec<&Mark> = plan.entries.iter().map(|e| &e.mark).collect();
        assert_eq!(
            marks,
            [
                &Mark::Remove(RemoveReason::HanoiDiscReused { disc: 4 }),
                &Mark::Remove(RemoveReason::HanoiDiscReused { disc: 2 }),
                &Mark::Keep(KeepReason::HanoiDisc { disc: 3 }),
                &Mark::Keep(KeepReason::HanoiDisc { disc: 1 }),
                &Mark::Keep(KeepReason::HanoiDisc { disc: 4 }),
                &Mark::Keep(KeepReason::HanoiDisc { disc: 2 }),
            ]
        );
    }
}
