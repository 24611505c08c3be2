//! Per-source commands (`strata <source> backup|restore ...`): what `run`
//! invokes for each unit, and what an operator runs by hand.

use super::Ctx;
use crate::error::{ExitCode, UsageError};
use crate::sources::{self, Check, UnitReport};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum DumpCmd {
    /// Run a dump unit's command and store its output
    Backup {
        /// Scrub: also check the stored copy against its recorded checksum
        #[arg(short = 'c', long = "scrub")]
        scrub: bool,
        name: String,
    },
    /// Copy a dump unit's stored file to DEST (a file, a directory, or - for stdout)
    Restore {
        /// Read from this backup root or mounted snapshot instead of the live root
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        name: String,
        dest: PathBuf,
    },
}

/// Arguments of a source whose driver is not in this build: accepted so that
/// `run` and `--help` know the verbs, refused when used.
#[derive(Debug, Subcommand)]
pub enum PendingCmd {
    #[command(external_subcommand)]
    Any(Vec<String>),
}

pub fn pending(source: &str) -> anyhow::Result<ExitCode> {
    Err(UsageError(format!(
        "the {source} source is not implemented in this build of strata yet"
    ))
    .into())
}

/// Write the report for the runner, or record state when run by hand.
pub(super) fn report(
    ctx: &Ctx,
    unit: &crate::config::UnitPath,
    r: &UnitReport,
    started: i64,
    secs: f64,
) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os(sources::REPORT_ENV) {
        crate::backup_root::write_atomic(std::path::Path::new(&path), &serde_json::to_vec(r)?)?;
    } else {
        let root = crate::backup_root::BackupRoot::new(ctx.root()?);
        crate::runner::state::record(
            &root,
            unit,
            started,
            secs,
            &crate::runner::state::Attempt::Succeeded {
                scrubbed: r.scrubbed,
                bytes: r.bytes,
            },
        )?;
    }
    Ok(())
}

/// Run one unit's backup the way every source's `backup` command does: time
/// it, add "backing up UNIT" to an error, and report to the runner (or record
/// the unit's state when run by hand, success or failure).
pub(super) fn backup_unit(
    ctx: &Ctx,
    unit: &crate::config::UnitPath,
    backup: impl FnOnce() -> anyhow::Result<UnitReport>,
) -> anyhow::Result<ExitCode> {
    let started = chrono::Utc::now().timestamp();
    let t = std::time::Instant::now();
    match backup().map_err(|e| e.context(format!("backing up {unit}"))) {
        Ok(r) => {
            report(ctx, unit, &r, started, t.elapsed().as_secs_f64())?;
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            if std::env::var_os(sources::REPORT_ENV).is_none() {
                let broot = crate::backup_root::BackupRoot::new(ctx.root()?);
                let why = format!("{e:#}");
                let _ = crate::runner::state::record(
                    &broot,
                    unit,
                    started,
                    t.elapsed().as_secs_f64(),
                    &crate::runner::state::Attempt::Failed { why: &why },
                );
            }
            Err(e)
        }
    }
}

pub fn dump(ctx: &Ctx, cmd: &DumpCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DumpCmd::Backup { scrub, name } => {
            let unit = sources::dump::find(&ctx.config, name)?;
            let root = ctx.root()?;
            let check = if *scrub { Check::Scrub } else { Check::Normal };
            backup_unit(ctx, &unit.unit, || {
                Ok(sources::dump::backup(root, unit, check)?)
            })
        }
        DumpCmd::Restore { from, name, dest } => {
            let unit = sources::dump::find(&ctx.config, name)?;
            let from = match from {
                Some(f) => f.clone(),
                None => ctx.root()?.to_owned(),
            };
            let n = sources::dump::restore(&from, unit, dest)?;
            if dest.as_os_str() != "-" && !ctx.cli.quiet {
                eprintln!("restored {} ({n} bytes) to {}", unit.unit, dest.display());
            }
            Ok(ExitCode::Ok)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RgwCmd {
    /// Back up a bucket: fetch new and changed objects, delete local entries of deleted ones
    Backup {
        /// Fetch the ACLs of unchanged objects too
        #[arg(short = 'A', long = "scrub-acls")]
        scrub_acls: bool,
        /// Scrub: re-fetch everything, compare with what is stored, repair and report
        #[arg(short = 'c', long = "scrub")]
        scrub: bool,
        bucket: String,
    },
    /// Restore a backed-up bucket (SOURCE: a bucket name, or a unit directory path) into DEST-BUCKET
    Restore {
        /// Restore into a bucket that is not empty
        #[arg(short = 'f', long = "force")]
        force: bool,
        source: String,
        #[arg(value_name = "DEST-BUCKET")]
        dest_bucket: String,
    },
}

fn rgw_endpoint(ctx: &Ctx) -> anyhow::Result<sources::rgw::Endpoint> {
    sources::rgw::Endpoint::from_settings(&ctx.config.settings.rgw).ok_or_else(|| {
        UsageError(format!(
            "{}: settings.rgw-server is required for the rgw source",
            ctx.config_path.display()
        ))
        .into()
    })
}

pub fn rgw(ctx: &Ctx, cmd: &RgwCmd) -> anyhow::Result<ExitCode> {
    use sources::rgw::{AclRefresh, BackupOptions, RestoreOptions};
    match cmd {
        RgwCmd::Backup {
            scrub_acls,
            scrub,
            bucket,
        } => {
            let endpoint = rgw_endpoint(ctx)?;
            let unit = crate::config::UnitPath::from_parts(&["rgw", bucket])
                .map_err(|e| UsageError(format!("bucket {bucket:?}: {e}")))?;
            let root = ctx.root()?;
            let check = if *scrub { Check::Scrub } else { Check::Normal };
            // why: as Deltaic, a random share of runs refreshes every ACL (rgw-scrub-acl-probability)
            let p = ctx.config.settings.rgw.scrub_acl_probability;
            let acls = if *scrub_acls || (p > 0.0 && rand::random::<f64>() < p) {
                AclRefresh::Refetch
            } else {
                AclRefresh::KeepStored
            };
            let started = chrono::Utc::now().timestamp();
            let t = std::time::Instant::now();
            let dir = root.join(unit.as_str());
            let r = sources::rgw::backup(&dir, bucket, &endpoint, BackupOptions::new(check, acls))
                .map_err(|e| anyhow::anyhow!(e).context(format!("backing up {unit}")));
            match r {
                Ok(r) => {
                    report(ctx, &unit, &r, started, t.elapsed().as_secs_f64())?;
                    Ok(ExitCode::Ok)
                }
                Err(e) => {
                    if std::env::var_os(sources::REPORT_ENV).is_none() {
                        let broot = crate::backup_root::BackupRoot::new(root);
                        let why = format!("{e:#}");
                        let _ = crate::runner::state::record(
                            &broot,
                            &unit,
                            started,
                            t.elapsed().as_secs_f64(),
                            &crate::runner::state::Attempt::Failed { why: &why },
                        );
                    }
                    Err(e)
                }
            }
        }
        RgwCmd::Restore {
            force,
            source,
            dest_bucket,
        } => {
            let endpoint = rgw_endpoint(ctx)?;
            // why: as Deltaic, a SOURCE with a slash is a directory, otherwise a bucket in the root
            let dir = if source.contains('/') {
                PathBuf::from(source)
            } else {
                ctx.root()?.join("rgw").join(source)
            };
            let mode = if *force {
                RestoreOptions::Force
            } else {
                RestoreOptions::EmptyOnly
            };
            let r = sources::rgw::restore(&dir, dest_bucket, &endpoint, mode).map_err(|e| {
                anyhow::anyhow!(e).context(format!("restoring {source} to bucket {dest_bucket}"))
            })?;
            println!(
                "restored {} objects ({} bytes) to bucket {dest_bucket}{}; Last-Modified and ETags are set anew by radosgw",
                r.objects,
                r.bytes,
                if r.cors { ", with CORS rules" } else { "" }
            );
            if !r.missing_users.is_empty() {
                let names: Vec<&str> = r.missing_users.iter().map(String::as_str).collect();
                eprintln!(
                    "warning: these users named in ACLs do not exist on this radosgw; their grants were left out: {}",
                    names.join(", ")
                );
            }
            Ok(ExitCode::Ok)
        }
    }
}
