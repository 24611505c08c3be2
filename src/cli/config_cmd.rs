//! `config check` and `config show`.

use super::{Cli, home};
use crate::config::{self, ConfigError};
use crate::error::ExitCode;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the config file and list the units it defines
    Check,
    /// Print the effective config, defaults filled in (secrets redacted)
    Show,
}

pub fn run(cli: &Cli, cmd: &ConfigCmd) -> anyhow::Result<ExitCode> {
    let path = config::locate(cli.g.config.as_deref(), &home())?;
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e @ ConfigError::Invalid { .. }) if cli.g.json => {
            let ConfigError::Invalid { problems, .. } = &e else {
                unreachable!()
            };
            let list: Vec<_> = problems
                .iter()
                .map(|p| serde_json::json!({"line": p.line, "key": p.path.as_str(), "message": p.message}))
                .collect();
            super::output::json(
                "config-check",
                "",
                serde_json::json!({"file": path, "valid": false, "errors": list}),
            )?;
            return Ok(ExitCode::Usage);
        }
        Err(e) => return Err(e.into()),
    };
    match cmd {
        ConfigCmd::Check => {
            let units: Vec<(&str, crate::config::UnitPath)> = crate::sources::all()
                .iter()
                .flat_map(|s| {
                    s.configured_units(&config)
                        .into_iter()
                        .map(move |u| (s.name(), u))
                })
                .collect();
            if cli.g.json {
                let list: Vec<_> = units
                    .iter()
                    .map(|(source, u)| serde_json::json!({"unit": u.as_str(), "source": source}))
                    .collect();
                let warnings = config.rendered_warnings();
                super::output::json(
                    "config-check",
                    "",
                    serde_json::json!({"file": path, "valid": true, "units": list, "warnings": warnings, "github-orgs-expand-at-run-time": !config.github.is_empty()}),
                )?;
            } else {
                for w in config.rendered_warnings() {
                    eprintln!("warning: {w}");
                }
                if !cli.g.quiet {
                    println!("{}: valid, {} units", path.display(), units.len());
                    for (_, u) in &units {
                        println!("  {u}");
                    }
                    if !config.github.is_empty() {
                        println!(
                            "  (each github organization's repositories are discovered when it is backed up)"
                        );
                    }
                }
            }
            Ok(ExitCode::Ok)
        }
        ConfigCmd::Show => {
            if cli.g.json {
                println!("{}", serde_json::to_string_pretty(&config)?);
            } else {
                print!("{}", config::render::to_yaml(&config));
            }
            Ok(ExitCode::Ok)
        }
    }
}
