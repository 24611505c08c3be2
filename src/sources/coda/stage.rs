//! The stage: a dump stream, received whole and checked, before anything of
//! the stored copy changes.
//!
//! Lives at `<root>/.strata/stage/<unit>` (on the backup root's filesystem,
//! outside the unit, so it is never part of the stored volume):
//!
//! - `entries`, `links`: one record per directory, file or symlink, and per
//!   hard link, in stream order; then `entries.sorted`, `links.by-target`
//!   and `links.by-name`, sorted on disk ([`super::sort`]);
//! - `data/<n>`: the content of each regular file that differs from the
//!   stored one (or is new). A file equal to its stored copy is compared
//!   block by block as it streams by and costs no write;
//! - `COMMITTED`: written last, atomically, after everything above is
//!   synced, naming the dump's mode and backup id. A stage without it is
//!   thrown away by the next backup; a stage with it is applied (again) by
//!   the next backup before anything else ([`super::apply`]).
//!
//! Before the commit the whole stage is checked: the stream ended with its
//! end-of-archive blocks, every name stays inside the unit, every member
//! type is one Coda has, no entry lies under a non-directory, no name is
//! both a file and a hard link, and every hard link points at a regular
//! file the apply will find. So an apply only fails on a local I/O error,
//! and redoing it is always possible.
//!
//! Memory: one header, two 64 KiB blocks, and the sort's runs (bounded by
//! [`super::sort::RUN_BYTES`]), whatever the size of the volume.

use super::entry::{Content, Entry, Kind, NameProblem, is_ancestor, path_cmp};
use super::remote::DumpMode;
use super::sort::{Cursor, RUN_BYTES, Records, SortKey, sort_file};
use super::tree::Tree;
use super::ustar::{MemberKind, UstarError, UstarReader, is_truncation};
use crate::backup_root::block::{BLOCK, read_full};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Stream(#[from] UstarError),
    /// A member whose name would leave the unit.
    #[error("refused the tar member `{name}`: {problem}")]
    Name { name: String, problem: NameProblem },
    /// A dump whose entries do not make a tree.
    #[error("refused the dump: {0}")]
    Shape(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StageError {
    /// Whether another attempt at the dump may succeed (a damaged stream);
    /// a refused dump or a local I/O error will not get better.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            StageError::Stream(e) => e.is_transient(),
            StageError::Name { .. } | StageError::Shape(_) | StageError::Io { .. } => false,
        }
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |source| StageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The files of one stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub dir: PathBuf,
}

/// What a committed stage holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub mode: DumpMode,
    pub backup_id: String,
    /// Directories, files and symlinks.
    pub entries: u64,
    pub links: u64,
    /// The volume's bytes in regular files (of a full dump: the whole volume).
    pub file_bytes: u64,
    /// Files whose content was staged (new or changed), and their bytes.
    pub staged_files: u64,
    pub staged_bytes: u64,
}

impl Commit {
    fn render(&self) -> String {
        format!(
            "mode={}\nbackup-id={}\nentries={}\nlinks={}\nfile-bytes={}\nstaged-files={}\nstaged-bytes={}\n",
            match self.mode {
                DumpMode::Full => "full",
                DumpMode::Incremental => "incremental",
            },
            self.backup_id,
            self.entries,
            self.links,
            self.file_bytes,
            self.staged_files,
            self.staged_bytes
        )
    }

    fn parse(text: &str) -> Option<Commit> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
        };
        let num = |k: &str| get(k)?.parse::<u64>().ok();
        Some(Commit {
            mode: match get("mode")? {
                "full" => DumpMode::Full,
                "incremental" => DumpMode::Incremental,
                _ => return None,
            },
            backup_id: get("backup-id")?.to_owned(),
            entries: num("entries")?,
            links: num("links")?,
            file_bytes: num("file-bytes")?,
            staged_files: num("staged-files")?,
            staged_bytes: num("staged-bytes")?,
        })
    }
}

/// What a backup finds where a unit's stage lives.
#[derive(Debug)]
pub enum Found {
    Nothing,
    /// A stage an earlier backup did not finish writing: thrown away.
    Unfinished,
    /// A committed stage whose apply was interrupted: applied again.
    Committed(Commit),
}

impl Stage {
    #[must_use]
    pub fn new(dir: &Path) -> Stage {
        Stage {
            dir: dir.to_owned(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn entries_sorted(&self) -> PathBuf {
        self.file("entries.sorted")
    }
    pub fn links_by_target(&self) -> PathBuf {
        self.file("links.by-target")
    }
    pub fn links_by_name(&self) -> PathBuf {
        self.file("links.by-name")
    }
    pub fn data(&self, n: u64) -> PathBuf {
        self.dir.join("data").join(n.to_string())
    }
    fn committed(&self) -> PathBuf {
        self.file("COMMITTED")
    }

    /// What is there.
    pub fn find(&self) -> Result<Found, StageError> {
        match std::fs::read_to_string(self.committed()) {
            Ok(text) => {
                return Commit::parse(&text).map(Found::Committed).ok_or_else(|| {
                    StageError::Shape(format!(
                        "{} is not a stage commit record",
                        self.committed().display()
                    ))
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&self.committed())(e)),
        }
        Ok(if self.dir.exists() {
            Found::Unfinished
        } else {
            Found::Nothing
        })
    }

    /// Remove the stage, whatever state it is in.
    pub fn discard(&self) -> Result<(), StageError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.dir)(e)),
        }
    }
}

/// Receives one dump stream into a fresh stage.
pub struct StageWriter<'t> {
    stage: Stage,
    tree: &'t mut Tree,
    mode: DumpMode,
    entries: BufWriter<File>,
    links: BufWriter<File>,
    next_data: u64,
    commit: Commit,
    new: Vec<u8>,
    old: Vec<u8>,
}

impl<'t> StageWriter<'t> {
    /// Start a stage in `stage.dir` (which must not exist) for a dump of
    /// the volume stored in `tree`.
    pub fn create(
        stage: &Stage,
        tree: &'t mut Tree,
        mode: DumpMode,
        backup_id: &str,
    ) -> Result<Self, StageError> {
        std::fs::create_dir_all(stage.dir.join("data")).map_err(io(&stage.dir))?;
        let open = |name: &str| {
            let p = stage.file(name);
            File::create(&p)
                .map(|f| BufWriter::with_capacity(1 << 16, f))
                .map_err(io(&p))
        };
        Ok(StageWriter {
            entries: open("entries")?,
            links: open("links")?,
            stage: stage.clone(),
            tree,
            mode,
            next_data: 0,
            commit: Commit {
                mode,
                backup_id: backup_id.to_owned(),
                entries: 0,
                links: 0,
                file_bytes: 0,
                staged_files: 0,
                staged_bytes: 0,
            },
            new: vec![0u8; BLOCK],
            old: vec![0u8; BLOCK],
        })
    }

    /// Read a whole tar stream into the stage. Returns the bytes read.
    pub fn receive(&mut self, stream: impl Read) -> Result<u64, StageError> {
        let mut tar = UstarReader::new(stream);
        while let Some(h) = tar.next_header()? {
            let name = || String::from_utf8_lossy(&h.name).into_owned();
            let mut e = Entry::from_header(&h).map_err(|problem| StageError::Name {
                name: name(),
                problem,
            })?;
            if e.path.is_empty() && e.kind != Kind::Dir {
                return Err(StageError::Shape(format!(
                    "the volume root `{}` is a {:?}, not a directory",
                    name(),
                    h.kind
                )));
            }
            match h.kind {
                MemberKind::HardLink => {
                    if e.link.is_empty() || e.link == e.path {
                        return Err(StageError::Shape(format!(
                            "the hard link `{}` points at `{}`",
                            name(),
                            String::from_utf8_lossy(&h.link)
                        )));
                    }
                    self.commit.links += 1;
                    let p = self.stage.file("links");
                    e.write_to(&mut self.links).map_err(io(&p))?;
                }
                MemberKind::Regular => {
                    e.content = self.file_content(&e.path, e.size, &mut tar.data())?;
                    self.commit.file_bytes += e.size;
                    self.add(&e)?;
                }
                MemberKind::Directory | MemberKind::Symlink => self.add(&e)?,
            }
        }
        tar.drain()?;
        Ok(tar.offset())
    }

    fn add(&mut self, e: &Entry) -> Result<(), StageError> {
        self.commit.entries += 1;
        let p = self.stage.file("entries");
        e.write_to(&mut self.entries).map_err(io(&p))
    }

    /// Compare a regular file's data with the stored copy as it streams by;
    /// stage it only if it differs (or is new).
    fn file_content(
        &mut self,
        path: &[u8],
        size: u64,
        data: &mut impl Read,
    ) -> Result<Content, StageError> {
        let stored = self.stored_file(path, size)?;
        let mut offset = 0u64;
        // why: the block read from the stream when the difference showed
        let mut held = 0usize;
        if let Some(stored) = &stored {
            loop {
                let n = read_full(data, &mut self.new).map_err(|e| stream_error(&e, path))?;
                if n == 0 {
                    return Ok(Content::Same);
                }
                let have = read_at_full(stored, &mut self.old[..n], offset)
                    .map_err(io(&self.tree.abs(path)))?;
                if have != n || self.new[..n] != self.old[..n] {
                    held = n;
                    break;
                }
                offset += n as u64;
            }
        }
        // Differs from byte `offset`'s block on (or no stored copy): stage
        // the stored prefix, the block in hand, then the rest of the stream.
        let n_data = self.next_data;
        self.next_data += 1;
        let dest = self.stage.data(n_data);
        let mut out = SparseFile::create(&dest).map_err(io(&dest))?;
        if let Some(stored) = &stored {
            let mut at = 0u64;
            while at < offset {
                let want = usize::try_from((offset - at).min(BLOCK as u64)).unwrap_or(BLOCK);
                let n = read_at_full(stored, &mut self.old[..want], at)
                    .map_err(io(&self.tree.abs(path)))?;
                out.write_block(&self.old[..n]).map_err(io(&dest))?;
                at += n as u64;
                if n < want {
                    break;
                }
            }
            out.write_block(&self.new[..held]).map_err(io(&dest))?;
        }
        loop {
            let n = read_full(data, &mut self.new).map_err(|e| stream_error(&e, path))?;
            if n == 0 {
                break;
            }
            out.write_block(&self.new[..n]).map_err(io(&dest))?;
        }
        let written = out.finish().map_err(io(&dest))?;
        if written != size {
            return Err(StageError::Shape(format!(
                "`{}`: {written} bytes staged for a member of {size}",
                String::from_utf8_lossy(path)
            )));
        }
        self.commit.staged_files += 1;
        self.commit.staged_bytes += size;
        Ok(Content::Staged(n_data))
    }

    /// The stored regular file at `path`, if there is one of `size` bytes
    /// reached through real directories only (anything else compares as
    /// different).
    fn stored_file(&mut self, path: &[u8], size: u64) -> Result<Option<File>, StageError> {
        let abs = self.tree.abs(path);
        if !self.tree.parents_are_dirs(path).map_err(io(&abs))? {
            return Ok(None);
        }
        match self.tree.lstat(path).map_err(io(&abs))? {
            Some(m) if m.is_file() && m.len() == size => {}
            _ => return Ok(None),
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&abs)
            .map_err(io(&abs))?;
        Ok(Some(f))
    }

    /// Sort, check and commit the stage: after this returns, the next
    /// backup applies it even if this process dies.
    pub fn commit(mut self) -> Result<Commit, StageError> {
        let entries = self.stage.file("entries");
        let links = self.stage.file("links");
        self.entries.flush().map_err(io(&entries))?;
        self.links.flush().map_err(io(&links))?;
        let tmp = self.stage.file("tmp");
        let sorted = self.stage.entries_sorted();
        sort_file(&entries, &sorted, &tmp, SortKey::Path, RUN_BYTES).map_err(io(&sorted))?;
        let by_target = self.stage.links_by_target();
        sort_file(&links, &by_target, &tmp, SortKey::Link, RUN_BYTES).map_err(io(&by_target))?;
        let by_name = self.stage.links_by_name();
        sort_file(&links, &by_name, &tmp, SortKey::Path, RUN_BYTES).map_err(io(&by_name))?;
        for p in [&entries, &links] {
            std::fs::remove_file(p).map_err(io(p))?;
        }
        check_shape(&self.stage, self.tree, self.mode)?;
        // why: one syncfs makes every data file and record durable before
        // the marker exists, instead of an fsync per staged file
        let d = File::open(&self.stage.dir).map_err(io(&self.stage.dir))?;
        nix::unistd::syncfs(&d).map_err(|e| io(&self.stage.dir)(e.into()))?;
        let marker = self.stage.committed();
        crate::backup_root::write_atomic(&marker, self.commit.render().as_bytes())
            .map_err(io(&marker))?;
        Ok(self.commit)
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// A truncated member reads as the stream error it is; any other read error
/// is the transport's (also a stream error).
fn stream_error(e: &std::io::Error, path: &[u8]) -> StageError {
    match is_truncation(e) {
        Some(t) => StageError::Stream(t),
        None => StageError::Stream(UstarError::Io(std::io::Error::new(
            e.kind(),
            format!("reading `{}`: {e}", String::from_utf8_lossy(path)),
        ))),
    }
}

fn read_at_full(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A staged file written block by block, blocks of zeros left as holes (a
/// new file is renamed into the unit as it is, so it must be as sparse as
/// `BlockUpdate` would make it).
struct SparseFile {
    file: File,
    len: u64,
}

impl SparseFile {
    fn create(path: &Path) -> std::io::Result<SparseFile> {
        Ok(SparseFile {
            file: File::create(path)?,
            len: 0,
        })
    }

    fn write_block(&mut self, b: &[u8]) -> std::io::Result<()> {
        if b.iter().all(|&c| c == 0) {
            self.file
                .seek(SeekFrom::Current(i64::try_from(b.len()).expect("a block")))?;
        } else {
            self.file.write_all(b)?;
        }
        self.len += b.len() as u64;
        Ok(())
    }

    fn finish(self) -> std::io::Result<u64> {
        self.file.set_len(self.len)?;
        Ok(self.len)
    }
}

/// The last of each run of records with one name (a later member of the
/// stream replaces an earlier one with its name, as tar extracts), counting
/// the ones dropped.
pub struct LastOfEach<I: Iterator<Item = std::io::Result<Entry>>> {
    inner: std::iter::Peekable<I>,
    pub dropped: u64,
}

impl<I: Iterator<Item = std::io::Result<Entry>>> LastOfEach<I> {
    pub fn new(inner: I) -> Self {
        LastOfEach {
            inner: inner.peekable(),
            dropped: 0,
        }
    }
}

impl<I: Iterator<Item = std::io::Result<Entry>>> Iterator for LastOfEach<I> {
    type Item = std::io::Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut cur = match self.inner.next()? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        while let Some(Ok(next)) = self.inner.peek() {
            if next.path != cur.path {
                break;
            }
            self.dropped += 1;
            cur = match self.inner.next() {
                Some(Ok(e)) => e,
                _ => unreachable!("peeked an Ok record"),
            };
        }
        Some(Ok(cur))
    }
}

/// The next of two path-sorted cursors (the first on a tie), and which
/// one it came from (`true`: the first).
pub fn next_of<A, B>(a: &mut Cursor<A>, b: &mut Cursor<B>) -> std::io::Result<Option<(Entry, bool)>>
where
    A: Iterator<Item = std::io::Result<Entry>>,
    B: Iterator<Item = std::io::Result<Entry>>,
{
    let first = match (a.peek()?, b.peek()?) {
        (None, None) => return Ok(None),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (Some(x), Some(y)) => path_cmp(&x.path, &y.path).is_le(),
    };
    let e = if first { a.take()? } else { b.take()? };
    Ok(e.map(|e| (e, first)))
}

/// Check that the sorted stage makes a tree (see the module documentation).
fn check_shape(stage: &Stage, tree: &mut Tree, mode: DumpMode) -> Result<(), StageError> {
    let shape = |s: String| StageError::Shape(s);
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let sorted = stage.entries_sorted();
    let by_name = stage.links_by_name();
    let by_target = stage.links_by_target();
    let open = |p: &Path| -> Result<_, StageError> {
        Ok(Cursor::new(LastOfEach::new(
            Records::open(p).map_err(io(p))?,
        )))
    };

    // Every name in path order: no entry under a non-directory, no name both
    // an entry and a hard link.
    let mut mains = open(&sorted)?;
    let mut links = open(&by_name)?;
    let mut chain: Vec<(Vec<u8>, Kind)> = Vec::new();
    while let Some((e, _)) = next_of(&mut mains, &mut links).map_err(io(&stage.dir))? {
        while chain.last().is_some_and(|(p, _)| !is_ancestor(p, &e.path)) {
            chain.pop();
        }
        if let Some((p, k)) = chain.last()
            && *k != Kind::Dir
        {
            return Err(shape(format!(
                "`{}` lies under `{}`, which is a {k:?}",
                show(&e.path),
                show(p)
            )));
        }
        if let Some(l) = links.peek().map_err(io(&by_name))?
            && l.path == e.path
        {
            return Err(shape(format!(
                "`{}` is both a {:?} and a hard link",
                show(&e.path),
                e.kind
            )));
        }
        chain.push((e.path, e.kind));
    }

    // Every hard link points at a regular file: one of the dump, or (an
    // incremental dump holds only what changed) one already stored.
    let mut mains = open(&sorted)?;
    let mut targets = Cursor::new(Records::open(&by_target).map_err(io(&by_target))?);
    while let Some(l) = targets.take().map_err(io(&by_target))? {
        let mut target = None;
        while let Some(m) = mains.peek().map_err(io(&sorted))? {
            match path_cmp(&m.path, &l.link) {
                std::cmp::Ordering::Less => {
                    mains.take().map_err(io(&sorted))?;
                }
                std::cmp::Ordering::Equal => {
                    target = Some(m.kind);
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        let ok = match target {
            Some(k) => k == Kind::File,
            None if mode == DumpMode::Full => false,
            None => {
                let abs = tree.abs(&l.link);
                tree.parents_are_dirs(&l.link).map_err(io(&abs))?
                    && tree
                        .lstat(&l.link)
                        .map_err(io(&abs))?
                        .is_some_and(|m| m.is_file())
            }
        };
        if !ok {
            return Err(shape(format!(
                "the hard link `{}` points at `{}`, which is not a regular file {}",
                show(&l.path),
                show(&l.link),
                match (target, mode) {
                    (Some(_), _) => "of the dump",
                    (None, DumpMode::Full) => "of the dump (a full dump holds every file)",
                    (None, DumpMode::Incremental) => "of the dump or of the stored copy",
                }
            )));
        }
    }
    Ok(())
}
