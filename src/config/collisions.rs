//! Units that would share a directory, or nest one inside another: an error
//! naming both places.

use super::entries::Defined;
use super::reader::{KeyPath, Reader};
use super::unit::UnitPath;
use std::collections::BTreeMap;

/// Two units that would share a directory (two hosts with one alias, a bucket
/// listed twice) are an error naming both places.
pub(super) fn check_unit_collisions(r: &mut Reader, units: &[Defined]) {
    let mut seen: BTreeMap<&UnitPath, (u64, &KeyPath)> = BTreeMap::new();
    for Defined { unit, line, path } in units {
        if let Some((first_line, first_path)) = seen.get(unit) {
            r.error(
                *line,
                path,
                format!(
                    "unit {unit} is already defined by {} (line {first_line}): two units cannot share one directory",
                    first_path.as_str()
                ),
            );
        } else {
            seen.insert(unit, (*line, path));
        }
        // A unit nested inside another (github/org and github/org/repo is by design; others are not).
        for (other, (oline, opath)) in &seen {
            if *other != unit && unit.source() != "github" {
                let (a, b) = (unit.as_str(), other.as_str());
                if a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/")) {
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
    }
}
