//! The in-memory index against the in-memory model, across reopens: random appends to
//! many streams (a few of them long enough to leave the shared pool of positions), then
//! every stream's version, events, id lookups, idempotent repeats and the stream listing
//! must equal the model's, before and after the index is rebuilt from disk.

use proptest::prelude::*;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, StreamName, Version};
use strata_store::{AppendResult, Direction, EventStore, MemoryStore};
use strata_store_embedded::EmbeddedStore;

use crate::basics::small_segments;

#[derive(Debug, Clone)]
enum Op {
    Append { stream: usize, events: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Two hot streams get most events: they outgrow the pool's largest slot.
        12 => (0usize..2, 1usize..9).prop_map(|(stream, events)| Op::Append { stream, events }),
        8 => (0usize..40, 1usize..4).prop_map(|(stream, events)| Op::Append { stream, events }),
        1 => Just(Op::Reopen),
    ]
}

fn name(stream: usize) -> StreamName {
    StreamName::new(format!("s{}-{stream}", stream % 3)).unwrap()
}

fn event(n: u64) -> NewEvent {
    NewEvent::json(
        EventType::new("Happened").unwrap(),
        &serde_json::json!({ "n": n }),
    )
}

fn without_time(result: AppendResult) -> AppendResult {
    AppendResult {
        recorded_at: Default::default(),
        ..result
    }
}

/// Every stream of the model, read back through the store's index.
async fn check(
    store: &EmbeddedStore,
    model: &MemoryStore,
    appends: &[(StreamName, Vec<NewEvent>, AppendResult)],
) -> Result<(), TestCaseError> {
    for stream in (0..40).map(name) {
        let version = model.stream_version(&stream).await.unwrap();
        prop_assert_eq!(store.stream_version(&stream).await.unwrap(), version);
        let want = model
            .read_stream(&stream, None, Direction::Forward, usize::MAX)
            .await
            .unwrap();
        let got = store
            .read_stream(&stream, None, Direction::Forward, usize::MAX)
            .await
            .unwrap();
        let positions = |events: &[strata_core::RecordedEvent]| {
            events
                .iter()
                .map(|e| (e.position, e.version, e.id))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(positions(&got), positions(&want), "{}", stream);
        // A page from the middle, both ways.
        let from = Some(Version(version.0 / 2 + 1));
        for direction in [Direction::Forward, Direction::Backward] {
            let want = model
                .read_stream(&stream, from, direction, 5)
                .await
                .unwrap();
            let got = store
                .read_stream(&stream, from, direction, 5)
                .await
                .unwrap();
            prop_assert_eq!(
                positions(&got),
                positions(&want),
                "{} {:?}",
                stream,
                direction
            );
        }
        // Every event is found by its id, in its stream and in the log.
        for event in &want {
            let found = store.event_by_id(&stream, event.id).await.unwrap();
            prop_assert_eq!(found.map(|e| e.position), Some(event.position));
            prop_assert_eq!(
                store.position_of_id(event.id).unwrap(),
                Some(event.position)
            );
        }
    }
    // Repeating an append with `any` answers its first result and writes nothing.
    let head = store.head().await.unwrap();
    for (stream, events, result) in appends.iter().step_by(7) {
        let again = store
            .append(stream, ExpectedVersion::Any, events.clone())
            .await
            .unwrap();
        prop_assert_eq!(without_time(again), without_time(*result));
    }
    prop_assert_eq!(store.head().await.unwrap(), head);
    let want = model.list_streams("", None, usize::MAX).await.unwrap();
    let got = store.list_streams("", None, usize::MAX).await.unwrap();
    prop_assert_eq!(got, want);
    let want = model.list_streams("s1", Some("s1-13"), 4).await.unwrap();
    let got = store.list_streams("s1", Some("s1-13"), 4).await.unwrap();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn the_index_answers_like_the_model_after_reopening(
        ops in prop::collection::vec(op(), 20..90),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
            let model = MemoryStore::new();
            let mut appends = Vec::new();
            let mut n = 0;
            for op in ops {
                match op {
                    Op::Append { stream, events } => {
                        let stream = name(stream);
                        let events: Vec<NewEvent> = (0..events)
                            .map(|_| {
                                n += 1;
                                event(n)
                            })
                            .collect();
                        let want = model
                            .append(&stream, ExpectedVersion::Any, events.clone())
                            .await
                            .unwrap();
                        let got = store
                            .append(&stream, ExpectedVersion::Any, events.clone())
                            .await
                            .unwrap();
                        prop_assert_eq!(without_time(got), without_time(want));
                        appends.push((stream, events, got));
                    }
                    Op::Reopen => {
                        check(&store, &model, &appends).await?;
                        store.close().await.unwrap();
                        store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
                    }
                }
            }
            check(&store, &model, &appends).await?;
            store.close().await.unwrap();
            let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
            prop_assert_eq!(store.head().await.unwrap(), Position(n));
            check(&store, &model, &appends).await
        })?;
    }
}
