//! The `coda` source: replicas of Coda volumes, dumped on their server with
//! `volutil dump | codadump2tar` over ssh and kept as plain files with their
//! owners and modes in `user.rsync.%stat`, so that `rsync restore --coda`
//! puts them back (Deltaic's `sources/coda.py` and README; docs/coda.md).
//!
//! One backup of `coda/<server>/<volume>` (`strata coda backup [-i] [-R]
//! HOST VOLUME`):
//!
//! 1. a stage left by an earlier backup is finished (committed: applied
//!    again) or thrown away (not committed) — see [`stage`];
//! 2. the dump is incremental only if `-i` asked for it and the volume root
//!    carries `user.coda.incremental-ok`; a full dump first removes that mark
//!    (so a failed full dump is tried again next time), as Deltaic;
//! 3. unless `-R`: `volutil info`, `volutil lock <id>`, `volutil backup <id>`
//!    refresh the backup clone; then `volutil info` gives its backup id;
//! 4. the dump pipeline's tar stream is received into the stage: up to
//!    [`DUMP_ATTEMPTS`] times while the stream breaks or the pipeline exits
//!    non-zero (Deltaic's cure for RPC2 timeouts); a refused dump (a name
//!    leaving the unit, a member type Coda has no use for) is not retried;
//! 5. the stage is sorted, checked and committed; then applied to the
//!    stored copy ([`apply`]): nothing of the stored copy changes before
//!    the commit, and after it the next backup finishes an interrupted apply;
//! 6. after a full dump, `volutil ancient <backupId>`; then the root is
//!    marked `user.coda.incremental-ok`.
//!
//! Divergences from Deltaic's code, each on purpose (docs/coda.md): the
//! full-dump draw is `coda-full-probability` as its README says (its code
//! passes `-i` with that probability); `volutil ancient` only after a full
//! dump, so that an incremental always holds every change since the last
//! full one; volutil's own exit status is checked through the pipe; host
//! keys are checked; a dump is staged whole before it is applied.

mod apply;
mod cmd;
pub mod entry;
pub mod remote;
mod sort;
mod stage;
mod tree;
pub mod ustar;

pub use apply::{Applied, must_detach};
pub use cmd::CODA;
pub use remote::{DumpMode, VolumeIds, parse_info};

use crate::backup_root::xattrs;
use crate::config::{CodaVolume, Config, server_dir};
use crate::exec::ExecError;
use crate::names::UnitPath;
use crate::sources::UnitReport;
use crate::sources::rsync::ssh::{SshTarget, prepare_known_hosts};
use remote::{RemoteError, Server, dump_status};
use stage::{Commit, Found, Stage, StageError, StageWriter};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tree::Tree;

/// How many times a dump is tried before the unit fails (Deltaic's
/// `DUMP_ATTEMPTS`).
pub const DUMP_ATTEMPTS: u32 = 10;

/// Bytes of a dump stream received before the `coda-stage` fault point
/// fires (the crash tests kill a backup mid-stream there).
const FAULT_STAGE_AFTER: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodaError {
    #[error("no coda volume `{volume}` on a server `{host}` in {} (give the server as configured, or its name up to the first dot)", config.display())]
    Unknown {
        host: String,
        volume: String,
        config: PathBuf,
    },
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("the dump of {volume} failed {attempts} times; the stored copy is unchanged: {last}")]
    Dump {
        volume: String,
        attempts: u32,
        #[source]
        last: DumpFailure,
    },
    #[error("the dump of {volume} was refused; the stored copy is unchanged: {source}")]
    Refused {
        volume: String,
        #[source]
        source: StageError,
    },
    #[error("applying the dump of {volume} (the next backup finishes it): {source}")]
    Apply {
        volume: String,
        #[source]
        source: StageError,
    },
    #[error("starting the dump of {volume}: {source}")]
    Spawn {
        volume: String,
        #[source]
        source: ExecError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why one attempt at a dump failed in a way another attempt may not.
#[derive(Debug, thiserror::Error)]
pub enum DumpFailure {
    #[error(transparent)]
    Stream(StageError),
    #[error("the dump pipeline failed: {0}")]
    Exit(#[source] ExecError),
    #[error(
        "`volutil dump` exited with status {status} (codadump2tar then writes a complete-looking tar of part of the volume){}",
        tail_suffix(stderr_tail)
    )]
    Volutil { status: i32, stderr_tail: String },
    #[error(
        "the dump pipeline did not report volutil's exit status{}",
        tail_suffix(stderr_tail)
    )]
    NoStatus { stderr_tail: String },
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", tail.trim())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CodaError + '_ {
    move |source| CodaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a backup was asked for (`-i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Incremental,
    Full,
}

/// Whether to refresh the backup clone first (`-R` skips it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Yes,
    Skip,
}

/// Whether the stored copy may take an incremental dump: only a copy that a
/// complete dump left marked `user.coda.incremental-ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    IncrementalOk,
    NotMarked,
}

/// The dump a backup makes: incremental only when asked and allowed (a
/// first backup, and the one after a failed full dump, are full).
#[must_use]
pub fn plan_mode(requested: Requested, marked: Marked) -> DumpMode {
    match (requested, marked) {
        (Requested::Incremental, Marked::IncrementalOk) => DumpMode::Incremental,
        _ => DumpMode::Full,
    }
}

/// Find the volume entry `strata coda backup HOST VOLUME` names.
pub fn find<'c>(config: &'c Config, host: &str, volume: &str) -> Result<&'c CodaVolume, CodaError> {
    let of_volume = || config.coda.iter().filter(|v| v.volume == volume);
    of_volume()
        .find(|v| v.server == host)
        .or_else(|| of_volume().find(|v| server_dir(&v.server) == host))
        .ok_or_else(|| CodaError::Unknown {
            host: host.to_owned(),
            volume: volume.to_owned(),
            config: config.file.clone(),
        })
}

/// Where a unit's stage lives: `<root>/.strata/stage/<unit>`.
#[must_use]
pub fn stage_dir(root: &Path, unit: &UnitPath) -> PathBuf {
    crate::backup_root::BackupRoot::new(root)
        .state_dir()
        .join("stage")
        .join(unit.as_str())
}

/// The server of a volume entry, reached as root with the entry's ssh port
/// and key and `rsync-ssh-options`.
#[must_use]
pub fn server(config: &Config, vol: &CodaVolume, known_hosts: &Path) -> Server {
    let s = &config.settings;
    Server {
        target: SshTarget {
            port: vol.ssh_port,
            identity: vol.ssh_identity.clone(),
            options: s.rsync.ssh_options.clone(),
            ..SshTarget::new(&vol.server, "root", known_hosts)
        },
        volutil: s.coda.volutil_path.clone(),
        codadump2tar: s.coda.codadump2tar_path.clone(),
    }
}

/// Back up one volume replica into `<root>/coda/<server>/<volume>`.
pub fn backup(
    root: &Path,
    config: &Config,
    vol: &CodaVolume,
    requested: Requested,
    refresh: Refresh,
    known_hosts: &Path,
) -> Result<UnitReport, CodaError> {
    let unit_dir = root.join(vol.unit.as_str());
    std::fs::create_dir_all(&unit_dir).map_err(io(&unit_dir))?;
    let stage = Stage::new(&stage_dir(root, &vol.unit));
    let mut tree = Tree::new(&unit_dir);
    let apply_error = |source| CodaError::Apply {
        volume: vol.volume.clone(),
        source,
    };

    match stage.find() {
        Ok(Found::Committed(c)) => {
            println!(
                "finishing the apply of a {} dump that an earlier backup committed and did not finish",
                mode_name(c.mode)
            );
            match apply::apply(&stage, &c, &mut tree) {
                Ok(a) => {
                    stage.discard().map_err(apply_error)?;
                    record_bytes(&unit_dir, &c, &a)?;
                    println!("finished: {}", describe(&c, &a));
                }
                // why: a stage that no longer fits the stored copy would fail
                // every backup; a full dump rewrites whatever it left
                Err(StageError::Shape(why)) => abandon_stage(&stage, &unit_dir, &why)?,
                Err(e) => return Err(apply_error(e)),
            }
        }
        Ok(Found::Unfinished) => {
            println!("removing the stage of a dump an earlier backup did not finish receiving");
            stage.discard().map_err(apply_error)?;
        }
        Ok(Found::Nothing) => {}
        Err(StageError::Shape(why)) => abandon_stage(&stage, &unit_dir, &why)?,
        Err(e) => return Err(apply_error(e)),
    }

    let marked =
        match xattrs::get_text(&unit_dir, xattrs::CODA_INCREMENTAL_OK).map_err(io(&unit_dir))? {
            Some(_) => Marked::IncrementalOk,
            None => Marked::NotMarked,
        };
    let mode = plan_mode(requested, marked);
    if requested == Requested::Incremental && mode == DumpMode::Full {
        println!(
            "a full dump: the stored copy is not marked {}",
            xattrs::CODA_INCREMENTAL_OK
        );
    }
    if mode == DumpMode::Full {
        xattrs::remove_if_present(&unit_dir, xattrs::CODA_INCREMENTAL_OK).map_err(io(&unit_dir))?;
    }

    let server = server(config, vol, known_hosts);
    prepare_known_hosts(&server.target.known_hosts).map_err(RemoteError::from)?;
    if refresh == Refresh::Yes {
        let ids = server.info(&vol.volume)?;
        server.refresh(&ids)?;
    }
    let backup_id = server.backup_id(&vol.volume)?;
    let commit = dump_with_retries(&server, vol, &backup_id, mode, &stage, &mut tree)?;
    crate::fault::point("coda-committed");
    let applied = apply::apply(&stage, &commit, &mut tree).map_err(apply_error)?;
    crate::fault::point("coda-applied");
    stage.discard().map_err(apply_error)?;
    let bytes = record_bytes(&unit_dir, &commit, &applied)?;
    if mode == DumpMode::Full {
        server.ancient(&backup_id)?;
    }
    xattr::set(&unit_dir, xattrs::CODA_INCREMENTAL_OK, b"true").map_err(io(&unit_dir))?;

    let summary = describe(&commit, &applied);
    println!("{summary}");
    Ok(UnitReport {
        bytes,
        changed: applied.created
            + applied.replaced
            + applied.files_updated
            + applied.detached
            + applied.links_made
            + applied.removed
            + applied.stats_set
            + applied.times_set
            > 0,
        scrubbed: mode == DumpMode::Full,
        repaired: applied.removed,
        summary,
    })
}

/// Give up a committed stage that cannot be applied: drop it, and drop the
/// incremental mark so that this backup makes a full dump, which compares
/// and repairs every stored entry.
fn abandon_stage(stage: &Stage, unit_dir: &Path, why: &str) -> Result<(), CodaError> {
    eprintln!(
        "warning: the stage of an earlier backup cannot be applied ({why}); \
         it is dropped and a full dump repairs the stored copy"
    );
    stage.discard().map_err(|e| CodaError::Io {
        path: stage.dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    xattrs::remove_if_present(unit_dir, xattrs::CODA_INCREMENTAL_OK).map_err(io(unit_dir))
}

fn mode_name(m: DumpMode) -> &'static str {
    match m {
        DumpMode::Full => "full",
        DumpMode::Incremental => "incremental",
    }
}

/// One line saying what a dump did to the stored copy.
fn describe(c: &Commit, a: &Applied) -> String {
    let mut s = format!(
        "{} dump: {} entries, {} hard links; {} new, {} replaced, {} files updated, {} bytes written",
        mode_name(c.mode),
        c.entries,
        c.links,
        a.created,
        a.replaced,
        a.files_updated,
        a.bytes_written
    );
    if c.mode == DumpMode::Full {
        let _ = write!(s, ", {} removed", a.removed);
    }
    if a.detached > 0 {
        let _ = write!(s, ", {} hard links broken", a.detached);
    }
    if a.duplicates > 0 {
        let _ = write!(s, ", {} names given twice (the later kept)", a.duplicates);
    }
    if a.empty_symlinks > 0 {
        let _ = write!(s, ", {} empty symlinks skipped", a.empty_symlinks);
    }
    s
}

/// Record the stored volume's size on its root and return it: a full
/// dump's is exact; an incremental adds its growth to the last recorded
/// size (or, if none was recorded, the stored copy is measured).
fn record_bytes(unit_dir: &Path, c: &Commit, a: &Applied) -> Result<u64, CodaError> {
    let recorded = xattrs::get_text(unit_dir, xattrs::STRATA_CODA_BYTES)
        .map_err(io(unit_dir))?
        .and_then(|t| t.trim().parse::<u64>().ok());
    let bytes = match (c.mode, recorded) {
        (DumpMode::Full, _) => c.file_bytes,
        (DumpMode::Incremental, Some(before)) => before.saturating_add_signed(a.size_delta),
        (DumpMode::Incremental, None) => apply::stored_bytes(unit_dir).map_err(io(unit_dir))?,
    };
    xattr::set(
        unit_dir,
        xattrs::STRATA_CODA_BYTES,
        bytes.to_string().as_bytes(),
    )
    .map_err(io(unit_dir))?;
    Ok(bytes)
}

/// Why an attempt failed: worth another try, or not.
enum Attempt {
    Again(DumpFailure),
    Stop(CodaError),
}

fn dump_with_retries(
    server: &Server,
    vol: &CodaVolume,
    backup_id: &str,
    mode: DumpMode,
    stage: &Stage,
    tree: &mut Tree,
) -> Result<Commit, CodaError> {
    let discard = |stage: &Stage| {
        stage.discard().map_err(|source| CodaError::Refused {
            volume: vol.volume.clone(),
            source,
        })
    };
    for attempt in 1..=DUMP_ATTEMPTS {
        discard(stage)?;
        tree.forget();
        match dump_once(server, vol, backup_id, mode, stage, tree) {
            Ok(c) => return Ok(c),
            Err(Attempt::Again(f)) => {
                discard(stage)?;
                if attempt == DUMP_ATTEMPTS {
                    return Err(CodaError::Dump {
                        volume: vol.volume.clone(),
                        attempts: attempt,
                        last: f,
                    });
                }
                eprintln!("dump attempt {attempt} of {DUMP_ATTEMPTS} failed: {f}; trying again");
            }
            Err(Attempt::Stop(e)) => {
                discard(stage)?;
                return Err(e);
            }
        }
    }
    unreachable!("the last attempt returns")
}

fn dump_once(
    server: &Server,
    vol: &CodaVolume,
    backup_id: &str,
    mode: DumpMode,
    stage: &Stage,
    tree: &mut Tree,
) -> Result<Commit, Attempt> {
    let refused = |source: StageError| {
        Attempt::Stop(CodaError::Refused {
            volume: vol.volume.clone(),
            source,
        })
    };
    let cmd = server.dump(backup_id, mode);
    println!("> {}", cmd.display());
    let mut writer = StageWriter::create(stage, tree, mode, backup_id).map_err(refused)?;
    let mut child = cmd
        .spawn_reader_tee_stderr(Box::new(std::io::stderr()))
        .map_err(|source| {
            Attempt::Stop(CodaError::Spawn {
                volume: vol.volume.clone(),
                source,
            })
        })?;
    let received = writer.receive(crate::fault::FaultReader::new(
        &mut child,
        "coda-stage",
        FAULT_STAGE_AFTER,
    ));
    let bytes = match received {
        Ok(n) => n,
        Err(e) => {
            child.kill();
            return Err(if e.is_transient() {
                Attempt::Again(DumpFailure::Stream(e))
            } else {
                refused(e)
            });
        }
    };
    match child.finish() {
        Ok(done) => match dump_status(&done.stderr) {
            Some(0) => {}
            Some(status) => {
                return Err(Attempt::Again(DumpFailure::Volutil {
                    status,
                    stderr_tail: crate::exec::tail(&done.stderr),
                }));
            }
            None => {
                return Err(Attempt::Again(DumpFailure::NoStatus {
                    stderr_tail: crate::exec::tail(&done.stderr),
                }));
            }
        },
        Err(e) => {
            if let Some(ssh) = server.target.diagnose(e.stderr_tail().as_bytes())
                && matches!(
                    ssh,
                    crate::sources::rsync::ssh::SshError::HostKeyChanged { .. }
                )
            {
                return Err(Attempt::Stop(RemoteError::from(ssh).into()));
            }
            return Err(Attempt::Again(DumpFailure::Exit(e)));
        }
    }
    println!("received {bytes} bytes of tar stream");
    writer.commit().map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_only_when_asked_and_marked() {
        use DumpMode::{Full, Incremental};
        for (req, marked, want) in [
            (Requested::Incremental, Marked::IncrementalOk, Incremental),
            (Requested::Incremental, Marked::NotMarked, Full),
            (Requested::Full, Marked::IncrementalOk, Full),
            (Requested::Full, Marked::NotMarked, Full),
        ] {
            assert_eq!(plan_mode(req, marked), want, "{req:?} {marked:?}");
        }
    }
}
