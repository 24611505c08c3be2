//! The name of a snapshot: `YYYYMMDD-N`, as Deltaic names its LVs.
//!
//! Owns the only way to build a [`SnapshotName`] from text ([`SnapshotName::parse`])
//! and the choice of the next name for a day ([`SnapshotName::next_for_day`]).
//! It does not know where snapshots live or how they are listed.
//!
//! Invariants of every `SnapshotName` value:
//! - its text matches `^[0-9]{8}-[1-9][0-9]{0,8}$`;
//! - the eight digits are a real calendar date `YYYYMMDD` (year 0000..=9999);
//! - the text is canonical: it is exactly what [`SnapshotName::new`] would
//!   print for its date and sequence number, so equal `(date, seq)` means
//!   equal text and the derived equality and hash agree with the ordering.
//!
//! Names order by date, then by sequence number as a number:
//! `20260101-9 < 20260101-10 < 20260102-1`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest sequence number a name can carry: nine digits.
const MAX_SEQ: u32 = 999_999_999;

/// What the text of a valid name looks like, for error messages.
const EXPECTED: &str = "YYYYMMDD-N: a calendar date, a dash, and a number from 1 \
                        with no leading zero and at most 9 digits";

/// Why a string is not a snapshot name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotNameError {
    /// The text does not have the shape `YYYYMMDD-N`.
    #[error("invalid snapshot name {name:?}: expected {EXPECTED}")]
    Malformed { name: String },
    /// The shape is right but the eight digits are not a calendar date.
    #[error("invalid snapshot name {name:?}: {digits} is not a calendar date (expected YYYYMMDD)")]
    NotADate { name: String, digits: String },
}

/// A validated snapshot name `YYYYMMDD-N`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SnapshotName {
    text: String,
    date: NaiveDate,
    seq: u32,
}

impl SnapshotName {
    /// Parses `YYYYMMDD-N`; accepts exactly `^[0-9]{8}-[1-9][0-9]{0,8}$`
    /// where the eight digits are a valid calendar date.
    ///
    /// # Errors
    /// [`SnapshotNameError::Malformed`] when the shape is wrong,
    /// [`SnapshotNameError::NotADate`] when the date part is not a real day.
    pub fn parse(name: &str) -> Result<SnapshotName, SnapshotNameError> {
        let malformed = || SnapshotNameError::Malformed {
            name: name.to_owned(),
        };
        let (digits, seq_text) = name.split_once('-').ok_or_else(malformed)?;
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if digits.len() != 8 || !all_digits(digits) {
            return Err(malformed());
        }
        // why: a leading zero (or "0") would give two texts for one number,
        // breaking the "one name per (date, seq)" invariant.
        if seq_text.is_empty()
            || seq_text.len() > 9
            || seq_text.starts_with('0')
            || !all_digits(seq_text)
        {
            return Err(malformed());
        }
        let seq: u32 = seq_text.parse().map_err(|_| malformed())?;

        let number = |range: std::ops::Range<usize>| -> u32 {
            digits[range]
                .bytes()
                .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
        };
        let not_a_date = || SnapshotNameError::NotADate {
            name: name.to_owned(),
            digits: digits.to_owned(),
        };
        let year = i32::try_from(number(0..4)).map_err(|_| not_a_date())?;
        let date =
            NaiveDate::from_ymd_opt(year, number(4..6), number(6..8)).ok_or_else(not_a_date)?;
        Ok(SnapshotName {
            text: name.to_owned(),
            date,
            seq,
        })
    }

    /// The name for snapshot number `seq` of day `date`.
    ///
    /// # Panics
    /// If `seq` is not in `1..=999_999_999` or the year of `date` is not in
    /// `0..=9999`: such a name cannot be written as `YYYYMMDD-N`. Callers
    /// pass dates from the clock and sequence numbers from
    /// [`SnapshotName::next_for_day`], which are always in range.
    #[must_use]
    pub fn new(date: NaiveDate, seq: u32) -> SnapshotName {
        assert!(
            (1..=MAX_SEQ).contains(&seq),
            "snapshot sequence number {seq} is outside 1..={MAX_SEQ}"
        );
        assert!(
            (0..=9999).contains(&date.year()),
            "snapshot date {date} has a year outside 0000..=9999"
        );
        SnapshotName {
            text: format!(
                "{:04}{:02}{:02}-{seq}",
                date.year(),
                date.month(),
                date.day()
            ),
            date,
            seq,
        }
    }

    /// The name for a new snapshot taken on `today`: one more than the
    /// highest sequence number `existing` holds for that day, or 1 if it holds
    /// none.
    ///
    /// Why not the smallest unused number, as Deltaic does: after a gap (a
    /// snapshot of today removed by hand) that would hand out a number that
    /// sorts before a snapshot taken earlier, and name order is what the
    /// retention policies read as time order. Only when the highest number
    /// is already 999999999 does this fall back to the smallest unused one.
    ///
    /// # Panics
    /// If every number `1..=999_999_999` is already used on `today`, or the
    /// year of `today` is outside `0..=9999` (see [`SnapshotName::new`]).
    #[must_use]
    pub fn next_for_day(existing: &[SnapshotName], today: NaiveDate) -> SnapshotName {
        let mut used: Vec<u32> = existing
            .iter()
            .filter(|name| name.date == today)
            .map(|name| name.seq)
            .collect();
        used.sort_unstable();
        used.dedup();
        let seq = match used.last() {
            None => 1,
            Some(&highest) if highest < MAX_SEQ => highest + 1,
            Some(_) => {
                // why: `used` is sorted and distinct, so the first position
                // whose value is not position + 1 marks the first gap.
                let mut candidate = 1;
                for &seq in &used {
                    if seq != candidate {
                        break;
                    }
                    candidate += 1;
                }
                candidate
            }
        };
        SnapshotName::new(today, seq)
    }

    /// The day the snapshot was taken.
    #[must_use]
    pub fn date(&self) -> NaiveDate {
        self.date
    }

    /// The snapshot's number within its day, from 1.
    #[must_use]
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The name as text, `YYYYMMDD-N`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for SnapshotName {
    fn cmp(&self, other: &Self) -> Ordering {
        // why: numeric, not textual: "20260101-10" is newer than "20260101-9".
        (self.date, self.seq).cmp(&(other.date, other.seq))
    }
}

impl PartialOrd for SnapshotName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SnapshotName").field(&self.text).finish()
    }
}

impl FromStr for SnapshotName {
    type Err = SnapshotNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SnapshotName::parse(s)
    }
}

impl AsRef<str> for SnapshotName {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl Serialize for SnapshotName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SnapshotName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SnapshotName::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn name(s: &str) -> SnapshotName {
        SnapshotName::parse(s).unwrap()
    }

    #[test]
    fn parse_accepts_valid_names() {
        let cases: &[(&str, (i32, u32, u32), u32)] = &[
            ("20260101-1", (2026, 1, 1), 1),
            ("20261231-9", (2026, 12, 31), 9),
            ("20240229-10", (2024, 2, 29), 10),
            ("20000229-123", (2000, 2, 29), 123),
            ("19700101-999999999", (1970, 1, 1), 999_999_999),
            ("00000101-1", (0, 1, 1), 1),
            ("99991231-5", (9999, 12, 31), 5),
        ];
        for &(text, (y, m, d), seq) in cases {
            let parsed = SnapshotName::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.date(), day(y, m, d), "{text}");
            assert_eq!(parsed.seq(), seq, "{text}");
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(SnapshotName::new(day(y, m, d), seq), parsed, "{text}");
        }
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        let cases = [
            "",
            "-",
            "20260101",
            "20260101-",
            "20260101-0",
            "20260101-01",
            "20260101-1000000000",
            "20260101-4294967296",
            "2026011-1",
            "202601011-1",
            "20260101-1-2",
            "20260101--1",
            "20260101-+1",
            "+2026010-1",
            "2026o101-1",
            "20260101-1a",
            " 20260101-1",
            "20260101-1 ",
            "20260101-1\n",
            "20260101_1",
            "../20260101-1",
            "20260101-١",
            "２0260101-1",
        ];
        for text in cases {
            match SnapshotName::parse(text) {
                Err(SnapshotNameError::Malformed { name }) => assert_eq!(name, text),
                other => panic!("{text:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn parse_rejects_impossible_dates() {
        let cases = [
            "20260229-1",
            "21000229-1",
            "20261301-1",
            "20260001-1",
            "20260100-1",
            "20260431-1",
            "20261232-1",
            "00000000-1",
        ];
        for text in cases {
            match SnapshotName::parse(text) {
                Err(SnapshotNameError::NotADate { name, digits }) => {
                    assert_eq!(name, text);
                    assert_eq!(digits, &text[..8]);
                }
                other => panic!("{text:?}: expected NotADate, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_quote_the_name_and_say_what_is_expected() {
        let malformed = SnapshotName::parse("2026-01-01").unwrap_err().to_string();
        assert!(malformed.contains("\"2026-01-01\""), "{malformed}");
        assert!(malformed.contains("YYYYMMDD-N"), "{malformed}");

        let not_a_date = SnapshotName::parse("20260230-1").unwrap_err().to_string();
        assert!(not_a_date.contains("\"20260230-1\""), "{not_a_date}");
        assert!(
            not_a_date.contains("20260230 is not a calendar date"),
            "{not_a_date}"
        );
        assert!(not_a_date.contains("YYYYMMDD"), "{not_a_date}");

        // why: a name with a newline must not break a log line.
        let control = SnapshotName::parse("x\ny").unwrap_err().to_string();
        assert!(control.contains(r#""x\ny""#), "{control}");
    }

    #[test]
    fn orders_by_date_then_seq_numerically() {
        let mut names: Vec<SnapshotName> = [
            "20260102-1",
            "20260101-10",
            "20251231-2",
            "20260101-9",
            "20260101-1",
            "20251231-11",
        ]
        .into_iter()
        .map(name)
        .collect();
        names.sort();
        let sorted: Vec<&str> = names.iter().map(SnapshotName::as_str).collect();
        assert_eq!(
            sorted,
            [
                "20251231-2",
                "20251231-11",
                "20260101-1",
                "20260101-9",
                "20260101-10",
                "20260102-1",
            ]
        );
        assert!(name("20260101-10") > name("20260101-9"));
        assert_eq!(name("20260101-3").cmp(&name("20260101-3")), Ordering::Equal);
    }

    #[test]
    fn equal_names_hash_equal() {
        let set: HashSet<SnapshotName> = [
            name("20260101-1"),
            SnapshotName::new(day(2026, 1, 1), 1),
            name("20260101-2"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn new_prints_canonical_text() {
        let cases: &[((i32, u32, u32), u32, &str)] = &[
            ((2026, 1, 1), 1, "20260101-1"),
            ((2026, 11, 9), 42, "20261109-42"),
            ((987, 3, 4), 7, "09870304-7"),
            ((0, 12, 31), 999_999_999, "00001231-999999999"),
        ];
        for &((y, m, d), seq, text) in cases {
            let built = SnapshotName::new(day(y, m, d), seq);
            assert_eq!(built.as_str(), text);
            assert_eq!(name(text), built);
        }
    }

    #[test]
    #[should_panic(expected = "outside 1..=")]
    fn new_rejects_seq_zero() {
        let _ = SnapshotName::new(day(2026, 1, 1), 0);
    }

    #[test]
    #[should_panic(expected = "outside 1..=")]
    fn new_rejects_ten_digit_seq() {
        let _ = SnapshotName::new(day(2026, 1, 1), 1_000_000_000);
    }

    #[test]
    #[should_panic(expected = "year outside")]
    fn new_rejects_five_digit_year() {
        let _ = SnapshotName::new(day(10_000, 1, 1), 1);
    }

    #[test]
    fn next_for_day_table() {
        let today = day(2026, 11, 1);
        let cases: &[(&[&str], &str)] = &[
            (&[], "20261101-1"),
            (&["20261031-1", "20261031-2"], "20261101-1"),
            (&["20261101-1"], "20261101-2"),
            (&["20261101-2", "20261101-1", "20261031-7"], "20261101-3"),
            (&["20261101-9"], "20261101-10"),
            // A gap: numbers keep growing so name order stays time order.
            (&["20261101-1", "20261101-3"], "20261101-4"),
            (&["20261101-3"], "20261101-4"),
            (&["20261102-5"], "20261101-1"),
            (&["20261101-1", "20261101-1"], "20261101-2"),
            // At the top of the range: the smallest free number.
            (&["20261101-999999999"], "20261101-1"),
            (
                &["20261101-1", "20261101-2", "20261101-999999999"],
                "20261101-3",
            ),
        ];
        for &(existing, want) in cases {
            let existing: Vec<SnapshotName> = existing.iter().map(|s| name(s)).collect();
            assert_eq!(
                SnapshotName::next_for_day(&existing, today).as_str(),
                want,
                "{existing:?}"
            );
        }
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let original = name("20261101-12");
        let json = serde_json::to_string(&original).unwrap();
        assert_eq!(json, r#""20261101-12""#);
        let back: SnapshotName = serde_json::from_str(&json).unwrap();
        assert_eq!(back, original);

        let list: Vec<SnapshotName> =
            serde_json::from_str(r#"["20261101-1","20261101-2"]"#).unwrap();
        assert_eq!(list, [name("20261101-1"), name("20261101-2")]);
    }

    #[test]
    fn deserialize_validates() {
        for bad in [r#""20261301-1""#, r#""20261101-0""#, r#""latest""#, "17"] {
            let result: Result<SnapshotName, _> = serde_json::from_str(bad);
            assert!(result.is_err(), "{bad} was accepted");
        }
        let err = serde_json::from_str::<SnapshotName>(r#""20261301-1""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"20261301-1\""), "{err}");
    }

    #[test]
    fn from_str_and_debug() {
        let parsed: SnapshotName = "20261101-3".parse().unwrap();
        assert_eq!(parsed, name("20261101-3"));
        assert_eq!(format!("{parsed:?}"), r#"SnapshotName("20261101-3")"#);
        assert!("nope".parse::<SnapshotName>().is_err());
    }
}
