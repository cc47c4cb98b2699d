//! The stream table of the in-memory index: every stream's name and the global positions
//! of its events, kept in a few shared allocations rather than several per stream. It
//! knows nothing of segments or files and does no I/O.
//!
//! A store of short streams holds about as many streams as events, so what a stream costs
//! beyond its events decides the index's size. Here a stream costs a 24-byte [`Record`],
//! one 4-byte slot of the hash table (with its control byte) and its name's bytes:
//!
//! - names: the bytes of every name, one after another, in one arena that only grows;
//! - lookup: a hash table of stream ids, hashed by name and compared against the arena;
//! - positions: version 1's position is in the record. The later ones are kept as `u32`
//!   distances from it in a shared pool, in slots of a few size classes; a stream whose
//!   slot is full moves to a slot of the next class and its old slot goes on that class's
//!   free list (kept inside the pool itself) for the next stream that grows into it. A
//!   stream longer than the largest class moves to a vector of its own, and a stream that
//!   spans more than `u32::MAX` positions to a vector of `u64` positions.
//!
//! Ids are dense (`0..len`), given out in the order streams are first seen, and never
//! reused: the table only grows, apart from [`StreamTable::clear_positions`].

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::room::{grow_ahead, spare};

/// Capacities of the pool's slot classes, in positions after the first. Steps of about a
/// quarter keep the unused tail of a slot small; a move copies at most 64 entries.
const CLASSES: [u32; 16] = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64];
/// The largest slot: a stream with more positions after its first one has its own vector.
const LARGEST: u32 = CLASSES[CLASSES.len() - 1];
/// Bit `c` is set for every class capacity `c`: a slot holding `c` entries is full.
const FULL: u128 = {
    let mut full = 0u128;
    let mut i = 0;
    while i < CLASSES.len() {
        full |= 1 << CLASSES[i];
        i += 1;
    }
    full
};
/// No slot; the end of a free list.
const NONE: u32 = u32::MAX;
/// The count of a stream whose positions are in [`StreamTable::own`].
const OWN: u32 = u32::MAX;

/// One stream: 24 bytes.
#[derive(Clone, Copy)]
struct Record {
    /// The position of version 1 (meaningless while the stream has no event).
    first: u64,
    /// Where the name is in the arena: offset times 256 plus length.
    name: u64,
    /// How many events the stream has, or [`OWN`].
    count: u32,
    /// The pool offset of the slot of versions 2 and on ([`NONE`] when the stream has at
    /// most one event), or, when `count` is [`OWN`], the index in `own`.
    slot: u32,
}

/// The positions of a stream that left the pool, from version 2 on.
enum Own {
    /// Distances from the first position.
    Narrow(Vec<u32>),
    /// Positions, for a stream spanning more than `u32::MAX` positions.
    Wide(Vec<u64>),
}

/// Streams by name, with their event positions.
pub(crate) struct StreamTable {
    hasher: foldhash::fast::RandomState,
    /// Stream ids, hashed by name.
    table: HashTable<u32>,
    records: Vec<Record>,
    names: String,
    /// Slots of positions (as distances from each stream's first position).
    pool: Vec<u32>,
    /// The first free slot of each class ([`NONE`] for none); a free slot's first entry
    /// holds the next one.
    free: [u32; CLASSES.len()],
    /// Entries of the pool in free slots.
    free_entries: usize,
    own: Vec<Own>,
}

/// The positions of one stream's events, ascending; index `v - 1` holds version `v`'s.
#[derive(Clone, Copy)]
pub(crate) struct Positions<'a> {
    first: u64,
    len: usize,
    rest: Rest<'a>,
}

#[derive(Clone, Copy)]
enum Rest<'a> {
    Narrow(&'a [u32]),
    Wide(&'a [u64]),
}

impl<'a> Positions<'a> {
    /// How many events the stream has (its version).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The position of the event at index `i` (version `i + 1`).
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        if i >= self.len {
            return None;
        }
        Some(self.at(i))
    }

    /// The last event's position.
    pub(crate) fn last(&self) -> Option<u64> {
        self.len.checked_sub(1).map(|i| self.at(i))
    }

    /// The positions at indexes `start..end` (clamped to the stream), in order.
    pub(crate) fn range(self, start: usize, end: usize) -> Iter<'a> {
        let end = end.min(self.len);
        Iter {
            positions: self,
            next: start.min(end),
            end,
        }
    }

    /// Every position, in order.
    pub(crate) fn iter(self) -> Iter<'a> {
        self.range(0, self.len)
    }

    /// How many positions are below `position`: the index where it is or would be.
    pub(crate) fn partition_point(&self, position: u64) -> usize {
        if self.len == 0 || self.first >= position {
            return 0;
        }
        1 + match self.rest {
            Rest::Narrow(rest) => rest.partition_point(|&d| self.first + u64::from(d) < position),
            Rest::Wide(rest) => rest.partition_point(|&p| p < position),
        }
    }

    /// The position at index `i`, which is below `len`.
    fn at(&self, i: usize) -> u64 {
        match (i.checked_sub(1), self.rest) {
            (None, _) => self.first,
            (Some(i), Rest::Narrow(rest)) => self.first + u64::from(rest[i]),
            (Some(i), Rest::Wide(rest)) => rest[i],
        }
    }
}

/// An iterator over some of a stream's positions.
pub(crate) struct Iter<'a> {
    positions: Positions<'a>,
    next: usize,
    end: usize,
}

impl Iterator for Iter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.next >= self.end {
            return None;
        }
        let position = self.positions.at(self.next);
        self.next += 1;
        Some(position)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<u64> {
        if self.next >= self.end {
            return None;
        }
        self.end -= 1;
        Some(self.positions.at(self.end))
    }
}

impl StreamTable {
    /// How many streams the table holds (ids are `0..len`).
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The id of the stream named `name`, if the table holds it.
    pub(crate) fn id(&self, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&id| self.name_bytes(id) == name)
            .copied()
    }

    /// The id of the stream named `name` (already validated as a stream name),
    /// registering it without events if the table does not hold it yet.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        let hash = self.hasher.hash_one(name.as_bytes());
        let Self {
            hasher,
            table,
            records,
            names,
            ..
        } = self;
        let bytes = |id: u32| name_at(names, records[id as usize].name).as_bytes();
        if let Some(&id) = table.find(hash, |&id| bytes(id) == name.as_bytes()) {
            return id;
        }
        // NOTE: ids are `u32`, so a table holds at most about four billion streams; the
        // memory they would take runs out long before.
        let id = records.len() as u32;
        table.insert_unique(hash, id, |&id| hasher.hash_one(bytes(id)));
        let at = names.len() as u64;
        names.push_str(name);
        debug_assert!(name.len() <= 0xff, "stream names are at most 255 bytes");
        records.push(Record {
            first: 0,
            name: at << 8 | (name.len() as u64 & 0xff),
            count: 0,
            slot: NONE,
        });
        id
    }

    /// The name of stream `id`.
    pub(crate) fn name(&self, id: u32) -> &str {
        self.records
            .get(id as usize)
            .map_or("", |r| name_at(&self.names, r.name))
    }

    fn name_bytes(&self, id: u32) -> &[u8] {
        self.name(id).as_bytes()
    }

    /// How many events stream `id` has.
    pub(crate) fn count(&self, id: u32) -> u64 {
        self.positions(id).len() as u64
    }

    /// The positions of stream `id`'s events (none for an unknown id).
    pub(crate) fn positions(&self, id: u32) -> Positions<'_> {
        let Some(record) = self.records.get(id as usize) else {
            return Positions {
                first: 0,
                len: 0,
                rest: Rest::Narrow(&[]),
            };
        };
        let (len, rest) = match record.count {
            OWN => match self.own.get(record.slot as usize) {
                Some(Own::Narrow(rest)) => (rest.len() + 1, Rest::Narrow(rest)),
                Some(Own::Wide(rest)) => (rest.len() + 1, Rest::Wide(rest)),
                None => (0, Rest::Narrow(&[])),
            },
            count if count > 1 => (
                count as usize,
                Rest::Narrow(self.slot(record.slot, count - 1)),
            ),
            count => (count as usize, Rest::Narrow(&[])),
        };
        Positions {
            first: record.first,
            len,
            rest,
        }
    }

    /// Adds `position` as the next event of stream `id`: it must be above the stream's
    /// last position.
    pub(crate) fn push(&mut self, id: u32, position: u64) {
        let Some(&record) = self.records.get(id as usize) else {
            return;
        };
        if record.count == 0 {
            self.records[id as usize].first = position;
            self.records[id as usize].count = 1;
            return;
        }
        let distance = u32::try_from(position.wrapping_sub(record.first)).ok();
        if record.count == OWN {
            let Some(own) = self.own.get_mut(record.slot as usize) else {
                return;
            };
            match own {
                Own::Wide(rest) => rest.push(position),
                Own::Narrow(rest) => match distance {
                    Some(distance) => rest.push(distance),
                    None => {
                        let mut wide: Vec<u64> =
                            rest.iter().map(|&d| record.first + u64::from(d)).collect();
                        wide.push(position);
                        *own = Own::Wide(wide);
                    }
                },
            }
            return;
        }
        // In the pool: `used` positions after the first, in a slot of the smallest class
        // that holds them.
        let used = record.count - 1;
        let Some(distance) = distance else {
            let wide = (0..used as usize)
                .map(|i| record.first + u64::from(self.pool[record.slot as usize + i]))
                .chain([position])
                .collect();
            self.leave_pool(id, record, Own::Wide(wide));
            return;
        };
        let slot = if used == 0 || (FULL >> used) & 1 == 1 {
            // The slot is full (or there is none yet): move up a class.
            if used == LARGEST {
                let mut rest = Vec::with_capacity(2 * LARGEST as usize);
                rest.extend_from_slice(self.slot(record.slot, used));
                rest.push(distance);
                self.leave_pool(id, record, Own::Narrow(rest));
                return;
            }
            let Some(slot) = self.allocate(class_of(used + 1)) else {
                // The pool cannot grow further: the stream takes a vector of its own.
                let mut rest = self.slot(record.slot, used).to_vec();
                rest.push(distance);
                self.leave_pool(id, record, Own::Narrow(rest));
                return;
            };
            if used > 0 {
                let from = record.slot as usize;
                self.pool
                    .copy_within(from..from + used as usize, slot as usize);
                self.release(record.slot, class_of(used));
            }
            self.records[id as usize].slot = slot;
            slot
        } else {
            record.slot
        };
        self.pool[(slot + used) as usize] = distance;
        self.records[id as usize].count += 1;
    }

    /// Whether `more` pushes to stream `id` fit in the memory it has: its own vector's,
    /// or the pool's spare room for a stream in the pool.
    pub(crate) fn has_room(&self, id: u32, more: usize) -> bool {
        match self.own_of(id) {
            Some(Own::Narrow(rest)) => spare(rest) >= more,
            Some(Own::Wide(rest)) => spare(rest) >= more,
            None => spare(&self.pool) >= more,
        }
    }

    /// Grows what the next `more` pushes to stream `id` will write to, if it is short of
    /// room (see [`grow_ahead`]).
    pub(crate) fn make_room(&mut self, id: u32, more: usize) {
        match self.own_slot(id).and_then(|slot| self.own.get_mut(slot)) {
            Some(Own::Narrow(rest)) => grow_ahead(rest, more),
            Some(Own::Wide(rest)) => grow_ahead(rest, more),
            None => grow_ahead(&mut self.pool, more),
        }
    }

    /// Stream `id`'s own vector, if it left the pool.
    fn own_of(&self, id: u32) -> Option<&Own> {
        self.own.get(self.own_slot(id)?)
    }

    /// The slot of stream `id`'s own vector, if it left the pool.
    fn own_slot(&self, id: u32) -> Option<usize> {
        let record = self.records.get(id as usize)?;
        (record.count == OWN).then_some(record.slot as usize)
    }

    /// Forgets every stream's events, keeping the streams and their ids.
    pub(crate) fn clear_positions(&mut self) {
        for record in &mut self.records {
            record.first = 0;
            record.count = 0;
            record.slot = NONE;
        }
        self.pool = Vec::new();
        self.free = [NONE; CLASSES.len()];
        self.free_entries = 0;
        self.own = Vec::new();
    }

    /// Packs the pool's slots together when more than a quarter of it is free slots.
    ///
    /// A free slot is reused by the next stream that grows into its class, which is how
    /// streams written at different times share the pool. Streams that grew in lockstep
    /// (a log of many streams written round-robin) leave every smaller class's slots
    /// free at once, and nothing may take them again; opening a store replays its history
    /// that way, so it packs the pool once it is loaded.
    pub(crate) fn compact(&mut self) {
        if self.free_entries <= self.pool.len() / 4 {
            return;
        }
        let mut pool = Vec::with_capacity(self.pool.len() - self.free_entries);
        for record in &mut self.records {
            if record.count == OWN || record.count <= 1 {
                continue;
            }
            let start = record.slot as usize;
            let capacity = CLASSES[class_of(record.count - 1)] as usize;
            record.slot = pool.len() as u32;
            pool.extend_from_slice(self.pool.get(start..start + capacity).unwrap_or_default());
        }
        self.pool = pool;
        self.free = [NONE; CLASSES.len()];
        self.free_entries = 0;
    }

    /// A copy of every stream's name, to be ordered outside the index's lock (see
    /// [`NameSnapshot::sorted_ids`]).
    pub(crate) fn snapshot_names(&self) -> NameSnapshot {
        NameSnapshot {
            names: self.names.clone(),
            spans: self.records.iter().map(|r| r.name).collect(),
        }
    }

    /// The `used` entries of the slot at `start`.
    fn slot(&self, start: u32, used: u32) -> &[u32] {
        let start = start as usize;
        self.pool
            .get(start..start + used as usize)
            .unwrap_or_default()
    }

    /// Moves a stream's positions out of the pool into `own`.
    fn leave_pool(&mut self, id: u32, record: Record, own: Own) {
        let used = record.count - 1;
        if used > 0 {
            self.release(record.slot, class_of(used));
        }
        let index = self.own.len() as u32;
        self.own.push(own);
        self.records[id as usize].count = OWN;
        self.records[id as usize].slot = index;
    }

    /// A free slot of `class`: a released one, or a new one at the end of the pool.
    /// `None` when the pool has reached the most entries a `u32` can address.
    fn allocate(&mut self, class: usize) -> Option<u32> {
        let head = self.free[class];
        if head != NONE {
            self.free[class] = self.pool[head as usize];
            self.free_entries -= CLASSES[class] as usize;
            return Some(head);
        }
        let start = self.pool.len();
        let end = start + CLASSES[class] as usize;
        if end >= NONE as usize {
            return None;
        }
        self.pool.resize(end, 0);
        Some(start as u32)
    }

    /// Puts the slot at `start` of `class` on its free list.
    fn release(&mut self, start: u32, class: usize) {
        self.pool[start as usize] = self.free[class];
        self.free[class] = start;
        self.free_entries += CLASSES[class] as usize;
    }
}

impl Default for StreamTable {
    fn default() -> Self {
        Self {
            hasher: foldhash::fast::RandomState::default(),
            table: HashTable::new(),
            records: Vec::new(),
            names: String::new(),
            pool: Vec::new(),
            free: [NONE; CLASSES.len()],
            free_entries: 0,
            own: Vec::new(),
        }
    }
}

/// The smallest class holding `entries` (at least 1, at most [`LARGEST`]).
fn class_of(entries: u32) -> usize {
    CLASSES.partition_point(|&capacity| capacity < entries)
}

/// The name stored at `span` (offset times 256 plus length) of `names`.
fn name_at(names: &str, span: u64) -> &str {
    let start = (span >> 8) as usize;
    let end = start + (span & 0xff) as usize;
    names.get(start..end).unwrap_or_default()
}

/// Every stream's name, copied out of the table.
pub(crate) struct NameSnapshot {
    names: String,
    spans: Vec<u64>,
}

impl NameSnapshot {
    /// How many streams the snapshot holds: the ids `0..len`.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The ids, ordered by name.
    pub(crate) fn sorted_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.spans.len() as u32).collect();
        ids.sort_unstable_by(|&a, &b| {
            name_at(&self.names, self.spans[a as usize])
                .cmp(name_at(&self.names, self.spans[b as usize]))
        });
        ids
    }
}

/// Stream ids ordered by name, for listings: sorted blocks of ids, so that a new stream
/// is inserted into one block of at most [`BLOCK`] ids (4 bytes a stream, no copy of the
/// name).
#[derive(Default)]
pub(crate) struct NameOrder {
    /// Non-empty, each sorted by name, every name of a block below every name of the next.
    blocks: Vec<Vec<u32>>,
}

/// The most ids in one block of a [`NameOrder`]; a fuller block is split in two.
const BLOCK: usize = 1024;

impl NameOrder {
    /// The order of `ids`, which are sorted by name.
    pub(crate) fn from_sorted(ids: &[u32]) -> Self {
        Self {
            blocks: ids.chunks(BLOCK / 2).map(<[u32]>::to_vec).collect(),
        }
    }

    /// Adds stream `id`, which is not in the order yet.
    pub(crate) fn insert(&mut self, table: &StreamTable, id: u32) {
        let name = table.name(id);
        // The last block whose first name is not above `name` (or the first block).
        let b = self
            .blocks
            .partition_point(|block| block.first().is_some_and(|&f| table.name(f) <= name))
            .saturating_sub(1);
        let Some(block) = self.blocks.get_mut(b) else {
            self.blocks.push(vec![id]);
            return;
        };
        let at = block.partition_point(|&other| table.name(other) < name);
        block.insert(at, id);
        if block.len() > BLOCK {
            let upper = block.split_off(block.len() / 2);
            self.blocks.insert(b + 1, upper);
        }
    }

    /// The ids in name order from the first name at or above `from` (above it when
    /// `inclusive` is false).
    pub(crate) fn from<'a>(
        &'a self,
        table: &'a StreamTable,
        from: &str,
        inclusive: bool,
    ) -> impl Iterator<Item = u32> + use<'a> {
        let before = |id: u32| {
            let name = table.name(id);
            if inclusive { name < from } else { name <= from }
        };
        // The first block whose last name is not before the bound.
        let b = self
            .blocks
            .partition_point(|block| block.last().is_some_and(|&l| before(l)));
        let skip = self
            .blocks
            .get(b)
            .map_or(0, |block| block.partition_point(|&id| before(id)));
        self.blocks
            .get(b..)
            .unwrap_or_default()
            .iter()
            .flatten()
            .skip(skip)
            .copied()
    }
}

#[cfg(test)]
mod tests;
