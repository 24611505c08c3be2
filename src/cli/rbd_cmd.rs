//! `strata rbd ...`: back up an image or snapshot unit, restore a stored
//! file to a new image, drop strata's snapshots, apply a diff by hand.

use super::Ctx;
use crate::error::ExitCode;
use crate::sources::Check;
use crate::sources::rbd::{self, ItemKind};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RbdCmd {
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

/// Commands that need no config.
pub fn run_without_config(cli: &super::Cli, cmd: &RbdCmd) -> Option<anyhow::Result<ExitCode>> {
    match cmd {
        RbdCmd::ApplyDiff { diff, image } => Some((|| {
            let t = std::time::Instant::now();
            let s = rbd::apply_diff_file(diff, image)?;
            if !cli.quiet {
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
        })()),
        RbdCmd::Restore { path, pool, image } => Some((|| {
            rbd::restore(path, pool, image)?;
            if !cli.quiet {
                eprintln!("restored {} to {pool}/{image}", path.display());
            }
            Ok(ExitCode::Ok)
        })()),
        _ => None,
    }
}

pub fn run(ctx: &Ctx, cmd: &RbdCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RbdCmd::Backup {
            scrub,
            snapshot,
            pool,
            name,
        } => {
            let kind = if *snapshot {
                ItemKind::Snapshot
            } else {
                ItemKind::Image
            };
            let (_, item) = rbd::find(&ctx.config, pool, name, kind)?;
            let root = ctx.root()?;
            let check = if *scrub { Check::Scrub } else { Check::Normal };
            super::source_cmds::backup_unit(ctx, &item.unit, || {
                Ok(rbd::backup(&ctx.config, root, pool, name, kind, check)?)
            })
        }
        RbdCmd::Drop { pool, name } => {
            let removed = rbd::drop_snapshots(&ctx.config, ctx.root()?, pool, name)?;
            if !ctx.cli.quiet {
                for r in &removed {
                    eprintln!("removed snapshot {r}");
                }
                eprintln!("{} snapshots removed", removed.len());
            }
            Ok(ExitCode::Ok)
        }
        RbdCmd::Restore { .. } | RbdCmd::ApplyDiff { .. } => {
            unreachable!("handled by run_without_config")
        }
    }
}
