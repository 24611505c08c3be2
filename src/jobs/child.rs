//! The child's side of a job: dying with the runner, and the report.

use super::{CONFIG_ENV, PARENT_ENV, REPORT_ENV};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{getpgrp, getpid, getppid};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error(
        "the strata process that started this job (PID {parent}) has already ended; not starting"
    )]
    Orphaned { parent: String },
    #[error("cannot arrange to end with the strata process that started this job: {0}")]
    Setup(#[source] std::io::Error),
    #[error("cannot write this job's report to {}: {source}", path.display())]
    Report {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Called first by every strata process. Outside a job it does nothing.
/// In a job's child (the runner set [`PARENT_ENV`]): the kernel is asked to
/// send SIGTERM when the runner dies, and SIGTERM, SIGINT or SIGHUP then
/// kill the job's whole process group (this process and every tool it
/// started), so that nothing of a dead run goes on writing into the root.
pub fn adopt() -> Result<(), ChildError> {
    let Some(parent) = std::env::var_os(PARENT_ENV) else {
        return Ok(());
    };
    let parent = parent.to_string_lossy().into_owned();
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| ChildError::Setup(std::io::Error::from(e)))?;
    // why: after set_pdeathsig, so a runner that dies in between is seen here or signals us
    if getppid().as_raw().to_string() != parent {
        return Err(ChildError::Orphaned { parent });
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(ChildError::Setup)?;
    // why: only a group leader may take its group down; the runner makes every job's child one
    let leads_group = getpgrp() == getpid();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            if leads_group {
                let _ = killpg(getpgrp(), Signal::SIGKILL);
            }
            std::process::exit(143);
        }
    });
    Ok(())
}

/// In a job's child, the config its runner cut down for it, read as if it
/// were the file `path` names (paths resolve against its directory);
/// `None` outside a job, or when that config is missing or does not
/// validate: the caller then reads `path` itself, as by hand.
#[must_use]
pub fn job_config(path: &Path) -> Option<crate::config::Config> {
    if !is_job() {
        return None;
    }
    let text = std::fs::read_to_string(std::env::var_os(CONFIG_ENV)?).ok()?;
    crate::config::parse(&text, path).ok()
}

/// Whether this process is a job's child that must report to a runner.
#[must_use]
pub fn is_job() -> bool {
    std::env::var_os(REPORT_ENV).is_some()
}

/// Write `report` for the runner; `Ok(false)` when this process is not a
/// job (run by hand), so there is nobody to report to.
pub fn report<R: Serialize>(report: &R) -> Result<bool, ChildError> {
    let Some(path) = std::env::var_os(REPORT_ENV) else {
        return Ok(false);
    };
    let path = Path::new(&path);
    let bytes = serde_json::to_vec(report).map_err(|e| ChildError::Report {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    // why: atomic (the runner never reads half a report) but not synced: the
    // runner reads it as soon as this process exits, and a machine crash
    // ends the run that would read it
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ChildError::Report {
            path: path.to_owned(),
            source,
        })?;
    Ok(true)
}
