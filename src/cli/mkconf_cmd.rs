//! `strata mkconf crontab|sudoers|systemd`, and the hidden generators the
//! Debian package uses (`manpages DIR`, `completions DIR`).

use super::Cli;
use crate::error::{ExitCode, UsageError};
use crate::mkconf::{self, Target};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct MkconfArgs {
    /// Where cron mails the output (MAILTO) [default: root]
    // why: global, so Deltaic's `mkconf --email ADDR crontab` and `mkconf crontab --email ADDR` both work
    #[arg(long, value_name = "ADDR", global = true)]
    email: Option<String>,
    #[command(subcommand)]
    cmd: MkconfCmd,
}

#[derive(Debug, Subcommand)]
pub enum MkconfCmd {
    /// The backup user's crontab (as Deltaic's; archive jobs commented out)
    Crontab {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// The sudoers rule that lets the backup user run the snapshot helper, and nothing else
    /// (with snapshot-store cephfs: the `ceph fs authorize` command for its key instead)
    Sudoers {
        #[command(flatten)]
        target: TargetArgs,
        /// snapshot-store cephfs: the file system's name
        #[arg(long, value_name = "NAME", default_value = "cephfs")]
        cephfs_name: String,
        /// snapshot-store cephfs: the root's path inside the file system [default: the root's path]
        #[arg(long, value_name = "PATH")]
        cephfs_path: Option<String>,
    },
    /// systemd service and timer units for run, prune, df check and archive
    Systemd {
        /// Write the units into DIR instead of printing them
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Write man pages into DIR (used to build the package)
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Write bash, zsh and fish completions into DIR (used to build the package)
    #[command(hide = true)]
    Completions { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The backup user [default: the current user]
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// The strata binary the jobs run
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/strata")]
    strata: PathBuf,
    /// The snapshot helper sudo allows
    #[arg(long, value_name = "PATH", default_value = crate::snapshot::helper::DEFAULT_HELPER)]
    helper: PathBuf,
}

impl TargetArgs {
    fn target(&self, cli: &Cli) -> anyhow::Result<Target> {
        let user = match &self.user {
            Some(u) => u.clone(),
            None => nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .ok_or_else(|| {
                    UsageError("cannot tell the current user's name; pass --user".to_owned())
                })?,
        };
        let config = match &cli.g.config {
            Some(c) => Some(std::path::absolute(c).with_context(|| format!("{}", c.display()))?),
            None => None,
        };
        Ok(Target {
            user,
            strata: self.strata.clone(),
            helper: self.helper.clone(),
            config,
        })
    }
}

#[allow(clippy::needless_pass_by_value)] // why: the shape `map_err` passes
fn usage(e: mkconf::MkconfError) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

pub fn run(cli: &Cli, args: &MkconfArgs) -> anyhow::Result<ExitCode> {
    let email = &args.email;
    match &args.cmd {
        MkconfCmd::Crontab { target } => {
            print!(
                "{}",
                mkconf::crontab(&target.target(cli)?, email.as_deref()).map_err(usage)?
            );
        }
        MkconfCmd::Sudoers {
            target,
            cephfs_name,
            cephfs_path,
        } => {
            let t = target.target(cli)?;
            // why: only a config that loads and says cephfs changes the answer; without one, the rule is the same for every store
            let cephfs_root = super::load_config(cli).ok().and_then(|ctx| {
                (ctx.config.settings.snapshot_store == crate::config::StoreKind::Cephfs)
                    .then(|| ctx.config.settings.root.clone())
            });
            match cephfs_root {
                Some(root) => {
                    let fs_path = cephfs_path
                        .clone()
                        .unwrap_or_else(|| root.to_string_lossy().into_owned());
                    print!(
                        "{}",
                        mkconf::ceph_caps(&t, cephfs_name, &fs_path, &root).map_err(usage)?
                    );
                }
                None => print!("{}", mkconf::sudoers(&t).map_err(usage)?),
            }
        }
        MkconfCmd::Systemd { dir, target } => {
            let units = mkconf::systemd(&target.target(cli)?).map_err(usage)?;
            match dir {
                Some(d) => {
                    std::fs::create_dir_all(d)
                        .with_context(|| format!("creating {}", d.display()))?;
                    for (name, text) in &units {
                        let p = d.join(name);
                        std::fs::write(&p, text)
                            .with_context(|| format!("writing {}", p.display()))?;
                    }
                }
                None => {
                    for (i, (name, text)) in units.iter().enumerate() {
                        if i > 0 {
                            println!();
                        }
                        println!("### {name}");
                        print!("{text}");
                    }
                }
            }
        }
        MkconfCmd::Manpages { dir } => {
            ensure_dir(dir)?;
            clap_mangen::generate_to(super::command(), dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
        MkconfCmd::Completions { dir } => {
            ensure_dir(dir)?;
            for shell in [
                clap_complete::Shell::Bash,
                clap_complete::Shell::Zsh,
                clap_complete::Shell::Fish,
            ] {
                clap_complete::generate_to(shell, &mut super::command(), "strata", dir)
                    .with_context(|| {
                        format!("writing {shell} completions into {}", dir.display())
                    })?;
            }
        }
    }
    Ok(ExitCode::Ok)
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
