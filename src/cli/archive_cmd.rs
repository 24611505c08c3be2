//! `strata archive [-p PROFILE] ...`: offsite archive sets (DESIGN §6).
//! Thin: flags -> calls into `crate::archive`, and printing.

use super::{Ctx, refuse_root};
use crate::archive::{
    self, ArchiveEnv, ArchiveError, Archiver, archivers, pack,
    rate::RateLimit,
    retrieve,
    sets::{self, SetMark},
    unpack,
};
use crate::error::{ExitCode, UsageError};
use crate::snapshot::{self, SnapshotName};
use anyhow::Context;
use clap::{Args, Subcommand};
use rand::seq::SliceRandom;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Archiver profile (a key of settings.archivers)
    #[arg(short = 'p', long, default_value = "default", value_name = "PROFILE")]
    profile: String,
    #[command(subcommand)]
    cmd: ArchiveCmd,
}

#[derive(Debug, Subcommand)]
enum ArchiveCmd {
    /// Archive the newest snapshot (or SNAPSHOT), each unit not yet in its set
    Run {
        /// Resume the newest incomplete set
        #[arg(short = 'r', long)]
        resume: bool,
        snapshot: Option<String>,
    },
    /// List archives (or, with -s, archive sets)
    Ls {
        /// List sets: count, size, complete, protected
        #[arg(short = 's', long)]
        sets: bool,
        set: Option<String>,
    },
    /// Delete old archive sets (keep-count complete ones are kept)
    Prune {
        /// Only print the plan
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Report storage costs
    Cost,
    /// Repair disagreements between the archiver's index and its data
    Resync,
    /// Low level: pack and upload one unit of a mounted snapshot
    Unit {
        snapshot: String,
        mountpoint: PathBuf,
        unit: String,
    },
    /// Download archives into DESTDIR (rate limited, resumable, checked)
    Retrieve {
        /// Maximum rate in GiB/hour, shared by concurrent retrieves of the profile
        #[arg(
            short = 'r',
            long = "max-rate",
            value_name = "GIB-PER-HOUR",
            default_value_t = 1.0
        )]
        max_rate: f64,
        /// The rate in bytes per second (overrides -r; for tests)
        #[arg(long, hide = true, env = "STRATA_RETRIEVE_BYTES_PER_SEC")]
        bytes_per_sec: Option<f64>,
        snapshot: String,
        destdir: PathBuf,
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
    },
    /// Verify and unpack retrieved archives into DESTDIR
    Unpack {
        /// Do not check that each archive's tar label names the set and unit
        /// it was retrieved as (for files not fetched by `archive retrieve`)
        #[arg(long)]
        any_label: bool,
        /// Create the device nodes the archives hold (skipped otherwise)
        #[arg(long)]
        devices: bool,
        /// Restore setuid/setgid files and security.capability xattrs (skipped otherwise)
        #[arg(long)]
        setuid: bool,
        destdir: PathBuf,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Retrieve a random (or the named) unit of the newest complete set,
    /// unpack it and compare it with its snapshot
    Drill { unit: Option<String> },
}

fn open_archiver(ctx: &Ctx, profile: &str) -> anyhow::Result<Box<dyn Archiver>> {
    let p = ctx.config.settings.archivers.get(profile).ok_or_else(|| {
        UsageError(
            ArchiveError::NoProfile {
                name: profile.to_owned(),
                known: ctx
                    .config
                    .settings
                    .archivers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .to_string(),
        )
    })?;
    Ok(archivers::open(p)?)
}

fn env(ctx: &Ctx) -> anyhow::Result<ArchiveEnv> {
    ArchiveEnv::from_config(&ctx.config).map_err(|e| UsageError(e.to_string()).into())
}

fn set_name(s: &str) -> anyhow::Result<SnapshotName> {
    SnapshotName::parse(s).map_err(|e| UsageError(e.to_string()).into())
}

fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    #[allow(clippy::cast_precision_loss)] // why: display only
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub fn run(ctx: &Ctx, args: &ArchiveArgs) -> anyhow::Result<ExitCode> {
    let profile = &args.profile;
    let cli = ctx.cli;
    match &args.cmd {
        ArchiveCmd::Run { resume, snapshot } => {
            refuse_root(cli, "archive run")?;
            ctx.root()?;
            let env = env(ctx)?;
            let archiver = open_archiver(ctx, profile)?;
            let store = snapshot::open(&ctx.config)?;
            let name = match (snapshot, resume) {
                (Some(_), true) => {
                    return Err(UsageError("give a SNAPSHOT or -r, not both".into()).into());
                }
                (Some(s), false) => set_name(s)?,
                (None, true) => {
                    let sets = archiver.list_sets()?;
                    let (name, info) = sets
                        .iter()
                        .next_back()
                        .ok_or_else(|| UsageError("there is no archive set to resume".into()))?;
                    if info.complete {
                        return Err(ArchiveError::AlreadyComplete(name.clone()).into());
                    }
                    set_name(name)?
                }
                (None, false) => store
                    .list()?
                    .last()
                    .map(|s| s.name.clone())
                    .ok_or(ArchiveError::NoSnapshot)?,
            };
            if !cli.quiet {
                println!("archiving snapshot {name} to profile {profile}");
            }
            let workers = ctx.config.settings.archivers[profile].workers as usize;
            let opts = archive::run::RunOptions {
                exe: std::env::current_exe().context("cannot find the strata binary")?,
                config_path: ctx.config_path.clone(),
                profile: profile.clone(),
                allow_root: cli.allow_root,
                quiet: cli.quiet,
            };
            let s = archive::run::run(
                &ctx.config,
                &env,
                archiver.as_ref(),
                store.as_ref(),
                &name,
                workers,
                &opts,
            )?;
            if s.completed {
                if !cli.quiet {
                    println!(
                        "set {name} complete: {} archived now, {} already in",
                        s.archived.len(),
                        s.already
                    );
                }
                Ok(ExitCode::Ok)
            } else {
                Err(
                    ArchiveError::UnitsFailed(s.failed.into_iter().map(|(u, _)| u).collect())
                        .into(),
                )
            }
        }
        ArchiveCmd::Unit {
            snapshot,
            mountpoint,
            unit,
        } => {
            refuse_root(cli, "archive unit")?;
            let env = env(ctx)?;
            let name = set_name(snapshot)?;
            let archiver = open_archiver(ctx, profile)?;
            let compression = archive::unit_compression(&ctx.config, profile, unit);
            let packed = pack::pack(&env, name.as_str(), mountpoint, unit, compression)
                .with_context(|| format!("packing {unit}"))?;
            archiver
                .upload_archive(name.as_str(), unit, &packed.meta, packed.file.path())
                .with_context(|| format!("uploading {unit}"))?;
            println!(
                "archived {unit}: {} {} {} sha256 {}",
                human(packed.meta.size),
                packed.meta.compression.name(),
                packed.meta.encryption.name(),
                packed.meta.sha256
            );
            packed.file.close().context("removing the spool file")?;
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Ls {
            sets: only_sets,
            set,
        } => {
            let archiver = open_archiver(ctx, profile)?;
            let all = archiver.list_sets()?;
            if let Some(s) = set
                && !all.contains_key(s)
            {
                return Err(ArchiveError::NoSuchSet(s.clone()).into());
            }
            let chosen = all
                .iter()
                .filter(|(n, _)| set.as_ref().is_none_or(|s| s == *n));
            if cli.json {
                let v: serde_json::Value = if *only_sets {
                    serde_json::to_value(chosen.collect::<std::collections::BTreeMap<_, _>>())?
                } else {
                    let mut m = serde_json::Map::new();
                    for (n, _) in chosen {
                        let a: std::collections::BTreeMap<String, archive::MetaFields> = archiver
                            .list_set_archives(n)?
                            .into_iter()
                            .map(|(u, meta)| (u, meta.fields()))
                            .collect();
                        m.insert(n.clone(), serde_json::to_value(a)?);
                    }
                    serde_json::Value::Object(m)
                };
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::Ok);
            }
            for (n, info) in chosen {
                if *only_sets {
                    println!(
                        "{n} {:5} {:>10}  {} {}",
                        info.count,
                        human(info.size),
                        if info.complete {
                            "  complete"
                        } else {
                            "incomplete"
                        },
                        if info.protected { "protected" } else { "" }
                    );
                } else {
                    for (unit, size) in archiver.list_set_units(n)? {
                        println!("{n} {:>10} {unit}", human(size));
                    }
                }
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Prune { dry_run } => {
            refuse_root(cli, "archive prune")?;
            let archiver = open_archiver(ctx, profile)?;
            let keep = ctx.config.settings.archivers[profile].keep_count;
            let all = archiver.list_sets()?;
            for (name, mark) in sets::plan_prune(&all, keep) {
                let incomplete = if all[&name].complete {
                    ""
                } else {
                    " incomplete"
                };
                match mark {
                    SetMark::Keep => {}
                    SetMark::Protected => {
                        if cli.verbose || *dry_run {
                            println!("keeping protected{incomplete} archive set {name}");
                        }
                    }
                    SetMark::Remove => {
                        println!(
                            "{}{incomplete} archive set {name}",
                            if *dry_run { "would prune" } else { "pruning" }
                        );
                        if !dry_run {
                            archiver.delete_set(&name)?;
                        }
                    }
                }
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Cost => {
            let archiver = open_archiver(ctx, profile)?;
            let lines = archiver.report_cost()?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else {
                for l in &lines {
                    println!(
                        "{:<14} {:6} archives {:>10}  ${:.2}/month  ${:.2} to retrieve all",
                        l.class,
                        l.archives,
                        human(l.bytes),
                        l.monthly,
                        l.retrieval
                    );
                }
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Resync => {
            refuse_root(cli, "archive resync")?;
            let archiver = open_archiver(ctx, profile)?;
            for line in archiver.resync()? {
                println!("{line}");
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Retrieve {
            max_rate,
            bytes_per_sec,
            snapshot,
            destdir,
            units,
        } => {
            refuse_root(cli, "archive retrieve")?;
            let env = env(ctx)?;
            let set = set_name(snapshot)?;
            let archiver = open_archiver(ctx, profile)?;
            let rate = bytes_per_sec.unwrap_or(max_rate * f64::from(1u32 << 30) / 3600.0);
            if rate.is_nan() || rate <= 0.0 {
                return Err(UsageError("the retrieval rate must be positive".into()).into());
            }
            std::fs::create_dir_all(&env.spool).with_context(|| env.spool.display().to_string())?;
            let limit = RateLimit::new(&env.spool, profile, rate);
            std::fs::create_dir_all(destdir).with_context(|| destdir.display().to_string())?;
            let archives = archiver.list_set_archives(set.as_str())?;
            let mut failed = false;
            for unit in units {
                let r = archives
                    .get(unit)
                    .ok_or_else(|| ArchiveError::no_such_archive(set.as_str(), unit))
                    .and_then(|meta| {
                        retrieve::retrieve_one(
                            archiver.as_ref(),
                            set.as_str(),
                            unit,
                            meta,
                            destdir,
                            Some(&limit),
                        )
                    });
                match r {
                    Ok(path) => println!("{}", path.display()),
                    Err(e) => {
                        eprintln!("strata: {unit}: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::Failed
            } else {
                ExitCode::Ok
            })
        }
        ArchiveCmd::Unpack {
            any_label,
            devices,
            setuid,
            destdir,
            files,
        } => {
            refuse_root(cli, "archive unpack")?;
            let env = env(ctx)?;
            let opts = unpack::UnpackOptions {
                label: if *any_label {
                    unpack::LabelCheck::Any
                } else {
                    unpack::LabelCheck::Recorded
                },
                devices: if *devices {
                    unpack::Devices::Restore
                } else {
                    unpack::Devices::Skip
                },
                privileges: if *setuid {
                    unpack::Privileges::Restore
                } else {
                    unpack::Privileges::Skip
                },
            };
            for u in unpack::unpack_all(&env, files, destdir, opts)? {
                if let Some(note) = &u.note {
                    eprintln!("strata: note: {note}");
                }
                if u.skipped.any() {
                    eprintln!("strata: {}: {}", u.file.display(), u.skipped);
                }
                if !cli.quiet {
                    println!(
                        "unpacked {} ({} members) into {}",
                        u.file.display(),
                        u.members,
                        destdir.display()
                    );
                }
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Drill { unit } => {
            refuse_root(cli, "archive drill")?;
            drill(ctx, profile, unit.as_deref())
        }
    }
}

/// The snapshots that an incomplete archive set of some profile still needs
/// (so that `archive run -r` can finish it), with the profile. A profile
/// whose archiver cannot be listed is reported on stderr and skipped.
// why: skipped, not fatal: snapshot pruning must not stall on an offsite outage (the pool would fill and backups fail); the cost is that the set is restarted from a newer snapshot
pub fn incomplete_sets(config: &crate::config::Config) -> Vec<(SnapshotName, String)> {
    let mut out = Vec::new();
    for (profile, p) in &config.settings.archivers {
        let sets = archivers::open(p).and_then(|a| a.list_sets());
        match sets {
            Ok(sets) => out.extend(
                sets.into_iter()
                    .filter(|(_, info)| !info.complete)
                    .filter_map(|(n, _)| SnapshotName::parse(&n).ok())
                    .map(|n| (n, profile.clone())),
            ),
            Err(ArchiveError::Unsupported(_)) => {}
            Err(e) => eprintln!(
                "strata: warning: cannot list the archive sets of profile {profile} ({e}); \
                 snapshots its incomplete sets read are not protected from this prune"
            ),
        }
    }
    out
}

fn drill(ctx: &Ctx, profile: &str, unit: Option<&str>) -> anyhow::Result<ExitCode> {
    let env = env(ctx)?;
    let archiver = open_archiver(ctx, profile)?;
    let sets = archiver.list_sets()?;
    let set = sets
        .iter()
        .rev()
        .find(|(_, s)| s.complete)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| ArchiveError::NoCompleteSet(profile.to_owned()))?;
    let unit = if let Some(u) = unit {
        u.to_owned()
    } else {
        let names: Vec<String> = archiver.list_set_units(&set)?.into_keys().collect();
        names
            .choose(&mut rand::thread_rng())
            .ok_or_else(|| ArchiveError::NoSuchSet(set.clone()))?
            .clone()
    };
    let meta = &archiver.archive_meta(&set, &unit)?;
    println!(
        "drill: {profile} set {set} unit {unit} ({})",
        human(meta.size)
    );
    std::fs::create_dir_all(&env.spool)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("drill-{}-", std::process::id()))
        .tempdir_in(&env.spool)?;
    let fetched = retrieve::retrieve_one(archiver.as_ref(), &set, &unit, meta, work.path(), None)?;
    let out = work.path().join("tree");
    // why: everything, as the snapshot has it, to compare; into the drill's own 0700 directory, removed after
    let opts = unpack::UnpackOptions {
        devices: unpack::Devices::Restore,
        privileges: unpack::Privileges::Restore,
        ..unpack::UnpackOptions::default()
    };
    unpack::unpack(&env, &fetched, &out, opts)?;
    let store = snapshot::open(&ctx.config)?;
    let name = set_name(&set)?;
    let was_mounted = store
        .list()?
        .iter()
        .any(|s| s.name == name && s.mounted.is_some());
    let mount = store.mount(&name)?;
    let diffs = archive::compare::compare_trees(&mount.join(&unit), &out.join(&unit));
    if !was_mounted {
        store.umount(&name)?;
    }
    let diffs = diffs.context("comparing the unpacked tree with the snapshot")?;
    work.close()?;
    if diffs.is_empty() {
        println!("drill: {unit} of {set} is equal to the snapshot");
        Ok(ExitCode::Ok)
    } else {
        println!(
            "drill: {unit} of {set} differs from the snapshot in {} places:",
            diffs.len()
        );
        for d in &diffs {
            println!("  {d}");
        }
        Ok(ExitCode::Failed)
    }
}
