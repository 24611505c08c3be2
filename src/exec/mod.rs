//! The only door through which strata starts processes (STYLE rule 2).
//!
//! Owns: building argument vectors, logging them, spawning, collecting output,
//! draining stderr on its own thread so a chatty child never blocks, and turning
//! a failure into an [`ExecError`] that names the command, its exit status (or
//! the signal that killed it) and the tail of its stderr.
//!
//! Does not own: deciding what a command means. Callers declare which exit codes
//! mean success (`rsync`'s 24, say) with [`Cmd::ok_codes`].
//!
//! Invariant: arguments are always a vector, never a shell string; the one
//! deliberate exception (a user's `dump` command given as a string) goes through
//! [`Cmd::shell`], which says so in the log.

mod error;
mod pipe;
mod pipeline;

pub use error::{ExecError, Termination};
pub use pipe::{ChildReader, ChildWriter, Finished, grow_pipe};
pub use pipeline::{PipelineFinished, PipelineReader, StageFailure, spawn_pipeline};

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// How many bytes of a failed command's stderr are kept for the error message.
pub const STDERR_TAIL_BYTES: usize = 4096;

/// Variables through which a job runner talks to one job's child (the
/// report file, the runner's PID, the job's cut-down config; see
/// `crate::jobs`). They reach only the
/// child the runner sets them for: every command strata starts has them
/// removed unless it sets them itself, so a grandchild never mistakes
/// itself for a job.
pub const JOB_PRIVATE_ENV: [&str; 3] = [
    "STRATA_JOB_REPORT",
    "STRATA_JOB_PARENT",
    "STRATA_JOB_CONFIG",
];

static TRACE: AtomicBool = AtomicBool::new(false);

/// Print every command line on stderr before it runs (`-v`).
pub fn set_trace(on: bool) {
    TRACE.store(on, Ordering::Relaxed);
}

/// A command to run: program, arguments, environment, and what counts as success.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    env_clear: bool,
    cwd: Option<PathBuf>,
    ok_codes: Vec<i32>,
    stdin: Input,
    own_group: bool,
}

#[derive(Debug, Clone)]
enum Input {
    Null,
    Bytes(Vec<u8>),
    Inherit,
}

/// A started child whose output goes to files; see [`Cmd::spawn_to_files`].
#[derive(Debug)]
pub struct Spawned {
    argv: String,
    child: Child,
}

impl Spawned {
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the child; how it ended, unjudged.
    pub fn wait(mut self) -> Result<Termination, ExecError> {
        let status = self.child.wait().map_err(|source| ExecError::Io {
            argv: self.argv.clone(),
            source,
        })?;
        Ok(Termination::from_status(status))
    }
}

/// What a finished command produced.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code (always one of the declared ok codes).
    pub code: i32,
}

impl Output {
    /// Stdout as text, lossily decoded.
    #[must_use]
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Cmd {
    /// A command running `program` (looked up in `PATH` when it has no slash).
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            ok_codes: vec![0],
            stdin: Input::Null,
            own_group: false,
        }
    }

    /// Start the child as the leader of a new process group, so that it and
    /// everything it starts can be signalled as one (a job of `run`).
    #[must_use]
    pub fn own_process_group(mut self) -> Cmd {
        self.own_group = true;
        self
    }

    /// `sh -c SCRIPT`: only for commands a user wrote as one string in the config.
    #[must_use]
    pub fn shell(script: &str) -> Cmd {
        Cmd::new("/bin/sh").args(["-c", script])
    }

    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    #[must_use]
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Start from an empty environment (the privileged helper does this).
    #[must_use]
    pub fn env_clear(mut self) -> Cmd {
        self.env_clear = true;
        self
    }

    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Exit codes that mean success (default `[0]`).
    #[must_use]
    pub fn ok_codes(mut self, codes: &[i32]) -> Cmd {
        self.ok_codes = codes.to_vec();
        self
    }

    /// Feed these bytes on stdin (default: /dev/null).
    #[must_use]
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Input::Bytes(bytes.into());
        self
    }

    /// Let the child read our stdin (interactive tools such as `ssh-keygen`).
    #[must_use]
    pub fn stdin_inherit(mut self) -> Cmd {
        self.stdin = Input::Inherit;
        self
    }

    /// The program and arguments, for messages.
    #[must_use]
    pub fn argv(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// The command line, shell-quoted, for logs and errors.
    #[must_use]
    pub fn display(&self) -> String {
        quote_argv(&self.argv())
    }

    fn command(&self) -> Command {
        if TRACE.load(Ordering::Relaxed) {
            eprintln!("+ {}", self.display());
        }
        #[allow(clippy::disallowed_methods)] // why: this module is the one allowed spawner
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        if self.env_clear {
            cmd.env_clear();
        }
        for k in JOB_PRIVATE_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd
    }

    fn spawn_with(&self, stdout: Stdio, stderr: Stdio) -> Result<Child, ExecError> {
        let mut cmd = self.command();
        cmd.stdout(stdout).stderr(stderr);
        cmd.stdin(match self.stdin {
            Input::Null => Stdio::null(),
            Input::Bytes(_) => Stdio::piped(),
            Input::Inherit => Stdio::inherit(),
        });
        let mut child = cmd.spawn().map_err(|source| self.spawn_error(source))?;
        if let Input::Bytes(bytes) = &self.stdin {
            let mut stdin = child.stdin.take().expect("stdin was piped above");
            let bytes = bytes.clone();
            // why: a thread, so a child that writes a lot before reading cannot deadlock us
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        Ok(child)
    }

    fn spawn_error(&self, source: std::io::Error) -> ExecError {
        if source.kind() == std::io::ErrorKind::NotFound {
            ExecError::NotFound {
                program: self.program.to_string_lossy().into_owned(),
            }
        } else {
            ExecError::Spawn {
                argv: self.display(),
                source,
            }
        }
    }

    /// Run to completion, capturing stdout and stderr; fail unless the exit
    /// code is declared ok.
    pub fn run(&self) -> Result<Output, ExecError> {
        let mut child = self.spawn_with(Stdio::piped(), Stdio::piped())?;
        let stderr = drain(child.stderr.take());
        let mut stdout = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_end(&mut stdout)
                .map_err(|source| ExecError::Io {
                    argv: self.display(),
                    source,
                })?;
        }
        let status = child.wait().map_err(|source| ExecError::Io {
            argv: self.display(),
            source,
        })?;
        let stderr = stderr.join().unwrap_or_default();
        let code = self.check(status, &stderr)?;
        Ok(Output {
            stdout,
            stderr,
            code,
        })
    }

    /// Start with stdout and stderr sent to files (a job's logs) and return
    /// at once: the caller learns the PID (to record or signal it) and waits
    /// with [`Spawned::wait`].
    pub fn spawn_to_files(&self, stdout: File, stderr: File) -> Result<Spawned, ExecError> {
        let child = self.spawn_with(Stdio::from(stdout), Stdio::from(stderr))?;
        Ok(Spawned {
            argv: self.display(),
            child,
        })
    }

    /// Run with inherited stdout/stderr (interactive or pass-through tools),
    /// judged by the ok codes.
    pub fn run_inherit(&self) -> Result<i32, ExecError> {
        let mut child = self.spawn_with(Stdio::inherit(), Stdio::inherit())?;
        let status = child.wait().map_err(|source| ExecError::Io {
            argv: self.display(),
            source,
        })?;
        self.check(status, &[])
    }

    /// Start the command and stream its stdout; stderr is drained on a thread.
    /// Call [`ChildReader::finish`] to wait and judge the exit status.
    pub fn spawn_reader(&self) -> Result<ChildReader, ExecError> {
        let mut child = self.spawn_with(Stdio::piped(), Stdio::piped())?;
        let stderr = drain(child.stderr.take());
        let stdout = child.stdout.take().expect("stdout was piped above");
        Ok(ChildReader::new(self.clone(), child, stdout, stderr))
    }

    /// Like [`Cmd::spawn_reader`], but stderr is also copied to `tee` as it
    /// arrives: a long transfer's warnings reach the unit's log as they
    /// happen, and stay there if we are killed. [`ChildReader::finish`] still
    /// returns the whole stderr.
    pub fn spawn_reader_tee_stderr(
        &self,
        tee: Box<dyn Write + Send>,
    ) -> Result<ChildReader, ExecError> {
        let mut child = self.spawn_with(Stdio::piped(), Stdio::piped())?;
        let stderr = drain_tee(child.stderr.take(), tee);
        let stdout = child.stdout.take().expect("stdout was piped above");
        Ok(ChildReader::new(self.clone(), child, stdout, stderr))
    }

    /// Start the command with its stdin piped from us and its stdout going to
    /// `stdout`; stderr is drained on a thread. Call [`ChildWriter::finish`].
    pub fn spawn_writer(&self, stdout: Stdio) -> Result<ChildWriter, ExecError> {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| self.spawn_error(source))?;
        let stderr = drain(child.stderr.take());
        let stdin = child.stdin.take().expect("stdin was piped above");
        Ok(ChildWriter::new(self.clone(), child, stdin, stderr))
    }

    /// Like [`Cmd::spawn_writer`], but stderr is also copied to `tee` as it
    /// arrives (a watcher that must see a line while the child still runs).
    /// [`ChildWriter::finish`] still returns the whole stderr.
    pub fn spawn_writer_tee_stderr(
        &self,
        stdout: Stdio,
        tee: Box<dyn Write + Send>,
    ) -> Result<ChildWriter, ExecError> {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| self.spawn_error(source))?;
        let stderr = drain_tee(child.stderr.take(), tee);
        let stdin = child.stdin.take().expect("stdin was piped above");
        Ok(ChildWriter::new(self.clone(), child, stdin, stderr))
    }

    pub(crate) fn check(&self, status: ExitStatus, stderr: &[u8]) -> Result<i32, ExecError> {
        match Termination::from_status(status) {
            Termination::Exited(code) if self.ok_codes.contains(&code) => Ok(code),
            Termination::Exited(code) => Err(ExecError::Failed {
                argv: self.display(),
                status: code,
                stderr_tail: tail(stderr),
            }),
            Termination::Signaled(signal) => Err(ExecError::Killed {
                argv: self.display(),
                signal,
                stderr_tail: tail(stderr),
            }),
        }
    }
}

/// Read a pipe to its end on a separate thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Read a pipe to its end on a separate thread, copying each chunk to `tee`.
fn drain_tee<R: Read + Send + 'static>(
    pipe: Option<R>,
    mut tee: Box<dyn Write + Send>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let Some(mut p) = pipe else { return buf };
        let mut chunk = [0u8; 8192];
        loop {
            match p.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    // why: the copy is best effort; the child must be drained even if the tee fails
                    let _ = tee.write_all(&chunk[..n]).and_then(|()| tee.flush());
                    buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        buf
    })
}

/// The last [`STDERR_TAIL_BYTES`] of `stderr`, trimmed, as text.
#[must_use]
pub fn tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&stderr[start..]).trim().to_owned()
}

/// Quote an argument vector so that a user can paste it into a shell.
#[must_use]
pub fn quote_argv(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether `program` can be found (an absolute path that exists, or a name on PATH).
#[must_use]
pub fn tool_exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_code() {
        let out = Cmd::new("sh")
            .args(["-c", "echo hi; echo oops >&2; exit 3"])
            .ok_codes(&[3])
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"oops\n");
        assert_eq!(out.code, 3);
    }

    #[test]
    fn failure_names_command_status_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo 'disk on fire' >&2; exit 2"])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sh -c 'echo '\\''disk on fire'\\'' >&2; exit 2'"),
            "{msg}"
        );
        assert!(msg.contains("exit status 2"), "{msg}");
        assert!(msg.contains("disk on fire"), "{msg}");
    }

    #[test]
    fn death_by_signal_is_reported_as_such() {
        let err = Cmd::new("sh").args(["-c", "kill -9 $$"]).run().unwrap_err();
        assert!(err.to_string().contains("killed by signal 9"), "{err}");
    }

    #[test]
    fn missing_program_is_named() {
        let err = Cmd::new("strata-no-such-tool").run().unwrap_err();
        assert_eq!(
            err.to_string(),
            "strata-no-such-tool: command not found (is it installed and on PATH?)"
        );
    }

    #[test]
    fn tee_copies_stderr_as_it_comes_and_finish_still_has_it() {
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut child = Cmd::new("sh")
            .args(["-c", "echo warn >&2; echo out"])
            .spawn_reader_tee_stderr(Box::new(Sink(seen.clone())))
            .unwrap();
        let mut out = String::new();
        child.read_to_string(&mut out).unwrap();
        let done = child.finish().unwrap();
        assert_eq!(out, "out\n");
        assert_eq!(done.stderr, b"warn\n");
        assert_eq!(*seen.lock().unwrap(), b"warn\n");
    }

    #[test]
    fn stdin_bytes_reach_the_child() {
        let out = Cmd::new("cat").stdin_bytes(b"abc".to_vec()).run().unwrap();
        assert_eq!(out.stdout, b"abc");
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        let weird = "it's a \"test\" $HOME\n";
        let q = quote(weird);
        let out = Cmd::new("sh")
            .args(["-c", &format!("printf %s {q}")])
            .run()
            .unwrap();
        assert_eq!(out.stdout, weird.as_bytes());
    }
}
