//! Glacier's SHA-256 tree hash: a sha256 per 1 MiB leaf, then pairs hashed
//! level by level, an odd node promoted unchanged, up to one root. Glacier
//! checks it on every upload and returns it for tree-hash aligned ranges of
//! retrieval jobs.
//!
//! Owns: the streaming hasher ([`TreeHasher`], bounded memory: one 32-byte
//! hash per MiB fed to it), combining the hashes of aligned nodes
//! ([`combine`]), and the choice of tree-hash aligned retrieval ranges
//! ([`aligned_len`]). Pure; no I/O.
//!
//! Invariant: the hash of a part or range starting at a multiple of its own
//! power-of-two size (in MiB) is a node of the whole archive's tree, so the
//! archive's tree hash is [`combine`] of its parts' hashes in order.

use sha2::{Digest, Sha256};

/// The leaf size: 1 MiB.
pub const LEAF: u64 = 1 << 20;

/// A tree hash (32 bytes).
pub type Hash = [u8; 32];

/// Hashes bytes fed in any pieces as 1 MiB leaves.
#[derive(Clone, Default)]
pub struct TreeHasher {
    leaves: Vec<Hash>,
    current: Sha256,
    in_leaf: u64,
    total: u64,
}

impl TreeHasher {
    #[must_use]
    pub fn new() -> TreeHasher {
        TreeHasher::default()
    }

    /// Feed the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            #[allow(clippy::cast_possible_truncation)] // why: at most LEAF
            let room = (LEAF - self.in_leaf) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.in_leaf += take as u64;
            self.total += take as u64;
            data = &data[take..];
            if self.in_leaf == LEAF {
                self.leaves.push(self.current.finalize_reset().into());
                self.in_leaf = 0;
            }
        }
    }

    /// Bytes fed so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.total
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The tree hash of everything fed (of an empty input: sha256 of nothing,
    /// as Glacier has it).
    #[must_use]
    pub fn finish(mut self) -> Hash {
        if self.in_leaf > 0 || self.leaves.is_empty() {
            self.leaves.push(self.current.finalize().into());
        }
        combine(&self.leaves)
    }
}

/// The root over `nodes`, consecutive nodes of one level (leaf hashes, or the
/// hashes of consecutive aligned parts of equal power-of-two size with only
/// the last one shorter).
#[must_use]
pub fn combine(nodes: &[Hash]) -> Hash {
    if nodes.is_empty() {
        return Sha256::digest([]).into();
    }
    let mut level: Vec<Hash> = nodes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => {
                    let mut h = Sha256::new();
                    h.update(a);
                    h.update(b);
                    h.finalize().into()
                }
                // why: Glacier promotes an odd last node unchanged to the next level
                [a] => *a,
                _ => unreachable!("chunks(2)"),
            })
            .collect();
    }
    level[0]
}

/// The tree hash of `data`, in one call.
#[must_use]
pub fn tree_hash(data: &[u8]) -> Hash {
    let mut h = TreeHasher::new();
    h.update(data);
    h.finish()
}

/// The longest tree-hash aligned range of an archive of `size` bytes that
/// starts at `offset` (a multiple of 1 MiB) and is at most `max_len` long:
/// a node of the archive's tree, `[k * 2^i MiB, min((k + 1) * 2^i MiB, size))`.
/// Zero when not even one leaf (or the archive's last, shorter one) fits.
#[must_use]
pub fn aligned_len(offset: u64, size: u64, max_len: u64) -> u64 {
    if offset >= size || !offset.is_multiple_of(LEAF) {
        return 0;
    }
    let mut best = 0;
    let mut node = LEAF;
    loop {
        if !offset.is_multiple_of(node) {
            break;
        }
        let len = node.min(size - offset);
        if len > max_len {
            break;
        }
        best = len;
        if offset + node >= size {
            break; // why: a larger node would reach past the archive's end: the same range
        }
        node *= 2;
    }
    best
}

/// Hex of a hash, as Glacier's headers carry it.
#[must_use]
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> Hash {
        Sha256::digest(data).into()
    }

    #[test]
    fn small_inputs_hash_as_plain_sha256() {
        assert_eq!(tree_hash(b""), sha(b""));
        assert_eq!(tree_hash(b"abc"), sha(b"abc"));
        let one = vec![7u8; 1 << 20];
        assert_eq!(tree_hash(&one), sha(&one));
    }

    #[test]
    fn three_leaves_pair_the_first_two_and_promote_the_third() {
        #[allow(clippy::cast_possible_truncation)]
        let data: Vec<u8> = (0..(2 * LEAF + 5)).map(|i| (i % 251) as u8).collect();
        let l = 1 << 20;
        let (a, b, c) = (sha(&data[..l]), sha(&data[l..2 * l]), sha(&data[2 * l..]));
        let mut ab = Sha256::new();
        ab.update(a);
        ab.update(b);
        let ab: Hash = ab.finalize().into();
        let mut root = Sha256::new();
        root.update(ab);
        root.update(c);
        let want: Hash = root.finalize().into();
        assert_eq!(tree_hash(&data), want);
        // Fed in odd pieces, the same.
        let mut h = TreeHasher::new();
        for piece in data.chunks(333_333) {
            h.update(piece);
        }
        assert_eq!(h.len(), data.len() as u64);
        assert_eq!(h.finish(), want);
    }

    #[test]
    fn the_archive_hash_is_the_combination_of_aligned_parts() {
        #[allow(clippy::cast_possible_truncation)]
        let data: Vec<u8> = (0..(5 * LEAF + 123)).map(|i| (i * 7 % 253) as u8).collect();
        for part in [LEAF, 2 * LEAF, 4 * LEAF] {
            #[allow(clippy::cast_possible_truncation)]
            let parts: Vec<Hash> = data.chunks(part as usize).map(tree_hash).collect();
            assert_eq!(combine(&parts), tree_hash(&data), "part {part}");
        }
    }

    #[test]
    fn aligned_ranges_are_nodes_of_the_tree() {
        const M: u64 = LEAF;
        // (offset, size, max, want)
        let cases = [
            (0, 10 * M, 4 * M, 4 * M),
            (0, 10 * M, 5 * M, 4 * M),
            (0, 10 * M, 100 * M, 10 * M),
            (0, 3 * M, 4 * M, 3 * M),
            (M, 10 * M, 4 * M, M),
            (2 * M, 10 * M, 4 * M, 2 * M),
            (4 * M, 10 * M, 8 * M, 4 * M),
            (8 * M, 10 * M, 8 * M, 2 * M),
            (8 * M, 9 * M + 5, 8 * M, M + 5),
            (0, 10 * M, M - 1, 0),
            (0, 100, 50, 0),
            (0, 100, 100, 100),
            (5, 10 * M, 4 * M, 0),
            (10 * M, 10 * M, 4 * M, 0),
        ];
        for (offset, size, max, want) in cases {
            assert_eq!(
                aligned_len(offset, size, max),
                want,
                "offset {offset} size {size} max {max}"
            );
        }
    }

    #[test]
    fn an_aligned_range_hashes_to_its_node() {
        #[allow(clippy::cast_possible_truncation)]
        let data: Vec<u8> = (0..(6 * LEAF + 77)).map(|i| (i * 13 % 241) as u8).collect();
        let size = data.len() as u64;
        // Walk the archive in aligned ranges of at most 4 MiB and rebuild the root.
        let mut offset = 0;
        let mut nodes = Vec::new();
        let mut lens = Vec::new();
        while offset < size {
            let len = aligned_len(offset, size, 4 * LEAF);
            assert!(len > 0);
            #[allow(clippy::cast_possible_truncation)]
            nodes.push(tree_hash(&data[offset as usize..(offset + len) as usize]));
            lens.push(len);
            offset += len;
        }
        assert_eq!(lens, [4 * LEAF, 2 * LEAF + 77]);
        assert_eq!(combine(&nodes), tree_hash(&data));
    }
}
