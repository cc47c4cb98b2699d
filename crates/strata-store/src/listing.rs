//! The range of a stream listing over an ordered map of names: the one place that turns
//! [`crate::EventStore::list_streams`]'s `prefix` and `after` into map bounds, shared by
//! backends that keep their stream names in a `BTreeMap`. It reads nothing but the map.

use std::collections::BTreeMap;
use std::ops::Bound;

use strata_core::StreamName;

/// The entries of `streams` that a listing for `prefix` and `after` holds, in name order;
/// the caller takes its `limit` of them. Seeks to the first candidate, then stops at the
/// first name without the prefix: the cost is that of the entries taken.
pub fn listed<'a, V>(
    streams: &'a BTreeMap<StreamName, V>,
    prefix: &'a str,
    after: Option<&str>,
) -> impl Iterator<Item = (&'a StreamName, &'a V)> + 'a {
    // Every name with the prefix sorts at or after the prefix itself, so the listing
    // starts at whichever of the two bounds is later.
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    streams
        .range::<str, _>((start, Bound::Unbounded))
        .take_while(move |(name, _)| name.as_str().starts_with(prefix))
}
