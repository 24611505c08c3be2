//! The `rbd` source: Ceph block images and snapshots, fetched with
//! `rbd export-diff` and applied to sparse image files (DESIGN §7).
//!
//! - [`diff`] parses the export-diff stream; [`apply`] patches an image file;
//! - [`tool`] is every `rbd` call strata makes and the parsing of its JSON;
//! - [`image`] backs up an image incrementally, with the crash protocol
//!   written down in its module doc; [`snapshot`] backs up named snapshots;
//! - [`scrub`] compares a file with a full export and repairs it;
//! - [`fault`] is the fault-injection hook the crash tests use.
//!
//! Units: `rbd/<pool>/images/<friendly>` and `rbd/<pool>/snapshots/<friendly>`
//! are files (Deltaic's layout), not directories.

pub mod apply;
mod cmd;
pub mod diff;
pub use crate::fault;
pub mod image;
pub mod scrub;
pub mod snapshot;
pub mod tool;

use crate::config::{Config, RbdItem, RbdPool};
use crate::exec::ExecError;
use crate::sources::{Check, UnitReport};
use std::path::{Path, PathBuf};
use tool::Rbd;

pub use cmd::RBD;

/// Why an rbd command failed.
#[derive(Debug, thiserror::Error)]
pub enum RbdError {
    #[error("no rbd {kind} named `{name}` in pool `{pool}` of {}", config.display())]
    Unknown {
        kind: &'static str,
        pool: String,
        name: String,
        config: PathBuf,
    },
    #[error(
        "the {what} name `{name}` cannot be used in an rbd spec (empty, or has `/`, `@` or a leading `-`)"
    )]
    BadName { what: &'static str, name: String },
    #[error("no RBD snapshot {spec}")]
    NoSuchSnapshot { spec: String },
    #[error("no image in pool `{pool}` has a snapshot named `{snap}`")]
    SnapshotNotInPool { pool: String, snap: String },
    #[error(transparent)]
    Command(#[from] ExecError),
    #[error("unexpected output from `{what}`")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt rbd diff {}; the image file was not changed", path.display())]
    Diff {
        path: PathBuf,
        #[source]
        source: diff::DiffError,
    },
    #[error(
        "the diff {} goes from {} to {}, expected from {} to snapshot {want_to}",
        path.display(),
        from_name(found_from.as_deref()),
        found_to.as_deref().map_or_else(|| "no snapshot".to_owned(), |s| format!("snapshot {s}")),
        from_name(want_from.as_deref())
    )]
    DiffSnapshots {
        path: PathBuf,
        want_from: Option<String>,
        want_to: String,
        found_from: Option<String>,
        found_to: Option<String>,
    },
    #[error("the diff {} cannot be applied to {}: {reason}; the image file was not changed", diff.display(), image.display())]
    ApplyRefused {
        diff: PathBuf,
        image: PathBuf,
        reason: String,
    },
    #[error("applying a diff to {}", path.display())]
    Apply {
        path: PathBuf,
        #[source]
        source: apply::ApplyError,
    },
    #[error("scrub")]
    Scrub(#[source] scrub::ScrubError),
    #[error(
        "{} has a partially applied diff (user.rbd.pending-snapshot is set): run `strata rbd backup` to finish it before restoring",
        path.display()
    )]
    PendingDiff { path: PathBuf },
    #[error("{} is not a stored image file", path.display())]
    NotAnImage { path: PathBuf },
}

/// A diff's from-snapshot in words.
fn from_name(from: Option<&str>) -> String {
    from.map_or_else(
        || "nothing (a full export)".to_owned(),
        |s| format!("snapshot {s}"),
    )
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RbdError + '_ {
    move |source| RbdError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Which kind of unit a `rbd backup` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Image,
    Snapshot,
}

impl ItemKind {
    fn dir(self) -> &'static str {
        match self {
            ItemKind::Image => "images",
            ItemKind::Snapshot => "snapshots",
        }
    }
}

/// A pool and one of its items, from the config.
///
/// # Errors
/// [`RbdError::Unknown`].
pub fn find<'c>(
    config: &'c Config,
    pool: &str,
    friendly: &str,
    kind: ItemKind,
) -> Result<(&'c RbdPool, &'c RbdItem), RbdError> {
    let unknown = || RbdError::Unknown {
        kind: match kind {
            ItemKind::Image => "image",
            ItemKind::Snapshot => "snapshot",
        },
        pool: pool.to_owned(),
        name: friendly.to_owned(),
        config: config.file.clone(),
    };
    let p = config
        .rbd
        .iter()
        .find(|p| p.pool == pool)
        .ok_or_else(unknown)?;
    let items = match kind {
        ItemKind::Image => &p.images,
        ItemKind::Snapshot => &p.snapshots,
    };
    let item = items
        .iter()
        .find(|i| i.friendly == friendly)
        .ok_or_else(unknown)?;
    Ok((p, item))
}

/// The stored file of a unit: `<root>/rbd/<pool>/{images,snapshots}/<friendly>`.
#[must_use]
pub fn unit_file(root: &Path, pool: &str, friendly: &str, kind: ItemKind) -> PathBuf {
    root.join("rbd").join(pool).join(kind.dir()).join(friendly)
}

/// `image@snap`, or a bare snapshot name (Deltaic's form) found in the pool.
fn resolve_snapshot(rbd: &Rbd, name: &str) -> Result<(String, String), RbdError> {
    if let Some((image, snap)) = name.split_once('@') {
        tool::check_name("image", image)?;
        tool::check_name("snapshot", snap)?;
        return Ok((image.to_owned(), snap.to_owned()));
    }
    tool::check_name("snapshot", name)?;
    let image = rbd
        .image_of_snapshot(name)?
        .ok_or_else(|| RbdError::SnapshotNotInPool {
            pool: rbd.pool().to_owned(),
            snap: name.to_owned(),
        })?;
    Ok((image, name.to_owned()))
}

/// `strata rbd backup [-c] [-s] POOL FRIENDLY`.
///
/// # Errors
/// Config lookup, rbd, the diff or the files.
pub fn backup(
    config: &Config,
    root: &Path,
    pool: &str,
    friendly: &str,
    kind: ItemKind,
    check: Check,
) -> Result<UnitReport, RbdError> {
    let (p, item) = find(config, pool, friendly, kind)?;
    let rbd = Rbd::new(&p.pool)?;
    let path = unit_file(root, pool, friendly, kind);
    match kind {
        ItemKind::Image => {
            tool::check_name("image", &item.rbd_name)?;
            image::backup_image(&rbd, &item.rbd_name, &path, check)
        }
        ItemKind::Snapshot => {
            let (image, snap) = resolve_snapshot(&rbd, &item.rbd_name)?;
            // why: any snapshot unit of the same image may serve as a basis
            let mut siblings = Vec::new();
            for other in &p.snapshots {
                let same = match other.rbd_name.split_once('@') {
                    Some((i, _)) => i == image,
                    None => true,
                };
                if same {
                    siblings.push(unit_file(root, pool, &other.friendly, kind));
                }
            }
            snapshot::backup_snapshot(&rbd, &image, &snap, &path, &siblings, check)
        }
    }
}

/// `strata rbd restore PATH POOL IMAGE`: a new image from a stored file.
///
/// # Errors
/// A file with a pending diff (Deltaic's reason: the file is mid-update, and
/// finishing it would write into what may be a read-only snapshot), or rbd.
pub fn restore(path: &Path, pool: &str, image: &str) -> Result<(), RbdError> {
    if !path.is_file() {
        return Err(RbdError::NotAnImage {
            path: path.to_owned(),
        });
    }
    let pending = crate::backup_root::xattrs::get_text(
        path,
        crate::backup_root::xattrs::RBD_PENDING_SNAPSHOT,
    )
    .map_err(io_err(path))?;
    if pending.is_some_and(|p| !p.is_empty()) {
        return Err(RbdError::PendingDiff {
            path: path.to_owned(),
        });
    }
    tool::check_name("image", image)?;
    Rbd::new(pool)?.import(path, image)
}

/// `strata rbd drop POOL FRIENDLY`: remove strata's RBD snapshots of an image
/// unit (so that its owner can delete the image), and forget them.
///
/// # Errors
/// rbd or the file's xattrs.
pub fn drop_snapshots(
    config: &Config,
    root: &Path,
    pool: &str,
    friendly: &str,
) -> Result<Vec<String>, RbdError> {
    let (p, item) = find(config, pool, friendly, ItemKind::Image)?;
    let rbd = Rbd::new(&p.pool)?;
    let path = unit_file(root, pool, friendly, ItemKind::Image);
    let mut removed = Vec::new();
    if !path.exists() {
        return Ok(removed);
    }
    let files = image::ImageFiles::new(&path);
    for attr in [
        crate::backup_root::xattrs::RBD_SNAPSHOT,
        crate::backup_root::xattrs::RBD_PENDING_SNAPSHOT,
    ] {
        let Some(snap) =
            crate::backup_root::xattrs::get_text(&path, attr).map_err(io_err(&path))?
        else {
            continue;
        };
        // why: the snapshot may sit on another image if the friendly name was repointed
        let owner = if rbd
            .snap_ls(&item.rbd_name)
            .is_ok_and(|s| s.iter().any(|s| s.name == snap))
        {
            Some(item.rbd_name.clone())
        } else {
            rbd.image_of_snapshot(&snap)?
        };
        if let Some(owner) = owner
            && rbd.snap_rm(&owner, &snap)? == tool::Removal::Removed
        {
            removed.push(rbd.spec(&owner, Some(&snap)));
        }
        crate::backup_root::xattrs::remove_if_present(&path, attr).map_err(io_err(&path))?;
    }
    for f in [&files.pending, &files.part] {
        if f.exists() {
            std::fs::remove_file(f).map_err(io_err(f))?;
        }
    }
    Ok(removed)
}

/// `strata rbd apply-diff DIFF IMAGE-FILE`: apply a diff by the rules a
/// backup follows ([`image::plan_hand_apply`]): an incremental only onto the
/// file that holds its from-snapshot, a full export replaces the file, and
/// `user.rbd.snapshot` names the diff's to-snapshot afterwards. The diff is
/// validated whole first (stdin, `-`, is copied beside the image for that),
/// so a corrupt or refused one leaves the image as it was and creates nothing.
///
/// # Errors
/// A corrupt or refused diff, or I/O on the image.
pub fn apply_diff_file(diff: &Path, image: &Path) -> Result<apply::ApplyStats, RbdError> {
    // why: stdin can be read once; a copy lets it be validated before anything is touched
    let spooled = if diff == Path::new("-") {
        let dir = image
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut t = tempfile::Builder::new()
            .prefix(".strata-apply-diff-")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        let bar = crate::progress::Bar::bytes("read diff from stdin", None);
        let copied = std::io::copy(&mut bar.reader(std::io::stdin().lock()), &mut t);
        bar.finish();
        copied.map_err(io_err(t.path()))?;
        Some(t)
    } else {
        None
    };
    let diff = spooled.as_ref().map_or(diff, tempfile::NamedTempFile::path);
    let f = std::fs::File::open(diff).map_err(io_err(diff))?;
    let summary = diff::validate_diff_file(f).map_err(|source| RbdError::Diff {
        path: diff.to_owned(),
        source,
    })?;
    let stored = image::Stored::read(image)?;
    let plan = image::plan_hand_apply(
        &stored,
        summary.from_snap.as_deref(),
        summary.to_snap.as_deref(),
    )
    .map_err(|reason| RbdError::ApplyRefused {
        diff: diff.to_owned(),
        image: image.to_owned(),
        reason,
    })?;
    image::apply_by_hand(diff, image, &plan)
}
