//! The run lock: one `run` at a time per backup root.
//!
//! `<root>/.strata/run.lock` is held with `flock` for the life of a
//! [`RunLock`] and holds the holder's PID. The kernel drops the flock when the
//! holder dies, so a lock left by a killed run is taken over (with a warning,
//! because that run did not finish).

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another strata run is in progress (PID {pid}, lock {})", path.display())]
    Held { pid: String, path: PathBuf },
    #[error("cannot use the run lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the duration of a run; [`RunLock::close`] releases it.
pub struct RunLock {
    lock: Option<Flock<File>>,
    path: PathBuf,
    /// PID of a previous holder that died without releasing (warn about it).
    pub taken_over_from: Option<String>,
}

impl RunLock {
    /// Take the lock, or fail naming the PID that holds it.
    pub fn acquire(state_dir: &Path) -> Result<RunLock, LockError> {
        let path = state_dir.join("run.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = if pid.trim().is_empty() {
                    "unknown".to_owned()
                } else {
                    pid.trim().to_owned()
                };
                return Err(LockError::Held { pid, path });
            }
        };
        let mut previous = String::new();
        lock.read_to_string(&mut previous).map_err(io)?;
        let previous = previous.trim().to_owned();
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        lock.sync_all().map_err(io)?;
        Ok(RunLock {
            lock: Some(lock),
            path,
            taken_over_from: (!previous.is_empty()).then_some(previous),
        })
    }

    /// Release: empty the file (a clean end) and drop the flock.
    pub fn close(mut self) -> Result<(), LockError> {
        if let Some(lock) = self.lock.take() {
            lock.set_len(0).map_err(|source| LockError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid_and_a_dead_holder_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(d.path()).unwrap();
        assert!(first.taken_over_from.is_none());
        let err = RunLock::acquire(d.path()).err().unwrap();
        assert!(
            err.to_string()
                .contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        first.close().unwrap();
        let again = RunLock::acquire(d.path()).unwrap();
        assert!(
            again.taken_over_from.is_none(),
            "a clean release leaves nothing to take over"
        );
        // A holder that died: its PID stays in the file, its flock is gone.
        drop(again);
        let taken = RunLock::acquire(d.path()).unwrap();
        assert_eq!(taken.taken_over_from, Some(std::process::id().to_string()));
    }
}
