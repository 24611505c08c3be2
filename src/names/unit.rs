//! Unit paths (`rsync/octopus`, `rbd/pool/images/foo`): the names of units and
//! the directories that hold them under the backup root.

use serde::{Serialize, Serializer};

/// A unit's path under the backup root; every component is a safe file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitPath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitPathError {
    #[error("unit path `{0}` has an empty component")]
    Empty(String),
    #[error("unit path `{path}` has the component `{component}`, which is not a plain file name")]
    BadComponent { path: String, component: String },
}

impl UnitPath {
    /// Validate a unit path: `/`-separated components, none empty, `.`, `..`,
    /// longer than 255 bytes, or holding NUL.
    pub fn parse(s: &str) -> Result<UnitPath, UnitPathError> {
        for c in s.split('/') {
            if c.is_empty() {
                return Err(UnitPathError::Empty(s.to_owned()));
            }
            if c == "." || c == ".." || c.contains('\0') || c.len() > 255 {
                return Err(UnitPathError::BadComponent {
                    path: s.to_owned(),
                    component: c.to_owned(),
                });
            }
        }
        Ok(UnitPath(s.to_owned()))
    }

    /// Join validated components.
    pub fn from_parts(parts: &[&str]) -> Result<UnitPath, UnitPathError> {
        if let Some(bad) = parts.iter().find(|p| p.contains('/')) {
            return Err(UnitPathError::BadComponent {
                path: parts.join("/"),
                component: (*bad).to_owned(),
            });
        }
        UnitPath::parse(&parts.join("/"))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first component: the source.
    #[must_use]
    pub fn source(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }
}

impl std::fmt::Display for UnitPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for UnitPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsafe_components() {
        assert!(UnitPath::parse("rsync/octopus").is_ok());
        assert_eq!(
            UnitPath::parse("rsync//x"),
            Err(UnitPathError::Empty("rsync//x".into()))
        );
        assert!(UnitPath::parse("dump/..").is_err());
        assert!(UnitPath::parse("dump/.").is_err());
        assert!(UnitPath::from_parts(&["dump", "a/b"]).is_err());
        assert!(UnitPath::parse(&format!("dump/{}", "x".repeat(256))).is_err());
    }
}
