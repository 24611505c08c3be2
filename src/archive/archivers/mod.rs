//! Archivers: where archive sets live, behind one trait (DESIGN §6), chosen
//! by [`open`] from the profile. One file (or folder) per archiver:
//! `local.rs` (a directory), `s3.rs` (any S3-compatible store), `aws/`
//! (Deltaic's Glacier vault + `SimpleDB` catalogue) and `googledrive/`
//! (Drive v3, Deltaic's layout).
//!
//! Contract every archiver keeps:
//! - `upload_archive` stores the data first and the metadata last; an
//!   archive without metadata is not listed, so a crash mid-upload leaves
//!   nothing that `list_set_archives` reports, and the next `archive run -r`
//!   uploads that unit again under the same name (no duplicates).
//!   `resync` removes such orphans.
//! - `complete_set` stores a marker; a set without it is incomplete.
//! - `delete_set` makes the whole set disappear from listings first
//!   (marker and metadata), then removes the data.
//! - `download_archive(offset)` returns the stored bytes from `offset`, so an
//!   interrupted retrieval resumes with a ranged read; `prepare_download`
//!   blocks until the archive can be read (cold storage restores). An
//!   archiver whose bytes come back only through retrieval jobs (a Glacier
//!   vault) offers [`JobRetrieval`] instead, which fills `.part` files at
//!   offsets and resumes from its own record of the jobs.
//! - Metadata read back is untrusted: it is parsed by
//!   [`ArchiveMeta::from_fields`] and only checked bytes reach `unpack`.
//! - An archiver that keeps uploads resumable across processes (googledrive)
//!   finishes a killed upload from `resume_upload` with the same bytes,
//!   before anything is packed again; one whose store refuses uploads for a
//!   while (Drive's daily cap) says so through `upload_paused`, and
//!   `archive run` leaves the set incomplete for `archive run -r` instead
//!   of failing its units.

pub mod aws;
pub mod googledrive;
pub mod local;
pub mod s3;

use super::{ArchiveError, ArchiveMeta};
use crate::config::{ArchiveSettings, ArchiverKind, ArchiverProfile};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One archive set as an archiver lists it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SetInfo {
    pub count: u64,
    pub size: u64,
    pub complete: bool,
    /// Not to be deleted yet (inside the storage class's minimum period).
    pub protected: bool,
}

/// Stored bytes and their price, per storage class.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    pub class: String,
    pub archives: u64,
    pub bytes: u64,
    /// $ per month to keep them.
    pub monthly: f64,
    /// $ to retrieve all of them once.
    pub retrieval: f64,
    /// Glacier vault retrieval pricing (the aws archiver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<PeakPricing>,
}

/// Glacier vault retrieval pricing as Deltaic reports it: a free daily
/// allowance, beyond which the month's bill is set by its peak hourly
/// retrieval rate.
#[derive(Debug, Clone, Serialize)]
pub struct PeakPricing {
    /// Bytes retrievable free today (5% of what is stored, per month,
    /// spread over its days), at a constant rate through the hours used.
    pub free_today: u64,
    /// $ per GiB/hour of the month's peak retrieval rate.
    pub per_gib_hour: f64,
    /// The month's peak hourly reservation so far, bytes per hour.
    pub month_peak: u64,
}

/// One archive for [`JobRetrieval`] to fetch into its `.part` file.
#[derive(Debug, Clone, Copy)]
pub struct PartTarget<'a> {
    pub set: &'a str,
    pub unit: &'a str,
    pub meta: &'a ArchiveMeta,
    pub part: &'a Path,
}

/// Archives that come back through retrieval jobs taking hours (a Glacier
/// vault), requested in ranges against a rate budget.
pub trait JobRetrieval {
    /// Fill each target's `part` file with its archive, reserving at most
    /// `bytes_per_hour`, resuming what an earlier call left (its jobs and
    /// the ranges already written); `done(i, result)` once per target, when
    /// its file is whole (and about to be checked by the caller) or failed.
    /// An `Err` ends the call early; calling again resumes.
    fn retrieve_parts(
        &self,
        targets: &[PartTarget<'_>],
        bytes_per_hour: u64,
        done: &mut dyn FnMut(usize, Result<(), ArchiveError>),
    ) -> Result<(), ArchiveError>;
}

/// A place that stores archive sets.
pub trait Archiver: Send + Sync {
    /// The archiver's kind, for messages.
    fn kind(&self) -> &'static str;
    /// Every set, by name (snapshot name).
    fn list_sets(&self) -> Result<BTreeMap<String, SetInfo>, ArchiveError>;
    /// Mark `set` complete.
    fn complete_set(&self, set: &str) -> Result<(), ArchiveError>;
    /// Delete `set` and every archive in it.
    fn delete_set(&self, set: &str) -> Result<(), ArchiveError>;
    /// The archives of `set`, unit -> metadata (empty for an unknown set).
    fn list_set_archives(&self, set: &str) -> Result<BTreeMap<String, ArchiveMeta>, ArchiveError>;
    /// The archives of `set`, unit -> stored bytes, without reading each
    /// one's metadata: what `archive run` and `ls` need, in one listing of
    /// a remote store instead of a request per archive.
    fn list_set_units(&self, set: &str) -> Result<BTreeMap<String, u64>, ArchiveError> {
        Ok(self
            .list_set_archives(set)?
            .into_iter()
            .map(|(unit, meta)| (unit, meta.size))
            .collect())
    }
    /// The metadata of one archive; [`ArchiveError::NoSuchArchive`] when
    /// `set` has no archive of `unit`.
    fn archive_meta(&self, set: &str, unit: &str) -> Result<ArchiveMeta, ArchiveError> {
        self.list_set_archives(set)?
            .remove(unit)
            .ok_or_else(|| ArchiveError::no_such_archive(set, unit))
    }
    /// Get `set` ready for uploads by several processes at once (a store
    /// where a set is an object of its own creates it here, once, so that
    /// concurrent units do not race to create it). Nothing by default.
    fn prepare_set(&self, set: &str) -> Result<(), ArchiveError> {
        let _ = set;
        Ok(())
    }
    /// When the store refuses uploads for now (Drive's daily upload cap):
    /// the time from which they may be tried again. `None` by default.
    fn upload_paused(&self) -> Result<Option<String>, ArchiveError> {
        Ok(None)
    }
    /// Finish an upload of `unit` into `set` that an earlier process left
    /// half done, from the bytes it kept; `Some(meta)` when the archive is
    /// now stored, `None` when there was nothing to resume (then the unit is
    /// packed and uploaded afresh). Nothing by default.
    fn resume_upload(&self, set: &str, unit: &str) -> Result<Option<ArchiveMeta>, ArchiveError> {
        let _ = (set, unit);
        Ok(None)
    }
    /// Store `file` as the archive of `unit` in `set`, with `meta`.
    fn upload_archive(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError>;
    /// Make the archive readable (restore from cold storage) and wait for it.
    fn prepare_download(&self, set: &str, unit: &str) -> Result<(), ArchiveError>;
    /// The archive's bytes from `offset` on.
    fn download_archive(
        &self,
        set: &str,
        unit: &str,
        offset: u64,
    ) -> Result<Box<dyn Read + Send>, ArchiveError>;
    /// The job-based retrieval of archivers that have no streamed download.
    fn job_retrieval(&self) -> Option<&dyn JobRetrieval> {
        None
    }
    /// Repair index/data disagreements; returns what it did, one line each.
    fn resync(&self) -> Result<Vec<String>, ArchiveError>;
    /// Stored bytes and prices.
    fn report_cost(&self) -> Result<Vec<CostLine>, ArchiveError>;
}

/// Encode a unit path as one file or key name: `%` -> `%25`, `/` -> `%2F`.
#[must_use]
pub fn encode_unit(unit: &str) -> String {
    unit.replace('%', "%25").replace('/', "%2F")
}

/// Undo [`encode_unit`].
#[must_use]
pub fn decode_unit(name: &str) -> String {
    name.replace("%2F", "/").replace("%25", "%")
}

/// The archiver of a profile; `settings` gives what a profile may take from
/// `settings:` (the spool, googledrive's keys).
pub fn open(
    settings: &ArchiveSettings,
    profile: &ArchiverProfile,
) -> Result<Box<dyn Archiver>, ArchiveError> {
    match &profile.archiver {
        ArchiverKind::Local { path } => Ok(Box::new(local::LocalArchiver::new(path))),
        ArchiverKind::Aws(s) => Ok(Box::new(aws::AwsArchiver::new(s)?)),
        ArchiverKind::Googledrive(p) => Ok(Box::new(googledrive::GoogleDriveArchiver::open(
            settings,
            &profile.name,
            p,
        )?)),
        ArchiverKind::S3(p) => Ok(Box::new(s3::S3Archiver::new(p)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_encode_reversibly() {
        for u in ["rsync/a", "x%2Fy/z", "a%b"] {
            assert_eq!(decode_unit(&encode_unit(u)), u);
            assert!(!encode_unit(u).contains('/'));
        }
    }
}
