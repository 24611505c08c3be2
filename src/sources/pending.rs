//! Sources whose config strata reads but whose driver is not in this build
//! yet (coda): their units are listed, so that `config check`,
//! `status` and `run` know them, and every verb is refused.

use crate::config::Config;
use crate::error::{ExitCode, UsageError};
use crate::sources::{Cx, Source, SourceError, Unit, UnitsError};

/// A source known by name only.
pub struct Pending {
    name: &'static str,
    about: &'static str,
    units: fn(&Config) -> Vec<Unit>,
}

pub static CODA: Pending = Pending {
    name: "coda",
    about: "The coda source (not in this build yet)",
    units: |c| {
        c.coda
            .iter()
            .map(|v| Unit::new(&CODA, v.unit.clone(), &[&v.server, &v.volume], 0.0))
            .collect()
    },
};

impl Source for Pending {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        self.about
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.coda.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        (self.units)(config).into_iter().map(Ok).collect()
    }

    fn command(&self) -> clap::Command {
        clap::Command::new(self.name)
            .allow_external_subcommands(true)
            .subcommand_required(true)
    }

    fn run(&self, _cx: &Cx, _m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        Err(UsageError(format!(
            "the {} source is not implemented in this build of strata yet",
            self.name
        ))
        .into())
    }
}
