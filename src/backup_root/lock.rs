//! Locks held by a value: one `run` per backup root, one `archive run` per
//! profile, one backup of a unit at a time (whoever starts it), one
//! `archive unit` of a unit per profile.
//!
//! A lock is a file held with `flock` for the life of a [`PidLock`]; it holds
//! the holder's PID. The kernel drops the flock when the holder dies, so a
//! lock left by a killed process is taken over, and the taker learns the dead
//! holder's PID ([`PidLock::taken_over_from`]) to warn about it and to clean
//! up after it. `flock` also holds between the clients of one `CephFS`.

use crate::config::UnitPath;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is in progress (PID {pid}, lock {})", path.display())]
    Held {
        what: String,
        pid: String,
        path: PathBuf,
    },
    #[error("cannot use the lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; [`PidLock::close`] releases it cleanly.
pub struct PidLock {
    lock: Option<Flock<File>>,
    path: PathBuf,
    /// PID of a previous holder that died without releasing (warn about it).
    pub taken_over_from: Option<String>,
}

impl PidLock {
    /// The run lock of a backup root: `<state_dir>/run.lock`.
    pub fn run(state_dir: &Path) -> Result<PidLock, LockError> {
        let path = state_dir.join("run.lock");
        let lock = PidLock::acquire(&path, "another strata run")?;
        // why: once per run, so that after a power loss the next run still
        // learns that this one did not finish (and warns)
        if let Some(l) = &lock.lock {
            l.sync_all()
                .map_err(|source| LockError::Io { path, source })?;
        }
        Ok(lock)
    }

    /// Deltaic's lock `<root>/.lock/<name>` (`backup` for a run, `archive`
    /// for an archive run), held beside strata's own, so that a Deltaic cron
    /// job left installed during a migration never runs at the same time.
    pub fn deltaic(root: &Path, name: &str) -> Result<PidLock, LockError> {
        PidLock::acquire(
            &root.join(".lock").join(name),
            &format!("a Deltaic or strata `{name}` job (Deltaic's lock)"),
        )
    }

    /// The lock of `strata prune` (not of a dry run): `<state_dir>/prune.lock`,
    /// so that cron's prune and one typed by hand do not remove the same
    /// snapshots side by side.
    pub fn prune(state_dir: &Path) -> Result<PidLock, LockError> {
        PidLock::acquire(&state_dir.join("prune.lock"), "another strata prune")
    }

    /// The lock every backup of `unit` holds for its whole duration, whether
    /// `run` started it or a person did: `<state_dir>/unit-locks/<unit>.lock`.
    pub fn unit(state_dir: &Path, unit: &UnitPath) -> Result<PidLock, LockError> {
        let path = state_dir
            .join("unit-locks")
            .join(format!("{}.lock", unit.as_str()));
        PidLock::acquire(&path, &format!("a backup of {unit}"))
    }

    /// The lock of `archive unit` for one unit of one profile.
    pub fn archive_unit(
        state_dir: &Path,
        profile: &str,
        unit: &UnitPath,
    ) -> Result<PidLock, LockError> {
        let path = state_dir
            .join("archive-locks")
            .join(profile)
            .join(format!("{}.lock", unit.as_str()));
        PidLock::acquire(&path, &format!("archiving {unit} (profile {profile})"))
    }

    /// Take the lock at `path` (its directory is created), or fail naming
    /// the PID that holds it; `what` names the holder's work in that message.
    pub fn acquire(path: &Path, what: &str) -> Result<PidLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
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
                return Err(LockError::Held {
                    what: what.to_owned(),
                    pid,
                    path: path.to_owned(),
                });
            }
        };
        let mut previous = String::new();
        lock.read_to_string(&mut previous).map_err(io)?;
        let previous = previous.trim().to_owned();
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        // why: not synced (but for the run lock): the flock is the lock, and
        // after a machine crash no holder is left to find by its PID; a
        // unit's backup would otherwise pay an fsync for a message
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(PidLock {
            lock: Some(lock),
            path: path.to_owned(),
            taken_over_from: (!previous.is_empty()).then_some(previous),
        })
    }

    /// A claim on one piece of shared work (a unit of a run shared by
    /// several appliances): the lock at `path`, unless another process, on
    /// any client of the file system, holds it, or `done` exists (looked at
    /// while holding the lock, so work is never done twice).
    #[must_use]
    pub fn claim(path: &Path, what: &str, done: &Path) -> Option<PidLock> {
        let lock = PidLock::acquire(path, what).ok()?;
        if done.exists() {
            let _ = lock.close();
            return None;
        }
        Some(lock)
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

/// An election by exclusive create: `Ok(None)` when this call made `path`
/// (holding `me`): the election is won, once among every process and
/// client; `Ok(Some(winner))` when it existed already.
pub fn elect(path: &Path, me: &str) -> std::io::Result<Option<String>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut f) => {
            writeln!(f, "{me}")?;
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Some(
            std::fs::read_to_string(path)
                .map_or_else(|_| "another appliance".to_owned(), |s| s.trim().to_owned()),
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid_and_a_dead_holder_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let first = PidLock::run(d.path()).unwrap();
        assert!(first.taken_over_from.is_none());
        let err = PidLock::run(d.path()).err().unwrap();
        assert!(
            err.to_string().contains(&format!(
                "another strata run is in progress (PID {}",
                std::process::id()
            )),
            "{err}"
        );
        first.close().unwrap();
        let again = PidLock::run(d.path()).unwrap();
        assert!(
            again.taken_over_from.is_none(),
            "a clean release leaves nothing to take over"
        );
        // A holder that died: its PID stays in the file, its flock is gone.
        drop(again);
        let taken = PidLock::run(d.path()).unwrap();
        assert_eq!(taken.taken_over_from, Some(std::process::id().to_string()));
    }

    #[test]
    fn unit_locks_are_per_unit_and_name_the_unit() {
        let d = tempfile::tempdir().unwrap();
        let a = UnitPath::parse("dump/a").unwrap();
        let b = UnitPath::parse("github/org/repo").unwrap();
        let held = PidLock::unit(d.path(), &a).unwrap();
        let other = PidLock::unit(d.path(), &b).unwrap();
        let err = PidLock::unit(d.path(), &a).err().unwrap().to_string();
        assert!(err.contains("a backup of dump/a is in progress"), "{err}");
        // The archive lock of the same unit is another lock.
        let arch = PidLock::archive_unit(d.path(), "default", &a).unwrap();
        held.close().unwrap();
        other.close().unwrap();
        arch.close().unwrap();
    }
}
