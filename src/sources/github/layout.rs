//! How a github unit's files are written, as Deltaic wrote them: JSON in
//! Python's `json.dumps(sort_keys=True)` form with a trailing newline
//! ([`super::pyjson`]), users as logins, timestamps as Python's
//! `isoformat()` of a UTC time (`2024-02-02T10:00:00+00:00`), a file
//! rewritten only when its bytes differ (and then only its differing
//! blocks, through `BlockUpdate`), mtimes set to whole seconds where
//! Deltaic sets them, and a directory garbage-collected of what the
//! listing no longer holds.

use super::pyjson;
use crate::backup_root::BlockUpdate;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The xattr Deltaic keeps a listing's first-page ETag in (on its directory).
pub const ATTR_ETAG: &str = "user.github.etag";
/// The xattr holding a release asset's content type.
pub const ATTR_CONTENT_TYPE: &str = "user.github.content-type";

/// A GitHub timestamp (`2024-02-02T10:00:00Z`) as Deltaic stores it
/// (`2024-02-02T10:00:00+00:00`); null stays null.
#[must_use]
pub fn ts(v: &Value) -> Value {
    match v.as_str().and_then(parse_time) {
        Some(t) => {
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let micros = t.timestamp_subsec_micros();
            if micros == 0 {
                Value::String(format!("{base}+00:00"))
            } else {
                Value::String(format!("{base}.{micros:06}+00:00"))
            }
        }
        None => Value::Null,
    }
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A GitHub timestamp as whole Unix seconds (Deltaic's mtimes).
#[must_use]
pub fn time_t(v: &Value) -> Option<i64> {
    v.as_str().and_then(parse_time).map(|t| t.timestamp())
}

/// A user object as its login (null when absent).
#[must_use]
pub fn user(v: &Value) -> Value {
    match v.get("login") {
        Some(Value::String(s)) => Value::String(s.clone()),
        _ => Value::Null,
    }
}

/// `v[key]`, null when absent.
#[must_use]
pub fn field(v: &Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(Value::Null)
}

/// `v[key]`, `""` when absent (github3.py's default for a few fields).
#[must_use]
pub fn field_or_empty(v: &Value, key: &str) -> Value {
    v.get(key)
        .cloned()
        .unwrap_or_else(|| Value::String(String::new()))
}

/// What writing one file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    /// An existing file's bytes changed (on a scrub: a repair).
    Changed,
    Created,
}

/// A file's mtime is exactly `secs` (whole seconds, as Deltaic sets it).
#[must_use]
pub fn mtime_is(path: &Path, secs: i64) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .is_some_and(|d| {
            u64::try_from(secs).is_ok_and(|s| d.as_secs() == s && d.subsec_nanos() == 0)
        })
}

/// Set atime and mtime to `secs` unless the mtime already is (Deltaic's
/// `os.utime(path, (t, t))`).
pub fn set_mtime(path: &Path, secs: i64) -> std::io::Result<()> {
    if mtime_is(path, secs) {
        return Ok(());
    }
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let f = std::fs::File::options().write(true).open(path)?;
    f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
}

/// Write `bytes` to `path` unless it holds them already; only differing
/// blocks are written. Prints `f PATH` for a change, as Deltaic.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<Written> {
    let existed = match std::fs::read(path) {
        Ok(old) if old == bytes => return Ok(Written::Unchanged),
        Ok(_) => true,
        Err(_) => false,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    BlockUpdate::apply(path, bytes)?;
    println!("f {}", path.display());
    Ok(if existed {
        Written::Changed
    } else {
        Written::Created
    })
}

/// Deltaic's `write_json`: the JSON form, then the mtime when given.
pub fn write_json(path: &Path, v: &Value, mtime: Option<i64>) -> std::io::Result<Written> {
    let w = write_bytes(path, &pyjson::to_file_bytes(v))?;
    if let Some(t) = mtime {
        set_mtime(path, t)?;
    }
    Ok(w)
}

/// Set an xattr unless it already holds `value` (Deltaic's `XAttrs.update`).
pub fn set_xattr(path: &Path, name: &str, value: &str) -> std::io::Result<()> {
    if xattr::get(path, name)?.as_deref() == Some(value.as_bytes()) {
        return Ok(());
    }
    xattr::set(path, name, value.as_bytes())
}

/// Remove from `root` every file not in `valid`, and every directory not in
/// `valid` that ends up empty (Deltaic's `gc_directory_tree`). Prints
/// `- PATH` for each; returns how many were removed.
pub fn gc_tree<S: std::hash::BuildHasher>(
    root: &Path,
    valid: &HashSet<PathBuf, S>,
) -> std::io::Result<u64> {
    let mut removed = 0;
    if !root.is_dir() {
        return Ok(0);
    }
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry = entry.map_err(std::io::Error::other)?;
        let p = entry.path();
        if valid.contains(p) {
            continue;
        }
        if entry.file_type().is_dir() {
            if p != root && std::fs::remove_dir(p).is_ok() {
                println!("- {}", p.display());
                removed += 1;
            }
        } else {
            std::fs::remove_file(p)?;
            println!("- {}", p.display());
            removed += 1;
        }
    }
    Ok(removed)
}

/// Bytes under `dir` (apparent sizes), for the unit report.
#[must_use]
pub fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_and_users_as_deltaic() {
        assert_eq!(
            ts(&json!("2024-02-02T10:00:00Z")),
            json!("2024-02-02T10:00:00+00:00")
        );
        assert_eq!(
            ts(&json!("2024-02-02T12:00:00+02:00")),
            json!("2024-02-02T10:00:00+00:00")
        );
        assert_eq!(ts(&Value::Null), Value::Null);
        assert_eq!(time_t(&json!("1970-01-02T00:00:00Z")), Some(86_400));
        assert_eq!(user(&json!({"login": "ann", "id": 1})), json!("ann"));
        assert_eq!(user(&Value::Null), Value::Null);
    }

    #[test]
    fn unchanged_files_are_not_touched_and_mtimes_are_whole_seconds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x/1.json");
        assert_eq!(
            write_json(&p, &json!({"b": 1, "a": "é"}), Some(1_700_000_000)).unwrap(),
            Written::Created
        );
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"{\"a\": \"\\u00e9\", \"b\": 1}\n"
        );
        assert!(mtime_is(&p, 1_700_000_000));
        let before = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(
            write_json(&p, &json!({"a": "é", "b": 1}), Some(1_700_000_000)).unwrap(),
            Written::Unchanged
        );
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn gc_keeps_valid_paths_and_removes_emptied_directories() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("releases");
        for f in [
            "v1/info.json",
            "v1/assets/a",
            "old/info.json",
            "old/assets/b",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        let valid: HashSet<PathBuf> = [
            root.clone(),
            root.join("v1/info.json"),
            root.join("v1/assets/a"),
        ]
        .into_iter()
        .collect();
        assert_eq!(gc_tree(&root, &valid).unwrap(), 4);
        assert!(root.join("v1/assets/a").is_file());
        assert!(!root.join("old").exists());
    }
}
