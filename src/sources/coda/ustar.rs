//! A strict reader of the POSIX ustar streams `codadump2tar` writes.
//!
//! Owns: splitting a byte stream into member headers and member data, and
//! judging every header. Does not own: what a member's name means under the
//! unit ([`super::entry`]) or where its data goes ([`super::stage`]).
//!
//! Why not the `tar` crate: codadump2tar writes one fixed subset of ustar
//! (magic `ustar\0` `00`, the name split into prefix and name, types `0`,
//! `1`, `2` and `5`, no extension headers), and the coda source must tell a
//! complete stream from one that stopped early, since a full dump deletes
//! whatever its stream did not name. The `tar` crate takes the end of input
//! at a header boundary as the end of the archive (no end-of-archive blocks
//! required), and it reads GNU long names and pax headers into memory. This
//! reader requires the two zero blocks that end an archive, refuses every
//! type and extension it does not know instead of interpreting it, holds one
//! 512-byte header at a time, and reports the stream offset of a problem.

use std::io::{ErrorKind, Read};

/// The tar block size.
pub const BLOCK: usize = 512;

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    Regular,
    HardLink,
    Symlink,
    Directory,
}

/// One member's header, its name joined from prefix and name (raw bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: MemberKind,
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    /// The link target of a symlink or hard link (empty otherwise).
    pub link: Vec<u8>,
    /// Where the header starts in the stream.
    pub offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UstarError {
    /// The stream ended before the end-of-archive blocks: not a whole dump.
    #[error("the tar stream ended early, at byte {offset} ({what})")]
    Truncated { offset: u64, what: &'static str },
    #[error("the tar header at byte {offset} has a bad checksum")]
    Checksum { offset: u64 },
    #[error("the tar header at byte {offset} is not a POSIX ustar header")]
    NotUstar { offset: u64 },
    #[error("the tar header at byte {offset} has an unreadable {field} field")]
    Field { offset: u64, field: &'static str },
    /// A member type codadump2tar never writes (a device, a fifo, a GNU or
    /// pax extension): refused, not interpreted.
    #[error(
        "the tar member `{name}` at byte {offset} has type {flag:?}, which a Coda dump never holds"
    )]
    UnknownType {
        offset: u64,
        flag: char,
        name: String,
    },
    #[error("the tar member `{name}` at byte {offset}: a {kind:?} with {size} bytes of data")]
    DataOnNonFile {
        offset: u64,
        name: String,
        kind: MemberKind,
        size: u64,
    },
    #[error("reading the tar stream: {0}")]
    Io(#[source] std::io::Error),
}

impl UstarError {
    /// Whether another attempt at the same dump may succeed: a damaged or
    /// short stream may be a transport's fault; a refused member is not.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            UstarError::UnknownType { .. } | UstarError::DataOnNonFile { .. }
        )
    }
}

/// Reads members one after the other: [`UstarReader::next_header`], then
/// (for a regular file) its data through [`UstarReader::data`].
pub struct UstarReader<R> {
    inner: R,
    /// Bytes consumed from `inner`.
    offset: u64,
    /// Data bytes of the current member not yet read.
    remaining: u64,
    /// Padding after the current member's data.
    padding: u64,
    ended: bool,
}

impl<R: Read> UstarReader<R> {
    pub fn new(inner: R) -> Self {
        UstarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            ended: false,
        }
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next member's header, skipping what is left of the previous
    /// member's data; `None` after the end-of-archive blocks.
    pub fn next_header(&mut self) -> Result<Option<Header>, UstarError> {
        if self.ended {
            return Ok(None);
        }
        let skip = self.remaining + self.padding;
        self.skip(skip, "member data")?;
        self.remaining = 0;
        self.padding = 0;
        let offset = self.offset;
        let mut block = [0u8; BLOCK];
        self.fill(&mut block, "a header")?;
        if block.iter().all(|&b| b == 0) {
            // why: an archive ends with two zero blocks; one alone followed
            // by the end of input is a stream cut short
            self.fill(&mut block, "the end-of-archive blocks")?;
            if block.iter().any(|&b| b != 0) {
                return Err(UstarError::NotUstar {
                    offset: self.offset - BLOCK as u64,
                });
            }
            self.ended = true;
            return Ok(None);
        }
        let h = parse_header(&block, offset)?;
        if h.kind == MemberKind::Regular {
            self.remaining = h.size;
            self.padding = padding(h.size);
        } else if h.size != 0 {
            return Err(UstarError::DataOnNonFile {
                offset,
                name: String::from_utf8_lossy(&h.name).into_owned(),
                kind: h.kind,
                size: h.size,
            });
        }
        Ok(Some(h))
    }

    /// The current member's data. A stream that ends inside it reads as an
    /// [`ErrorKind::UnexpectedEof`] error (see [`is_truncation`]).
    pub fn data(&mut self) -> MemberData<'_, R> {
        MemberData { r: self }
    }

    /// Read and drop whatever follows the end of the archive (blocks of
    /// zeros codadump2tar may add), so that the writer is never cut off
    /// with SIGPIPE; returns the byte count.
    pub fn drain(&mut self) -> Result<u64, UstarError> {
        let mut buf = [0u8; 8192];
        let mut n = 0u64;
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k as u64;
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(UstarError::Io(e)),
            }
        }
    }

    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), UstarError> {
        let n =
            crate::backup_root::block::read_full(&mut self.inner, buf).map_err(UstarError::Io)?;
        self.offset += n as u64;
        if n < buf.len() {
            return Err(UstarError::Truncated {
                offset: self.offset,
                what,
            });
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64, what: &'static str) -> Result<(), UstarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
            self.fill(&mut buf[..want], what)?;
            n -= want as u64;
        }
        Ok(())
    }
}

/// The data of one member, limited to its size.
pub struct MemberData<'a, R> {
    r: &'a mut UstarReader<R>,
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.r.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.r.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = loop {
            match self.r.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                TruncatedData {
                    offset: self.r.offset,
                },
            ));
        }
        self.r.offset += n as u64;
        self.r.remaining -= n as u64;
        Ok(n)
    }
}

/// The cause inside the io error a truncated member's data reads as.
#[derive(Debug, thiserror::Error)]
#[error("the tar stream ended inside a member's data, at byte {offset}")]
pub struct TruncatedData {
    pub offset: u64,
}

/// The [`UstarError::Truncated`] an io error from [`MemberData`] stands
/// for, if it is one.
#[must_use]
pub fn is_truncation(e: &std::io::Error) -> Option<UstarError> {
    let t = e.get_ref()?.downcast_ref::<TruncatedData>()?;
    Some(UstarError::Truncated {
        offset: t.offset,
        what: "a member's data",
    })
}

fn padding(size: u64) -> u64 {
    let rem = size % BLOCK as u64;
    if rem == 0 { 0 } else { BLOCK as u64 - rem }
}

/// Judge and decode one header block.
pub fn parse_header(b: &[u8; BLOCK], offset: u64) -> Result<Header, UstarError> {
    let field = |field: &'static str| UstarError::Field { offset, field };
    let stored = octal(&b[148..156]).ok_or_else(|| field("chksum"))?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += u64::from(c);
        signed += i64::from(c.cast_signed());
    }
    // why: historic writers summed signed chars; both sums are accepted, as GNU tar does
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(UstarError::Checksum { offset });
    }
    if &b[257..263] != b"ustar\0" || &b[263..265] != b"00" {
        return Err(UstarError::NotUstar { offset });
    }
    let name = cstr(&b[0..100]);
    let prefix = cstr(&b[345..500]);
    let mut full = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        full.extend_from_slice(prefix);
        full.push(b'/');
    }
    full.extend_from_slice(name);
    let kind = match b[156] {
        b'0' | 0 => MemberKind::Regular,
        b'1' => MemberKind::HardLink,
        b'2' => MemberKind::Symlink,
        b'5' => MemberKind::Directory,
        other => {
            return Err(UstarError::UnknownType {
                offset,
                flag: char::from(other),
                name: String::from_utf8_lossy(&full).into_owned(),
            });
        }
    };
    let num = |range: std::ops::Range<usize>, name: &'static str| {
        octal(&b[range]).ok_or_else(|| field(name))
    };
    let small = |v: u64, name: &'static str| u32::try_from(v).map_err(|_| field(name));
    Ok(Header {
        kind,
        name: full,
        mode: small(num(100..108, "mode")?, "mode")?,
        uid: small(num(108..116, "uid")?, "uid")?,
        gid: small(num(116..124, "gid")?, "gid")?,
        size: num(124..136, "size")?,
        mtime: i64::try_from(num(136..148, "mtime")?).map_err(|_| field("mtime"))?,
        link: cstr(&b[157..257]).to_vec(),
        offset,
    })
}

/// A NUL-terminated (or full-width) field.
fn cstr(f: &[u8]) -> &[u8] {
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    &f[..end]
}

/// An octal number field: optional leading spaces, digits, then NUL or
/// spaces. An empty field is 0. Base-256 (GNU) numbers are refused.
fn octal(f: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < f.len() && f[i] == b' ' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < f.len() && (b'0'..=b'7').contains(&f[i]) {
        v = v.checked_mul(8)?.checked_add(u64::from(f[i] - b'0'))?;
        i += 1;
    }
    if f[i..].iter().all(|&c| c == 0 || c == b' ') {
        Some(v)
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header block as codadump2tar's `TarRecd::Format` writes it.
    #[allow(clippy::too_many_arguments)] // why: one per header field, as the C struct
    pub(crate) fn header(
        kind: u8,
        prefix: &[u8],
        name: &[u8],
        mode: u32,
        uid: u32,
        size: u64,
        mtime: u64,
        link: &[u8],
    ) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[116..123].copy_from_slice(b"0000000");
        b[257..262].copy_from_slice(b"ustar");
        b[263..265].copy_from_slice(b"00");
        b[156] = kind;
        b[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
        b[108..115].copy_from_slice(format!("{uid:07o}").as_bytes());
        b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        b[136..147].copy_from_slice(format!("{mtime:011o}").as_bytes());
        b[..name.len()].copy_from_slice(name);
        b[157..157 + link.len()].copy_from_slice(link);
        b[345..345 + prefix.len()].copy_from_slice(prefix);
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
        b[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
        b[154] = 0;
        b
    }

    fn stream(members: &[(&[u8; BLOCK], &[u8])], end: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for (h, data) in members {
            v.extend_from_slice(*h);
            v.extend_from_slice(data);
            v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        v.resize(v.len() + end * BLOCK, 0);
        v
    }

    #[test]
    fn reads_codadump2tar_members_and_requires_the_end_blocks() {
        let root = header(b'5', b"", b".", 0o755, 500, 0, 1_700_000_000, b"");
        let file = header(b'0', b"./dir", b"f", 0o644, 501, 5, 1_700_000_001, b"");
        let link = header(b'1', b"./dir", b"g", 0, 0, 0, 0, b"./dir/f");
        let sym = header(b'2', b".", b"s", 0o777, 501, 0, 5, b"../x");
        let whole = stream(
            &[(&root, b""), (&file, b"hello"), (&link, b""), (&sym, b"")],
            2,
        );
        let mut r = UstarReader::new(&whole[..]);
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(
            (h.kind, h.name.as_slice(), h.mode, h.uid, h.gid),
            (MemberKind::Directory, &b"."[..], 0o755, 500, 0)
        );
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(
            (h.kind, h.name.as_slice(), h.size, h.mtime),
            (MemberKind::Regular, &b"./dir/f"[..], 5, 1_700_000_001)
        );
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"hello");
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(
            (h.kind, h.link.as_slice()),
            (MemberKind::HardLink, &b"./dir/f"[..])
        );
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(
            (h.kind, h.name.as_slice(), h.link.as_slice()),
            (MemberKind::Symlink, &b"./s"[..], &b"../x"[..])
        );
        assert!(r.next_header().unwrap().is_none());
        assert_eq!(r.drain().unwrap(), 0);

        // Data skipped unread is skipped whole.
        let mut r = UstarReader::new(&whole[..]);
        for _ in 0..4 {
            r.next_header().unwrap().unwrap();
        }
        assert!(r.next_header().unwrap().is_none());

        // Cut anywhere before the second end block: truncated, never a clean end.
        for cut in [
            0,
            100,
            512,
            1024 + 3,
            1536,
            whole.len() - BLOCK,
            whole.len() - 1,
        ] {
            let mut r = UstarReader::new(&whole[..cut]);
            let err = loop {
                match r.next_header() {
                    Ok(Some(h)) if h.kind == MemberKind::Regular => {
                        if let Err(e) = std::io::copy(&mut r.data(), &mut std::io::sink()) {
                            break is_truncation(&e).expect("a truncation");
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("a stream cut at {cut} read as complete"),
                    Err(e) => break e,
                }
            };
            assert!(
                matches!(err, UstarError::Truncated { .. }),
                "cut {cut}: {err}"
            );
            assert!(err.is_transient());
        }
    }

    #[test]
    fn refuses_what_codadump2tar_never_writes() {
        let fifo = header(b'6', b".", b"p", 0o644, 0, 0, 0, b"");
        let e = UstarReader::new(&stream(&[(&fifo, b"")], 2)[..])
            .next_header()
            .unwrap_err();
        assert!(
            matches!(e, UstarError::UnknownType { flag: '6', .. }),
            "{e}"
        );
        assert!(!e.is_transient());
        let pax = header(b'x', b"", b"././@PaxHeader", 0o644, 0, 0, 0, b"");
        let e = UstarReader::new(&stream(&[(&pax, b"")], 2)[..])
            .next_header()
            .unwrap_err();
        assert!(
            matches!(e, UstarError::UnknownType { flag: 'x', .. }),
            "{e}"
        );

        let mut bad = header(b'0', b".", b"f", 0o644, 0, 0, 0, b"");
        bad[0] ^= 1;
        let e = UstarReader::new(&stream(&[(&bad, b"")], 2)[..])
            .next_header()
            .unwrap_err();
        assert!(matches!(e, UstarError::Checksum { offset: 0 }), "{e}");

        let mut gnu = header(b'0', b"", b"f", 0o644, 0, 0, 0, b"");
        gnu[257..265].copy_from_slice(b"ustar  \0");
        gnu[148..156].fill(b' ');
        let sum: u32 = gnu.iter().map(|&c| u32::from(c)).sum();
        gnu[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let e = UstarReader::new(&stream(&[(&gnu, b"")], 2)[..])
            .next_header()
            .unwrap_err();
        assert!(matches!(e, UstarError::NotUstar { .. }), "{e}");

        let dir = header(b'5', b".", b"d", 0o755, 0, 3, 0, b"");
        let e = UstarReader::new(&stream(&[(&dir, b"abc")], 2)[..])
            .next_header()
            .unwrap_err();
        assert!(matches!(e, UstarError::DataOnNonFile { .. }), "{e}");
    }

    #[test]
    fn octal_fields() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"   644 \0"), Some(0o644));
        assert_eq!(octal(b"\0\0\0\0"), Some(0));
        assert_eq!(octal(b"77777777777\0"), Some(0o777_7777_7777));
        assert_eq!(octal(b"0008\0"), None);
        assert_eq!(octal(&[0x80, 0, 0, 1]), None);
    }
}
