//! The configuration: Deltaic's YAML keys, read into a validated [`Config`].
//!
//! Owns: the file format (every key of DESIGN Appendix A, its type, default and
//! validation), the unit list of every source, and error messages that name
//! `file:line`, the key path and what was expected. Nothing downstream sees the
//! raw YAML: commands receive `&Config`.
//!
//! Invariants: a `Config` exists only if the file had no problem at all (every
//! problem is collected, then all are reported together); unknown keys are
//! errors with the closest known key suggested; relative paths are resolved
//! against the directory of the config file; the backup root is not required
//! to exist here (the volume may not be mounted yet): commands that use it
//! call [`Config::require_root`].
//!
//! # Layout
//!
//! - `node` parses YAML into a tree that remembers lines; `reader` reads it
//!   typed, collecting problems; `fields` holds the one-key readers with
//!   defaults (`get_count`, `get_secret`, ...); `entries` the skeleton of a
//!   section of `name: {fields}` entries (key path, fields, unknown keys, unit
//!   path recorded with its line).
//! - `document` is the whole file: [`Config`], the top-level sections, the
//!   checks across sections; `collisions` finds units that share or nest
//!   directories; `settings` the `settings:` section (base and retention
//!   keys); `archivers` archiving's keys, profiles and per-unit overrides.
//! - One file per source (`rsync`, `github`, `rbd`, `rgw`, `coda`, `dump`):
//!   its settings struct and the reader of its `<source>-*` keys in
//!   `settings:`, its unit struct, and the reader of its top-level section.
//! - `render` writes a `Config` back as YAML (`config show`).
//!
//! # Adding a source
//!
//! 1. `src/config/<source>.rs`: `<Source>Settings` with `fn settings(r, f)`
//!    reading its `<source>-*` keys from the `settings:` fields (every key
//!    read before any is combined, so one bad key hides no other); the unit
//!    struct; `fn <units>(r, node, path) -> Units<T>`, built on
//!    `entries::named_units` when the section is `name: {fields}` entries
//!    (one unit `<source>/<name>` each), recording every unit it makes.
//! 2. Here: `mod <source>;` and its `pub use` line.
//! 3. `settings.rs`: the field in `Settings` and the call to its `settings`.
//! 4. `document.rs`: the field in `Config`, the `f.get("<source>")` line that
//!    reads the top-level section, and its `defined` list handed to the
//!    collision check (plus, if it needs one, a line in `check_requirements`).
//! 5. `render.rs`: its keys in `config show`; `example-config.yaml` and the
//!    key list of `tests/it/config.rs`.

mod appliances;
mod archivers;
mod coda;
mod collisions;
mod document;
mod dump;
mod entries;
mod fields;
mod github;
mod job;
mod mounted;
mod node;
mod rbd;
mod reader;
pub mod render;
mod rgw;
mod rsync;
mod secret;
mod settings;

pub use crate::names::{UnitPath, UnitPathError};
pub use appliances::{Appliance, Appliances};
pub use archivers::{
    ArchiveSettings, ArchiveUnitOverride, ArchiverKind, ArchiverProfile, AwsProfile, COMPRESSIONS,
    Compression, GoogledriveProfile, KeepPolicy, RestoreTier, S3Price, S3Profile, normalise_key_id,
    parse_size,
};
pub use coda::{CodaSettings, CodaVolume, server_dir};
pub use document::Config;
pub use dump::{DumpCommand, DumpSettings, DumpUnit};
pub use github::{GithubOrg, GithubSettings, LfsMode};
pub use rbd::{RbdItem, RbdPool, RbdSettings};
pub use reader::KeyPath;
pub use rgw::{RgwBucket, RgwSettings};
pub use rsync::{RsyncHost, RsyncSettings, Transport};
pub use secret::Secret;
pub use settings::{Retention, Settings, StoreKind, VgLv};

use std::path::{Path, PathBuf};

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: u64,
    pub path: KeyPath,
    pub message: String,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than 16 MiB; a config file is never that big", path.display())]
    TooLarge { path: PathBuf },
    #[error("no config file: looked for {}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and "))]
    NotFound { tried: Vec<PathBuf> },
    #[error("{}", render(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("{}:{line}: settings.root: the backup root {} does not exist (is the backup volume mounted?)", file.display(), root.display())]
    RootMissing {
        file: PathBuf,
        line: u64,
        root: PathBuf,
    },
    #[error("{}:{line}: settings.root: {} is not a directory", file.display(), root.display())]
    RootNotDir {
        file: PathBuf,
        line: u64,
        root: PathBuf,
    },
    /// The root of an lvm-thin or btrfs store is not the volume it must be:
    /// writing there would fill the system disk and snapshot nothing.
    #[error(transparent)]
    RootNotMounted(Box<RootNotMounted>),
}

/// The root of an lvm-thin or btrfs store that is not its volume.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: settings.root: {} {why}; refusing to write into it. {how}", file.display(), root.display())]
pub struct RootNotMounted {
    pub file: PathBuf,
    pub line: u64,
    pub root: PathBuf,
    pub why: String,
    pub how: String,
}

fn render(file: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| render_one(file, p))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `file:line: key.path: message`, the one-line form of every config problem.
#[must_use]
pub fn render_one(file: &Path, p: &Problem) -> String {
    let at = if p.line > 0 {
        format!("{}:{}", file.display(), p.line)
    } else {
        file.display().to_string()
    };
    if p.path == KeyPath::root() {
        format!("{at}: {}", p.message)
    } else {
        format!("{at}: {}: {}", p.path.as_str(), p.message)
    }
}

/// The config files tried when none is given: strata's own, then Deltaic's.
#[must_use]
pub fn default_paths(home: &Path) -> Vec<PathBuf> {
    vec![
        home.join(".config/strata/config.yaml"),
        home.join(".config/deltaic.conf"),
    ]
}

/// Find the config file: `explicit` if given, else the first default that exists.
pub fn locate(explicit: Option<&Path>, home: &Path) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let tried = default_paths(home);
    tried
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or(ConfigError::NotFound { tried })
}

/// The largest config file read: far above any real one, far below what
/// would hurt (`-c /dev/zero` must not eat the machine's memory).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(read_err)?,
            MAX_CONFIG_BYTES + 1,
        ),
        &mut bytes,
    )
    .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        ConfigError::Invalid {
            file: path.to_owned(),
            problems: vec![Problem {
                line: bytes[..at].split(|b| *b == b'\n').count() as u64,
                path: KeyPath::root(),
                message: format!(
                    "not UTF-8 (byte 0x{:02X} at column {}); save the file as UTF-8",
                    bytes[at],
                    at - line_start + 1
                ),
            }],
        }
    })?;
    parse(&text, path)
}

/// The problems [`parse`] finds in `text`, one `"LINE: PATH: MESSAGE"`
/// each, none when it parses: for the config modules' tests.
#[cfg(test)]
fn problem_lines(text: &str) -> Vec<String> {
    match parse(text, Path::new("/nonexistent/c.yaml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems
            .iter()
            .map(|p| format!("{}: {}: {}", p.line, p.path.as_str(), p.message))
            .collect(),
        Err(e) => panic!("{e}"),
    }
}

/// Validate config `text` as if read from `path` (relative paths resolve
/// against `path`'s directory).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        file: path.to_owned(),
        problems,
    };
    let doc = node::parse(text).map_err(|(line, message)| {
        invalid(vec![Problem {
            line,
            path: KeyPath::root(),
            message: format!("invalid YAML: {message}"),
        }])
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let base = std::path::absolute(&base).unwrap_or(base);
    let mut r = reader::Reader::default();
    let config = document::build(&mut r, &doc, path, &base);
    match config {
        Some((mut c, unit_lines)) if r.problems.is_empty() => {
            c.warnings = r.warnings;
            c.origin = Some(std::sync::Arc::new(job::Origin::new(text, doc, unit_lines)));
            Ok(c)
        }
        _ => {
            let mut problems = r.problems;
            problems.sort_by_key(|p| p.line);
            Err(invalid(problems))
        }
    }
}

impl Config {
    /// The backup root, for commands that use it: it must exist, be a
    /// directory, and (as Deltaic insisted) be the backup volume itself when
    /// the store is `lvm-thin` (a mount point of `backup-lv`) or `btrfs` (a
    /// subvolume); the `dir` store works in any directory.
    pub fn require_root(&self) -> Result<&Path, ConfigError> {
        let root = &self.settings.root;
        let (file, line) = (self.file.clone(), self.root_line);
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ConfigError::RootNotDir {
                    file,
                    line,
                    root: root.clone(),
                });
            }
            Err(_) => {
                return Err(ConfigError::RootMissing {
                    file,
                    line,
                    root: root.clone(),
                });
            }
        }
        let lv = self.settings.backup_lv.as_ref();
        match mounted::check(root, self.settings.snapshot_store, lv) {
            Ok(()) => Ok(root),
            Err(m) => Err(ConfigError::RootNotMounted(Box::new(RootNotMounted {
                file,
                line,
                root: root.clone(),
                why: m.why,
                how: m.how,
            }))),
        }
    }

    /// Warnings (`file:line: key: message`), for `config check`.
    #[must_use]
    pub fn rendered_warnings(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|w| render_one(&self.file, w))
            .collect()
    }
}
