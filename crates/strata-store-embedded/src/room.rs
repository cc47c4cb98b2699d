//! Growing a vector ahead of the pushes that need the room, so that they do not pay for
//! it: used by the syncer between groups for the tables publishing appends to.

/// Free slots of `v` beyond its length.
pub(crate) fn spare<T>(v: &Vec<T>) -> usize {
    v.capacity() - v.len()
}

/// Makes sure `v` can take `ahead` more elements without growing, and writes the first
/// `ahead` slots of the room it adds once (a default value in each, then truncated away).
///
/// A vector that grows while a batch is published costs that batch's clients the copy to
/// the new allocation and the page faults of its fresh pages: the kernel zeroes each page
/// (2 MiB at once where the allocator asks for huge pages) when it is first touched.
/// Called after the clients are answered, the copy and the first faults happen while the
/// syncer waits for the next batch. Only `ahead` slots are touched: touching all the new
/// room (as large as the vector was) would hold the syncer, and the next group's
/// clients, for milliseconds once the vector holds tens of MiB. It at least doubles the
/// capacity, so growing stays amortized O(1) per element.
pub(crate) fn grow_ahead<T: Copy + Default>(v: &mut Vec<T>, ahead: usize) {
    if spare(v) >= ahead {
        return;
    }
    let len = v.len();
    v.reserve(ahead.max(len));
    v.resize(len + ahead, T::default());
    v.truncate(len);
}
