//! `strata rbd ...`: back up an image or snapshot unit, restore a stored
//! file to a new image, drop strata's snapshots, apply a diff by hand; and
//! the rbd source's place in the registry.

use super::{ItemKind, apply_diff_file, backup, drop_snapshots, find, restore};
use crate::config::Config;
use crate::error::ExitCode;
use crate::sources::{Check, Cx, Source, SourceError, Unit, UnitsError, backup_unit};
use clap::{FromArgMatches, Subcommand};
use std::path::PathBuf;

/// The rbd source.
pub struct Rbd;

/// The registry's instance.
pub static RBD: Rbd = Rbd;

#[derive(Debug, Subcommand)]
enum RbdCmd {
    /// Back up an RBD image (or, with -s, a snapshot) named in the config
    Backup {
        /// Scrub: compare with a full export of the snapshot and repair differences
        #[arg(short = 'c', long = "scrub")]
        scrub: bool,
        /// NAME is a snapshot unit (`snapshots:` in the config), not an image
        #[arg(short = 's', long = "snapshot")]
        snapshot: bool,
        pool: String,
        /// The friendly name from the config
        name: String,
    },
    /// Restore a stored image or snapshot file to a new RBD image (`rbd import`)
    Restore {
        /// The stored file (in the backup root or a mounted snapshot)
        path: PathBuf,
        pool: String,
        /// The new image's name (must not exist)
        image: String,
    },
    /// Remove strata's RBD snapshots of an image unit, so its owner can delete the image
    Drop { pool: String, name: String },
    /// Apply an `rbd export-diff` stream (a file, or - for stdin) to an image file
    ApplyDiff {
        diff: PathBuf,
        #[arg(value_name = "IMAGE-FILE")]
        image: PathBuf,
    },
}

impl Source for Rbd {
    fn name(&self) -> &'static str {
        "rbd"
    }

    fn about(&self) -> &'static str {
        "The rbd source: Ceph RBD images and snapshots"
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.rbd.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        let p = config.settings.rbd.scrub_probability;
        let mut out = Vec::new();
        for pool in &config.rbd {
            for i in &pool.images {
                out.push(Ok(Unit::new(
                    &RBD,
                    i.unit.clone(),
                    &[&pool.pool, &i.friendly],
                    p,
                )));
            }
            for i in &pool.snapshots {
                out.push(Ok(Unit::new(
                    &RBD,
                    i.unit.clone(),
                    &["-s", &pool.pool, &i.friendly],
                    p,
                )));
            }
        }
        out
    }

    fn command(&self) -> clap::Command {
        RbdCmd::augment_subcommands(clap::Command::new(self.name()))
    }

    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        match RbdCmd::from_arg_matches(m).map_err(|e| crate::error::UsageError::from_clap(&e))? {
            RbdCmd::Backup {
                scrub,
                snapshot,
                pool,
                name,
            } => {
                let kind = if snapshot {
                    ItemKind::Snapshot
                } else {
                    ItemKind::Image
                };
                let config = cx.config()?;
                let (_, item) = find(config, &pool, &name, kind).map_err(SourceError::failed)?;
                let check = if scrub { Check::Scrub } else { Check::Normal };
                backup_unit(cx, &item.unit, |root| {
                    Ok(backup(config, root, &pool, &name, kind, check)?)
                })
            }
            RbdCmd::Drop { pool, name } => {
                cx.refuse_root("rbd drop")?;
                let removed = drop_snapshots(cx.config()?, cx.root()?, &pool, &name)
                    .map_err(SourceError::failed)?;
                if !cx.quiet {
                    for r in &removed {
                        eprintln!("removed snapshot {r}");
                    }
                    eprintln!("{} snapshots removed", removed.len());
                }
                Ok(ExitCode::Ok)
            }
            RbdCmd::ApplyDiff { diff, image } => {
                let t = std::time::Instant::now();
                let s = apply_diff_file(&diff, &image).map_err(SourceError::failed)?;
                if !cx.quiet {
                    eprintln!(
                        "applied {} records to {} in {:.2}s: {} bytes written, {} unchanged, {} punched; size {}",
                        s.records,
                        image.display(),
                        t.elapsed().as_secs_f64(),
                        s.bytes_written,
                        s.bytes_unchanged,
                        s.bytes_punched,
                        s.size
                    );
                }
                Ok(ExitCode::Ok)
            }
            RbdCmd::Restore { path, pool, image } => {
                restore(&path, &pool, &image).map_err(SourceError::failed)?;
                if !cx.quiet {
                    eprintln!("restored {} to {pool}/{image}", path.display());
                }
                Ok(ExitCode::Ok)
            }
        }
    }
}
