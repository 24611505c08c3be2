//! Deltaic's calendar retention (`gc-policy: calendar`, the default).
//!
//! With `D = gc-duplicate-days`, `W = gc-daily-weeks`, `M = gc-weekly-months`
//! and three thresholds `dup = today - D days`, `daily = today - 7W days`,
//! `weekly = today - 28M days` (a date is "within" a threshold when it is
//! strictly after it):
//!
//! 1. Day filter. Of each day, only the last snapshot survives, except that
//!    every snapshot of a day within `dup` survives. The others are removed.
//! 2. Walk the survivors oldest first, each compared with the survivor just
//!    before it (`prev`), whether `prev` was kept or not. A survivor is kept
//!    when it is the oldest; or has the same date as `prev`; or is within
//!    `daily`; or is within `weekly` and in another ISO week than `prev`; or
//!    is in another 28-day month than `prev`. Otherwise it is removed.
//!
//! A "28-day month" is four ISO weeks: `month = (iso_week - 1) / 4 + 1`, so an
//! ISO year has 13 of them, or 14 when it has a week 53 (which is then month
//! 14 on its own).
//!
//! This is Deltaic's `select_snapshots_to_remove` step for step, with two
//! differences:
//! - months are compared together with their ISO year, so that two
//!   snapshots a year apart with none between are in different months
//!   (Deltaic sees both as, say, month 1 and removes the newer);
//! - names are ordered by [`SnapshotName`]'s numeric order, so the last of a
//!   day with ten runs is `-10`, where Deltaic's textual sort picks `-9`.
//!
//! Since `prev` is not always a kept snapshot, "first of ISO week" and "first
//! of month" mean the first *surviving* snapshot of that period: Deltaic
//! keeps the first, not the last, of each week and month.
//!
//! Degenerate settings are honoured as Deltaic does: with all three at 0,
//! even today's snapshot can be removed if it is not the first of its month.
//! Rejecting such settings is the configuration's job.

use chrono::{Datelike, Days, NaiveDate};
use serde::Serialize;

use super::{KeepReason, RemoveReason, Verdict};
use crate::names::SnapshotName;

/// The `gc-*` settings of the calendar policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CalendarPolicy {
    /// `gc-duplicate-days`: keep every snapshot of this many recent days.
    pub duplicate_days: u32,
    /// `gc-daily-weeks`: keep the last snapshot of each day for this many weeks.
    pub daily_weeks: u32,
    /// `gc-weekly-months`: keep one snapshot per ISO week for this many
    /// 28-day months.
    pub weekly_months: u32,
}

impl Default for CalendarPolicy {
    /// Deltaic's defaults: 14 days, 8 weeks, 12 months.
    fn default() -> Self {
        CalendarPolicy {
            duplicate_days: 14,
            daily_weeks: 8,
            weekly_months: 12,
        }
    }
}

/// The three dates of the policy; a snapshot is within one when its date is
/// strictly after it.
struct Thresholds {
    duplicate: NaiveDate,
    daily: NaiveDate,
    weekly: NaiveDate,
}

impl Thresholds {
    fn new(policy: &CalendarPolicy, today: NaiveDate) -> Self {
        // why: u64 arithmetic cannot overflow for any u32 setting, and a
        // threshold before chrono's first date saturates to it: every
        // snapshot (year >= 0) is then within it.
        let before = |days: u64| {
            today
                .checked_sub_days(Days::new(days))
                .unwrap_or(NaiveDate::MIN)
        };
        Thresholds {
            duplicate: before(u64::from(policy.duplicate_days)),
            daily: before(u64::from(policy.daily_weeks) * 7),
            weekly: before(u64::from(policy.weekly_months) * 28),
        }
    }
}

/// Where a snapshot falls in the calendar.
#[derive(Clone, Copy)]
struct Period {
    date: NaiveDate,
    iso_year: i32,
    week: u32,
    /// 28-day month of `iso_year`, 1..=14.
    month: u32,
}

impl Period {
    fn of(name: &SnapshotName) -> Self {
        let date = name.date();
        let iso = date.iso_week();
        Period {
            date,
            iso_year: iso.year(),
            week: iso.week(),
            month: (iso.week() - 1) / 4 + 1,
        }
    }
}

/// The calendar policy's verdict for each of `sorted` (oldest first, no
/// duplicates), in the same order.
pub(super) fn verdicts(
    sorted: &[SnapshotName],
    policy: &CalendarPolicy,
    today: NaiveDate,
) -> Vec<Verdict> {
    let thresholds = Thresholds::new(policy, today);
    let periods: Vec<Period> = sorted.iter().map(Period::of).collect();
    let newer_same_day = |index: usize| {
        periods
            .get(index + 1)
            .is_some_and(|next| next.date == periods[index].date)
    };

    let mut verdicts = Vec::with_capacity(sorted.len());
    let mut prev: Option<Period> = None;
    for (index, &cur) in periods.iter().enumerate() {
        // Step 1, the day filter. Deltaic walks newest first and keeps the
        // first it meets of each date; in an oldest-first list that is the
        // one whose successor has another date.
        if newer_same_day(index) && cur.date <= thresholds.duplicate {
            verdicts.push(Verdict::Remove(RemoveReason::NotLastOfDay {
                date: cur.date,
            }));
            continue;
        }

        // Step 2, each survivor against the previous survivor.
        let verdict = match prev {
            None => Verdict::Keep(KeepReason::Oldest),
            Some(prev) if prev.date == cur.date => Verdict::Keep(KeepReason::WithinDuplicateDays {
                days: policy.duplicate_days,
            }),
            Some(_) if cur.date > thresholds.daily => {
                // why: a day keeps several survivors only within the
                // duplicate window (the filter drops all but the last
                // elsewhere), so when a newer snapshot of this day exists it
                // survives too, and "last of day" would be untrue here.
                Verdict::Keep(if newer_same_day(index) {
                    KeepReason::WithinDuplicateDays {
                        days: policy.duplicate_days,
                    }
                } else {
                    KeepReason::LastOfDay { date: cur.date }
                })
            }
            Some(prev)
                if cur.date > thresholds.weekly
                    && (prev.iso_year, prev.week) != (cur.iso_year, cur.week) =>
            {
                Verdict::Keep(KeepReason::FirstOfIsoWeek {
                    iso_year: cur.iso_year,
                    week: cur.week,
                })
            }
            // why: Deltaic compares the month number alone, so two snapshots
            // a year apart with none between (e.g. after a long outage) share
            // "month 1" and the newer one is removed although it is the only
            // snapshot of its month. Comparing (ISO year, month) keeps it.
            Some(prev) if (prev.iso_year, prev.month) != (cur.iso_year, cur.month) => {
                Verdict::Keep(KeepReason::FirstOfMonth {
                    iso_year: cur.iso_year,
                    month: cur.month,
                })
            }
            Some(_) if cur.date > thresholds.weekly => {
                Verdict::Remove(RemoveReason::NotFirstOfIsoWeek {
                    iso_year: cur.iso_year,
                    week: cur.week,
                })
            }
            Some(_) => Verdict::Remove(RemoveReason::NotFirstOfMonth {
                iso_year: cur.iso_year,
                month: cur.month,
            }),
        };
        verdicts.push(verdict);
        // why: as Deltaic, `prev` moves on after every survivor, kept or not.
        prev = Some(cur);
    }
    verdicts
}

/// An independent statement of the calendar policy, for tests only.
#[doc(hidden)]
pub mod oracle {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{Datelike, NaiveDate};

    use super::CalendarPolicy;
    use crate::names::SnapshotName;

    /// The snapshots the calendar policy keeps, stated per snapshot instead
    /// of as Deltaic's walk; a test oracle for [`crate::retention::plan`].
    ///
    /// A snapshot *survives the day filter* when it is the newest of its date
    /// or less than `duplicate_days` old. A survivor is kept when it is the
    /// oldest survivor; or not the oldest survivor of its date; or less than
    /// `7 * daily_weeks` days old; or less than `28 * weekly_months` days
    /// old and the oldest survivor of its ISO week; or the oldest survivor of
    /// its (ISO year, 28-day month). "The previous survivor is in another
    /// period" is the same as "this is the oldest survivor of its period"
    /// because each period is a run of consecutive days.
    #[must_use]
    pub fn reference_calendar_keep(
        snapshots: &[SnapshotName],
        policy: &CalendarPolicy,
        today: NaiveDate,
    ) -> BTreeSet<SnapshotName> {
        let age = |name: &SnapshotName| today.signed_duration_since(name.date()).num_days();
        let younger_than = |name: &SnapshotName, days: i64| age(name) < days;
        let week_of = |name: &SnapshotName| {
            let iso = name.date().iso_week();
            (iso.year(), iso.week())
        };
        let month_of = |name: &SnapshotName| {
            let iso = name.date().iso_week();
            (iso.year(), iso.week().div_ceil(4))
        };

        let all: BTreeSet<SnapshotName> = snapshots.iter().cloned().collect();
        let mut newest_of_date: BTreeMap<NaiveDate, &SnapshotName> = BTreeMap::new();
        for name in &all {
            let slot = newest_of_date.entry(name.date()).or_insert(name);
            if name > *slot {
                *slot = name;
            }
        }
        let survivors: BTreeSet<&SnapshotName> = all
            .iter()
            .filter(|name| {
                newest_of_date[&name.date()] == *name
                    || younger_than(name, i64::from(policy.duplicate_days))
            })
            .collect();

        let mut oldest_of_date: BTreeMap<NaiveDate, &SnapshotName> = BTreeMap::new();
        let mut oldest_of_week: BTreeMap<(i32, u32), &SnapshotName> = BTreeMap::new();
        let mut oldest_of_month: BTreeMap<(i32, u32), &SnapshotName> = BTreeMap::new();
        // why: iterating a BTreeSet visits oldest first, so the first insert
        // per key is the minimum.
        for &name in &survivors {
            oldest_of_date.entry(name.date()).or_insert(name);
            oldest_of_week.entry(week_of(name)).or_insert(name);
            oldest_of_month.entry(month_of(name)).or_insert(name);
        }
        let oldest = survivors.first().copied();

        survivors
            .iter()
            .filter(|&&name| {
                oldest == Some(name)
                    || oldest_of_date[&name.date()] != name
                    || younger_than(name, i64::from(policy.daily_weeks) * 7)
                    || (younger_than(name, i64::from(policy.weekly_months) * 28)
                        && oldest_of_week[&week_of(name)] == name)
                    || oldest_of_month[&month_of(name)] == name
            })
            .map(|&name| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::oracle::reference_calendar_keep;
    use super::*;
    use crate::retention::{Mark, Plan, Policy, ProtectReason, plan};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn name(s: &str) -> SnapshotName {
        SnapshotName::parse(s).unwrap()
    }

    fn plan_calendar(snapshots: &[SnapshotName], policy: CalendarPolicy, today: NaiveDate) -> Plan {
        plan(
            snapshots,
            &Policy::Calendar(policy),
            today,
            &BTreeMap::new(),
        )
    }

    fn kept(plan: &Plan) -> BTreeSet<SnapshotName> {
        plan.to_keep().into_iter().cloned().collect()
    }

    fn keep(reason: KeepReason) -> Mark {
        Mark::Keep(reason)
    }

    fn remove(reason: RemoveReason) -> Mark {
        Mark::Remove(reason)
    }

    fn week(iso_year: i32, week: u32) -> (i32, u32) {
        (iso_year, week)
    }

    fn first_of_week((iso_year, week): (i32, u32)) -> Mark {
        keep(KeepReason::FirstOfIsoWeek { iso_year, week })
    }

    fn not_first_of_week((iso_year, week): (i32, u32)) -> Mark {
        remove(RemoveReason::NotFirstOfIsoWeek { iso_year, week })
    }

    fn first_of_month(iso_year: i32, month: u32) -> Mark {
        keep(KeepReason::FirstOfMonth { iso_year, month })
    }

    fn not_first_of_month(iso_year: i32, month: u32) -> Mark {
        remove(RemoveReason::NotFirstOfMonth { iso_year, month })
    }

    fn last_of_day(s: &str) -> Mark {
        keep(KeepReason::LastOfDay {
            date: name(s).date(),
        })
    }

    fn not_last_of_day(s: &str) -> Mark {
        remove(RemoveReason::NotLastOfDay {
            date: name(s).date(),
        })
    }

    fn within_14() -> Mark {
        keep(KeepReason::WithinDuplicateDays { days: 14 })
    }

    struct Case {
        what: &'static str,
        policy: CalendarPolicy,
        today: NaiveDate,
        expect: Vec<(&'static str, Mark)>,
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one table of cases")]
    fn calendar_table() {
        let default = CalendarPolicy::default();
        let cases = vec![
            Case {
                what: "single snapshot",
                policy: default,
                today: day(2030, 1, 1),
                expect: vec![("20200101-1", keep(KeepReason::Oldest))],
            },
            Case {
                what: "ISO week 53 in the monthly tier is 28-day month 14 on its own",
                policy: default,
                today: day(2029, 1, 1),
                expect: vec![
                    ("20261227-1", keep(KeepReason::Oldest)),
                    ("20261228-1", first_of_month(2026, 14)),
                    ("20261229-1", not_first_of_month(2026, 14)),
                    ("20261231-1", not_first_of_month(2026, 14)),
                    ("20270101-1", not_first_of_month(2026, 14)),
                    ("20270103-1", not_first_of_month(2026, 14)),
                    ("20270104-1", first_of_month(2027, 1)),
                    ("20270105-1", not_first_of_month(2027, 1)),
                ],
            },
            Case {
                what: "ISO week 53 in the weekly tier spans the new year",
                policy: default,
                today: day(2027, 6, 1),
                expect: vec![
                    ("20261227-1", keep(KeepReason::Oldest)),
                    ("20261231-1", first_of_week(week(2026, 53))),
                    ("20270101-1", not_first_of_week(week(2026, 53))),
                    ("20270103-1", not_first_of_week(week(2026, 53))),
                    ("20270104-1", first_of_week(week(2027, 1))),
                    ("20270110-1", not_first_of_week(week(2027, 1))),
                    ("20270111-1", first_of_week(week(2027, 2))),
                ],
            },
            Case {
                what: "30 December 2024 belongs to ISO 2025-W01",
                policy: default,
                today: day(2025, 6, 1),
                expect: vec![
                    ("20241229-1", keep(KeepReason::Oldest)),
                    ("20241230-1", first_of_week(week(2025, 1))),
                    ("20250101-1", not_first_of_week(week(2025, 1))),
                    ("20250105-1", not_first_of_week(week(2025, 1))),
                    ("20250106-1", first_of_week(week(2025, 2))),
                ],
            },
            Case {
                what: "monthly tier across a year boundary without week 53",
                policy: default,
                today: day(2030, 1, 1),
                expect: vec![
                    ("20251222-1", keep(KeepReason::Oldest)),
                    ("20251228-1", not_first_of_month(2025, 13)),
                    ("20251229-1", first_of_month(2026, 1)),
                    ("20260102-1", not_first_of_month(2026, 1)),
                    ("20260125-1", not_first_of_month(2026, 1)),
                    ("20260126-1", first_of_month(2026, 2)),
                ],
            },
            Case {
                what: "year gap: month 1 of 2025 and month 1 of 2026 are different months (the fix)",
                policy: default,
                today: day(2030, 1, 1),
                expect: vec![
                    ("20250106-1", keep(KeepReason::Oldest)),
                    // Deltaic would remove this one: same month number, 1.
                    ("20260105-1", first_of_month(2026, 1)),
                    ("20260112-1", not_first_of_month(2026, 1)),
                    ("20270104-1", first_of_month(2027, 1)),
                ],
            },
            Case {
                what: "duplicate window boundary: today - 14 days is outside",
                policy: default,
                today: day(2026, 11, 30),
                expect: vec![
                    ("20261101-1", keep(KeepReason::Oldest)),
                    ("20261116-1", not_last_of_day("20261116-1")),
                    ("20261116-2", last_of_day("20261116-2")),
                    ("20261117-1", within_14()),
                    ("20261117-2", within_14()),
                    ("20261130-1", within_14()),
                    ("20261130-2", within_14()),
                    ("20261130-3", within_14()),
                ],
            },
            Case {
                what: "daily window boundary: today - 56 days is outside",
                policy: default,
                today: day(2026, 11, 30),
                expect: vec![
                    ("20261001-1", keep(KeepReason::Oldest)),
                    ("20261003-1", not_first_of_week(week(2026, 40))),
                    ("20261004-2", not_first_of_week(week(2026, 40))),
                    ("20261005-1", first_of_week(week(2026, 41))),
                    ("20261006-1", last_of_day("20261006-1")),
                    ("20261007-1", last_of_day("20261007-1")),
                ],
            },
            Case {
                what: "weekly window boundary: today - 336 days is outside",
                policy: default,
                today: day(2026, 12, 7),
                expect: vec![
                    ("20260101-1", keep(KeepReason::Oldest)),
                    ("20260105-1", not_first_of_month(2026, 1)),
                    ("20260112-1", first_of_week(week(2026, 3))),
                    ("20260113-1", not_first_of_week(week(2026, 3))),
                ],
            },
            Case {
                what: "prev moves past removed snapshots, as in Deltaic",
                // Weekly tier: the Sunday is removed, and the next Monday is
                // compared with that Sunday, not with the kept Monday before.
                policy: default,
                today: day(2026, 11, 30),
                expect: vec![
                    ("20260601-1", keep(KeepReason::Oldest)),
                    ("20260607-1", not_first_of_week(week(2026, 23))),
                    ("20260608-1", first_of_week(week(2026, 24))),
                ],
            },
            Case {
                what: "several a day outside the duplicate window keep only the last",
                policy: default,
                today: day(2026, 11, 30),
                expect: vec![
                    ("20261020-1", not_last_of_day("20261020-1")),
                    ("20261020-2", not_last_of_day("20261020-2")),
                    ("20261020-10", keep(KeepReason::Oldest)),
                    ("20261021-9", not_last_of_day("20261021-9")),
                    ("20261021-10", last_of_day("20261021-10")),
                ],
            },
            Case {
                what: "all settings 0: only month firsts survive, even today's is removed",
                policy: CalendarPolicy {
                    duplicate_days: 0,
                    daily_weeks: 0,
                    weekly_months: 0,
                },
                today: day(2026, 11, 4),
                expect: vec![
                    ("20261102-1", keep(KeepReason::Oldest)),
                    ("20261103-1", not_first_of_month(2026, 12)),
                    ("20261104-1", not_last_of_day("20261104-1")),
                    ("20261104-2", not_first_of_month(2026, 12)),
                ],
            },
            Case {
                what: "a snapshot dated after today counts as recent",
                policy: default,
                today: day(2026, 11, 4),
                expect: vec![
                    ("20261103-1", keep(KeepReason::Oldest)),
                    ("20261105-1", within_14()),
                    ("20261105-2", within_14()),
                ],
            },
        ];

        for case in cases {
            let snapshots: Vec<SnapshotName> =
                case.expect.iter().rev().map(|(s, _)| name(s)).collect();
            let plan = plan_calendar(&snapshots, case.policy, case.today);
            let got: Vec<(&str, &Mark)> = plan
                .entries
                .iter()
                .map(|e| (e.name.as_str(), &e.mark))
                .collect();
            let want: Vec<(&str, &Mark)> = case.expect.iter().map(|(s, m)| (*s, m)).collect();
            assert_eq!(got, want, "{}", case.what);
            assert_eq!(
                kept(&plan),
                reference_calendar_keep(&snapshots, &case.policy, case.today),
                "oracle disagrees: {}",
                case.what
            );
        }
    }

    #[test]
    fn empty_list() {
        let plan = plan_calendar(&[], CalendarPolicy::default(), day(2026, 1, 1));
        assert!(plan.entries.is_empty());
        assert!(
            reference_calendar_keep(&[], &CalendarPolicy::default(), day(2026, 1, 1)).is_empty()
        );
    }

    #[test]
    fn huge_settings_keep_everything() {
        let policy = CalendarPolicy {
            duplicate_days: u32::MAX,
            daily_weeks: u32::MAX,
            weekly_months: u32::MAX,
        };
        let snapshots: Vec<SnapshotName> = ["00010101-1", "00010101-2", "20261101-1"]
            .into_iter()
            .map(name)
            .collect();
        let plan = plan_calendar(&snapshots, policy, day(2026, 11, 1));
        assert!(plan.to_remove().is_empty());
        assert_eq!(
            kept(&plan),
            reference_calendar_keep(&snapshots, &policy, day(2026, 11, 1))
        );
    }

    /// One snapshot a day for 400 days up to `today` = 2027-02-15, default
    /// policy: thresholds are dup 2027-02-01, daily 2026-12-21, weekly
    /// 2026-03-16.
    #[test]
    fn default_policy_on_400_daily_snapshots() {
        let today = day(2027, 2, 15);
        let first = day(2026, 1, 12);
        let snapshots: Vec<SnapshotName> = first
            .iter_days()
            .take(400)
            .map(|date| SnapshotName::new(date, 1))
            .collect();
        assert_eq!(snapshots.last().unwrap().date(), today);

        let plan = plan_calendar(&snapshots, CalendarPolicy::default(), today);
        let survivors: Vec<NaiveDate> = plan.to_keep().iter().map(|n| n.date()).collect();

        // Oldest, then the first of 28-day months 2 and 3 (2026-W05, W09).
        let mut want = vec![first, day(2026, 1, 26), day(2026, 2, 23)];
        // The Monday of every ISO week 2026-W13 .. W52 (after 2026-03-16).
        want.extend(
            day(2026, 3, 23)
                .iter_weeks()
                .take_while(|&date| date <= day(2026, 12, 21)),
        );
        // Every day after 2026-12-21.
        want.extend(
            day(2026, 12, 22)
                .iter_days()
                .take_while(|&date| date <= today),
        );

        assert_eq!(want.len(), 3 + 40 + 56);
        assert_eq!(survivors, want);
        assert_eq!(plan.entries.len(), 400);
        assert_eq!(plan.to_remove().len(), 400 - 99);

        let mark_of = |s: &str| {
            plan.entries
                .iter()
                .find(|e| e.name.as_str() == s)
                .map(|e| e.mark.clone())
                .unwrap()
        };
        let spot_checks = [
            ("20260112-1", keep(KeepReason::Oldest)),
            ("20260113-1", not_first_of_month(2026, 1)),
            ("20260126-1", first_of_month(2026, 2)),
            ("20260223-1", first_of_month(2026, 3)),
            // At the weekly threshold: handled by the monthly rule.
            ("20260316-1", not_first_of_month(2026, 3)),
            ("20260317-1", not_first_of_week(week(2026, 12))),
            ("20260323-1", first_of_week(week(2026, 13))),
            ("20261220-1", not_first_of_week(week(2026, 51))),
            ("20261221-1", first_of_week(week(2026, 52))),
            ("20261222-1", last_of_day("20261222-1")),
            ("20261228-1", last_of_day("20261228-1")),
            ("20270103-1", last_of_day("20270103-1")),
            ("20270215-1", last_of_day("20270215-1")),
        ];
        for (s, want) in spot_checks {
            assert_eq!(mark_of(s), want, "{s}");
        }
        assert_eq!(
            kept(&plan),
            reference_calendar_keep(&snapshots, &CalendarPolicy::default(), today)
        );
    }

    /// Three snapshots a day for the 30 days of November 2026, pruned on the
    /// 30th: the last 14 days keep all three, the 16 before keep the last.
    #[test]
    fn three_a_day_for_30_days() {
        let today = day(2026, 11, 30);
        let snapshots: Vec<SnapshotName> = day(2026, 11, 1)
            .iter_days()
            .take(30)
            .flat_map(|date| (1..=3).map(move |seq| SnapshotName::new(date, seq)))
            .collect();
        let plan = plan_calendar(&snapshots, CalendarPolicy::default(), today);
        assert_eq!(plan.entries.len(), 90);
        assert_eq!(plan.to_keep().len(), 14 * 3 + 16);
        assert_eq!(plan.to_remove().len(), 16 * 2);

        for entry in &plan.entries {
            let date = entry.name.date();
            let seq = entry.name.seq();
            let want = if date > day(2026, 11, 16) {
                within_14()
            } else if seq < 3 {
                not_last_of_day(entry.name.as_str())
            } else if date == day(2026, 11, 1) {
                keep(KeepReason::Oldest)
            } else {
                last_of_day(entry.name.as_str())
            };
            assert_eq!(entry.mark, want, "{}", entry.name);
        }
        assert_eq!(
            kept(&plan),
            reference_calendar_keep(&snapshots, &CalendarPolicy::default(), today)
        );
    }

    #[test]
    fn mounted_snapshot_the_policy_would_remove_is_protected() {
        let today = day(2026, 11, 30);
        let snapshots: Vec<SnapshotName> = day(2026, 11, 1)
            .iter_days()
            .take(30)
            .flat_map(|date| (1..=3).map(move |seq| SnapshotName::new(date, seq)))
            .collect();
        let protected = BTreeMap::from([
            (name("20261105-2"), ProtectReason::Mounted),
            (name("20261120-2"), ProtectReason::Mounted),
        ]);
        let plan = plan(
            &snapshots,
            &Policy::Calendar(CalendarPolicy::default()),
            today,
            &protected,
        );
        let mark_of = |s: &str| {
            &plan
                .entries
                .iter()
                .find(|e| e.name.as_str() == s)
                .unwrap()
                .mark
        };
        assert_eq!(
            mark_of("20261105-2"),
            &Mark::Protected(ProtectReason::Mounted)
        );
        assert_eq!(mark_of("20261105-1"), &not_last_of_day("20261105-1"));
        // Kept by the policy: the protection is not shown.
        assert_eq!(mark_of("20261120-2"), &within_14());
        assert_eq!(plan.to_remove().len(), 16 * 2 - 1);
        assert!(!plan.to_remove().contains(&&name("20261105-2")));
    }

    /// The walk and the per-snapshot oracle agree on many random histories
    /// and settings.
    #[test]
    fn plan_matches_oracle_on_random_histories() {
        let mut rng = StdRng::seed_from_u64(0x5742_7441);
        let epoch = day(2020, 1, 1);
        for round in 0..3000 {
            let today = epoch + Days::new(rng.gen_range(0..3650));
            let policy = if rng.gen_bool(0.3) {
                CalendarPolicy::default()
            } else {
                CalendarPolicy {
                    duplicate_days: rng.gen_range(0..40),
                    daily_weeks: rng.gen_range(0..12),
                    weekly_months: rng.gen_range(0..20),
                }
            };
            // Spread over up to 3 years back and a few days ahead; sparse or
            // dense, with up to 4 snapshots on a day.
            let span: u64 = *[20, 120, 400, 1100].get(rng.gen_range(0..4)).unwrap();
            let count = rng.gen_range(0..120);
            let mut snapshots = Vec::with_capacity(count);
            for _ in 0..count {
                let back = rng.gen_range(0..span);
                let date = if rng.gen_bool(0.02) {
                    today + Days::new(rng.gen_range(1..5))
                } else {
                    today - Days::new(back)
                };
                let seq = rng.gen_range(1..=4);
                snapshots.push(SnapshotName::new(date, seq));
            }

            let plan = plan_calendar(&snapshots, policy, today);
            let oracle = reference_calendar_keep(&snapshots, &policy, today);
            assert_eq!(
                kept(&plan),
                oracle,
                "round {round}: today {today}, {policy:?}, {snapshots:?}"
            );
            let distinct: BTreeSet<&SnapshotName> = snapshots.iter().collect();
            assert_eq!(plan.entries.len(), distinct.len(), "round {round}");
        }
    }

    /// The oracle is not a copy of the walk: it notices when Deltaic's
    /// unfixed month comparison would differ.
    #[test]
    fn oracle_disagrees_with_unfixed_deltaic_on_a_year_gap() {
        let snapshots = [name("20250106-1"), name("20260105-1")];
        let kept = reference_calendar_keep(&snapshots, &CalendarPolicy::default(), day(2030, 1, 1));
        assert!(kept.contains(&name("20260105-1")));
    }
}
