//! Retrieve archives of a set into a directory: rate limited, resumable,
//! checked.
//!
//! Each archive goes to `DESTDIR/<snapshot>:<unit-with-dashes>.part` first;
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

use super::archivers::PartTarget;
use super::rate::RateLimit;
use super::unpack::{write_meta, write_origin};
use super::{ArchiveError, ArchiveMeta, Archiver, retrieved_name};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Fetch `unit` of `set` into `dest`; returns the final path.
pub fn retrieve_one(
    archiver: &dyn Archiver,
    set: &str,
    unit: &str,
    meta: &ArchiveMeta,
    dest: &Path,
    rate: Option<&RateLimit>,
) -> Result<PathBuf, ArchiveError> {
    let out = dest.join(retrieved_name(set, unit));
    if out.symlink_metadata().is_ok() {
        return Err(ArchiveError::AlreadyExists(out));
    }
    let part = dest.join(format!("{}.part", retrieved_name(set, unit)));
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
            report(
                w,
                retrieve_one(archiver, &w.set, &w.unit, &w.meta, dest, rate.stream),
            );
        }
        return Ok(());
    };
    let mut chosen: Vec<(&Wanted, PathBuf, PathBuf)> = Vec::new();
    for w in wanted {
        let out = dest.join(retrieved_name(&w.set, &w.unit));
        if out.symlink_metadata().is_ok() {
            report(w, Err(ArchiveError::AlreadyExists(out)));
            continue;
        }
        let part = dest.join(format!("{}.part", retrieved_name(&w.set, &w.unit)));
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
