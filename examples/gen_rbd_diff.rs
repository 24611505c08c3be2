//! Generates an `rbd export-diff` v1 stream for `benches/rbd_apply.sh`:
//! `gen_rbd_diff [--incremental] SIZE OUT [SEED]` writes a diff of an image
//! of SIZE bytes (suffixes K, M, G, T; a multiple of 4 MiB) to OUT (`-` for
//! stdout).
//!
//! The full export (no from-snapshot, to `bench-1`), per 4 MiB object,
//! disjoint and in increasing order as Ceph writes them: 45% a full `w` of
//! random data, 25% a full `w` that is mostly zero runs (what Ceph's first
//! full export sends for a sparse object), 15% a `z` record, 15% nothing.
//!
//! `--incremental`: the diff from `bench-1` to `bench-2` onto the image the
//! full export of the same SEED makes: of the objects holding data, 30% sent
//! again whole with 1..32 blocks changed (the compare-then-write path) and 5%
//! zeroed; of the holes, 20% filled with new data. Deterministic for a given
//! SEED.

use std::error::Error;
use std::fs::File;
use std::io::{self, BufWriter, Write};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use strata::sources::rbd::diff::DiffWriter;

const OBJECT: usize = 4 << 20;
const BLOCK: usize = 4096;
// why: data is sliced from a pool of random bytes: generating fresh random
// bytes for 4 GiB would make the generator slower than the disk.
const POOL: usize = 16 << 20;

fn parse_size(text: &str) -> Result<u64, Box<dyn Error>> {
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 30),
        Some(b'T' | b't') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let value: u64 = digits.parse()?;
    let size = value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text} is too large"))?;
    if size % OBJECT as u64 != 0 {
        return Err(format!("size {text} is not a multiple of 4 MiB").into());
    }
    Ok(size)
}

/// Totals printed on stderr for the bench script.
#[derive(Default)]
struct Totals {
    data_records: u64,
    data_bytes: u64,
    nonzero_bytes: u64,
    zero_records: u64,
    zero_bytes: u64,
    /// Incremental: bytes of data that differ from the full export's image.
    changed_bytes: u64,
}

/// Which diff to write.
#[derive(Clone, Copy)]
enum Mode {
    /// A first export (no from-snapshot), to `bench-1`.
    Full,
    /// From `bench-1` (the full export of the same seed) to `bench-2`.
    Incremental,
}

const FULL_SNAP: &str = "bench-1";
const NEXT_SNAP: &str = "bench-2";

/// What the full export holds at one 4 MiB object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A full `w` of random data.
    Random,
    /// A full `w` that is mostly zero runs.
    Sparse,
    /// A `z` record.
    Zero,
    /// No record: a hole.
    Empty,
}

/// Draws the next object of the full export into `object` (zeros unless it
/// carries data) and returns its kind and non-zero bytes. Both modes call it
/// for every object with the same generator, so that an incremental diff
/// knows the image it applies to.
fn base_object(rng: &mut StdRng, pool: &[u8], object: &mut [u8]) -> (Kind, u64) {
    object.fill(0);
    match rng.gen_range(0..100) {
        0..45 => {
            let start = rng.gen_range(0..=(POOL - OBJECT) / BLOCK) * BLOCK;
            object.copy_from_slice(&pool[start..start + OBJECT]);
            (Kind::Random, OBJECT as u64)
        }
        45..70 => {
            let mut nonzero = 0;
            let mut at = 0;
            while at < OBJECT {
                // A zero run of 4 KiB..1 MiB, then data of 4..256 KiB.
                at += rng.gen_range(1..=256) * BLOCK;
                let len = (rng.gen_range(1..=64) * BLOCK).min(OBJECT.saturating_sub(at));
                if len > 0 {
                    let start = rng.gen_range(0..POOL - len);
                    object[at..at + len].copy_from_slice(&pool[start..start + len]);
                    nonzero += len as u64;
                }
                at += len;
            }
            (Kind::Sparse, nonzero)
        }
        70..85 => (Kind::Zero, 0),
        _ => (Kind::Empty, 0),
    }
}

/// Overwrites `count` random blocks of `object` with other random bytes.
fn change_blocks(rng: &mut StdRng, pool: &[u8], object: &mut [u8], count: usize) {
    for _ in 0..count {
        let at = rng.gen_range(0..OBJECT / BLOCK) * BLOCK;
        let start = rng.gen_range(0..POOL - BLOCK);
        object[at..at + BLOCK].copy_from_slice(&pool[start..start + BLOCK]);
    }
}

fn generate(size: u64, seed: u64, mode: Mode, out: impl Write) -> Result<Totals, Box<dyn Error>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut change = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
    let mut pool = vec![0u8; POOL];
    rng.fill_bytes(&mut pool);
    let mut object = vec![0u8; OBJECT];
    let mut totals = Totals::default();
    let mut diff = DiffWriter::new(BufWriter::with_capacity(1 << 20, out))?;
    match mode {
        Mode::Full => diff.to_snap(FULL_SNAP)?,
        Mode::Incremental => {
            diff.from_snap(FULL_SNAP)?;
            diff.to_snap(NEXT_SNAP)?;
        }
    }
    diff.size(size)?;
    for offset in (0..size).step_by(OBJECT) {
        let (kind, nonzero) = base_object(&mut rng, &pool, &mut object);
        let record = match mode {
            Mode::Full => match kind {
                Kind::Random | Kind::Sparse => Some((true, nonzero)),
                Kind::Zero => Some((false, 0)),
                Kind::Empty => None,
            },
            Mode::Incremental => {
                let has_data = matches!(kind, Kind::Random | Kind::Sparse);
                match change.gen_range(0..100) {
                    // why: the object re-sent whole with a few blocks changed:
                    // the compare-then-write path over data, at its most work
                    0..30 if has_data => {
                        let blocks = change.gen_range(1..=32);
                        change_blocks(&mut change, &pool, &mut object, blocks);
                        totals.changed_bytes += (blocks * BLOCK) as u64;
                        let nonzero = object.chunks(BLOCK).filter(|b| b.iter().any(|&x| x != 0));
                        Some((true, (nonzero.count() * BLOCK) as u64))
                    }
                    30..35 if has_data => Some((false, 0)),
                    // why: new data where the image has a hole
                    0..20 if !has_data => {
                        let start = change.gen_range(0..=(POOL - OBJECT) / BLOCK) * BLOCK;
                        object.copy_from_slice(&pool[start..start + OBJECT]);
                        totals.changed_bytes += OBJECT as u64;
                        Some((true, OBJECT as u64))
                    }
                    _ => None,
                }
            }
        };
        match record {
            Some((true, nonzero)) => {
                diff.data(offset, &object)?;
                totals.data_records += 1;
                totals.data_bytes += OBJECT as u64;
                totals.nonzero_bytes += nonzero;
            }
            Some((false, _)) => {
                diff.zero(offset, OBJECT as u64)?;
                totals.zero_records += 1;
                totals.zero_bytes += OBJECT as u64;
            }
            None => {}
        }
    }
    diff.finish()?.flush()?;
    Ok(totals)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = if args.first().map(String::as_str) == Some("--incremental") {
        args.remove(0);
        Mode::Incremental
    } else {
        Mode::Full
    };
    let (size, out, seed) = match args.as_slice() {
        [size, out] => (parse_size(size)?, out, 1),
        [size, out, seed] => (parse_size(size)?, out, seed.parse()?),
        _ => return Err("usage: gen_rbd_diff [--incremental] SIZE OUT [SEED]".into()),
    };
    let totals = if out == "-" {
        generate(size, seed, mode, io::stdout().lock())?
    } else {
        generate(size, seed, mode, File::create(out)?)?
    };
    eprintln!(
        "image_size={size} data_records={} data_bytes={} nonzero_bytes={} zero_records={} zero_bytes={} changed_bytes={}",
        totals.data_records,
        totals.data_bytes,
        totals.nonzero_bytes,
        totals.zero_records,
        totals.zero_bytes,
        totals.changed_bytes
    );
    Ok(())
}
