//! The top-level `appliances:` section: several appliances sharing one
//! backup root (on CephFS), each owning the units its globs match.
//!
//! ```yaml
//! appliances:
//!   backup1: [rsync/*, dump/*]
//!   backup2: [rbd/*, github/*]
//! ```
//!
//! Owns: the names (they become file names under `.strata/`), the globs,
//! and the rule that every configured unit is owned by exactly one
//! appliance. Units found only at run time (`github/<org>/<repo>`) belong
//! to the first appliance, in file order, whose globs match them, or else
//! to the owner of their configured prefix ([`Appliances::owner`]).

use super::UnitPath;
use super::node::Node;
use super::reader::{KeyPath, Reader};
use serde::Serialize;

/// One appliance and the globs of the units it owns.
#[derive(Debug, Clone, Serialize)]
pub struct Appliance {
    pub name: String,
    /// The globs as written.
    pub units: Vec<String>,
    #[serde(skip)]
    pub line: u64,
    #[serde(skip)]
    patterns: Vec<glob::Pattern>,
}

impl Appliance {
    /// Whether one of its globs matches `unit`, or, for a prefix whose
    /// units are listed at run time (`github/<org>`), the units under it.
    #[must_use]
    pub fn owns(&self, unit: &str) -> bool {
        let under = format!("{unit}/");
        self.patterns
            .iter()
            .any(|p| p.matches(unit) || p.matches(&under))
    }
}

/// The appliances in file order; empty when the section is absent (one
/// appliance owns everything).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Appliances(pub Vec<Appliance>);

impl Appliances {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Appliance> {
        self.0.iter().find(|a| a.name == name)
    }

    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|a| a.name.as_str()).collect()
    }

    /// The appliance that backs up `unit`: the first whose globs match it,
    /// else the first that owns one of its prefixes (`github/org` for
    /// `github/org/repo`).
    #[must_use]
    pub fn owner(&self, unit: &str) -> Option<&Appliance> {
        if let Some(a) = self.0.iter().find(|a| a.owns(unit)) {
            return Some(a);
        }
        let mut prefix = unit;
        while let Some((p, _)) = prefix.rsplit_once('/') {
            if let Some(a) = self.0.iter().find(|a| a.owns(p)) {
                return Some(a);
            }
            prefix = p;
        }
        None
    }
}

/// Whether `name` may name an appliance: it becomes a file name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(super) fn read(r: &mut Reader, node: &Node, path: &KeyPath) -> Appliances {
    let mut out = Vec::new();
    for (key, value) in r.named_entries(node, path) {
        let at = path.key(&key.name);
        if !valid_name(&key.name) {
            r.error(
                key.line,
                &at,
                format!(
                    "`{}` cannot name an appliance: use letters, digits, `.`, `_` and `-` \
                     (at most 64, not starting with `.` or `-`), as in a host name",
                    key.name
                ),
            );
            continue;
        }
        let Some(globs) = r.strings(value, &at) else {
            continue;
        };
        if globs.is_empty() {
            r.error(
                key.line,
                &at,
                "lists no units: give the globs of the unit paths it owns, e.g. [rsync/*]",
            );
            continue;
        }
        let mut patterns = Vec::new();
        for (i, g) in globs.iter().enumerate() {
            match glob::Pattern::new(g) {
                Ok(p) => patterns.push(p),
                Err(e) => r.error(
                    value.line,
                    &at.index(i),
                    format!("`{g}` is not a glob: {e}"),
                ),
            }
        }
        if patterns.len() == globs.len() {
            out.push(Appliance {
                name: key.name.clone(),
                units: globs,
                line: key.line,
                patterns,
            });
        }
    }
    Appliances(out)
}

/// Every configured unit is owned by exactly one appliance.
pub(super) fn check_ownership(
    r: &mut Reader,
    appliances: &Appliances,
    defined: &[(UnitPath, u64)],
    path: &KeyPath,
) {
    if appliances.is_empty() {
        return;
    }
    for (unit, line) in defined {
        let owners: Vec<&Appliance> = appliances
            .0
            .iter()
            .filter(|a| a.owns(unit.as_str()))
            .collect();
        match owners.as_slice() {
            [_] => {}
            [] => r.error(
                *line,
                path,
                format!(
                    "unit {unit} is owned by no appliance: add a glob matching it to one of {}",
                    appliances.names().join(", ")
                ),
            ),
            [a, b, ..] => r.error(
                *line,
                path,
                format!(
                    "unit {unit} is owned by more than one appliance: {} (line {}) and {} (line {}); \
                     every unit must be owned by exactly one",
                    a.name, a.line, b.name, b.line
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    use crate::config::problem_lines as problems;

    const BASE: &str = "settings:\n  root: /nonexistent\n  snapshot-store: cephfs\n  gc-policy: hanoi\ndump:\n  a:\n    command: [true]\n  b:\n    command: [true]\n";

    #[test]
    fn every_unit_is_owned_exactly_once() {
        let ok = format!("{BASE}appliances:\n  one: [dump/a]\n  two: ['dump/b*']\n");
        assert_eq!(problems(&ok), Vec::<String>::new());
        let c = parse(&ok, Path::new("/nonexistent/c.yaml")).unwrap();
        assert_eq!(c.appliances.owner("dump/b").unwrap().name, "two");
        assert_eq!(c.appliances.names(), ["one", "two"]);

        let none = format!("{BASE}appliances:\n  one: [dump/a]\n");
        assert_eq!(
            problems(&none),
            [
                "8: appliances: unit dump/b is owned by no appliance: add a glob matching it to one of one"
            ]
        );
        let twice = format!("{BASE}appliances:\n  one: ['dump/*']\n  two: [dump/b]\n");
        assert_eq!(
            problems(&twice),
            [
                "8: appliances: unit dump/b is owned by more than one appliance: one (line 11) and two (line 12); every unit must be owned by exactly one"
            ]
        );
    }

    #[test]
    fn names_and_globs_are_checked() {
        let bad = format!(
            "{BASE}appliances:\n  ../x: [dump/a]\n  two: []\n  three: ['dump/[']\n  four: ['*']\n"
        );
        let p = problems(&bad);
        assert!(
            p[0].starts_with("11: appliances.\"../x\": `../x` cannot name an appliance"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("12: appliances.two: lists no units"),
            "{p:?}"
        );
        assert!(
            p[2].starts_with("13: appliances.three[0]: `dump/[` is not a glob"),
            "{p:?}"
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn a_shared_root_needs_a_shared_store() {
        let text = BASE.replace("cephfs", "btrfs") + "appliances:\n  one: ['*']\n";
        assert_eq!(
            problems(&text),
            [
                "3: settings.snapshot-store: several appliances need a root they all mount: snapshot-store cephfs (or dir, on a shared file system); btrfs is one machine's"
            ]
        );
    }

    #[test]
    fn units_found_at_run_time_belong_to_the_owner_of_their_prefix() {
        let text = "settings:\n  root: /nonexistent\n  snapshot-store: cephfs\n  gc-policy: hanoi\n  github-token: t\ngithub:\n  org:\ndump:\n  a:\n    command: [true]\nappliances:\n  one: [github/org]\n  two: ['dump/*']\n";
        assert_eq!(problems(text), Vec::<String>::new());
        let c = parse(text, Path::new("/nonexistent/c.yaml")).unwrap();
        assert_eq!(c.appliances.owner("github/org/repo").unwrap().name, "one");
        assert!(c.appliances.owner("rbd/x").is_none());
    }
}
