//! `status` and `metrics`: what the persisted unit state says.

use super::{Ctx, output};
use crate::backup_root::BackupRoot;
use crate::backup_root::state::{self, UnitState};
use crate::error::ExitCode;
use crate::runner::shared::{self, ApplianceRecord};
use crate::sources;
use std::fmt::Write as _;

struct Row {
    unit: String,
    source: &'static str,
    state: UnitState,
    stale: bool,
    /// Why the unit's state file could not be read (the row then shows
    /// defaults; the other units are unaffected).
    unreadable: Option<String>,
    /// What the source says of the unit beyond its state (gone upstream).
    note: Option<String>,
    /// The appliance that owns it, when several share the root.
    owner: Option<String>,
}

fn rows(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let root = BackupRoot::new(ctx.root()?);
    let now = chrono::Utc::now().timestamp();
    let stale_after = i64::from(ctx.config.settings.stale_days) * 86_400;
    let mut rows = Vec::new();
    for source in sources::all() {
        for unit in source.status_units(&ctx.config, root.path()) {
            let (state, unreadable) = match state::load(&root, &unit) {
                Ok(s) => (s, None),
                Err(e) => (UnitState::default(), Some(e.to_string())),
            };
            let stale = state.last_success.is_none_or(|t| now - t > stale_after);
            let note = source.status_note(&ctx.config, root.path(), &unit);
            let owner = ctx
                .config
                .appliances
                .owner(unit.as_str())
                .map(|a| a.name.clone());
            rows.push(Row {
                owner,
                note,
                unit: unit.to_string(),
                source: source.name(),
                state,
                stale,
                unreadable,
            });
        }
    }
    for r in rows.iter().filter(|r| r.unreadable.is_some()) {
        eprintln!(
            "strata: warning: {}: {}",
            r.unit,
            r.unreadable.as_deref().unwrap_or_default()
        );
    }
    Ok(rows)
}

/// What `status` says of each appliance sharing the root: its last run.
fn appliance_rows(ctx: &Ctx) -> anyhow::Result<Vec<(String, Option<ApplianceRecord>)>> {
    let root = BackupRoot::new(ctx.root()?);
    Ok(ctx
        .config
        .appliances
        .0
        .iter()
        .map(|a| (a.name.clone(), shared::last_run(&root, &a.name)))
        .collect())
}

/// Who backed the unit up last, when not its owner: `owner (last by X)`.
fn appliance_cell(r: &Row) -> String {
    let owner = r.owner.clone().unwrap_or_else(|| "-".to_owned());
    match &r.state.appliance {
        Some(by) if Some(by) != r.owner.as_ref() => format!("{owner} (last by {by})"),
        _ => owner,
    }
}

pub fn status(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let rows = rows(ctx)?;
    let shared = !ctx.config.appliances.is_empty();
    let appliances = appliance_rows(ctx)?;
    if ctx.cli.g.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"unit": r.unit, "source": r.source, "stale": r.stale, "state": r.state, "state_error": r.unreadable, "note": r.note, "appliance": r.owner}))
            .collect();
        let mut body = serde_json::Map::new();
        body.insert("units".into(), serde_json::Value::Array(list));
        if shared {
            let list: Vec<_> = appliances
                .iter()
                .map(|(name, last)| serde_json::json!({"appliance": name, "last_run": last}))
                .collect();
            body.insert("appliances".into(), serde_json::Value::Array(list));
        }
        output::json("status", "units", serde_json::Value::Object(body))?;
    } else {
        let quiet = ctx.cli.g.quiet;
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let flag = match (r.stale, r.state.failures_in_row) {
                    _ if r.unreadable.is_some() => "UNKNOWN (unreadable state file)".to_owned(),
                    _ if r.note.is_some() => r.note.clone().unwrap_or_default(),
                    (true, _) if r.state.last_success.is_none() => {
                        "STALE (never succeeded)".to_owned()
                    }
                    (true, _) => format!(
                        "STALE (no success for {}+ days)",
                        ctx.config.settings.stale_days
                    ),
                    (false, 0) => "ok".to_owned(),
                    (false, n) => format!("failing ({n} in a row)"),
                };
                let mut row = vec![
                    r.unit.clone(),
                    output::time(r.state.last_attempt),
                    output::time(r.state.last_success),
                    output::time(r.state.last_scrub),
                    output::size(r.state.bytes),
                    r.state.failures_in_row.to_string(),
                    flag,
                ];
                if shared {
                    row.insert(1, appliance_cell(r));
                }
                row
            })
            // why: -q is for cron: only the units whose STATE is not "ok"
            .filter(|row| !quiet || row.last().is_none_or(|state| state != "ok"))
            .collect();
        let mut head = vec![
            "UNIT",
            "LAST ATTEMPT",
            "LAST SUCCESS",
            "LAST SCRUB",
            "SIZE",
            "FAILS",
            "STATE",
        ];
        if shared {
            head.insert(1, "APPLIANCE");
        }
        if !(quiet && table.is_empty()) {
            output::table(&head, &table);
        }
        if shared && !quiet {
            println!();
            let table: Vec<Vec<String>> = appliances
                .iter()
                .map(|(name, last)| match last {
                    None => vec![name.clone(), "never".to_owned()],
                    Some(l) => vec![
                        name.clone(),
                        l.run.clone(),
                        output::time(Some(l.joined)),
                        l.ended.map_or_else(
                            || "killed or running".to_owned(),
                            |t| output::time(Some(t)),
                        ),
                        format!("{} ({} failed)", l.units, l.failed),
                        if l.taken_over.is_empty() {
                            "-".to_owned()
                        } else {
                            l.taken_over.len().to_string()
                        },
                        l.snapshot.clone().unwrap_or_else(|| "-".to_owned()),
                    ],
                })
                .collect();
            output::table(
                &[
                    "APPLIANCE",
                    "LAST RUN",
                    "STARTED",
                    "ENDED",
                    "UNITS",
                    "TOOK OVER",
                    "SNAPSHOT",
                ],
                &table,
            );
        }
    }
    Ok(if rows.iter().any(|r| r.stale) {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn metrics(ctx: &Ctx, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let rows = rows(ctx)?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, values: &mut dyn Iterator<Item = (String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let l = |r: &Row| format!("{{unit=\"{}\",source=\"{}\"}}", label(&r.unit), r.source);
    gauge(
        "strata_unit_last_success_timestamp_seconds",
        "Unix time of the unit's last successful backup (0 if never).",
        &mut rows
            .iter()
            .map(|r| (l(r), r.state.last_success.unwrap_or(0).to_string())),
    );
    gauge(
        "strata_unit_last_scrub_timestamp_seconds",
        "Unix time of the unit's last scrub (0 if never).",
        &mut rows
            .iter()
            .map(|r| (l(r), r.state.last_scrub.unwrap_or(0).to_string())),
    );
    gauge(
        "strata_unit_failures_in_row",
        "Failed attempts since the last success.",
        &mut rows
            .iter()
            .map(|r| (l(r), r.state.failures_in_row.to_string())),
    );
    gauge(
        "strata_unit_bytes",
        "Bytes the unit occupies in the backup root.",
        &mut rows.iter().map(|r| (l(r), r.state.bytes.to_string())),
    );
    gauge(
        "strata_unit_stale",
        "1 if the unit has had no success for stale-days.",
        &mut rows.iter().map(|r| (l(r), u8::from(r.stale).to_string())),
    );
    let space = crate::snapshot::fs_space(ctx.root()?)?;
    gauge(
        "strata_filesystem_free_bytes",
        "Free bytes of the backup filesystem.",
        &mut std::iter::once((String::new(), space.fs_free.to_string())),
    );
    gauge(
        "strata_filesystem_free_inodes",
        "Free inodes of the backup filesystem.",
        &mut std::iter::once((String::new(), space.inodes_free.to_string())),
    );
    crate::backup_root::write_atomic(file, out.as_bytes())?;
    Ok(ExitCode::Ok)
}
