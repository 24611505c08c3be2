//! The error policy.
//!
//! - Each module has one `thiserror` enum (`ExecError`, `ConfigError`,
//!   `SnapshotError`, `DumpError`, `RunError`, ...) whose variants carry what
//!   the message needs (unit, path, argv) and the cause as `#[source]`.
//!   There is no catch-all `Msg(String)`.
//! - `anyhow` is used only in `main.rs` and `cli/`, to add context such as
//!   "backing up dump/pgsql"; `main` prints the whole chain once, on stderr.
//! - Messages say what failed and why, naming the file, key, unit or command;
//!   a config problem is always `file:line: key.path: message`.
//! - Exit codes ([`ExitCode`]): 0 success; 1 a unit failed, a threshold was
//!   crossed (`df -c`, stale units in `status`) or an operation failed;
//!   2 a usage or config error, a missing backup root, or a refused root
//!   invocation — nothing was done.
//! - Nothing is lost on failure: a failed unit keeps its previous copy, and
//!   every multi-step change is ordered so that a crash at any point can be
//!   finished or undone by the next run.

/// strata's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Failed = 1,
    Usage = 2,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// An error that means "usage or configuration": exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// A command line clap could not turn into a command's arguments.
    #[must_use]
    pub fn from_clap(e: &clap::Error) -> UsageError {
        UsageError(e.to_string().trim_end().to_owned())
    }
}

/// An error and its causes in one line, each said once (a cause whose text
/// an outer message already contains is left out).
#[must_use]
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        next = cause.source();
    }
    parts.join(": ")
}
