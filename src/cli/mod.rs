//! The command line: clap types, dispatch, human or `--json` output, and the
//! mapping of errors to exit codes. The only module that uses `anyhow`.
//! Each command is a thin function that turns flags into calls to the core.

mod archive_cmd;
mod config_cmd;
mod googledrive_cmd;
mod mkconf_cmd;
mod output;
mod snapshots;
mod status;

use crate::config::{self, Config};
use crate::error::{ExitCode, UsageError};
use crate::sources;
use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// strata: back up hosts, repositories, Ceph images and buckets, and
/// databases into one snapshotted filesystem, and archive it offsite.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub g: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Clone, clap::Args)]
#[allow(clippy::struct_excessive_bools)] // why: independent command-line switches
pub struct Globals {
    /// Config file [default: ~/.config/strata/config.yaml, then ~/.config/deltaic.conf]
    #[arg(
        short = 'c',
        long = "config",
        // why: Deltaic's spelling, so its crontabs and scripts run unchanged
        alias = "config-file",
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
    /// Output listings and reports as JSON (ls, status, df, prune, config check, archive ls|cost): one object with `kind` and `schema_version` (1)
    #[arg(long, global = true)]
    pub json: bool,
    /// Progress bars: on a terminal unless -q (auto), always, or never
    ///
    /// Bars are drawn on stderr: `run` and `archive run` count the units done and
    /// name the running ones; `archive retrieve`, `archive unpack`, `rbd backup`
    /// and `rbd apply-diff` count bytes, with rate and ETA when the total is known;
    /// `github backup` shows git's own progress while it clones a repository for
    /// the first time. `auto` draws only when stdout and stderr are both terminals
    /// and -q is not given, so cron mail holds nothing extra; `always` draws even
    /// without a terminal, as a plain line once a second. A unit started by `run`
    /// never draws: its output is its log.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub progress: ProgressWhen,
    /// Allow commands that write into the backup root to run as root
    #[arg(long, global = true, env = "STRATA_ALLOW_ROOT", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_root: bool,
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
    Mkconf(mkconf_cmd::MkconfArgs),
    /// Offsite archives: run, ls, prune, cost, resync, retrieve, unpack, drill
    // why: after the sources' commands, which `command()` adds to these
    #[command(display_order = 100)]
    Archive(archive_cmd::ArchiveArgs),
    /// Google Drive: sign in (auth), check (test), list (ls) and delete (rm) files
    #[command(display_order = 101)]
    Googledrive(googledrive_cmd::GoogledriveArgs),
}

/// The whole command line: strata's own commands, and `strata <source> ...`
/// for every source in the registry (each source defines its verbs).
#[must_use]
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (i, s) in sources::all().iter().enumerate() {
        cmd = cmd.subcommand(
            s.command()
                .about(s.about())
                .subcommand_required(true)
                .arg_required_else_help(true)
                .display_order(50 + i),
        );
    }
    cmd
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressWhen {
    Auto,
    Always,
    Never,
}

impl Globals {
    fn set_progress(&self) {
        let mode = match self.progress {
            // why: a unit under `run` writes to its log; only the runner draws on the terminal
            _ if crate::jobs::child::is_job() => crate::progress::Mode::Never,
            ProgressWhen::Auto => crate::progress::Mode::Auto,
            ProgressWhen::Always => crate::progress::Mode::Always,
            ProgressWhen::Never => crate::progress::Mode::Never,
        };
        crate::progress::set_mode(mode, self.quiet);
    }
}

/// The parsed command line.
enum Parsed {
    Own(Cli),
    Source {
        source: &'static dyn sources::Source,
        globals: Globals,
        matches: clap::ArgMatches,
    },
}

fn parse() -> Parsed {
    let m = command().get_matches();
    if let Some((name, sub)) = m.subcommand()
        && let Some(source) = sources::find(name)
    {
        let globals = Globals::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
        return Parsed::Source {
            source,
            globals,
            matches: sub.clone(),
        };
    }
    match Cli::from_arg_matches(&m) {
        Ok(cli) => Parsed::Own(cli),
        Err(e) => e.exit(),
    }
}

/// Parse, run, print errors once, and return the exit code.
#[must_use]
pub fn main() -> std::process::ExitCode {
    output_failure_is_an_error();
    if let Err(e) = crate::jobs::child::adopt() {
        eprintln!("strata: {e}");
        return ExitCode::Failed.into();
    }
    let result = match parse() {
        Parsed::Own(cli) => {
            crate::exec::set_trace(cli.g.verbose);
            cli.g.set_progress();
            if matches!(
                cli.command,
                Command::Ls
                    | Command::Status
                    | Command::Df(_)
                    | Command::Config(_)
                    | Command::Mkconf(_)
            ) {
                die_quietly_on_closed_stdout();
            }
            run(&cli)
        }
        Parsed::Source {
            source,
            globals,
            matches,
        } => {
            crate::exec::set_trace(globals.verbose);
            globals.set_progress();
            run_source(&globals, source, &matches)
        }
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("strata: {}", chain(&e));
            exit_code_of(&e).into()
        }
    }
}

/// `strata <source> ...`: the source's own verbs.
fn run_source(
    cli: &Globals,
    source: &'static dyn sources::Source,
    m: &clap::ArgMatches,
) -> anyhow::Result<ExitCode> {
    let load = || {
        let path = config::locate(cli.config.as_deref(), &home())?;
        // why: a run's child reads the few lines its runner cut out for it,
        // not the whole file again (config/job.rs)
        if let Some(c) = crate::jobs::child::job_config(&path) {
            return Ok(c);
        }
        config::load(&path)
    };
    if cli.quiet && !cli.json && m.subcommand_name() == Some("backup") {
        // why: a backup's stdout is its progress and summary, its problems
        // go to stderr: -q keeps only those (for cron). Not for the other
        // commands: `dump restore UNIT -` writes the data itself to stdout.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
        }
    }
    let cx = sources::Cx::new(
        cli.quiet,
        cli.json,
        cli.allow_root,
        home(),
        cli.config.clone(),
        &load,
    );
    source
        .run(&cx, m)
        .map_err(anyhow::Error::from)
        .context(source.name())
}

/// `println!` panics when stdout cannot be written (a full disk under a
/// unit's log, `> /dev/full`): such a panic becomes one line on stderr
/// (best effort: it may be the same full disk) and exit status 1, not a
/// backtrace and 101. Every other panic keeps Rust's report.
fn output_failure_is_an_error() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = message
            .strip_prefix("failed printing to stdout: ")
            .or_else(|| message.strip_prefix("failed printing to stderr: "))
        {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "strata: cannot write its output: {why}");
            std::process::exit(ExitCode::Failed as i32);
        }
        default(info);
    }));
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
    crate::error::chain(e.as_ref())
}

fn exit_code_of(e: &anyhow::Error) -> ExitCode {
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<config::ConfigError>() {
            return ExitCode::Usage;
        }
        if cause
            .downcast_ref::<sources::SourceError>()
            .is_some_and(sources::SourceError::is_usage)
        {
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
    let path = config::locate(cli.g.config.as_deref(), &home())?;
    let config = config::load(&path)?;
    Ok(Ctx {
        cli,
        config_path: path,
        config,
    })
}

/// Commands that write into the backup root refuse root unless allowed (DESIGN §4).
fn refuse_root(cli: &Cli, what: &str) -> anyhow::Result<()> {
    Ok(crate::backup_root::refuse_root(cli.g.allow_root, what)?)
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
        Command::Archive(args) => archive_cmd::run(&load_config(cli)?, args),
        Command::Googledrive(args) => {
            googledrive_cmd::run(&load_config(cli)?, args).context("googledrive")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command line of Deltaic's `cli.py`, `run.py`, `prune.py`,
    /// `storage.py`, `template.py`, `archivers/__init__.py` and the sources
    /// strata has, short and long forms: a Deltaic crontab or script runs
    /// unchanged.
    const DELTAIC_COMMAND_LINES: &[&str] = &[
        "deltaic --version",
        "deltaic -h",
        "deltaic --help",
        "deltaic -c /etc/deltaic.conf run",
        "deltaic --config-file /etc/deltaic.conf run",
        "deltaic run",
        "deltaic run -S",
        "deltaic run --snapshot",
        "deltaic run --no-snapshot",
        "deltaic prune",
        "deltaic prune -n",
        "deltaic prune --dry-run",
        "deltaic prune -v",
        "deltaic prune --verbose -n",
        "deltaic df",
        "deltaic df -c",
        "deltaic df --check",
        "deltaic ls",
        "deltaic mount 20240101-1",
        "deltaic mount 20240101-1 20240102-1",
        "deltaic umount 20240101-1",
        "deltaic umount -a",
        "deltaic umount --all",
        "deltaic mkconf crontab",
        "deltaic mkconf sudoers",
        "deltaic mkconf --email ops@example.org crontab",
        "deltaic archive run",
        "deltaic archive run -r",
        "deltaic archive run --resume",
        "deltaic archive run 20240101-1",
        "deltaic archive -p default run",
        "deltaic archive --profile offsite run",
        "deltaic archive cost",
        "deltaic archive ls",
        "deltaic archive ls -s",
        "deltaic archive ls --sets 20240101-1",
        "deltaic archive retrieve 20240101-1 /tmp/r rsync/host",
        "deltaic archive retrieve -r 0.5 20240101-1 /tmp/r rsync/a rgw/b",
        "deltaic archive retrieve --max-rate 2 20240101-1 /tmp/r rsync/a",
        "deltaic archive unpack /tmp/d /tmp/r/20240101-1:rsync-a",
        "deltaic archive prune",
        "deltaic archive resync",
        "deltaic archive unit 20240101-1 /mnt/snap rsync/a",
        "deltaic rsync backup host.example.org",
        "deltaic rsync backup -c host.example.org",
        "deltaic rsync backup --scrub host.example.org",
        "deltaic rsync restore /b/rsync/a/etc host.example.org /tmp/x",
        "deltaic rsync restore --coda -u joe /b/coda/s/v host /tmp/x",
        "deltaic rsync restore --user joe /b/rsync/a/etc host /tmp/x -- --dry-run",
        "deltaic rbd backup pool image",
        "deltaic rbd backup -c -s pool snap",
        "deltaic rbd backup --scrub --snapshot pool snap",
        "deltaic rbd restore /b/rbd/pool/images/vm pool vm2",
        "deltaic rbd drop pool image",
        "deltaic rgw backup bucket",
        "deltaic rgw backup -A -c bucket",
        "deltaic rgw backup --scrub-acls --scrub bucket",
        "deltaic rgw restore bucket newbucket",
        "deltaic rgw restore -f /b/rgw/bucket newbucket",
        "deltaic rgw restore --force bucket newbucket",
        "deltaic coda backup host.example.org vol",
        "deltaic coda backup -i -R -v host.example.org vol",
        "deltaic coda backup --incremental --skip-refresh --verbose host vol",
        "deltaic coda backup --refresh host vol",
        "deltaic googledrive auth",
        "deltaic googledrive test",
        "deltaic googledrive ls",
    ];

    #[test]
    fn every_deltaic_command_line_parses() {
        for line in DELTAIC_COMMAND_LINES {
            let argv: Vec<&str> = line.split(' ').collect();
            let r = command().try_get_matches_from(&argv);
            match r {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        clap::error::ErrorKind::DisplayHelp
                            | clap::error::ErrorKind::DisplayVersion
                    ) => {}
                Err(e) => panic!("`{line}` does not parse: {e}"),
            }
        }
    }

    #[test]
    fn run_snapshot_flags_are_deltaics() {
        let m = command()
            .try_get_matches_from(["strata", "run", "-S"])
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        assert!(args.skips_snapshot());
        let m = command()
            .try_get_matches_from(["strata", "run", "--no-snapshot", "--snapshot"])
            .unwrap();
        let Command::Run(args) = Cli::from_arg_matches(&m).unwrap().command else {
            panic!()
        };
        assert!(
            !args.skips_snapshot(),
            "the last of the pair wins, as click's"
        );
    }
}
