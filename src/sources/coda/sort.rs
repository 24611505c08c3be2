//! Sorting a stage's record files on disk, in memory bounded whatever the
//! volume's size: runs of at most [`RUN_BYTES`] are sorted in memory and
//! written out, then merged, [`FAN_IN`] runs at a time.
//!
//! The sort is stable (records with equal keys keep their order in the
//! input), so that of two entries with one name the later one of the
//! stream stays the later one.

use super::entry::{Entry, path_cmp};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bytes of records sorted in memory at once (names dominate: ~100 bytes
/// per entry, so ~160,000 entries a run).
pub const RUN_BYTES: usize = 16 << 20;
/// Runs merged at once: each holds one record and a 64 KiB read buffer.
pub const FAN_IN: usize = 64;

/// Which name of a record sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The entry's own path.
    Path,
    /// A hard link's target.
    Link,
}

impl SortKey {
    fn of(self, e: &Entry) -> &[u8] {
        match self {
            SortKey::Path => &e.path,
            SortKey::Link => &e.link,
        }
    }
}

/// Sort the records of `input` into `output` by `key`; temporary runs go
/// to `tmp` (a directory on the same filesystem) and are removed.
pub fn sort_file(
    input: &Path,
    output: &Path,
    tmp: &Path,
    key: SortKey,
    run_bytes: usize,
) -> std::io::Result<u64> {
    std::fs::create_dir_all(tmp)?;
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut reader = BufReader::with_capacity(1 << 16, File::open(input)?);
    let mut batch: Vec<Entry> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut count = 0u64;
    let mut next_run = 0usize;
    let mut flush = |batch: &mut Vec<Entry>, runs: &mut Vec<PathBuf>| -> std::io::Result<()> {
        batch.sort_by(|a, b| path_cmp(key.of(a), key.of(b)));
        let p = tmp.join(format!("run-{next_run}"));
        next_run += 1;
        write_all(&p, batch.iter())?;
        runs.push(p);
        batch.clear();
        Ok(())
    };
    while let Some(e) = Entry::read_from(&mut reader)? {
        count += 1;
        batch_bytes += 64 + e.path.len() + e.link.len();
        batch.push(e);
        if batch_bytes >= run_bytes {
            flush(&mut batch, &mut runs)?;
            batch_bytes = 0;
        }
    }
    if runs.is_empty() {
        // why: the common case (a volume of fewer than ~160,000 entries) never touches a run file
        batch.sort_by(|a, b| path_cmp(key.of(a), key.of(b)));
        write_all(output, batch.iter())?;
        return Ok(count);
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut runs)?;
    }
    let mut generation = 0usize;
    while runs.len() > FAN_IN {
        let mut merged = Vec::new();
        for (i, group) in runs.chunks(FAN_IN).enumerate() {
            let p = tmp.join(format!("merge-{generation}-{i}"));
            merge(group, &p, key)?;
            for r in group {
                std::fs::remove_file(r)?;
            }
            merged.push(p);
        }
        runs = merged;
        generation += 1;
    }
    merge(&runs, output, key)?;
    for r in &runs {
        std::fs::remove_file(r)?;
    }
    Ok(count)
}

fn write_all<'a>(path: &Path, entries: impl Iterator<Item = &'a Entry>) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, File::create(path)?);
    for e in entries {
        e.write_to(&mut w)?;
    }
    w.flush()
}

/// One run's current record in the merge heap, ordered so that the
/// smallest key (and, for equal keys, the earliest run) comes out first.
struct Head {
    entry: Entry,
    run: usize,
    key: SortKey,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // why: BinaryHeap is a max-heap; reversed, it yields the smallest first
        path_cmp(self.key.of(&other.entry), self.key.of(&self.entry)).then(other.run.cmp(&self.run))
    }
}

fn merge(runs: &[PathBuf], output: &Path, key: SortKey) -> std::io::Result<()> {
    let mut readers = runs
        .iter()
        .map(|p| Ok(BufReader::with_capacity(1 << 16, File::open(p)?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (run, r) in readers.iter_mut().enumerate() {
        if let Some(entry) = Entry::read_from(r)? {
            heap.push(Head { entry, run, key });
        }
    }
    let mut w = BufWriter::with_capacity(1 << 16, File::create(output)?);
    while let Some(Head { entry, run, .. }) = heap.pop() {
        entry.write_to(&mut w)?;
        if let Some(entry) = Entry::read_from(&mut readers[run])? {
            heap.push(Head { entry, run, key });
        }
    }
    w.flush()
}

/// The records of a file, one after the other.
pub struct Records {
    reader: BufReader<File>,
}

impl Records {
    pub fn open(path: &Path) -> std::io::Result<Records> {
        Ok(Records {
            reader: BufReader::with_capacity(1 << 16, File::open(path)?),
        })
    }
}

impl Iterator for Records {
    type Item = std::io::Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        Entry::read_from(&mut self.reader).transpose()
    }
}

/// A record stream read one record ahead, whose read errors come back to
/// the caller (never taken for the end of the stream).
pub struct Cursor<I> {
    inner: I,
    head: Option<Entry>,
    loaded: bool,
}

impl<I: Iterator<Item = std::io::Result<Entry>>> Cursor<I> {
    pub fn new(inner: I) -> Self {
        Cursor {
            inner,
            head: None,
            loaded: false,
        }
    }

    /// The next record, left in place.
    pub fn peek(&mut self) -> std::io::Result<Option<&Entry>> {
        if !self.loaded {
            self.head = self.inner.next().transpose()?;
            self.loaded = true;
        }
        Ok(self.head.as_ref())
    }

    /// The next record, taken.
    pub fn take(&mut self) -> std::io::Result<Option<Entry>> {
        self.peek()?;
        self.loaded = false;
        Ok(self.head.take())
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::{Content, Kind};
    use super::*;
    use rand::{Rng, SeedableRng};

    fn entry(path: &[u8], link: &[u8], seq: u64) -> Entry {
        Entry {
            kind: Kind::HardLink,
            path: path.to_vec(),
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: seq,
            link: link.to_vec(),
            content: Content::Same,
        }
    }

    #[test]
    fn sorts_through_many_runs_stably_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut all = Vec::new();
        for seq in 0..5000u64 {
            let name: Vec<u8> = (0..rng.gen_range(1..6))
                .map(|_| [b'a', b'b', b'/', b'.', b'-'][rng.gen_range(0..5)])
                .collect();
            all.push(entry(&name, format!("t{}", seq % 7).as_bytes(), seq));
        }
        write_all(&input, all.iter()).unwrap();
        for (key, run_bytes) in [
            (SortKey::Path, 1 << 20),
            (SortKey::Path, 2000),
            (SortKey::Link, 500),
        ] {
            let out = d.path().join("out");
            let tmp = d.path().join("tmp");
            assert_eq!(sort_file(&input, &out, &tmp, key, run_bytes).unwrap(), 5000);
            let got: Vec<Entry> = Records::open(&out).unwrap().map(Result::unwrap).collect();
            let mut want = all.clone();
            want.sort_by(|a, b| path_cmp(key.of(a), key.of(b)));
            assert_eq!(got, want, "{key:?} {run_bytes}");
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "runs removed");
        }
    }
}
