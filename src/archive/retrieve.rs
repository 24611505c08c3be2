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
//! A diff is fetched with its chain ([`retrieve_chain`]): the full and
//! every diff after it, in order, each a file of its own; an archive of the
//! chain already in DESTDIR with its size and sha256 (another snapshot of
//! the same chain retrieved before) is used as it is.

use super::chain::{self, ChainMember};
use super::rate::RateLimit;
use super::unpack::{write_meta, write_origin};
use super::{ArchiveError, ArchiveMeta, Archiver, retrieved_name};
use crate::backup_root::xattrs;
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
    let (sha, size) = super::hash_file(&part)?;
    if size != meta.size {
        return Err(ArchiveError::SizeMismatch {
            file: part,
            expected: meta.size,
            actual: size,
        });
    }
    if sha != meta.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(ArchiveError::Sha256Mismatch {
            file: part,
            expected: meta.sha256.clone(),
            actual: sha,
        });
    }
    write_meta(&part, meta)?;
    write_origin(&part, set, unit)?;
    std::fs::rename(&part, &out).map_err(ArchiveError::io(&out))?;
    Ok(out)
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

/// Fetch the archives that restore `unit` as of `set` into `dest`: its
/// chain, full first; returns the files in the order to unpack them.
pub fn retrieve_chain(
    archiver: &dyn Archiver,
    set: &str,
    unit: &str,
    dest: &Path,
    rate: Option<&RateLimit>,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let members: Vec<ChainMember> = chain::resolve(archiver, set, unit)?;
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let path = dest.join(retrieved_name(&m.set, unit));
        if already_retrieved(&path, &m.set, unit, &m.meta) {
            out.push(path);
            continue;
        }
        out.push(retrieve_one(archiver, &m.set, unit, &m.meta, dest, rate)?);
    }
    Ok(out)
}
