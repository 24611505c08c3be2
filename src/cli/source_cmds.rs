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
            let started = chrono::Utc::now().timestamp();
            let t = std::time::Instant::now();
            let check = if *scrub { Check::Scrub } else { Check::Normal };
            let r = sources::dump::backup(root, unit, check)
                .map_err(|e| anyhow::anyhow!(e))
                .map_err(|e| e.context(format!("backing up {}", unit.unit)));
            match r {
                Ok(r) => {
                    report(ctx, &unit.unit, &r, started, t.elapsed().as_secs_f64())?;
                    Ok(ExitCode::Ok)
                }
                Err(e) => {
                    if std::env::var_os(sources::REPORT_ENV).is_none() {
                        let broot = crate::backup_root::BackupRoot::new(root);
                        let why = e.to_string();
                        let _ = crate::runner::state::record(
                            &broot,
                            &unit.unit,
                            started,
                            t.elapsed().as_secs_f64(),
                            &crate::runner::state::Attempt::Failed { why: &why },
                        );
                    }
                    Err(e)
                }
            }
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
