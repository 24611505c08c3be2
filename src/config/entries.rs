//! The skeleton every section of named entries shares (`host: {fields}`,
//! `pool: {fields}`, `profile: {fields}`): the entry's key path, its fields
//! opened, read, unknown keys reported, then the unit path made and recorded
//! with its line for the collision check. Written once here, so a source's
//! file holds only what is particular to it: its keys and its unit.

use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;

/// Where a unit was defined: its line and key path, to name both places when
/// two units collide.
#[derive(Debug, Clone)]
pub(super) struct Defined {
    pub unit: UnitPath,
    pub line: u64,
    pub path: KeyPath,
}

/// What a source's section yields: its entries in file order (hosts, pools,
/// buckets) and where each of their units was defined.
pub(super) struct Units<T> {
    pub items: Vec<T>,
    pub defined: Vec<Defined>,
}

impl<T> Default for Units<T> {
    fn default() -> Self {
        Units {
            items: Vec::new(),
            defined: Vec::new(),
        }
    }
}

impl<T> Units<T> {
    /// Note that `unit` is defined at `line` by the key `path`.
    pub fn record(&mut self, unit: &UnitPath, line: u64, path: KeyPath) {
        self.defined.push(Defined {
            unit: unit.clone(),
            line,
            path,
        });
    }
}

/// One `name: {fields}` entry, as a section's reader sees it.
pub(super) struct Entry<'a> {
    /// The key: a host, an organization, a pool, a profile.
    pub name: &'a str,
    /// The key's line.
    pub line: u64,
    /// The key path of the entry (`rsync."host1.example.org"`).
    pub path: KeyPath,
}

/// For each `name: {fields}` entry of the mapping `node`, in file order: open
/// its fields, `read` them, report the keys `read` did not ask for, then hand
/// what it read to `done`. An entry that is not a mapping is reported and
/// skipped. Returns whether every entry was a mapping.
pub(super) fn each_entry<'a, R>(
    r: &mut Reader,
    node: &'a Node,
    path: &KeyPath,
    mut read: impl FnMut(&mut Reader, &Entry<'a>, &mut Fields<'a>) -> R,
    mut done: impl FnMut(&mut Reader, Entry<'a>, R),
) -> bool {
    let mut all = true;
    for (key, n) in r.named_entries(node, path) {
        let entry = Entry {
            name: &key.name,
            line: key.line,
            path: path.key(&key.name),
        };
        let Some(mut f) = r.fields(n, &entry.path) else {
            all = false;
            continue;
        };
        let got = read(r, &entry, &mut f);
        f.finish(r);
        done(r, entry, got);
    }
    all
}

/// One entry's unit before its path is checked.
pub(super) struct Draft<B> {
    /// The unit's name under its source (`rsync/<name>`).
    pub name: String,
    /// The key blamed when the name cannot be a directory name.
    pub blame: KeyPath,
    /// Builds the unit from its path; `None` when one of the entry's values
    /// was wrong (already reported). The path is checked even then, so that
    /// a bad name is reported together with a bad value.
    pub build: B,
}

/// A section of `name: {fields}` entries holding one unit
/// `<source>/<draft name>` each (rsync hosts, github organizations, dump
/// units). `read` reads one entry's fields; `None` skips the entry (a problem
/// was reported).
pub(super) fn named_units<'a, T, B>(
    r: &mut Reader,
    node: &'a Node,
    path: &KeyPath,
    source: &str,
    read: impl FnMut(&mut Reader, &Entry<'a>, &mut Fields<'a>) -> Option<Draft<B>>,
) -> Units<T>
where
    B: FnOnce(UnitPath) -> Option<T>,
{
    let mut out = Units::default();
    each_entry(r, node, path, read, |r, entry, draft| {
        let Some(draft) = draft else {
            return;
        };
        let Some(unit) = unit_path(r, &[source, &draft.name], entry.line, &draft.blame) else {
            return;
        };
        if let Some(item) = (draft.build)(unit.clone()) {
            out.record(&unit, entry.line, entry.path);
            out.items.push(item);
        }
    });
    out
}

/// Make a unit path from parts, reporting an unsafe name at `line`.
pub(super) fn unit_path(
    r: &mut Reader,
    parts: &[&str],
    line: u64,
    path: &KeyPath,
) -> Option<UnitPath> {
    match UnitPath::from_parts(parts) {
        Ok(u) => Some(u),
        Err(e) => {
            r.error(
                line,
                path,
                format!("{e}: it must be usable as a directory name"),
            );
            None
        }
    }
}
