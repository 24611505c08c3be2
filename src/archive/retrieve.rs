//! Retrieve archives of a set into a directory: rate limited, resumable,
//! checked.
//!
//! Each archive goes to `DESTDIR/<snapshot>:<unit-with-dashes>.part` first
//! (Deltaic's name; two units of one retrieve that would share it, such as
//! `dump/x/y` and `dump/x-y`, each get `~<8 hex digits>` of their own:
//! [`super::retrieved_names`]);
//! an existing `.part` is continued with a ranged read from its length. When
//! all bytes are in, its size and sha256 must match the metadata; then the
//! metadata is written as Deltaic's `user.archive.*` xattrs and the file is
//! renamed to its final name; so are the set and unit it was fetched as
//! (`user.archive.{set,unit}`), which unpack checks its tar label against.
//! A final name that exists is never overwritten. A mismatching `.part` is
//! deleted (the next attempt starts over).
//!
//! Crash behaviour: `kill -9` or a dropped connection leaves the `.part`
//! file, which the next retrieve continues.
//!
//! Archivers whose archives come back only through retrieval jobs (a
//! Glacier vault: [`super::archivers::JobRetrieval`]) fill the `.part`
//! files themselves, range by range at their offsets, against an hourly
//! budget, and keep their own record of the jobs beside each file; the
//! checks, xattrs and rename above are the same ([`retrieve_many`]).
//!
//! A diff is fetched with its chain ([`retrieve_chains`]): the full and
//! every diff after it, in order, each a file of its own; an archive of the
//! chain already in DESTDIR with its size and sha256 (another snapshot of
//! the same chain retrieved before) is used as it is.

use super::archivers::PartTarget;
use super::chain;
use super::rate::RateLimit;
use super::unpack::{write_meta, write_origin};
use super::{ArchiveError, ArchiveMeta, Archiver, retrieved_names};
use crate::backup_root::xattrs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Fetch `w` into `dest` (as `w.file`); returns the final path.
fn retrieve_one(
    archiver: &dyn Archiver,
    w: &Wanted,
    dest: &Path,
    rate: Option<&RateLimit>,
) -> Result<PathBuf, ArchiveError> {
    let (set, unit, meta) = (w.set.as_str(), w.unit.as_str(), &w.meta);
    let out = dest.join(&w.file);
    if out.symlink_metadata().is_ok() {
        return Err(ArchiveError::AlreadyExists(out));
    }
    let part = dest.join(format!("{}.part", w.file));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .map_err(ArchiveError::io(&part))?;
    let mut offset = file.metadata().map_err(ArchiveError::io(&part))?.len();
    if offset > meta.size {
        file.set_len(0).map_err(ArchiveError::io(&part))?;
        offset = 0;
    }
    if offset < meta.size {
        archiver.prepare_download(set, unit)?;
        let mut src = archiver.download_archive(set, unit, offset)?;
        let chunk = rate.map_or(1 << 20, RateLimit::chunk);
        let mut buf = vec![0u8; chunk];
        let progress = crate::progress::Bar::bytes(unit, Some(meta.size));
        progress.inc(offset);
        while offset < meta.size {
            let want = usize::try_from((meta.size - offset).min(chunk as u64)).unwrap_or(chunk);
            if let Some(r) = rate {
                r.acquire(want as u64)?;
            }
            let mut got = 0;
            while got < want {
                let n = match src.read(&mut buf[got..want]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // why: keep what arrived; the next retrieve resumes from here
                        let _ = file.write_all(&buf[..got]);
                        return Err(ArchiveError::Download {
                            archiver: archiver.kind(),
                            set: set.to_owned(),
                            unit: unit.to_owned(),
                            offset: offset + got as u64,
                            source: e,
                        });
                    }
                };
                got += n;
            }
            file.write_all(&buf[..got])
                .map_err(ArchiveError::io(&part))?;
            offset += got as u64;
            progress.inc(got as u64);
            if got < want {
                break;
            }
        }
        progress.finish();
    }
    file.sync_all().map_err(ArchiveError::io(&part))?;
    drop(file);
    finish_part(&part, &out, set, unit, meta)
}

/// Check a whole `.part` file against `meta` (a mismatching one is
/// deleted), record the metadata and origin on it and rename it to `out`.
pub fn finish_part(
    part: &Path,
    out: &Path,
    set: &str,
    unit: &str,
    meta: &ArchiveMeta,
) -> Result<PathBuf, ArchiveError> {
    let (sha, size) = super::hash_file(part)?;
    if size != meta.size {
        return Err(ArchiveError::SizeMismatch {
            file: part.to_owned(),
            expected: meta.size,
            actual: size,
        });
    }
    if sha != meta.sha256 {
        let _ = std::fs::remove_file(part);
        return Err(ArchiveError::Sha256Mismatch {
            file: part.to_owned(),
            expected: meta.sha256.clone(),
            actual: sha,
        });
    }
    write_meta(part, meta)?;
    write_origin(part, set, unit)?;
    std::fs::rename(part, out).map_err(ArchiveError::io(out))?;
    Ok(out.to_owned())
}

/// One archive to retrieve.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub set: String,
    pub unit: String,
    pub meta: ArchiveMeta,
    /// Its file name in the directory (one of [`super::retrieved_names`]).
    pub file: String,
}

/// How fast a retrieve may go.
#[derive(Debug, Clone, Copy)]
pub struct Rate<'a> {
    /// The shared limit of streamed downloads (`None`: unlimited).
    pub stream: Option<&'a RateLimit>,
    /// What a job-based archiver may reserve per hour.
    pub bytes_per_hour: u64,
}

/// Retrieve every archive of `wanted` into `dest`, as `retrieve_one` does
/// for each (streamed, one after the other) or through the archiver's
/// retrieval jobs (all requested in order, finished in any order);
/// `report` is told each archive's outcome. An `Err` is a failure that
/// stopped the job retrieval as a whole (run again to resume).
pub fn retrieve_many(
    archiver: &dyn Archiver,
    wanted: &[Wanted],
    dest: &Path,
    rate: Rate<'_>,
    report: &mut dyn FnMut(&Wanted, Result<PathBuf, ArchiveError>),
) -> Result<(), ArchiveError> {
    let Some(jobs) = archiver.job_retrieval() else {
        for w in wanted {
            report(w, retrieve_one(archiver, w, dest, rate.stream));
        }
        return Ok(());
    };
    let mut chosen: Vec<(&Wanted, PathBuf, PathBuf)> = Vec::new();
    for w in wanted {
        let out = dest.join(&w.file);
        if out.symlink_metadata().is_ok() {
            report(w, Err(ArchiveError::AlreadyExists(out)));
            continue;
        }
        let part = dest.join(format!("{}.part", w.file));
        chosen.push((w, part, out));
    }
    let targets: Vec<PartTarget<'_>> = chosen
        .iter()
        .map(|(w, part, _)| PartTarget {
            set: &w.set,
            unit: &w.unit,
            meta: &w.meta,
            part,
        })
        .collect();
    jobs.retrieve_parts(&targets, rate.bytes_per_hour, &mut |i, r| {
        let (w, part, out) = &chosen[i];
        report(
            w,
            r.and_then(|()| finish_part(part, out, &w.set, &w.unit, &w.meta)),
        );
    })
}

/// Whether `path` is a retrieved archive of `set` and `unit` with `meta`'s
/// size and sha256 (as recorded by a finished retrieve).
fn already_retrieved(path: &Path, set: &str, unit: &str, meta: &ArchiveMeta) -> bool {
    let rec = |name: &str| xattrs::get_text(path, name).ok().flatten();
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == meta.size)
        && rec(xattrs::ARCHIVE_SHA256).as_deref() == Some(meta.sha256.as_str())
        && rec(xattrs::ARCHIVE_SET).as_deref() == Some(set)
        && rec(xattrs::ARCHIVE_UNIT).as_deref() == Some(unit)
}

/// The outcome of one unit's chain: its files in the order to unpack them.
pub type ChainFetched = Result<Vec<PathBuf>, ArchiveError>;

/// One unit's chain as planned: each archive's set and where it goes.
type ChainFiles = Result<Vec<(String, PathBuf)>, ArchiveError>;

/// Fetch into `dest` the archives that restore each of `units` as of `set`:
/// each unit's chain, full first, all through one [`retrieve_many`] (an
/// archiver that retrieves by jobs requests them together); `report` is
/// told each unit's files in the order to unpack them, or why not.
pub fn retrieve_chains(
    archiver: &dyn Archiver,
    set: &str,
    units: &[String],
    dest: &Path,
    rate: Rate<'_>,
    report: &mut dyn FnMut(&str, ChainFetched),
) -> Result<(), ArchiveError> {
    let resolved: Vec<(&String, Result<Vec<chain::ChainMember>, ArchiveError>)> = units
        .iter()
        .map(|unit| (unit, chain::resolve(archiver, set, unit)))
        .collect();
    let pairs: Vec<(&str, &str)> = resolved
        .iter()
        .filter_map(|(unit, r)| r.as_ref().ok().map(|ms| (unit, ms)))
        .flat_map(|(unit, ms)| ms.iter().map(move |m| (m.set.as_str(), unit.as_str())))
        .collect();
    let mut names = retrieved_names(&pairs).into_iter();
    let mut plans: Vec<(&String, ChainFiles)> = Vec::new();
    let mut wanted = Vec::new();
    for (unit, members) in resolved {
        let members = match members {
            Ok(m) => m,
            Err(e) => {
                plans.push((unit, Err(e)));
                continue;
            }
        };
        let mut files = Vec::with_capacity(members.len());
        for m in members {
            let file = names.next().expect("a name for each member");
            let path = dest.join(&file);
            if !already_retrieved(&path, &m.set, unit, &m.meta) {
                wanted.push(Wanted {
                    set: m.set.clone(),
                    unit: unit.clone(),
                    meta: m.meta,
                    file,
                });
            }
            files.push((m.set, path));
        }
        plans.push((unit, Ok(files)));
    }
    let mut outcomes: std::collections::BTreeMap<(String, String), Result<PathBuf, ArchiveError>> =
        std::collections::BTreeMap::new();
    retrieve_many(archiver, &wanted, dest, rate, &mut |w, r| {
        outcomes.insert((w.set.clone(), w.unit.clone()), r);
    })?;
    for (unit, plan) in plans {
        let fetched = plan.and_then(|files| {
            files
                .into_iter()
                .map(|(s, path)| match outcomes.remove(&(s, unit.clone())) {
                    Some(r) => r,
                    None => Ok(path),
                })
                .collect()
        });
        report(unit, fetched);
    }
    Ok(())
}
