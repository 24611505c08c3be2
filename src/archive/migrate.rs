//! `archive migrate`: copy archive sets from one profile (an aws profile: a
//! Glacier vault, whose service is closed to new customers) to an s3
//! profile (S3 with a Glacier storage class), the source left untouched.
//!
//! Plan, then apply: [`plan`] (pure) compares the source's sets and
//! archives with what the destination already holds; [`estimate`] (pure)
//! prices it (objects, bytes, hours of retrieval at the rate, the source's
//! retrieval cost as it reports it, the destination's storage); `--plan`
//! prints both and requests nothing. [`migrate`] then retrieves every
//! archive still to copy through the source's own retrieval (Glacier jobs
//! against the shared hourly budget, or streams under the rate limit) into
//! a work directory under the spool, and as each one arrives (its sha256
//! checked against the catalogue) uploads it with SHA-256 checksums that S3
//! checks on arrival, reads the copy's metadata and checksum back, and
//! removes the local file. A set complete at the source is marked complete
//! at the destination once all its archives are there.
//!
//! Resumable: an archive already at the destination with the same sha256
//! and size is skipped; the work directory (`<spool>/migrate-<from>-<to>/`)
//! keeps the retrieval's `.part` files and job records, and a file that was
//! retrieved whole but not yet uploaded is uploaded on the next run. An
//! archive at the destination with another sha256 is a conflict: reported,
//! never overwritten.

use super::archivers::{PeakPricing, SetInfo, s3::S3Archiver};
use super::rate::RateLimit;
use super::retrieve::{self, Rate, Wanted};
use super::{ArchiveError, ArchiveMeta, Archiver, retrieved_names};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What happens to one archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Copy,
    /// At the destination already, same sha256 and size.
    Present,
    /// At the destination with other content: left alone, reported.
    Conflict(String),
}

/// One archive of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedArchive {
    pub unit: String,
    pub size: u64,
    pub step: Step,
    #[serde(skip)]
    pub meta: ArchiveMeta,
}

/// One set of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedSet {
    pub set: String,
    pub complete: bool,
    pub archives: Vec<PlannedArchive>,
}

/// A source set: its listing and archives.
pub type SourceSet = (SetInfo, BTreeMap<String, ArchiveMeta>);

/// The plan: for each set of `source` (all, or those named in `only`),
/// copy what `dest` (set -> unit -> metadata) does not hold.
pub fn plan(
    source: &BTreeMap<String, SourceSet>,
    dest: &BTreeMap<String, BTreeMap<String, ArchiveMeta>>,
    only: &[String],
) -> Result<Vec<PlannedSet>, ArchiveError> {
    for s in only {
        if !source.contains_key(s) {
            return Err(ArchiveError::NoSuchSet(s.clone()));
        }
    }
    Ok(source
        .iter()
        .filter(|(name, _)| only.is_empty() || only.contains(name))
        .map(|(name, (info, archives))| {
            let there = dest.get(name);
            PlannedSet {
                set: name.clone(),
                complete: info.complete,
                archives: archives
                    .iter()
                    .map(|(unit, meta)| {
                        let step = match there.and_then(|d| d.get(unit)) {
                            None => Step::Copy,
                            Some(d) if d.sha256 == meta.sha256 && d.size == meta.size => {
                                Step::Present
                            }
                            Some(d) => Step::Conflict(format!(
                                "the destination holds {} bytes with sha256 {}, the source {} bytes with sha256 {}",
                                d.size, d.sha256, meta.size, meta.sha256
                            )),
                        };
                        PlannedArchive {
                            unit: unit.clone(),
                            size: meta.size,
                            step,
                            meta: meta.clone(),
                        }
                    })
                    .collect(),
            }
        })
        .collect())
}

/// What a plan costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub sets: usize,
    pub to_copy: u64,
    pub bytes: u64,
    pub present: u64,
    pub conflicts: u64,
    /// Hours of retrieval budget at the rate (retrieval jobs add their own
    /// hours of latency on top).
    pub hours: f64,
    /// $ of retrieval, when the source prices it (a Glacier vault's peak
    /// hourly rate, per month the retrieval spans).
    pub retrieval: Option<f64>,
    /// $ per month to store the copies at the destination.
    pub storage_monthly: f64,
}

const GIB: f64 = 1_073_741_824.0;

/// Price `plan` at `bytes_per_hour`, with the source's `peak` pricing (if
/// it has one) and the destination's $ per GB-month.
#[must_use]
pub fn estimate(
    plan: &[PlannedSet],
    bytes_per_hour: u64,
    peak: Option<&PeakPricing>,
    dest_per_gb_month: f64,
) -> Estimate {
    let mut e = Estimate {
        sets: plan.len(),
        to_copy: 0,
        bytes: 0,
        present: 0,
        conflicts: 0,
        hours: 0.0,
        retrieval: None,
        storage_monthly: 0.0,
    };
    for a in plan.iter().flat_map(|s| &s.archives) {
        match a.step {
            Step::Copy => {
                e.to_copy += 1;
                e.bytes += a.size;
            }
            Step::Present => e.present += 1,
            Step::Conflict(_) => e.conflicts += 1,
        }
    }
    #[allow(clippy::cast_precision_loss)] // why: bytes far below 2^52; dollars and hours
    {
        e.hours = e.bytes as f64 / bytes_per_hour.max(1) as f64;
        e.storage_monthly = e.bytes as f64 / 1e9 * dest_per_gb_month;
        e.retrieval = peak.map(|p| {
            if e.bytes == 0 {
                return 0.0;
            }
            let rate = bytes_per_hour as f64 / GIB;
            // why: free up to the day's allowance spread over 24 hours, and nothing for a peak the month already has
            let paid_from = (p.free_today as f64 / 24.0 / GIB).max(p.month_peak as f64 / GIB);
            let months = (e.hours / (30.0 * 24.0)).ceil().max(1.0);
            (rate - paid_from).max(0.0) * p.per_gib_hour * months
        });
    }
    e
}

/// What [`migrate`] did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub copied: Vec<(String, String)>,
    pub failed: Vec<(String, String, String)>,
    pub completed_sets: Vec<String>,
}

/// How to migrate.
pub struct Migration<'a> {
    pub source: &'a dyn Archiver,
    pub dest: &'a S3Archiver,
    /// `<spool>/migrate-<from>-<to>`.
    pub work: PathBuf,
    pub bytes_per_hour: u64,
    /// The per-second limit of streamed sources.
    pub stream: Option<&'a RateLimit>,
}

/// Carry out `plan`; `said` is told each step in words.
pub fn migrate(
    m: &Migration<'_>,
    plan: &[PlannedSet],
    said: &mut dyn FnMut(String),
) -> Result<Outcome, ArchiveError> {
    // why: a diff is worth nothing without its link and chain state, which are not copied
    if m.source.supports_chains() {
        for s in plan {
            if let Some((unit, _)) = m
                .source
                .chain_links(&s.set)?
                .into_iter()
                .find(|(_, l)| l.base.is_some())
            {
                return Err(ArchiveError::BrokenChain {
                    set: s.set.clone(),
                    unit,
                    reason: "archive migrate copies archives, not the incremental chains (diffs) they form; migrate a profile without diffs".into(),
                });
            }
        }
    }
    std::fs::create_dir_all(&m.work).map_err(ArchiveError::io(&m.work))?;
    let mut out = Outcome::default();
    let mut wanted = Vec::new();
    let copies: Vec<(&str, &str)> = plan
        .iter()
        .flat_map(|s| {
            s.archives
                .iter()
                .filter(|a| matches!(a.step, Step::Copy))
                .map(move |a| (s.set.as_str(), a.unit.as_str()))
        })
        .collect();
    let mut names = retrieved_names(&copies).into_iter();
    for s in plan {
        for a in &s.archives {
            match &a.step {
                Step::Copy => {
                    let w = Wanted {
                        set: s.set.clone(),
                        unit: a.unit.clone(),
                        meta: a.meta.clone(),
                        file: names.next().expect("a name for each copy"),
                    };
                    let whole = m.work.join(&w.file);
                    if whole.exists() {
                        // why: retrieved by an earlier run that stopped before the upload
                        copy(m, &w, Ok(whole), &mut out, said);
                    } else {
                        wanted.push(w);
                    }
                }
                Step::Present => {}
                Step::Conflict(why) => {
                    out.failed
                        .push((s.set.clone(), a.unit.clone(), why.clone()));
                }
            }
        }
    }
    let rate = Rate {
        stream: m.stream,
        bytes_per_hour: m.bytes_per_hour,
    };
    retrieve::retrieve_many(m.source, &wanted, &m.work, rate, &mut |w, r| {
        copy(m, w, r, &mut out, said);
    })?;
    for s in plan {
        let failed = out.failed.iter().any(|(set, _, _)| *set == s.set);
        if s.complete && !failed {
            m.dest.complete_set(&s.set)?;
            said(format!("set {} complete at the destination", s.set));
            out.completed_sets.push(s.set.clone());
        }
    }
    Ok(out)
}

/// Upload one retrieved archive (checked on arrival) and drop the local copy.
fn copy(
    m: &Migration<'_>,
    w: &Wanted,
    retrieved: Result<PathBuf, ArchiveError>,
    out: &mut Outcome,
    said: &mut dyn FnMut(String),
) {
    let r = retrieved.and_then(|file| {
        verify_local(&file, &w.meta)?;
        m.dest
            .upload_archive_verified(&w.set, &w.unit, &w.meta, &file)?;
        std::fs::remove_file(&file).map_err(ArchiveError::io(&file))?;
        Ok(())
    });
    match r {
        Ok(()) => {
            said(format!(
                "copied {} {} ({} bytes, sha256 {})",
                w.set, w.unit, w.meta.size, w.meta.sha256
            ));
            crate::fault::point("migrate-copied");
            out.copied.push((w.set.clone(), w.unit.clone()));
        }
        Err(e) => {
            said(format!("failed {} {}: {e}", w.set, w.unit));
            out.failed
                .push((w.set.clone(), w.unit.clone(), e.to_string()));
        }
    }
}

/// A retrieved file must still be the archive (a file left by an earlier
/// run is checked again before it is uploaded).
fn verify_local(file: &Path, meta: &ArchiveMeta) -> Result<(), ArchiveError> {
    let (sha, size) = super::hash_file(file)?;
    if size != meta.size || sha != meta.sha256 {
        let _ = std::fs::remove_file(file);
        return Err(ArchiveError::Sha256Mismatch {
            file: file.to_owned(),
            expected: meta.sha256.clone(),
            actual: sha,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Encryption;
    use crate::config::Compression;

    fn meta(sha: char, size: u64) -> ArchiveMeta {
        ArchiveMeta {
            compression: Compression::Gzip,
            encryption: Encryption::None,
            sha256: sha.to_string().repeat(64),
            size,
        }
    }

    fn info(complete: bool) -> SetInfo {
        SetInfo {
            count: 0,
            size: 0,
            complete,
            protected: false,
        }
    }

    fn source() -> BTreeMap<String, SourceSet> {
        let mut s = BTreeMap::new();
        s.insert(
            "20240101-1".to_owned(),
            (
                info(true),
                [
                    ("rsync/a", meta('a', 10)),
                    ("rsync/b", meta('b', 20)),
                    ("rsync/c", meta('c', 30)),
                ]
                .into_iter()
                .map(|(u, m)| (u.to_owned(), m))
                .collect(),
            ),
        );
        s.insert(
            "20240201-1".to_owned(),
            (
                info(false),
                [("rsync/a", meta('d', 40))]
                    .into_iter()
                    .map(|(u, m)| (u.to_owned(), m))
                    .collect(),
            ),
        );
        s
    }

    #[test]
    fn the_plan_copies_what_the_destination_lacks_and_never_overwrites() {
        let mut dest = BTreeMap::new();
        dest.insert(
            "20240101-1".to_owned(),
            [("rsync/a", meta('a', 10)), ("rsync/b", meta('x', 20))]
                .into_iter()
                .map(|(u, m)| (u.to_owned(), m))
                .collect(),
        );
        let p = plan(&source(), &dest, &[]).unwrap();
        let steps: Vec<(&str, &str, bool)> = p
            .iter()
            .flat_map(|s| {
                s.archives
                    .iter()
                    .map(move |a| (s.set.as_str(), a.unit.as_str(), a.step == Step::Copy))
            })
            .collect();
        assert_eq!(
            steps,
            [
                ("20240101-1", "rsync/a", false),
                ("20240101-1", "rsync/b", false),
                ("20240101-1", "rsync/c", true),
                ("20240201-1", "rsync/a", true)
            ]
        );
        assert_eq!(p[0].archives[0].step, Step::Present);
        assert!(matches!(p[0].archives[1].step, Step::Conflict(_)));
        assert!(p[0].complete && !p[1].complete);
        let only = plan(&source(), &dest, &["20240201-1".to_owned()]).unwrap();
        assert_eq!(only.len(), 1);
        assert!(matches!(
            plan(&source(), &dest, &["20990101-1".to_owned()]),
            Err(ArchiveError::NoSuchSet(_))
        ));
    }

    #[test]
    fn the_estimate_prices_the_peak_rate_beyond_the_free_allowance() {
        let p = plan(&source(), &BTreeMap::new(), &[]).unwrap();
        let gib = 1u64 << 30;
        // (rate, pricing, want hours, want retrieval $)
        let pricing = |free_today: u64, month_peak: u64| PeakPricing {
            free_today,
            per_gib_hour: 7.2,
            month_peak,
        };
        let cases = [
            (gib, None, None),
            (gib, Some(pricing(0, 0)), Some(7.2)),
            (gib, Some(pricing(12 * gib, 0)), Some(3.6)),
            (gib, Some(pricing(0, 2 * gib)), Some(0.0)),
            (2 * gib, Some(pricing(0, gib)), Some(7.2)),
        ];
        for (rate, peak, want) in cases {
            let e = estimate(&p, rate, peak.as_ref(), 0.004);
            assert_eq!((e.to_copy, e.bytes, e.present, e.sets), (4, 100, 0, 2));
            match (e.retrieval, want) {
                (Some(got), Some(w)) => assert!((got - w).abs() < 1e-9, "{rate}: {got} != {w}"),
                (got, w) => assert_eq!(got, w),
            }
        }
        let e = estimate(&p, 50, None, 1.0);
        assert!((e.hours - 2.0).abs() < 1e-9);
        assert!((e.storage_monthly - 100.0 / 1e9).abs() < 1e-15);
    }
}
