//! What outlives a killed upload, under the spool: for each unit being
//! uploaded, its archive's bytes and a state file beside them, and the
//! profile's pause marker.
//!
//! Layout: `<archive-spool>/.googledrive-<profile>/<set>/<unit%2F...>.archive`
//! (a hard link of the spool file `archive unit` packed, so the bytes
//! survive the next run's spool cleaning; a copy where links fail) and
//! `<unit%2F...>.json` beside it (the metadata, the part size, the resumable
//! session of the part in flight); `paused.json` holds the time until which
//! Drive refuses uploads (its daily cap).
//!
//! Why keep the bytes: a packed archive cannot be made again byte for byte
//! (gpg encrypts with a fresh session key), and a resumable session only
//! accepts the bytes it started with.
//!
//! Invariants: the state file is written (atomically) after the bytes are
//! in place, and again each time a session starts or ends; both are removed
//! only once the archive is stored whole. A state file without its bytes
//! is stale and is dropped.

use super::DriveError;
use crate::archive::archivers::encode_unit;
use crate::archive::{ArchiveMeta, MetaFields};
use crate::backup_root::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The upload states and the pause marker of one profile.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// The resumable session of the part in flight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// 1-based.
    pub part: u32,
    pub url: String,
    pub started: String,
}

/// What is persisted about one unit's upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub set: String,
    pub unit: String,
    pub meta: MetaFields,
    pub part_size: u64,
    pub session: Option<Session>,
}

/// One unit's upload in progress: its state and where its bytes are.
#[derive(Debug)]
pub struct Pending {
    pub state: State,
    pub meta: ArchiveMeta,
    pub data: PathBuf,
    json: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Paused {
    until: String,
    why: String,
}

impl Store {
    #[must_use]
    pub fn new(spool: &Path, profile: &str) -> Store {
        Store {
            dir: spool.join(format!(".googledrive-{profile}")),
        }
    }

    /// The directory of `set`'s uploads; `set` must be a snapshot name (it
    /// may come from a Drive listing, and must not lead out of the store).
    fn set_dir(&self, set: &str) -> Result<PathBuf, DriveError> {
        crate::names::SnapshotName::parse(set).map_err(|e| DriveError::Spool {
            path: self.dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("set {set:?}: {e}"),
            ),
        })?;
        Ok(self.dir.join(set))
    }

    /// The state file and the bytes of `unit`'s upload into `set`.
    fn paths(&self, set: &str, unit: &str) -> Result<(PathBuf, PathBuf), DriveError> {
        let dir = self.set_dir(set)?;
        let enc = encode_unit(unit);
        // why: not with_extension, which would eat a dot in the unit's name
        Ok((
            dir.join(format!("{enc}.json")),
            dir.join(format!("{enc}.archive")),
        ))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DriveError {
        let path = path.to_owned();
        move |source| DriveError::Spool { path, source }
    }

    /// Keep `file` (the packed archive) for the upload of `unit` into `set`.
    pub fn begin(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
        part_size: u64,
    ) -> Result<Pending, DriveError> {
        let (json, data) = self.paths(set, unit)?;
        let dir = json.parent().expect("under the store").to_owned();
        std::fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        for p in [&json, &data] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::io(p)(e)),
            }
        }
        // why: the spool file is removed when `archive unit` ends or by the next run's cleaning; a link keeps the bytes for a resume
        if std::fs::hard_link(file, &data).is_err() {
            std::fs::copy(file, &data).map_err(Self::io(&data))?;
        }
        // why: the state saved next points at these bytes for a resume after a
        // crash, and pack leaves the spool file unsynced (scratch elsewhere)
        std::fs::File::open(&data)
            .and_then(|f| f.sync_all())
            .map_err(Self::io(&data))?;
        let pending = Pending {
            state: State {
                set: set.to_owned(),
                unit: unit.to_owned(),
                meta: meta.fields(),
                part_size,
                session: None,
            },
            meta: meta.clone(),
            data,
            json,
        };
        pending.save()?;
        Ok(pending)
    }

    /// The upload of `unit` into `set` a killed process left, if any (a
    /// state whose bytes are gone or do not match it is dropped).
    pub fn find(&self, set: &str, unit: &str) -> Result<Option<Pending>, DriveError> {
        let (json, data) = self.paths(set, unit)?;
        let text = match std::fs::read(&json) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io(&json)(e)),
        };
        let state: Option<State> = serde_json::from_slice(&text).ok();
        let usable = state.and_then(|s| {
            let meta = ArchiveMeta::from_fields(&s.meta).ok()?;
            let len = std::fs::metadata(&data).ok()?.len();
            (s.set == set && s.unit == unit && len == meta.size && s.part_size > 0)
                .then_some((s, meta))
        });
        if let Some((state, meta)) = usable {
            return Ok(Some(Pending {
                state,
                meta,
                data,
                json,
            }));
        }
        let _ = std::fs::remove_file(&json);
        let _ = std::fs::remove_file(&data);
        Ok(None)
    }

    /// Every pending upload: (set, unit).
    #[must_use]
    pub fn all(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Ok(sets) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for s in sets.flatten().filter(|e| e.path().is_dir()) {
            let set = s.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(s.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(enc) = name.strip_suffix(".json") {
                    out.push((set.clone(), crate::archive::archivers::decode_unit(enc)));
                }
            }
        }
        out.sort();
        out
    }

    /// Forget every pending upload of `set` (it was deleted).
    pub fn remove_set(&self, set: &str) -> Result<(), DriveError> {
        let dir = self.set_dir(set)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io(&dir)(e)),
        }
    }

    fn paused_path(&self) -> PathBuf {
        self.dir.join("paused.json")
    }

    /// Until when uploads are refused, if that is still ahead of `now`.
    #[must_use]
    pub fn paused(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = std::fs::read(self.paused_path()).ok()?;
        let p: Paused = serde_json::from_slice(&text).ok()?;
        let until = chrono::DateTime::parse_from_rfc3339(&p.until)
            .ok()?
            .with_timezone(&chrono::Utc);
        (until > now).then_some(until)
    }

    /// Refuse uploads until `until`, saying why.
    pub fn pause(&self, until: chrono::DateTime<chrono::Utc>, why: &str) -> Result<(), DriveError> {
        let p = Paused {
            until: until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            why: why.to_owned(),
        };
        let path = self.paused_path();
        let json =
            serde_json::to_vec_pretty(&p).map_err(|e| Self::io(&path)(std::io::Error::other(e)))?;
        write_atomic(&path, &json).map_err(Self::io(&path))
    }
}

impl Pending {
    /// Write the state file (atomically).
    pub fn save(&self) -> Result<(), DriveError> {
        let json = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| Store::io(&self.json)(std::io::Error::other(e)))?;
        write_atomic(&self.json, &json).map_err(Store::io(&self.json))
    }

    /// Record the session of the part in flight (or none).
    pub fn set_session(&mut self, session: Option<Session>) -> Result<(), DriveError> {
        self.state.session = session;
        self.save()
    }

    /// The archive is stored: remove its state and bytes.
    pub fn finish(self) -> Result<(), DriveError> {
        for p in [&self.json, &self.data] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Store::io(p)(e)),
            }
        }
        if let Some(dir) = self.json.parent() {
            // why: an empty set directory is noise; a non-empty one still holds other units
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Encryption;
    use crate::config::Compression;

    #[test]
    fn a_pending_upload_survives_its_spool_file_and_is_found_again() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path();
        let file = spool.join("archive-1-x");
        std::fs::write(&file, b"0123456789").unwrap();
        let meta = ArchiveMeta {
            compression: Compression::None,
            encryption: Encryption::None,
            sha256: "ab".repeat(32),
            size: 10,
        };
        let store = Store::new(spool, "drive");
        let mut p = store
            .begin("20260101-1", "dump/a", &meta, &file, 4)
            .unwrap();
        p.set_session(Some(Session {
            part: 1,
            url: "http://x/s".into(),
            started: "t".into(),
        }))
        .unwrap();
        std::fs::remove_file(&file).unwrap();
        let again = store.find("20260101-1", "dump/a").unwrap().expect("found");
        assert_eq!(std::fs::read(&again.data).unwrap(), b"0123456789");
        assert_eq!(again.state.session.as_ref().unwrap().url, "http://x/s");
        assert_eq!(again.meta, meta);
        assert_eq!(store.all(), vec![("20260101-1".into(), "dump/a".into())]);
        assert!(store.find("20260101-1", "dump/b").unwrap().is_none());
        // bytes that do not match the state: dropped
        std::fs::write(&again.data, b"short").unwrap();
        assert!(store.find("20260101-1", "dump/a").unwrap().is_none());
        assert!(store.all().is_empty());
    }

    #[test]
    fn the_pause_holds_until_its_time() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path(), "drive");
        let now = chrono::Utc::now();
        assert!(store.paused(now).is_none());
        store
            .pause(now + chrono::Duration::hours(24), "cap")
            .unwrap();
        assert!(store.paused(now).is_some());
        assert!(store.paused(now + chrono::Duration::hours(25)).is_none());
    }
}
