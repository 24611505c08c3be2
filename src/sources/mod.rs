//! Sources: the kinds of data strata pulls in.
//!
//! A source is one implementation of [`Source`] in its own folder under
//! `src/sources/`, registered by one line in [`all`]; its config (settings
//! keys and unit entries) is one file under `src/config/`. Nothing else in
//! strata names a source: the runner, `status`, `archive` and the command
//! line all go through the registry.
//!
//! # The contract of a source
//!
//! - **Units.** [`Source::units`] lists what a run backs up. A source whose
//!   units are in the config returns them without I/O; a source may instead
//!   discover them when the run starts (github lists an organisation's
//!   repositories), and so fail: each failure names the unit prefix it could
//!   not list (`github/<org>`), and the runner reports it like a failed unit
//!   without stopping the other sources. [`Source::stored_units`] lists the
//!   units present under a backup root or a mounted snapshot, with no I/O
//!   but the filesystem's (archive and status use it).
//! - **Backup.** `strata <name> backup [CHECK-FLAGS] ARGS`, where `ARGS` are
//!   a [`Unit`]'s `args` and the check flags are [`Source::check_flags`],
//!   backs up one unit. It runs through [`backup_unit`], which holds the
//!   unit's lock for the whole backup (one backup of a unit at a time,
//!   whoever started it), and reports to the runner or records the unit's
//!   state when run by hand. It writes only under `<root>/<unit>`, file
//!   contents through `backup_root` (unchanged blocks are never rewritten),
//!   and orders every multi-step change so that a crash at any point leaves
//!   the previous copy usable and is finished by the next backup. A failure
//!   keeps the previous copy.
//! - **Restore.** `strata <name> restore ...` puts a stored unit (from the
//!   root or a mounted snapshot) back where it came from. Every source has
//!   one.
//! - **Other verbs** are the source's own (`rbd drop`, `github ls`).
//!
//! # Tests every source has
//!
//! A round trip (source -> backup -> snapshot -> restore, compared byte for
//! byte and attribute for attribute), a crash at each step of its backup
//! (the next run finishes it), a scrub that repairs a difference a normal
//! run leaves, and bad input (a hostile name, a failing command) that fails
//! the unit and keeps the previous copy.

pub mod coda;
pub mod dump;
pub mod github;
pub mod rbd;
pub mod rgw;
pub mod rsync;

use crate::backup_root::{BackupRoot, LockError, PidLock, state};
use crate::config::{Config, ConfigError, UnitPath};
use crate::error::{ExitCode, UsageError};
use crate::jobs::{self, JobReport};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::path::{Path, PathBuf};

/// Every source strata has, in the order of `strata --help` and of a run's
/// pools.
#[must_use]
pub fn all() -> &'static [&'static dyn Source] {
    REGISTRY
}

static REGISTRY: &[&dyn Source] = &[
    &dump::DUMP,
    &rsync::RSYNC,
    &github::GITHUB,
    &rbd::RBD,
    &rgw::RGW,
    &coda::CODA,
];

/// The source named `name`.
#[must_use]
pub fn find(name: &str) -> Option<&'static dyn Source> {
    all().iter().copied().find(|s| s.name() == name)
}

/// A kind of data strata backs up; see the module documentation for the
/// contract every implementation keeps.
pub trait Source: Sync {
    /// The first component of its unit paths, its `<name>-*` settings and
    /// its command: `strata <name> ...`.
    fn name(&self) -> &'static str;

    /// One line for `strata --help`.
    fn about(&self) -> &'static str;

    /// How many of its units a run backs up at once (`<name>-workers`).
    fn workers(&self, config: &Config) -> u32;

    /// The units a run backs up, in config order. May do I/O and fail per
    /// unit prefix (see the module documentation).
    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>>;

    /// The units stored under `root` (a backup root or a mounted snapshot).
    /// The default: the configured units whose directories exist there.
    fn stored_units(&self, config: &Config, root: &Path) -> Vec<UnitPath> {
        self.units(config)
            .into_iter()
            .filter_map(Result::ok)
            .map(|u| u.path)
            .filter(|p| root.join(p.as_str()).symlink_metadata().is_ok())
            .collect()
    }

    /// The units the config names, with no I/O (`config check`). A source
    /// that discovers its units names the prefixes it discovers them under
    /// (`github/<org>`). The default: [`Source::units`], which must then do
    /// no I/O.
    fn configured_units(&self, config: &Config) -> Vec<UnitPath> {
        self.units(config)
            .into_iter()
            .filter_map(Result::ok)
            .map(|u| u.path)
            .collect()
    }

    /// The units `status` shows. The default: the configured ones. A
    /// source that discovers its units lists those it has stored instead,
    /// asking nothing of the network.
    fn status_units(&self, config: &Config, _root: &Path) -> Vec<UnitPath> {
        self.configured_units(config)
    }

    /// A word for `status` about one of [`Source::status_units`] that its
    /// state alone does not tell (github: a repository gone upstream). The
    /// default: none. No network I/O.
    fn status_note(&self, _config: &Config, _root: &Path, _unit: &UnitPath) -> Option<String> {
        None
    }

    /// The flags of `strata <name> backup` that select `check`. The default
    /// (Deltaic's): `-c` scrubs.
    fn check_flags(&self, check: Check) -> &'static [&'static str] {
        match check {
            Check::Normal => &[],
            Check::Scrub => &["-c"],
        }
    }

    /// `strata <name>`: its verbs (`backup`, `restore`, its own), as clap
    /// builds them; `about` is set by the caller.
    fn command(&self) -> clap::Command;

    /// Run `strata <name> <verb> ...`, parsed by [`Source::command`].
    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError>;
}

/// How thoroughly a backup checks what it already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Trust what is stored; fetch what changed.
    Normal,
    /// Compare everything against the source and repair differences.
    Scrub,
}

/// A further flag of a unit's backup that a run draws at random, as the
/// scrub: rgw's `-A` (refresh every ACL) with `rgw-scrub-acl-probability`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub probability: f64,
    pub flag: &'static str,
}

/// One independently backed-up thing.
#[derive(Clone)]
pub struct Unit {
    pub source: &'static dyn Source,
    pub path: UnitPath,
    /// What names this unit to `strata <source> backup`, after the verb and
    /// the check flags (`["octopus.example.org"]`, `["-s", "pool", "name"]`).
    pub args: Vec<String>,
    /// The chance that a run scrubs this unit.
    pub scrub_probability: f64,
    /// Further flags a run draws for this unit.
    pub draws: Vec<Draw>,
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit")
            .field("source", &self.source.name())
            .field("path", &self.path)
            .field("args", &self.args)
            .field("scrub_probability", &self.scrub_probability)
            .field("draws", &self.draws)
            .finish()
    }
}

impl Unit {
    /// A unit of `source` at `path`, named to its backup by `args`.
    #[must_use]
    pub fn new(
        source: &'static dyn Source,
        path: UnitPath,
        args: &[&str],
        scrub_probability: f64,
    ) -> Unit {
        Unit {
            source,
            path,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            scrub_probability,
            draws: Vec::new(),
        }
    }

    /// The arguments after `strata` of this unit's backup for `plan`.
    #[must_use]
    pub fn child_args(&self, plan: &UnitPlan) -> Vec<String> {
        let mut v = vec![self.source.name().to_owned(), "backup".to_owned()];
        v.extend(
            self.source
                .check_flags(plan.check)
                .iter()
                .map(|f| (*f).to_owned()),
        );
        v.extend(plan.flags.iter().map(|f| (*f).to_owned()));
        v.extend(self.args.iter().cloned());
        v
    }
}

/// What a run decided for one unit: its check and the flags it drew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPlan {
    pub check: Check,
    pub flags: Vec<&'static str>,
}

/// A unit prefix whose units could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list the units of {prefix}: {cause}")]
pub struct UnitsError {
    /// What the failure is reported as, like a unit: `github/<org>`.
    pub prefix: String,
    #[source]
    pub cause: SourceError,
}

/// Every unit of every source (listing failures included), in registry
/// order. `wanted(source name)` says whether a source's units are needed at
/// all (so that `run --only 'rsync/*'` asks no API).
pub fn units(config: &Config, wanted: impl Fn(&str) -> bool) -> Vec<Result<Unit, UnitsError>> {
    all()
        .iter()
        .filter(|s| wanted(s.name()))
        .flat_map(|s| s.units(config))
        .collect()
}

/// Every unit stored under `root`, in registry order.
#[must_use]
pub fn stored_units(config: &Config, root: &Path) -> Vec<UnitPath> {
    all()
        .iter()
        .flat_map(|s| s.stored_units(config, root))
        .collect()
}

/// What one unit's backup did, written by the child for the runner.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UnitReport {
    /// Bytes the unit occupies in the backup root after the backup.
    pub bytes: u64,
    /// Whether anything changed.
    pub changed: bool,
    /// Whether this backup was a scrub.
    pub scrubbed: bool,
    /// Differences a scrub found and repaired.
    pub repaired: u64,
    /// One line for the run's output.
    pub summary: String,
}

impl JobReport for UnitReport {
    fn summary(&self) -> String {
        self.summary.clone()
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Why a source's command failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The command line names nothing this source has, or says nothing it
    /// can do (exit 2).
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another backup of the unit holds its lock.
    #[error(transparent)]
    Busy(#[from] LockError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Report(#[from] jobs::child::ChildError),
    /// A unit's backup failed (its previous copy is kept).
    #[error("backing up {unit}: {cause}")]
    Backup {
        unit: UnitPath,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A restore failed.
    #[error("restoring {what}: {cause}")]
    Restore {
        what: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other verb of the source failed; the source's own typed error.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl SourceError {
    /// Wrap a source's own error.
    pub fn failed(e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
        SourceError::Failed(Box::new(e))
    }

    /// Whether this is a usage or config error (exit 2).
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(self, SourceError::Usage(_) | SourceError::Config(_))
    }
}

/// What a source's command gets from the command line and the config.
pub struct Cx<'a> {
    /// `-q`: print only problems.
    pub quiet: bool,
    /// `--json`.
    pub json: bool,
    /// `--allow-root`.
    pub allow_root: bool,
    /// `$HOME`.
    pub home: PathBuf,
    /// The config file, if one was given or found.
    pub config_path: Option<PathBuf>,
    load: &'a dyn Fn() -> Result<Config, ConfigError>,
    config: OnceCell<Config>,
}

impl<'a> Cx<'a> {
    /// `load` is called the first time a verb asks for the config (some
    /// verbs need none: `rbd apply-diff`).
    pub fn new(
        quiet: bool,
        json: bool,
        allow_root: bool,
        home: PathBuf,
        config_path: Option<PathBuf>,
        load: &'a dyn Fn() -> Result<Config, ConfigError>,
    ) -> Cx<'a> {
        Cx {
            quiet,
            json,
            allow_root,
            home,
            config_path,
            load,
            config: OnceCell::new(),
        }
    }

    /// The config, read and validated on first use.
    pub fn config(&self) -> Result<&Config, SourceError> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let c = (self.load)()?;
        Ok(self.config.get_or_init(|| c))
    }

    /// The backup root, which must exist (exit 2 otherwise).
    pub fn root(&self) -> Result<&Path, SourceError> {
        Ok(self.config()?.require_root()?)
    }

    /// Refuse to write into the backup root as root unless allowed.
    pub fn refuse_root(&self, what: &str) -> Result<(), SourceError> {
        Ok(crate::backup_root::refuse_root(self.allow_root, what)?)
    }
}

/// Back up `unit` the one way every source's `backup` verb does (the
/// contract in the module documentation): refuse root, hold the unit's
/// lock for the whole backup, time it, and report to the runner, or record
/// the unit's state when run by hand (success or failure).
pub fn backup_unit(
    cx: &Cx,
    unit: &UnitPath,
    backup: impl FnOnce(&Path) -> Result<UnitReport, Box<dyn std::error::Error + Send + Sync>>,
) -> Result<ExitCode, SourceError> {
    cx.refuse_root(&format!("{} backup", unit.source()))?;
    let root = BackupRoot::new(cx.root()?);
    let lock = PidLock::unit(&root.state_dir(), unit)?;
    let started = chrono::Utc::now().timestamp();
    let t = std::time::Instant::now();
    let result = backup(root.path());
    settle_for_snapshot(cx, &root, unit, started);
    let secs = t.elapsed().as_secs_f64();
    let by_hand = !jobs::child::is_job();
    let outcome = match result {
        Ok(r) => {
            if by_hand {
                let attempt = state::Attempt::Succeeded {
                    scrubbed: r.scrubbed,
                    bytes: r.bytes,
                };
                note_recorded(state::record(&root, unit, started, secs, &attempt, None)?);
            } else {
                jobs::child::report(&r)?;
            }
            Ok(ExitCode::Ok)
        }
        Err(cause) => {
            let e = SourceError::Backup {
                unit: unit.clone(),
                cause,
            };
            if by_hand {
                let why = crate::error::chain(&e);
                let attempt = state::Attempt::Failed { why: &why };
                if let Ok(r) = state::record(&root, unit, started, secs, &attempt, None) {
                    note_recorded(r);
                }
            }
            Err(e)
        }
    };
    let _ = lock.close();
    outcome
}

/// On a CephFS root, hand back the caps of what the backup wrote
/// ([`crate::snapshot::cephfs::settle`]), whether it succeeded or not, so
/// that the snapshot and other appliances can read it at once.
fn settle_for_snapshot(cx: &Cx, root: &BackupRoot, unit: &UnitPath, started: i64) {
    let Ok(config) = cx.config() else { return };
    if config.settings.snapshot_store != crate::config::StoreKind::Cephfs {
        return;
    }
    let dir = root.path().join(unit.as_str());
    // why: a second of slack for ctimes stamped just before `started` was read
    match crate::snapshot::cephfs::settle(&dir, started - 1) {
        Ok(s) if s.skipped > 0 => eprintln!(
            "strata: {unit}: {} changed entries settled for the snapshot, {} could not be opened",
            s.synced, s.skipped
        ),
        Ok(_) => {}
        Err(e) => eprintln!("strata: {unit}: cannot settle what the backup wrote: {e}"),
    }
}

fn note_recorded(r: state::Recorded) {
    if let state::Recorded::CorruptKeptAt(p) = r {
        eprintln!(
            "strata: warning: the unit's state file was corrupt; it was kept at {} and a new one written",
            p.display()
        );
    }
}
