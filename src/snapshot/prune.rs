//! `prune`'s effectful step: carry out a retention plan on a store, then
//! the free-space rule, then old logs, and say what was done as a
//! [`PruneReport`] (the command line prints it).
//!
//! The decisions are [`crate::retention`]'s pure plans; this module only
//! applies them, in this order: the policy's removals (with, for a store
//! that holds a limited number of snapshots, CephFS, the oldest kept ones
//! beyond `limit - 1`, monthly first, so that the next run's snapshot still
//! fits: [`retention::snap_limit::cap`]), then (when the pool
//! or filesystem is below `gc-min-free-percent` or `gc-min-free-bytes`) the
//! oldest kept snapshots down to `gc-min-keep`, then per-unit logs beyond
//! `gc-log-distinct-days`. A snapshot that cannot be removed is reported
//! and the rest goes on.
//!
//! [`make_room`] is the free-space rule alone, which `run` applies before
//! any unit writes: while space is short, it removes what the policy
//! removes anyway, then the oldest kept snapshots, down to `gc-min-keep`.

use super::{Removed, SnapshotError, SnapshotName, SnapshotStore};
use crate::config::Retention;
use crate::retention::{self, Mark, ProtectReason};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Whether anything is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMode {
    Apply,
    DryRun,
}

/// One thing prune did or would do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum PruneEvent {
    /// The policy removes it (`done` false in a dry run).
    Remove {
        name: SnapshotName,
        why: String,
        done: bool,
    },
    /// It was already gone when prune came to remove it.
    AlreadyGone {
        name: SnapshotName,
    },
    RemoveFailed {
        name: SnapshotName,
        error: String,
    },
    /// The policy would remove it, but it is protected.
    Protected {
        name: SnapshotName,
        why: String,
    },
    /// The policy keeps it, but the store's snapshot limit does not (`done`
    /// false in a dry run).
    OverLimit {
        name: SnapshotName,
        why: String,
        done: bool,
    },
    /// The policy keeps it.
    Keep {
        name: SnapshotName,
        why: String,
    },
    /// The free-space rule removes it (`done` false in a dry run).
    FreeSpace {
        name: SnapshotName,
        data: f64,
        meta: f64,
        /// `gc-min-free-percent`, 0 when unset.
        min_free: f64,
        /// Free bytes (of the pool's data, or of the filesystem).
        free_bytes: u64,
        min_free_bytes: Option<u64>,
        done: bool,
    },
    /// Space is short and `gc-min-keep` forbids removing more.
    FreeSpaceExhausted {
        data: f64,
        meta: f64,
        min_free: f64,
        free_bytes: u64,
        min_free_bytes: Option<u64>,
    },
    /// An old log (`done` false in a dry run).
    Log {
        path: PathBuf,
        done: bool,
    },
}

/// What a prune did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub events: Vec<PruneEvent>,
}

/// Why the free-space rule fires, in words: `free space 4.2% (1.2 GiB
/// free) is below gc-min-free-percent 10%`.
#[must_use]
pub fn shortage(
    data: f64,
    meta: f64,
    min_free: f64,
    free_bytes: u64,
    min_free_bytes: Option<u64>,
) -> String {
    let mut why = Vec::new();
    if min_free > 0.0 && (data < min_free || meta < min_free) {
        why.push(format!("gc-min-free-percent {min_free}%"));
    }
    if let Some(b) = min_free_bytes
        && free_bytes < b
    {
        why.push(format!("gc-min-free-bytes {b}"));
    }
    format!(
        "free space {data:.1}% (metadata {meta:.1}%, {free_bytes} bytes) is below {}",
        why.join(" and ")
    )
}

impl PruneReport {
    /// Whether something that should have been removed was not.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.events.iter().any(|e| {
            matches!(
                e,
                PruneEvent::RemoveFailed { .. } | PruneEvent::FreeSpaceExhausted { .. }
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("removing old log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Prune `store` by `retention` as of `today`; `protected` are snapshots
/// the policy must not remove (mounted ones are added here); `logs` is
/// `<root>/Logs`.
pub fn prune(
    store: &dyn SnapshotStore,
    retention: &Retention,
    today: NaiveDate,
    mut protected: BTreeMap<SnapshotName, ProtectReason>,
    logs: &Path,
    mode: PruneMode,
) -> Result<PruneReport, PruneError> {
    let list = store.list()?;
    let names: Vec<SnapshotName> = list.iter().map(|s| s.name.clone()).collect();
    for s in list.iter().filter(|s| s.mounted.is_some()) {
        protected.insert(s.name.clone(), ProtectReason::Mounted);
    }
    let plan = retention::plan(&names, &retention.policy, today, &protected);
    let plan = match store.snapshot_limit() {
        // why: one below the limit, so the next run's snapshot is not the one refused
        Some(limit) => retention::snap_limit::cap(plan, limit.saturating_sub(1) as usize, limit),
        None => plan,
    };
    let mut report = PruneReport::default();
    for entry in &plan.entries {
        let name = entry.name.clone();
        let over_limit = matches!(
            entry.mark,
            Mark::Remove(retention::RemoveReason::OverSnapshotLimit { .. })
        );
        // why: a removal reads the same over the limit or by the policy, but for its event
        let remove = |event: fn(SnapshotName, String, bool) -> PruneEvent, why: String| match mode {
            PruneMode::DryRun => event(name.clone(), why, false),
            PruneMode::Apply => match store.remove(&entry.name) {
                Ok(Removed::Removed) => event(name.clone(), why, true),
                Ok(Removed::AlreadyGone) => PruneEvent::AlreadyGone { name: name.clone() },
                Err(e) => PruneEvent::RemoveFailed {
                    name: name.clone(),
                    error: e.to_string(),
                },
            },
        };
        report.events.push(match &entry.mark {
            Mark::Remove(why) if over_limit => remove(
                |name, why, done| PruneEvent::OverLimit { name, why, done },
                why.to_string(),
            ),
            Mark::Remove(why) => remove(
                |name, why, done| PruneEvent::Remove { name, why, done },
                why.to_string(),
            ),
            Mark::Protected(why) => PruneEvent::Protected {
                name,
                why: why.to_string(),
            },
            Mark::Keep(why) => PruneEvent::Keep {
                name,
                why: why.to_string(),
            },
        });
    }
    if let Some(rule) = retention.free_space_rule() {
        let order = retention::free_space::emergency_order(&plan, retention.min_keep as usize);
        free_space(store, order, rule, mode, &mut report)?;
    }
    prune_logs(
        logs,
        retention.log_distinct_days as usize,
        mode,
        &mut report,
    )?;
    Ok(report)
}

/// Before a run: while space is short by the free-space rule, remove what
/// the policy removes anyway, then the oldest kept snapshots, down to
/// `gc-min-keep` (mounted ones and `protected` ones are never taken). With
/// no rule configured it does nothing.
pub fn make_room(
    store: &dyn SnapshotStore,
    retention: &Retention,
    today: NaiveDate,
    mut protected: BTreeMap<SnapshotName, ProtectReason>,
    mode: PruneMode,
) -> Result<PruneReport, PruneError> {
    let mut report = PruneReport::default();
    let Some(rule) = retention.free_space_rule() else {
        return Ok(report);
    };
    let list = store.list()?;
    let names: Vec<SnapshotName> = list.iter().map(|s| s.name.clone()).collect();
    for s in list.iter().filter(|s| s.mounted.is_some()) {
        protected.insert(s.name.clone(), ProtectReason::Mounted);
    }
    let plan = retention::plan(&names, &retention.policy, today, &protected);
    let order = retention::free_space::pre_run_order(&plan, retention.min_keep as usize);
    free_space(store, order, rule, mode, &mut report)?;
    Ok(report)
}

/// The free-space rule: remove the snapshots of `order`, one at a time,
/// while space is short.
fn free_space(
    store: &dyn SnapshotStore,
    order: Vec<SnapshotName>,
    rule: retention::FreeSpaceRule,
    mode: PruneMode,
    report: &mut PruneReport,
) -> Result<(), SnapshotError> {
    let mut order = order.into_iter();
    let min_free = rule.min_percent.unwrap_or(0.0);
    loop {
        let space = store.space()?;
        let (data, meta) = space.free_for_pruning();
        let free_bytes = space.free_bytes_for_pruning();
        if !rule.short(data, meta, free_bytes) {
            return Ok(());
        }
        let Some(next) = order.next() else {
            report.events.push(PruneEvent::FreeSpaceExhausted {
                data,
                meta,
                min_free,
                free_bytes,
                min_free_bytes: rule.min_bytes,
            });
            return Ok(());
        };
        let done = mode == PruneMode::Apply;
        if done && let Err(e) = store.remove(&next) {
            // why: said as an event, so what was removed before it is still reported
            report.events.push(PruneEvent::RemoveFailed {
                name: next,
                error: crate::error::chain(&e),
            });
            return Ok(());
        }
        report.events.push(PruneEvent::FreeSpace {
            name: next,
            data,
            meta,
            min_free,
            free_bytes,
            min_free_bytes: rule.min_bytes,
            done,
        });
        if !done {
            // why: a dry run cannot measure what a removal would free; one event says the rule fires
            return Ok(());
        }
    }
}

fn prune_logs(
    logs: &Path,
    distinct_days: usize,
    mode: PruneMode,
    report: &mut PruneReport,
) -> Result<(), PruneError> {
    if !logs.is_dir() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(logs)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
    {
        let names: Vec<String> = std::fs::read_dir(entry.path())
            .map_err(|source| PruneError::Log {
                path: entry.path().to_owned(),
                source,
            })?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for name in retention::logs::logs_to_remove(&names, distinct_days) {
            let path = entry.path().join(&name);
            let done = mode == PruneMode::Apply;
            if done {
                std::fs::remove_file(&path).map_err(|source| PruneError::Log {
                    path: path.clone(),
                    source,
                })?;
            }
            report.events.push(PruneEvent::Log { path, done });
        }
    }
    Ok(())
}
