//! Typed reading of a [`Node`] tree with every problem collected, each naming
//! its line and key path, so `config check` can list them all at once.

use super::Problem;
use super::node::{Key, Node, Value};
use std::fmt::Write as _;

/// Collects problems while the raw tree is turned into a validated config.
#[derive(Default)]
pub struct Reader {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// A key path such as `settings.rsync-workers` or `rsync."host1.example.org".mounts[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(String);

impl KeyPath {
    #[must_use]
    pub fn root() -> KeyPath {
        KeyPath(String::new())
    }
    #[must_use]
    pub fn key(&self, key: &str) -> KeyPath {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let mut p = String::with_capacity(self.0.len() + key.len() + 3);
        p.push_str(&self.0);
        if !p.is_empty() {
            p.push('.');
        }
        if plain {
            p.push_str(key);
        } else {
            let _ = write!(p, "{key:?}");
        }
        KeyPath(p)
    }
    #[must_use]
    pub fn index(&self, i: usize) -> KeyPath {
        KeyPath(format!("{}[{i}]", self.0))
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "(top level)"
        } else {
            &self.0
        }
    }
}

/// The entries of one mapping, handed out key by key; whatever is left at
/// [`Fields::finish`] is an unknown key.
pub struct Fields<'a> {
    path: KeyPath,
    line: u64,
    entries: Vec<(&'a Key, &'a Node, bool)>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    #[must_use]
    pub fn path(&self) -> &KeyPath {
        &self.path
    }
    #[must_use]
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The value of `key`, if present (and marks the key as known).
    pub fn get(&mut self, key: &'static str) -> Option<(&'a Node, KeyPath)> {
        self.known.push(key);
        let (_, node, used) = self.entries.iter_mut().find(|(k, _, _)| k.name == key)?;
        *used = true;
        Some((*node, self.path.key(key)))
    }

    /// The value of the required `key`; when it is absent, reports
    /// "missing required key `key` (`what`)" at `line` (the mapping's own,
    /// [`Fields::line`], or the line of the key that names it).
    pub fn require(
        &mut self,
        r: &mut Reader,
        line: u64,
        key: &'static str,
        what: &str,
    ) -> Option<(&'a Node, KeyPath)> {
        let found = self.get(key);
        if found.is_none() {
            let mut msg = format!("missing required key `{key}`");
            if !what.is_empty() {
                let _ = write!(msg, " ({what})");
            }
            r.error(line, &self.path.key(key), msg);
        }
        found
    }

    /// Whether `key` is present (without taking it).
    #[must_use]
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| k.name == key)
    }

    /// Report every key that was never asked for, suggesting the closest known one.
    pub fn finish(self, r: &mut Reader) {
        for (key, _, used) in &self.entries {
            if *used {
                continue;
            }
            let mut msg = format!("unknown key `{}`", key.name);
            if let Some(best) = closest(&key.name, &self.known) {
                let _ = write!(msg, " (did you mean `{best}`?)");
            }
            r.problems.push(Problem {
                line: key.line,
                path: self.path.key(&key.name),
                message: msg,
            });
        }
    }
}

/// The known key closest to `name`, if any is close enough to be a likely typo.
#[must_use]
pub fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    // why: `ZSTD` for `zstd` is four edits apart, and the likeliest slip of all
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Reader {
    pub fn error(&mut self, line: u64, path: &KeyPath, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            path: path.clone(),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, line: u64, path: &KeyPath, message: impl Into<String>) {
        self.warnings.push(Problem {
            line,
            path: path.clone(),
            message: message.into(),
        });
    }

    fn expected(&mut self, node: &Node, path: &KeyPath, what: &str) {
        let found = match (&node.value, node.raw()) {
            (Value::Seq(_) | Value::Map(_) | Value::Null, _) | (_, None) => {
                node.value.kind().to_owned()
            }
            (_, Some(raw)) => format!("{} `{raw}`", node.value.kind()),
        };
        self.error(node.line, path, format!("expected {what}, found {found}"));
    }

    /// A mapping's fields; `null` (a key with nothing under it) is an empty mapping.
    pub fn fields<'a>(&mut self, node: &'a Node, path: &KeyPath) -> Option<Fields<'a>> {
        match &node.value {
            Value::Map(entries) => Some(Fields {
                path: path.clone(),
                line: node.line,
                entries: entries.iter().map(|(k, n)| (k, n, false)).collect(),
                known: Vec::new(),
            }),
            Value::Null => Some(Fields {
                path: path.clone(),
                line: node.line,
                entries: Vec::new(),
                known: Vec::new(),
            }),
            _ => {
                self.expected(node, path, "a mapping");
                None
            }
        }
    }

    /// The entries of a mapping whose keys are names chosen by the user
    /// (hosts, pools, profiles), in file order.
    pub fn named_entries<'a>(
        &mut self,
        node: &'a Node,
        path: &KeyPath,
    ) -> Vec<(&'a Key, &'a Node)> {
        match &node.value {
            Value::Map(entries) => entries.iter().map(|(k, n)| (k, n)).collect(),
            Value::Null => Vec::new(),
            _ => {
                self.expected(node, path, "a mapping");
                Vec::new()
            }
        }
    }

    /// The items of a list; `null` is an empty list.
    pub fn items<'a>(&mut self, node: &'a Node, path: &KeyPath) -> Vec<&'a Node> {
        match &node.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            _ => {
                self.expected(node, path, "a list");
                Vec::new()
            }
        }
    }

    /// A string; unquoted numbers and booleans are taken as written.
    pub fn string(&mut self, node: &Node, path: &KeyPath) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => node.raw().map(str::to_owned),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub fn nonempty(&mut self, node: &Node, path: &KeyPath) -> Option<String> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            self.error(node.line, path, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A boolean: true/false, or `PyYAML`'s yes/no/on/off as Deltaic configs may hold.
    pub fn boolean(&mut self, node: &Node, path: &KeyPath) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" | "y" => Some(true),
                "no" | "false" | "off" | "n" => Some(false),
                _ => {
                    self.expected(node, path, "true or false");
                    None
                }
            },
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// A whole number at least `min`.
    pub fn count(&mut self, node: &Node, path: &KeyPath, min: u32) -> Option<u32> {
        match &node.value {
            Value::Int(i) if *i >= i128::from(min) && *i <= i128::from(u32::MAX) => {
                u32::try_from(*i).ok()
            }
            Value::Int(i) => {
                self.error(
                    node.line,
                    path,
                    format!("must be a whole number of at least {min}, found {i}"),
                );
                None
            }
            _ => {
                self.expected(node, path, "a whole number");
                None
            }
        }
    }

    /// A number (integer or decimal).
    pub fn number(&mut self, node: &Node, path: &KeyPath) -> Option<f64> {
        match &node.value {
            #[allow(clippy::cast_precision_loss)] // why: config numbers are small
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            _ => {
                self.expected(node, path, "a number");
                None
            }
        }
    }

    /// A number within `[lo, hi]`.
    pub fn number_in(
        &mut self,
        node: &Node,
        path: &KeyPath,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Option<f64> {
        let n = self.number(node, path)?;
        if n < lo || n > hi {
            self.error(
                node.line,
                path,
                format!("{what} must be between {lo} and {hi}, found {n}"),
            );
            return None;
        }
        Some(n)
    }

    /// A probability in `[0, 1]`.
    pub fn probability(&mut self, node: &Node, path: &KeyPath) -> Option<f64> {
        self.number_in(node, path, 0.0, 1.0, "a probability")
    }

    /// A list of strings; `null` is empty.
    pub fn strings(&mut self, node: &Node, path: &KeyPath) -> Option<Vec<String>> {
        let items = match &node.value {
            Value::Seq(items) => items,
            Value::Null => return Some(Vec::new()),
            _ => {
                self.expected(node, path, "a list of strings");
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let s = match &item.value {
                Value::Str(s) => Some(s.clone()),
                // why: the item's key path is made only where it may be needed
                _ => self.string(item, &path.index(i)),
            };
            out.push(s?);
        }
        Some(out)
    }

    /// One of `choices`, case-sensitive, as written in the docs.
    pub fn choice<T: Copy>(
        &mut self,
        node: &Node,
        path: &KeyPath,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(node, path)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let mut msg = format!("`{s}` is not one of {}", names.join(", "));
        if let Some(best) = closest(&s, &names) {
            let _ = write!(msg, " (did you mean `{best}`?)");
        }
        self.error(node.line, path, msg);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_pick_likely_typos_only() {
        let known = ["rsync-workers", "rgw-workers", "root"];
        assert_eq!(closest("rsync-worker", &known), Some("rsync-workers"));
        assert_eq!(closest("rsync_workers", &known), Some("rsync-workers"));
        assert_eq!(closest("rot", &known), Some("root"));
        assert_eq!(closest("completely-different", &known), None);
        assert_eq!(closest("ZSTD", &["gzip", "zstd", "lz4"]), Some("zstd"));
        assert_eq!(closest("ROOT", &known), Some("root"));
    }

    #[test]
    fn key_paths_quote_names_with_dots() {
        let p = KeyPath::root()
            .key("rsync")
            .key("host1.example.org")
            .key("mounts")
            .index(1);
        assert_eq!(p.as_str(), "rsync.\"host1.example.org\".mounts[1]");
    }
}
