//! Retrieval from a Glacier vault by jobs, as Deltaic does it and resumable:
//! each archive is requested in byte ranges, each range a job sized to
//! what the shared hourly budget allows ([`super::budget`]) and aligned to
//! 1 MiB and to the tree hash ([`treehash::aligned_len`]); jobs are polled
//! and each finished range is written at its offset in the `.part` file and
//! checked against the tree hash Glacier reports for it.
//!
//! State: beside each `<name>.part`, `<name>.part.jobs` (JSON: the archive
//! id and size, and every range requested: start, length, job id, whether
//! it is written). It is saved after every job request and every range
//! written, so a retrieve killed at any point resumes with the jobs it
//! already paid for: a range is requested again only when Glacier has
//! forgotten its job (job output is kept 24 hours) before it was written.
//! It is removed when the file is whole; a `.part` of full length without
//! it is a whole file whose rename was interrupted, and is checked as such.
//!
//! Archives are requested in the order given, ranges in offset order;
//! requests stop at the first refusal of the budget until the slot it
//! names, jobs are polled every `poll`, and downloads happen as jobs finish.

use super::AwsError;
use super::budget::{self, Grant, Slots};
use super::glacier::{Job, JobStatus, Vault};
use super::sdb::SimpleDb;
use super::treehash::{self, TreeHasher};
use crate::archive::ArchiveError;
use crate::archive::archivers::PartTarget;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One requested range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeState {
    pub start: u64,
    pub len: u64,
    pub job: String,
    /// Written into the `.part` file and checked.
    pub done: bool,
}

/// What the `.part.jobs` file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    pub archive_id: String,
    pub size: u64,
    pub ranges: Vec<RangeState>,
}

impl PartState {
    /// The first byte range no job covers: (start, length).
    #[must_use]
    pub fn first_hole(&self) -> Option<(u64, u64)> {
        let mut sorted: Vec<&RangeState> = self.ranges.iter().collect();
        sorted.sort_by_key(|r| r.start);
        let mut at = 0;
        for r in sorted {
            if r.start > at {
                return Some((at, r.start - at));
            }
            at = at.max(r.start + r.len);
        }
        (at < self.size).then(|| (at, self.size - at))
    }

    /// Every byte written.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.first_hole().is_none() && self.ranges.iter().all(|r| r.done)
    }

    /// Ranges requested and not yet written.
    pub fn outstanding(&self) -> impl Iterator<Item = &RangeState> {
        self.ranges.iter().filter(|r| !r.done)
    }
}

/// The state file of `part`.
#[must_use]
pub fn state_path(part: &Path) -> PathBuf {
    let mut s = part.as_os_str().to_owned();
    s.push(".jobs");
    PathBuf::from(s)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

fn save(path: &Path, state: &PartState) -> Result<(), ArchiveError> {
    let tmp = {
        let mut s = path.as_os_str().to_owned();
        s.push(".tmp");
        PathBuf::from(s)
    };
    let text = serde_json::to_vec_pretty(state).expect("plain data serialises");
    let f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all_at(&text, 0).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// An archive being retrieved.
struct Active<'t> {
    idx: usize,
    target: &'t PartTarget<'t>,
    state: PartState,
    state_file: PathBuf,
    /// Reported (done or failed).
    over: bool,
}

/// The retrieval of one call.
pub struct Engine<'a> {
    pub vault: &'a Vault,
    pub db: &'a dyn SimpleDb,
    pub domain: &'a str,
    pub slots: Slots,
    pub poll: Duration,
    /// Bytes per hour this process may reserve.
    pub rate: u64,
}

/// How `Engine::start` found an archive's files.
enum Start {
    /// Resume or begin with this state.
    Go(PartState),
    /// The `.part` is whole already.
    Whole,
}

impl Engine<'_> {
    /// Retrieve `targets` (with their archive ids) into their `.part` files;
    /// `done(i, result)` once per target. An error of a call to AWS ends the
    /// run (everything so far is saved: run again to resume).
    pub fn run(
        &self,
        targets: &[(&PartTarget<'_>, String)],
        done: &mut dyn FnMut(usize, Result<(), ArchiveError>),
    ) -> Result<(), ArchiveError> {
        let mut active = Vec::new();
        for (idx, (t, aid)) in targets.iter().enumerate() {
            let state_file = state_path(t.part);
            match Engine::start(t, aid, &state_file)? {
                Start::Whole => done(idx, Ok(())),
                Start::Go(state) => active.push(Active {
                    idx,
                    target: t,
                    state,
                    state_file,
                    over: false,
                }),
            }
        }
        let mut refused_until: Option<DateTime<Utc>> = None;
        let mut next_poll = Instant::now();
        loop {
            if Instant::now() >= next_poll {
                for a in active.iter_mut().filter(|a| !a.over) {
                    self.poll_one(a, done)?;
                }
                next_poll = Instant::now() + self.poll;
            }
            let holes = |active: &[Active<'_>]| {
                active
                    .iter()
                    .any(|a| !a.over && a.state.first_hole().is_some())
            };
            if holes(&active) && refused_until.is_none_or(|t| Utc::now() >= t) {
                refused_until = self.request(&mut active)?;
            }
            if active.iter().all(|a| a.over) {
                return Ok(());
            }
            let waiting_jobs = active
                .iter()
                .any(|a| !a.over && a.state.outstanding().next().is_some());
            let now = Instant::now();
            let mut wake = if waiting_jobs {
                next_poll
            } else {
                now + Duration::from_hours(1)
            };
            if let Some(t) = refused_until.filter(|_| holes(&active)) {
                wake = wake.min(now + (t - Utc::now()).to_std().unwrap_or_default());
            }
            if wake > now {
                std::thread::sleep(wake - now);
            }
        }
    }

    fn start(t: &PartTarget<'_>, aid: &str, state_file: &Path) -> Result<Start, ArchiveError> {
        let saved: Option<PartState> = std::fs::read(state_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match saved {
            Some(s) if s.archive_id == aid && s.size == t.meta.size => {
                let written = s.ranges.iter().filter(|r| r.done).count();
                if !s.ranges.is_empty() {
                    eprintln!(
                        "{}: resuming: {} of {} requested ranges written",
                        t.unit,
                        written,
                        s.ranges.len()
                    );
                }
                Ok(Start::Go(s))
            }
            _ => {
                let len = std::fs::metadata(t.part).map_or(0, |m| m.len());
                if len == t.meta.size && len > 0 && !state_file.exists() {
                    return Ok(Start::Whole);
                }
                // why: bytes of another archive id, or of a stream download, cannot be trusted at their offsets
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(t.part)
                    .map_err(io(t.part))?;
                let state = PartState {
                    archive_id: aid.to_owned(),
                    size: t.meta.size,
                    ranges: Vec::new(),
                };
                save(state_file, &state)?;
                Ok(Start::Go(state))
            }
        }
    }

    /// Request ranges while the budget allows; returns when to try again
    /// if the budget refused one (`None`: every byte is requested).
    fn request(&self, active: &mut [Active<'_>]) -> Result<Option<DateTime<Utc>>, ArchiveError> {
        for a in active.iter_mut().filter(|a| !a.over) {
            while let Some((start, hole)) = a.state.first_hole() {
                let size = a.state.size;
                let choose = |allowed: u64| treehash::aligned_len(start, size, allowed.min(hole));
                let grant = budget::reserve(
                    self.db,
                    self.domain,
                    self.slots,
                    self.rate,
                    &Utc::now,
                    &choose,
                )
                .map_err(AwsError::from)?;
                let len = match grant {
                    Grant::Wait { retry_at } => return Ok(Some(retry_at)),
                    Grant::Granted { len, .. } => len,
                };
                let range = format!("{start}-{}", start + len - 1);
                let description = format!("{} {} {range}", a.target.set, a.target.unit);
                let job =
                    self.vault
                        .request_range(&a.state.archive_id, start, len, &description)?;
                eprintln!("{}: requested bytes {range} (job {job})", a.target.unit);
                a.state.ranges.push(RangeState {
                    start,
                    len,
                    job,
                    done: false,
                });
                save(&a.state_file, &a.state)?;
            }
        }
        Ok(None)
    }

    /// Check `a`'s outstanding jobs and write the finished ones.
    fn poll_one(
        &self,
        a: &mut Active<'_>,
        done: &mut dyn FnMut(usize, Result<(), ArchiveError>),
    ) -> Result<(), ArchiveError> {
        let pending: Vec<RangeState> = a.state.outstanding().cloned().collect();
        for r in pending {
            let expected_range = format!("{}-{}", r.start, r.start + r.len - 1);
            let job = self.vault.job(&r.job)?;
            let job = match job {
                Some(j)
                    if j.archive_id.as_deref() == Some(a.state.archive_id.as_str())
                        && j.range.as_deref().is_none_or(|g| g == expected_range) =>
                {
                    j
                }
                _ => {
                    eprintln!(
                        "{}: job {} for bytes {expected_range} is gone; it will be requested again",
                        a.target.unit, r.job
                    );
                    a.state.ranges.retain(|x| x.job != r.job);
                    save(&a.state_file, &a.state)?;
                    continue;
                }
            };
            match job.status {
                JobStatus::InProgress => {}
                JobStatus::Failed => {
                    a.over = true;
                    done(
                        a.idx,
                        Err(AwsError::JobFailed {
                            job: job.id,
                            message: job.message.unwrap_or_default(),
                        }
                        .into()),
                    );
                    return Ok(());
                }
                JobStatus::Succeeded => {
                    if let Err(e) = self.fetch(a, &r, &job)? {
                        a.over = true;
                        done(a.idx, Err(e.into()));
                        return Ok(());
                    }
                    for x in &mut a.state.ranges {
                        if x.job == r.job {
                            x.done = true;
                        }
                    }
                    save(&a.state_file, &a.state)?;
                    eprintln!("{}: retrieved bytes {expected_range}", a.target.unit);
                    crate::fault::point("aws-range-retrieved");
                }
            }
        }
        if a.state.complete() {
            std::fs::remove_file(&a.state_file).map_err(io(&a.state_file))?;
            a.over = true;
            done(a.idx, Ok(()));
        }
        Ok(())
    }

    /// Write the output of `job` (range `r`) at its offset; the inner error
    /// fails only this archive.
    fn fetch(
        &self,
        a: &Active<'_>,
        r: &RangeState,
        job: &Job,
    ) -> Result<Result<(), AwsError>, ArchiveError> {
        let part = a.target.part;
        let (mut body, header) = self.vault.output(&job.id)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)
            .map_err(io(part))?;
        let mut hasher = TreeHasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ArchiveError::Download {
                        archiver: "aws",
                        set: a.target.set.to_owned(),
                        unit: a.target.unit.to_owned(),
                        offset: r.start + hasher.len(),
                        source,
                    });
                }
            };
            if hasher.len() + n as u64 > r.len {
                return Ok(Err(AwsError::JobOutput {
                    job: job.id.clone(),
                    detail: format!("more than the {} bytes requested", r.len),
                }));
            }
            file.write_all_at(&buf[..n], r.start + hasher.len())
                .map_err(io(part))?;
            hasher.update(&buf[..n]);
        }
        if hasher.len() != r.len {
            return Ok(Err(AwsError::JobOutput {
                job: job.id.clone(),
                detail: format!("{} bytes of the {} requested", hasher.len(), r.len),
            }));
        }
        file.sync_data().map_err(io(part))?;
        let got = treehash::to_hex(&hasher.finish());
        for claimed in [job.tree_hash.as_deref(), header.as_deref()]
            .into_iter()
            .flatten()
        {
            if !claimed.eq_ignore_ascii_case(&got) {
                return Ok(Err(AwsError::TreeHash {
                    what: format!(
                        "bytes {}-{} of {} (job {})",
                        r.start,
                        r.start + r.len - 1,
                        a.target.unit,
                        job.id
                    ),
                    expected: claimed.to_owned(),
                    actual: got,
                }));
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, len: u64, done: bool) -> RangeState {
        RangeState {
            start,
            len,
            job: format!("j{start}"),
            done,
        }
    }

    #[test]
    fn holes_are_what_no_job_covers() {
        let s = |size, ranges: Vec<RangeState>| PartState {
            archive_id: "a".into(),
            size,
            ranges,
        };
        // (state, first hole, complete)
        let cases = [
            (s(10, vec![]), Some((0, 10)), false),
            (s(10, vec![r(0, 4, true)]), Some((4, 6)), false),
            (
                s(10, vec![r(4, 2, false), r(0, 4, true)]),
                Some((6, 4)),
                false,
            ),
            (
                s(10, vec![r(0, 4, true), r(8, 2, false)]),
                Some((4, 4)),
                false,
            ),
            (s(10, vec![r(0, 4, true), r(4, 6, false)]), None, false),
            (s(10, vec![r(4, 6, true), r(0, 4, true)]), None, true),
            (s(0, vec![]), None, true),
        ];
        for (state, hole, complete) in cases {
            assert_eq!(state.first_hole(), hole, "{state:?}");
            assert_eq!(state.complete(), complete, "{state:?}");
        }
    }

    #[test]
    fn the_state_file_sits_beside_the_part() {
        assert_eq!(
            state_path(Path::new("/r/20261130-1:dump-u.part")),
            Path::new("/r/20261130-1:dump-u.part.jobs")
        );
    }
}
