//! Units that would share a directory, or nest one inside another: an error
//! naming both places.
//!
//! Linear in the number of units (times the log of a map lookup): a unit is
//! compared only with the units that could collide with it, found by lookup
//! (the same path, each of its parent paths) and by one range of the sorted
//! map (the paths under it), never with every unit defined before it.

use super::entries::Defined;
use super::reader::{KeyPath, Reader};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Two units that would share a directory (two hosts with one alias, a bucket
/// listed twice) are an error naming both places; so is a unit nested inside
/// another one (except under github, where `github/<org>/<repo>` units live
/// inside `github/<org>` by design). Each unit is compared with those defined
/// before it; its overlaps are reported in the order of the other unit's path.
pub(super) fn check_unit_collisions(r: &mut Reader, units: &[Defined]) {
    // why: keyed by the path's text, whose order is UnitPath's, so that the
    // paths under `a` are the one contiguous range starting at `a/`
    let mut seen: BTreeMap<&str, (u64, &KeyPath)> = BTreeMap::new();
    for Defined { unit, line, path } in units {
        let a = unit.as_str();
        if let Some((first_line, first_path)) = seen.get(a) {
            r.error(
                *line,
                path,
                format!(
                    "unit {unit} is already defined by {} (line {first_line}): two units cannot share one directory",
                    first_path.as_str()
                ),
            );
        } else {
            seen.insert(a, (*line, path));
        }
        // why: a path and one nested in it share their first component, so
        // skipping github units leaves every other pair checked
        if unit.source() == "github" {
            continue;
        }
        let mut overlaps = Vec::new();
        // The units `a` is inside: each parent path, shortest (first in order) first.
        for (end, _) in a.match_indices('/') {
            if let Some((k, v)) = seen.get_key_value(&a[..end]) {
                overlaps.push((*k, *v));
            }
        }
        // The units inside `a`.
        let under = format!("{a}/");
        overlaps.extend(
            seen.range::<str, _>((Bound::Included(under.as_str()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&under))
                .map(|(k, v)| (*k, *v)),
        );
        for (other, (oline, opath)) in overlaps {
            r.error(
                *line,
                path,
                format!(
                    "unit {unit} overlaps unit {other} defined by {} (line {oline})",
                    opath.as_str()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnitPath;
    use std::fmt::Write as _;

    fn defined(units: &[&str]) -> Vec<Defined> {
        units
            .iter()
            .enumerate()
            .map(|(i, u)| Defined {
                unit: UnitPath::parse(u).unwrap(),
                line: i as u64 + 1,
                path: KeyPath::root().key(u),
            })
            .collect()
    }

    fn problems(units: &[&str]) -> Vec<(u64, String)> {
        let mut r = Reader::default();
        check_unit_collisions(&mut r, &defined(units));
        r.problems
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect()
    }

    /// The check as it was written first: every unit against every unit
    /// before it. The fast one must say exactly the same.
    fn quadratic(units: &[&str]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for (i, a) in units.iter().enumerate() {
            let line = i as u64 + 1;
            if let Some(first) = seen.get(a) {
                let key = KeyPath::root().key(a);
                out.push((line, format!("unit {a} is already defined by {} (line {first}): two units cannot share one directory", key.as_str())));
            } else {
                seen.insert(a, line);
            }
            for (b, oline) in &seen {
                if b != a
                    && !a.starts_with("github/")
                    && (a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/")))
                {
                    let key = KeyPath::root().key(b);
                    out.push((
                        line,
                        format!(
                            "unit {a} overlaps unit {b} defined by {} (line {oline})",
                            key.as_str()
                        ),
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn same_messages_as_comparing_every_pair() {
        let cases: &[&[&str]] = &[
            &["rsync/a", "rsync/b", "rsync/a"],
            &[
                "dump/a/b",
                "dump/a",
                "dump/a/b/c",
                "dump/a/c",
                "dump/ab",
                "dump/a",
            ],
            &["dump/a", "dump/a-b", "dump/a/x", "dump/a.b/y", "dump/a0"],
            &["github/o", "github/o/r", "github/o", "dump/o/r", "dump/o"],
            &[
                "rbd/p/images/x",
                "rbd/p",
                "rbd/p/images",
                "rbd/p/images/x/y",
            ],
            &[],
        ];
        for units in cases {
            assert_eq!(problems(units), quadratic(units), "{units:?}");
        }
    }

    #[test]
    fn nested_units_are_reported_except_under_github() {
        let got = problems(&["dump/a", "dump/a/b", "github/o", "github/o/r"]);
        assert_eq!(
            got,
            vec![(
                2,
                "unit dump/a/b overlaps unit dump/a defined by \"dump/a\" (line 1)".to_owned()
            )]
        );
    }

    /// A config of 4,000 units (2,000 dump units, then 2,000 rsync hosts)
    /// and, when `last` is given, one more rsync host at the end of the file.
    fn big_config(last: Option<&str>) -> String {
        let mut t = String::from(
            "settings:\n  root: /nonexistent/strata-test\n  snapshot-store: dir\ndump:\n",
        );
        for i in 0..2000 {
            let _ = writeln!(t, "  u{i}:\n    command: [echo, {i}]");
        }
        t.push_str("rsync:\n");
        for i in 0..2000 {
            let _ = writeln!(t, "  h{i}.example.org: {{mounts: [/]}}");
        }
        if let Some(last) = last {
            t.push_str(last);
        }
        t
    }

    #[test]
    fn four_thousand_units_parse_and_a_duplicate_at_the_end_is_found() {
        let path = std::path::Path::new("/nonexistent/strata.yaml");
        let c = crate::config::parse(&big_config(None), path).expect("valid");
        assert_eq!(c.dump.len() + c.rsync.len(), 4000);

        let text = big_config(Some("  last.example.org: {mounts: [/], alias: h0}\n"));
        let last_line = text.lines().count() as u64;
        let first_line = 4 + 2 * 2000 + 2;
        let Err(crate::config::ConfigError::Invalid { problems, .. }) =
            crate::config::parse(&text, path)
        else {
            panic!("a duplicate unit must make the config invalid");
        };
        let got: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.path.as_str().to_owned(), p.message.clone()))
            .collect();
        assert_eq!(
            got,
            vec![(
                last_line,
                "rsync.\"last.example.org\"".to_owned(),
                format!(
                    "unit rsync/h0 is already defined by rsync.\"h0.example.org\" (line {first_line}): two units cannot share one directory"
                ),
            )]
        );
    }

    #[test]
    fn four_thousand_units_then_a_nested_one_at_the_end() {
        // why: no section of a config file can make a unit nested in another
        // (every component is one key and holds no `/`), so the units of a
        // parsed file are handed to the check with nested ones appended
        let path = std::path::Path::new("/nonexistent/strata.yaml");
        let c = crate::config::parse(&big_config(None), path).expect("valid");
        let mut units: Vec<Defined> = c
            .dump
            .iter()
            .map(|d| &d.unit)
            .chain(c.rsync.iter().map(|h| &h.unit))
            .enumerate()
            .map(|(i, u)| Defined {
                unit: u.clone(),
                line: i as u64 + 1,
                path: KeyPath::root().key(u.as_str()),
            })
            .collect();
        for (i, u) in ["github/o", "github/o/r", "dump/u1999/x"]
            .iter()
            .enumerate()
        {
            units.push(Defined {
                unit: UnitPath::parse(u).unwrap(),
                line: 5000 + i as u64,
                path: KeyPath::root().key(u),
            });
        }
        let mut r = Reader::default();
        check_unit_collisions(&mut r, &units);
        let got: Vec<_> = r
            .problems
            .iter()
            .map(|p| (p.line, p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(
                5002,
                "unit dump/u1999/x overlaps unit dump/u1999 defined by \"dump/u1999\" (line 2000)"
            )]
        );
    }
}
