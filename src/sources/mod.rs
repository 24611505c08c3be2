//! Sources: the kinds of data strata pulls in, and the units each one has.
//!
//! Owns: enumerating units from the config, and for each unit the argument
//! vector of the child process (`strata <source> backup ...`) that backs it
//! up. Each source's backup and restore live in its own file; the runner only
//! knows [`Unit`]s.
//!
//! A source's backup reports what it did as a [`UnitReport`], which the
//! runner records in the unit's state.

pub mod dump;
pub mod rbd;
pub mod rgw;
pub mod rsync;

use crate::config::{Config, UnitPath};
use serde::{Deserialize, Serialize};

/// The kinds of data strata backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Rsync,
    Github,
    Rbd,
    Rgw,
    Coda,
    Dump,
}

impl SourceKind {
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Rsync,
        SourceKind::Github,
        SourceKind::Rbd,
        SourceKind::Rgw,
        SourceKind::Coda,
        SourceKind::Dump,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Rsync => "rsync",
            SourceKind::Github => "github",
            SourceKind::Rbd => "rbd",
            SourceKind::Rgw => "rgw",
            SourceKind::Coda => "coda",
            SourceKind::Dump => "dump",
        }
    }

    /// `<source>-workers`: how many of this source's units run at once.
    #[must_use]
    pub fn workers(self, config: &Config) -> u32 {
        let s = &config.settings;
        match self {
            SourceKind::Rsync => s.rsync.workers,
            SourceKind::Github => s.github.workers,
            SourceKind::Rbd => s.rbd.workers,
            SourceKind::Rgw => s.rgw.workers,
            SourceKind::Coda => s.coda.workers,
            SourceKind::Dump => s.dump.workers,
        }
    }
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

/// One independently backed-up thing.
#[derive(Debug, Clone)]
pub struct Unit {
    pub kind: SourceKind,
    pub path: UnitPath,
    /// Arguments after `strata` for the child that backs this unit up,
    /// without the scrub flag.
    pub backup_args: Vec<String>,
    /// The chance that a run scrubs this unit.
    pub scrub_probability: f64,
}

impl Unit {
    /// The child's full argument vector for this check mode.
    #[must_use]
    pub fn child_args(&self, check: Check) -> Vec<String> {
        let mut args = self.backup_args.clone();
        if check == Check::Scrub {
            // why: every source's `backup` takes `-c` right after the verb, as Deltaic's did
            args.insert(2, "-c".to_owned());
        }
        args
    }
}

/// Every unit the config defines, in config order, grouped by source.
#[must_use]
pub fn units(config: &Config) -> Vec<Unit> {
    let s = &config.settings;
    let mut out = Vec::new();
    let unit = |kind: SourceKind, path: &UnitPath, args: &[&str], p: f64| Unit {
        kind,
        path: path.clone(),
        backup_args: args.iter().map(|a| (*a).to_owned()).collect(),
        scrub_probability: p,
    };
    for h in &config.rsync {
        out.push(unit(
            SourceKind::Rsync,
            &h.unit,
            &["rsync", "backup", &h.host],
            s.rsync.scrub_probability,
        ));
    }
    for o in &config.github {
        out.push(unit(
            SourceKind::Github,
            &o.unit,
            &["github", "backup", &o.org],
            s.github.scrub_probability,
        ));
    }
    for p in &config.rbd {
        for i in &p.images {
            out.push(unit(
                SourceKind::Rbd,
                &i.unit,
                &["rbd", "backup", &p.pool, &i.friendly],
                s.rbd.scrub_probability,
            ));
        }
        for i in &p.snapshots {
            let mut u = unit(
                SourceKind::Rbd,
                &i.unit,
                &["rbd", "backup", &p.pool, &i.friendly],
                s.rbd.scrub_probability,
            );
            u.backup_args.insert(2, "-s".to_owned());
            out.push(u);
        }
    }
    for b in &config.rgw {
        out.push(unit(
            SourceKind::Rgw,
            &b.unit,
            &["rgw", "backup", &b.bucket],
            s.rgw.scrub_probability,
        ));
    }
    for v in &config.coda {
        // why: for coda, `-c` does not exist; a "scrub" is a full dump (`-i` is incremental), see coda backup
        out.push(unit(
            SourceKind::Coda,
            &v.unit,
            &["coda", "backup", &v.server, &v.volume],
            0.0,
        ));
    }
    for d in &config.dump {
        out.push(unit(
            SourceKind::Dump,
            &d.unit,
            &["dump", "backup", &d.name],
            d.scrub.unwrap_or(s.dump.scrub_probability),
        ));
    }
    out
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

/// Environment variable naming the file where a child writes its [`UnitReport`].
pub const REPORT_ENV: &str = "STRATA_UNIT_REPORT";
