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
    let path = config::locate(cli.config.as_deref(), &home())?;
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e @ ConfigError::Invalid { .. }) if cli.json => {
            let ConfigError::Invalid { problems, .. } = &e else {
                unreachable!()
            };
            let list: Vec<_> = problems
                .iter()
                .map(|p| serde_json::json!({"line": p.line, "key": p.path.as_str(), "message": p.message}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"file": path, "valid": false, "errors": list})
            );
            return Ok(ExitCode::Usage);
        }
        Err(e) => return Err(e.into()),
    };
    match cmd {
        ConfigCmd::Check => {
            let units = crate::sources::units(&config);
            if cli.json {
                let list: Vec<_> = units
                    .iter()
                    .map(|u| serde_json::json!({"unit": u.path.as_str(), "source": u.kind.name()}))
                    .collect();
                let warnings = config.rendered_warnings();
                println!(
                    "{}",
                    serde_json::json!({"file": path, "valid": true, "units": list, "warnings": warnings, "github-orgs-expand-at-run-time": !config.github.is_empty()})
                );
            } else {
                for w in config.rendered_warnings() {
                    eprintln!("warning: {w}");
                }
                if !cli.quiet {
                    println!("{}: valid, {} units", path.display(), units.len());
                    for u in &units {
                        println!("  {}", u.path);
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
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&config)?);
            } else {
                print!("{}", config::render::to_yaml(&config));
            }
            Ok(ExitCode::Ok)
        }
    }
}
