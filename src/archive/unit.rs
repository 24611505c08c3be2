//! One unit of one set (`archive unit`, a child of `archive run`): decide
//! whether its archive is a full or a diff ([`super::chain::plan_step`]),
//! pack it, and upload it: the chain state first, the archive last.
//!
//! The base of a diff is the unit's archive in the newest complete set
//! older than this one; its chain state comes from the local cache when
//! that holds the very state stored, else from the store (checked as an
//! archive is). A base whose state cannot be read (a missing secret key on
//! this machine, a damaged state) makes this archive a full, said in the
//! unit's log: a diff is never made on a guess.
//!
//! Crash behaviour: the spool files (the archive, the snapshot file, the
//! sealed state) are `archive-<pid>-*` and go with `clean_spool`; a state
//! stored without its archive is replaced by the next attempt and is an
//! orphan for `resync`.

use super::chain::{self, ChainLink, ChainStep, FullReason, StateCache};
use super::{ArchiveEnv, ArchiveError, ArchiveMeta, Archiver, pack};
use crate::config::Compression;
use std::path::Path;
use std::time::Instant;

/// What to archive and how.
#[derive(Debug, Clone)]
pub struct UnitJob<'a> {
    pub profile: &'a str,
    pub set: &'a str,
    /// The mounted snapshot.
    pub mount: &'a Path,
    pub unit: &'a str,
    pub compression: Compression,
    /// The profile's `diffs`.
    pub diffs: u32,
    /// The profile's complete sets, when the caller listed them already
    /// (`archive run` does, once for all its units).
    pub complete_sets: Option<Vec<String>>,
}

/// What was archived.
#[derive(Debug, Clone)]
pub struct UnitArchived {
    pub meta: ArchiveMeta,
    /// Full or diff; `None` without a chain (`diffs: 0`).
    pub link: Option<ChainLink>,
    /// Why a full, when the profile has diffs.
    pub full_because: Option<FullReason>,
    /// Seconds spent packing (tar, compression, gpg).
    pub pack_secs: f64,
    /// Lines for the unit's log.
    pub notes: Vec<String>,
}

/// The newest complete set older than `set` that holds `unit`, and that
/// archive's chain link; `complete` are the profile's complete sets when
/// known (one listing for a whole run), else they are listed here.
pub fn find_base(
    archiver: &dyn Archiver,
    set: &str,
    unit: &str,
    complete: Option<&[String]>,
) -> Result<Option<(String, Option<ChainLink>)>, ArchiveError> {
    let mut candidates: Vec<String> = match complete {
        Some(c) => c.to_vec(),
        None => archiver
            .list_sets()?
            .into_iter()
            .filter(|(_, info)| info.complete)
            .map(|(n, _)| n)
            .collect(),
    };
    candidates.retain(|c| !c.is_empty() && c.as_str() < set);
    candidates.sort();
    for name in candidates.iter().rev() {
        // why: one request for this unit, not a listing of every archive of the set
        match archiver.archive_meta(name, unit) {
            Ok(_) => return Ok(Some((name.clone(), archiver.chain_link(name, unit)?))),
            Err(ArchiveError::NoSuchArchive { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Pack `job.unit` and upload it into `job.set`.
pub fn archive_unit(
    env: &ArchiveEnv,
    archiver: &dyn Archiver,
    job: &UnitJob,
) -> Result<UnitArchived, ArchiveError> {
    if job.diffs == 0 {
        let t = Instant::now();
        let packed = pack::pack(env, job.set, job.mount, job.unit, job.compression, None)?;
        let pack_secs = t.elapsed().as_secs_f64();
        archiver.upload_archive(job.set, job.unit, &packed.meta, packed.file.path())?;
        packed.file.close().map_err(ArchiveError::io(&env.spool))?;
        return Ok(UnitArchived {
            meta: packed.meta,
            link: None,
            full_because: None,
            pack_secs,
            notes: Vec::new(),
        });
    }
    if !archiver.supports_chains() {
        return Err(ArchiveError::ChainsUnsupported(archiver.kind()));
    }
    let mut notes = Vec::new();
    let base = find_base(archiver, job.set, job.unit, job.complete_sets.as_deref())?;
    let mut step = chain::plan_step(
        job.diffs,
        base.as_ref().map(|(s, l)| (s.as_str(), l.as_ref())),
    );
    let cache = StateCache::new(env, job.profile, job.unit);
    let mut base_state = None;
    if let (ChainStep::Diff { base: b, .. }, Some((_, Some(link)))) = (&step, &base) {
        let got = match cache.get(b, link) {
            Some(s) => Ok(s),
            None => chain::fetch_state(env, archiver, b, job.unit, link),
        };
        match got.map(|s| chain::rewrite_snar(&s, None)) {
            Ok(Ok(s)) => base_state = Some(s),
            Ok(Err(e)) => {
                notes.push(format!(
                    "the chain state of {b} is unusable ({e}); archiving a full"
                ));
                step = ChainStep::Full(FullReason::BaseUnreadable { base: b.clone() });
            }
            Err(e) => {
                notes.push(format!(
                    "cannot read the chain state of {b} ({}); archiving a full",
                    crate::error::chain(&e)
                ));
                step = ChainStep::Full(FullReason::BaseUnreadable { base: b.clone() });
            }
        }
    }
    // why: a directory named archive-<pid>-*, so that clean_spool removes it after a kill
    std::fs::create_dir_all(&env.spool).map_err(ArchiveError::io(&env.spool))?;
    let work = tempfile::Builder::new()
        .prefix(&format!("archive-{}-", std::process::id()))
        .tempdir_in(&env.spool)
        .map_err(ArchiveError::io(&env.spool))?;
    let snar = work.path().join("snar");
    if let Some(s) = &base_state {
        std::fs::write(&snar, s).map_err(ArchiveError::io(&snar))?;
    }
    let unit_dir = job.mount.join(job.unit);
    let stamp = chain::newest_ctime(&unit_dir).map_err(ArchiveError::io(&unit_dir))?;
    let t = Instant::now();
    let packed = pack::pack(
        env,
        job.set,
        job.mount,
        job.unit,
        job.compression,
        Some(&snar),
    )?;
    let pack_secs = t.elapsed().as_secs_f64();
    let written = std::fs::read(&snar).map_err(ArchiveError::io(&snar))?;
    let state =
        chain::rewrite_snar(&written, Some(stamp)).map_err(|e| ArchiveError::BadMetadata {
            file: snar.clone(),
            reason: e.to_string(),
        })?;
    let sealed = chain::seal(env, &state)?;
    let (base_set, level, full_because) = match step {
        ChainStep::Diff { base, level } => (Some(base), level, None),
        ChainStep::Full(why) => (None, 0, Some(why)),
    };
    let link = ChainLink {
        base: base_set,
        level,
        state: sealed.meta.clone(),
    };
    archiver.put_chain(job.set, job.unit, &link, sealed.file.path())?;
    archiver.upload_archive(job.set, job.unit, &packed.meta, packed.file.path())?;
    cache.put(job.set, &sealed.meta.sha256, &state);
    packed.file.close().map_err(ArchiveError::io(&env.spool))?;
    work.close().map_err(ArchiveError::io(&env.spool))?;
    Ok(UnitArchived {
        meta: packed.meta,
        link: Some(link),
        full_because,
        pack_secs,
        notes,
    })
}
