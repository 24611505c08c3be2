//! The dump source's configuration: its `dump-*` settings and the `dump:`
//! section, one unit `dump/<name>` per command whose output is stored.

use super::entries::{Draft, Units, named_units};
use super::fields::{Ctx, get_count, get_prob, get_string, get_string_or};
use super::node::{Node, Value};
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DumpSettings {
    pub scrub_probability: f64,
    pub workers: u32,
}

/// How a dump unit's command is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpCommand {
    /// An argument vector, run as is.
    Argv(Vec<String>),
    /// One string, run by `/bin/sh -c` (the deliberate exception of STYLE rule 2).
    Shell(String),
    /// `pipeline:` argument vectors run as one pipeline, each stage's stdout
    /// the next one's stdin, no shell (PALHM's exec pipelines).
    Pipeline(Vec<Vec<String>>),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DumpUnit {
    pub name: String,
    pub unit: UnitPath,
    pub command: DumpCommand,
    /// File name inside the unit directory.
    pub file: String,
    /// Run the command as this user (through `sudo -n -u`).
    pub user: Option<String>,
    /// Per-unit scrub probability (overrides `dump-scrub-probability`).
    pub scrub: Option<f64>,
    /// Working directory of the command: the config file's directory.
    pub cwd: PathBuf,
}

/// The `dump-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, f: &mut Fields) -> Option<DumpSettings> {
    let scrub_probability = get_prob(r, f, "dump-scrub-probability", 0.0166);
    let workers = get_count(r, f, "dump-workers", 1, 1);
    Some(DumpSettings {
        scrub_probability: scrub_probability?,
        workers: workers?,
    })
}

/// `pipeline:`: a list of stages, each a non-empty list of strings.
fn pipeline(r: &mut Reader, node: &Node, path: &KeyPath) -> Option<DumpCommand> {
    let Value::Seq(stages) = &node.value else {
        r.error(
            node.line,
            path,
            format!(
                "expected a list of stages, each a list of strings ([[pg_dump, db], [zstd]]), found {}",
                node.value.kind()
            ),
        );
        return None;
    };
    if stages.is_empty() {
        r.error(node.line, path, "the pipeline has no stage");
        return None;
    }
    let mut out = Vec::with_capacity(stages.len());
    let mut ok = true;
    for (i, stage) in stages.iter().enumerate() {
        let sp = path.index(i);
        if !matches!(stage.value, Value::Seq(_)) {
            r.error(
                stage.line,
                &sp,
                format!(
                    "a stage is the program and its arguments, as a list; found {}",
                    stage.value.kind()
                ),
            );
            ok = false;
            continue;
        }
        match r.strings(stage, &sp) {
            Some(argv) if argv.first().is_some_and(|a| !a.trim().is_empty()) => out.push(argv),
            Some(_) => {
                r.error(stage.line, &sp, "the stage is empty");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(DumpCommand::Pipeline(out))
}

/// The `dump:` section: `name: {command | pipeline, file, user, scrub}`.
pub(super) fn units(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Units<DumpUnit> {
    named_units(r, node, path, "dump", |r, e, f| {
        let command = match (f.get("command"), f.get("pipeline")) {
            (Some(_), Some((pn, pp))) => {
                r.error(
                    pn.line,
                    &pp,
                    "give either `command` or `pipeline`, not both",
                );
                None
            }
            (Some((cn, cp)), None) => match &cn.value {
                Value::Seq(_) => r.strings(cn, &cp).and_then(|argv| {
                    if argv.first().is_none_or(|a| a.trim().is_empty()) {
                        r.error(
                            cn.line,
                            &cp,
                            "the command is empty: give the program and its arguments as a list",
                        );
                        None
                    } else {
                        Some(DumpCommand::Argv(argv))
                    }
                }),
                _ => r.nonempty(cn, &cp).map(DumpCommand::Shell),
            },
            (None, Some((pn, pp))) => pipeline(r, pn, &pp),
            (None, None) => {
                r.error(
                    e.line,
                    &e.path.key("command"),
                    "missing required key `command` (the program and its arguments, as a list), or `pipeline` (a list of them)",
                );
                None
            }
        };
        let file = match get_string_or(r, f, "file", e.name) {
            Some(file)
                if file.contains('/')
                    || file == "."
                    || file == ".."
                    || file.starts_with(".strata") =>
            {
                let line = f.get("file").map_or(e.line, |(n, _)| n.line);
                r.error(
                    line,
                    &e.path.key("file"),
                    format!("`{file}` must be a plain file name"),
                );
                None
            }
            other => other,
        };
        let user = get_string(r, f, "user");
        let scrub = match f.get("scrub") {
            Some((sn, sp)) => match &sn.value {
                Value::Bool(b) => Some(Some(if *b { 1.0 } else { 0.0 })),
                _ => r.probability(sn, &sp).map(Some),
            },
            None => Some(None),
        };
        let (Some(command), Some(file), Some(user), Some(scrub)) = (command, file, user, scrub)
        else {
            return None;
        };
        let name = e.name.to_owned();
        let cwd = ctx.base.to_owned();
        Some(Draft {
            name: name.clone(),
            blame: e.path.clone(),
            build: move |unit| {
                Some(DumpUnit {
                    name,
                    unit,
                    command,
                    file,
                    user,
                    scrub,
                    cwd,
                })
            },
        })
    })
}
