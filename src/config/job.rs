//! The config a run hands one unit's child: the original file cut down to
//! what that backup reads, so that a child reads and validates a few lines
//! instead of the whole file (a run of N units would otherwise read the file
//! N + 1 times: quadratic in the number of units).
//!
//! What a cut keeps, as text of the original file, in its order: whatever
//! stands before the first top-level key, every top-level section that
//! defines no unit (`settings:`, `archivers:`), and, of the section that
//! defines the unit, the key line of each mapping on the way down and the
//! unit's own entry (its key or list item and every line up to the next
//! sibling). The run validated the whole file first; the child validates the
//! cut again, read as if it were the original file (relative paths resolve
//! against the original's directory, messages name it).
//!
//! A cut is used only if it proves to say the same: the cut text is parsed
//! and every section it keeps must be the same YAML as in the whole file,
//! with exactly the unit's entry on the way down. Anything else (flow-style
//! sections, an alias of an anchor the cut leaves out, an entry that shares
//! its lines) gives `None`, and the child reads the whole file as before.

use super::node::{self, Node, Value};
use super::{Config, UnitPath};
use std::collections::BTreeMap;

/// What a config was read from, kept for cutting job configs.
pub(super) struct Origin {
    text: String,
    doc: Node,
    /// Byte offset of the start of each line (line 1 at index 0), and the
    /// text's length last.
    line_starts: Vec<usize>,
    /// The line where each unit (or unit prefix, `github/<org>`) is defined.
    unit_lines: BTreeMap<String, u64>,
    /// For each top-level key, whether its section defines units.
    unit_sections: Vec<bool>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("lines", &self.line_starts.len())
            .field("units", &self.unit_lines.len())
            .finish_non_exhaustive()
    }
}

impl Origin {
    pub(super) fn new(text: &str, doc: Node, units: Vec<(UnitPath, u64)>) -> Origin {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        if line_starts.last() != Some(&text.len()) {
            line_starts.push(text.len());
        }
        let top_lines: Vec<u64> = match &doc.value {
            Value::Map(entries) => entries.iter().map(|(k, _)| k.line).collect(),
            _ => Vec::new(),
        };
        let mut unit_sections = vec![false; top_lines.len()];
        for (_, line) in &units {
            if let Some(i) = top_lines.partition_point(|l| l <= line).checked_sub(1) {
                unit_sections[i] = true;
            }
        }
        Origin {
            text: text.to_owned(),
            doc,
            line_starts,
            unit_lines: units
                .into_iter()
                .map(|(u, l)| (u.as_str().to_owned(), l))
                .collect(),
            unit_sections,
        }
    }

    /// Lines `first..=last` (1-based) of the text, newlines included.
    fn lines(&self, first: u64, last: u64) -> &str {
        let at = |line: u64| {
            usize::try_from(line)
                .ok()
                .and_then(|l| self.line_starts.get(l.saturating_sub(1)))
                .copied()
                .unwrap_or(self.text.len())
        };
        if last < first {
            return "";
        }
        &self.text[at(first)..at(last + 1)]
    }

    /// The line of `unit`'s entry: its own, or that of the nearest prefix
    /// that is defined (a discovered `github/<org>/<repo>` is `github/<org>`'s).
    fn line_of(&self, unit: &UnitPath) -> Option<u64> {
        let mut path = unit.as_str();
        loop {
            if let Some(line) = self.unit_lines.get(path) {
                return Some(*line);
            }
            path = &path[..path.rfind('/')?];
        }
    }
}

/// One step down from a section to a unit's entry: the index of the child
/// taken, and whether it is the entry itself.
struct Step {
    index: usize,
    line: u64,
}

impl Config {
    /// The text of a config file holding only what the backup of `unit`
    /// reads (module documentation), or `None` when it cannot be cut out
    /// safely (the child then reads the whole file).
    #[must_use]
    pub fn unit_config_text(&self, unit: &UnitPath) -> Option<String> {
        let origin = self.origin.as_deref()?;
        let line = origin.line_of(unit)?;
        let Value::Map(top) = &origin.doc.value else {
            return None;
        };
        let last_line = (origin.line_starts.len() - 1) as u64;
        let t = top
            .partition_point(|(k, _)| k.line <= line)
            .checked_sub(1)?;
        // why: an entry runs to the line before its next sibling, the last
        // one to where its parent ends
        let end_of = |siblings_end: u64, next: Option<u64>| next.map_or(siblings_end, |n| n - 1);
        // Walk down to the entry, noting each step and where it ends.
        let mut steps = Vec::new();
        let mut node = &top[t].1;
        let mut end = end_of(last_line, top.get(t + 1).map(|(k, _)| k.line));
        let entry_end = loop {
            let lines: Vec<u64> = match &node.value {
                Value::Map(children) => children.iter().map(|(k, _)| k.line).collect(),
                Value::Seq(items) => items.iter().map(|n| n.line).collect(),
                _ => return None,
            };
            let i = lines.partition_point(|l| *l <= line).checked_sub(1)?;
            let child_end = end_of(end, lines.get(i + 1).copied());
            steps.push(Step {
                index: i,
                line: lines[i],
            });
            if lines[i] == line {
                break child_end;
            }
            node = match &node.value {
                Value::Map(children) => &children[i].1,
                // why: list items hold units only as whole entries
                _ => return None,
            };
            end = child_end;
        };
        // why: each key on the way down must stand on a line of its own
        // above the entry, or the lines copied would carry other entries
        let mut above = top[t].0.line;
        for s in &steps[..steps.len() - 1] {
            if s.line <= above {
                return None;
            }
            above = s.line;
        }
        if line <= above || entry_end < line {
            return None;
        }

        let mut out = String::new();
        out.push_str(origin.lines(1, top[0].0.line - 1));
        for (i, (key, _)) in top.iter().enumerate() {
            let section_end = end_of(last_line, top.get(i + 1).map(|(k, _)| k.line));
            if i == t {
                out.push_str(origin.lines(key.line, key.line));
                for s in &steps[..steps.len() - 1] {
                    out.push_str(origin.lines(s.line, s.line));
                }
                out.push_str(origin.lines(line, entry_end));
            } else if !origin.unit_sections[i] {
                out.push_str(origin.lines(key.line, section_end));
            }
        }
        says_the_same(origin, &out, t, &steps).then_some(out)
    }
}

/// Whether `cut` parses to the same sections as the whole document, with
/// only the entry at `steps` in section `t`.
fn says_the_same(origin: &Origin, cut: &str, t: usize, steps: &[Step]) -> bool {
    let (Ok(mini), Value::Map(top)) = (node::parse(cut), &origin.doc.value) else {
        return false;
    };
    let Value::Map(mini_top) = &mini.value else {
        return false;
    };
    let kept = top
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == t || !origin.unit_sections[*i]);
    if kept.clone().count() != mini_top.len() {
        return false;
    }
    kept.zip(mini_top)
        .all(|((i, (key, whole)), (mini_key, cut))| {
            key.name == mini_key.name
                && if i == t {
                    same_entry(whole, cut, steps)
                } else {
                    whole.same_as(cut)
                }
        })
}

/// Whether `cut` holds, along `steps`, one child at each level with the
/// same key as in `whole`, and at the end the same entry.
fn same_entry(whole: &Node, cut: &Node, steps: &[Step]) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return false;
    };
    match (&whole.value, &cut.value) {
        (Value::Map(w), Value::Map(c)) if c.len() == 1 => {
            let ((wk, wn), (ck, cn)) = (&w[step.index], &c[0]);
            wk.name == ck.name
                && if rest.is_empty() {
                    wn.same_as(cn)
                } else {
                    same_entry(wn, cn, rest)
                }
        }
        (Value::Seq(w), Value::Seq(c)) if c.len() == 1 && rest.is_empty() => {
            w[step.index].same_as(&c[0])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{UnitPath, parse};
    use std::path::Path;

    const FILE: &str = "\
# a comment before everything
settings:
  root: /srv/backup
  snapshot-store: dir
  rgw-server: rgw.example.org
  archivers:
    default:
      archiver: local
      local-path: /srv/store
dump:
  one:
    command: [echo, one]
  two:
    # a comment inside
    command: [echo, two]
    file: two.out

  three:
    command: echo three
rbd:
  pool:
    images:
      vm1: vm-one
      vm2: vm-two
    snapshots:
      gold: base@gold
rgw:
  - bucket-a
  - bucket-b
archivers:
  default:
    two:
      skip: true
";

    fn cut(text: &str, unit: &str) -> Option<String> {
        let c = parse(text, Path::new("/etc/strata/config.yaml")).unwrap();
        c.unit_config_text(&UnitPath::parse(unit).unwrap())
    }

    #[test]
    fn a_cut_keeps_settings_and_the_one_entry() {
        let two = cut(FILE, "dump/two").unwrap();
        assert_eq!(
            two,
            "\
# a comment before everything
settings:
  root: /srv/backup
  snapshot-store: dir
  rgw-server: rgw.example.org
  archivers:
    default:
      archiver: local
      local-path: /srv/store
dump:
  two:
    # a comment inside
    command: [echo, two]
    file: two.out

archivers:
  default:
    two:
      skip: true
"
        );
        let c = parse(&two, Path::new("/etc/strata/config.yaml")).unwrap();
        assert_eq!(c.dump.len(), 1);
        assert_eq!(c.dump[0].file, "two.out");
        assert!(c.rbd.is_empty() && c.rgw.is_empty());
    }

    #[test]
    fn nested_entries_and_list_items_are_cut_too() {
        let vm2 = cut(FILE, "rbd/pool/images/vm2").unwrap();
        assert!(
            vm2.contains("rbd:\n  pool:\n    images:\n      vm2: vm-two\n"),
            "{vm2}"
        );
        assert!(!vm2.contains("vm1") && !vm2.contains("gold") && !vm2.contains("dump"));
        let gold = cut(FILE, "rbd/pool/snapshots/gold").unwrap();
        assert!(gold.contains("rbd:\n  pool:\n    snapshots:\n      gold: base@gold\n"));
        let b = cut(FILE, "rgw/bucket-b").unwrap();
        assert!(b.contains("rgw:\n  - bucket-b\n"), "{b}");
        assert!(!b.contains("bucket-a"));
        // The last entry of the last unit section runs to the next section.
        let three = cut(FILE, "dump/three").unwrap();
        assert!(three.contains("  three:\n    command: echo three\narchivers:"));
    }

    #[test]
    fn what_cannot_be_cut_safely_is_not() {
        // Flow style: the entries share their lines.
        let flow = "settings:\n  root: /r\n  snapshot-store: dir\ndump: {a: {command: [x]}, b: {command: [y]}}\n";
        assert_eq!(cut(flow, "dump/a"), None);
        // An alias of an anchor in another entry.
        let alias = "settings:\n  root: /r\n  snapshot-store: dir\ndump:\n  a:\n    command: &c [x]\n  b:\n    command: *c\n";
        assert_eq!(cut(alias, "dump/b"), None);
        assert!(cut(alias, "dump/a").is_some());
        // A unit the config does not define.
        assert_eq!(cut(FILE, "dump/four"), None);
    }
}
