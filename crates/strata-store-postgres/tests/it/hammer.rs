//! Many writers on many streams through two store handles (as two processes would be),
//! several subscribers started at different moments: every subscriber must see exactly
//! the final table, in order, with no gap, however the appends' commits interleave.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName};
use strata_store::{EventStore, ReadFilter, StoreError};
use strata_store_postgres::PostgresStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{Databases, options};

const WRITERS: usize = 16;
const APPENDS_PER_WRITER: usize = 40;
const STREAMS: usize = 24;
/// Every wait below is bounded by this, so a lost event fails the test instead of hanging.
const DEADLINE: Duration = Duration::from_secs(60);

fn stream_name(index: usize) -> StreamName {
    let category = if index.is_multiple_of(3) {
        "order"
    } else {
        "cart"
    };
    StreamName::new(format!("{category}-{index}")).expect("a valid stream name")
}

/// Appends from many tasks at once; a third of the appends race on expected versions
/// and retry their conflicts, the others append with `Any`.
async fn write(store: PostgresStore, writer: usize) -> Vec<(StreamName, Vec<NewEvent>, u64)> {
    let mut done = Vec::new();
    for append in 0..APPENDS_PER_WRITER {
        let stream = stream_name((writer * 7 + append * 5) % STREAMS);
        let events: Vec<NewEvent> = (0..(append % 3 + 1))
            .map(|part| {
                NewEvent::json(
                    EventType::new("Hammered").expect("a valid type"),
                    &json!({"writer": writer, "append": append, "part": part}),
                )
            })
            .collect();
        let result = loop {
            let expected = if append.is_multiple_of(3) {
                let version = store.stream_version(&stream).await.expect("stream version");
                ExpectedVersion::Exact(version.0)
            } else {
                ExpectedVersion::Any
            };
            match store.append(&stream, expected, events.clone()).await {
                Ok(result) => break result,
                Err(StoreError::WrongExpectedVersion { .. }) => continue,
                Err(err) => panic!("writer {writer} append {append} to {stream}: {err}"),
            }
        };
        assert_eq!(
            result.position.0 - result.first_position.0 + 1,
            events.len() as u64,
            "one append's positions are consecutive"
        );
        done.push((stream, events, result.first_position.0));
    }
    done
}

/// Collects `total` events of a subscription, checking on the way that positions only
/// grow (and, unfiltered, grow by exactly one).
async fn collect(
    store: PostgresStore,
    after: Position,
    filter: ReadFilter,
    mut total: watch::Receiver<Option<usize>>,
) -> Vec<RecordedEvent> {
    let contiguous = filter.is_all();
    let mut subscription = store.subscribe(after, filter);
    let mut seen: Vec<RecordedEvent> = Vec::new();
    loop {
        if let Some(total) = *total.borrow_and_update()
            && seen.len() >= total
        {
            return seen;
        }
        tokio::select! {
            next = subscription.next() => {
                let event = next
                    .expect("a subscription does not end while the store is open")
                    .expect("a subscription yields events, not errors");
                let previous = seen.last().map_or(after, |e| e.position);
                if contiguous {
                    assert_eq!(
                        event.position.0,
                        previous.0 + 1,
                        "a subscriber saw position {} right after {}: a gap",
                        event.position,
                        previous
                    );
                } else {
                    assert!(event.position > previous, "positions go back");
                }
                seen.push(event);
            }
            changed = total.changed() => changed.expect("the total is published"),
        }
    }
}

/// A subscriber task, and where to tell it how many events it must see before it stops.
struct Subscriber {
    total: watch::Sender<Option<usize>>,
    task: JoinHandle<Vec<RecordedEvent>>,
}

fn subscriber(store: &PostgresStore, after: Position, filter: ReadFilter) -> Subscriber {
    let (total, receiver) = watch::channel(None);
    let task = tokio::spawn(collect(store.clone(), after, filter, receiver));
    Subscriber { total, task }
}

impl Subscriber {
    /// Waits until it has seen `expected`, and checks it saw exactly that.
    async fn finish(self, name: &str, expected: &[&RecordedEvent]) {
        self.total.send_replace(Some(expected.len()));
        let seen = tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap_or_else(|_| panic!("the {name} subscriber caught up in time"))
            .expect("subscriber task");
        assert_eq!(
            seen.len(),
            expected.len(),
            "the {name} subscriber saw every event once"
        );
        for (got, want) in seen.iter().zip(expected) {
            assert_eq!(got, *want, "the {name} subscriber saw the table's event");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_see_every_event_of_concurrent_writers_in_order() {
    let Some(databases) = Databases::new("the postgres hammer") else {
        return;
    };
    let first = databases.store(options(Duration::from_millis(100))).await;
    // A second handle with its own pool and listener, as a second process would have.
    let second =
        PostgresStore::connect_with(first.config().clone(), options(Duration::from_secs(3600)))
            .await
            .expect("a second handle");
    let orders = ReadFilter::all().category("order");

    // Subscribers from the start on both handles, one filtered.
    let from_start_first = subscriber(&first, Position::ZERO, ReadFilter::all());
    let from_start_second = subscriber(&second, Position::ZERO, ReadFilter::all());
    let filtered = subscriber(&second, Position::ZERO, orders);

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = if writer % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(write(store, writer))
        })
        .collect();
    // One subscriber joins mid-way, from wherever the head is then: the others' catch-up
    // and live phases overlap the writers differently.
    let late_from = first.head().await.expect("head");
    let late = subscriber(&second, late_from, ReadFilter::all());

    let mut appended = Vec::new();
    for writer in writers {
        let done = tokio::time::timeout(DEADLINE, writer)
            .await
            .expect("a writer finished in time")
            .expect("writer task");
        appended.extend(done);
    }
    let head = first.head().await.expect("head");
    let table = first
        .read_all(Position(1), 1_000_000, &ReadFilter::all())
        .await
        .expect("read the whole log")
        .events;
    assert_eq!(
        table.len() as u64,
        head.0,
        "the log holds positions 1..=head"
    );
    for (index, event) in table.iter().enumerate() {
        assert_eq!(
            event.position.0,
            index as u64 + 1,
            "the table's positions are gapless"
        );
    }
    // Each append's events sit at the positions its result named, in its stream's order.
    let mut versions: BTreeMap<&StreamName, u64> = BTreeMap::new();
    for event in &table {
        let version = versions.entry(&event.stream).or_default();
        *version += 1;
        assert_eq!(
            event.version.0, *version,
            "{}'s versions are gapless",
            event.stream
        );
    }
    for (stream, events, first_position) in &appended {
        for (i, new) in events.iter().enumerate() {
            let stored = &table[(*first_position as usize) + i - 1];
            assert_eq!(
                (&stored.stream, stored.id),
                (stream, new.id),
                "the appended event"
            );
        }
    }
    let ordered: Vec<&RecordedEvent> = table
        .iter()
        .filter(|e| e.stream.category() == "order")
        .collect();

    let everything: Vec<&RecordedEvent> = table.iter().collect();
    from_start_first.finish("first handle's", &everything).await;
    from_start_second
        .finish("second handle's", &everything)
        .await;
    late.finish("late", &everything[late_from.0 as usize..])
        .await;
    filtered.finish("filtered", &ordered).await;
}
