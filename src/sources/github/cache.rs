//! The ETag cache: for every listing a unit's backup makes, the URL, ETag,
//! next-page URL and item projections of each page, so that every page
//! (not only the first, as Deltaic) is asked with `If-None-Match` and a page
//! that answers 304 still says which items it holds.
//!
//! Kept in `<root>/.strata/github/<org>/<unit name>.json` (strata's state,
//! beside the unit state; not in the unit, so it is neither archived nor
//! counted as a change of the unit). Losing it costs one full fetch. A
//! listing's record is saved only after everything it lists has been
//! written, so a crash never leaves an ETag that claims data not on disk.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One page of a listing as last fetched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageRecord {
    pub url: String,
    pub etag: String,
    /// What the backup needs of each item without fetching it again.
    pub items: Vec<Value>,
    pub next: Option<String>,
}

/// Every page of one listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ListingRecord {
    pub pages: Vec<PageRecord>,
}

impl ListingRecord {
    /// Whether every page has an ETag (only then can it be reused).
    #[must_use]
    pub fn usable(&self) -> bool {
        self.pages.iter().all(|p| !p.etag.is_empty())
    }
}

/// The records of one unit, by listing name (`issues`, `repo`, ...).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UnitCache {
    #[serde(default)]
    pub listings: BTreeMap<String, ListingRecord>,
}

/// A unit's cache file, loaded once and saved per listing.
pub struct CacheFile {
    path: Option<PathBuf>,
    pub data: UnitCache,
}

impl CacheFile {
    /// `<state>/github/<org>/<name>.json`; a missing or unreadable file is
    /// an empty cache (it only saves requests).
    #[must_use]
    pub fn open(state_dir: &Path, org: &str, name: &str) -> CacheFile {
        let path = state_dir
            .join("github")
            .join(org)
            .join(format!("{name}.json"));
        let data = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        CacheFile {
            path: Some(path),
            data,
        }
    }

    /// A cache that remembers nothing (`github ls`, no root).
    #[must_use]
    pub fn none() -> CacheFile {
        CacheFile {
            path: None,
            data: UnitCache::default(),
        }
    }

    /// The record of `listing`, if it can be used.
    #[must_use]
    pub fn get(&self, listing: &str) -> Option<&ListingRecord> {
        self.data.listings.get(listing).filter(|r| r.usable())
    }

    /// The single-page record of `listing` (an object).
    #[must_use]
    pub fn page(&self, listing: &str) -> Option<&PageRecord> {
        self.get(listing).and_then(|r| r.pages.first())
    }

    /// Record `listing` and save the file when anything changed.
    pub fn put(&mut self, listing: &str, record: ListingRecord) -> std::io::Result<()> {
        if self.data.listings.get(listing) == Some(&record) {
            return Ok(());
        }
        self.data.listings.insert(listing.to_owned(), record);
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&self.data).map_err(std::io::Error::other)?;
        crate::backup_root::write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_pages_without_etags_are_not_reused() {
        let d = tempfile::tempdir().unwrap();
        let mut c = CacheFile::open(d.path(), "org", "repo");
        assert!(c.get("issues").is_none());
        let rec = ListingRecord {
            pages: vec![PageRecord {
                url: "u".into(),
                etag: "W/\"1\"".into(),
                items: vec![serde_json::json!(1)],
                next: None,
            }],
        };
        c.put("issues", rec.clone()).unwrap();
        let c = CacheFile::open(d.path(), "org", "repo");
        assert_eq!(c.get("issues"), Some(&rec));
        let mut c = c;
        let mut bad = rec;
        bad.pages[0].etag.clear();
        c.put("issues", bad).unwrap();
        assert!(c.get("issues").is_none());
    }
}
