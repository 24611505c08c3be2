//! `run`, `prune`, `df`, `ls`, `mount`, `umount`: the everyday commands that
//! deal with the backup root and its snapshots.

use super::{Ctx, output};
use crate::error::{ExitCode, UsageError};
use crate::jobs::Verbosity;
use crate::retention::ProtectReason;
use crate::runner::{self, RunOptions, SnapshotMode};
use crate::snapshot::prune::{PruneEvent, PruneMode};
use crate::snapshot::{self, SnapshotName, SnapshotStore};
use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use std::collections::BTreeMap;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do not take a snapshot at the end
    #[arg(short = 'S', long, overrides_with = "snapshot")]
    no_snapshot: bool,
    /// Take a snapshot at the end (the default; Deltaic's --snapshot)
    #[arg(long, hide = true, overrides_with = "no_snapshot")]
    snapshot: bool,
    /// Only units whose path matches this glob (repeatable), e.g. 'rsync/*'
    #[arg(long, value_name = "UNIT-GLOB")]
    only: Vec<String>,
    /// Scrub every unit this run
    #[arg(long)]
    scrub: bool,
    /// Seed of the random scrub choice (for reproducible runs)
    #[arg(long, env = "STRATA_SEED")]
    seed: Option<u64>,
    /// Which appliance of `appliances:` this is, when several share the
    /// root (default: the host name)
    #[arg(long, value_name = "NAME")]
    appliance: Option<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only print what would be removed
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Evaluate the policy as of this date (YYYY-MM-DD) instead of today
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Only report what is below df-warning percent free, and exit 1 if anything is
    #[arg(short = 'c', long)]
    check: bool,
}

fn store(ctx: &Ctx) -> anyhow::Result<Box<dyn SnapshotStore>> {
    Ok(snapshot::open(&ctx.config)?)
}

fn parse_name(s: &str) -> anyhow::Result<SnapshotName> {
    SnapshotName::parse(s).map_err(|e| UsageError(e.to_string()).into())
}

impl RunArgs {
    /// Whether this run takes no snapshot (`--no-snapshot` / `-S`).
    #[must_use]
    pub fn skips_snapshot(&self) -> bool {
        self.no_snapshot && !self.snapshot
    }
}

pub fn run(ctx: &Ctx, args: &RunArgs) -> anyhow::Result<ExitCode> {
    ctx.root()?;
    let only = args
        .only
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| UsageError(format!("--only {g:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // why: the free-space rule runs before the units, snapshot or not
    let store =
        if args.skips_snapshot() && ctx.config.settings.retention.free_space_rule().is_none() {
            None
        } else {
            Some(store(ctx)?)
        };
    let opts = RunOptions {
        snapshot: if args.skips_snapshot() {
            SnapshotMode::Skip
        } else {
            SnapshotMode::Take
        },
        only,
        seed: args.seed,
        scrub_all: args.scrub,
        exe: std::env::current_exe().context("cannot find the strata binary to run units with")?,
        verbosity: if ctx.cli.g.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        },
        allow_root: ctx.cli.g.allow_root,
        appliance: args.appliance.clone(),
    };
    let config_path =
        std::path::absolute(&ctx.config_path).unwrap_or_else(|_| ctx.config_path.clone());
    let summary = runner::run(
        &ctx.config,
        &config_path,
        store.as_deref(),
        &opts,
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
    )?;
    let failed = summary.failed();
    if let Some(sig) = summary.interrupted {
        eprintln!("interrupted by signal {sig}");
    } else if failed > 0 {
        eprintln!("{failed} of {} units failed", summary.outcomes.len());
    } else if !ctx.cli.g.quiet {
        println!("{} units ok", summary.outcomes.len());
    }
    Ok(if summary.exit_code() == 0 {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

pub fn ls(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    // why: an unmounted backup volume must not look like "no snapshots"
    ctx.root()?;
    let list = store(ctx)?.list()?;
    if ctx.cli.g.json {
        output::json("ls", "snapshots", serde_json::to_value(&list)?)?;
    } else {
        for s in &list {
            match &s.mounted {
                Some(p) => println!("{}  (mounted at {})", s.name, p.display()),
                None => println!("{}", s.name),
            }
        }
    }
    Ok(ExitCode::Ok)
}

pub fn mount(ctx: &Ctx, names: &[String]) -> anyhow::Result<ExitCode> {
    ctx.root()?;
    let store = store(ctx)?;
    for n in names {
        let name = parse_name(n)?;
        let path = store
            .mount(&name)
            .with_context(|| format!("mounting {name}"))?;
        println!("{}", path.display());
    }
    Ok(ExitCode::Ok)
}

pub fn umount(ctx: &Ctx, all: bool, names: &[String]) -> anyhow::Result<ExitCode> {
    ctx.root()?;
    let store = store(ctx)?;
    let targets: Vec<SnapshotName> = if all {
        store
            .list()?
            .into_iter()
            .filter(|s| s.mounted.is_some())
            .map(|s| s.name)
            .collect()
    } else if names.is_empty() {
        return Err(UsageError("name at least one snapshot, or pass -a".to_owned()).into());
    } else {
        names
            .iter()
            .map(|n| parse_name(n))
            .collect::<anyhow::Result<_>>()?
    };
    for name in targets {
        store
            .umount(&name)
            .with_context(|| format!("unmounting {name}"))?;
    }
    Ok(ExitCode::Ok)
}

pub fn prune(ctx: &Ctx, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let root = ctx.root()?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(crate::backup_root::PidLock::prune(
            &crate::backup_root::BackupRoot::new(root).state_dir(),
        )?)
    };
    let store = store(ctx)?;
    let today = args
        .as_of
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    let (incomplete, unreadable) = crate::archive::sets::incomplete_sets(&ctx.config);
    for (profile, e) in unreadable {
        eprintln!(
            "strata: warning: cannot list the archive sets of profile {profile} ({e}); \
             snapshots its incomplete sets read are not protected from this prune"
        );
    }
    let mut protected: BTreeMap<SnapshotName, ProtectReason> = BTreeMap::new();
    for (name, profile) in incomplete {
        protected
            .entry(name)
            .or_insert(ProtectReason::ArchiveSetReading { profile });
    }
    let mode = if args.dry_run {
        PruneMode::DryRun
    } else {
        PruneMode::Apply
    };
    let report = snapshot::prune::prune(
        store.as_ref(),
        &ctx.config.settings.retention,
        today,
        protected,
        &root.join("Logs"),
        mode,
    )?;
    if ctx.cli.g.json {
        output::json(
            "prune",
            "",
            serde_json::json!({"dry_run": args.dry_run, "events": report.events}),
        )?;
        return Ok(if report.failed() {
            ExitCode::Failed
        } else {
            ExitCode::Ok
        });
    }
    let verbose = ctx.cli.g.verbose;
    for event in &report.events {
        match event {
            PruneEvent::Remove { name, why, done } => {
                if !done {
                    println!("would remove {name} ({why})");
                } else if verbose {
                    println!("removed {name} ({why})");
                }
            }
            PruneEvent::OverLimit { name, why, done } => {
                if *done {
                    println!("removed {name} ({why})");
                } else {
                    println!("would remove {name} ({why})");
                }
            }
            PruneEvent::AlreadyGone { .. } => {}
            PruneEvent::RemoveFailed { name, error } => {
                eprintln!("strata: cannot remove {name}: {error}");
            }
            PruneEvent::Protected { name, why } => {
                println!("kept {name}: {why} (the policy would remove it)");
            }
            PruneEvent::Keep { name, why } => {
                if verbose {
                    println!("keep {name} ({why})");
                }
            }
            PruneEvent::FreeSpace {
                name,
                data,
                meta,
                min_free,
                free_bytes,
                min_free_bytes,
                done,
            } => {
                let why = snapshot::prune::shortage(
                    *data,
                    *meta,
                    *min_free,
                    *free_bytes,
                    *min_free_bytes,
                );
                if *done {
                    println!("removed {name}: {why}");
                } else {
                    println!("would remove {name} ({why})");
                }
            }
            PruneEvent::FreeSpaceExhausted {
                data,
                meta,
                min_free,
                free_bytes,
                min_free_bytes,
            } => eprintln!(
                "strata: {}, and no more snapshots may be removed (gc-min-keep)",
                snapshot::prune::shortage(*data, *meta, *min_free, *free_bytes, *min_free_bytes)
            ),
            PruneEvent::Log { path, done } => {
                if !done {
                    println!("would remove log {}", path.display());
                } else if verbose {
                    println!("removed log {}", path.display());
                }
            }
        }
    }
    Ok(if report.failed() {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

pub fn df(ctx: &Ctx, args: &DfArgs) -> anyhow::Result<ExitCode> {
    ctx.root()?;
    let space = store(ctx)?.space()?;
    let threshold = if args.check {
        ctx.config.settings.df_warning
    } else {
        100.0
    };
    let mut rows: Vec<(&str, String, f64)> = vec![
        (
            "Free filesystem space",
            output::size(space.fs_free),
            space.fs_free_percent(),
        ),
        (
            "Free inodes",
            space.inodes_free.to_string(),
            space.inodes_free_percent(),
        ),
    ];
    if let Some(pool) = &space.pool {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )] // why: display
        let free = |size: u64, pct: f64| output::size((size as f64 * pct / 100.0) as u64);
        rows.push((
            "Free LVM data space",
            free(pool.data_size, pool.data_free_percent),
            pool.data_free_percent,
        ));
        rows.push((
            "Free LVM metadata space",
            free(pool.metadata_size, pool.metadata_free_percent),
            pool.metadata_free_percent,
        ));
    }
    let low: Vec<_> = rows.iter().filter(|(_, _, pct)| *pct < threshold).collect();
    if ctx.cli.g.json {
        let list: Vec<_> = low
            .iter()
            .map(|(l, v, p)| serde_json::json!({"what": l, "free": v, "free_percent": p}))
            .collect();
        output::json(
            "df",
            "",
            serde_json::json!({"space": space, "reported": list}),
        )?;
    } else {
        for (label, value, pct) in &low {
            println!("{:<25} {value:>14} ({pct:4.1}%)", format!("{label}:"));
        }
    }
    Ok(if args.check && !low.is_empty() {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}
