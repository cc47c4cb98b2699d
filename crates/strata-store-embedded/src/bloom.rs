//! A growable blocked Bloom filter over event ids: it answers "certainly not stored" so
//! that an append with `any` or `exists` only searches a stream for a repeated id when the
//! id may really be there. About 1.3 bytes per event.

/// Keys per generation; a new generation starts when one is full.
const GENERATION_KEYS: usize = 1 << 20;
/// 512-bit blocks per generation (10 bits per key).
const GENERATION_BLOCKS: usize = GENERATION_KEYS * 10 / 512;
/// Bits set per key, all inside one 64-byte block (one cache line).
const BITS_PER_KEY: u32 = 7;

#[derive(Default)]
pub(crate) struct IdFilter {
    generations: Vec<Generation>,
}

struct Generation {
    blocks: Box<[[u64; 8]]>,
    keys: usize,
}

impl Generation {
    fn new() -> Self {
        Self {
            blocks: vec![[0u64; 8]; GENERATION_BLOCKS].into_boxed_slice(),
            keys: 0,
        }
    }
}

/// Two independent 64-bit hashes of an id (ids are random or time-ordered UUIDs, so
/// mixing their halves is enough).
fn hashes(id: &[u8; 16]) -> (u64, u64) {
    let a = u64::from_le_bytes(id[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(id[8..].try_into().unwrap_or_default());
    let h1 = mix(a ^ b.rotate_left(29));
    let h2 = mix(b ^ 0x9e37_79b9_7f4a_7c15 ^ a.rotate_left(41)) | 1;
    (h1, h2)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn probe(id: &[u8; 16]) -> (usize, [u16; BITS_PER_KEY as usize]) {
    let (h1, h2) = hashes(id);
    let block = (h1 % GENERATION_BLOCKS as u64) as usize;
    let mut bits = [0u16; BITS_PER_KEY as usize];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = (h2.wrapping_add((i as u64).wrapping_mul(h1 >> 17)) % 512) as u16;
    }
    (block, bits)
}

impl IdFilter {
    pub(crate) fn insert(&mut self, id: &[u8; 16]) {
        if self
            .generations
            .last()
            .is_none_or(|g| g.keys >= GENERATION_KEYS)
        {
            self.generations.push(Generation::new());
        }
        let (block, bits) = probe(id);
        if let Some(generation) = self.generations.last_mut() {
            let b = &mut generation.blocks[block];
            for bit in bits {
                b[(bit / 64) as usize] |= 1 << (bit % 64);
            }
            generation.keys += 1;
        }
    }

    /// False means the id was never inserted; true means it may have been.
    pub(crate) fn may_contain(&self, id: &[u8; 16]) -> bool {
        let (block, bits) = probe(id);
        self.generations.iter().any(|g| {
            let b = &g.blocks[block];
            bits.iter()
                .all(|&bit| b[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_found_and_few_others_are() {
        let mut filter = IdFilter::default();
        let ids: Vec<[u8; 16]> = (0..50_000u64).map(|i| *uuid_like(i).as_bytes()).collect();
        for id in &ids {
            filter.insert(id);
        }
        assert!(ids.iter().all(|id| filter.may_contain(id)));
        let false_positives = (1_000_000..1_050_000u64)
            .filter(|&i| filter.may_contain(uuid_like(i).as_bytes()))
            .count();
        assert!(false_positives < 500, "{false_positives} false positives");
    }

    fn uuid_like(i: u64) -> strata_core::EventId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&mix(i).to_le_bytes());
        bytes[8..].copy_from_slice(&mix(i ^ 0xdead_beef).to_le_bytes());
        strata_core::EventId::from_bytes(bytes)
    }
}
