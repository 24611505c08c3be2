//! Fault injection for the crash-safety tests: the process SIGKILLs itself
//! at a named step of a protocol that must survive a crash.
//!
//! Always compiled in, inert unless `STRATA_FAULT_KILL_AT` names a step (the
//! runner and the test harness clear `STRATA_*` variables, so a production run
//! never sees it). Steps of the rbd image backup, in protocol order (see
//! [`crate::sources::rbd::image`]):
//!
//! | step | where |
//! | --- | --- |
//! | `snapshot-created` | right after `rbd snap create` of the new snapshot |
//! | `export` | during `rbd export-diff`, once part of the diff is on disk |
//! | `pending-written` | the `.pending` diff complete, nothing applied |
//! | `apply` | during the apply, about half of the diff written into the image |
//! | `applied` | the image equals the new snapshot, xattrs not yet updated |
//! | `before-old-snapshot-delete` | `user.rbd.snapshot` names the new snapshot, the old RBD snapshot still exists |
//! | `full-fetch` | during a first (full) fetch, part of the image written |
//!
//! Of a coda volume's backup (see [`crate::sources::coda`]):
//!
//! | step | where |
//! | --- | --- |
//! | `coda-stage` | while the dump streams into the stage, 64 KiB received |
//! | `coda-committed` | the stage committed, nothing of the stored copy changed |
//! | `coda-apply` | during the apply, about half the entries applied |
//! | `coda-applied` | the stored copy updated, the stage not yet removed |
//!
//! Of a github repository's backup ([`crate::sources::github`]):
//! `github-cloned` (a first clone complete under its temporary name, not
//! renamed into place), `github-issues-written` (every issue file written,
//! the listing's ETags not yet recorded), `github-asset-downloaded` (a
//! release asset whole in its temporary file, the stored copy not updated).
//!
//! And of an archive upload to the `local` archiver
//! ([`crate::archive::archivers`]): `archive-upload`, the archive's bytes
//! in the store under a temporary name, not yet renamed into place.
//! And of a resumable upload to the `googledrive` archiver:
//! `googledrive-chunk`, right after Drive acknowledged a chunk (the session
//! URL and the archive's bytes kept under the spool, the file not yet made).
//! Of the `aws` archiver: `aws-part-uploaded` (after each part of an upload in
//! parts), `aws-archive-uploaded` (the archive in the vault, its catalogue
//! item not yet written), `aws-range-retrieved` (a retrieved range written
//! and recorded); of `archive migrate`: `migrate-copied` (an archive copied
//! and checked, its local copy removed).
//!
//! SIGKILL, not `exit`: no destructor, no buffered write, no cleanup runs, as
//! after a power cut of the process (the kernel still has what was written).

use std::io::Read;

/// The environment variable naming the step at which to die.
pub const FAULT_ENV: &str = "STRATA_FAULT_KILL_AT";

fn armed(step: &str) -> bool {
    std::env::var_os(FAULT_ENV).is_some_and(|v| v == step)
}

fn die(step: &str) -> ! {
    eprintln!("strata: fault injection: SIGKILL at step `{step}` ({FAULT_ENV})");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    // why: SIGKILL cannot be caught; this is only reached if kill(2) itself failed
    std::process::abort()
}

/// Die here if `STRATA_FAULT_KILL_AT` names `step`.
pub fn point(step: &str) {
    if armed(step) {
        die(step);
    }
}

/// A reader that dies at `step` once `after` bytes have been read through it
/// (on the read after the one that crossed the mark, so that what was read
/// has been acted on). Inert, and free, when the step is not armed.
pub struct FaultReader<R> {
    inner: R,
    step: &'static str,
    armed: bool,
    after: u64,
    read: u64,
}

impl<R> FaultReader<R> {
    pub fn new(inner: R, step: &'static str, after: u64) -> Self {
        FaultReader {
            inner,
            step,
            armed: armed(step),
            after,
            read: 0,
        }
    }
}

impl<R: Read> Read for FaultReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.armed && self.read >= self.after {
            die(self.step);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}
