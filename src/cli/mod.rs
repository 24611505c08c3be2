//! The command line: clap types, dispatch, human or `--json` output, and the
//! mapping of errors to exit codes. The only module that uses `anyhow`.
//! Each command is a thin function that turns flags into calls to the core.

mod archive_cmd;
mod config_cmd;
mod mkconf_cmd;
mod output;
mod rbd_cmd;
mod rsync_cmd;
mod snapshots;
mod source_cmds;
mod status;

use crate::config::{self, Config};
use crate::error::{ExitCode, UsageError};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// strata: back up hosts, repositories, Ceph images and buckets, and
/// databases into one snapshotted filesystem, and archive it offsite.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, max_term_width = 100)]
#[allow(clippy::struct_excessive_bools)] // why: independent command-line switches
pub struct Cli {
    /// Config file [default: ~/.config/strata/config.yaml, then ~/.config/deltaic.conf]
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "STRATA_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Print only problems (for cron)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more: every command strata runs, every snapshot prune keeps or removes
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Output listings as JSON (ls, status, df, config check)
    #[arg(long, global = true)]
    pub json: bool,
    /// Allow commands that write into the backup root to run as root
    #[arg(long, global = true, env = "STRATA_ALLOW_ROOT", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_root: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up every unit, then take a snapshot
    Run(snapshots::RunArgs),
    /// Remove snapshots by the retention policy, and old logs
    Prune(snapshots::PruneArgs),
    /// Report free space of the backup filesystem (and thin pool)
    Df(snapshots::DfArgs),
    /// List snapshots
    Ls,
    /// Make snapshots readable under <root>/Snapshots/<name>
    Mount {
        #[arg(required = true, value_name = "SNAPSHOT")]
        snapshots: Vec<String>,
    },
    /// Undo `mount`
    Umount {
        /// Unmount every mounted snapshot
        #[arg(short, long)]
        all: bool,
        #[arg(value_name = "SNAPSHOT")]
        snapshots: Vec<String>,
    },
    /// Per unit: last attempt, last success, last scrub, size, failures in a row
    Status,
    /// Write the status as Prometheus textfile metrics
    Metrics {
        /// The .prom file to write (atomically)
        file: PathBuf,
    },
    /// Check or show the configuration
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
    /// Print the crontab, sudoers rule or systemd units for this installation
    #[command(subcommand)]
    Mkconf(mkconf_cmd::MkconfCmd),
    /// The dump source: a command's output stored as a file
    #[command(subcommand)]
    Dump(source_cmds::DumpCmd),
    /// The rsync source: host filesystems over ssh
    #[command(subcommand)]
    Rsync(rsync_cmd::RsyncCmd),
    /// The github source (not in this build yet)
    #[command(subcommand)]
    Github(source_cmds::PendingCmd),
    /// The rbd source: Ceph RBD images and snapshots
    #[command(subcommand)]
    Rbd(rbd_cmd::RbdCmd),
    /// The rgw source: RADOS Gateway buckets through S3
    #[command(subcommand)]
    Rgw(source_cmds::RgwCmd),
    /// The coda source (not in this build yet)
    #[command(subcommand)]
    Coda(source_cmds::PendingCmd),
    /// Offsite archives: run, ls, prune, cost, resync, retrieve, unpack, drill
    Archive(archive_cmd::ArchiveArgs),
}

/// Parse, run, print errors once, and return the exit code.
#[must_use]
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    crate::exec::set_trace(cli.verbose);
    if matches!(
        cli.command,
        Command::Ls | Command::Status | Command::Df(_) | Command::Config(_) | Command::Mkconf(_)
    ) {
        die_quietly_on_closed_stdout();
    }
    match run(&cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("strata: {}", chain(&e));
            exit_code_of(&e).into()
        }
    }
}

/// `strata ls | head` must end quietly, as Unix tools do, rather than panic
/// on a write to a closed pipe. Only for the commands that just print: the
/// others keep Rust's ignored SIGPIPE, so that a pipeline child (gpg, rbd)
/// dying mid-stream is an error with its message, not a silent death.
#[allow(unsafe_code)]
fn die_quietly_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called in main before any thread is started, and SIG_DFL
    // installs no handler that could run at an unsafe point.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn exit_code_of(e: &anyhow::Error) -> ExitCode {
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<config::ConfigError>() {
            return ExitCode::Usage;
        }
        if let Some(
            crate::runner::RunError::NoMatch(_) | crate::runner::RunError::LogsUnwritable { .. },
        ) = cause.downcast_ref()
        {
            return ExitCode::Usage;
        }
    }
    ExitCode::Failed
}

/// Shared context of a command.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub config_path: PathBuf,
    pub config: Config,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn load_config(cli: &Cli) -> anyhow::Result<Ctx<'_>> {
    let path = config::locate(cli.config.as_deref(), &home())?;
    let config = config::load(&path)?;
    Ok(Ctx {
        cli,
        config_path: path,
        config,
    })
}

/// Commands that write into the backup root refuse root unless allowed (DESIGN §4).
fn refuse_root(cli: &Cli, what: &str) -> anyhow::Result<()> {
    if nix::unistd::geteuid().is_root() && !cli.allow_root {
        return Err(UsageError(format!(
            "refusing to run `strata {what}` as root: files root creates in the backup root or spool would break \
             the backup user's later runs; run it as the backup user, or pass --allow-root (STRATA_ALLOW_ROOT=1)"
        ))
        .into());
    }
    Ok(())
}

impl Ctx<'_> {
    /// The backup root, which must exist (exit 2 otherwise).
    pub fn root(&self) -> anyhow::Result<&Path> {
        Ok(self.config.require_root()?)
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config(c) => config_cmd::run(cli, c),
        Command::Mkconf(c) => mkconf_cmd::run(cli, c),
        Command::Run(args) => {
            refuse_root(cli, "run")?;
            snapshots::run(&load_config(cli)?, args)
        }
        Command::Prune(args) => {
            refuse_root(cli, "prune")?;
            snapshots::prune(&load_config(cli)?, args)
        }
        Command::Df(args) => snapshots::df(&load_config(cli)?, args),
        Command::Ls => snapshots::ls(&load_config(cli)?),
        Command::Mount { snapshots: names } => {
            refuse_root(cli, "mount")?;
            snapshots::mount(&load_config(cli)?, names)
        }
        Command::Umount {
            all,
            snapshots: names,
        } => {
            refuse_root(cli, "umount")?;
            snapshots::umount(&load_config(cli)?, *all, names)
        }
        Command::Status => status::status(&load_config(cli)?),
        Command::Metrics { file } => status::metrics(&load_config(cli)?, file),
        Command::Dump(cmd) => {
            refuse_root(cli, "dump")?;
            source_cmds::dump(&load_config(cli)?, cmd).context("dump")
        }
        Command::Rsync(cmd) => rsync_cmd::rsync(&load_config(cli)?, cmd).context("rsync"),
        Command::Github(_) => source_cmds::pending("github"),
        Command::Rbd(cmd) => {
            if let Some(r) = rbd_cmd::run_without_config(cli, cmd) {
                return r.context("rbd");
            }
            refuse_root(cli, "rbd")?;
            rbd_cmd::run(&load_config(cli)?, cmd).context("rbd")
        }
        Command::Rgw(cmd) => {
            refuse_root(cli, "rgw")?;
            source_cmds::rgw(&load_config(cli)?, cmd).context("rgw")
        }
        Command::Coda(_) => source_cmds::pending("coda"),
        Command::Archive(args) => archive_cmd::run(&load_config(cli)?, args),
    }
}
