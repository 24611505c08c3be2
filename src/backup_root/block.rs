//! Block-level update of a stored file from new content.
//!
//! The new content is compared with the stored file block by block; only the
//! blocks that differ are written, blocks of zeros become holes, and the file
//! is truncated or extended to the new length. Memory use is two blocks,
//! whatever the size of the file.
//!
//! The update is in place, so it is not atomic by itself. Callers that must
//! survive a crash (dump) first land the new content in a complete temporary
//! file, mark the stored file with [`super::xattrs::STRATA_PENDING_SHA256`],
//! update, then clear the mark: an interrupted update is found and redone.

use nix::fcntl::{FallocateFlags, fallocate};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Block size of comparisons: a multiple of every filesystem block size in use.
pub const BLOCK: usize = 64 * 1024;

/// What an update did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UpdateStats {
    /// Length of the new content.
    pub size: u64,
    /// Bytes written because they differed.
    pub bytes_written: u64,
    /// Bytes turned into holes because the new content is zeros there.
    pub bytes_punched: u64,
    /// Blocks that differed.
    pub blocks_changed: u64,
    /// Whether the length changed.
    pub resized: bool,
}

impl UpdateStats {
    /// Nothing about the stored file changed.
    #[must_use]
    pub fn unchanged(&self) -> bool {
        self.blocks_changed == 0 && !self.resized
    }
}

/// Updates one stored file from a stream of new content.
pub struct BlockUpdate;

impl BlockUpdate {
    /// Make the file at `dest` (created if missing) equal to everything `src`
    /// yields, writing only differing blocks; fsyncs `dest` at the end.
    pub fn apply(dest: &Path, mut src: impl Read) -> std::io::Result<UpdateStats> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dest)?;
        let old_len = file.metadata()?.len();
        let mut stats = UpdateStats::default();
        let mut new = vec![0u8; BLOCK];
        let mut old = vec![0u8; BLOCK];
        let mut offset: u64 = 0;
        loop {
            let n = read_full(&mut src, &mut new)?;
            if n == 0 {
                break;
            }
            let new_block = &new[..n];
            let old_block = &mut old[..n];
            let have = if offset < old_len {
                read_at_full(&file, old_block, offset)?
            } else {
                0
            };
            old_block[have..].fill(0);
            // why: beyond the old end the file reads as zeros once extended; a hole costs nothing
            if new_block != old_block {
                stats.blocks_changed += 1;
                if new_block.iter().all(|&b| b == 0) {
                    punch(&file, offset, n as u64, old_len)?;
                    stats.bytes_punched += n as u64;
                } else {
                    file.write_all_at(new_block, offset)?;
                    stats.bytes_written += n as u64;
                }
            }
            offset += n as u64;
            if n < BLOCK {
                break;
            }
        }
        stats.size = offset;
        if offset != file.metadata()?.len() || offset != old_len {
            file.set_len(offset)?;
        }
        stats.resized = offset != old_len;
        file.sync_all()?;
        Ok(stats)
    }
}

/// Turn `[offset, offset+len)` into a hole (within the old length; past it the
/// range is a hole already once the file is extended).
fn punch(file: &File, offset: u64, len: u64, old_len: u64) -> std::io::Result<()> {
    if offset >= old_len {
        return Ok(());
    }
    let len = len.min(old_len - offset);
    let (Ok(off), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "offset too large",
        ));
    };
    match fallocate(
        file,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        off,
        l,
    ) {
        Ok(()) => Ok(()),
        // why: a filesystem without hole punching still gets correct content
        Err(nix::errno::Errno::EOPNOTSUPP) => {
            file.write_all_at(&vec![0u8; usize::try_from(len).unwrap_or(0)], offset)
        }
        Err(e) => Err(e.into()),
    }
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
pub fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_at_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn update(dest: &Path, data: &[u8]) -> UpdateStats {
        BlockUpdate::apply(dest, data).unwrap()
    }

    #[test]
    fn only_differing_blocks_are_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut data: Vec<u8> = (0..BLOCK * 10)
            .map(|i| u8::try_from(i % 251).unwrap() + 1)
            .collect();
        let s = update(&p, &data);
        assert_eq!(s.bytes_written, data.len() as u64);
        assert_eq!(std::fs::read(&p).unwrap(), data);

        let s = update(&p, &data);
        assert!(s.unchanged(), "{s:?}");
        assert_eq!(s.bytes_written, 0);

        data[BLOCK * 3 + 17] ^= 0xff;
        data[BLOCK * 7] ^= 0xff;
        let s = update(&p, &data);
        assert_eq!(s.blocks_changed, 2);
        assert_eq!(s.bytes_written, 2 * BLOCK as u64);
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }

    #[test]
    fn shrinking_growing_and_zero_blocks_become_holes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut data = vec![7u8; BLOCK * 64];
        update(&p, &data);
        // Zero most of it: those blocks are punched, not written.
        data[BLOCK..BLOCK * 63].fill(0);
        let s = update(&p, &data);
        assert_eq!(s.bytes_written, 0);
        assert_eq!(s.bytes_punched, 62 * BLOCK as u64);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        let blocks = std::fs::metadata(&p).unwrap().blocks() * 512;
        assert!(
            blocks <= 4 * BLOCK as u64,
            "allocated {blocks} bytes: holes were not kept"
        );
        // Shrink to an odd size, then grow with a zero tail.
        let short = &data[..BLOCK + 5];
        let s = update(&p, short);
        assert!(s.resized);
        assert_eq!(std::fs::read(&p).unwrap(), short);
        let mut long = short.to_vec();
        long.extend(std::iter::repeat_n(0u8, BLOCK * 3));
        update(&p, &long);
        assert_eq!(std::fs::read(&p).unwrap(), long);
        update(&p, &[]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn a_new_file_of_zeros_is_sparse() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut data = vec![0u8; BLOCK * 32];
        data[5] = 1;
        update(&p, &data);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert!(std::fs::metadata(&p).unwrap().blocks() * 512 <= 2 * BLOCK as u64);
    }
}
