//! The stream table and the name order against simple models: random appends to random
//! streams (short ones in the pool, long ones moved to their own vectors, ones spanning
//! more than `u32::MAX` positions widened), then every stream's positions and lookups
//! must equal the model's.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::{NameOrder, Positions, StreamTable};

#[derive(Debug, Clone)]
enum Op {
    /// One event for the stream, `gap` positions after the last event of the log.
    Push { stream: usize, gap: u64 },
    /// `count` events for the stream at consecutive positions.
    Burst { stream: usize, count: usize },
    /// Registers the stream without an event.
    Intern { stream: usize },
    /// Forgets every stream's events.
    Clear,
    /// Packs the pool.
    Compact,
    /// Makes room for `more` pushes to the stream, as the syncer does between groups.
    MakeRoom { stream: usize, more: usize },
}

fn op(streams: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..streams, 1u64..4).prop_map(|(stream, gap)| Op::Push { stream, gap }),
        1 => (0..streams, (1u64 << 32) - 2..(1u64 << 33))
            .prop_map(|(stream, gap)| Op::Push { stream, gap }),
        3 => (0..streams, 1usize..90).prop_map(|(stream, count)| Op::Burst { stream, count }),
        1 => (0..streams).prop_map(|stream| Op::Intern { stream }),
        1 => Just(Op::Clear),
        2 => Just(Op::Compact),
        2 => (0..streams, 1usize..200).prop_map(|(stream, more)| Op::MakeRoom { stream, more }),
    ]
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-c]{1,3}(-[0-9]{1,2})?|x{255}", 1..24)
        .prop_map(|set| set.into_iter().collect())
}

/// Checks that `positions` are exactly `model`, through every way of reading them.
fn check_positions(positions: Positions<'_>, model: &[u64]) {
    assert_eq!(positions.len(), model.len());
    assert_eq!(positions.iter().collect::<Vec<_>>(), model);
    assert_eq!(positions.iter().rev().collect::<Vec<_>>(), {
        let mut reversed = model.to_vec();
        reversed.reverse();
        reversed
    });
    assert_eq!(positions.last(), model.last().copied());
    for (i, &p) in model.iter().enumerate() {
        assert_eq!(positions.get(i), Some(p));
        assert_eq!(positions.partition_point(p), i);
        assert_eq!(positions.partition_point(p + 1), i + 1);
    }
    assert_eq!(positions.get(model.len()), None);
    assert_eq!(positions.partition_point(0), 0);
    assert_eq!(positions.partition_point(u64::MAX), model.len());
    let len = model.len();
    for (start, end) in [
        (0, len),
        (len / 3, len / 2 + 1),
        (1, len + 5),
        (len, len + 1),
    ] {
        let expected: Vec<u64> = model
            .get(start.min(len)..end.min(len).max(start.min(len)))
            .unwrap_or_default()
            .to_vec();
        assert_eq!(
            positions.range(start, end).collect::<Vec<_>>(),
            expected,
            "range {start}..{end}"
        );
    }
}

fn check_table(table: &StreamTable, names: &[String], model: &HashMap<String, (u32, Vec<u64>)>) {
    assert_eq!(table.len(), model.len());
    for name in names {
        match model.get(name) {
            Some((id, positions)) => {
                assert_eq!(table.id(name.as_bytes()), Some(*id), "{name}");
                assert_eq!(table.name(*id), name);
                assert_eq!(table.count(*id), positions.len() as u64);
                check_positions(table.positions(*id), positions);
            }
            None => assert_eq!(table.id(name.as_bytes()), None, "{name}"),
        }
    }
    assert_eq!(table.id(b"never-seen"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_table_holds_what_the_model_holds(
        names in names(),
        ops in prop::collection::vec(op(24), 1..300),
    ) {
        let mut table = StreamTable::default();
        let mut model: HashMap<String, (u32, Vec<u64>)> = HashMap::new();
        let mut head = 0u64;
        for op in ops {
            match op {
                Op::Push { stream, gap } => {
                    let name = &names[stream % names.len()];
                    head += gap;
                    let id = table.intern(name);
                    let next = model.len() as u32;
                    let entry = model.entry(name.clone()).or_insert((next, Vec::new()));
                    prop_assert_eq!(id, entry.0);
                    table.push(id, head);
                    entry.1.push(head);
                }
                Op::Burst { stream, count } => {
                    let name = &names[stream % names.len()];
                    let id = table.intern(name);
                    let next = model.len() as u32;
                    let entry = model.entry(name.clone()).or_insert((next, Vec::new()));
                    for _ in 0..count {
                        head += 1;
                        table.push(id, head);
                        entry.1.push(head);
                    }
                }
                Op::Intern { stream } => {
                    let name = &names[stream % names.len()];
                    let id = table.intern(name);
                    let next = model.len() as u32;
                    prop_assert_eq!(id, model.entry(name.clone()).or_insert((next, Vec::new())).0);
                }
                Op::Compact => table.compact(),
                Op::MakeRoom { stream, more } => {
                    let id = table.intern(&names[stream % names.len()]);
                    let next = model.len() as u32;
                    model.entry(names[stream % names.len()].clone()).or_insert((next, Vec::new()));
                    table.make_room(id, more);
                    prop_assert!(table.has_room(id, more));
                }
                Op::Clear => {
                    table.clear_positions();
                    for (_, positions) in model.values_mut() {
                        positions.clear();
                    }
                }
            }
        }
        check_table(&table, &names, &model);
    }

    #[test]
    fn the_name_order_lists_names_in_order(
        initial in prop::collection::btree_set("[a-d]{1,4}(-[0-9]{1,2})?", 0..40),
        later in prop::collection::vec("[a-d]{1,4}(-[0-9]{1,2})?", 0..40),
        bounds in prop::collection::vec(("[a-d]{0,3}", any::<bool>()), 1..8),
    ) {
        let mut table = StreamTable::default();
        let mut model = BTreeSet::new();
        for name in &initial {
            table.intern(name);
            model.insert(name.clone());
        }
        let snapshot = table.snapshot_names();
        let mut order = NameOrder::from_sorted(&snapshot.sorted_ids());
        for name in &later {
            let known = table.len();
            let id = table.intern(name);
            if id as usize >= known {
                order.insert(&table, id);
            }
            model.insert(name.clone());
        }
        for (from, inclusive) in bounds {
            let listed: Vec<&str> = order
                .from(&table, &from, inclusive)
                .map(|id| table.name(id))
                .collect();
            let expected: Vec<&str> = model
                .iter()
                .filter(|name| if inclusive { **name >= from } else { **name > from })
                .map(String::as_str)
                .collect();
            prop_assert_eq!(listed, expected, "from {:?} inclusive {}", from, inclusive);
        }
    }
}

#[test]
fn blocks_of_the_name_order_split_and_stay_ordered() {
    let mut table = StreamTable::default();
    let mut order = NameOrder::default();
    // A fixed shuffle of 5000 names, enough to split blocks several times.
    let mut names: Vec<String> = (0..5000u32)
        .map(|i| format!("s-{}", i.wrapping_mul(2_654_435_761) % 100_000))
        .collect();
    names.dedup();
    for name in &names {
        let known = table.len();
        let id = table.intern(name);
        if id as usize >= known {
            order.insert(&table, id);
        }
    }
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort_unstable();
    expected.dedup();
    let listed: Vec<&str> = order
        .from(&table, "", true)
        .map(|id| table.name(id))
        .collect();
    assert_eq!(listed, expected);
    assert!(order.blocks.len() > 4, "the blocks were split");
    let middle = expected[expected.len() / 2];
    let after: Vec<&str> = order
        .from(&table, middle, false)
        .map(|id| table.name(id))
        .collect();
    assert_eq!(after, expected[expected.len() / 2 + 1..]);
}

#[test]
fn a_stream_spanning_more_than_u32_positions_keeps_them_all() {
    let mut table = StreamTable::default();
    let short = table.intern("short-1");
    let long = table.intern("long-1");
    let mut expected = Vec::new();
    for i in 0..100u64 {
        table.push(long, 1 + i);
        expected.push(1 + i);
    }
    // In its own vector of distances now; a jump past u32 widens it.
    let far = 1 + (1u64 << 33);
    table.push(long, far);
    table.push(short, far + 1);
    table.push(short, far + 2);
    table.push(long, far + 3);
    expected.extend([far, far + 3]);
    check_positions(table.positions(long), &expected);
    check_positions(table.positions(short), &[far + 1, far + 2]);
    // A pooled stream widened by a jump.
    let pooled = table.intern("pooled-1");
    table.push(pooled, 5);
    table.push(pooled, 6);
    table.push(pooled, 5 + (1u64 << 32));
    check_positions(table.positions(pooled), &[5, 6, 5 + (1u64 << 32)]);
}

#[test]
fn slots_freed_by_growing_streams_are_reused_or_packed() {
    // Streams written one after the other: each reuses the slots the previous one left.
    let mut table = StreamTable::default();
    let ids: Vec<u32> = (0..200).map(|i| table.intern(&format!("s-{i}"))).collect();
    let mut position = 0;
    for &id in &ids {
        for _ in 0..30 {
            position += 1;
            table.push(id, position);
        }
    }
    // 29 entries after the first each, in slots of 32; the smaller classes' slots were
    // passed on from stream to stream.
    let live = 200 * 32;
    let passed_on = 1 + 2 + 3 + 4 + 5 + 6 + 8 + 10 + 12 + 16 + 20 + 24;
    assert_eq!(table.pool.len(), live + passed_on);
    for (k, &id) in ids.iter().enumerate() {
        let expected: Vec<u64> = (1..=30).map(|i| k as u64 * 30 + i).collect();
        check_positions(table.positions(id), &expected);
    }

    // Streams written round-robin: every smaller slot is free at once, until packed.
    let mut table = StreamTable::default();
    let ids: Vec<u32> = (0..200).map(|i| table.intern(&format!("s-{i}"))).collect();
    let mut position = 0;
    for _ in 0..30 {
        for &id in &ids {
            position += 1;
            table.push(id, position);
        }
    }
    assert_eq!(table.pool.len(), 200 * (passed_on + 32));
    table.compact();
    assert_eq!(table.pool.len(), live);
    for (k, &id) in ids.iter().enumerate() {
        let expected: Vec<u64> = (0..30).map(|round| 1 + k as u64 + round * 200).collect();
        check_positions(table.positions(id), &expected);
    }
    // Growing on after packing works as before.
    for &id in &ids {
        position += 1;
        table.push(id, position);
    }
    for (k, &id) in ids.iter().enumerate() {
        let mut expected: Vec<u64> = (0..30).map(|round| 1 + k as u64 + round * 200).collect();
        expected.push(6001 + k as u64);
        check_positions(table.positions(id), &expected);
    }
}
