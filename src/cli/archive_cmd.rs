//! `strata archive [-p PROFILE] ...`: offsite archive sets (DESIGN §6).
//! Thin: flags -> calls into `crate::archive`, and printing.

use super::{Ctx, output, refuse_root};
use crate::archive::{
    self, ArchiveEnv, ArchiveError, Archiver, archivers,
    drill::{self, DrillUnit},
    migrate,
    rate::RateLimit,
    retrieve,
    sets::{self, RunTarget, SetMark},
    unpack,
};
use crate::backup_root::{BackupRoot, LockError, PidLock};
use crate::config::UnitPath;
use crate::error::{ExitCode, UsageError};
use crate::snapshot::{self, SnapshotName};
use anyhow::Context;
use clap::{Args, Subcommand};
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
        /// With -r, for a cron job: exit 0 with nothing to say (under -q)
        /// when there is nothing to continue: no set, the newest complete,
        /// another `archive run` of the profile running, or its uploads
        /// paused since before this run
        #[arg(long, requires = "resume")]
        if_incomplete: bool,
        /// Which appliance of `appliances:` this is, when several share the
        /// root and archive the same set together (default: the host name)
        #[arg(long, value_name = "NAME")]
        appliance: Option<String>,
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
        /// The complete sets of the profile (comma-separated), as `archive
        /// run` listed them, where a diff's base is looked for; listed here
        /// when not given
        #[arg(long, hide = true, value_delimiter = ',', value_name = "SET,...")]
        complete_sets: Option<Vec<String>>,
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
    /// Copy archive sets (all, or the SETs named) from this profile to an
    /// s3 profile: rate limited, resumable, each archive checked on arrival,
    /// this profile left untouched
    Migrate {
        /// The s3 profile to copy to
        #[arg(long, value_name = "PROFILE")]
        to: String,
        /// Print what would be copied, how long it takes and what it costs;
        /// request nothing
        #[arg(long)]
        plan: bool,
        /// Maximum retrieval rate in GiB/hour, shared by concurrent retrieves of the profile
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
        #[arg(value_name = "SET")]
        sets: Vec<String>,
    },
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
    Ok(archivers::open(&ctx.config.settings.archive, p)?)
}

/// `diffs: N > 0` needs an archiver that stores chains: refuse the profile
/// before anything is packed.
fn refuse_diffs(ctx: &Ctx, profile: &str, archiver: &dyn Archiver) -> anyhow::Result<()> {
    let diffs = ctx.config.settings.archivers[profile].diffs;
    if diffs > 0 && !archiver.supports_chains() {
        return Err(UsageError(format!(
            "profile {profile} has diffs: {diffs}, but the {} archiver cannot store incremental chains; set diffs: 0 on it",
            archiver.kind()
        ))
        .into());
    }
    Ok(())
}

/// What a run on an archiver that stores nothing would have uploaded.
fn dry_report(profile: &str, kind: &str, s: &archive::run::RunSummary) {
    println!(
        "dry run: the {kind} archiver of profile {profile} stored nothing; a real run would upload:"
    );
    let mut reports = s.reports.clone();
    reports.sort_by(|a, b| a.0.cmp(&b.0));
    for (unit, r) in &reports {
        let chain = r.chain_words();
        println!(
            "  {unit}: {} bytes ({}), {} {}, sha256 {}, packed in {:.2}s{}{chain}",
            r.size,
            output::size(r.size),
            r.compression,
            r.encryption,
            r.sha256,
            r.pack_secs,
            if chain.is_empty() { "" } else { ", " }
        );
    }
    let bytes: u64 = reports.iter().map(|(_, r)| r.size).sum();
    let secs: f64 = reports.iter().map(|(_, r)| r.pack_secs).sum();
    println!(
        "total: {} archives, {bytes} bytes ({}), packing took {secs:.2}s",
        reports.len(),
        output::size(bytes)
    );
    for (unit, why) in &s.failed {
        println!("  {unit}: FAILED: {why}");
    }
}

fn env(ctx: &Ctx) -> anyhow::Result<ArchiveEnv> {
    ArchiveEnv::from_config(&ctx.config).map_err(|e| UsageError(e.to_string()).into())
}

/// The appliance this `archive run` is, when `appliances:` is configured:
/// `--appliance`, else the host name, which the config must name.
fn shared_appliance(ctx: &Ctx, given: Option<&str>) -> anyhow::Result<Option<String>> {
    let appliances = &ctx.config.appliances;
    if appliances.is_empty() {
        if given.is_some() {
            return Err(UsageError(format!(
                "--appliance needs an `appliances:` section in {}",
                ctx.config.file.display()
            ))
            .into());
        }
        return Ok(None);
    }
    let name = match given {
        Some(n) => n.to_owned(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if appliances.get(&name).is_none() {
        return Err(UsageError(format!(
            "{}: appliances: this is appliance `{name}`, which the config does not name (it names {}); give --appliance NAME",
            ctx.config.file.display(),
            appliances.names().join(", ")
        ))
        .into());
    }
    Ok(Some(name))
}

fn set_name(s: &str) -> anyhow::Result<SnapshotName> {
    SnapshotName::parse(s).map_err(|e| UsageError(e.to_string()).into())
}

pub fn run(ctx: &Ctx, args: &ArchiveArgs) -> anyhow::Result<ExitCode> {
    let profile = &args.profile;
    let cli = ctx.cli;
    match &args.cmd {
        ArchiveCmd::Run {
            resume,
            if_incomplete,
            snapshot,
            appliance,
        } => {
            // why: a cron job that continues sets hourly must not mail when there is nothing to do
            let nothing_to_do = |what: &str| {
                if !cli.g.quiet {
                    println!("profile {profile}: nothing to continue: {what}");
                }
                Ok(ExitCode::Ok)
            };
            refuse_root(cli, "archive run")?;
            ctx.root()?;
            let env = env(ctx)?;
            let archiver = open_archiver(ctx, profile)?;
            refuse_diffs(ctx, profile, archiver.as_ref())?;
            let store = snapshot::open(&ctx.config)?;
            let target = match (snapshot, resume) {
                (Some(_), true) => {
                    return Err(UsageError("give a SNAPSHOT or -r, not both".into()).into());
                }
                (Some(s), false) => RunTarget::Named(s.clone()),
                (None, true) => RunTarget::Resume,
                (None, false) => RunTarget::Newest,
            };
            let sets = match target {
                RunTarget::Resume => archiver.list_sets()?,
                _ => std::collections::BTreeMap::new(),
            };
            let name = match sets::choose_run_set(&target, &sets, &store.list()?) {
                Ok(n) => n,
                Err(e @ (ArchiveError::NothingToResume | ArchiveError::AlreadyComplete(_)))
                    if *if_incomplete =>
                {
                    return nothing_to_do(&e.to_string());
                }
                Err(e @ (ArchiveError::NothingToResume | ArchiveError::BadSetName { .. })) => {
                    return Err(UsageError(e.to_string()).into());
                }
                Err(e) => return Err(e.into()),
            };
            if !cli.g.quiet {
                println!("archiving snapshot {name} to profile {profile}");
            }
            let workers = ctx.config.settings.archivers[profile].workers as usize;
            let opts = archive::run::RunOptions {
                exe: std::env::current_exe().context("cannot find the strata binary")?,
                config_path: ctx.config_path.clone(),
                profile: profile.clone(),
                allow_root: cli.g.allow_root,
                quiet: cli.g.quiet,
                appliance: shared_appliance(ctx, appliance.as_deref())?,
            };
            let s = match archive::run::run(
                &ctx.config,
                &env,
                archiver.as_ref(),
                store.as_ref(),
                &name,
                workers,
                &opts,
            ) {
                Err(ArchiveError::Locked {
                    source: held @ LockError::Held { .. },
                    ..
                }) if *if_incomplete => return nothing_to_do(&held.to_string()),
                r => r?,
            };
            if let Some(sig) = s.interrupted {
                return Err(anyhow::anyhow!(
                    "archive run interrupted by signal {sig}; the set stays incomplete: resume with `strata archive run -r`"
                ));
            }
            if !archiver.stores() {
                dry_report(profile, archiver.kind(), &s);
            }
            if let (false, Some(by)) = (s.completed, &s.completed_by) {
                if !cli.g.quiet {
                    println!(
                        "set {name} complete (completed by appliance {by}): {} archived here",
                        s.archived.len()
                    );
                }
                Ok(ExitCode::Ok)
            } else if !s.completed
                && s.failed.is_empty()
                && s.paused.is_empty()
                && s.left_to_others > 0
            {
                // why: not a failure: the appliance that archives the last unit completes the set
                if !cli.g.quiet {
                    println!(
                        "set {name}: {} archived here; {} unit(s) are being archived by other appliances, and the last of them completes the set",
                        s.archived.len(),
                        s.left_to_others
                    );
                }
                Ok(ExitCode::Ok)
            } else if s.completed {
                if !cli.g.quiet && archiver.stores() {
                    println!(
                        "set {name} complete: {} archived now, {} already in",
                        s.archived.len(),
                        s.already
                    );
                }
                Ok(ExitCode::Ok)
            } else if s.failed.is_empty()
                && !s.paused.is_empty()
                && *if_incomplete
                && s.archived.is_empty()
            {
                // why: paused before this run began: said when the pause began
                nothing_to_do(&format!(
                    "set {name} waits: profile {profile} refuses uploads until {}",
                    s.paused_until.as_deref().unwrap_or("later")
                ))
            } else if s.failed.is_empty() && !s.paused.is_empty() {
                // why: not a failure: the store's daily cap; the set waits for `run -r`
                eprintln!(
                    "strata: set {name} paused: {} archived now, {} waiting; profile {profile} refuses uploads until {}: run `strata archive -p {profile} run -r` then",
                    s.archived.len(),
                    s.paused.len(),
                    s.paused_until.as_deref().unwrap_or("later")
                );
                Ok(ExitCode::Ok)
            } else {
                Err(
                    ArchiveError::UnitsFailed(s.failed.into_iter().map(|(u, _)| u).collect())
                        .into(),
                )
            }
        }
        ArchiveCmd::Unit {
            complete_sets,
            snapshot,
            mountpoint,
            unit,
        } => {
            refuse_root(cli, "archive unit")?;
            let env = env(ctx)?;
            let name = set_name(snapshot)?;
            let unit_path =
                UnitPath::parse(unit).map_err(|e| UsageError(format!("{unit:?}: {e}")))?;
            let archiver = open_archiver(ctx, profile)?;
            refuse_diffs(ctx, profile, archiver.as_ref())?;
            let root = BackupRoot::new(ctx.root()?);
            // why: one archiving of a unit per profile at a time, whoever started it (an `archive run` or a person)
            let lock = PidLock::archive_unit(&root.state_dir(), profile, &unit_path)?;
            let paused = |until: &str| -> anyhow::Result<ExitCode> {
                println!("{unit}: not archived now: uploads are refused until {until}");
                crate::jobs::child::report(&archive::run::Archived::paused(until))?;
                Ok(ExitCode::Ok)
            };
            if let Some(until) = archiver.upload_paused()? {
                return paused(&until);
            }
            let resumed = match archiver.resume_upload(name.as_str(), unit) {
                Err(ArchiveError::UploadPaused { until, .. }) => return paused(&until),
                r => r.with_context(|| format!("resuming the upload of {unit}"))?,
            };
            if let Some(meta) = resumed {
                println!("{unit}: finished the upload an earlier process left");
                println!(
                    "archived {unit}: {} {} {} sha256 {}",
                    output::size(meta.size),
                    meta.compression.name(),
                    meta.encryption.name(),
                    meta.sha256
                );
                crate::jobs::child::report(&archive::run::Archived::of(&meta))?;
                let _ = lock.close();
                return Ok(ExitCode::Ok);
            }
            let compression = archive::unit_compression(&ctx.config, profile, unit);
            let job = archive::unit::UnitJob {
                profile,
                set: name.as_str(),
                mount: mountpoint,
                unit,
                compression,
                diffs: ctx.config.settings.archivers[profile].diffs,
                complete_sets: complete_sets.clone(),
            };
            let done = match archive::unit::archive_unit(&env, archiver.as_ref(), &job) {
                Err(ArchiveError::UploadPaused { until, .. }) => return paused(&until),
                r => r.with_context(|| format!("archiving {unit}"))?,
            };
            for n in &done.notes {
                eprintln!("{n}");
            }
            let mut report = archive::run::Archived::of(&done.meta);
            report.pack_secs = done.pack_secs;
            report.level = done.link.as_ref().map(|l| l.level);
            report.base = done.link.as_ref().and_then(|l| l.base.clone());
            let chain = match (&done.full_because, report.chain_words()) {
                (Some(why), words) => format!(", {words} ({why})"),
                (None, words) if words.is_empty() => String::new(),
                (None, words) => format!(", {words}"),
            };
            println!(
                "archived {unit}: {} {} {} sha256 {}, packed in {:.1}s{chain}",
                output::size(done.meta.size),
                done.meta.compression.name(),
                done.meta.encryption.name(),
                done.meta.sha256,
                done.pack_secs,
            );
            crate::jobs::child::report(&report)?;
            let _ = lock.close();
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
            if cli.g.json {
                let v: serde_json::Value = if *only_sets {
                    serde_json::to_value(chosen.collect::<std::collections::BTreeMap<_, _>>())?
                } else {
                    let mut m = serde_json::Map::new();
                    for (n, _) in chosen {
                        let links = archiver.chain_links(n)?;
                        let mut a = serde_json::Map::new();
                        for (u, meta) in archiver.list_set_archives(n)? {
                            let mut v = serde_json::to_value(meta.fields())?;
                            if let (Some(link), serde_json::Value::Object(o)) =
                                (links.get(&u), &mut v)
                            {
                                o.insert("level".into(), link.level.into());
                                o.insert(
                                    "base".into(),
                                    link.base
                                        .clone()
                                        .map_or(serde_json::Value::Null, Into::into),
                                );
                            }
                            a.insert(u, v);
                        }
                        m.insert(n.clone(), serde_json::Value::Object(a));
                    }
                    serde_json::Value::Object(m)
                };
                if *only_sets {
                    output::json("archive-sets", "sets", v)?;
                } else {
                    output::json("archive-ls", "sets", v)?;
                }
                return Ok(ExitCode::Ok);
            }
            for (n, info) in chosen {
                if *only_sets {
                    println!(
                        "{n} {:5} {:>10}  {} {}",
                        info.count,
                        output::size(info.size),
                        if info.complete {
                            "  complete"
                        } else {
                            "incomplete"
                        },
                        if info.protected { "protected" } else { "" }
                    );
                } else {
                    let links = archiver.chain_links(n)?;
                    for (unit, size) in archiver.list_set_units(n)? {
                        let chain = match links.get(&unit) {
                            Some(l) => match &l.base {
                                Some(b) => format!("  diff {} onto {b}", l.level),
                                None => "  full".to_owned(),
                            },
                            None => String::new(),
                        };
                        println!("{n} {:>10} {unit}{chain}", output::size(size));
                    }
                }
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Prune { dry_run } => {
            refuse_root(cli, "archive prune")?;
            let archiver = open_archiver(ctx, profile)?;
            let rules = sets::KeepRules::of(&ctx.config.settings.archivers[profile]);
            let all = archiver.list_sets()?;
            let bases = archive::chain::set_bases(archiver.as_ref(), all.keys().cloned())?;
            let plan = sets::plan_prune(&all, rules, &bases);
            if cli.g.json {
                output::json(
                    "archive-prune",
                    "",
                    serde_json::json!({"dry_run": dry_run, "sets": plan.sets, "over_keep_bytes": plan.over_keep_bytes}),
                )?;
            }
            // why: newest first, so that a set is never left without the base its diffs apply onto
            for sp in plan.sets.iter().rev() {
                let name = &sp.name;
                let incomplete = if all[name].complete {
                    ""
                } else {
                    " incomplete"
                };
                let why = &sp.reason;
                match sp.mark {
                    SetMark::Keep => {
                        if cli.g.verbose && !cli.g.json {
                            println!("keeping{incomplete} archive set {name} ({why})");
                        }
                    }
                    SetMark::Protected => {
                        if (cli.g.verbose || *dry_run) && !cli.g.json {
                            println!("keeping protected{incomplete} archive set {name}");
                        }
                    }
                    SetMark::Remove => {
                        if !cli.g.json {
                            println!(
                                "{}{incomplete} archive set {name} ({why})",
                                if *dry_run { "would prune" } else { "pruning" }
                            );
                        }
                        if !dry_run {
                            archiver.delete_set(name)?;
                        }
                    }
                }
            }
            if let (Some(total), Some(max)) = (plan.over_keep_bytes, rules.max_bytes) {
                eprintln!(
                    "strata: warning: profile {profile} keeps {} in sets that must stay (the newest complete set, its chain, protected sets), above keep-bytes {}",
                    output::size(total),
                    output::size(max)
                );
            }
            Ok(ExitCode::Ok)
        }
        ArchiveCmd::Cost => {
            let archiver = open_archiver(ctx, profile)?;
            let lines = archiver.report_cost()?;
            let newest = archiver
                .list_sets()?
                .into_iter()
                .rev()
                .find(|(_, s)| s.complete)
                .map(|(n, _)| n);
            let restore = match &newest {
                Some(set) => Some((
                    set.clone(),
                    archive::chain::restore_size(archiver.as_ref(), set)?,
                )),
                None => None,
            };
            // why: a chain's archives may sit in several classes; the profile's average retrieval price per byte
            let (bytes, dollars) = lines
                .iter()
                .fold((0u64, 0.0f64), |(b, d), l| (b + l.bytes, d + l.retrieval));
            #[allow(clippy::cast_precision_loss)] // why: dollars
            let per_byte = if bytes == 0 {
                0.0
            } else {
                dollars / bytes as f64
            };
            if cli.g.json {
                let restore = restore.map(|(set, (archives, b))| {
                    #[allow(clippy::cast_precision_loss)] // why: dollars
                    let cost = per_byte * b as f64;
                    serde_json::json!({"set": set, "archives": archives, "bytes": b, "retrieval": cost})
                });
                output::json(
                    "archive-cost",
                    "",
                    serde_json::json!({"classes": lines, "restore_newest": restore}),
                )?;
            } else {
                for l in &lines {
                    if let Some(p) = &l.peak {
                        print_peak_pricing(l, p);
                        continue;
                    }
                    println!(
                        "{:<14} {:6} archives {:>10}  ${:.2}/month  ${:.2} to retrieve all",
                        l.class,
                        l.archives,
                        output::size(l.bytes),
                        l.monthly,
                        l.retrieval
                    );
                }
                if let Some((set, (archives, b))) = restore {
                    #[allow(clippy::cast_precision_loss)] // why: dollars
                    let cost = per_byte * b as f64;
                    println!(
                        "restoring set {set} retrieves {archives} archives, {} (chains included), about ${cost:.2}",
                        output::size(b)
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
            // why: from the flag itself, not through the per-second rate, so that -r 0.25 is exactly 256 MiB/hour
            let per_hour = bytes_per_sec.map_or(max_rate * f64::from(1u32 << 30), |b| b * 3600.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            // why: positive, far below 2^64 bytes
            let bytes_per_hour = per_hour.round() as u64;
            std::fs::create_dir_all(destdir).with_context(|| destdir.display().to_string())?;
            let mut failed = false;
            let wanted = units.clone();
            let rate = retrieve::Rate {
                stream: Some(&limit),
                bytes_per_hour,
            };
            retrieve::retrieve_chains(
                archiver.as_ref(),
                set.as_str(),
                &wanted,
                destdir,
                rate,
                &mut |unit, r| match r {
                    Ok(paths) => {
                        for path in paths {
                            println!("{}", path.display());
                        }
                    }
                    Err(e) => {
                        eprintln!("strata: {unit}: {e}");
                        failed = true;
                    }
                },
            )?;
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
                if !cli.g.quiet {
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
        ArchiveCmd::Migrate {
            to,
            plan,
            max_rate,
            bytes_per_sec,
            sets,
        } => {
            refuse_root(cli, "archive migrate")?;
            let per_hour = bytes_per_sec.map_or(max_rate * f64::from(1u32 << 30), |b| b * 3600.0);
            if per_hour.is_nan() || per_hour <= 0.0 {
                return Err(UsageError("the retrieval rate must be positive".into()).into());
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            // why: positive, far below 2^64 bytes
            let per_hour = per_hour.round() as u64;
            migrate_cmd(ctx, profile, to, *plan, per_hour, sets)
        }
    }
}

/// `archive migrate`: plan, print, and (unless `--plan`) copy.
fn migrate_cmd(
    ctx: &Ctx,
    from: &str,
    to: &str,
    plan_only: bool,
    bytes_per_hour: u64,
    only: &[String],
) -> anyhow::Result<ExitCode> {
    let env = env(ctx)?;
    let source = open_archiver(ctx, from)?;
    let Some(dest_profile) = ctx.config.settings.archivers.get(to) else {
        return Err(UsageError(format!(
            "--to {to}: no such profile under settings.archivers"
        ))
        .into());
    };
    let crate::config::ArchiverKind::S3(s3) = &dest_profile.archiver else {
        return Err(UsageError(format!("--to {to}: the profile's archiver is not s3")).into());
    };
    if to == from {
        return Err(UsageError("--to names the profile migrated from".into()).into());
    }
    let dest = archivers::s3::S3Archiver::new(s3)?;
    let mut source_sets = std::collections::BTreeMap::new();
    for (name, info) in source.list_sets()? {
        if only.is_empty() || only.contains(&name) {
            let archives = source.list_set_archives(&name)?;
            source_sets.insert(name, (info, archives));
        }
    }
    let mut dest_sets = std::collections::BTreeMap::new();
    for name in source_sets.keys() {
        dest_sets.insert(name.clone(), dest.list_set_archives(name)?);
    }
    let plan =
        migrate::plan(&source_sets, &dest_sets, only).map_err(|e| UsageError(e.to_string()))?;
    let peak = source.report_cost()?.into_iter().find_map(|l| l.peak);
    let price = s3.prices.get(&s3.storage_class).map_or_else(
        || archivers::s3::default_price(&s3.storage_class).0,
        |p| p.storage,
    );
    let est = migrate::estimate(&plan, bytes_per_hour, peak.as_ref(), price);
    if ctx.cli.g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"sets": plan, "estimate": est}))?
        );
    } else {
        print_migration_plan(
            from,
            to,
            &s3.storage_class,
            &plan,
            &est,
            bytes_per_hour,
            peak.as_ref(),
        );
    }
    if plan_only {
        return Ok(ExitCode::Ok);
    }
    #[allow(clippy::cast_precision_loss)] // why: a rate
    let limit = RateLimit::new(&env.spool, from, bytes_per_hour as f64 / 3600.0);
    let m = migrate::Migration {
        source: source.as_ref(),
        dest: &dest,
        work: env.spool.join(format!("migrate-{from}-{to}")),
        bytes_per_hour,
        stream: Some(&limit),
    };
    let quiet = ctx.cli.g.quiet;
    let out = migrate::migrate(&m, &plan, &mut |line| {
        if !quiet {
            println!("{line}");
        }
    })?;
    for (set, unit, why) in &out.failed {
        eprintln!("strata: {set} {unit}: {why}");
    }
    if !quiet {
        println!(
            "migrated: {} archives copied, {} sets complete at {to}, {} failed",
            out.copied.len(),
            out.completed_sets.len(),
            out.failed.len()
        );
    }
    Ok(if out.failed.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

fn print_migration_plan(
    from: &str,
    to: &str,
    class: &str,
    plan: &[migrate::PlannedSet],
    est: &migrate::Estimate,
    bytes_per_hour: u64,
    peak: Option<&archivers::PeakPricing>,
) {
    println!("migrate profile {from} -> s3 profile {to} (storage class {class}):");
    for s in plan {
        let (copy, bytes, there) = s
            .archives
            .iter()
            .fold((0, 0, 0), |(c, b, t), a| match a.step {
                migrate::Step::Copy => (c + 1, b + a.size, t),
                migrate::Step::Present => (c, b, t + 1),
                migrate::Step::Conflict(_) => (c, b, t),
            });
        println!(
            "  {} {:>10} {:5} archives: {copy} to copy ({}), {there} already there",
            s.set,
            if s.complete { "complete" } else { "incomplete" },
            s.archives.len(),
            output::size(bytes)
        );
        for a in &s.archives {
            if let migrate::Step::Conflict(why) = &a.step {
                println!("    conflict {}: {why}; it will not be copied", a.unit);
            }
        }
    }
    println!(
        "total: {} archives to copy, {}; {} already there; {} conflicts",
        est.to_copy,
        output::size(est.bytes),
        est.present,
        est.conflicts
    );
    println!(
        "retrieval: {:.1} hours of budget at {}/hour, plus the hours each retrieval job takes",
        est.hours,
        output::size(bytes_per_hour)
    );
    match (est.retrieval, peak) {
        (Some(r), Some(p)) => println!(
            "cost: retrieval about ${r:.2} (peak-rate pricing: ${:.2} per GiB/hour of the month's peak, which is {}/hour so far; {} free today)",
            p.per_gib_hour,
            output::size(p.month_peak),
            output::size(p.free_today)
        ),
        _ => println!("cost: retrieval is not priced by the source"),
    }
    println!("cost: storage at {to}: ${:.2}/month", est.storage_monthly);
}

/// Deltaic's report of a Glacier vault's costs.
fn print_peak_pricing(l: &archivers::CostLine, p: &archivers::PeakPricing) {
    println!(
        "The {} currently in storage ({} archives) costs ${:.2}/month.\n\n\
         You can retrieve around {} for free today (in UTC), provided that your\n\
         retrievals occur at a constant rate during all hours in which you are\n\
         retrieving.  If you exceed this amount, your bill will be determined by your\n\
         maximum hourly retrieval rate for the month.  Each additional GB/hour of\n\
         retrieval bandwidth costs ${:.2}, but is then available for the whole month\n\
         at no additional charge.  The maximum retrieval rate this month has been\n\
         {}/hour.",
        output::size(l.bytes),
        l.archives,
        l.monthly,
        output::size(p.free_today),
        p.per_gib_hour,
        output::size(p.month_peak)
    );
}

fn drill(ctx: &Ctx, profile: &str, unit: Option<&str>) -> anyhow::Result<ExitCode> {
    let env = env(ctx)?;
    let archiver = open_archiver(ctx, profile)?;
    let store = snapshot::open(&ctx.config)?;
    let which = unit.map_or(DrillUnit::Random, |u| DrillUnit::Named(u.to_owned()));
    let r = drill::drill(
        &env,
        archiver.as_ref(),
        store.as_ref(),
        profile,
        &which,
        &mut rand::thread_rng(),
        |set, unit, size| {
            println!(
                "drill: {profile} set {set} unit {unit} ({} with its chain)",
                output::size(size)
            );
        },
    )
    .context("drill")?;
    if r.differences.is_empty() {
        println!(
            "drill: {} of {} is equal to the snapshot ({} archive{} unpacked)",
            r.unit,
            r.set,
            r.archives,
            if r.archives == 1 { "" } else { "s" }
        );
        Ok(ExitCode::Ok)
    } else {
        println!(
            "drill: {} of {} differs from the snapshot in {} places:",
            r.unit,
            r.set,
            r.differences.len()
        );
        for d in &r.differences {
            println!("  {d}");
        }
        Ok(ExitCode::Failed)
    }
}
