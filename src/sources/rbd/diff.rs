//! The `rbd export-diff` stream format, version 1: a streaming parser
//! ([`DiffReader`]), a whole-stream check ([`validate_diff`]) and a writer
//! ([`DiffWriter`]) that tests, the bench generator and fixtures use to build
//! streams.
//!
//! The format (Ceph's `doc/dev/rbd-diff.rst`), integers little-endian:
//!
//! ```text
//! "rbd diff v1\n"
//! 'f' le32 len, name          from-snapshot (absent in a full export)
//! 't' le32 len, name          to-snapshot
//! 's' le64 size               image size at the to-snapshot
//! 'w' le64 offset, le64 len, len bytes of data
//! 'z' le64 offset, le64 len   range that reads as zeros
//! 'e'                         end; nothing may follow
//! ```
//!
//! Ceph writes the metadata records (`f`, `t`, `s`) before the data records
//! (`w`, `z`); this parser accepts metadata anywhere but requires an `s`
//! before the first data record, so that every data record can be checked
//! against the image size. Version 2 (`"rbd diff v2\n"`, every record
//! followed by an le64 payload length) is what `rbd export --export-format 2`
//! embeds, not what `rbd export-diff` writes; it is rejected with
//! [`DiffError::UnsupportedVersion`] for now.
//!
//! What this module owns: bytes in, records out. It knows nothing of image
//! files (that is [`super::apply`]).
//!
//! Invariants:
//! - memory is bounded whatever the stream holds: `w` data is never buffered
//!   here, it is handed out through [`WriteData`] in chunks the caller sizes;
//!   snapshot names are capped at [`MAX_NAME_LEN`].
//! - every `w`/`z` record yielded lies within `[0, size)` of the latest `s`.
//! - a stream is accepted only if it ends with `e` followed by end of input.
//! - every error carries the byte offset in the stream (0 = first header
//!   byte) of the record at fault.

use std::fmt;
use std::io::{self, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};

use thiserror::Error;

/// The header of a version 1 diff stream.
pub const MAGIC_V1: &[u8; 12] = b"rbd diff v1\n";
/// The header of a version 2 diff stream (recognised only to reject it).
pub const MAGIC_V2: &[u8; 12] = b"rbd diff v2\n";
/// Longest snapshot name accepted in an `f` or `t` record.
// why: a corrupt le32 length must not make us allocate up to 4 GiB; strata's
// own snapshot names (`backup-<uuid>`) are 43 bytes.
pub const MAX_NAME_LEN: u32 = 4096;

// why: io::copy through Take skips unread `w` data without a buffer of ours;
// the BufReader keeps one-byte tag reads from being one syscall each.
const READ_BUFFER: usize = 64 * 1024;

/// The part of a stream an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The 12-byte header.
    Header,
    /// The one-byte tag that starts every record (or the missing `e`).
    Tag,
    /// `f`
    FromSnap,
    /// `t`
    ToSnap,
    /// `s`
    Size,
    /// `w`
    Write,
    /// `z`
    Zero,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Header => "header",
            RecordKind::Tag => "record tag",
            RecordKind::FromSnap => "'f' (from snapshot) record",
            RecordKind::ToSnap => "'t' (to snapshot) record",
            RecordKind::Size => "'s' (size) record",
            RecordKind::Write => "'w' (data) record",
            RecordKind::Zero => "'z' (zero) record",
        })
    }
}

/// Why a diff stream was rejected. Offsets named `offset` in a record context
/// are stream byte offsets of the record's tag unless documented otherwise.
#[derive(Debug, Error)]
pub enum DiffError {
    #[error("not an rbd diff stream: header is {found:?}, expected \"rbd diff v1\\n\"")]
    BadMagic { found: String },
    #[error(
        "rbd diff format version {version} is not supported (only v1, as `rbd export-diff` writes)"
    )]
    UnsupportedVersion { version: u8 },
    #[error("truncated {record} at byte {offset}: the stream ended inside it")]
    Truncated { record: RecordKind, offset: u64 },
    #[error("unknown record tag {tag:#04x} at byte {offset}")]
    UnknownTag { tag: u8, offset: u64 },
    /// A `w` or `z` record whose image range `[offset, offset + len)` is not
    /// inside the image size `size`.
    #[error(
        "{record} at byte {record_offset} covers image bytes {offset}+{len}, past the image size {size}"
    )]
    WritePastEnd {
        record: RecordKind,
        record_offset: u64,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{record} at byte {offset} comes before any 's' (size) record")]
    MissingSize { record: RecordKind, offset: u64 },
    #[error("bytes after the 'e' (end) record, from byte {offset}")]
    TrailingBytes { offset: u64 },
    #[error("{record} at byte {offset} has a {len}-byte name, longer than {MAX_NAME_LEN}")]
    NameTooLong {
        record: RecordKind,
        offset: u64,
        len: u32,
    },
    #[error("{record} at byte {offset} has a name that is not UTF-8")]
    NameNotUtf8 { record: RecordKind, offset: u64 },
    /// Reading the stream failed; `offset` is how far it had been read.
    #[error("reading the diff stream at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

/// One record of a stream, as [`DiffReader::next_record`] yields it.
pub enum Record<'a, R> {
    FromSnap(String),
    ToSnap(String),
    Size(u64),
    /// A `w` record; its data must be read through the [`WriteData`] before
    /// the next call to `next_record` (what is left unread is skipped).
    Write(WriteData<'a, R>),
    Zero {
        offset: u64,
        len: u64,
    },
}

impl<R> fmt::Debug for Record<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::FromSnap(name) => f.debug_tuple("FromSnap").field(name).finish(),
            Record::ToSnap(name) => f.debug_tuple("ToSnap").field(name).finish(),
            Record::Size(size) => f.debug_tuple("Size").field(size).finish(),
            Record::Write(data) => data.fmt(f),
            Record::Zero { offset, len } => f
                .debug_struct("Zero")
                .field("offset", offset)
                .field("len", len)
                .finish(),
        }
    }
}

/// Where the unread data of the current `w` record stands.
#[derive(Debug, Clone, Copy)]
struct PendingData {
    record_offset: u64,
    remaining: u64,
}

/// A streaming parser of a v1 diff over any [`Read`].
///
/// Contract: [`DiffReader::new`] checks the header; each
/// [`DiffReader::next_record`] yields one record, validated, and `Ok(None)`
/// once the `e` record has been read and the input is known to end there.
/// After an error the reader is mid-record: do not call it again.
pub struct DiffReader<R> {
    inner: BufReader<R>,
    pos: u64,
    size: Option<u64>,
    pending: Option<PendingData>,
    records: u64,
    ended: bool,
    /// Set by [`DiffReader::new_seekable`]: how unread `w` data is skipped.
    seek: Option<SeekSkip<R>>,
}

/// Skipping unread data of a seekable input by seeking over it, bounded by
/// the input's length so that a truncated record is still caught.
struct SeekSkip<R> {
    /// Length of the stream: the input's bytes from where it began.
    len: u64,
    skip: fn(&mut BufReader<R>, i64) -> io::Result<()>,
}

impl<R: Read> DiffReader<R> {
    /// Reads and checks the 12-byte header.
    ///
    /// # Errors
    /// `BadMagic`, `UnsupportedVersion`, `Truncated` (a prefix of the v1
    /// header, including an empty stream) or `Io`.
    pub fn new(reader: R) -> Result<Self, DiffError> {
        let mut this = DiffReader {
            inner: BufReader::with_capacity(READ_BUFFER, reader),
            pos: 0,
            size: None,
            pending: None,
            records: 0,
            ended: false,
            seek: None,
        };
        let mut header = [0u8; 12];
        let got = this.read_up_to(&mut header)?;
        let header = &header[..got];
        if header == MAGIC_V1 {
            Ok(this)
        } else if header == MAGIC_V2 {
            Err(DiffError::UnsupportedVersion { version: 2 })
        } else if MAGIC_V1.starts_with(header) {
            Err(DiffError::Truncated {
                record: RecordKind::Header,
                offset: 0,
            })
        } else {
            Err(DiffError::BadMagic {
                found: header.escape_ascii().to_string(),
            })
        }
    }

    /// [`DiffReader::new`] over a seekable input (a diff file): unread `w`
    /// data is skipped by seeking instead of being read, so that checking a
    /// whole file reads its records' headers only. The stream is the input
    /// from its current position to its end; errors are the same as over a
    /// stream of the same bytes.
    ///
    /// # Errors
    /// As [`DiffReader::new`]; `Io` if the input's length cannot be learned.
    pub fn new_seekable(mut reader: R) -> Result<Self, DiffError>
    where
        R: Seek,
    {
        let io = |source| DiffError::Io { offset: 0, source };
        let start = reader.stream_position().map_err(io)?;
        let end = reader.seek(SeekFrom::End(0)).map_err(io)?;
        reader.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut this = Self::new(reader)?;
        this.seek = Some(SeekSkip {
            len: end.saturating_sub(start),
            skip: BufReader::seek_relative,
        });
        Ok(this)
    }

    /// Bytes of the stream consumed so far.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The image size of the latest `s` record, if one was read.
    #[must_use]
    pub fn image_size(&self) -> Option<u64> {
        self.size
    }

    /// Records yielded so far (the `e` record is not counted).
    #[must_use]
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The next record, or `None` after a well-formed end.
    ///
    /// Unread data of a previous `w` record is skipped first (read and
    /// discarded: the input need not be seekable).
    ///
    /// # Errors
    /// Any [`DiffError`] but `BadMagic`/`UnsupportedVersion`.
    pub fn next_record(&mut self) -> Result<Option<Record<'_, R>>, DiffError> {
        if self.ended {
            return Ok(None);
        }
        self.skip_pending()?;
        let at = self.pos;
        let mut tag = [0u8; 1];
        if self.read_up_to(&mut tag)? == 0 {
            // why: a stream cut exactly between records still lacks its 'e'.
            return Err(DiffError::Truncated {
                record: RecordKind::Tag,
                offset: at,
            });
        }
        if matches!(tag[0], b'f' | b't' | b's' | b'w' | b'z') {
            self.records += 1;
        }
        let record = match tag[0] {
            b'f' => Record::FromSnap(self.read_name(RecordKind::FromSnap, at)?),
            b't' => Record::ToSnap(self.read_name(RecordKind::ToSnap, at)?),
            b's' => {
                let size = self.read_u64(RecordKind::Size, at)?;
                self.size = Some(size);
                Record::Size(size)
            }
            b'w' => {
                let (offset, len) = self.read_extent(RecordKind::Write, at)?;
                self.pending = Some(PendingData {
                    record_offset: at,
                    remaining: len,
                });
                Record::Write(WriteData {
                    reader: self,
                    offset,
                    len,
                })
            }
            b'z' => {
                let (offset, len) = self.read_extent(RecordKind::Zero, at)?;
                Record::Zero { offset, len }
            }
            b'e' => {
                let mut extra = [0u8; 1];
                let end = self.pos;
                if self.read_up_to(&mut extra)? != 0 {
                    return Err(DiffError::TrailingBytes { offset: end });
                }
                self.ended = true;
                return Ok(None);
            }
            tag => return Err(DiffError::UnknownTag { tag, offset: at }),
        };
        Ok(Some(record))
    }

    fn skip_pending(&mut self) -> Result<(), DiffError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        if pending.remaining == 0 {
            return Ok(());
        }
        let copied = if let Some(seek) = &self.seek {
            let n = pending.remaining.min(seek.len.saturating_sub(self.pos));
            // why: n is at most the input's length, which an off_t holds
            let step = i64::try_from(n).unwrap_or(i64::MAX);
            (seek.skip)(&mut self.inner, step).map_err(|source| DiffError::Io {
                offset: self.pos,
                source,
            })?;
            step.unsigned_abs()
        } else {
            io::copy(
                &mut (&mut self.inner).take(pending.remaining),
                &mut io::sink(),
            )
            .map_err(|source| DiffError::Io {
                offset: self.pos,
                source,
            })?
        };
        self.pos += copied;
        if copied < pending.remaining {
            return Err(DiffError::Truncated {
                record: RecordKind::Write,
                offset: pending.record_offset,
            });
        }
        Ok(())
    }

    /// Reads until `buf` is full or the input ends; returns the count.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, DiffError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DiffError::Io {
                        offset: self.pos,
                        source,
                    });
                }
            }
        }
        Ok(filled)
    }

    fn read_field(&mut self, buf: &mut [u8], record: RecordKind, at: u64) -> Result<(), DiffError> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(DiffError::Truncated { record, offset: at });
        }
        Ok(())
    }

    fn read_u64(&mut self, record: RecordKind, at: u64) -> Result<u64, DiffError> {
        let mut bytes = [0u8; 8];
        self.read_field(&mut bytes, record, at)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn read_name(&mut self, record: RecordKind, at: u64) -> Result<String, DiffError> {
        let mut bytes = [0u8; 4];
        self.read_field(&mut bytes, record, at)?;
        let len = u32::from_le_bytes(bytes);
        if len > MAX_NAME_LEN {
            return Err(DiffError::NameTooLong {
                record,
                offset: at,
                len,
            });
        }
        let mut name = vec![0u8; len as usize];
        self.read_field(&mut name, record, at)?;
        String::from_utf8(name).map_err(|_| DiffError::NameNotUtf8 { record, offset: at })
    }

    fn read_extent(&mut self, record: RecordKind, at: u64) -> Result<(u64, u64), DiffError> {
        let Some(size) = self.size else {
            return Err(DiffError::MissingSize { record, offset: at });
        };
        let offset = self.read_u64(record, at)?;
        let len = self.read_u64(record, at)?;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok((offset, len)),
            _ => Err(DiffError::WritePastEnd {
                record,
                record_offset: at,
                offset,
                len,
                size,
            }),
        }
    }
}

/// The data of one `w` record, read in chunks of the caller's choosing.
pub struct WriteData<'a, R> {
    reader: &'a mut DiffReader<R>,
    offset: u64,
    len: u64,
}

impl<R> fmt::Debug for WriteData<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Write")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<R: Read> WriteData<'_, R> {
    /// Image offset of the first data byte.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of data bytes in the record.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the record carries no data.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Data bytes not read yet.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.reader.pending.map_or(0, |p| p.remaining)
    }

    /// Fills `buf` completely, or with all that remains if that is less;
    /// returns the count, 0 once the data is exhausted (or for an empty
    /// `buf`, so pass a non-empty one). The chunk starts at
    /// image offset `offset() + (len() - remaining())` as it was before the
    /// call.
    ///
    /// # Errors
    /// `Truncated` if the stream ends inside the data, `Io`.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, DiffError> {
        let Some(pending) = self.reader.pending else {
            return Ok(0);
        };
        // why: a remaining count beyond usize::MAX is capped by buf.len() anyway.
        let want = usize::try_from(pending.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        self.reader
            .read_field(&mut buf[..want], RecordKind::Write, pending.record_offset)?;
        self.reader.pending = Some(PendingData {
            remaining: pending.remaining - want as u64,
            ..pending
        });
        Ok(want)
    }
}

/// What a whole, valid stream holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    pub from_snap: Option<String>,
    pub to_snap: Option<String>,
    /// The size of the last `s` record.
    pub size: Option<u64>,
    /// Records, the `e` record not counted.
    pub records: u64,
    pub write_records: u64,
    pub write_bytes: u64,
    pub zero_records: u64,
    pub zero_bytes: u64,
    /// Length of the stream, header and `e` included.
    pub stream_bytes: u64,
}

/// Parses a whole stream without applying it: the check run on a `.pending`
/// diff before [`super::apply::apply_diff`], so that a corrupt diff leaves the
/// image untouched. Reads the input once, in bounded memory.
///
/// # Errors
/// The first [`DiffError`] in the stream.
pub fn validate_diff<R: Read>(reader: R) -> Result<DiffSummary, DiffError> {
    summarize(DiffReader::new(reader)?)
}

/// [`validate_diff`] of a diff file from its current position: the same
/// checks and errors, but `w` data is seeked over, not read (a file on disk
/// is read once, by the apply, instead of twice).
///
/// # Errors
/// The first [`DiffError`] in the file.
pub fn validate_diff_file<R: Read + Seek>(file: R) -> Result<DiffSummary, DiffError> {
    summarize(DiffReader::new_seekable(file)?)
}

fn summarize<R: Read>(mut diff: DiffReader<R>) -> Result<DiffSummary, DiffError> {
    let mut summary = DiffSummary::default();
    while let Some(record) = diff.next_record()? {
        match record {
            Record::FromSnap(name) => summary.from_snap = Some(name),
            Record::ToSnap(name) => summary.to_snap = Some(name),
            Record::Size(size) => summary.size = Some(size),
            // why: the data is skipped by the next next_record call.
            Record::Write(data) => {
                summary.write_records += 1;
                summary.write_bytes += data.len();
            }
            Record::Zero { len, .. } => {
                summary.zero_records += 1;
                summary.zero_bytes += len;
            }
        }
    }
    summary.records = diff.records();
    summary.stream_bytes = diff.position();
    Ok(summary)
}

/// Writes a v1 diff stream record by record.
///
/// It writes what it is told, in the order told: it does not check sizes or
/// order, so that tests can build the streams the reader must reject. Call
/// [`DiffWriter::finish`] to write the `e` record.
pub struct DiffWriter<W: Write> {
    inner: W,
}

impl<W: Write> DiffWriter<W> {
    /// Writes the v1 header.
    ///
    /// # Errors
    /// Those of the underlying writer.
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(MAGIC_V1)?;
        Ok(DiffWriter { inner })
    }

    /// Writes an `f` record.
    ///
    /// # Errors
    /// `InvalidInput` for a name longer than `u32::MAX`; the writer's errors.
    pub fn from_snap(&mut self, name: &str) -> io::Result<()> {
        self.name(b'f', name)
    }

    /// Writes a `t` record.
    ///
    /// # Errors
    /// As [`DiffWriter::from_snap`].
    pub fn to_snap(&mut self, name: &str) -> io::Result<()> {
        self.name(b't', name)
    }

    /// Writes an `s` record.
    ///
    /// # Errors
    /// The writer's errors.
    pub fn size(&mut self, size: u64) -> io::Result<()> {
        self.inner.write_all(b"s")?;
        self.inner.write_all(&size.to_le_bytes())
    }

    /// Writes a `w` record carrying `data` at image offset `offset`.
    ///
    /// # Errors
    /// The writer's errors.
    pub fn data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(b"w")?;
        self.inner.write_all(&offset.to_le_bytes())?;
        self.inner.write_all(&(data.len() as u64).to_le_bytes())?;
        self.inner.write_all(data)
    }

    /// Writes a `z` record.
    ///
    /// # Errors
    /// The writer's errors.
    pub fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.write_all(b"z")?;
        self.inner.write_all(&offset.to_le_bytes())?;
        self.inner.write_all(&len.to_le_bytes())
    }

    /// Writes the `e` record, flushes, and gives the writer back.
    ///
    /// # Errors
    /// The writer's errors.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(b"e")?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Gives the writer back without an `e` record (an unfinished stream).
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn name(&mut self, tag: u8, name: &str) -> io::Result<()> {
        let len = u32::try_from(name.len())
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "snapshot name too long"))?;
        self.inner.write_all(&[tag])?;
        self.inner.write_all(&len.to_le_bytes())?;
        self.inner.write_all(name.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, reason = "test patterns")]
mod tests {
    use super::*;

    /// A reader that hands out at most one byte per call, to exercise every
    /// partial-read loop.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn stream(build: impl FnOnce(&mut DiffWriter<Vec<u8>>) -> io::Result<()>) -> Vec<u8> {
        let mut w = DiffWriter::new(Vec::new()).unwrap();
        build(&mut w).unwrap();
        w.finish().unwrap()
    }

    fn unfinished(build: impl FnOnce(&mut DiffWriter<Vec<u8>>) -> io::Result<()>) -> Vec<u8> {
        let mut w = DiffWriter::new(Vec::new()).unwrap();
        build(&mut w).unwrap();
        w.into_inner()
    }

    /// The error of a stream, checked to be the same whether the stream is
    /// read (a pipe) or seeked over (a file).
    fn err(bytes: &[u8]) -> DiffError {
        let streamed = validate_diff(bytes).unwrap_err();
        let seeked = validate_diff_file(io::Cursor::new(bytes)).unwrap_err();
        assert_eq!(format!("{streamed:?}"), format!("{seeked:?}"));
        streamed
    }

    #[test]
    fn records_round_trip_with_chunked_data() {
        let big: Vec<u8> = (0..3 * 1024 * 1024 + 17_usize)
            .map(|i| (i % 251) as u8)
            .collect();
        let bytes = stream(|w| {
            w.from_snap("backup-a")?;
            w.to_snap("backup-b")?;
            w.size(8 << 20)?;
            w.data(4096, &big)?;
            w.zero(7 << 20, 4096)?;
            w.data(0, b"")
        });
        let mut diff = DiffReader::new(Trickle(&bytes)).unwrap();
        assert!(
            matches!(diff.next_record().unwrap(), Some(Record::FromSnap(n)) if n == "backup-a")
        );
        assert!(matches!(diff.next_record().unwrap(), Some(Record::ToSnap(n)) if n == "backup-b"));
        assert!(matches!(diff.next_record().unwrap(), Some(Record::Size(s)) if s == 8 << 20));
        match diff.next_record().unwrap() {
            Some(Record::Write(mut data)) => {
                assert_eq!((data.offset(), data.len()), (4096, big.len() as u64));
                let mut got = Vec::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = data.read_chunk(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, big);
                assert_eq!(data.remaining(), 0);
            }
            other => panic!("expected a write, got {other:?}"),
        }
        assert!(matches!(
            diff.next_record().unwrap(),
            Some(Record::Zero { offset, len: 4096 }) if offset == 7 << 20
        ));
        assert!(matches!(diff.next_record().unwrap(), Some(Record::Write(d)) if d.is_empty()));
        assert!(diff.next_record().unwrap().is_none());
        assert!(diff.next_record().unwrap().is_none());
        assert_eq!(diff.position(), bytes.len() as u64);
        assert_eq!(diff.records(), 6);
    }

    #[test]
    fn unread_data_is_skipped() {
        let bytes = stream(|w| {
            w.size(1 << 20)?;
            w.data(0, &[7u8; 10_000])?;
            w.data(20_000, &[9u8; 3])
        });
        let mut diff = DiffReader::new(&bytes[..]).unwrap();
        diff.next_record().unwrap();
        match diff.next_record().unwrap() {
            Some(Record::Write(mut data)) => {
                let mut buf = [0u8; 100];
                assert_eq!(data.read_chunk(&mut buf).unwrap(), 100);
                assert_eq!(data.remaining(), 9_900);
            }
            other => panic!("expected a write, got {other:?}"),
        }
        match diff.next_record().unwrap() {
            Some(Record::Write(mut data)) => {
                let mut buf = [0u8; 100];
                assert_eq!(data.offset(), 20_000);
                assert_eq!(data.read_chunk(&mut buf).unwrap(), 3);
                assert_eq!(&buf[..3], &[9, 9, 9]);
            }
            other => panic!("expected a write, got {other:?}"),
        }
        assert!(diff.next_record().unwrap().is_none());
    }

    #[test]
    fn summary_counts_everything() {
        let bytes = stream(|w| {
            w.from_snap("a")?;
            w.to_snap("b")?;
            w.size(1 << 30)?;
            w.data(0, &[1u8; 5000])?;
            w.data(1 << 20, &[2u8; 10])?;
            w.zero(2 << 20, 1 << 20)
        });
        let summary = validate_diff(&bytes[..]).unwrap();
        assert_eq!(
            validate_diff_file(io::Cursor::new(&bytes)).unwrap(),
            summary
        );
        assert_eq!(
            summary,
            DiffSummary {
                from_snap: Some("a".into()),
                to_snap: Some("b".into()),
                size: Some(1 << 30),
                records: 6,
                write_records: 2,
                write_bytes: 5010,
                zero_records: 1,
                zero_bytes: 1 << 20,
                stream_bytes: bytes.len() as u64,
            }
        );
    }

    #[test]
    fn a_seekable_input_is_read_from_where_it_stands() {
        let bytes = stream(|w| {
            w.size(1 << 20)?;
            w.data(0, &vec![3u8; 70_000])?;
            w.data(100_000, &[4u8; 5])
        });
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"junk before the stream").unwrap();
        file.write_all(&bytes).unwrap();
        file.seek(SeekFrom::Start(22)).unwrap();
        let summary = validate_diff_file(&file).unwrap();
        assert_eq!(summary, validate_diff(&bytes[..]).unwrap());
        // A file cut inside the first record's data is caught, as in a stream.
        file.set_len(22 + 21 + 17 + 1000).unwrap();
        file.seek(SeekFrom::Start(22)).unwrap();
        assert!(matches!(
            validate_diff_file(&file),
            Err(DiffError::Truncated {
                record: RecordKind::Write,
                offset: 21
            })
        ));
    }

    #[test]
    fn empty_diff_without_size_is_valid() {
        let bytes = stream(|w| w.to_snap("only"));
        let summary = validate_diff(&bytes[..]).unwrap();
        assert_eq!(summary.size, None);
        assert_eq!(summary.to_snap.as_deref(), Some("only"));
    }

    #[test]
    fn bad_magic() {
        assert!(
            matches!(err(b"rbd image v2\nxxxx"), DiffError::BadMagic { found } if found == "rbd image v2")
        );
        assert!(matches!(err(b"GARBAGE"), DiffError::BadMagic { .. }));
    }

    #[test]
    fn v2_is_rejected_by_name() {
        assert!(matches!(
            err(b"rbd diff v2\ns\x08\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0e"),
            DiffError::UnsupportedVersion { version: 2 }
        ));
    }

    #[test]
    fn truncated_everywhere() {
        let full = stream(|w| {
            w.from_snap("snap")?;
            w.size(1 << 20)?;
            w.data(512, &[5u8; 600])?;
            w.zero(4096, 512)
        });
        // Record starts: header 0..12, f 12..21, s 21..30, w 30..47+600, z 647..664, e 664.
        let expect = |cut: usize| -> (RecordKind, u64) {
            match cut {
                0..12 => (RecordKind::Header, 0),
                12 => (RecordKind::Tag, 12),
                13..21 => (RecordKind::FromSnap, 12),
                21 => (RecordKind::Tag, 21),
                22..30 => (RecordKind::Size, 21),
                30 => (RecordKind::Tag, 30),
                31..647 => (RecordKind::Write, 30),
                647 => (RecordKind::Tag, 647),
                648..664 => (RecordKind::Zero, 647),
                664 => (RecordKind::Tag, 664),
                _ => unreachable!(),
            }
        };
        assert_eq!(full.len(), 665);
        for cut in 0..full.len() {
            match err(&full[..cut]) {
                DiffError::Truncated { record, offset } => {
                    assert_eq!((record, offset), expect(cut), "cut at {cut}");
                }
                other => panic!("cut at {cut}: {other}"),
            }
        }
    }

    #[test]
    fn unknown_tag() {
        let mut bytes = unfinished(|w| w.size(4096));
        bytes.push(b'x');
        assert!(matches!(
            err(&bytes),
            DiffError::UnknownTag {
                tag: b'x',
                offset: 21
            }
        ));
    }

    #[test]
    fn data_past_the_image_size() {
        let bytes = stream(|w| {
            w.size(8192)?;
            w.data(8000, &[1u8; 193])
        });
        assert!(matches!(
            err(&bytes),
            DiffError::WritePastEnd {
                record: RecordKind::Write,
                record_offset: 21,
                offset: 8000,
                len: 193,
                size: 8192
            }
        ));
        let bytes = stream(|w| {
            w.size(8192)?;
            w.zero(u64::MAX, 2)
        });
        assert!(matches!(
            err(&bytes),
            DiffError::WritePastEnd {
                record: RecordKind::Zero,
                offset: u64::MAX,
                ..
            }
        ));
        // Exactly up to the end is fine.
        let bytes = stream(|w| {
            w.size(8192)?;
            w.data(8000, &[1u8; 192])?;
            w.zero(0, 8192)
        });
        validate_diff(&bytes[..]).unwrap();
    }

    #[test]
    fn data_before_size() {
        let bytes = stream(|w| w.zero(0, 1));
        assert!(matches!(
            err(&bytes),
            DiffError::MissingSize {
                record: RecordKind::Zero,
                offset: 12
            }
        ));
        let bytes = stream(|w| {
            w.to_snap("t")?;
            w.data(0, b"x")
        });
        assert!(matches!(
            err(&bytes),
            DiffError::MissingSize {
                record: RecordKind::Write,
                offset: 18
            }
        ));
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = stream(|w| w.size(0));
        let end = bytes.len() as u64;
        bytes.extend_from_slice(b"\0\0");
        assert!(matches!(err(&bytes), DiffError::TrailingBytes { offset } if offset == end));
    }

    #[test]
    fn name_too_long_or_not_utf8() {
        let mut bytes = MAGIC_V1.to_vec();
        bytes.push(b't');
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            err(&bytes),
            DiffError::NameTooLong {
                record: RecordKind::ToSnap,
                offset: 12,
                len: u32::MAX
            }
        ));
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(b"f\x02\0\0\0\xff\xfee");
        assert!(matches!(
            err(&bytes),
            DiffError::NameNotUtf8 {
                record: RecordKind::FromSnap,
                offset: 12
            }
        ));
    }

    #[test]
    fn io_errors_carry_the_offset() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = self.0.min(buf.len());
                buf[..n].copy_from_slice(&MAGIC_V1[..n]);
                self.0 -= n;
                Ok(n)
            }
        }
        assert!(matches!(
            DiffReader::new(Failing(5)).err(),
            Some(DiffError::Io { offset: 5, .. })
        ));
    }

    #[test]
    fn errors_read_well() {
        let e = DiffError::Truncated {
            record: RecordKind::Write,
            offset: 30,
        };
        assert_eq!(
            e.to_string(),
            "truncated 'w' (data) record at byte 30: the stream ended inside it"
        );
    }
}
