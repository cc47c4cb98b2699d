//! [`CommittedOrders`]: the committed reservations of one sku, order id → units, kept
//! compact. A popular sku commits thousands of orders and keeps every one (so a repeated
//! commit is recognised), so this set decides how long a snapshot takes to load: its ids
//! live back to back in one string and its entries in sorted arrays, so loading it makes
//! a few allocations, not one per order.
//!
//! It serialises exactly as a `BTreeMap<String, u32>` would (a map in ascending id
//! order), so snapshots taken before it still load.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// New entries wait in a small sorted tail, merged into the sorted body once it holds
/// this many: inserting costs a short shift plus, now and then, one linear merge, in
/// whatever order the ids come.
const TAIL_MAX: usize = 64;

/// Units committed per order id, in ascending id order.
#[derive(Clone, Default)]
pub struct CommittedOrders {
    /// Every id, back to back.
    ids: String,
    /// Sorted by id, the bulk of the entries.
    body: Vec<Entry>,
    /// Sorted by id, the entries added since the last merge; no id is in both.
    tail: Vec<Entry>,
}

/// Where one id lies in [`CommittedOrders::ids`], its first bytes and its units.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The id's first eight bytes, big-endian, zero-padded: comparing two of these
    /// orders the ids as their bytes do unless both are equal, so a search rarely reads
    /// [`CommittedOrders::ids`] (shop order ids fit in eight bytes).
    prefix: u64,
    start: usize,
    end: usize,
    quantity: u32,
}

/// The first eight bytes of `id` as [`Entry::prefix`] holds them.
fn prefix_of(id: &str) -> u64 {
    let mut bytes = [0_u8; 8];
    let n = id.len().min(8);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// An id looked for: its bytes and its prefix.
#[derive(Clone, Copy)]
struct Key<'a> {
    id: &'a str,
    prefix: u64,
}

impl<'a> Key<'a> {
    fn new(id: &'a str) -> Self {
        Self {
            id,
            prefix: prefix_of(id),
        }
    }
}

impl CommittedOrders {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many orders committed.
    pub fn len(&self) -> usize {
        self.body.len() + self.tail.len()
    }

    /// Whether no order committed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The units `order_id` committed, if it did.
    pub fn get(&self, order_id: &str) -> Option<u32> {
        let key = Key::new(order_id);
        let part = |entries: &[Entry]| self.search(entries, key).ok().map(|i| entries[i].quantity);
        part(&self.body).or_else(|| part(&self.tail))
    }

    /// Whether `order_id` committed.
    pub fn contains_key(&self, order_id: &str) -> bool {
        self.get(order_id).is_some()
    }

    /// Records that `order_id` committed `quantity` units (replacing what it had).
    pub fn insert(&mut self, order_id: &str, quantity: u32) {
        let key = Key::new(order_id);
        // The common case while loading a snapshot: ids come in ascending order, and one
        // comparison with the last shows the id is new.
        if self.tail.is_empty()
            && self
                .body
                .last()
                .is_none_or(|last| self.compare(last, key).is_lt())
        {
            let entry = self.push_id(key, quantity);
            self.body.push(entry);
            return;
        }
        if let Ok(i) = self.search(&self.body, key) {
            self.body[i].quantity = quantity;
            return;
        }
        match self.search(&self.tail, key) {
            Ok(i) => self.tail[i].quantity = quantity,
            Err(at) => {
                let entry = self.push_id(key, quantity);
                self.tail.insert(at, entry);
                if self.tail.len() >= TAIL_MAX {
                    self.merge();
                }
            }
        }
    }

    /// The orders and their units, in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        let mut body = self.body.iter().peekable();
        let mut tail = self.tail.iter().peekable();
        std::iter::from_fn(move || {
            let next = match (body.peek(), tail.peek()) {
                (Some(b), Some(t)) => {
                    if self.id(b) < self.id(t) {
                        body.next()
                    } else {
                        tail.next()
                    }
                }
                (Some(_), None) => body.next(),
                (None, _) => tail.next(),
            }?;
            Some((self.id(next), next.quantity))
        })
    }

    fn id(&self, entry: &Entry) -> &str {
        &self.ids[entry.start..entry.end]
    }

    /// How `entry`'s id compares with `key`'s: by prefix, then by bytes if those tie.
    fn compare(&self, entry: &Entry, key: Key<'_>) -> std::cmp::Ordering {
        entry
            .prefix
            .cmp(&key.prefix)
            .then_with(|| self.id(entry).cmp(key.id))
    }

    /// Where `key` is in `entries` (sorted), or where it would go.
    fn search(&self, entries: &[Entry], key: Key<'_>) -> Result<usize, usize> {
        entries.binary_search_by(|e| self.compare(e, key))
    }

    fn push_id(&mut self, key: Key<'_>, quantity: u32) -> Entry {
        let start = self.ids.len();
        self.ids.push_str(key.id);
        Entry {
            prefix: key.prefix,
            start,
            end: self.ids.len(),
            quantity,
        }
    }

    /// Merges the tail into the body, both sorted and disjoint.
    fn merge(&mut self) {
        let mut merged = Vec::with_capacity(self.body.len() + self.tail.len());
        let (mut b, mut t) = (0, 0);
        while b < self.body.len() && t < self.tail.len() {
            let tail = self.tail[t];
            let key = Key {
                id: self.id(&tail),
                prefix: tail.prefix,
            };
            if self.compare(&self.body[b], key).is_lt() {
                merged.push(self.body[b]);
                b += 1;
            } else {
                merged.push(tail);
                t += 1;
            }
        }
        merged.extend_from_slice(&self.body[b..]);
        merged.extend_from_slice(&self.tail[t..]);
        self.body = merged;
        self.tail.clear();
    }
}

impl PartialEq for CommittedOrders {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for CommittedOrders {}

impl fmt::Debug for CommittedOrders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<(&'a str, u32)> for CommittedOrders {
    fn from_iter<I: IntoIterator<Item = (&'a str, u32)>>(iter: I) -> Self {
        let mut orders = Self::new();
        for (id, quantity) in iter {
            orders.insert(id, quantity);
        }
        orders
    }
}

impl Serialize for CommittedOrders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (id, quantity) in self.iter() {
            map.serialize_entry(id, &quantity)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CommittedOrders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OrdersVisitor)
    }
}

struct OrdersVisitor;

impl<'de> Visitor<'de> for OrdersVisitor {
    type Value = CommittedOrders;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of order ids to units")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut orders = CommittedOrders::new();
        let hint = map.size_hint().unwrap_or(0).min(1 << 16);
        orders.body.reserve(hint);
        // The ids are read in place where the format allows it; a repeated id keeps its
        // last units, as a map would.
        while let Some(id) = map.next_key::<IdKey<'de>>()? {
            let quantity: u32 = map.next_value()?;
            orders.insert(id.as_str(), quantity);
        }
        Ok(orders)
    }
}

/// A map key borrowed from the input when it can be, owned when it must be (escaped).
enum IdKey<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl IdKey<'_> {
    fn as_str(&self) -> &str {
        match self {
            IdKey::Borrowed(id) => id,
            IdKey::Owned(id) => id,
        }
    }
}

impl<'de> Deserialize<'de> for IdKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = IdKey<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an order id")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(IdKey::Borrowed(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdKey::Owned(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(IdKey::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
