//! `strata dump backup|restore`, and the dump source's place in the registry.

use super::{backup, find, restore};
use crate::config::Config;
use crate::error::ExitCode;
use crate::sources::{Check, Cx, Source, SourceError, Unit, UnitsError, backup_unit};
use clap::{FromArgMatches, Subcommand};
use std::path::PathBuf;

/// The dump source.
pub struct Dump;

/// The registry's instance.
pub static DUMP: Dump = Dump;

#[derive(Debug, Subcommand)]
enum DumpCmd {
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

impl Source for Dump {
    fn name(&self) -> &'static str {
        "dump"
    }

    fn about(&self) -> &'static str {
        "The dump source: a command's output stored as a file"
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.dump.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        let default = config.settings.dump.scrub_probability;
        config
            .dump
            .iter()
            .map(|d| {
                Ok(Unit::new(
                    &DUMP,
                    d.unit.clone(),
                    &[&d.name],
                    d.scrub.unwrap_or(default),
                ))
            })
            .collect()
    }

    fn command(&self) -> clap::Command {
        DumpCmd::augment_subcommands(clap::Command::new(self.name()))
    }

    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        match DumpCmd::from_arg_matches(m).map_err(|e| crate::error::UsageError::from_clap(&e))? {
            DumpCmd::Backup { scrub, name } => {
                let unit = find(cx.config()?, &name).map_err(SourceError::failed)?;
                let check = if scrub { Check::Scrub } else { Check::Normal };
                backup_unit(cx, &unit.unit, |root| Ok(backup(root, unit, check)?))
            }
            DumpCmd::Restore { from, name, dest } => {
                let unit = find(cx.config()?, &name).map_err(SourceError::failed)?;
                let from = match from {
                    Some(f) => f,
                    None => cx.root()?.to_owned(),
                };
                let n = restore(&from, unit, &dest).map_err(SourceError::failed)?;
                if dest.as_os_str() != "-" && !cx.quiet {
                    eprintln!("restored {} ({n} bytes) to {}", unit.unit, dest.display());
                }
                Ok(ExitCode::Ok)
            }
        }
    }
}
