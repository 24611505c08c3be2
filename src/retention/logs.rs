//! Which unit logs to delete (`gc-log-distinct-days`), as Deltaic's
//! `prune_logs`, without touching the filesystem.
//!
//! A unit's log directory holds files named after the day of the run,
//! `YYYYMMDD.out` and `YYYYMMDD.err`. The caller lists one directory, asks
//! [`logs_to_remove`], and deletes what it returns.
//!
//! A file counts as a log when its name is eight ASCII digits, optionally
//! followed by one extension (`.` and anything without a further `.`); the
//! digits are its *day stem*. Any other file is never returned and does not
//! count as a day. (Deltaic counts every file stem as a day and would delete
//! stray files; strata leaves them alone.) The digits are not checked to be
//! a real date: they only need to sort.

use std::collections::BTreeSet;

/// The log files to delete: all except those of the newest `distinct_days`
/// distinct day stems. Sorted, without duplicates. `distinct_days` of 0
/// returns every log.
#[must_use]
pub fn logs_to_remove(file_names: &[String], distinct_days: usize) -> Vec<String> {
    let days: BTreeSet<&str> = file_names.iter().filter_map(|n| day_stem(n)).collect();
    let kept_days: BTreeSet<&str> = days.iter().rev().take(distinct_days).copied().collect();
    let doomed: BTreeSet<&String> = file_names
        .iter()
        .filter(|name| day_stem(name).is_some_and(|day| !kept_days.contains(day)))
        .collect();
    doomed.into_iter().cloned().collect()
}

/// The eight-digit day of a log file name, if it is one.
fn day_stem(file_name: &str) -> Option<&str> {
    // why: like Python's splitext, only the last extension is dropped, so
    // `20260101.out.gz` has the stem `20260101.out` and is not a log.
    let stem = match file_name.rsplit_once('.') {
        Some((stem, _extension)) => stem,
        None => file_name,
    };
    (stem.len() == 8 && stem.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn logs_to_remove_table() {
        let cases: &[(&[&str], usize, &[&str])] = &[
            (&[], 60, &[]),
            (&[], 0, &[]),
            (&["20260101.out", "20260101.err", "20260102.out"], 60, &[]),
            (
                &[
                    "20260102.out",
                    "20260101.err",
                    "20260103.err",
                    "20260101.out",
                    "20260103.out",
                ],
                2,
                &["20260101.err", "20260101.out"],
            ),
            (
                &["20260101.out", "20260102.out", "20260103.out"],
                1,
                &["20260101.out", "20260102.out"],
            ),
            (
                &["20260101.out", "20260101.err"],
                0,
                &["20260101.err", "20260101.out"],
            ),
            // Days are distinct stems, not consecutive dates.
            (
                &[
                    "20250101.out",
                    "20251231.err",
                    "20260301.out",
                    "20260301.err",
                ],
                2,
                &["20250101.out"],
            ),
            // Stray files are neither returned nor counted as days.
            (
                &[
                    "20260101.out",
                    "20260102.out",
                    "notes.txt",
                    "zzz",
                    "20260103.out.gz",
                    "2026010.out",
                    "202601011.out",
                    "2026-01-01.out",
                    ".20260101",
                    "20260103.tmp",
                ],
                2,
                &["20260101.out"],
            ),
            // A bare day stem without an extension is a log.
            (&["20260101", "20260102.out"], 1, &["20260101"]),
            // Duplicates in the listing come out once.
            (
                &["20260101.out", "20260101.out", "20260102.out"],
                1,
                &["20260101.out"],
            ),
        ];
        for &(names, distinct_days, want) in cases {
            assert_eq!(
                logs_to_remove(&strings(names), distinct_days),
                strings(want),
                "{names:?} keeping {distinct_days} days"
            );
        }
    }

    #[test]
    fn day_stem_table() {
        let cases = [
            ("20260101.out", Some("20260101")),
            ("20260101.err", Some("20260101")),
            ("20260101", Some("20260101")),
            ("20260101.", Some("20260101")),
            ("20260101.out.gz", None),
            ("2026010a.out", None),
            ("٢٠٢٦٠١٠١.out", None),
            ("", None),
            (".out", None),
        ];
        for (name, want) in cases {
            assert_eq!(day_stem(name), want, "{name}");
        }
    }
}
