//! `status` and `metrics`: what the persisted unit state says.

use super::{Ctx, output};
use crate::backup_root::BackupRoot;
use crate::backup_root::state::{self, UnitState};
use crate::error::ExitCode;
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
            rows.push(Row {
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

pub fn status(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let rows = rows(ctx)?;
    if ctx.cli.g.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"unit": r.unit, "source": r.source, "stale": r.stale, "state": r.state, "state_error": r.unreadable, "note": r.note}))
            .collect();
        output::json("status", "units", serde_json::Value::Array(list))?;
    } else {
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
                vec![
                    r.unit.clone(),
                    output::time(r.state.last_attempt),
                    output::time(r.state.last_success),
                    output::time(r.state.last_scrub),
                    output::size(r.state.bytes),
                    r.state.failures_in_row.to_string(),
                    flag,
                ]
            })
            .collect();
        output::table(
            &[
                "UNIT",
                "LAST ATTEMPT",
                "LAST SUCCESS",
                "LAST SCRUB",
                "SIZE",
                "FAILS",
                "STATE",
            ],
            &table,
        );
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
