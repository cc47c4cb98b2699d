//! The fold property: recording an event sequence through the handler, cut into random
//! commands (some deciding nothing), loads the same state as folding it directly, with
//! or without snapshots, now and at every version.

use std::sync::Arc;

use proptest::prelude::*;
use strata_core::Version;
use strata_domain::{CommandContext, CommandHandler, MemorySnapshots};

use crate::support::counter::{Counter, CounterCommand, CounterEvent, EVERY, fold};
use crate::support::{Backend, Fixture};

fn event() -> impl Strategy<Value = CounterEvent> {
    prop_oneof![
        4 => (-1_000i64..1_000).prop_map(|n| CounterEvent::Added { n }),
        2 => Just(CounterEvent::Doubled),
        1 => Just(CounterEvent::Reset),
    ]
}

/// Cuts `events` into commands of the given sizes, cycling through them (a whole cycle
/// of empty commands is followed by one of one event).
fn chunks(events: &[CounterEvent], sizes: &[usize]) -> Vec<Vec<CounterEvent>> {
    let mut commands = Vec::new();
    let mut rest = events;
    let mut idle = 0;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let size = if idle >= sizes.len() { 1 } else { size };
        idle = if size == 0 { idle + 1 } else { 0 };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        commands.push(chunk.to_vec());
        rest = tail;
    }
    commands
}

fn check(backend: Backend, events: Vec<CounterEvent>, sizes: Vec<usize>, at: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fx = Fixture::new(backend);
        let handler = fx.handler();
        let mut recorded = 0u64;
        for command in chunks(&events, &sizes) {
            let outcome = handler
                .handle::<Counter>(
                    "p",
                    &CounterCommand::Record(command.clone()),
                    &CommandContext::new(),
                )
                .await
                .unwrap();
            recorded += command.len() as u64;
            assert_eq!(outcome.version, Version(recorded));
            assert_eq!(outcome.events.len(), command.len());
        }
        let expected = fold(&events);
        let loaded = handler.load::<Counter>("p").await.unwrap();
        assert_eq!(loaded.state, expected);
        assert_eq!(loaded.version, Version(events.len() as u64));
        if events.len() as u64 >= EVERY {
            assert!(
                loaded.snapshot.is_some(),
                "a snapshot is used once there are {EVERY} events"
            );
        }

        let replay = CommandHandler::new(fx.spy.clone(), Arc::new(MemorySnapshots::new()));
        let replayed = replay.load::<Counter>("p").await.unwrap();
        assert_eq!(replayed.snapshot, None);
        assert_eq!(
            (replayed.state, replayed.version, replayed.position),
            (expected, loaded.version, loaded.position)
        );

        let at = at.min(events.len());
        let past = handler
            .load_at_version::<Counter>("p", Version(at as u64))
            .await
            .unwrap();
        assert_eq!(past.state, fold(&events[..at]));
        assert_eq!(past.version, Version(at as u64));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_handler_folds_like_a_plain_fold_in_memory(
        events in prop::collection::vec(event(), 0..40),
        sizes in prop::collection::vec(0usize..6, 1..8),
        at in 0usize..40,
    ) {
        check(Backend::Memory, events, sizes, at);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_handler_folds_like_a_plain_fold_on_disk(
        events in prop::collection::vec(event(), 0..40),
        sizes in prop::collection::vec(0usize..6, 1..8),
        at in 0usize..40,
    ) {
        check(Backend::Embedded, events, sizes, at);
    }
}
