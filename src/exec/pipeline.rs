//! Pipelines of commands without a shell: each stage's stdout is the next
//! one's stdin, the last stage's stdout is read by strata as a stream, and
//! every stage's exit status is judged on [`PipelineReader::finish`] (a
//! dump's `pipeline: [[mysqldump, db], [zstd]]`).
//!
//! Invariants: strata holds no copy of an inner pipe (a stage sees end of
//! input when the stage before it exits, and a broken pipe when the stage
//! after it exits); every stage's stderr drains on its own thread; a
//! dropped reader kills and reaps every stage.
//!
//! Which stage to blame: a stage that fails makes the stages before it die
//! of SIGPIPE (or exit with an error about a broken pipe) and the stages
//! after it see a short input. The error names every stage that did not
//! succeed, the first that failed for a reason of its own first: a stage
//! killed by SIGPIPE (or a shell saying so, exit 141) is blamed only when
//! no other stage failed.

use super::{Cmd, ExecError, Termination, drain, tail};
use std::io::Read;
use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;

/// One stage that did not succeed.
#[derive(Debug, Clone)]
pub struct StageFailure {
    /// 1-based position in the pipeline.
    pub stage: usize,
    pub argv: String,
    pub end: Termination,
    pub stderr_tail: String,
}

impl std::fmt::Display for StageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stage {} `{}` {}", self.stage, self.argv, self.end)?;
        if !self.stderr_tail.is_empty() {
            write!(f, ": {}", self.stderr_tail)?;
        }
        Ok(())
    }
}

/// A started pipeline whose last stage's stdout is read as a stream.
pub struct PipelineReader {
    stages: Vec<Running>,
    stdout: Option<ChildStdout>,
}

struct Running {
    cmd: Cmd,
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// What a pipeline that succeeded printed on stderr, stage by stage.
#[derive(Debug)]
pub struct PipelineFinished {
    pub stderr: Vec<Vec<u8>>,
}

/// Start `stages` connected by pipes. The first stage reads what its
/// [`Cmd`] says (`/dev/null` by default); each stage's ok codes apply to it.
pub fn spawn_pipeline(stages: &[Cmd]) -> Result<PipelineReader, ExecError> {
    assert!(!stages.is_empty(), "a pipeline has at least one stage");
    let mut running: Vec<Running> = Vec::with_capacity(stages.len());
    let mut previous: Option<ChildStdout> = None;
    for (i, cmd) in stages.iter().enumerate() {
        let mut c = cmd.command();
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        match previous.take() {
            // why: moved into the child's stdin, so strata keeps no copy of the inner pipe
            Some(out) => {
                c.stdin(Stdio::from(out));
            }
            None => {
                c.stdin(match cmd.stdin {
                    super::Input::Inherit => Stdio::inherit(),
                    _ => Stdio::null(),
                });
            }
        }
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(source) => {
                let err = cmd.spawn_error(source);
                for r in &mut running {
                    r.kill();
                }
                return Err(ExecError::Pipeline {
                    stage: i + 1,
                    stages: stages.len(),
                    others: Vec::new(),
                    source: Box::new(err),
                });
            }
        };
        let stderr = drain(child.stderr.take());
        previous = child.stdout.take();
        running.push(Running {
            cmd: cmd.clone(),
            child,
            stderr: Some(stderr),
        });
    }
    Ok(PipelineReader {
        stages: running,
        stdout: previous,
    })
}

impl Running {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // why: not joined: a grandchild may hold the stderr pipe open long after; the thread ends with it
        drop(self.stderr.take());
    }
}

impl PipelineReader {
    /// Close our end of the last stdout, wait for every stage, and judge
    /// each one's exit status with its ok codes.
    pub fn finish(mut self) -> Result<PipelineFinished, ExecError> {
        drop(self.stdout.take());
        let count = self.stages.len();
        let mut failures = Vec::new();
        let mut stderrs = Vec::with_capacity(count);
        for (i, r) in self.stages.iter_mut().enumerate() {
            let status = r.child.wait().map_err(|source| ExecError::Io {
                argv: r.cmd.display(),
                source,
            })?;
            let stderr = r
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            if let Err(e) = r.cmd.check(status, &stderr) {
                failures.push((
                    StageFailure {
                        stage: i + 1,
                        argv: r.cmd.display(),
                        end: Termination::from_status(status),
                        stderr_tail: tail(&stderr),
                    },
                    e,
                ));
            }
            stderrs.push(stderr);
        }
        if failures.is_empty() {
            return Ok(PipelineFinished { stderr: stderrs });
        }
        Err(blame(failures, count))
    }

    /// Kill every stage (the reader gives up on the stream).
    pub fn kill(mut self) {
        drop(self.stdout.take());
        for r in &mut self.stages {
            r.kill();
        }
    }
}

const SIGPIPE: i32 = 13;

/// Whether a stage ended as a writer whose reader went away ends: killed by
/// SIGPIPE, or a shell reporting that of its command (128 + 13).
fn broken_pipe(end: Termination) -> bool {
    matches!(
        end,
        Termination::Signaled(SIGPIPE) | Termination::Exited(141)
    )
}

/// The error for a pipeline of `count` stages whose `failures` (in stage
/// order) did not succeed: the first failure of a stage's own first.
fn blame(mut failures: Vec<(StageFailure, ExecError)>, count: usize) -> ExecError {
    let own = failures
        .iter()
        .position(|(f, _)| !broken_pipe(f.end))
        .unwrap_or(0);
    let (first, cause) = failures.remove(own);
    let others = failures.into_iter().map(|(f, _)| f).collect();
    ExecError::Pipeline {
        stage: first.stage,
        stages: count,
        others,
        source: Box::new(cause),
    }
}

impl Read for PipelineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stdout {
            Some(out) => out.read(buf),
            None => Ok(0),
        }
    }
}

impl Drop for PipelineReader {
    fn drop(&mut self) {
        // why: last resort; a pipeline dropped without finish() must leave no process behind
        drop(self.stdout.take());
        for r in &mut self.stages {
            if r.stderr.is_some() {
                r.kill();
            }
        }
    }
}

/// Describe the other failed stages of a pipeline error, for its message.
pub(super) fn others_suffix(others: &[StageFailure]) -> String {
    if others.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = others.iter().map(ToString::to_string).collect();
        format!("; also {}", list.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("sh").args(["-c", script])
    }

    fn run(stages: &[Cmd]) -> (Vec<u8>, Result<PipelineFinished, ExecError>) {
        let mut p = spawn_pipeline(stages).unwrap();
        let mut out = Vec::new();
        p.read_to_end(&mut out).unwrap();
        (out, p.finish())
    }

    #[test]
    fn stages_are_connected_and_each_status_is_judged() {
        let (out, done) = run(&[
            Cmd::new("printf").arg("b\\na\\n"),
            Cmd::new("sort"),
            Cmd::new("tr").args(["a-z", "A-Z"]),
        ]);
        assert_eq!(out, b"A\nB\n");
        assert_eq!(done.unwrap().stderr.len(), 3);
    }

    #[test]
    fn each_failing_stage_is_named() {
        // (failing stage, its script) in a three-stage pipeline
        for k in 1..=3 {
            let mut stages = vec![sh("seq 1 100000"), sh("cat"), Cmd::new("gzip").arg("-c")];
            stages[k - 1] = sh(&format!("echo 'stage {k} broke' >&2; exit 7"));
            let (_, done) = run(&stages);
            let err = done.unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("stage {k} of 3 of the pipeline:")),
                "{k}: {msg}"
            );
            assert!(msg.contains(&format!("stage {k} broke")), "{k}: {msg}");
            assert!(msg.contains("exit status 7"), "{k}: {msg}");
            assert_eq!(err.status(), Some(7));
        }
    }

    #[test]
    fn a_stage_dead_of_sigpipe_is_not_blamed_before_the_stage_that_stopped_reading() {
        let (_, done) = run(&[Cmd::new("yes"), sh("head -c 10 >/dev/null; exit 3")]);
        let msg = done.unwrap_err().to_string();
        assert!(msg.starts_with("stage 2 of 2"), "{msg}");
        assert!(
            msg.contains("also stage 1 `yes` killed by signal 13"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_program_is_named_with_its_stage() {
        let err = spawn_pipeline(&[Cmd::new("true"), Cmd::new("strata-no-such-tool")])
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.starts_with("stage 2 of 2 of the pipeline"), "{msg}");
        assert!(
            msg.contains("strata-no-such-tool: command not found"),
            "{msg}"
        );
    }

    #[test]
    fn a_killed_pipeline_leaves_no_process() {
        let p = spawn_pipeline(&[Cmd::new("sleep").arg("30"), Cmd::new("cat")]).unwrap();
        let pids: Vec<u32> = p.stages.iter().map(|r| r.child.id()).collect();
        p.kill();
        for pid in pids {
            let alive = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
                None,
            )
            .is_ok();
            assert!(!alive, "{pid} still alive");
        }
    }
}
