//! Starting the kernel's writeback of a file early, so that the disk works
//! while strata still produces the file and the one `fsync`/`fdatasync` at
//! the end waits only for the rest (an rbd image being applied; an archive
//! being packed into the spool, which the local archiver then syncs in its
//! store). Only a hint: durability still rests on that final sync alone. A
//! leaf: it imports nothing of ours.
//!
//! This module holds the crate's one `unsafe` block.

use std::fs::File;
use std::io::Write;

/// Bytes written between two starts of writeback.
pub const STEP: u64 = 32 << 20;

/// Asks the kernel to start writing the file's dirty pages now, without
/// waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)` over the
/// whole file).
#[allow(unsafe_code)]
pub fn start(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range takes no pointers; any fd, offset and length
    // are valid inputs (a bad one is an error return, which is ignored:
    // this is only a hint).
    let _ = unsafe {
        nix::libc::sync_file_range(file.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// A file written front to back that starts its writeback every [`STEP`]
/// bytes.
pub struct StepWriter {
    file: File,
    unsent: u64,
}

impl StepWriter {
    #[must_use]
    pub fn new(file: File) -> StepWriter {
        StepWriter { file, unsent: 0 }
    }

    /// The file, for its final sync.
    #[must_use]
    pub fn into_file(self) -> File {
        self.file
    }
}

impl Write for StepWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsent += n as u64;
        if self.unsent >= STEP {
            self.unsent = 0;
            start(&self.file);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_writer_writes_what_it_is_given() {
        let f = tempfile::tempfile().unwrap();
        let mut w = StepWriter::new(f.try_clone().unwrap());
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..40 {
            w.write_all(&chunk).unwrap();
        }
        let f = w.into_file();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 40 << 20);
    }
}
