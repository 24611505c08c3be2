//! Scrub of a stored image file against the raw image it should equal (a
//! stream of `rbd export POOL/IMAGE@SNAP -`).
//!
//! Owns: comparing block by block and repairing in place. Only blocks that
//! differ are rewritten (DESIGN §2); a block that must be zero is punched
//! (or, where the filesystem cannot punch, written with zeros); each repaired
//! range of consecutive blocks is handed to the caller to log; the file is
//! resized to the stream's length if it differs, and `fsync`ed.
//!
//! Memory is bounded by two [`CHUNK`] buffers whatever the image size.
//!
//! Crash contract: a scrub writes only bytes the snapshot holds, so a crash
//! midway leaves a file that is no further from the snapshot than before;
//! the next scrub finishes the repair.

use super::apply::{BLOCK, CHUNK};
use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a scrub found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStats {
    /// Bytes of the snapshot compared (its size).
    pub compared: u64,
    /// Ranges of consecutive differing blocks repaired.
    pub ranges: u64,
    /// Bytes in those ranges.
    pub bytes_repaired: u64,
    /// The file's length differed from the snapshot's and was corrected.
    pub resized: Option<(u64, u64)>,
}

impl ScrubStats {
    /// Differences found (ranges, and a wrong length counts as one).
    #[must_use]
    pub fn repairs(&self) -> u64 {
        self.ranges + u64::from(self.resized.is_some())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("reading the exported image at byte {offset}")]
    Source {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("{} at byte {offset}", path.display())]
    File {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

/// Compare `path` with the raw image `src` and repair it; `repaired(offset,
/// len)` is called once per repaired range, in order.
///
/// # Errors
/// Reading the stream, or reading/writing the file.
pub fn scrub_file<R: Read>(
    mut src: R,
    path: &Path,
    mut repaired: impl FnMut(u64, u64),
) -> Result<ScrubStats, ScrubError> {
    let file_err = |offset: u64| {
        move |source| ScrubError::File {
            path: path.to_owned(),
            offset,
            source,
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(file_err(0))?;
    let old_len = file.metadata().map_err(file_err(0))?.len();
    let mut new = vec![0u8; CHUNK];
    let mut old = vec![0u8; CHUNK];
    let mut stats = ScrubStats::default();
    let mut open: Option<(u64, u64)> = None;
    let mut holes = true;
    let mut offset = 0u64;
    loop {
        let n = fill(&mut src, &mut new).map_err(|source| ScrubError::Source { offset, source })?;
        if n == 0 {
            break;
        }
        read_old(&file, &mut old[..n], offset).map_err(file_err(offset))?;
        for start in (0..n).step_by(BLOCK) {
            let end = (start + BLOCK).min(n);
            let at = offset + start as u64;
            if new[start..end] == old[start..end] {
                if let Some((s, e)) = open.take() {
                    close_range(&mut stats, &mut repaired, s, e);
                }
                continue;
            }
            let block = &new[start..end];
            let zero = block.iter().all(|&b| b == 0);
            if zero && holes && end - start == BLOCK {
                holes = punch(&file, at, BLOCK as u64).map_err(file_err(at))?;
            }
            if !zero || !holes || end - start != BLOCK {
                file.write_all_at(block, at).map_err(file_err(at))?;
            }
            open = match open {
                Some((s, _)) => Some((s, at + block.len() as u64)),
                None => Some((at, at + block.len() as u64)),
            };
        }
        offset += n as u64;
    }
    if let Some((s, e)) = open.take() {
        close_range(&mut stats, &mut repaired, s, e);
    }
    stats.compared = offset;
    let len_now = file.metadata().map_err(file_err(offset))?.len();
    if len_now != offset {
        file.set_len(offset).map_err(file_err(offset))?;
        stats.resized = Some((old_len, offset));
    }
    file.sync_data().map_err(file_err(offset))?;
    Ok(stats)
}

fn close_range(stats: &mut ScrubStats, repaired: &mut impl FnMut(u64, u64), s: u64, e: u64) {
    stats.ranges += 1;
    stats.bytes_repaired += e - s;
    repaired(s, e - s);
}

/// Read until `buf` is full or the stream ends.
fn fill<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read the file at `offset`; bytes past its end read as zeros (what they
/// will be once the file is extended to the snapshot's size).
fn read_old(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[got..].fill(0);
    Ok(())
}

/// Punch a hole; `Ok(false)` when the filesystem cannot (nothing was done).
fn punch(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    let start = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match fallocate(
        file,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        start,
        len,
    ) {
        Ok(()) => Ok(true),
        Err(Errno::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[test]
    fn identical_file_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        let data = image(3 * CHUNK + 100);
        std::fs::write(&p, &data).unwrap();
        let mut seen = vec![];
        let s = scrub_file(&data[..], &p, |o, l| seen.push((o, l))).unwrap();
        assert_eq!(s.repairs(), 0);
        assert!(seen.is_empty());
        assert_eq!(s.compared, data.len() as u64);
    }

    #[test]
    fn flipped_bytes_are_repaired_and_reported_as_ranges() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        let data = image(2 * CHUNK);
        let mut bad = data.clone();
        bad[5] ^= 1;
        bad[CHUNK - 1] ^= 0x80; // last block of the first chunk ...
        bad[CHUNK] ^= 0x80; // ... and the first of the next: one range
        std::fs::write(&p, &bad).unwrap();
        let mut seen = vec![];
        let s = scrub_file(&data[..], &p, |o, l| seen.push((o, l))).unwrap();
        assert_eq!(
            seen,
            vec![
                (0, BLOCK as u64),
                ((CHUNK - BLOCK) as u64, 2 * BLOCK as u64)
            ]
        );
        assert_eq!(s.ranges, 2);
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }

    #[test]
    fn zero_blocks_become_holes_and_length_is_fixed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        let mut data = vec![0u8; 4 * CHUNK];
        data[CHUNK..CHUNK + 10].copy_from_slice(b"0123456789");
        std::fs::write(&p, vec![0xffu8; 5 * CHUNK]).unwrap();
        let s = scrub_file(&data[..], &p, |_, _| {}).unwrap();
        assert_eq!(s.resized, Some((5 * CHUNK as u64, 4 * CHUNK as u64)));
        assert_eq!(std::fs::read(&p).unwrap(), data);
        let allocated = std::fs::metadata(&p).unwrap().blocks() * 512;
        assert!(allocated <= 64 * 1024, "{allocated} bytes allocated");
    }

    #[test]
    fn a_short_file_is_extended() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        let data = image(CHUNK + 3 * BLOCK + 7);
        std::fs::write(&p, &data[..BLOCK]).unwrap();
        scrub_file(&data[..], &p, |_, _| {}).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }
}
