//! Per-unit state, persisted atomically under `<root>/.strata/state/<unit>.json`
//! so that `status` and "last success" survive restarts.
//!
//! A state file that cannot be read (truncated by a full disk, edited by
//! hand) is never fatal to the other units: [`load`] names the file in its
//! error, and [`record`] moves it aside as `<unit>.json.corrupt-<time>` for
//! inspection before it writes a fresh state, saying so in its result.

use super::{BackupRoot, write_atomic};
use crate::config::UnitPath;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// The appliance whose run made the last attempt (several appliances
    /// sharing the root); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appliance: Option<String>,
}

/// How one attempt ended, as recorded.
pub enum Attempt<'a> {
    Succeeded { scrubbed: bool, bytes: u64 },
    Failed { why: &'a str },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the state file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What [`record`] did besides recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Written,
    /// The previous state file was unreadable; it was kept at this path.
    CorruptKeptAt(PathBuf),
}

fn state_path(root: &BackupRoot, unit: &UnitPath) -> PathBuf {
    root.state_dir()
        .join("state")
        .join(format!("{}.json", unit.as_str()))
}

fn read(path: &Path) -> Result<UnitState, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UnitState::default()),
        Err(source) => Err(StateError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The unit's state; a unit never attempted has the default state.
pub fn load(root: &BackupRoot, unit: &UnitPath) -> Result<UnitState, StateError> {
    read(&state_path(root, unit))
}

/// Record one attempt that started at `started` and took `secs`.
pub fn record(
    root: &BackupRoot,
    unit: &UnitPath,
    started: i64,
    secs: f64,
    attempt: &Attempt,
    appliance: Option<&str>,
) -> Result<Recorded, StateError> {
    let path = state_path(root, unit);
    let (mut s, recorded) = match read(&path) {
        Ok(s) => (s, Recorded::Written),
        Err(StateError::Corrupt { .. }) => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
            let mut aside = path.clone().into_os_string();
            aside.push(format!(".corrupt-{stamp}"));
            let aside = PathBuf::from(aside);
            std::fs::rename(&path, &aside).map_err(|source| StateError::Write {
                path: path.clone(),
                source,
            })?;
            (UnitState::default(), Recorded::CorruptKeptAt(aside))
        }
        Err(e) => return Err(e),
    };
    s.last_attempt = Some(started);
    s.last_duration_secs = secs;
    s.appliance = appliance.map(str::to_owned);
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
    let write = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(&s).map_err(|e| write(std::io::Error::other(e)))?;
    write_atomic(&path, &json).map_err(write)?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_state_is_named_then_kept_aside_by_the_next_record() {
        let d = tempfile::tempdir().unwrap();
        let root = BackupRoot::new(d.path());
        let unit = UnitPath::parse("dump/x").unwrap();
        let ok = Attempt::Succeeded {
            scrubbed: false,
            bytes: 7,
        };
        assert_eq!(
            record(&root, &unit, 10, 1.0, &ok, None).unwrap(),
            Recorded::Written
        );
        let path = state_path(&root, &unit);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        let err = load(&root, &unit).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        let r = record(&root, &unit, 20, 1.0, &ok, None).unwrap();
        let Recorded::CorruptKeptAt(aside) = r else {
            panic!("{r:?}")
        };
        assert_eq!(std::fs::read(&aside).unwrap(), &full[..full.len() / 2]);
        let s = load(&root, &unit).unwrap();
        assert_eq!((s.last_success, s.bytes), (Some(20), 7));
    }
}
