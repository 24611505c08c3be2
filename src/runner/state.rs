//! Per-unit state, persisted atomically under `<root>/.strata/state/<unit>.json`
//! so that `status` and "last success" survive restarts.

use crate::backup_root::{BackupRoot, write_atomic};
use crate::config::UnitPath;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What strata remembers about a unit between runs. Times are Unix seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct UnitState {
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
    pub last_scrub: Option<i64>,
    pub failures_in_row: u32,
    pub bytes: u64,
    /// "ok", or how the last attempt failed.
    pub last_result: String,
    pub last_duration_secs: f64,
}

/// How one attempt ended, as recorded.
pub enum Attempt<'a> {
    Succeeded { scrubbed: bool, bytes: u64 },
    Failed { why: &'a str },
}

fn state_path(root: &BackupRoot, unit: &UnitPath) -> PathBuf {
    root.state_dir()
        .join("state")
        .join(format!("{}.json", unit.as_str()))
}

/// The unit's state; a unit never attempted has the default state.
pub fn load(root: &BackupRoot, unit: &UnitPath) -> std::io::Result<UnitState> {
    match std::fs::read(state_path(root, unit)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UnitState::default()),
        Err(e) => Err(e),
    }
}

/// Record one attempt that started at `started` and took `secs`.
pub fn record(
    root: &BackupRoot,
    unit: &UnitPath,
    started: i64,
    secs: f64,
    attempt: &Attempt,
) -> std::io::Result<UnitState> {
    let mut s = load(root, unit).unwrap_or_default();
    s.last_attempt = Some(started);
    s.last_duration_secs = secs;
    match attempt {
        Attempt::Succeeded { scrubbed, bytes } => {
            s.last_success = Some(started);
            if *scrubbed {
                s.last_scrub = Some(started);
            }
            s.failures_in_row = 0;
            s.bytes = *bytes;
            "ok".clone_into(&mut s.last_result);
        }
        Attempt::Failed { why } => {
            s.failures_in_row += 1;
            (*why).clone_into(&mut s.last_result);
        }
    }
    let json = serde_json::to_vec_pretty(&s).map_err(std::io::Error::other)?;
    write_atomic(&state_path(root, unit), &json)?;
    Ok(s)
}
