//! `strata rsync backup|restore`: flags to calls into `sources::rsync`.

use super::Ctx;
use super::source_cmds::backup_unit;
use crate::error::ExitCode;
use crate::sources::Check;
use crate::sources::rsync::{self, Restore, RestoreKind};
use clap::Subcommand;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RsyncCmd {
    /// Back up a host's filesystems (its `mounts`) into rsync/<alias>
    Backup {
        /// Scrub: compare every file's content with the source (--checksum) and repair differences
        #[arg(short = 'c', long = "scrub")]
        scrub: bool,
        /// The host as named in the config (or its alias)
        host: String,
    },
    /// Restore a file or directory tree to a host, with owners, modes, ACLs and xattrs
    #[command(
        after_help = "Arguments after `--` are passed to rsync (e.g. -- --delete --dry-run).\n\
        The ssh port, identity and transport of HOST are those of its config entry, if it has one."
    )]
    Restore {
        /// Options for restoring a Coda volume backup (no ACLs, xattrs, devices or groups)
        #[arg(long)]
        coda: bool,
        /// User on the destination host
        #[arg(short = 'u', long = "user", default_value = "root")]
        user: String,
        /// A file or directory in the backup root or a mounted snapshot
        source: PathBuf,
        /// The destination host
        host: String,
        /// The directory on HOST to restore into
        destdir: OsString,
        /// Extra rsync arguments
        #[arg(last = true, value_name = "RSYNC-ARGS")]
        rsync_args: Vec<OsString>,
    },
}

pub fn rsync(ctx: &Ctx, cmd: &RsyncCmd) -> anyhow::Result<ExitCode> {
    let known_hosts = rsync::known_hosts_file(&super::home());
    match cmd {
        RsyncCmd::Backup { scrub, host } => {
            super::refuse_root(ctx.cli, "rsync backup")?;
            let h = rsync::find(&ctx.config, host)?;
            let root = ctx.root()?;
            let check = if *scrub { Check::Scrub } else { Check::Normal };
            backup_unit(ctx, &h.unit, || {
                Ok(rsync::backup(root, &ctx.config, h, check, &known_hosts)?)
            })
        }
        RsyncCmd::Restore {
            coda,
            user,
            source,
            host,
            destdir,
            rsync_args,
        } => {
            // why: restore reads the backup root and writes elsewhere, so root may run it (and usually must)
            let r = Restore {
                kind: if *coda {
                    RestoreKind::Coda
                } else {
                    RestoreKind::Full
                },
                // why: absolute, so that a relative SOURCE can never be read as an rsync option
                source: std::path::absolute(source)?,
                endpoint: Restore::endpoint_for(&ctx.config, host, user, &known_hosts),
                host: host.clone(),
                dest_dir: destdir.clone(),
                extra: rsync_args.clone(),
            };
            let items = rsync::restore(&ctx.config, &r)?;
            if !ctx.cli.quiet {
                eprintln!(
                    "restored {} to {host}:{} ({} entries changed, {} deleted)",
                    source.display(),
                    destdir.to_string_lossy(),
                    items.changed,
                    items.deleted
                );
            }
            Ok(ExitCode::Ok)
        }
    }
}
