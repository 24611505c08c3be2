//! Starting the kernel's writeback of a file early, so that the disk works
//! while strata still produces the file and the one `fsync`/`fdatasync` at
//! the end waits only for the rest (an rbd image being applied). Only a
//! hint: durability still rests on that final sync alone. A leaf: it
//! imports nothing of ours. (Archive packing does not use it: the spool is
//! scratch, never synced; the store makes an archive durable.)
//!
//! This module holds the crate's one `unsafe` block.

use std::fs::File;

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
