//! Applying an `rbd export-diff` stream onto the sparse image file of a unit
//! (`rbd/<pool>/images/<name>`): `s` resizes, `w` writes, `z` punches holes.
//!
//! What it owns: the bytes of one image file, from open to `fsync`. It does
//! not own the stream format ([`super::diff`]), the xattrs
//! (`user.rbd.snapshot`, `user.rbd.pending-snapshot`) or the `.pending` diff
//! file: the backup code around it does.
//!
//! Invariants:
//! - **Only differing blocks are written** (DESIGN §2: a block rewritten
//!   without need is stored twice in the thin pool). Data is compared with
//!   what the file holds in [`BLOCK`]-sized blocks aligned to the image; a
//!   block is written only if it differs; a block that must become zero is
//!   punched (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`) only if it is not
//!   already zero, and written with zeros if it is a partial block at an
//!   unaligned edge.
//! - **Holes stay holes**: Ceph's first full export carries every allocated
//!   4 MiB object in full, zeros included; zero blocks of `w` data never
//!   allocate space. `z` ranges already without data (`SEEK_DATA`) are left
//!   alone.
//! - **Memory is bounded** by two [`CHUNK`] buffers and the parser's read
//!   buffer, whatever the image or diff size.
//! - On a filesystem without hole punching the applier falls back to writing
//!   zeros (still only over non-zero blocks): correct, not sparse.
//!
//! Speed: a chunk whose range holds no data in the file (`SEEK_DATA`; a new
//! image, a region never written) is not read back: a hole reads as zeros,
//! so only its non-zero blocks are written, in runs. Writeback is started
//! every [`WRITEBACK_STEP`] bytes written (`sync_file_range`, not waited
//! for), so that the disk works while the diff is applied.
//!
//! Crash contract: the applier writes in place, record by record, and
//! `fsync`s (`sync_data`) once at the end; [`ApplyStats`] is returned only
//! after that. Every record is absolute (it says what bytes are, not how they
//! change), so applying a diff again after a crash at any point, from its
//! start, converges to the same file: the backup code keeps the diff as a
//! `.pending` file until the apply has returned. A stream found corrupt
//! midway leaves the image partially patched, so check a `.pending` file
//! with [`super::diff::validate_diff`] before applying it; a corrupt diff then
//! leaves the image untouched. The header is checked before the image file
//! is opened (or created).
//!
//! The caller checks that the diff starts from the snapshot the image holds
//! (the summary's `from_snap` against `user.rbd.snapshot`); this module
//! applies what it is given.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};
use nix::unistd::{Whence, lseek};
use thiserror::Error;

use super::diff::{DiffError, DiffReader, Record, WriteData};

/// Granularity of comparison, writing and punching.
pub const BLOCK: usize = 4096;
/// Size of each of the two buffers (incoming data, existing data).
pub const CHUNK: usize = 1 << 20;
/// Bytes written between two starts of writeback ([`crate::writeback::start`]).
const WRITEBACK_STEP: u64 = crate::writeback::STEP;

// why: comparing with a static zero block is one memcmp, much faster than a
// byte loop with an early exit.
static ZEROS: [u8; BLOCK] = [0; BLOCK];

/// What one apply did. `bytes_written + bytes_unchanged + bytes_punched` is
/// the total length of the stream's `w` and `z` records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub from_snap: Option<String>,
    pub to_snap: Option<String>,
    /// Size of the image file afterwards.
    pub size: u64,
    /// Records applied (`f`, `t`, `s`, `w`, `z`; the `e` not counted).
    pub records: u64,
    /// Bytes written into the file (differing data, or zeros over non-zero
    /// partial blocks).
    pub bytes_written: u64,
    /// Bytes whose blocks already held what the diff says, left alone.
    pub bytes_unchanged: u64,
    /// Bytes deallocated by punching holes.
    pub bytes_punched: u64,
}

/// Why an apply failed. After any of these the image may be partially
/// patched (except `Diff` from a bad header, and `Open`); applying the whole
/// diff again repairs it.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("invalid rbd diff stream")]
    Diff(#[from] DiffError),
    #[error("opening image file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("resizing image file {} to {size} bytes", path.display())]
    Resize {
        path: PathBuf,
        size: u64,
        #[source]
        source: io::Error,
    },
    #[error("reading image file {} at byte {offset}", path.display())]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("writing image file {} at byte {offset}", path.display())]
    Write {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("punching a hole in image file {} at byte {offset}, {len} bytes", path.display())]
    Punch {
        path: PathBuf,
        offset: u64,
        len: u64,
        #[source]
        source: Errno,
    },
    #[error("syncing image file {}", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Applies the diff stream `reader` to the image file at `image`, creating
/// it if it does not exist, and `fsync`s it. See the module doc for what is
/// written and for the crash contract.
///
/// # Errors
/// [`ApplyError::Diff`] for a malformed stream (the image is then patched up
/// to the bad record), the others for I/O on the image file.
pub fn apply_diff<R: Read>(reader: R, image: &Path) -> Result<ApplyStats, ApplyError> {
    apply_diff_with(reader, image, Holes::Punch)
}

/// [`apply_diff`], starting with the given way of making zero blocks (tests
/// force the fallback a filesystem without hole punching would choose).
fn apply_diff_with<R: Read>(
    reader: R,
    image: &Path,
    holes: Holes,
) -> Result<ApplyStats, ApplyError> {
    // why: a stream that is not a diff at all must not create an empty image.
    let diff = DiffReader::new(reader)?;
    let created = !image.exists();
    let applied = apply_records(diff, image, holes);
    if applied.is_err() && created && image.exists() {
        // why: a file this call created holds nothing worth keeping once the diff failed
        let _ = std::fs::remove_file(image);
    }
    applied
}

/// Open (or create) the image file for writing.
fn open_target(image: &Path, holes: Holes, stats: ApplyStats) -> Result<Target<'_>, ApplyError> {
    let open_err = |source| ApplyError::Open {
        path: image.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(image)
        .map_err(open_err)?;
    let size = file.metadata().map_err(open_err)?.len();
    Ok(Target {
        file,
        path: image,
        size,
        holes,
        stats,
        unsent: 0,
    })
}

/// The records of `diff` onto `image`; the file is opened only at the first
/// `w`/`z` record (or the end), once the leading `f`/`t`/`s` records passed.
fn apply_records<R: Read>(
    mut diff: DiffReader<R>,
    image: &Path,
    holes: Holes,
) -> Result<ApplyStats, ApplyError> {
    let mut stats = ApplyStats::default();
    let mut new_size = None;
    let mut target: Option<Target> = None;
    let mut buffers = Buffers {
        new: vec![0; CHUNK],
        old: vec![0; CHUNK],
    };
    loop {
        let record = diff.next_record()?;
        if let Some(Record::Size(size)) = &record
            && i64::try_from(*size).is_err()
        {
            return Err(ApplyError::Resize {
                path: image.to_owned(),
                size: *size,
                source: io::Error::from(io::ErrorKind::FileTooLarge),
            });
        }
        let t = match (&mut target, &record) {
            (None, Some(Record::FromSnap(_) | Record::ToSnap(_) | Record::Size(_))) => {
                match record {
                    Some(Record::FromSnap(name)) => stats.from_snap = Some(name),
                    Some(Record::ToSnap(name)) => stats.to_snap = Some(name),
                    Some(Record::Size(size)) => new_size = Some(size),
                    _ => {}
                }
                continue;
            }
            (Some(t), _) => t,
            (None, _) => {
                let mut t = open_target(image, holes, std::mem::take(&mut stats))?;
                if let Some(size) = new_size {
                    t.resize(size)?;
                }
                target.insert(t)
            }
        };
        match record {
            None => break,
            Some(Record::FromSnap(name)) => t.stats.from_snap = Some(name),
            Some(Record::ToSnap(name)) => t.stats.to_snap = Some(name),
            Some(Record::Size(size)) => t.resize(size)?,
            Some(Record::Write(mut data)) => t.write_record(&mut data, &mut buffers)?,
            Some(Record::Zero { offset, len }) => {
                t.zero_range(offset, offset + len, &mut buffers)?;
            }
        }
    }
    let mut target = target.expect("the end of the stream opened the file");
    target.file.sync_data().map_err(|source| ApplyError::Sync {
        path: image.to_owned(),
        source,
    })?;
    target.stats.records = diff.records();
    target.stats.size = target.size;
    Ok(target.stats)
}

/// How zero blocks are made: learned from the filesystem on first refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holes {
    Punch,
    WriteZeros,
}

/// What to do with a run of contiguous blocks of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Write,
    Punch,
}

struct Buffers {
    /// Incoming data (or zeros) for the chunk being applied.
    new: Vec<u8>,
    /// What the file holds at the same range.
    old: Vec<u8>,
}

struct Target<'p> {
    file: File,
    path: &'p Path,
    size: u64,
    holes: Holes,
    stats: ApplyStats,
    /// Bytes written since writeback was last started.
    unsent: u64,
}

impl Target<'_> {
    fn resize(&mut self, size: u64) -> Result<(), ApplyError> {
        // why: an unchanged size is the common case; set_len would still
        // touch the inode.
        if size != self.size {
            // Growing leaves a hole; shrinking drops the tail.
            self.file
                .set_len(size)
                .map_err(|source| ApplyError::Resize {
                    path: self.path.to_owned(),
                    size,
                    source,
                })?;
            self.size = size;
        }
        Ok(())
    }

    fn write_record<R: Read>(
        &mut self,
        data: &mut WriteData<'_, R>,
        buffers: &mut Buffers,
    ) -> Result<(), ApplyError> {
        let mut offset = data.offset();
        loop {
            // why: the first chunk stops at a block boundary, so every later
            // chunk starts block-aligned and whole zero blocks can be punched.
            let want = CHUNK - block_offset(offset);
            let n = data.read_chunk(&mut buffers.new[..want])?;
            if n == 0 {
                return Ok(());
            }
            self.apply_chunk(offset, n, buffers)?;
            offset += n as u64;
        }
    }

    /// Makes `[offset, offset + n)` equal `buffers.new[..n]`, touching only
    /// the blocks that differ.
    fn apply_chunk(
        &mut self,
        offset: u64,
        n: usize,
        buffers: &mut Buffers,
    ) -> Result<(), ApplyError> {
        let new = &buffers.new[..n];
        let old = &mut buffers.old[..n];
        let existing = self.read_existing(offset, old)?;
        let old = &*old;
        let mut run: Option<(Action, usize)> = None;
        let mut i = 0;
        while i < n {
            let end = n.min(i + BLOCK - block_offset(offset + i as u64));
            let whole_block = end - i == BLOCK;
            let same = match existing {
                // why: a hole reads as zeros; not reading it back is the
                // point of asking where the data is
                Existing::Hole => is_zero(&new[i..end]),
                Existing::Read => new[i..end] == old[i..end],
            };
            let action = if same {
                Action::Keep
            } else if whole_block && self.holes == Holes::Punch && is_zero(&new[i..end]) {
                Action::Punch
            } else {
                Action::Write
            };
            match run {
                Some((current, _)) if current == action => {}
                Some((current, start)) => {
                    self.carry_out(current, offset + start as u64, &new[start..i])?;
                    run = Some((action, i));
                }
                None => run = Some((action, i)),
            }
            i = end;
        }
        if let Some((action, start)) = run {
            self.carry_out(action, offset + start as u64, &new[start..n])?;
        }
        Ok(())
    }

    /// Carries out `action` over `[offset, offset + data.len())`; `data` is
    /// the new content (all zeros for `Punch`).
    fn carry_out(&mut self, action: Action, offset: u64, data: &[u8]) -> Result<(), ApplyError> {
        let len = data.len() as u64;
        match action {
            Action::Keep => self.stats.bytes_unchanged += len,
            Action::Write => self.write_at(offset, data)?,
            Action::Punch => {
                if self.punch(offset, len)? == Holes::WriteZeros {
                    self.write_at(offset, data)?;
                }
            }
        }
        Ok(())
    }

    /// Makes `[start, end)` read as zeros: partial edge blocks are written
    /// with zeros if not zero already, the aligned interior punched if it
    /// holds any data.
    fn zero_range(
        &mut self,
        start: u64,
        end: u64,
        buffers: &mut Buffers,
    ) -> Result<(), ApplyError> {
        if start == end {
            return Ok(());
        }
        let head_end = end.min(start.next_multiple_of(BLOCK as u64));
        self.zero_partial(start, head_end, buffers)?;
        let tail_start = head_end.max(end - end % BLOCK as u64);
        if tail_start > head_end {
            self.zero_interior(head_end, tail_start, buffers)?;
        }
        self.zero_partial(tail_start, end, buffers)
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "callers pass at most one block"
    )]
    fn zero_partial(
        &mut self,
        start: u64,
        end: u64,
        buffers: &mut Buffers,
    ) -> Result<(), ApplyError> {
        let n = (end - start) as usize;
        if n == 0 {
            return Ok(());
        }
        buffers.new[..n].fill(0);
        self.apply_chunk(start, n, buffers)
    }

    fn zero_interior(
        &mut self,
        start: u64,
        end: u64,
        buffers: &mut Buffers,
    ) -> Result<(), ApplyError> {
        if self.holes == Holes::Punch {
            if !self.has_data(start, end) {
                self.stats.bytes_unchanged += end - start;
                return Ok(());
            }
            if self.punch(start, end - start)? == Holes::Punch {
                return Ok(());
            }
        }
        // Without hole punching: compare and write zeros, chunk by chunk.
        let mut offset = start;
        while offset < end {
            let n = usize::try_from(end - offset).map_or(CHUNK, |r| r.min(CHUNK));
            buffers.new[..n].fill(0);
            self.apply_chunk(offset, n, buffers)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Whether any byte of `[start, end)` is allocated, by `SEEK_DATA`.
    fn has_data(&self, start: u64, end: u64) -> bool {
        self.next_data(start).is_some_and(|data| data < end)
    }

    /// The first allocated byte at or after `at` (`SEEK_DATA`), `None` if
    /// there is none. A filesystem that cannot tell reports `at` itself:
    /// reading a hole back costs time, never correctness.
    fn next_data(&self, at: u64) -> Option<u64> {
        let Ok(pos) = i64::try_from(at) else {
            return Some(at);
        };
        match lseek(&self.file, pos, Whence::SeekData) {
            Ok(data) => Some(u64::try_from(data).unwrap_or(at)),
            // why: ENXIO means no data at or after `at` (or `at` is past the end).
            Err(Errno::ENXIO) => None,
            Err(_) => Some(at),
        }
    }

    /// The first byte of the hole at or after `at` (`SEEK_HOLE`; the end of
    /// the file counts as one), `u64::MAX` if the filesystem cannot tell.
    fn next_hole(&self, at: u64) -> u64 {
        i64::try_from(at)
            .ok()
            .and_then(|pos| lseek(&self.file, pos, Whence::SeekHole).ok())
            .and_then(|hole| u64::try_from(hole).ok())
            .unwrap_or(u64::MAX)
    }

    /// Punches `[offset, offset + len)`, or reports (and remembers) that the
    /// filesystem cannot, in which case nothing was done.
    fn punch(&mut self, offset: u64, len: u64) -> Result<Holes, ApplyError> {
        let punch_error = |source| ApplyError::Punch {
            path: self.path.to_owned(),
            offset,
            len,
            source,
        };
        let start = i64::try_from(offset).map_err(|_| punch_error(Errno::EFBIG))?;
        let length = i64::try_from(len).map_err(|_| punch_error(Errno::EFBIG))?;
        match fallocate(
            &self.file,
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            start,
            length,
        ) {
            Ok(()) => {
                self.stats.bytes_punched += len;
                Ok(Holes::Punch)
            }
            // why: e.g. an NFS or FUSE backup root; zeros written instead
            // keep the image correct, only not sparse.
            Err(Errno::EOPNOTSUPP) => {
                self.holes = Holes::WriteZeros;
                Ok(Holes::WriteZeros)
            }
            Err(source) => Err(punch_error(source)),
        }
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), ApplyError> {
        self.file
            .write_all_at(data, offset)
            .map_err(|source| ApplyError::Write {
                path: self.path.to_owned(),
                offset,
                source,
            })?;
        self.stats.bytes_written += data.len() as u64;
        self.unsent += data.len() as u64;
        if self.unsent >= WRITEBACK_STEP {
            self.unsent = 0;
            crate::writeback::start(&self.file);
        }
        Ok(())
    }

    /// What the file holds at `[offset, offset + buf.len())`: `Hole` if no
    /// byte of it is allocated (`buf` is then left as it was), otherwise
    /// `Read` with `buf` filled: the allocated extents read from the file,
    /// holes and bytes past the end as zeros. Only the extents with data
    /// are read: reading a hole back makes the kernel zero-fill page cache
    /// for it, which on a new image was most of the work.
    fn read_existing(&self, offset: u64, buf: &mut [u8]) -> Result<Existing, ApplyError> {
        let end = offset + buf.len() as u64;
        let mut at = offset;
        let mut existing = Existing::Hole;
        while at < end {
            let Some(data) = self.next_data(at).filter(|&data| data < end) else {
                break;
            };
            let data = data.max(at);
            let hole = self.next_hole(data).clamp(data + 1, end);
            let (a, d, h) = (span(offset, at), span(offset, data), span(offset, hole));
            buf[a..d].fill(0);
            self.read_into(data, &mut buf[d..h])?;
            existing = Existing::Read;
            at = hole;
        }
        if existing == Existing::Read {
            buf[span(offset, at)..].fill(0);
        }
        Ok(existing)
    }

    /// Fills `buf` with the file's bytes at `offset`; bytes past the end of
    /// the file read as zeros.
    fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<(), ApplyError> {
        let mut filled = 0;
        while filled < buf.len() {
            let at = offset + filled as u64;
            match self.file.read_at(&mut buf[filled..], at) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ApplyError::Read {
                        path: self.path.to_owned(),
                        offset: at,
                        source,
                    });
                }
            }
        }
        buf[filled..].fill(0);
        Ok(())
    }
}

/// What [`Target::read_existing`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// No data in the range: it reads as zeros, and the buffer was not touched.
    Hole,
    /// The buffer holds what the range reads as.
    Read,
}

/// `at - base` as an index into a chunk buffer.
#[allow(
    clippy::cast_possible_truncation,
    reason = "callers pass offsets within one chunk of base"
)]
fn span(base: u64, at: u64) -> usize {
    (at - base) as usize
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "the remainder is below BLOCK"
)]
fn block_offset(offset: u64) -> usize {
    (offset % BLOCK as u64) as usize
}

fn is_zero(data: &[u8]) -> bool {
    data.chunks(BLOCK).all(|part| part == &ZEROS[..part.len()])
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, reason = "test images are a few MiB")]
mod tests {
    use super::*;
    use crate::sources::rbd::diff::{DiffWriter, validate_diff};
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};
    use std::os::unix::fs::MetadataExt;
    use tempfile::TempDir;

    const MIB: u64 = 1 << 20;

    /// An in-memory image that records what the diff means, for comparison.
    struct Reference(Vec<u8>);

    impl Reference {
        fn resize(&mut self, size: u64) {
            self.0.resize(size as usize, 0);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        }
        fn zero(&mut self, offset: u64, len: u64) {
            self.0[offset as usize..(offset + len) as usize].fill(0);
        }
    }

    /// Builds a diff and applies the same records to `reference`.
    struct Both<'a> {
        writer: DiffWriter<Vec<u8>>,
        reference: &'a mut Reference,
        record_bytes: u64,
    }

    impl<'a> Both<'a> {
        fn new(reference: &'a mut Reference, size: u64) -> Self {
            let mut writer = DiffWriter::new(Vec::new()).unwrap();
            writer.size(size).unwrap();
            reference.resize(size);
            Both {
                writer,
                reference,
                record_bytes: 0,
            }
        }
        fn data(&mut self, offset: u64, data: &[u8]) {
            self.writer.data(offset, data).unwrap();
            self.reference.write(offset, data);
            self.record_bytes += data.len() as u64;
        }
        fn zero(&mut self, offset: u64, len: u64) {
            self.writer.zero(offset, len).unwrap();
            self.reference.zero(offset, len);
            self.record_bytes += len;
        }
        fn finish(self) -> (Vec<u8>, u64) {
            (self.writer.finish().unwrap(), self.record_bytes)
        }
    }

    /// How the records of a generated diff are laid out.
    #[derive(Clone, Copy)]
    enum Layout {
        /// Random extents that may overlap, later records winning.
        Overlapping,
        /// Disjoint extents in increasing order, as `rbd export-diff` writes.
        Sorted,
    }

    fn random_diff(
        rng: &mut StdRng,
        reference: &mut Reference,
        size: u64,
        layout: Layout,
    ) -> (Vec<u8>, u64) {
        let mut both = Both::new(reference, size);
        let mut next = 0;
        for _ in 0..rng.gen_range(1..40) {
            // why: unaligned offsets and lengths exercise the partial blocks.
            let (offset, len) = match layout {
                Layout::Overlapping => {
                    let offset = rng.gen_range(0..size);
                    (offset, rng.gen_range(0..=(size - offset).min(3 * MIB)))
                }
                Layout::Sorted => {
                    let offset = (next + rng.gen_range(0..MIB)).min(size);
                    let len = rng.gen_range(0..=(size - offset).min(MIB));
                    next = offset + len;
                    (offset, len)
                }
            };
            match rng.gen_range(0..4) {
                0 => both.zero(offset, len),
                1 => both.data(offset, &vec![0; len as usize]),
                2 => {
                    let mut data = vec![0u8; len as usize];
                    rng.fill_bytes(&mut data);
                    both.data(offset, &data);
                }
                _ => {
                    // Mostly zeros with a few non-zero blocks, as Ceph's
                    // first export of a sparse object.
                    let mut data = vec![0u8; len as usize];
                    for _ in 0..4 {
                        if len > 0 {
                            let at = rng.gen_range(0..len) as usize;
                            let end = (at + BLOCK).min(len as usize);
                            rng.fill_bytes(&mut data[at..end]);
                        }
                    }
                    both.data(offset, &data);
                }
            }
        }
        both.finish()
    }

    fn allocated(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    fn check_total(stats: &ApplyStats, record_bytes: u64) {
        assert_eq!(
            stats.bytes_written + stats.bytes_unchanged + stats.bytes_punched,
            record_bytes,
            "{stats:?}"
        );
    }

    #[test]
    fn random_diffs_match_the_reference() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut rng = StdRng::seed_from_u64(6);
        let mut reference = Reference(Vec::new());
        for round in 0..12 {
            // why: sizes that are not block multiples, growing and shrinking.
            let size = rng.gen_range(1..=12 * MIB) + if round % 3 == 0 { 0 } else { 777 };
            let (stream, record_bytes) =
                random_diff(&mut rng, &mut reference, size, Layout::Overlapping);
            let stats = apply_diff(&stream[..], &image).unwrap();
            assert_eq!(stats.size, size);
            check_total(&stats, record_bytes);
            assert!(
                std::fs::read(&image).unwrap() == reference.0,
                "round {round}"
            );
        }
    }

    #[test]
    fn mostly_zero_objects_stay_sparse() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let size = 64 * MIB;
        let mut w = DiffWriter::new(Vec::new()).unwrap();
        w.to_snap("backup-1").unwrap();
        w.size(size).unwrap();
        let mut object = vec![0u8; 4 * MIB as usize];
        let mut data_bytes = 0;
        for (i, offset) in (0..size).step_by(4 * MIB as usize).enumerate() {
            object.fill(0);
            // Three data runs per object, two unaligned (two blocks each).
            for at in [0, 1_000_000 + i * 8192, 3 * MIB as usize + 123] {
                object[at..at + BLOCK].fill(0xa5);
            }
            data_bytes += 5 * BLOCK as u64;
            w.data(offset, &object).unwrap();
        }
        let stream = w.finish().unwrap();
        let stats = apply_diff(&stream[..], &image).unwrap();
        assert_eq!(std::fs::metadata(&image).unwrap().len(), size);
        assert_eq!(stats.to_snap.as_deref(), Some("backup-1"));
        assert_eq!(stats.bytes_written, data_bytes);
        assert_eq!(stats.bytes_punched, 0);
        // why: slack for extent-tree blocks; a non-sparse file would be 64 MiB.
        assert!(
            allocated(&image) <= data_bytes + 256 * 1024,
            "{}",
            allocated(&image)
        );
    }

    #[test]
    fn zero_data_and_z_records_punch_what_holds_data() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut reference = Reference(Vec::new());
        let mut both = Both::new(&mut reference, 16 * MIB);
        both.data(0, &vec![0x11; 16 * MIB as usize]);
        let (full, _) = both.finish();
        apply_diff(&full[..], &image).unwrap();
        assert!(allocated(&image) >= 16 * MIB);

        let mut both = Both::new(&mut reference, 16 * MIB);
        both.data(MIB, &vec![0; 4 * MIB as usize]);
        // Unaligned edges: 100 bytes into a block to 100 bytes into another.
        both.zero(8 * MIB + 100, 4 * MIB);
        let (diff, record_bytes) = both.finish();
        let stats = apply_diff(&diff[..], &image).unwrap();
        check_total(&stats, record_bytes);
        assert_eq!(stats.bytes_written, (BLOCK as u64 - 100) + 100);
        assert_eq!(stats.bytes_punched, 4 * MIB + 4 * MIB - BLOCK as u64);
        assert!(allocated(&image) <= 8 * MIB + 2 * BLOCK as u64 + 256 * 1024);
        assert!(std::fs::read(&image).unwrap() == reference.0);

        // The same zeros again: nothing to punch, nothing to write.
        let stats = apply_diff(&diff[..], &image).unwrap();
        assert_eq!((stats.bytes_written, stats.bytes_punched), (0, 0));
        assert_eq!(stats.bytes_unchanged, record_bytes);
    }

    #[test]
    fn unchanged_blocks_are_not_rewritten() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut rng = StdRng::seed_from_u64(1);
        let mut object = vec![0u8; 4 * MIB as usize];
        rng.fill_bytes(&mut object);
        let mut reference = Reference(Vec::new());
        let mut both = Both::new(&mut reference, 8 * MIB);
        both.data(4 * MIB, &object);
        let (diff, _) = both.finish();
        let first = apply_diff(&diff[..], &image).unwrap();
        assert_eq!(first.bytes_written, 4 * MIB);

        // One byte changed in the middle of the object: one block written.
        object[2 * MIB as usize + 5] ^= 0xff;
        let mut both = Both::new(&mut reference, 8 * MIB);
        both.data(4 * MIB, &object);
        let (diff, _) = both.finish();
        let second = apply_diff(&diff[..], &image).unwrap();
        assert_eq!(second.bytes_written, BLOCK as u64);
        assert_eq!(second.bytes_unchanged, 4 * MIB - BLOCK as u64);
        assert_eq!(second.bytes_punched, 0);
        assert!(std::fs::read(&image).unwrap() == reference.0);
    }

    #[test]
    fn a_chunk_across_holes_and_data_compares_only_what_is_there() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut rng = StdRng::seed_from_u64(5);
        let mut reference = Reference(Vec::new());
        let size = 3 * MIB;
        // Data, a hole, data, a hole, within the first chunk and across it.
        let mut both = Both::new(&mut reference, size);
        let mut a = vec![0u8; 3 * BLOCK];
        rng.fill_bytes(&mut a);
        both.data(BLOCK as u64, &a);
        let mut b = vec![0u8; 2 * BLOCK + 100];
        rng.fill_bytes(&mut b);
        both.data(MIB - BLOCK as u64, &b);
        apply_diff(&both.finish().0[..], &image).unwrap();

        // One record over all of it: the same data with one byte changed in
        // each data run, zeros over the holes, one new block in a hole.
        let mut whole = reference.0.clone();
        whole[BLOCK + 10] ^= 1;
        whole[MIB as usize + 7] ^= 1;
        whole[2 * MIB as usize..2 * MIB as usize + BLOCK].fill(0x5a);
        let mut both = Both::new(&mut reference, size);
        both.data(0, &whole);
        let (diff, record_bytes) = both.finish();
        let stats = apply_diff(&diff[..], &image).unwrap();
        check_total(&stats, record_bytes);
        assert_eq!(stats.bytes_written, 3 * BLOCK as u64);
        assert_eq!(stats.bytes_punched, 0);
        assert!(std::fs::read(&image).unwrap() == reference.0);
        assert!(allocated(&image) <= 8 * BLOCK as u64 + 256 * 1024);
    }

    #[test]
    fn applying_twice_gives_the_same_file() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut rng = StdRng::seed_from_u64(2);
        let mut reference = Reference(Vec::new());
        for layout in [Layout::Overlapping, Layout::Sorted] {
            let (first, _) = random_diff(&mut rng, &mut reference, 10 * MIB + 3, layout);
            let (second, record_bytes) =
                random_diff(&mut rng, &mut reference, 10 * MIB + 3, layout);
            apply_diff(&first[..], &image).unwrap();
            apply_diff(&second[..], &image).unwrap();
            let once = std::fs::read(&image).unwrap();
            assert!(once == reference.0);
            let again = apply_diff(&second[..], &image).unwrap();
            assert!(std::fs::read(&image).unwrap() == once);
            if let Layout::Sorted = layout {
                // why: with overlapping records a re-apply rewrites what a
                // later record overwrote; Ceph's records never overlap.
                assert_eq!(
                    (
                        again.bytes_written,
                        again.bytes_punched,
                        again.bytes_unchanged
                    ),
                    (0, 0, record_bytes)
                );
            }
        }
    }

    #[test]
    fn without_hole_punching_zeros_are_written_over_data_only() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut rng = StdRng::seed_from_u64(4);
        let mut reference = Reference(Vec::new());
        for _ in 0..4 {
            let (diff, record_bytes) =
                random_diff(&mut rng, &mut reference, 7 * MIB + 9, Layout::Overlapping);
            let stats = apply_diff_with(&diff[..], &image, Holes::WriteZeros).unwrap();
            assert_eq!(stats.bytes_punched, 0);
            check_total(&stats, record_bytes);
            assert!(std::fs::read(&image).unwrap() == reference.0);
        }
        let mut both = Both::new(&mut reference, 7 * MIB + 9);
        both.zero(0, 7 * MIB + 9);
        let (diff, _) = both.finish();
        apply_diff_with(&diff[..], &image, Holes::WriteZeros).unwrap();
        let again = apply_diff_with(&diff[..], &image, Holes::WriteZeros).unwrap();
        assert_eq!(again.bytes_written, 0);
        assert!(std::fs::read(&image).unwrap() == reference.0);
    }

    #[test]
    fn reapplying_after_an_interrupted_apply_converges() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut rng = StdRng::seed_from_u64(3);
        let mut reference = Reference(Vec::new());
        let (base, _) = random_diff(&mut rng, &mut reference, 6 * MIB, Layout::Overlapping);
        apply_diff(&base[..], &image).unwrap();
        let (diff, _) = random_diff(&mut rng, &mut reference, 9 * MIB, Layout::Sorted);
        // A crash is a prefix applied: the stream cut in the middle.
        let cut = &diff[..diff.len() * 2 / 3];
        assert!(matches!(
            apply_diff(cut, &image),
            Err(ApplyError::Diff(DiffError::Truncated { .. }))
        ));
        apply_diff(&diff[..], &image).unwrap();
        assert!(std::fs::read(&image).unwrap() == reference.0);
    }

    #[test]
    fn resize_shrinks_and_grows_with_a_hole() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        let mut reference = Reference(Vec::new());
        let mut both = Both::new(&mut reference, 8 * MIB);
        both.data(0, &vec![0x42; 8 * MIB as usize]);
        apply_diff(&both.finish().0[..], &image).unwrap();

        let shrink = Both::new(&mut reference, 3 * MIB + 5).finish().0;
        let stats = apply_diff(&shrink[..], &image).unwrap();
        assert_eq!(stats.size, 3 * MIB + 5);
        assert_eq!(std::fs::metadata(&image).unwrap().len(), 3 * MIB + 5);

        let grow = Both::new(&mut reference, 12 * MIB).finish().0;
        apply_diff(&grow[..], &image).unwrap();
        assert!(std::fs::read(&image).unwrap() == reference.0);
        // The grown part is a hole: only the 3 MiB kept are allocated.
        assert!(allocated(&image) <= 3 * MIB + BLOCK as u64 + 256 * 1024);
    }

    #[test]
    fn a_missing_image_is_created_but_not_for_garbage() {
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        assert!(matches!(
            apply_diff(&b"not a diff at all"[..], &image),
            Err(ApplyError::Diff(DiffError::BadMagic { .. }))
        ));
        assert!(!image.exists());
        let mut w = DiffWriter::new(Vec::new()).unwrap();
        w.from_snap("a").unwrap();
        w.to_snap("b").unwrap();
        w.size(MIB).unwrap();
        let stats = apply_diff(&w.finish().unwrap()[..], &image).unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                from_snap: Some("a".into()),
                to_snap: Some("b".into()),
                size: MIB,
                records: 3,
                ..ApplyStats::default()
            }
        );
        assert_eq!(allocated(&image), 0);
    }

    /// Every corrupt-stream kind: validation rejects it before the image is
    /// touched; applying it blindly gives the same error.
    #[test]
    fn corrupt_streams_are_caught_before_apply() {
        let good = |build: &dyn Fn(&mut DiffWriter<Vec<u8>>)| {
            let mut w = DiffWriter::new(Vec::new()).unwrap();
            w.size(2 * MIB).unwrap();
            w.data(0, &[0x77; 8192]).unwrap();
            build(&mut w);
            w.into_inner()
        };
        let mut corrupt: Vec<(&str, Vec<u8>)> = vec![
            ("bad magic", b"rbd diff v9\nxxxxxxxx".to_vec()),
            ("v2", b"rbd diff v2\ne".to_vec()),
            ("truncated", good(&|_| {})),
            ("unknown tag", {
                let mut s = good(&|_| {});
                s.extend_from_slice(b"q");
                s
            }),
            ("past end", good(&|w| w.data(2 * MIB - 1, b"xy").unwrap())),
            ("trailing", {
                let mut s = good(&|_| {});
                s.extend_from_slice(b"ee");
                s
            }),
            ("name too long", {
                let mut s = good(&|_| {});
                s.push(b'f');
                s.extend_from_slice(&5000u32.to_le_bytes());
                s.extend_from_slice(&[b'a'; 5000]);
                s.push(b'e');
                s
            }),
        ];
        corrupt.push(("no size", {
            let mut w = DiffWriter::new(Vec::new()).unwrap();
            w.zero(0, 1).unwrap();
            w.finish().unwrap()
        }));
        let dir = TempDir::new().unwrap();
        let image = dir.path().join("img");
        std::fs::write(&image, vec![0x33; 2 * MIB as usize]).unwrap();
        let before = std::fs::read(&image).unwrap();
        for (name, stream) in &corrupt {
            let validated = validate_diff(&stream[..]).unwrap_err();
            assert!(std::fs::read(&image).unwrap() == before, "{name}");
            let applied = apply_diff(&stream[..], &image).unwrap_err();
            let ApplyError::Diff(applied) = applied else {
                panic!("{name}: {applied}");
            };
            assert_eq!(validated.to_string(), applied.to_string(), "{name}");
            let kind_ok = match *name {
                "bad magic" => matches!(validated, DiffError::BadMagic { .. }),
                "v2" => matches!(validated, DiffError::UnsupportedVersion { .. }),
                "truncated" => matches!(validated, DiffError::Truncated { .. }),
                "unknown tag" => matches!(validated, DiffError::UnknownTag { .. }),
                "past end" => matches!(validated, DiffError::WritePastEnd { .. }),
                "trailing" => matches!(validated, DiffError::TrailingBytes { .. }),
                "name too long" => matches!(validated, DiffError::NameTooLong { .. }),
                "no size" => matches!(validated, DiffError::MissingSize { .. }),
                _ => false,
            };
            assert!(kind_ok, "{name}: {validated}");
            std::fs::write(&image, &before).unwrap();
        }
    }
}
