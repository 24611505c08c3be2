//! strata's own reading of a tar stream, beside GNU tar's listing: the one
//! thing tar's listing cannot give safely is a directory's dumpdir (the
//! names an incremental archive says the directory holds; tar prints it
//! raw, so a name with a newline could pose as another entry). [`Walker`]
//! is fed the same bytes tar lists and yields one [`Walked`] per member,
//! with its dumpdir; unpack matches them to tar's listing member by member
//! (name and kind) and refuses the archive at the first difference, so the
//! dumpdirs it models are the ones tar will apply.
//!
//! It reads only what strata's tar writes (POSIX/pax as GNU tar makes it
//! with `--xattrs`, GNU long names, the `V` label and `D` dumpdirs of GNU
//! format) and refuses the rest: a bad header checksum (tar would skip to
//! the next header, where the two readings could part), old GNU sparse
//! members, multi-volume pieces, a global header with anything but the
//! volume label, a malformed or repeated pax record that decides a name, a
//! size or a dumpdir.
//!
//! Memory: headers, pax records, long names and dumpdirs are held (each at
//! most [`MAX_META`] bytes); member data is only counted.

/// The largest pax header, long name or dumpdir read.
pub const MAX_META: usize = 256 << 20;

const BLOCK: usize = 512;

/// What a member is, as far as matching it to tar's listing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkKind {
    Label,
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
    Contiguous,
}

impl WalkKind {
    /// The type letter `tar -tv` shows for it.
    #[must_use]
    pub fn listing_char(self) -> char {
        match self {
            WalkKind::Label => 'V',
            WalkKind::File => '-',
            WalkKind::HardLink => 'h',
            WalkKind::Symlink => 'l',
            WalkKind::Char => 'c',
            WalkKind::Block => 'b',
            WalkKind::Dir => 'd',
            WalkKind::Fifo => 'p',
            WalkKind::Contiguous => 'C',
        }
    }
}

/// One member as the walker read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    pub kind: WalkKind,
    /// The name tar uses (pax `path`, GNU long name or the header's), raw.
    pub name: Vec<u8>,
    /// The dumpdir of an incremental archive's directory, raw.
    pub dumpdir: Option<Vec<u8>>,
}

/// Where the walker is in the stream.
enum State {
    /// Collecting a header block.
    Header,
    /// Collecting `want` payload bytes of a metadata member, then `pad`.
    Collect { want: usize, what: Meta, pad: u64 },
    /// Skipping a member's data and padding.
    Skip(u64),
    /// After the end-of-archive block: the rest is ignored.
    End,
    /// After an error: nothing more is read.
    Failed,
}

#[derive(Clone, Copy)]
enum Meta {
    Pax,
    Global,
    LongName,
    LongLink,
    /// A GNU `D` member's dumpdir; the member is emitted when it is whole.
    Dumpdir,
}

/// What extended headers said about the next member.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    sparse_name: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    size: Option<u64>,
    dumpdir: Option<Vec<u8>>,
    /// A `D` member waiting for its dumpdir.
    dumpdir_member: Option<Vec<u8>>,
}

/// A push parser of a tar stream: [`Walker::feed`] it the bytes in order;
/// each member is passed to `emit` as soon as it is known.
pub struct Walker<F: FnMut(Result<Walked, String>)> {
    state: State,
    buf: Vec<u8>,
    pending: Pending,
    emit: F,
}

impl<F: FnMut(Result<Walked, String>)> Walker<F> {
    pub fn new(emit: F) -> Walker<F> {
        Walker {
            state: State::Header,
            buf: Vec::with_capacity(BLOCK),
            pending: Pending::default(),
            emit,
        }
    }

    /// Read the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::End | State::Failed => return,
                State::Skip(n) => {
                    let k = usize::try_from(*n).unwrap_or(usize::MAX).min(data.len());
                    *n -= k as u64;
                    data = &data[k..];
                    if *n == 0 {
                        self.state = State::Header;
                    }
                }
                State::Header => {
                    let k = (BLOCK - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if self.buf.len() == BLOCK {
                        let block = std::mem::take(&mut self.buf);
                        if let Err(e) = self.header(&block) {
                            self.fail(e);
                        }
                    }
                }
                State::Collect { want, what, pad } => {
                    let k = (*want - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if self.buf.len() == *want {
                        let (what, pad) = (*what, *pad);
                        let payload = std::mem::take(&mut self.buf);
                        self.state = if pad == 0 {
                            State::Header
                        } else {
                            State::Skip(pad)
                        };
                        if let Err(e) = self.collected(what, payload) {
                            self.fail(e);
                        }
                    }
                }
            }
        }
    }

    /// The stream ended: anything half read is an error.
    pub fn finish(mut self) {
        let whole = matches!(self.state, State::End | State::Failed)
            || (matches!(self.state, State::Header) && self.buf.is_empty());
        if !whole {
            self.fail("the archive ends in the middle of a member".into());
        }
    }

    fn fail(&mut self, e: String) {
        self.state = State::Failed;
        (self.emit)(Err(e));
    }

    fn header(&mut self, h: &[u8]) -> Result<(), String> {
        if h.iter().all(|b| *b == 0) {
            if self.pending.dumpdir_member.is_some()
                || self.pending.path.is_some()
                || self.pending.long_name.is_some()
            {
                return Err("extended headers with no member after them".into());
            }
            self.state = State::End;
            return Ok(());
        }
        check_sum(h)?;
        let kind = h[156];
        let own = parse_size(&h[124..136])?;
        // why: a pax size is the next member's data size; extended headers and long names keep their own
        let size = if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            own
        } else {
            self.pending.size.take().unwrap_or(own)
        };
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let collect = |what: Meta| -> Result<State, String> {
            let want = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_META)
                .ok_or_else(|| format!("an extended header of {size} bytes"))?;
            Ok(if want == 0 {
                State::Header
            } else {
                State::Collect {
                    want,
                    what,
                    pad: padded - size,
                }
            })
        };
        let member = |k: WalkKind| Some(k);
        let walk_kind = match kind {
            b'x' => {
                self.state = collect(Meta::Pax)?;
                return Ok(());
            }
            b'g' => {
                self.state = collect(Meta::Global)?;
                return Ok(());
            }
            b'L' => {
                self.state = collect(Meta::LongName)?;
                return Ok(());
            }
            b'K' => {
                self.state = collect(Meta::LongLink)?;
                return Ok(());
            }
            b'D' => {
                let name = self.member_name(h);
                self.pending.dumpdir_member = Some(name);
                self.state = collect(Meta::Dumpdir)?;
                if matches!(self.state, State::Header) {
                    self.collected(Meta::Dumpdir, Vec::new())?;
                }
                return Ok(());
            }
            b'V' => member(WalkKind::Label),
            b'0' | 0 => member(WalkKind::File),
            b'1' => member(WalkKind::HardLink),
            b'2' => member(WalkKind::Symlink),
            b'3' => member(WalkKind::Char),
            b'4' => member(WalkKind::Block),
            b'5' => member(WalkKind::Dir),
            b'6' => member(WalkKind::Fifo),
            b'7' => member(WalkKind::Contiguous),
            other => {
                return Err(format!(
                    "a member of type {:?}, which strata never writes",
                    char::from(other)
                ));
            }
        };
        let Some(k) = walk_kind else {
            return Ok(());
        };
        let name = self.member_name(h);
        let dumpdir = self.pending.dumpdir.take();
        if dumpdir.is_some() && k != WalkKind::Dir {
            return Err("a dumpdir on a member that is not a directory".into());
        }
        self.pending = Pending::default();
        (self.emit)(Ok(Walked {
            kind: k,
            name,
            dumpdir,
        }));
        self.state = if padded == 0 {
            State::Header
        } else {
            State::Skip(padded)
        };
        Ok(())
    }

    /// The name tar gives the member of header `h`: GNU.sparse.name, pax
    /// path, GNU long name, or the header's own (ustar prefix included).
    fn member_name(&mut self, h: &[u8]) -> Vec<u8> {
        if let Some(n) = self.pending.sparse_name.take() {
            return n;
        }
        if let Some(n) = self.pending.path.take() {
            return n;
        }
        if let Some(n) = self.pending.long_name.take() {
            return n;
        }
        let name = cstr(&h[0..100]);
        // why: POSIX ustar ("ustar\0" "00") has a prefix field; GNU's own format uses those bytes otherwise
        if &h[257..263] == b"ustar\0" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(name);
                return full;
            }
        }
        name.to_vec()
    }

    fn collected(&mut self, what: Meta, payload: Vec<u8>) -> Result<(), String> {
        match what {
            Meta::LongName => {
                if self.pending.long_name.is_some() {
                    return Err("two GNU long names for one member".into());
                }
                self.pending.long_name = Some(cstr(&payload).to_vec());
            }
            // why: a link target is not matched against the listing's, only its name is
            Meta::LongLink => {}
            Meta::Global => {
                for (k, v) in pax_records(&payload)? {
                    if k != b"GNU.volume.label" {
                        return Err(format!(
                            "a global header with {:?}, which strata never writes",
                            String::from_utf8_lossy(&k)
                        ));
                    }
                    (self.emit)(Ok(Walked {
                        kind: WalkKind::Label,
                        name: v,
                        dumpdir: None,
                    }));
                }
            }
            Meta::Pax => {
                let p = &mut self.pending;
                for (k, v) in pax_records(&payload)? {
                    let slot = match k.as_slice() {
                        b"path" => &mut p.path,
                        b"GNU.sparse.name" => &mut p.sparse_name,
                        b"GNU.dumpdir" => &mut p.dumpdir,
                        b"size" => {
                            if p.size.is_some() {
                                return Err("two pax sizes for one member".into());
                            }
                            let s = std::str::from_utf8(&v)
                                .ok()
                                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                                .and_then(|s| s.parse().ok())
                                .ok_or("a pax size that is not a number")?;
                            p.size = Some(s);
                            continue;
                        }
                        b"GNU.volume.label" => {
                            return Err("a volume label in a member's header".into());
                        }
                        _ => continue,
                    };
                    if slot.is_some() {
                        return Err(format!(
                            "two pax {:?} records for one member",
                            String::from_utf8_lossy(&k)
                        ));
                    }
                    *slot = Some(v);
                }
            }
            Meta::Dumpdir => {
                let name = self.pending.dumpdir_member.take().unwrap_or_default();
                if self.pending.dumpdir.is_some() {
                    return Err("two dumpdirs for one member".into());
                }
                self.pending = Pending::default();
                (self.emit)(Ok(Walked {
                    kind: WalkKind::Dir,
                    name,
                    dumpdir: Some(payload),
                }));
            }
        }
        Ok(())
    }
}

/// The bytes of a NUL-padded field up to its first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    &b[..end]
}

/// A numeric header field as GNU tar reads it: octal digits between
/// optional leading spaces and trailing spaces or NULs, or base-256.
fn parse_size(f: &[u8]) -> Result<u64, String> {
    if f[0] & 0x80 != 0 {
        if f[0] != 0x80 {
            return Err("a negative size".into());
        }
        let mut v: u64 = 0;
        for b in &f[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*b)))
                .ok_or("a size too large")?;
        }
        return Ok(v);
    }
    let s = f
        .iter()
        .skip_while(|b| **b == b' ')
        .copied()
        .collect::<Vec<u8>>();
    let digits = s.iter().take_while(|b| (b'0'..=b'7').contains(*b)).count();
    if s[digits..].iter().any(|b| *b != b' ' && *b != 0) {
        return Err(format!("a size field {:?}", String::from_utf8_lossy(f)));
    }
    s[..digits].iter().try_fold(0u64, |v, d| {
        v.checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| "a size too large".to_owned())
    })
}

/// Whether header `h`'s checksum is right, as GNU tar judges it (the sum of
/// its bytes, the checksum field counted as spaces, unsigned or signed).
fn check_sum(h: &[u8]) -> Result<(), String> {
    let field = &h[148..156];
    let recorded = parse_size(field).map_err(|_| "a header checksum field that is not a number")?;
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b.cast_signed());
    }
    let recorded = i64::try_from(recorded).unwrap_or(-1);
    if recorded == unsigned || recorded == signed {
        Ok(())
    } else {
        Err("a header with a bad checksum".into())
    }
}

/// The records of a pax extended header: `LEN KEY=VALUE\n`, LEN counting
/// the whole record.
/// A pax record: keyword and value, raw.
type PaxRecord = (Vec<u8>, Vec<u8>);

fn pax_records(mut b: &[u8]) -> Result<Vec<PaxRecord>, String> {
    let mut out = Vec::new();
    // why: GNU tar pads an extended header with NULs to its block; they end the records
    while !b.is_empty() && b[0] != 0 {
        let sp = b
            .iter()
            .position(|c| *c == b' ')
            .ok_or("a pax record without a length")?;
        let len: usize = std::str::from_utf8(&b[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or("a pax record with a bad length")?;
        if len <= sp + 1 || len > b.len() || b[len - 1] != b'\n' {
            return Err("a malformed pax record".into());
        }
        let rec = &b[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|c| *c == b'=')
            .ok_or("a pax record without `=`")?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        b = &b[len..];
    }
    if b.iter().any(|c| *c != 0) {
        return Err("bytes after the pax records".into());
    }
    Ok(out)
}

/// One entry of a dumpdir: `Y` a file written in this archive, `N` a file
/// kept from before, `D` a directory (strata's archives hold no others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpEntry {
    Written,
    Kept,
    Dir,
}

/// The entries of a dumpdir, name -> kind; `Err` for anything strata's
/// archives never hold (rename records `R`/`T`, a temporary directory `X`,
/// an unknown letter, a name that is empty, `.`, `..` or has a `/`, a name
/// twice).
pub fn parse_dumpdir(
    d: &[u8],
) -> Result<std::collections::HashMap<Vec<u8>, DumpEntry>, &'static str> {
    let mut out = std::collections::HashMap::new();
    let mut rest = d;
    loop {
        let end = rest
            .iter()
            .position(|c| *c == 0)
            .ok_or("has a dumpdir that is not terminated")?;
        let entry = &rest[..end];
        rest = &rest[end + 1..];
        let Some((&letter, name)) = entry.split_first() else {
            break;
        };
        let kind = match letter {
            b'Y' => DumpEntry::Written,
            b'N' => DumpEntry::Kept,
            b'D' => DumpEntry::Dir,
            b'R' | b'T' | b'X' => {
                return Err("has a dumpdir with rename records, which strata never writes");
            }
            _ => return Err("has a dumpdir entry of a kind strata never writes"),
        };
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return Err("has a dumpdir entry whose name is not one plain name");
        }
        if out.insert(name.to_vec(), kind).is_some() {
            return Err("has a dumpdir naming an entry twice");
        }
    }
    if rest.iter().any(|c| *c != 0) {
        return Err("has bytes after the end of its dumpdir");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Cmd;

    fn walk(bytes: &[u8], chunk: usize) -> Vec<Result<Walked, String>> {
        let mut out = Vec::new();
        let mut w = Walker::new(|m| out.push(m));
        for c in bytes.chunks(chunk.max(1)) {
            w.feed(c);
        }
        w.finish();
        out
    }

    /// A tree with a long name, a hard link, a symlink, a sparse file and
    /// xattrs, archived by GNU tar as strata packs (full, then incremental).
    fn archives() -> Option<(Vec<u8>, Vec<u8>)> {
        let d = tempfile::tempdir().unwrap();
        let u = d.path().join("src/u");
        std::fs::create_dir_all(u.join("sub")).unwrap();
        std::fs::write(u.join("f"), "x").unwrap();
        std::fs::write(u.join("n".repeat(150)), "long").unwrap();
        std::fs::hard_link(u.join("f"), u.join("sub/h")).unwrap();
        std::os::unix::fs::symlink("f", u.join("s")).unwrap();
        let sparse = std::fs::File::create(u.join("sparse")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        let snar = d.path().join("snar");
        let tar = |incremental: bool| {
            let mut c = Cmd::new("tar").args([
                "-c",
                "--format=gnu",
                "--sparse",
                "--xattrs",
                "--acls",
                "--pax-option=delete=atime,globexthdr.mtime=0",
                "-V",
                "20260101-1 u",
            ]);
            if incremental {
                c = c.arg(format!("--listed-incremental={}", snar.display()));
            }
            c.arg("-C")
                .arg(d.path().join("src"))
                .args(["-f", "-", "u"])
                .run()
        };
        let plain = tar(false).ok()?.stdout;
        let inc = tar(true).ok()?.stdout;
        Some((plain, inc))
    }

    #[test]
    fn the_walk_names_every_member_and_reads_dumpdirs_in_any_chunking() {
        let Some((plain, inc)) = archives() else {
            eprintln!("*** SKIPPED: no GNU tar ***");
            return;
        };
        for chunk in [1, 7, 512, 1 << 20] {
            let got: Vec<Walked> = walk(&plain, chunk)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let names: Vec<String> = got
                .iter()
                .map(|m| {
                    format!(
                        "{} {}",
                        m.kind.listing_char(),
                        String::from_utf8_lossy(&m.name)
                    )
                })
                .collect();
            assert_eq!(names[0], "V 20260101-1 u");
            assert!(names.contains(&"d u/".to_owned()), "{names:?}");
            assert!(
                names.contains(&format!("- u/{}", "n".repeat(150))),
                "{names:?}"
            );
            assert!(names.contains(&"- u/sparse".to_owned()), "{names:?}");
            assert!(names.contains(&"l u/s".to_owned()), "{names:?}");
            assert!(got.iter().all(|m| m.dumpdir.is_none()));
            let inc: Vec<Walked> = walk(&inc, chunk).into_iter().map(Result::unwrap).collect();
            let top = inc
                .iter()
                .find(|m| m.name == b"u/" || m.name == b"u")
                .unwrap();
            let dd = parse_dumpdir(top.dumpdir.as_ref().unwrap()).unwrap();
            assert_eq!(dd.get(&b"f"[..]), Some(&DumpEntry::Written));
            assert_eq!(dd.get(&b"sub"[..]), Some(&DumpEntry::Dir));
            assert_eq!(dd.len(), 5, "{dd:?}");
        }
    }

    #[test]
    fn damaged_or_foreign_streams_are_refused() {
        let Some((plain, _)) = archives() else {
            return;
        };
        let last_err = |b: &[u8]| walk(b, 4096).into_iter().find_map(Result::err);
        assert_eq!(last_err(&plain), None);
        // a flipped byte in a header: its checksum no longer holds
        let mut bad = plain.clone();
        bad[1030] ^= 1;
        assert!(last_err(&bad).is_some_and(|e| e.contains("checksum")));
        // cut in the middle of a member
        assert!(last_err(&plain[..plain.len() / 2 + 7]).is_some_and(|e| e.contains("middle")));
        // an old GNU sparse member
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"u/sp");
        h[124..135].copy_from_slice(b"00000000000");
        h[156] = b'S';
        h[257..265].copy_from_slice(b"ustar  \0");
        let sum: u32 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(*b)
                }
            })
            .sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        assert!(
            last_err(&h).is_some_and(|e| e.contains("never writes")),
            "{:?}",
            last_err(&h)
        );
    }

    #[test]
    fn pax_records_and_dumpdirs_are_judged() {
        assert_eq!(
            pax_records(b"11 path=ab\n13 size=1234\n\0\0").unwrap(),
            vec![
                (b"path".to_vec(), b"ab".to_vec()),
                (b"size".to_vec(), b"1234".to_vec())
            ]
        );
        for bad in [&b"12 path=ab\n"[..], b"x path=a\n", b"9 path=ab", b"6 pa\n"] {
            assert!(pax_records(bad).is_err(), "{bad:?}");
        }
        let dd = parse_dumpdir(b"Ya\0Nb\0Dc\0\0").unwrap();
        assert_eq!(dd.len(), 3);
        assert_eq!(dd[&b"b"[..]], DumpEntry::Kept);
        for (bad, why) in [
            (&b"Rold\0Tnew\0\0"[..], "rename"),
            (b"Xtmp\0\0", "rename"),
            (b"Qa\0\0", "kind"),
            (b"Ya/b\0\0", "plain name"),
            (b"Y..\0\0", "plain name"),
            (b"Ya\0Na\0\0", "twice"),
            (b"Ya", "terminated"),
            (b"Ya\0\0junk", "after"),
        ] {
            assert!(
                parse_dumpdir(bad).is_err_and(|e| e.contains(why)),
                "{bad:?}"
            );
        }
        assert_eq!(parse_size(b"00000001750\0").unwrap(), 1000);
        assert_eq!(parse_size(b"     1750 \0 ").unwrap(), 1000);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 5;
        assert_eq!(parse_size(&b256).unwrap(), 5);
        assert!(parse_size(b"0000000175x\0").is_err());
    }
}
