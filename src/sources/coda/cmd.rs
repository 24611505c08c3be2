//! `strata coda backup|restore`, and the coda source's place in the
//! registry. A run's scrub draw for coda is Deltaic's full-dump draw
//! (`coda-full-probability`): a normal run passes `-i`, a "scrub" is a full
//! dump.

use super::{Refresh, Requested, backup, find};
use crate::config::Config;
use crate::error::{ExitCode, UsageError};
use crate::sources::rsync::{Restore, RestoreKind, known_hosts_file, restore};
use crate::sources::{Check, Cx, Source, SourceError, Unit, UnitsError, backup_unit};
use clap::{FromArgMatches, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// The coda source.
pub struct Coda;

/// The registry's instance.
pub static CODA: Coda = Coda;

#[derive(Debug, Subcommand)]
enum CodaCmd {
    /// Back up one replica of a Coda volume into coda/<server>/<volume>
    #[command(
        after_help = "The dump is incremental only with -i and when the stored copy is marked \
        user.coda.incremental-ok (after a complete dump); otherwise it is full, and a full dump \
        also removes what the volume no longer holds."
    )]
    Backup {
        /// Ask for an incremental dump
        #[arg(short = 'i', long)]
        incremental: bool,
        /// Do not refresh the backup clone first (volutil lock, volutil backup)
        #[arg(short = 'R', long = "skip-refresh", overrides_with = "refresh")]
        skip_refresh: bool,
        /// Refresh the backup clone first (the default; Deltaic's --refresh)
        #[arg(long, hide = true, overrides_with = "skip_refresh")]
        refresh: bool,
        /// The server as configured, or its name up to the first dot
        host: String,
        /// The volume
        volume: String,
    },
    /// Restore a stored volume (or part of it) into a Coda client's /coda, as `rsync restore --coda`
    #[command(
        after_help = "Owners and modes come back from user.rsync.%stat; the volume's ..CodaACLs.yaml \
        is not copied (docs/coda.md says how to reapply the ACLs). Arguments after `--` are passed \
        to rsync (e.g. -- --delete --dry-run)."
    )]
    Restore {
        /// User on the destination host (a Coda client holding tokens for the destination)
        #[arg(short = 'u', long = "user", default_value = "root")]
        user: String,
        /// A directory or file in the backup root or a mounted snapshot
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

impl Source for Coda {
    fn name(&self) -> &'static str {
        "coda"
    }

    fn about(&self) -> &'static str {
        "The coda source: Coda volume replicas through volutil dumps over ssh"
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.coda.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        let p = config.settings.coda.full_probability;
        config
            .coda
            .iter()
            .map(|v| Ok(Unit::new(&CODA, v.unit.clone(), &[&v.server, &v.volume], p)))
            .collect()
    }

    // why: Deltaic draws the full dump; strata's draw of a scrub is that
    // draw, so a normal run asks for an incremental dump and a scrub for a full one
    fn check_flags(&self, check: Check) -> &'static [&'static str] {
        match check {
            Check::Normal => &["-i"],
            Check::Scrub => &[],
        }
    }

    fn command(&self) -> clap::Command {
        CodaCmd::augment_subcommands(clap::Command::new(self.name()))
    }

    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        let known_hosts = known_hosts_file(&cx.home);
        match CodaCmd::from_arg_matches(m).map_err(|e| UsageError::from_clap(&e))? {
            CodaCmd::Backup {
                incremental,
                skip_refresh,
                refresh: _,
                host,
                volume,
            } => {
                let config = cx.config()?;
                let vol = find(config, &host, &volume).map_err(SourceError::failed)?;
                let requested = if incremental {
                    Requested::Incremental
                } else {
                    Requested::Full
                };
                let refresh = if skip_refresh {
                    Refresh::Skip
                } else {
                    Refresh::Yes
                };
                backup_unit(cx, &vol.unit, |root| {
                    Ok(backup(root, config, vol, requested, refresh, &known_hosts)?)
                })
            }
            CodaCmd::Restore {
                user,
                source,
                host,
                destdir,
                rsync_args,
            } => {
                let config = cx.config()?;
                let r = Restore {
                    kind: RestoreKind::Coda,
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
