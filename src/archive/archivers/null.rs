//! The `null` archiver (PALHM's null backend): a run packs every unit as a
//! real run would, and this archiver throws the archives away. It holds no
//! set, so every run packs every unit; `archive run` on such a profile
//! reports what a real run would have uploaded and how long packing took
//! (`archive run -p dry`). Nothing can be retrieved from it.

use super::{Archiver, CostLine, SetInfo};
use crate::archive::{ArchiveError, ArchiveMeta};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub struct NullArchiver;

impl Archiver for NullArchiver {
    fn kind(&self) -> &'static str {
        "null"
    }

    fn stores(&self) -> bool {
        false
    }

    fn list_sets(&self) -> Result<BTreeMap<String, SetInfo>, ArchiveError> {
        Ok(BTreeMap::new())
    }

    fn complete_set(&self, _set: &str) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn delete_set(&self, set: &str) -> Result<(), ArchiveError> {
        Err(ArchiveError::NoSuchSet(set.to_owned()))
    }

    fn list_set_archives(&self, _set: &str) -> Result<BTreeMap<String, ArchiveMeta>, ArchiveError> {
        Ok(BTreeMap::new())
    }

    fn upload_archive(
        &self,
        _set: &str,
        _unit: &str,
        _meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError> {
        // why: the packed file was hashed and counted on its way into the spool; nothing more to do
        std::fs::metadata(file).map_err(ArchiveError::io(file))?;
        Ok(())
    }

    fn prepare_download(&self, set: &str, unit: &str) -> Result<(), ArchiveError> {
        Err(ArchiveError::no_such_archive(set, unit))
    }

    fn download_archive(
        &self,
        set: &str,
        unit: &str,
        _offset: u64,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        Err(ArchiveError::no_such_archive(set, unit))
    }

    fn resync(&self) -> Result<Vec<String>, ArchiveError> {
        Ok(Vec::new())
    }

    fn report_cost(&self) -> Result<Vec<CostLine>, ArchiveError> {
        Ok(Vec::new())
    }
}
