//! `strata rsync backup|restore`, and the rsync source's place in the
//! registry.

use super::{Restore, RestoreKind, backup, find, known_hosts_file, restore};
use crate::config::Config;
use crate::error::{ExitCode, UsageError};
use crate::sources::{Check, Cx, Source, SourceError, Unit, UnitsError, backup_unit};
use clap::{FromArgMatches, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// The rsync source.
pub struct Rsync;

/// The registry's instance.
pub static RSYNC: Rsync = Rsync;

#[derive(Debug, Subcommand)]
enum RsyncCmd {
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
        /// Extra rsync arguments (after `--` when they start with `-`, as Deltaic)
        #[arg(trailing_var_arg = true, value_name = "RSYNC-ARGS")]
        rsync_args: Vec<OsString>,
    },
}

impl Source for Rsync {
    fn name(&self) -> &'static str {
        "rsync"
    }

    fn about(&self) -> &'static str {
        "The rsync source: host filesystems over ssh"
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.rsync.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        let p = config.settings.rsync.scrub_probability;
        config
            .rsync
            .iter()
            .map(|h| Ok(Unit::new(&RSYNC, h.unit.clone(), &[&h.host], p)))
            .collect()
    }

    fn command(&self) -> clap::Command {
        RsyncCmd::augment_subcommands(clap::Command::new(self.name()))
    }

    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        let known_hosts = known_hosts_file(&cx.home);
        match RsyncCmd::from_arg_matches(m).map_err(|e| UsageError::from_clap(&e))? {
            RsyncCmd::Backup { scrub, host } => {
                let config = cx.config()?;
                let h = find(config, &host).map_err(SourceError::failed)?;
                let check = if scrub { Check::Scrub } else { Check::Normal };
                backup_unit(cx, &h.unit, |root| {
                    Ok(backup(root, config, h, check, &known_hosts)?)
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
                let config = cx.config()?;
                let r = Restore {
                    kind: if coda {
                        RestoreKind::Coda
                    } else {
                        RestoreKind::Full
                    },
                    // why: absolute, so that a relative SOURCE can never be read as an rsync option
                    source: std::path::absolute(&source)
                        .map_err(|e| UsageError(format!("{}: {e}", source.display())))?,
                    endpoint: Restore::endpoint_for(config, &host, &user, &known_hosts),
                    host: host.clone(),
                    dest_dir: destdir.clone(),
                    extra: rsync_args,
                };
                let items = restore(config, &r).map_err(SourceError::failed)?;
                if !cx.quiet {
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
}
