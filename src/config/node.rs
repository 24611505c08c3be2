//! A YAML document as a tree of nodes that remember their line, so that every
//! config error can name `file:line` and the key path.
//!
//! Parsed with serde-saphyr (pure Rust, rejects duplicate keys, reads `PyYAML`'s
//! `yes`/`no` booleans as Deltaic's configs expect). Scalars keep their raw
//! source text too, because `github-token: 0123` must stay the string "0123".

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node and where it starts.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub line: u64,
    raw: Raw,
    offset: Option<(u64, u64)>,
}

/// A scalar's source text, kept only where it differs from its value.
#[derive(Debug, Clone)]
enum Raw {
    /// Not a scalar, or its text could not be found.
    Unknown,
    /// A plain string written as it reads: the value is the text.
    SameAsValue,
    Text(Box<str>),
}

impl Node {
    /// The scalar exactly as written (for scalars only; quotes included).
    #[must_use]
    pub fn raw(&self) -> Option<&str> {
        match (&self.raw, &self.value) {
            (Raw::Text(t), _) => Some(t),
            (Raw::SameAsValue, Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether `other` holds the same YAML as this node, wherever each one
    /// stands in its file: the same values (keys in the same order), and
    /// scalars written the same way.
    #[must_use]
    pub fn same_as(&self, other: &Node) -> bool {
        let same = match (&self.value, &other.value) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, x), (kb, y))| ka.name == kb.name && x.same_as(y))
            }
            _ => false,
        };
        same && self.raw() == other.raw()
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key and its line.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub line: u64,
}

impl Value {
    /// What a user would call this kind of value, for "expected X, found Y".
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item.into());
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value: Spanned<RawNode> = map.next_value()?;
            entries.push((
                Key {
                    name: key.value.0,
                    line: key.referenced.line(),
                },
                value.into(),
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A key as text, whatever scalar type YAML gives it (`1:` or `yes:` keys).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(NodeVisitor)? {
            Value::Str(s) => Ok(KeyText(s)),
            Value::Int(i) => Ok(KeyText(i.to_string())),
            Value::Bool(b) => Ok(KeyText(b.to_string())),
            Value::Float(f) => Ok(KeyText(f.to_string())),
            other => Err(de::Error::custom(format!(
                "a mapping key must be a scalar, found {}",
                other.kind()
            ))),
        }
    }
}

struct RawNode(Value);

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor).map(RawNode)
    }
}

impl From<Spanned<RawNode>> for Node {
    fn from(s: Spanned<RawNode>) -> Node {
        let span = s.referenced.span();
        Node {
            value: s.value.0,
            line: s.referenced.line(),
            raw: Raw::Unknown,
            offset: span.byte_offset().zip(span.byte_len()),
        }
    }
}

/// Parse a whole document. The error is serde-saphyr's, with its line.
pub fn parse(text: &str) -> Result<Node, (u64, String)> {
    let root: Spanned<RawNode> = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        // why: the crate's Display carries a multi-line snippet; the first line is the message
        let msg = e.to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .trim_start_matches("error: ");
        let first = first.split_once(": ").map_or(first, |(loc, rest)| {
            if loc.starts_with("line ") {
                rest
            } else {
                first
            }
        });
        // why: the crate's advice is for programmers using it, not for whoever edits the file
        let first = first
            .split_once(", set DuplicateKeyPolicy")
            .map_or(first, |(m, _)| m);
        (line, first.to_owned())
    })?;
    let mut node: Node = root.into();
    fill_raw(&mut node, text);
    Ok(node)
}

fn fill_raw(node: &mut Node, text: &str) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| fill_raw(n, text)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, n)| fill_raw(n, text)),
        _ => {
            if let Some((off, len)) = node.offset {
                let (off, len) = (usize::try_from(off).ok(), usize::try_from(len).ok());
                if let Some(raw) = off.zip(len).and_then(|(o, l)| text.get(o..o + l)) {
                    // why: most scalars are plain strings; not copying their text
                    // again is a tenth of the time of reading a large config
                    node.raw = match &node.value {
                        Value::Str(s) if s == raw => Raw::SameAsValue,
                        _ => Raw::Text(raw.into()),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Vec<(Key, Node)> {
        match parse(text).unwrap().value {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn pyyaml_booleans_and_raw_text() {
        let m = map("a: no\nb: 0123456789\nc: ~\nd: 'x'\n");
        assert!(matches!(m[0].1.value, Value::Bool(false)));
        assert_eq!(m[1].1.raw(), Some("0123456789"));
        assert_eq!(m[3].1.raw(), Some("'x'"));
        assert_eq!(m[0].1.raw(), Some("no"));
        assert!(matches!(m[2].1.value, Value::Null));
        assert!(matches!(&m[3].1.value, Value::Str(s) if s == "x"));
        assert_eq!(m[3].0.line, 4);
    }

    #[test]
    fn duplicate_keys_are_rejected_with_their_line() {
        let (line, msg) = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("duplicate mapping key"), "{msg}");
        assert!(!msg.contains("DuplicateKeyPolicy"), "{msg}");
    }
}
