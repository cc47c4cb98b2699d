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

/// Three standard deviations of a rate near the bound measured on `samples` strangers.
fn sampling_slack(samples: u32) -> f64 {
    3.0 * (RATE_BOUND / f64::from(samples)).sqrt()
}

#[test]
fn every_inserted_id_is_found_in_every_generation() {
    let mut filter = IdFilter::with_first_capacity(100);
    for i in 0..10_000 {
        filter.insert(&id(i), i);
    }
    assert!(
        filter.generations.len() >= 6,
        "{}",
        filter.generations.len()
    );
    assert!((0..10_000).all(|i| filter.may_contain(&id(i))));
}

#[test]
fn inserting_in_groups_sets_the_same_bits_as_one_at_a_time() {
    // Groups of 16 straddle the generations' boundaries (100, 200, 400, ... ids).
    let ids: Vec<([u8; 16], u64)> = (0..5_000).map(|i| (id(i), i + 1)).collect();
    let mut one = IdFilter::with_first_capacity(100);
    for (id, position) in &ids {
        one.insert(id, *position);
    }
    let mut grouped = IdFilter::with_first_capacity(100);
    for chunk in ids.chunks(37) {
        grouped.insert_all(chunk.iter().map(|(id, position)| (id, *position)));
    }
    assert_eq!(one.generations.len(), grouped.generations.len());
    for (a, b) in one.generations.iter().zip(&grouped.generations) {
        assert_eq!((a.keys, a.positions, a.ids), (b.keys, b.positions, b.ids));
        assert!(a.blocks == b.blocks);
    }
}

#[test]
fn generations_double_in_capacity_and_tighten_their_target() {
    let mut filter = IdFilter::with_first_capacity(4096);
    for i in 0..4096 * 31 {
        filter.insert(&id(i), i);
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
    // Fifteen generations hold 2^31 ids; past them a blocked filter can no longer halve
    // its rate within MAX_BITS_PER_KEY (see `Layout::for_rate`).
    let mut target = FIRST_RATE;
    for _ in 0..15 {
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
            filter.insert(&id(inserted), inserted);
            inserted += 1;
        }
        assert_eq!(filter.generations.len(), generation + 1);
        let rate = measured_rate(&filter, (stranger..stranger + 50_000).map(id));
        stranger += 50_000;
        let expected: f64 = filter
            .generations
            .iter()
            .enumerate()
            .map(|(n, _)| Layout::for_rate(FIRST_RATE * TIGHTENING.powi(n as i32)).rate())
            .sum();
        // The measured rate is a sample of 50,000: allow for its spread around the model.
        assert!(
            rate <= expected * 1.15 + 0.0005,
            "after {} generations: measured {rate}, model {expected}",
            generation + 1
        );
        assert!(
            rate < RATE_BOUND + sampling_slack(50_000),
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
        filter.insert(&time_ordered_id(i), i);
    }
    // Strangers of the same milliseconds as the stored ids, with other random bits: the
    // ranges of ids do not tell them apart, the bits must.
    let strangers = (0..100_000u64).map(|i| {
        let mut stranger = time_ordered_id((i * 7) % count);
        stranger[6..].copy_from_slice(&id((1 << 40) + i)[6..]);
        stranger
    });
    let rate = measured_rate(&filter, strangers);
    assert!(
        rate < RATE_BOUND + sampling_slack(100_000),
        "measured {rate}"
    );
    assert!((0..count).all(|i| filter.may_contain(&time_ordered_id(i))));
}

#[test]
fn a_time_ordered_id_newer_than_every_stored_one_is_never_searched_for() {
    let mut filter = IdFilter::with_first_capacity(256);
    let count = 256 * 63;
    for i in 0..count {
        filter.insert(&time_ordered_id(i), i + 1);
    }
    assert_eq!(filter.generations.len(), 6);
    // Newer ids are outside every generation's range of ids: no false positive at all.
    let newer = count + 8..count + 100_000;
    assert!(
        newer
            .clone()
            .all(|i| !filter.may_contain(&time_ordered_id(i)))
    );
    let each = filter.may_contain_each(&newer.map(time_ordered_id).collect::<Vec<_>>(), |id| id);
    assert!(each.iter().all(|&maybe| !maybe));
    // An id of the first generation's milliseconds is searched for in its positions only.
    let ranges = filter.maybe_ranges(&time_ordered_id(100));
    assert_eq!(ranges, [(1, 256)]);
}

#[test]
fn an_inserted_id_is_searched_for_only_in_its_generations_positions() {
    let mut filter = IdFilter::with_first_capacity(64);
    // Positions start at 1, as the log's do; 64 + 128 + 256 + 512 + 1024 ids fill five
    // generations, and the sixth holds the rest.
    let count = 2000u64;
    for i in 0..count {
        filter.insert(&id(i), i + 1);
    }
    let spans: Vec<Option<(u64, u64)>> = filter.generations.iter().map(|g| g.positions).collect();
    assert_eq!(
        spans,
        [
            Some((1, 64)),
            Some((65, 192)),
            Some((193, 448)),
            Some((449, 960)),
            Some((961, 1984)),
            Some((1985, 2000))
        ]
    );
    for i in 0..count {
        let ranges = filter.maybe_ranges(&id(i));
        assert!(
            ranges
                .iter()
                .any(|&(low, high)| (low..=high).contains(&(i + 1))),
            "id {i} at position {}: {ranges:?}",
            i + 1
        );
        assert!(ranges.windows(2).all(|w| w[0].1 + 1 < w[1].0), "{ranges:?}");
    }
}

#[test]
fn a_stranger_costs_a_search_of_few_positions() {
    // The expected number of positions searched per stranger is the sum over generations
    // of rate × capacity, far below a search of the whole log on every "maybe".
    let first = 1024usize;
    let mut filter = IdFilter::with_first_capacity(first);
    let mut inserted = 0u64;
    for generation in 0..8 {
        for _ in 0..(first << generation) {
            inserted += 1;
            filter.insert(&id(inserted), inserted);
        }
    }
    let strangers = 200_000u64;
    let (mut maybes, mut searched) = (0u64, 0u64);
    for i in 0..strangers {
        let ranges = filter.maybe_ranges(&id((1 << 40) + i));
        maybes += u64::from(!ranges.is_empty());
        searched += ranges.iter().map(|(low, high)| high - low + 1).sum::<u64>();
    }
    let per_stranger = searched as f64 / strangers as f64;
    let model: f64 = (0..8)
        .map(|n| Layout::for_rate(FIRST_RATE * TIGHTENING.powi(n)).rate() * (first << n) as f64)
        .sum();
    assert!(
        per_stranger <= model * 1.3 + 1.0,
        "searched {per_stranger} positions per stranger, model {model}"
    );
    let whole_log = maybes as f64 / strangers as f64 * inserted as f64;
    assert!(
        per_stranger < whole_log / 5.0,
        "{per_stranger} vs {whole_log}"
    );
}

#[test]
fn asking_about_many_ids_at_once_answers_as_asking_one_at_a_time() {
    let mut filter = IdFilter::with_first_capacity(128);
    for i in 0..5000 {
        filter.insert(&id(i), i + 1);
    }
    // Inserted ids, strangers, and enough strangers that some are false positives.
    let asked: Vec<[u8; 16]> = (4000..60_000).map(id).collect();
    let each = filter.may_contain_each(&asked, |id| id);
    let one_by_one: Vec<bool> = asked.iter().map(|id| filter.may_contain(id)).collect();
    assert_eq!(each, one_by_one);
    assert!(each[..1000].iter().all(|&maybe| maybe));
    let false_positives = each[1000..].iter().filter(|&&maybe| maybe).count();
    assert!(
        false_positives > 0 && false_positives < 55_000 / 50,
        "{false_positives}"
    );
    assert!(
        IdFilter::default()
            .may_contain_each(&asked, |id| id)
            .iter()
            .all(|&m| !m)
    );
}
