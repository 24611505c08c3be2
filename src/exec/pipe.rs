//! Streaming children: read a child's stdout, or write a child's stdin, while
//! its stderr drains on a thread; the exit status is judged on `finish`.

use super::{Cmd, ExecError};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout};
use std::thread::JoinHandle;

/// A streaming child that ended with an accepted exit code.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    /// Everything it printed on stderr (warnings worth logging).
    pub stderr: Vec<u8>,
}

/// What both kinds of streaming child hold: the command, the process, and
/// the thread draining its stderr (`None` once judged).
struct Running {
    cmd: Cmd,
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Running {
    /// Wait for the child (its stream already closed by the caller) and
    /// judge its exit status with the command's accepted codes.
    fn finish(&mut self) -> Result<Finished, ExecError> {
        let status = self.child.wait().map_err(|source| ExecError::Io {
            argv: self.cmd.display(),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let code = self.cmd.check(status, &stderr)?;
        Ok(Finished { code, stderr })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // why: last resort; a stream dropped without finish() must not leave a zombie
        if self.stderr.is_some() {
            self.kill();
        }
    }
}

/// Ask for a pipe buffer of `bytes` (`F_SETPIPE_SZ`); a hint, so a refusal
/// (over `/proc/sys/fs/pipe-max-size`, or not a pipe) is ignored.
pub fn grow_pipe(pipe: &impl std::os::fd::AsFd, bytes: i32) {
    let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(bytes));
}

/// A running command whose stdout is read as a stream.
pub struct ChildReader {
    run: Running,
    stdout: Option<ChildStdout>,
}

impl ChildReader {
    pub(super) fn new(
        cmd: Cmd,
        child: Child,
        stdout: ChildStdout,
        stderr: JoinHandle<Vec<u8>>,
    ) -> Self {
        ChildReader {
            run: Running {
                cmd,
                child,
                stderr: Some(stderr),
            },
            stdout: Some(stdout),
        }
    }

    /// Ask for a pipe buffer of `bytes` on stdout (a hint: fewer, larger
    /// transfers between the child and us; ignored where refused).
    pub fn grow_pipe(&self, bytes: i32) {
        if let Some(out) = &self.stdout {
            grow_pipe(out, bytes);
        }
    }

    /// Take the stdout pipe (e.g. to hand it to the next process of a pipeline).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Close our end of stdout, wait for the child, and judge its exit status.
    pub fn finish(mut self) -> Result<Finished, ExecError> {
        drop(self.stdout.take());
        self.run.finish()
    }

    /// Kill the child (used when the reader gives up on the stream).
    pub fn kill(mut self) {
        drop(self.stdout.take());
        self.run.kill();
    }
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stdout {
            Some(out) => out.read(buf),
            None => Ok(0),
        }
    }
}

/// A running command whose stdin is written as a stream.
pub struct ChildWriter {
    run: Running,
    stdin: Option<ChildStdin>,
}

impl ChildWriter {
    pub(super) fn new(
        cmd: Cmd,
        child: Child,
        stdin: ChildStdin,
        stderr: JoinHandle<Vec<u8>>,
    ) -> Self {
        ChildWriter {
            run: Running {
                cmd,
                child,
                stderr: Some(stderr),
            },
            stdin: Some(stdin),
        }
    }

    /// Ask for a pipe buffer of `bytes` on stdin (a hint, as
    /// [`ChildReader::grow_pipe`]).
    pub fn grow_pipe(&self, bytes: i32) {
        if let Some(i) = &self.stdin {
            grow_pipe(i, bytes);
        }
    }

    /// Close stdin, wait for the child, and judge its exit status.
    pub fn finish(mut self) -> Result<Finished, ExecError> {
        drop(self.stdin.take());
        self.run.finish()
    }
}

impl Write for ChildWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.stdin {
            Some(i) => i.write(buf),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(i) => i.flush(),
            None => Ok(()),
        }
    }
}
