//! Backing up an RBD image into its sparse image file
//! (`<root>/rbd/<pool>/images/<name>`), incrementally, with a crash protocol.
//!
//! The file equals the image at the RBD snapshot named by its
//! `user.rbd.snapshot` xattr; strata keeps exactly that one `backup-<uuid>`
//! snapshot on the image between runs.
//!
//! ## An incremental run (stored snapshot `S` still on the image)
//! 1. choose a new name `P`; set `user.rbd.pending-snapshot = P` on the file
//!    (before the snapshot exists, so that no crash can leak it);
//! 2. `rbd snap create POOL/IMAGE@P`;
//! 3. stream `rbd export-diff --from-snap S POOL/IMAGE@P -` into
//!    `<file>.pending.part`, parsing it as it arrives ([`validate_diff`]);
//!    `fsync`, rename to `<file>.pending`: a `.pending` file is always a
//!    complete diff from `S` to `P`;
//! 4. apply it to the file ([`apply_diff`]: only differing blocks written,
//!    zeros punched, `fsync`);
//! 5. set `user.rbd.snapshot = P`;
//! 6. `rbd snap rm S` (already gone is fine);
//! 7. remove the pending xattr, then the `.pending` file.
//!
//! ## A full run (no stored snapshot, or it is no longer on this image)
//! A stored snapshot that now belongs to another image (the friendly name was
//! pointed elsewhere) is removed from that image first. Then: create the file
//! if needed, set `pending = P`, remove `user.rbd.snapshot`, `rbd snap create`,
//! truncate the file, and stream `rbd export-diff POOL/IMAGE@P -` straight
//! into [`apply_diff`]; then `snapshot = P`, remove `pending`.
//!
//! ## After a crash, the next run first finishes what it finds ([`plan`])
//! - `pending = P`, `snapshot = S`, S on the image: resume the incremental at
//!   step 2 (when `P` does not exist yet), 3 (no `.pending`: export again) or
//!   4 (`.pending` present: it is validated again, then applied: applying is
//!   idempotent, so a half-applied diff is simply applied again);
//! - `pending = snapshot = P`: steps 6-7 (`S` is read from the `.pending`
//!   diff's `f` record);
//! - `pending = P` and no usable `snapshot`: redo the full fetch of `P`;
//! - no `pending`: a leftover `.pending`/`.pending.part` is deleted.
//!
//! A `.pending` diff that fails validation is an error: it is deleted and the
//! image file is left as it was; the next run exports it again. An error other
//! than a crash (rbd failing, a corrupt export) removes `P` and the pending
//! mark, so nothing leaks even if the unit is then dropped from the config.
//!
//! Fault injection for the tests: [`super::fault`].

use super::apply::{ApplyStats, apply_diff};
use super::diff::{DiffReader, DiffSummary, Record, validate_diff, validate_diff_file};
use super::fault::{self, FaultReader};
use super::scrub::scrub_file;
use super::tool::{Rbd, Removal, SnapInfo, is_backup_snapshot, new_snapshot_name};
use super::{RbdError, io_err};
use crate::backup_root::{self, xattrs};
use crate::sources::{Check, UnitReport};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The files of one image unit.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    pub image: PathBuf,
    /// The complete diff being applied (Deltaic's name).
    pub pending: PathBuf,
    /// The diff while it is being exported.
    pub part: PathBuf,
}

impl ImageFiles {
    #[must_use]
    pub fn new(image: &Path) -> ImageFiles {
        let with = |ext: &str| {
            let mut s = image.as_os_str().to_owned();
            s.push(ext);
            PathBuf::from(s)
        };
        ImageFiles {
            image: image.to_owned(),
            pending: with(".pending"),
            part: with(".pending.part"),
        }
    }

    fn dir(&self) -> &Path {
        self.image.parent().unwrap_or(Path::new("."))
    }
}

/// The xattrs of an image file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub snapshot: Option<String>,
    pub pending: Option<String>,
}

impl Stored {
    /// # Errors
    /// Reading the xattrs failed.
    pub fn read(path: &Path) -> Result<Stored, RbdError> {
        if !path.exists() {
            return Ok(Stored::default());
        }
        let get = |name| {
            xattrs::get_text(path, name)
                .map(|v| v.filter(|s| !s.is_empty()))
                .map_err(io_err(path))
        };
        Ok(Stored {
            snapshot: get(xattrs::RBD_SNAPSHOT)?,
            pending: get(xattrs::RBD_PENDING_SNAPSHOT)?,
        })
    }
}

/// What one image backup did.
#[derive(Debug, Clone, Default)]
struct Done {
    full: bool,
    stats: ApplyStats,
}

/// Back up `image` of `rbd`'s pool into the file `path`.
///
/// # Errors
/// rbd, the diff, or the file; the stored image is never worse than before.
pub fn backup_image(
    rbd: &Rbd,
    image: &str,
    path: &Path,
    check: Check,
) -> Result<UnitReport, RbdError> {
    let files = ImageFiles::new(path);
    std::fs::create_dir_all(files.dir()).map_err(io_err(files.dir()))?;
    let mut snaps = rbd.snap_ls(image)?;

    // 1. finish what an interrupted run left
    let stored = Stored::read(path)?;
    if let Some(step) = plan(&stored, &snaps, Phase::Recover) {
        eprintln!(
            "finishing a backup interrupted at snapshot {}",
            stored.pending.as_deref().unwrap_or("?")
        );
        run_step(rbd, image, &files, &step)?;
        snaps = rbd.snap_ls(image)?;
    } else {
        remove_stale(&files)?;
    }

    // 2. this run's backup
    let stored = Stored::read(path)?;
    let step =
        plan(&stored, &snaps, Phase::Run(new_snapshot_name())).expect("a run always has a step");
    if let Step::Full { to, .. } = &step {
        warn_unnamed(rbd, image, &snaps, to);
    }
    let stats = run_step(rbd, image, &files, &step)?.unwrap_or_default();
    let (new, full_fetch) = match &step {
        Step::Incremental { to, .. } => (to.clone(), false),
        Step::Full { to, .. } | Step::FinishRebase { to } => (to.clone(), true),
    };
    let done = Done {
        full: full_fetch,
        stats,
    };

    // 3. scrub
    let mut repaired = 0;
    if check == Check::Scrub {
        repaired = scrub_against(rbd, image, &new, path)?;
    }

    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    let st = &done.stats;
    let summary = format!(
        "{} to {new}: {} bytes written, {} unchanged, {} punched; image {} bytes, {} allocated{}",
        if done.full {
            "full fetch".to_owned()
        } else {
            format!(
                "incremental from {}",
                stored.snapshot.as_deref().unwrap_or("?")
            )
        },
        st.bytes_written,
        st.bytes_unchanged,
        st.bytes_punched,
        meta.len(),
        meta.blocks() * 512,
        if check == Check::Scrub {
            format!("; scrub repaired {repaired} ranges")
        } else {
            String::new()
        },
    );
    println!("{summary}");
    Ok(UnitReport {
        bytes: meta.blocks() * 512,
        changed: done.full || st.bytes_written > 0 || st.bytes_punched > 0,
        scrubbed: check == Check::Scrub,
        repaired,
        summary,
    })
}

/// Which backup a run is planning: finishing an interrupted one, or its own
/// (with the name of its new snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Recover,
    Run(String),
}

/// One step of the protocol (module doc), decided from the xattrs and the
/// image's snapshots alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Steps 6-7: the image holds `to`; remove the old snapshot and the marks.
    FinishRebase { to: String },
    /// Steps 1-7 from `from` to `to` (`to_exists`: step 2 already done).
    Incremental {
        from: String,
        to: String,
        to_exists: bool,
    },
    /// A full fetch of `to`, after removing `foreign` (a stored snapshot not
    /// on this image) from wherever it is.
    Full {
        to: String,
        to_exists: bool,
        foreign: Option<String>,
    },
}

/// The step to take. `Recover` yields `None` when no backup was interrupted.
#[must_use]
pub fn plan(stored: &Stored, snaps: &[SnapInfo], phase: Phase) -> Option<Step> {
    let has = |name: &str| snaps.iter().any(|s| s.name == name);
    let (to, to_exists) = match phase {
        Phase::Recover => {
            let p = stored.pending.clone()?;
            let exists = has(&p);
            (p, exists)
        }
        Phase::Run(new) => (new, false),
    };
    Some(match &stored.snapshot {
        Some(s) if *s == to => Step::FinishRebase { to },
        Some(s) if has(s) => Step::Incremental {
            from: s.clone(),
            to,
            to_exists,
        },
        other => Step::Full {
            to,
            to_exists,
            foreign: other.clone(),
        },
    })
}

/// Carry out a step; the apply statistics when it applied a diff.
fn run_step(
    rbd: &Rbd,
    image: &str,
    files: &ImageFiles,
    step: &Step,
) -> Result<Option<ApplyStats>, RbdError> {
    match step {
        Step::FinishRebase { to } => {
            finish_rebase(rbd, image, files, to)?;
            Ok(None)
        }
        Step::Incremental {
            from,
            to,
            to_exists,
        } => incremental(rbd, image, files, from, to, *to_exists).map(Some),
        Step::Full {
            to,
            to_exists,
            foreign,
        } => {
            if let Some(s) = foreign {
                drop_foreign(rbd, image, s)?;
            }
            full(rbd, image, files, to, *to_exists).map(Some)
        }
    }
}

/// Compare the file with a full export of `image@snap`, repairing and
/// logging each differing range; returns the number of repairs.
///
/// # Errors
/// rbd or the file.
pub fn scrub_against(rbd: &Rbd, image: &str, snap: &str, path: &Path) -> Result<u64, RbdError> {
    let mut child = rbd.export(image, snap)?;
    // why: the export is as long as the image, which the file equals after the backup
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    let bar = crate::progress::Bar::bytes(&format!("scrub {image}@{snap}"), size);
    let res = scrub_file(bar.reader(&mut child), path, |offset, len| {
        bar.suspend(|| {
            eprintln!(
                "scrub: repaired bytes {offset}..{} ({len} bytes) of {}",
                offset + len,
                path.display()
            );
        });
    });
    bar.finish();
    let fin = child.finish();
    let stats = match (res, fin) {
        (_, Err(e)) => return Err(e.into()),
        (Err(e), Ok(_)) => return Err(RbdError::Scrub(e)),
        (Ok(s), Ok(_)) => s,
    };
    if let Some((was, now)) = stats.resized {
        eprintln!(
            "scrub: {} was {was} bytes, the snapshot {now}; resized",
            path.display()
        );
    }
    eprintln!(
        "scrub: compared {} bytes with {}, {} repairs ({} bytes)",
        stats.compared,
        rbd.spec(image, Some(snap)),
        stats.repairs(),
        stats.bytes_repaired
    );
    Ok(stats.repairs())
}

/// Before a full fetch to `to`: name the backup snapshots on `image` that
/// the file does not (its xattrs lost, or another backup server's, e.g. a
/// Deltaic still running). They are left alone, since strata cannot tell
/// whose they are, but each holds the image's old blocks in the cluster
/// and keeps the owner from removing the image.
fn warn_unnamed(rbd: &Rbd, image: &str, snaps: &[SnapInfo], to: &str) {
    let unnamed: Vec<String> = snaps
        .iter()
        .filter(|s| is_backup_snapshot(&s.name) && s.name != to)
        .map(|s| rbd.spec(image, Some(&s.name)))
        .collect();
    if !unnamed.is_empty() {
        eprintln!(
            "warning: {} also holds backup snapshots this unit's file does not name: {}. \
             They are another backup server's, or were left when the file lost its user.rbd.snapshot \
             xattr; strata leaves them. If no other backup uses them: rbd snap rm {}",
            rbd.spec(image, None),
            unnamed.join(", "),
            unnamed.join(" ; rbd snap rm "),
        );
    }
}

/// The stored snapshot is not on `image`: remove it from the image that has
/// it now, if any (it is strata's, and nothing else refers to it).
fn drop_foreign(rbd: &Rbd, image: &str, snap: &str) -> Result<(), RbdError> {
    match rbd.image_of_snapshot(snap)? {
        Some(other) => {
            eprintln!(
                "the stored snapshot {snap} belongs to image {other}, not {image}: removing it there; fetching {image} in full"
            );
            rbd.snap_rm(&other, snap)?;
        }
        None => eprintln!("the stored snapshot {snap} no longer exists; fetching {image} in full"),
    }
    Ok(())
}

/// What `rbd apply-diff` does with a diff onto an image file: the rules a
/// backup follows, applied by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandApply {
    /// A diff from the snapshot the file holds (or the same diff again):
    /// applied in place, marked pending meanwhile unless `pending_held`
    /// (an interrupted backup's own pending diff, left for it to finish).
    Incremental { to: String, pending_held: bool },
    /// A full export: it lists only the image's allocated extents, so the
    /// file is emptied first; merging would keep old bytes wherever the new
    /// image has never been written.
    Full { to: String },
}

/// Judge a diff (`from`: its `f` record, `to`: its `t` record) against what
/// the image file records; `Err` says why it cannot be applied.
pub fn plan_hand_apply(
    stored: &Stored,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<HandApply, String> {
    let Some(to) = to else {
        return Err(
            "it has no to-snapshot (`t`) record, so the file could not say which snapshot it holds"
                .into(),
        );
    };
    if let Some(p) = &stored.pending
        && p != to
    {
        return Err(format!(
            "an interrupted backup is pending (user.rbd.pending-snapshot is {p}): run `strata rbd backup` to finish it first"
        ));
    }
    let Some(from) = from else {
        return Ok(HandApply::Full { to: to.to_owned() });
    };
    match &stored.snapshot {
        None => Err(format!(
            "the image file records no snapshot (no user.rbd.snapshot), so it is not known to hold snapshot {from}: apply a full export first"
        )),
        Some(s) if s == from || s == to => Ok(HandApply::Incremental {
            to: to.to_owned(),
            pending_held: stored.pending.is_some(),
        }),
        Some(s) => Err(format!(
            "the image file holds snapshot {s}, but the diff goes from snapshot {from} to snapshot {to}"
        )),
    }
}

/// Apply the validated diff file `diff` to `image` by `plan`, keeping the
/// xattrs as a backup would: a crash at any point leaves marks from which
/// the next backup (or the same command again) gets a correct file.
pub fn apply_by_hand(diff: &Path, image: &Path, plan: &HandApply) -> Result<ApplyStats, RbdError> {
    let apply = |image: &Path| {
        let f = File::open(diff).map_err(io_err(diff))?;
        let size = f.metadata().map(|m| m.len()).ok();
        let bar = crate::progress::Bar::bytes(&format!("apply {}", file_name(image)), size);
        let applied = apply_diff(BufReader::new(bar.reader(f)), image);
        bar.finish();
        applied.map_err(|source| RbdError::Apply {
            path: image.to_owned(),
            source,
        })
    };
    match plan {
        HandApply::Incremental { to, pending_held } => {
            if !pending_held {
                set_xattr(image, xattrs::RBD_PENDING_SNAPSHOT, to)?;
            }
            let stats = apply(image)?;
            set_xattr(image, xattrs::RBD_SNAPSHOT, to)?;
            if !pending_held {
                remove_xattr(image, xattrs::RBD_PENDING_SNAPSHOT)?;
            }
            Ok(stats)
        }
        HandApply::Full { to } => {
            if image.exists() {
                // why: as a full backup: pending first, then the file stops claiming its old snapshot, then it is emptied
                set_xattr(image, xattrs::RBD_PENDING_SNAPSHOT, to)?;
                remove_xattr(image, xattrs::RBD_SNAPSHOT)?;
                OpenOptions::new()
                    .write(true)
                    .open(image)
                    .and_then(|f| f.set_len(0))
                    .map_err(io_err(image))?;
            }
            let stats = apply(image)?;
            set_xattr(image, xattrs::RBD_SNAPSHOT, to)?;
            remove_xattr(image, xattrs::RBD_PENDING_SNAPSHOT)?;
            Ok(stats)
        }
    }
}

/// The last component of `path`, for a bar's label.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn set_xattr(path: &Path, name: &str, value: &str) -> Result<(), RbdError> {
    xattr::set(path, name, value.as_bytes()).map_err(io_err(path))
}

fn remove_xattr(path: &Path, name: &str) -> Result<(), RbdError> {
    xattrs::remove_if_present(path, name).map_err(io_err(path))
}

fn remove_file_if_present(path: &Path) -> Result<(), RbdError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn remove_stale(files: &ImageFiles) -> Result<(), RbdError> {
    remove_file_if_present(&files.part)?;
    remove_file_if_present(&files.pending)
}

/// The incremental protocol from `s` to `p`, from whichever step the files
/// show (module doc). `p_exists`: the RBD snapshot `p` was already created.
fn incremental(
    rbd: &Rbd,
    image: &str,
    files: &ImageFiles,
    s: &str,
    p: &str,
    p_exists: bool,
) -> Result<ApplyStats, RbdError> {
    let path = &files.image;
    set_xattr(path, xattrs::RBD_PENDING_SNAPSHOT, p)?;
    let summary = if files.pending.exists() {
        match validate_file(&files.pending) {
            Ok(summary) => summary,
            Err(e) => {
                // why: the next run exports it again; the image was not touched
                remove_file_if_present(&files.pending)?;
                return Err(e);
            }
        }
    } else {
        remove_file_if_present(&files.part)?;
        let exported = (|| {
            if !p_exists {
                rbd.snap_create(image, p)?;
                fault::point("snapshot-created");
            }
            export_to_pending(rbd, image, s, p, files)
        })();
        match exported {
            Ok(summary) => summary,
            Err(e) => {
                abandon(rbd, image, files, p);
                return Err(e);
            }
        }
    };
    if summary.from_snap.as_deref() != Some(s) || summary.to_snap.as_deref() != Some(p) {
        remove_file_if_present(&files.pending)?;
        return Err(RbdError::DiffSnapshots {
            path: files.pending.clone(),
            want_from: Some(s.to_owned()),
            want_to: p.to_owned(),
            found_from: summary.from_snap,
            found_to: summary.to_snap,
        });
    }
    fault::point("pending-written");
    let diff = File::open(&files.pending).map_err(io_err(&files.pending))?;
    let bar =
        crate::progress::Bar::bytes(&format!("apply {image}@{p}"), Some(summary.stream_bytes));
    let reader = FaultReader::new(
        BufReader::with_capacity(1 << 20, bar.reader(diff)),
        "apply",
        summary.stream_bytes / 2,
    );
    let applied = apply_diff(reader, path);
    bar.finish();
    let stats = applied.map_err(|source| RbdError::Apply {
        path: path.clone(),
        source,
    })?;
    fault::point("applied");
    set_xattr(path, xattrs::RBD_SNAPSHOT, p)?;
    fault::point("before-old-snapshot-delete");
    rbd.snap_rm(image, s)?;
    remove_xattr(path, xattrs::RBD_PENDING_SNAPSHOT)?;
    remove_file_if_present(&files.pending)?;
    backup_root::sync_dir(files.dir()).map_err(io_err(files.dir()))?;
    Ok(stats)
}

/// Steps 6-7 after a crash that came after step 5.
fn finish_rebase(rbd: &Rbd, image: &str, files: &ImageFiles, p: &str) -> Result<(), RbdError> {
    if let Some(old) = from_snap_of(&files.pending)
        && old != p
        && rbd.snap_rm(image, &old)? == Removal::Removed
    {
        eprintln!("removed the previous snapshot {old}");
    }
    remove_xattr(&files.image, xattrs::RBD_PENDING_SNAPSHOT)?;
    remove_stale(files)
}

/// The `f` record of a diff file, read from its head only.
fn from_snap_of(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut diff = DiffReader::new(file).ok()?;
    while let Ok(Some(record)) = diff.next_record() {
        match record {
            Record::FromSnap(name) => return Some(name),
            Record::ToSnap(_) | Record::Size(_) => {}
            Record::Write(_) | Record::Zero { .. } => return None,
        }
    }
    None
}

/// An error other than a crash: remove `p` and the pending mark, so that no
/// snapshot leaks (best effort: the error being reported matters more).
fn abandon(rbd: &Rbd, image: &str, files: &ImageFiles, p: &str) {
    if let Err(e) = rbd.snap_rm(image, p) {
        eprintln!("warning: could not remove snapshot {p} after a failed backup: {e}");
        return;
    }
    let _ = remove_xattr(&files.image, xattrs::RBD_PENDING_SNAPSHOT);
    let _ = remove_file_if_present(&files.part);
}

fn validate_file(path: &Path) -> Result<DiffSummary, RbdError> {
    let f = File::open(path).map_err(io_err(path))?;
    validate_diff_file(f).map_err(|source| RbdError::Diff {
        path: path.to_owned(),
        source,
    })
}

/// A reader that copies what it reads into `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Step 3: export into `.pending.part`, checking it as it streams, then
/// `fsync` and rename to `.pending`.
fn export_to_pending(
    rbd: &Rbd,
    image: &str,
    s: &str,
    p: &str,
    files: &ImageFiles,
) -> Result<DiffSummary, RbdError> {
    let mut child = rbd.export_diff(image, Some(s), p)?;
    let part = File::create(&files.part).map_err(io_err(&files.part))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, part);
    // why: the size of a diff is not known before rbd has sent it
    let bar = crate::progress::Bar::bytes(&format!("export {image}@{s}..{p}"), None);
    let checked = validate_diff(Tee {
        inner: bar.reader(FaultReader::new(&mut child, "export", 1)),
        out: &mut out,
    });
    bar.finish();
    let fin = child.finish();
    let summary = match (checked, fin) {
        // why: a failing rbd also truncates the stream; its own error says more
        (_, Err(e)) => return Err(e.into()),
        (Err(source), Ok(_)) => {
            return Err(RbdError::Diff {
                path: files.part.clone(),
                source,
            });
        }
        (Ok(s), Ok(_)) => s,
    };
    let part = out
        .into_inner()
        .map_err(|e| io_err(&files.part)(e.into_error()))?;
    part.sync_all().map_err(io_err(&files.part))?;
    std::fs::rename(&files.part, &files.pending).map_err(io_err(&files.pending))?;
    backup_root::sync_dir(files.dir()).map_err(io_err(files.dir()))?;
    Ok(summary)
}

/// The full protocol to `p` (module doc).
fn full(
    rbd: &Rbd,
    image: &str,
    files: &ImageFiles,
    p: &str,
    p_exists: bool,
) -> Result<ApplyStats, RbdError> {
    let path = &files.image;
    if !path.exists() {
        File::create(path).map_err(io_err(path))?;
        backup_root::sync_dir(files.dir()).map_err(io_err(files.dir()))?;
    }
    set_xattr(path, xattrs::RBD_PENDING_SNAPSHOT, p)?;
    remove_xattr(path, xattrs::RBD_SNAPSHOT)?;
    remove_stale(files)?;
    let fetched = (|| {
        if !p_exists {
            rbd.snap_create(image, p)?;
            fault::point("snapshot-created");
        }
        // why: a full export carries only allocated extents; whatever the
        // file held before (another image, a crashed fetch) must not survive
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0))
            .map_err(io_err(path))?;
        let mut child = rbd.export_diff(image, None, p)?;
        // why: a full export carries the allocated extents only, whose size rbd does not tell first
        let bar = crate::progress::Bar::bytes(&format!("fetch {image}@{p}"), None);
        let applied = apply_diff(
            bar.reader(FaultReader::new(&mut child, "full-fetch", 1 << 20)),
            path,
        );
        bar.finish();
        let fin = child.finish();
        let stats = match (applied, fin) {
            (_, Err(e)) => return Err(RbdError::from(e)),
            (Err(source), Ok(_)) => {
                return Err(RbdError::Apply {
                    path: path.clone(),
                    source,
                });
            }
            (Ok(s), Ok(_)) => s,
        };
        if stats.from_snap.is_some() || stats.to_snap.as_deref() != Some(p) {
            return Err(RbdError::DiffSnapshots {
                path: path.clone(),
                want_from: None,
                want_to: p.to_owned(),
                found_from: stats.from_snap,
                found_to: stats.to_snap,
            });
        }
        Ok(stats)
    })();
    let stats = match fetched {
        Ok(s) => s,
        Err(e) => {
            abandon(rbd, image, files, p);
            return Err(e);
        }
    };
    set_xattr(path, xattrs::RBD_SNAPSHOT, p)?;
    remove_xattr(path, xattrs::RBD_PENDING_SNAPSHOT)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::rbd::diff::DiffWriter;

    #[test]
    fn files_sit_next_to_the_image() {
        let f = ImageFiles::new(Path::new("/r/rbd/p/images/vm"));
        assert_eq!(f.pending, Path::new("/r/rbd/p/images/vm.pending"));
        assert_eq!(f.part, Path::new("/r/rbd/p/images/vm.pending.part"));
    }

    #[test]
    fn from_snap_is_read_from_the_head_of_a_diff() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.pending");
        let mut w = DiffWriter::new(Vec::new()).unwrap();
        w.from_snap("backup-old").unwrap();
        w.to_snap("backup-new").unwrap();
        w.size(8192).unwrap();
        w.data(0, &[1; 4096]).unwrap();
        std::fs::write(&p, w.finish().unwrap()).unwrap();
        assert_eq!(from_snap_of(&p).as_deref(), Some("backup-old"));
        assert_eq!(from_snap_of(&d.path().join("missing")), None);
    }

    #[test]
    fn a_diff_applied_by_hand_follows_the_backup_rules() {
        type Case<'a> = (
            Stored,
            Option<&'a str>,
            Option<&'a str>,
            Result<HandApply, &'a str>,
        );
        let st = |snapshot: Option<&str>, pending: Option<&str>| Stored {
            snapshot: snapshot.map(str::to_owned),
            pending: pending.map(str::to_owned),
        };
        let inc = |to: &str, held: bool| {
            Ok(HandApply::Incremental {
                to: to.into(),
                pending_held: held,
            })
        };
        let full = |to: &str| Ok(HandApply::Full { to: to.into() });
        let cases: [Case; 10] = [
            (
                st(Some("s1"), None),
                Some("s1"),
                Some("s2"),
                inc("s2", false),
            ),
            // the same diff again (a crash after the apply)
            (
                st(Some("s2"), None),
                Some("s1"),
                Some("s2"),
                inc("s2", false),
            ),
            // an interrupted backup's .pending diff, applied by hand
            (
                st(Some("s1"), Some("s2")),
                Some("s1"),
                Some("s2"),
                inc("s2", true),
            ),
            (
                st(Some("s3"), None),
                Some("s1"),
                Some("s2"),
                Err("holds snapshot s3"),
            ),
            (
                st(None, None),
                Some("s1"),
                Some("s2"),
                Err("records no snapshot"),
            ),
            (
                st(Some("s1"), Some("p")),
                Some("s1"),
                Some("s2"),
                Err("interrupted backup"),
            ),
            (
                st(Some("s1"), None),
                Some("s1"),
                None,
                Err("no to-snapshot"),
            ),
            // full exports replace whatever the file holds
            (st(Some("s9"), None), None, Some("s2"), full("s2")),
            (st(None, None), None, Some("s2"), full("s2")),
            (st(None, Some("s2")), None, Some("s2"), full("s2")),
        ];
        for (stored, from, to, want) in cases {
            let got = plan_hand_apply(&stored, from, to);
            match want {
                Ok(w) => assert_eq!(got, Ok(w), "{stored:?} {from:?} {to:?}"),
                Err(why) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(why)),
                    "{stored:?} {from:?} {to:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn plan_follows_the_protocol_table() {
        let snaps: Vec<SnapInfo> = ["backup-s", "backup-p", "release"]
            .iter()
            .enumerate()
            .map(|(i, n)| SnapInfo {
                id: i as u64,
                name: (*n).to_owned(),
                size: 0,
                timestamp: None,
            })
            .collect();
        let st = |snapshot: Option<&str>, pending: Option<&str>| Stored {
            snapshot: snapshot.map(str::to_owned),
            pending: pending.map(str::to_owned),
        };
        let s = String::from;
        let run = || Phase::Run(s("backup-new"));
        let cases = [
            // nothing interrupted
            (st(Some("backup-s"), None), Phase::Recover, None),
            (st(None, None), Phase::Recover, None),
            // interrupted after step 5
            (
                st(Some("backup-p"), Some("backup-p")),
                Phase::Recover,
                Some(Step::FinishRebase { to: s("backup-p") }),
            ),
            // interrupted incremental, snapshot made / not yet made
            (
                st(Some("backup-s"), Some("backup-p")),
                Phase::Recover,
                Some(Step::Incremental {
                    from: s("backup-s"),
                    to: s("backup-p"),
                    to_exists: true,
                }),
            ),
            (
                st(Some("backup-s"), Some("backup-q")),
                Phase::Recover,
                Some(Step::Incremental {
                    from: s("backup-s"),
                    to: s("backup-q"),
                    to_exists: false,
                }),
            ),
            // interrupted full fetch; and one whose old snapshot is foreign
            (
                st(None, Some("backup-p")),
                Phase::Recover,
                Some(Step::Full {
                    to: s("backup-p"),
                    to_exists: true,
                    foreign: None,
                }),
            ),
            (
                st(Some("backup-elsewhere"), Some("backup-p")),
                Phase::Recover,
                Some(Step::Full {
                    to: s("backup-p"),
                    to_exists: true,
                    foreign: Some(s("backup-elsewhere")),
                }),
            ),
            // a normal run: incremental, first fetch, repointed name
            (
                st(Some("backup-s"), None),
                run(),
                Some(Step::Incremental {
                    from: s("backup-s"),
                    to: s("backup-new"),
                    to_exists: false,
                }),
            ),
            (
                st(None, None),
                run(),
                Some(Step::Full {
                    to: s("backup-new"),
                    to_exists: false,
                    foreign: None,
                }),
            ),
            (
                st(Some("backup-elsewhere"), None),
                run(),
                Some(Step::Full {
                    to: s("backup-new"),
                    to_exists: false,
                    foreign: Some(s("backup-elsewhere")),
                }),
            ),
        ];
        for (stored, phase, want) in cases {
            assert_eq!(
                plan(&stored, &snaps, phase.clone()),
                want,
                "{stored:?} {phase:?}"
            );
        }
    }

    #[test]
    fn stored_state_of_a_missing_file_is_empty() {
        assert_eq!(
            Stored::read(Path::new("/nonexistent/strata/x")).unwrap(),
            Stored::default()
        );
    }
}
