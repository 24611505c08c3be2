//! Backing up a named RBD snapshot (someone else's, e.g. a release or a
//! golden image) into `<root>/rbd/<pool>/snapshots/<name>`.
//!
//! A snapshot never changes, so the file is fetched once and kept while its
//! snapid (`user.rbd.snapid`) is the snapshot's. When it differs (the name now
//! points to another snapshot, or the file is new), strata fetches it as a
//! diff from the newest snapshot of the same image that it already holds in
//! another snapshot unit (or this one) and that is older than the target; with
//! no such basis, in full. (Deltaic always refetched in full.)
//!
//! Crash contract: the new copy is built in `.strata-new-<name>` beside the
//! file (a sparse, reflinked where possible, copy of the basis, patched), its
//! snapid set, `fsync`ed and renamed over the file: a crash leaves the old
//! file and a temp file the next run deletes.

use super::apply::apply_diff;
use super::fault::FaultReader;
use super::tool::{Rbd, SnapInfo};
use super::{RbdError, io_err};
use crate::backup_root::{self, xattrs};
use crate::exec::Cmd;
use crate::sources::{Check, UnitReport};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A snapshot unit's file and the snapid it holds, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub path: PathBuf,
    pub snapid: u64,
}

/// The basis for fetching snapshot `target_id`: among `held` files whose
/// snapid is still a snapshot of the image (`snaps`) and older than the
/// target, the newest; with the snapshot's current name.
#[must_use]
pub fn choose_basis<'a>(
    target_id: u64,
    held: &'a [Held],
    snaps: &[SnapInfo],
) -> Option<(&'a Held, String)> {
    held.iter()
        .filter(|h| h.snapid < target_id)
        .filter_map(|h| {
            snaps
                .iter()
                .find(|s| s.id == h.snapid)
                .map(|s| (h, s.name.clone()))
        })
        .max_by_key(|(h, _)| h.snapid)
}

/// The snapid a file holds, if it holds one.
///
/// # Errors
/// Reading the xattr failed.
pub fn held_snapid(path: &Path) -> Result<Option<u64>, RbdError> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(xattrs::get_text(path, xattrs::RBD_SNAPID)
        .map_err(io_err(path))?
        .and_then(|s| s.trim().parse().ok()))
}

/// Back up snapshot `snap` of `image` into `path`; `siblings` are the files
/// of the pool's snapshot units of the same image (this one may be among
/// them), the candidates for a basis.
///
/// # Errors
/// rbd, the diff, or the file.
pub fn backup_snapshot(
    rbd: &Rbd,
    image: &str,
    snap: &str,
    path: &Path,
    siblings: &[PathBuf],
    check: Check,
) -> Result<UnitReport, RbdError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".strata-new-{name}"));
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(io_err(&tmp))?;
    }
    let snaps = rbd.snap_ls(image)?;
    let info = snaps
        .iter()
        .find(|s| s.name == snap)
        .ok_or_else(|| RbdError::NoSuchSnapshot {
            spec: rbd.spec(image, Some(snap)),
        })?;

    let mut summary = if held_snapid(path)? == Some(info.id) {
        format!("unchanged: holds snapid {}", info.id)
    } else {
        let mut held = Vec::new();
        for p in siblings {
            if let Some(snapid) = held_snapid(p)? {
                held.push(Held {
                    path: p.clone(),
                    snapid,
                });
            }
        }
        let basis = choose_basis(info.id, &held, &snaps);
        let from = if let Some((h, basis_name)) = &basis {
            // why: reflink where the filesystem can, sparse otherwise: shared blocks stay shared
            Cmd::new("cp")
                .args(["--sparse=always", "--reflink=auto", "--"])
                .arg(&h.path)
                .arg(&tmp)
                .run()?;
            Some(basis_name.as_str())
        } else {
            File::create(&tmp).map_err(io_err(&tmp))?;
            None
        };
        let mut child = rbd.export_diff(image, from, snap)?;
        let applied = apply_diff(FaultReader::new(&mut child, "full-fetch", 1 << 20), &tmp);
        let fin = child.finish();
        let stats = match (applied, fin) {
            (_, Err(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            (Err(source), Ok(_)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(RbdError::Apply { path: tmp, source });
            }
            (Ok(s), Ok(_)) => s,
        };
        xattr::set(&tmp, xattrs::RBD_SNAPID, info.id.to_string().as_bytes())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        backup_root::sync_dir(dir).map_err(io_err(dir))?;
        let how = match (&basis, from) {
            (Some((h, _)), Some(b)) => format!("as a diff from {b} (held in {})", h.path.display()),
            _ => "in full".to_owned(),
        };
        format!(
            "fetched {} (snapid {}) {how}: {} bytes written, {} punched",
            rbd.spec(image, Some(snap)),
            info.id,
            stats.bytes_written,
            stats.bytes_punched
        )
    };
    let changed = !summary.starts_with("unchanged");
    let mut repaired = 0;
    if check == Check::Scrub {
        repaired = super::image::scrub_against(rbd, image, snap, path)?;
        let _ = write!(summary, "; scrub repaired {repaired} ranges");
    }
    println!("{summary}");
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    Ok(UnitReport {
        bytes: meta.blocks() * 512,
        changed,
        scrubbed: check == Check::Scrub,
        repaired,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: u64, name: &str) -> SnapInfo {
        SnapInfo {
            id,
            name: name.to_owned(),
            size: 0,
            timestamp: None,
        }
    }

    fn held(path: &str, snapid: u64) -> Held {
        Held {
            path: PathBuf::from(path),
            snapid,
        }
    }

    #[test]
    fn basis_is_the_newest_older_snapshot_still_on_the_image() {
        type Case<'a> = (u64, &'a [Held], Option<(&'a str, &'a str)>);
        let snaps = [snap(3, "v1"), snap(7, "v2"), snap(9, "v3"), snap(12, "v4")];
        let cases: &[Case] = &[
            // nothing held: full fetch
            (9, &[], None),
            // held v1 and v2: v2 is the newest older one
            (9, &[held("a", 3), held("b", 7)], Some(("b", "v2"))),
            // a newer held snapshot is never a basis
            (9, &[held("d", 12)], None),
            // a held snapid the image no longer has is no basis
            (9, &[held("e", 5), held("a", 3)], Some(("a", "v1"))),
            // the file itself, holding an older snapshot, is a basis
            (12, &[held("self", 9)], Some(("self", "v3"))),
        ];
        for (target, held, want) in cases {
            let got = choose_basis(*target, held, &snaps)
                .map(|(h, n)| (h.path.to_string_lossy().into_owned(), n));
            let want = want.map(|(p, n)| (p.to_owned(), n.to_owned()));
            assert_eq!(got, want, "target {target}, held {held:?}");
        }
    }
}
