use super::*;

/// A deterministic stand-in for a random UUID: the `i`th id of a sequence.
fn id(i: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(i).to_le_bytes());
    bytes[8..].copy_from_slice(&mix(i ^ 0xdead_beef).to_le_bytes());
    bytes
}

/// A time-ordered id (UUIDv7-like): the leading 48 bits count up, the rest are random.
fn time_ordered_id(i: u64) -> [u8; 16] {
    let mut bytes = id(i);
    bytes[..6].copy_from_slice(&(1_700_000_000_000 + i / 8).to_be_bytes()[2..]);
    bytes
}

/// The share of `strangers` (ids never inserted) that `filter` calls "maybe stored".
fn measured_rate(filter: &IdFilter, strangers: impl Iterator<Item = [u8; 16]>) -> f64 {
    let (mut asked, mut wrong) = (0u64, 0u64);
    for stranger in strangers {
        asked += 1;
        wrong += u64::from(filter.may_contain(&stranger));
    }
    wrong as f64 / asked as f64
}

#[test]
fn every_inserted_id_is_found_in_every_generation() {
    let mut filter = IdFilter::with_first_capacity(100);
    for i in 0..10_000 {
        filter.insert(&id(i));
    }
    assert!(
        filter.generations.len() >= 6,
        "{}",
        filter.generations.len()
    );
    assert!((0..10_000).all(|i| filter.may_contain(&id(i))));
}

#[test]
fn generations_double_in_capacity_and_tighten_their_target() {
    let mut filter = IdFilter::with_first_capacity(4096);
    for i in 0..4096 * 31 {
        filter.insert(&id(i));
    }
    let capacities: Vec<usize> = filter.generations.iter().map(|g| g.capacity).collect();
    assert_eq!(capacities, [4096, 8192, 16384, 32768, 65536]);
    let bits_per_key: Vec<f64> = filter
        .generations
        .iter()
        .map(|g| (g.blocks.len() * BLOCK_BITS) as f64 / g.capacity as f64)
        .collect();
    assert!(
        bits_per_key.windows(2).all(|w| w[0] < w[1]),
        "{bits_per_key:?}"
    );
}

#[test]
fn a_layout_meets_its_target_and_no_smaller_one_does() {
    let mut target = FIRST_RATE;
    for _ in 0..40 {
        let layout = Layout::for_rate(target);
        assert!(layout.rate() <= target, "{layout:?} for {target}");
        let smaller = Layout {
            bits_per_key: layout.bits_per_key - 0.25,
            hashes: layout.hashes,
        };
        assert!(smaller.rate() > target, "{smaller:?} also meets {target}");
        target *= TIGHTENING;
    }
}

#[test]
fn the_blocked_model_agrees_with_the_textbook_rate_where_it_should() {
    // With few bits per key, blocks barely matter: the blocked rate is close to the
    // plain filter's (1 − e^(−k/c))^k, and never below it.
    let layout = Layout {
        bits_per_key: 8.0,
        hashes: 5,
    };
    let plain = (1.0 - (-5.0f64 / 8.0).exp()).powi(5);
    assert!(layout.rate() >= plain);
    assert!(layout.rate() < plain * 1.2, "{} vs {plain}", layout.rate());
}

#[test]
fn the_false_positive_rate_stays_bounded_over_many_generations() {
    // Small generations so that ten of them fill quickly; the sizes double, so the last
    // one decides the shape exactly as it does at full scale.
    let mut filter = IdFilter::with_first_capacity(256);
    let mut inserted = 0u64;
    let mut stranger = 1u64 << 40;
    let mut rates = Vec::new();
    for generation in 0..10 {
        let capacity = 256u64 << generation;
        for _ in 0..capacity {
            filter.insert(&id(inserted));
            inserted += 1;
        }
        assert_eq!(filter.generations.len(), generation + 1);
        let rate = measured_rate(&filter, (stranger..stranger + 100_000).map(id));
        stranger += 100_000;
        let expected: f64 = filter
            .generations
            .iter()
            .enumerate()
            .map(|(n, _)| Layout::for_rate(FIRST_RATE * TIGHTENING.powi(n as i32)).rate())
            .sum();
        // The measured rate is a sample of 100,000: allow for its spread around the model.
        assert!(
            rate <= expected * 1.15 + 0.0005,
            "after {} generations: measured {rate}, model {expected}",
            generation + 1
        );
        assert!(
            rate < RATE_BOUND,
            "after {} generations: measured {rate}, bound {RATE_BOUND}",
            generation + 1
        );
        rates.push(rate);
    }
    // The rate grows ever more slowly: each generation adds less than its predecessor
    // (the first five against the last five, so that sampling noise averages out).
    assert!(rates[9] - rates[4] < rates[4], "{rates:?}");
    assert!((0..inserted).all(|i| filter.may_contain(&id(i))));
}

#[test]
fn time_ordered_ids_are_filtered_as_well_as_random_ones() {
    let mut filter = IdFilter::with_first_capacity(1024);
    let count = 1024 * 31;
    for i in 0..count {
        filter.insert(&time_ordered_id(i));
    }
    let rate = measured_rate(&filter, (count..count + 100_000).map(time_ordered_id));
    assert!(rate < RATE_BOUND, "measured {rate}");
}
