//! Generates an `rbd export-diff` v1 stream for `benches/rbd_apply.sh`:
//! `gen_rbd_diff SIZE OUT [SEED]` writes a diff of an image of SIZE bytes
//! (suffixes K, M, G, T; a multiple of 4 MiB) to OUT (`-` for stdout).
//!
//! Per 4 MiB object, disjoint and in increasing order as Ceph writes them:
//! 45% a full `w` of random data, 25% a full `w` that is mostly zero runs
//! (what Ceph's first full export sends for a sparse object), 15% a `z`
//! record, 15% nothing. Deterministic for a given SEED.

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
}

fn generate(size: u64, seed: u64, out: impl Write) -> Result<Totals, Box<dyn Error>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pool = vec![0u8; POOL];
    rng.fill_bytes(&mut pool);
    let mut object = vec![0u8; OBJECT];
    let mut totals = Totals::default();
    let mut diff = DiffWriter::new(BufWriter::with_capacity(1 << 20, out))?;
    diff.from_snap("bench-from")?;
    diff.to_snap("bench-to")?;
    diff.size(size)?;
    for offset in (0..size).step_by(OBJECT) {
        match rng.gen_range(0..100) {
            0..45 => {
                let start = rng.gen_range(0..=(POOL - OBJECT) / BLOCK) * BLOCK;
                diff.data(offset, &pool[start..start + OBJECT])?;
                totals.data_records += 1;
                totals.data_bytes += OBJECT as u64;
                totals.nonzero_bytes += OBJECT as u64;
            }
            45..70 => {
                object.fill(0);
                let mut at = 0;
                while at < OBJECT {
                    // A zero run of 4 KiB..1 MiB, then data of 4..256 KiB.
                    at += rng.gen_range(1..=256) * BLOCK;
                    let len = (rng.gen_range(1..=64) * BLOCK).min(OBJECT.saturating_sub(at));
                    if len > 0 {
                        let start = rng.gen_range(0..POOL - len);
                        object[at..at + len].copy_from_slice(&pool[start..start + len]);
                        totals.nonzero_bytes += len as u64;
                    }
                    at += len;
                }
                diff.data(offset, &object)?;
                totals.data_records += 1;
                totals.data_bytes += OBJECT as u64;
            }
            70..85 => {
                diff.zero(offset, OBJECT as u64)?;
                totals.zero_records += 1;
                totals.zero_bytes += OBJECT as u64;
            }
            _ => {}
        }
    }
    diff.finish()?.flush()?;
    Ok(totals)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (size, out, seed) = match args.as_slice() {
        [size, out] => (parse_size(size)?, out, 1),
        [size, out, seed] => (parse_size(size)?, out, seed.parse()?),
        _ => return Err("usage: gen_rbd_diff SIZE OUT [SEED]".into()),
    };
    let totals = if out == "-" {
        generate(size, seed, io::stdout().lock())?
    } else {
        generate(size, seed, File::create(out)?)?
    };
    eprintln!(
        "image_size={size} data_records={} data_bytes={} nonzero_bytes={} zero_records={} zero_bytes={}",
        totals.data_records,
        totals.data_bytes,
        totals.nonzero_bytes,
        totals.zero_records,
        totals.zero_bytes
    );
    Ok(())
}
