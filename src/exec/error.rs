use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
}

impl Termination {
    #[must_use]
    pub fn from_status(status: ExitStatus) -> Termination {
        match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited(code),
            (None, Some(sig)) => Termination::Signaled(sig),
            // why: neither code nor signal only happens for stopped processes, which wait() never returns
            (None, None) => Termination::Exited(-1),
        }
    }

    #[must_use]
    pub fn success(self) -> bool {
        self == Termination::Exited(0)
    }
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Termination::Exited(code) => write!(f, "exit status {code}"),
            Termination::Signaled(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// A command that could not be run, or ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{program}: command not found (is it installed and on PATH?)")]
    NotFound { program: String },
    #[error("could not start `{argv}`: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed with exit status {status}{}", stderr_suffix(.stderr_tail))]
    Failed {
        argv: String,
        status: i32,
        stderr_tail: String,
    },
    #[error("`{argv}` was killed by signal {signal}{}", stderr_suffix(.stderr_tail))]
    Killed {
        argv: String,
        signal: i32,
        stderr_tail: String,
    },
    #[error("I/O error talking to `{argv}`: {source}")]
    Io {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    /// A stage of a pipeline could not start or did not succeed; `others`
    /// are the further stages that did not succeed either.
    #[error("stage {stage} of {stages} of the pipeline: {source}{}", super::pipeline::others_suffix(.others))]
    Pipeline {
        stage: usize,
        stages: usize,
        others: Vec<super::pipeline::StageFailure>,
        #[source]
        source: Box<ExecError>,
    },
}

impl ExecError {
    /// The exit status, when the command ran and exited.
    #[must_use]
    pub fn status(&self) -> Option<i32> {
        match self {
            ExecError::Failed { status, .. } => Some(*status),
            ExecError::Pipeline { source, .. } => source.status(),
            _ => None,
        }
    }

    /// What the command printed on stderr last, when it ran.
    #[must_use]
    pub fn stderr_tail(&self) -> &str {
        match self {
            ExecError::Failed { stderr_tail, .. } | ExecError::Killed { stderr_tail, .. } => {
                stderr_tail
            }
            ExecError::Pipeline { source, .. } => source.stderr_tail(),
            _ => "",
        }
    }
}

fn stderr_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}
