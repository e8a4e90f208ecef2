//! A fast hasher for message IDs and connection handles.
//!
//! Keys are produced by this process (IDs from a counter, handles from a slab), not chosen by a
//! peer: a peer can only look IDs up, never insert them, so SipHash's flood resistance buys
//! nothing here and its cost would be paid on every FIN.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    /// Folds the 128-bit product back into 64 bits: the multiply in `write` carries entropy only
    /// upwards, and hashbrown picks buckets with the low bits. Without the fold, sequential IDs
    /// (which differ in their middle bytes) all landed in the same few buckets.
    fn finish(&self) -> u64 {
        let wide = u128::from(self.0) * u128::from(K);
        (wide as u64) ^ ((wide >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub type IdBuildHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hash};

    use super::IdBuildHasher;
    use crate::message::IdGenerator;

    /// Sequential message IDs spread over a table's buckets: of 4096 consecutive IDs, the low
    /// 12 bits of their hashes (a 4096-bucket table's index) take most of the 4096 values.
    #[test]
    fn sequential_ids_spread_over_low_bits() {
        let mut ids = IdGenerator::new(7, 1, 1_700_000_000_000);
        let build = IdBuildHasher::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4096 {
            let id = ids.next_id();
            let mut h = build.build_hasher();
            id.hash(&mut h);
            seen.insert(std::hash::Hasher::finish(&h) & 0xfff);
        }
        // A uniform hash fills about 1 - 1/e of the buckets (~2589).
        assert!(seen.len() > 2400, "only {} of 4096 buckets used", seen.len());
    }
}
