//! A scalable blocked Bloom filter over event ids: it answers "certainly not stored" so
//! that an append with `any` or `exists` only searches a stream for a repeated id when the
//! id may really be there. It owns only the filter's bits; it never answers "stored".
//!
//! A Bloom filter cannot grow in place, so the filter is a series of generations: when
//! one is full a new, larger one starts. An id is "maybe stored" when any generation says
//! so, which makes the false-positive rates of the generations add up. To keep that sum
//! bounded however long the log grows, each generation is sized for a rate
//! [`TIGHTENING`] times its predecessor's (a geometric series, as in Almeida et al.,
//! "Scalable Bloom Filters", 2007), and capacities double so that the number of
//! generations, and with it the cost of a query, grows only with the logarithm of the
//! number of ids:
//!
//! ```text
//! rate ≤ FIRST_RATE · (1 + TIGHTENING + TIGHTENING² + …) = FIRST_RATE / (1 − TIGHTENING) = RATE_BOUND
//! ```
//!
//! A "maybe" must then be settled by searching the log, and a generation's "maybe" is
//! only about the ids inserted into it. Each generation keeps the range of log positions
//! its ids came from, so a search reads only the positions of the generations that said
//! "maybe" ([`IdFilter::maybe_ranges`]). The expected length of that search is the sum
//! over generations of rate × size, which grows by a factor 2 · [`TIGHTENING`] = 1.6 a
//! generation: at 10 M ids about 9,000 positions, where a search of the whole log on
//! every "maybe" would read about 75,000. A tightening of 1/2 would keep it constant, but
//! costs a third more memory for the filter and more hashing per id when opening a store.
//!
//! Each generation also keeps the lowest and highest id inserted (as a big-endian number).
//! Ids that strata makes are UUIDv7, whose leading bits are the time they were made, so a
//! fresh one lies above the range of every generation but perhaps the newest, and those
//! answer "no" without touching their bits: a lookup then costs about the same however
//! many generations there are. Random ids gain nothing from it and lose nothing.
//!
//! Each generation is blocked: all bits of one key lie in one 512-bit block (one cache
//! line). Blocking costs accuracy, as blocks fill unevenly, so a generation is sized with
//! the blocked filter's own false-positive rate, not the textbook formula. It takes 2 to 4
//! bytes per id, depending on how full the newest generation is.

/// The rate the first generation is sized for.
const FIRST_RATE: f64 = 0.002;
/// Each generation is sized for this fraction of its predecessor's rate.
const TIGHTENING: f64 = 0.8;
/// The false-positive rate the whole filter stays below, however many ids it holds.
#[cfg(test)]
const RATE_BOUND: f64 = FIRST_RATE / (1.0 - TIGHTENING);
/// Keys the first generation holds; each later one holds twice its predecessor's.
const FIRST_CAPACITY: usize = 1 << 16;
/// No generation holds more keys than this (it would take 4 TiB of ids to get there).
const MAX_CAPACITY: usize = 1 << 40;
/// Bits per block: one 64-byte cache line.
const BLOCK_BITS: usize = 512;
/// Bit indexes (of 9 bits each) taken from one 64-bit hash word.
const BITS_PER_WORD: u32 = 64 / BLOCK_BITS.trailing_zeros();
/// Bits per key never exceed this, whatever the target. Reached after about 2^31 ids:
/// from there on, the rate of a 512-bit block stops halving, and each later generation adds
/// at most about 10^-7 to the filter's rate.
const MAX_BITS_PER_KEY: f64 = 64.0;
/// Ids inserted together (see [`Generation::insert_group`]).
const INSERT_GROUP: usize = 16;

pub(crate) struct IdFilter {
    first_capacity: usize,
    generations: Vec<Generation>,
}

impl Default for IdFilter {
    fn default() -> Self {
        Self::with_first_capacity(FIRST_CAPACITY)
    }
}

struct Generation {
    blocks: Box<[[u64; 8]]>,
    /// Bits set per key, all in one block.
    hashes: u32,
    /// Mixed into the key's hashes, so that generations do not err on the same ids.
    seed: u64,
    capacity: usize,
    keys: usize,
    /// The lowest and highest log position of the ids inserted (`None` while empty).
    positions: Option<(u64, u64)>,
    /// The lowest and highest id inserted, as big-endian numbers (`None` while empty).
    ids: Option<(u128, u128)>,
}

impl Generation {
    /// The `number`th generation (from 0) of a filter whose first holds `first_capacity`.
    fn new(number: usize, first_capacity: usize) -> Self {
        let shift = u32::try_from(number).unwrap_or(u32::MAX);
        let capacity = first_capacity
            .checked_shl(shift)
            .filter(|&c| c >> shift == first_capacity)
            .map_or(MAX_CAPACITY, |c| c.min(MAX_CAPACITY));
        let target = FIRST_RATE * TIGHTENING.powi(i32::try_from(number).unwrap_or(i32::MAX));
        let layout = Layout::for_rate(target);
        let blocks = (capacity as f64 * layout.bits_per_key / BLOCK_BITS as f64).ceil() as usize;
        Self {
            blocks: vec![[0u64; 8]; blocks.max(1)].into_boxed_slice(),
            hashes: layout.hashes,
            seed: mix(0x9e37_79b9_7f4a_7c15 ^ number as u64),
            capacity,
            keys: 0,
            positions: None,
            ids: None,
        }
    }

    /// The block of `id` and the seed of the bits to set or test in it.
    fn locate(&self, id: &[u8; 16]) -> (usize, u64) {
        let (h1, h2) = hashes(id, self.seed);
        // Multiply-shift maps the hash onto the blocks without a division.
        let block = ((u128::from(h1) * self.blocks.len() as u128) >> 64) as usize;
        (block, h2)
    }

    /// The bits to set or test in a block, drawn from the seed [`Generation::locate`] gave.
    fn bits(&self, h2: u64) -> impl Iterator<Item = usize> + use<> {
        // Nine bits of hash per bit to set, drawn from a stream seeded by the second hash
        // (seven per 64-bit word), so the bits are as independent as the sizing assumes:
        // double hashing inside a block this small errs measurably more often.
        let hashes = self.hashes;
        let (mut state, mut word) = (h2, h2);
        (0..hashes).map(move |i| {
            if i > 0 && i % BITS_PER_WORD == 0 {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                word = mix(state);
            }
            let bit = (word % BLOCK_BITS as u64) as usize;
            word >>= BLOCK_BITS.trailing_zeros();
            bit
        })
    }

    /// Inserts a group of ids (at most [`INSERT_GROUP`], and no more than the generation
    /// has room for). Each id's block is a likely cache miss in a large generation: the
    /// first pass only loads the blocks, independently of one another, so that the memory
    /// fetches them together; the second sets their bits in cache.
    fn insert_group(&mut self, group: &[(&[u8; 16], u64)]) {
        let mut located = [(0usize, 0u64); INSERT_GROUP];
        let mut touched = 0u64;
        for (slot, (id, _)) in located.iter_mut().zip(group) {
            *slot = self.locate(id);
            touched ^= self.blocks[slot.0][0];
        }
        std::hint::black_box(touched);
        for (&(block, h2), &(id, position)) in located.iter().zip(group) {
            self.set(block, h2, id, position);
        }
    }

    fn set(&mut self, block: usize, h2: u64, id: &[u8; 16], position: u64) {
        let bits = self.bits(h2);
        let words = &mut self.blocks[block];
        for bit in bits {
            words[bit / 64] |= 1 << (bit % 64);
        }
        self.keys += 1;
        self.positions = Some(match self.positions {
            None => (position, position),
            Some((low, high)) => (low.min(position), high.max(position)),
        });
        let key = u128::from_be_bytes(*id);
        self.ids = Some(match self.ids {
            None => (key, key),
            Some((low, high)) => (low.min(key), high.max(key)),
        });
    }

    fn may_contain(&self, id: &[u8; 16]) -> bool {
        // Outside the range of the ids inserted: certainly not one of them. Time-ordered
        // ids (UUIDv7, as strata makes them) mostly are, as the range of every generation
        // but the newest lies in the past; random ones are not, and go on to the bits.
        match self.ids {
            Some((low, high)) if (low..=high).contains(&u128::from_be_bytes(*id)) => {}
            _ => return false,
        }
        let (block, h2) = self.locate(id);
        let words = &self.blocks[block];
        self.bits(h2)
            .all(|bit| words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// Two independent 64-bit hashes of an id under `seed` (ids are random or time-ordered
/// UUIDs: mixing all of their bits is enough, no keyed hash is needed).
fn hashes(id: &[u8; 16], seed: u64) -> (u64, u64) {
    let a = u64::from_le_bytes(id[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(id[8..].try_into().unwrap_or_default());
    let h1 = mix(a ^ seed ^ mix(b));
    let h2 = mix(b ^ seed.rotate_left(32) ^ mix(a ^ 0x6a09_e667_f3bc_c908));
    (h1, h2)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// How a generation is laid out for a target false-positive rate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    bits_per_key: f64,
    hashes: u32,
}

impl Layout {
    /// The smallest layout (in steps of a quarter bit per key) whose blocked
    /// false-positive rate at full capacity is at most `target`.
    fn for_rate(target: f64) -> Self {
        // A blocked filter never beats a plain one, and a plain one needs at least
        // −ln(target)/ln²2 bits per key: no smaller layout can do, so start there.
        let plain = -target.ln() / (std::f64::consts::LN_2 * std::f64::consts::LN_2);
        let mut bits_per_key = ((plain * 4.0).floor() / 4.0).clamp(4.0, MAX_BITS_PER_KEY);
        loop {
            // The best hash count is near bits_per_key · ln 2 for a plain filter and a
            // little below it for a blocked one.
            let near = (bits_per_key * std::f64::consts::LN_2).round() as u32;
            let best = (near.saturating_sub(4).max(1)..=near + 1)
                .map(|hashes| Self {
                    bits_per_key,
                    hashes,
                })
                .min_by(|a, b| a.rate().total_cmp(&b.rate()));
            if let Some(layout) = best
                && (layout.rate() <= target || bits_per_key >= MAX_BITS_PER_KEY)
            {
                return layout;
            }
            bits_per_key += 0.25;
        }
    }

    /// The expected false-positive rate of a full blocked filter with this layout: the
    /// number of keys in a block is Poisson-distributed around BLOCK_BITS / bits_per_key,
    /// and a block holding `n` keys answers a stranger "maybe" with probability
    /// (1 − (1 − 1/BLOCK_BITS)^(hashes·n))^hashes (Putze, Sanders, Singler, 2007).
    fn rate(self) -> f64 {
        let mean = BLOCK_BITS as f64 / self.bits_per_key;
        let k = f64::from(self.hashes);
        let keep = 1.0 - 1.0 / BLOCK_BITS as f64;
        let last = (mean + 12.0 * mean.sqrt() + 30.0).ceil() as u32;
        let mut weight = (-mean).exp();
        let mut rate = 0.0;
        for n in 0..=last {
            rate += weight * (1.0 - keep.powf(k * f64::from(n))).powf(k);
            weight *= mean / f64::from(n + 1);
        }
        rate
    }
}

impl IdFilter {
    /// A filter whose first generation holds `first_capacity` keys.
    pub(crate) fn with_first_capacity(first_capacity: usize) -> Self {
        Self {
            first_capacity: first_capacity.max(1),
            generations: Vec::new(),
        }
    }

    /// Records `id`, stored at log position `position`.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, id: &[u8; 16], position: u64) {
        self.insert_all([(id, position)]);
    }

    /// Records each id, stored at its log position: a group at a time, so that the
    /// cache misses of a group's ids overlap (see [`Generation::insert_group`]).
    pub(crate) fn insert_all<'a>(&mut self, ids: impl IntoIterator<Item = (&'a [u8; 16], u64)>) {
        let mut group = [(&[0u8; 16], 0u64); INSERT_GROUP];
        let mut n = 0;
        for item in ids {
            group[n] = item;
            n += 1;
            if n == INSERT_GROUP {
                self.insert_group(&group);
                n = 0;
            }
        }
        self.insert_group(&group[..n]);
    }

    fn insert_group(&mut self, mut group: &[(&[u8; 16], u64)]) {
        while !group.is_empty() {
            if self.generations.last().is_none_or(|g| g.keys >= g.capacity) {
                let next = Generation::new(self.generations.len(), self.first_capacity);
                self.generations.push(next);
            }
            let Some(generation) = self.generations.last_mut() else {
                return;
            };
            let room = generation.capacity - generation.keys;
            let (now, later) = group.split_at(room.min(group.len()));
            generation.insert_group(now);
            group = later;
        }
    }

    /// False means the id was never inserted; true means it may have been.
    pub(crate) fn may_contain(&self, id: &[u8; 16]) -> bool {
        // Newest first: a repeated id is most often a recent one.
        self.generations.iter().rev().any(|g| g.may_contain(id))
    }

    /// Whether each of `items`' ids may have been inserted, as [`IdFilter::may_contain`]
    /// answers it one at a time. Asked a generation at a time across all the ids, so that
    /// the lookups, each a likely cache miss in a large generation, wait for memory
    /// together rather than one after another.
    pub(crate) fn may_contain_each<T>(
        &self,
        items: &[T],
        id: impl Fn(&T) -> &[u8; 16],
    ) -> Vec<bool> {
        let mut maybe = vec![false; items.len()];
        for generation in self.generations.iter().rev() {
            for (item, maybe) in items.iter().zip(maybe.iter_mut()) {
                *maybe |= generation.may_contain(id(item));
            }
        }
        maybe
    }

    /// The ranges of log positions (inclusive, ascending, disjoint) where `id` may be
    /// stored: those of the generations that may hold it. Empty means never inserted.
    pub(crate) fn maybe_ranges(&self, id: &[u8; 16]) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = self
            .generations
            .iter()
            .filter(|g| g.may_contain(id))
            .filter_map(|g| g.positions)
            .collect();
        // Ids arrive in position order, so the ranges already ascend and touch at most at
        // their ends; merge them anyway, so that no position is searched twice whatever
        // the order of insertion was.
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (low, high) in ranges {
            match merged.last_mut() {
                Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
                _ => merged.push((low, high)),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests;
