//! The `local` archiver: a directory (an NFS mount, a USB disk).
//!
//! Layout: `<path>/<set>/<unit%2F...>.archive` holds the bytes and
//! `<unit%2F...>.meta.json` beside it the metadata; `<path>/<set>/COMPLETE`
//! marks a complete set. Data is copied to `.tmp-*`, fsynced and renamed;
//! the metadata is written atomically after it. A crash leaves at most a
//! `.tmp-*` file or an archive without metadata, neither of which is listed;
//! `resync` removes them. Deleting a set renames it to `.deleting-<set>`
//! first, so it leaves the listing atomically. Nothing is protected: a
//! directory has no minimum storage period.

use super::{Archiver, CostLine, SetInfo, decode_unit, encode_unit};
use crate::archive::{ArchiveError, ArchiveMeta, MetaFields};
use crate::backup_root::{sync_dir, write_atomic};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const ARCHIVE: &str = ".archive";
const META: &str = ".meta.json";
const COMPLETE: &str = "COMPLETE";

pub struct LocalArchiver {
    path: PathBuf,
}

impl LocalArchiver {
    #[must_use]
    pub fn new(path: &Path) -> LocalArchiver {
        LocalArchiver {
            path: path.to_owned(),
        }
    }

    fn set_dir(&self, set: &str) -> PathBuf {
        self.path.join(set)
    }

    fn data(&self, set: &str, unit: &str) -> PathBuf {
        self.set_dir(set)
            .join(format!("{}{ARCHIVE}", encode_unit(unit)))
    }

    fn meta(&self, set: &str, unit: &str) -> PathBuf {
        self.set_dir(set)
            .join(format!("{}{META}", encode_unit(unit)))
    }

    fn set_names(&self) -> Result<Vec<String>, ArchiveError> {
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ArchiveError::io(&self.path)(e)),
        };
        let mut v = Vec::new();
        for e in rd {
            let e = e.map_err(ArchiveError::io(&self.path))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().is_dir() {
                v.push(name);
            }
        }
        v.sort();
        Ok(v)
    }
}

fn read_meta_file(path: &Path) -> Result<ArchiveMeta, ArchiveError> {
    let bytes = std::fs::read(path).map_err(ArchiveError::io(path))?;
    let fields: MetaFields =
        serde_json::from_slice(&bytes).map_err(|e| ArchiveError::BadMetadata {
            file: path.to_owned(),
            reason: e.to_string(),
        })?;
    ArchiveMeta::from_fields(&fields).map_err(|reason| ArchiveError::BadMetadata {
        file: path.to_owned(),
        reason,
    })
}

impl Archiver for LocalArchiver {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn list_sets(&self) -> Result<BTreeMap<String, SetInfo>, ArchiveError> {
        let mut out = BTreeMap::new();
        for set in self.set_names()? {
            let archives = self.list_set_archives(&set)?;
            out.insert(
                set.clone(),
                SetInfo {
                    count: archives.len() as u64,
                    size: archives.values().map(|m| m.size).sum(),
                    complete: self.set_dir(&set).join(COMPLETE).exists(),
                    protected: false,
                },
            );
        }
        Ok(out)
    }

    fn complete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let dir = self.set_dir(set);
        std::fs::create_dir_all(&dir).map_err(ArchiveError::io(&dir))?;
        let stamp = chrono::Utc::now().to_rfc3339();
        let p = dir.join(COMPLETE);
        write_atomic(&p, stamp.as_bytes()).map_err(ArchiveError::io(&p))
    }

    fn delete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let dir = self.set_dir(set);
        if !dir.is_dir() {
            return Err(ArchiveError::NoSuchSet(set.to_owned()));
        }
        let gone = self.path.join(format!(".deleting-{set}"));
        std::fs::rename(&dir, &gone).map_err(ArchiveError::io(&dir))?;
        sync_dir(&self.path).map_err(ArchiveError::io(&self.path))?;
        std::fs::remove_dir_all(&gone).map_err(ArchiveError::io(&gone))
    }

    fn list_set_archives(&self, set: &str) -> Result<BTreeMap<String, ArchiveMeta>, ArchiveError> {
        let dir = self.set_dir(set);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(ArchiveError::io(&dir)(e)),
        };
        let mut out = BTreeMap::new();
        for e in rd {
            let e = e.map_err(ArchiveError::io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(enc) = name.strip_suffix(META) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let unit = decode_unit(enc);
            if !self.data(set, &unit).is_file() {
                continue; // why: metadata without data is an orphan for resync, not an archive
            }
            out.insert(unit, read_meta_file(&e.path())?);
        }
        Ok(out)
    }

    fn upload_archive(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError> {
        let dir = self.set_dir(set);
        std::fs::create_dir_all(&dir).map_err(ArchiveError::io(&dir))?;
        // why: metadata of an earlier attempt must not describe the new bytes even for an instant
        let meta_path = self.meta(set, unit);
        match std::fs::remove_file(&meta_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io(&meta_path)(e)),
        }
        let prefix = format!(".tmp-{}-", encode_unit(unit));
        let mut tmp_name = tempfile::Builder::new();
        tmp_name.prefix(&prefix);
        // why: a spool on the store's filesystem gives its file over for free;
        // elsewhere (EXDEV, or a store that refuses links) the bytes are copied
        let tmp = if let Ok(linked) = tmp_name.make_in(&dir, |p| std::fs::hard_link(file, p)) {
            linked.into_temp_path()
        } else {
            let mut tmp = tmp_name.tempfile_in(&dir).map_err(ArchiveError::io(&dir))?;
            let mut src = std::fs::File::open(file).map_err(ArchiveError::io(file))?;
            std::io::copy(&mut src, tmp.as_file_mut()).map_err(ArchiveError::io(tmp.path()))?;
            tmp.into_temp_path()
        };
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(ArchiveError::io(&tmp))?;
        crate::fault::point("archive-upload");
        let data = self.data(set, unit);
        tmp.persist(&data)
            .map_err(|e| ArchiveError::io(&data)(e.error))?;
        sync_dir(&dir).map_err(ArchiveError::io(&dir))?;
        let json = serde_json::to_vec_pretty(&meta.fields()).map_err(std::io::Error::other);
        let json = json.map_err(ArchiveError::io(&meta_path))?;
        write_atomic(&meta_path, &json).map_err(ArchiveError::io(&meta_path))
    }

    fn prepare_download(&self, set: &str, unit: &str) -> Result<(), ArchiveError> {
        if self.data(set, unit).is_file() {
            Ok(())
        } else {
            Err(ArchiveError::no_such_archive(set, unit))
        }
    }

    fn download_archive(
        &self,
        set: &str,
        unit: &str,
        offset: u64,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let p = self.data(set, unit);
        let mut f = std::fs::File::open(&p).map_err(ArchiveError::io(&p))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(ArchiveError::io(&p))?;
        Ok(Box::new(f))
    }

    fn resync(&self) -> Result<Vec<String>, ArchiveError> {
        let mut done = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.path) else {
            return Ok(done);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(set) = name.strip_prefix(".deleting-") {
                let p = e.path();
                std::fs::remove_dir_all(&p).map_err(ArchiveError::io(&p))?;
                done.push(format!("removed the remains of deleted set {set}"));
            }
        }
        for set in self.set_names()? {
            let dir = self.set_dir(&set);
            for e in std::fs::read_dir(&dir)
                .map_err(ArchiveError::io(&dir))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                let orphan = if name.starts_with(".tmp-") {
                    Some("an interrupted upload")
                } else if let Some(enc) = name.strip_suffix(ARCHIVE) {
                    (!self.meta(&set, &decode_unit(enc)).exists())
                        .then_some("an archive without metadata")
                } else if let Some(enc) = name.strip_suffix(META) {
                    (!self.data(&set, &decode_unit(enc)).exists())
                        .then_some("metadata without an archive")
                } else {
                    None
                };
                if let Some(what) = orphan {
                    let p = e.path();
                    std::fs::remove_file(&p).map_err(ArchiveError::io(&p))?;
                    done.push(format!("{set}: removed {what}: {name}"));
                }
            }
        }
        Ok(done)
    }

    fn report_cost(&self) -> Result<Vec<CostLine>, ArchiveError> {
        let sets = self.list_sets()?;
        Ok(vec![CostLine {
            class: "local".into(),
            archives: sets.values().map(|s| s.count).sum(),
            bytes: sets.values().map(|s| s.size).sum(),
            monthly: 0.0,
            retrieval: 0.0,
            peak: None,
        }])
    }
}
