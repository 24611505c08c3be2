//! The retrieval rate limit, shared by every retrieve process of a profile.
//!
//! State: `<spool>/.retrieve-rate-<profile>`, holding one number, the Unix
//! time (seconds, fractional) at which the shared budget is next free. A
//! process that wants `n` bytes takes an `flock` on the file, reads `t`,
//! books `[max(t, now), max(t, now) + n/rate)`, writes the end back, unlocks,
//! and sleeps until its booking ends, then moves the bytes. Bookings never overlap, so all
//! processes together move at most `rate` bytes per second. A crashed process leaves at most one chunk booked and unused.
//! A missing or unreadable file counts as "free now".

use super::ArchiveError;
use nix::fcntl::{Flock, FlockArg};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A shared limit of `bytes_per_sec`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    state: PathBuf,
    bytes_per_sec: f64,
}

/// Next booking start after `prev_end` for `n` bytes at `rate` B/s, now being
/// `now`: returns (start, end). Pure, for tests.
#[must_use]
pub fn book(prev_end: f64, now: f64, n: u64, rate: f64) -> (f64, f64) {
    let start = prev_end.max(now);
    #[allow(clippy::cast_precision_loss)] // why: byte counts far below 2^52
    let end = start + n as f64 / rate;
    (start, end)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl RateLimit {
    #[must_use]
    pub fn new(spool: &Path, profile: &str, bytes_per_sec: f64) -> RateLimit {
        RateLimit {
            state: spool.join(format!(".retrieve-rate-{profile}")),
            bytes_per_sec,
        }
    }

    /// How many bytes to ask for at a time: a quarter second's worth, between
    /// 4 KiB and 4 MiB.
    #[must_use]
    pub fn chunk(&self) -> usize {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // why: clamped
        let c = (self.bytes_per_sec / 4.0).clamp(4096.0, 4.0 * 1024.0 * 1024.0) as usize;
        c
    }

    /// Wait until `n` bytes may be moved.
    pub fn acquire(&self, n: u64) -> Result<(), ArchiveError> {
        let io = ArchiveError::io(&self.state);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.state)
            .map_err(ArchiveError::io(&self.state))?;
        let mut lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| io(std::io::Error::from(e)))?;
        let mut text = String::new();
        let _ = lock.read_to_string(&mut text);
        let prev: f64 = text.trim().parse().unwrap_or(0.0);
        let t = now();
        // why: a stale booking far in the past must not grant a burst, nor one absurdly far ahead stall forever
        let prev = if prev > t + 3600.0 { t } else { prev };
        let (start, end) = book(prev, t, n, self.bytes_per_sec);
        let write = |lock: &mut Flock<std::fs::File>| -> std::io::Result<()> {
            lock.seek(SeekFrom::Start(0))?;
            lock.set_len(0)?;
            lock.write_all(format!("{end:.6}").as_bytes())
        };
        write(&mut lock).map_err(ArchiveError::io(&self.state))?;
        drop(lock);
        let _ = start;
        // why: waiting for the booking's end, not its start, keeps every process under the rate even over one chunk
        let wait = end - now();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_queue_behind_each_other() {
        assert_eq!(book(0.0, 100.0, 50, 10.0), (100.0, 105.0));
        assert_eq!(book(105.0, 101.0, 10, 10.0), (105.0, 106.0));
    }
}
