//! `strata googledrive [-p PROFILE] auth|test|ls|rm`: sign in to Google
//! Drive and look at what the archiver stored, as Deltaic's commands did.
//! Thin: flags -> calls into `archive::archivers::googledrive`, and printing.

use super::{Ctx, refuse_root};
use crate::archive::archivers::googledrive::{self as gd, DriveConfig, oauth};
use crate::config::ArchiverKind;
use crate::error::{ExitCode, UsageError};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct GoogledriveArgs {
    /// Use this googledrive profile's keys (credentials file, URLs) over the
    /// settings' [default: the only googledrive profile, if there is one]
    #[arg(short = 'p', long, value_name = "PROFILE")]
    profile: Option<String>,
    #[command(subcommand)]
    cmd: GoogledriveCmd,
}

#[derive(Debug, Subcommand)]
enum GoogledriveCmd {
    /// Sign in (a browser on this machine, or --device) and write the credentials file
    Auth {
        /// Headless: show a code to enter at google.com/device on any device
        #[arg(long, conflicts_with = "import")]
        device: bool,
        /// Take the client and refresh token from Deltaic's oauth2client
        /// credentials file instead of signing in
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
        /// The loopback port the browser comes back to [default: any free one]
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        port: u16,
        /// How long to wait for the browser, in seconds
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        wait: u64,
    },
    /// Check the credentials: print the application data folder's metadata
    Test,
    /// (debug) List every file strata's client can see, as JSON
    Ls,
    /// (debug) Delete a Drive file (a set folder with everything in it) by id
    Rm {
        fileid: String,
        /// Do not wait 10 seconds before deleting
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

/// The Drive settings to use: the named or only googledrive profile's over `settings:`.
fn config(ctx: &Ctx, profile: Option<&str>) -> anyhow::Result<DriveConfig> {
    let profiles = &ctx.config.settings.archivers;
    let drive_profile = |name: &str| match profiles.get(name).map(|p| &p.archiver) {
        Some(ArchiverKind::Googledrive(p)) => Ok(p),
        Some(_) => Err(UsageError(format!(
            "profile `{name}` is not a googledrive profile"
        ))),
        None => Err(UsageError(format!(
            "archiver profile `{name}` is not defined under settings.archivers"
        ))),
    };
    let chosen = if let Some(name) = profile {
        Some(drive_profile(name)?)
    } else {
        let mut all = profiles.values().filter_map(|p| match &p.archiver {
            ArchiverKind::Googledrive(g) => Some(g),
            _ => None,
        });
        match (all.next(), all.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    };
    Ok(DriveConfig::resolve(&ctx.config.settings.archive, chosen))
}

/// Deltaic's last chance to interrupt: a countdown on stderr.
fn countdown(what: &str, secs: u64) {
    for left in (0..=secs).rev() {
        eprint!("\r{what} in {left} seconds. ");
        let _ = std::io::stderr().flush();
        if left > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    eprintln!("\r{what}.                 ");
}

pub fn run(ctx: &Ctx, args: &GoogledriveArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(ctx, args.profile.as_deref())?;
    match &args.cmd {
        GoogledriveCmd::Auth {
            device,
            import,
            port,
            wait,
        } => {
            // why: root's credentials would be in root's cache, where the backup user's runs never look
            refuse_root(ctx.cli, "googledrive auth")?;
            let target = oauth::auth_target(cfg.credentials_file.as_deref(), &oauth::cache_dir());
            let creds = if let Some(file) = import {
                let (c, _) = oauth::read_credentials(file)?;
                oauth::check(&c, &cfg.token_url).context("checking the imported credentials")?;
                c
            } else {
                let client = gd::client(&ctx.config.settings.archive)?;
                let ends = cfg.endpoints();
                if *device {
                    oauth::device_flow(&client, &ends, &mut |code| {
                        println!(
                            "On any device, go to {} and enter the code {}",
                            code.verification_url, code.user_code
                        );
                        let _ = std::io::stdout().flush();
                    })?
                } else {
                    oauth::loopback_flow(
                        &client,
                        &ends,
                        *port,
                        Duration::from_secs(*wait),
                        &mut |url| {
                            println!(
                                "Open this address in a browser on this machine and allow access:"
                            );
                            println!("{url}");
                            println!("(no browser here? run `strata googledrive auth --device`)");
                            let _ = std::io::stdout().flush();
                        },
                    )?
                }
            };
            oauth::write_credentials(&target, &creds)?;
            println!("wrote the credentials to {}", target.display());
            Ok(ExitCode::Ok)
        }
        GoogledriveCmd::Test => {
            let drive = cfg.connect();
            let v = gd::app_folder(&drive)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::Ok)
        }
        GoogledriveCmd::Ls => {
            let drive = cfg.connect();
            let files = gd::list_everything(&drive)?;
            println!("{}", serde_json::to_string_pretty(&files)?);
            Ok(ExitCode::Ok)
        }
        GoogledriveCmd::Rm { fileid, yes } => {
            refuse_root(ctx.cli, "googledrive rm")?;
            let drive = cfg.connect();
            let name = gd::file_name(&drive, fileid)?;
            let what = format!("Deleting {name} ({fileid})");
            if *yes {
                eprintln!("{what}.");
            } else {
                countdown(&what, 10);
            }
            drive.delete(fileid)?;
            Ok(ExitCode::Ok)
        }
    }
}
