//! The emergency rule for a thin pool short of space (`gc-min-free-percent`,
//! `gc-min-free-bytes`, `gc-min-keep`, DESIGN §5), applied by `prune` and,
//! before any unit writes, at the start of `run` (the link-dest puller's
//! "make room first").
//!
//! How much space removing one snapshot frees cannot be known in advance
//! (thin snapshots share blocks), so this module only answers two questions
//! and the caller loops:
//!
//! ```text
//! carry out the plan's removals
//! for name in emergency_order(&plan, min_keep):
//!     measure the pool
//!     if !below_threshold(data, metadata, min_free_percent): stop
//!     remove name
//! ```
//!
//! Invariants of [`emergency_order`]: it only offers snapshots the plan marks
//! `Keep` (never `Protected`, never ones already marked `Remove`), oldest
//! first, and removing all of them still leaves at least `min_keep`
//! snapshots (counting protected ones).

use crate::names::SnapshotName;

use super::{Mark, Plan};

/// The snapshots that may be removed, one at a time and in this order (oldest
/// first), while the pool stays short of space.
///
/// Only snapshots the plan marks [`Mark::Keep`] are offered. Their number is
/// limited so that at least `min_keep` snapshots (kept or protected) remain
/// after the plan's own removals and all of these; if fewer than `min_keep`
/// remain already, nothing is offered. A `min_keep` of 0 offers every kept
/// snapshot, the newest included.
#[must_use]
pub fn emergency_order(plan: &Plan, min_keep: usize) -> Vec<SnapshotName> {
    let remaining = plan
        .entries
        .iter()
        .filter(|entry| !entry.mark.is_remove())
        .count();
    let removable = remaining.saturating_sub(min_keep);
    plan.entries
        .iter()
        .filter(|entry| matches!(entry.mark, Mark::Keep(_)))
        .take(removable)
        .map(|entry| entry.name.clone())
        .collect()
}

/// The snapshots `run` may remove before its units write, one at a time and
/// in this order while space is short: first those the plan removes anyway
/// (oldest first; `prune` would take them next), then those it keeps,
/// oldest first; never so many that fewer than `min_keep` snapshots
/// (protected ones counted) would remain.
#[must_use]
pub fn pre_run_order(plan: &Plan, min_keep: usize) -> Vec<SnapshotName> {
    let removable = plan.entries.len().saturating_sub(min_keep);
    let marked = |remove: bool| {
        plan.entries
            .iter()
            .filter(move |e| e.mark.is_remove() == remove && !matches!(e.mark, Mark::Protected(_)))
            .map(|e| e.name.clone())
    };
    marked(true).chain(marked(false)).take(removable).collect()
}

/// The free-space rule: a percentage (of the pool's data and metadata, or
/// of the filesystem's bytes and inodes) and an absolute number of bytes,
/// either or both.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FreeSpaceRule {
    pub min_percent: Option<f64>,
    pub min_bytes: Option<u64>,
}

impl FreeSpaceRule {
    /// Whether space is short: below the percentage (see
    /// [`below_threshold`]) or below the bytes.
    #[must_use]
    pub fn short(&self, data_percent: f64, metadata_percent: f64, free_bytes: u64) -> bool {
        self.min_percent
            .is_some_and(|p| below_threshold(data_percent, metadata_percent, p))
            || self.min_bytes.is_some_and(|b| free_bytes < b)
    }
}

/// True when the pool's free data or free metadata space, in percent, is
/// below `min_free_percent`.
///
/// A measurement that is NaN never counts as below: removing snapshots on a
/// garbled reading would destroy history for nothing. A `min_free_percent`
/// of 0 or less never triggers.
#[must_use]
pub fn below_threshold(
    free_data_percent: f64,
    free_metadata_percent: f64,
    min_free_percent: f64,
) -> bool {
    free_data_percent < min_free_percent || free_metadata_percent < min_free_percent
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::retention::{KeepReason, PlanEntry, ProtectReason, RemoveReason};

    fn entry(name: &str, mark: &str) -> PlanEntry {
        let name = SnapshotName::parse(name).unwrap();
        let mark = match mark {
            "keep" => Mark::Keep(KeepReason::Oldest),
            "remove" => Mark::Remove(RemoveReason::NotLastOfDay {
                date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            }),
            "protected" => Mark::Protected(ProtectReason::Mounted),
            other => panic!("unknown mark {other}"),
        };
        PlanEntry { name, mark }
    }

    #[test]
    fn emergency_order_table() {
        // (plan as (name, mark), min_keep, offered)
        type Case<'a> = (&'a [(&'a str, &'a str)], usize, &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], 0, &[]),
            (&[], 3, &[]),
            (
                &[
                    ("20260101-1", "keep"),
                    ("20260102-1", "keep"),
                    ("20260103-1", "keep"),
                ],
                1,
                &["20260101-1", "20260102-1"],
            ),
            (
                &[
                    ("20260101-1", "keep"),
                    ("20260102-1", "keep"),
                    ("20260103-1", "keep"),
                ],
                0,
                &["20260101-1", "20260102-1", "20260103-1"],
            ),
            (
                &[
                    ("20260101-1", "keep"),
                    ("20260102-1", "keep"),
                    ("20260103-1", "keep"),
                ],
                3,
                &[],
            ),
            (&[("20260101-1", "keep"), ("20260102-1", "keep")], 5, &[]),
            // Already-removed ones are neither offered nor counted as left.
            (
                &[
                    ("20260101-1", "remove"),
                    ("20260102-1", "keep"),
                    ("20260102-2", "remove"),
                    ("20260103-1", "keep"),
                    ("20260104-1", "keep"),
                ],
                2,
                &["20260102-1"],
            ),
            // Protected ones are never offered but count towards min_keep.
            (
                &[
                    ("20260101-1", "protected"),
                    ("20260102-1", "keep"),
                    ("20260103-1", "keep"),
                    ("20260104-1", "keep"),
                ],
                2,
                &["20260102-1", "20260103-1"],
            ),
            (
                &[
                    ("20260101-1", "protected"),
                    ("20260102-1", "protected"),
                    ("20260103-1", "keep"),
                ],
                1,
                &["20260103-1"],
            ),
            (
                &[
                    ("20260101-1", "protected"),
                    ("20260102-1", "protected"),
                    ("20260103-1", "keep"),
                ],
                3,
                &[],
            ),
            (
                &[
                    ("20260101-1", "protected"),
                    ("20260102-1", "protected"),
                    ("20260103-1", "keep"),
                ],
                5,
                &[],
            ),
        ];
        for &(entries, min_keep, want) in cases {
            let plan = Plan {
                entries: entries.iter().map(|&(n, m)| entry(n, m)).collect(),
            };
            let got = emergency_order(&plan, min_keep);
            let got: Vec<&str> = got.iter().map(SnapshotName::as_str).collect();
            assert_eq!(got, want, "{entries:?} min_keep {min_keep}");
        }
    }

    #[test]
    fn pre_run_order_takes_what_the_plan_removes_first() {
        // (plan, min_keep, order)
        type Case<'a> = (&'a [(&'a str, &'a str)], usize, &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], 3, &[]),
            (
                &[
                    ("20260101-1", "keep"),
                    ("20260102-1", "remove"),
                    ("20260103-1", "keep"),
                    ("20260104-1", "keep"),
                ],
                2,
                &["20260102-1", "20260101-1"],
            ),
            (
                &[
                    ("20260101-1", "protected"),
                    ("20260102-1", "remove"),
                    ("20260103-1", "keep"),
                ],
                1,
                &["20260102-1", "20260103-1"],
            ),
            (&[("20260101-1", "remove"), ("20260102-1", "keep")], 5, &[]),
            (
                &[
                    ("20260101-1", "remove"),
                    ("20260102-1", "remove"),
                    ("20260103-1", "keep"),
                ],
                2,
                &["20260101-1"],
            ),
        ];
        for &(entries, min_keep, want) in cases {
            let plan = Plan {
                entries: entries.iter().map(|&(n, m)| entry(n, m)).collect(),
            };
            let got = pre_run_order(&plan, min_keep);
            let got: Vec<&str> = got.iter().map(SnapshotName::as_str).collect();
            assert_eq!(got, want, "{entries:?} min_keep {min_keep}");
        }
    }

    #[test]
    fn the_rule_is_short_below_the_percentage_or_the_bytes() {
        let rule = |p, b| FreeSpaceRule {
            min_percent: p,
            min_bytes: b,
        };
        // (rule, data %, metadata %, free bytes, short)
        let cases = [
            (rule(None, None), 1.0, 1.0, 0, false),
            (rule(Some(10.0), None), 9.0, 50.0, u64::MAX, true),
            (rule(Some(10.0), None), 11.0, 50.0, 0, false),
            (rule(None, Some(1000)), 1.0, 1.0, 999, true),
            (rule(None, Some(1000)), 1.0, 1.0, 1000, false),
            (rule(Some(10.0), Some(1000)), 50.0, 50.0, 999, true),
            (rule(Some(10.0), Some(1000)), 5.0, 50.0, 5000, true),
            (rule(Some(10.0), Some(1000)), 50.0, 50.0, 5000, false),
        ];
        for (r, d, m, b, want) in cases {
            assert_eq!(r.short(d, m, b), want, "{r:?} {d} {m} {b}");
        }
    }

    #[test]
    fn below_threshold_table() {
        let cases = [
            (50.0, 50.0, 10.0, false),
            (10.0, 50.0, 10.0, false),
            (9.99, 50.0, 10.0, true),
            (50.0, 9.99, 10.0, true),
            (5.0, 5.0, 10.0, true),
            (0.0, 0.0, 0.0, false),
            (0.0, 100.0, -1.0, false),
            (f64::NAN, 50.0, 10.0, false),
            (50.0, f64::NAN, 10.0, false),
            (f64::NAN, 5.0, 10.0, true),
            (100.0, 100.0, 100.0, false),
        ];
        for (data, metadata, min, want) in cases {
            assert_eq!(
                below_threshold(data, metadata, min),
                want,
                "data {data} metadata {metadata} min {min}"
            );
        }
    }
}
