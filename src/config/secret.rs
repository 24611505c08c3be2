//! Secrets given inline or as `*-file:` paths; never printed.

use serde::{Serialize, Serializer};
use std::path::PathBuf;

/// A credential: inline in the config, or read from a file when needed.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl Secret {
    /// The secret's value (a file's content without its trailing newline).
    pub fn reveal(&self) -> std::io::Result<String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("<redacted>"),
            Secret::File(p) => write!(f, "<from file {}>", p.display()),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{self:?}"))
    }
}
