//! The embedded engine against the in-memory model: random appends (every kind of
//! expected version, right and wrong; several events at once; repeated ids), reads of
//! streams and of the log with filters, and reopening with small segments, so that
//! batches, rolls, index files and recovery all take part. Every answer must match the
//! model's exactly (recording times aside).

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use strata_core::{
    EventId, EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Version,
};
use strata_store::{AppendResult, Direction, EventStore, MemoryStore, ReadFilter, StoreError};
use strata_store_embedded::{EmbeddedStore, verify};

use crate::basics::small_segments;

const STREAMS: [&str; 5] = ["acct-1", "acct-2", "acct-3", "loan-1", "loan"];
const TYPES: [&str; 3] = ["Opened", "Deposited", "Closed"];
const CATEGORIES: [&str; 3] = ["acct", "loan", "none"];

/// An expected version, relative to the stream's version when the op runs.
#[derive(Debug, Clone)]
enum Expect {
    Any,
    NoStream,
    Exists,
    /// Exactly the current version.
    Current,
    /// An exact version this far below the current one (a stale reader).
    Behind(u64),
    /// An exact version this far above the current one.
    Ahead(u64),
}

/// How a repeat changes an earlier append.
#[derive(Debug, Clone)]
enum Repeat {
    /// The same call again.
    Same,
    /// The same events with `Any`.
    AsAny,
    /// Only its first event, with the same expectation.
    FirstOnly,
    /// Its events plus a new one.
    WithOneMore,
    /// The same events, to another stream.
    OtherStream(usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// Appends events given as (type, padding bytes); none is an empty append.
    Append {
        stream: usize,
        expect: Expect,
        events: Vec<(usize, usize)>,
    },
    /// Repeats an earlier append (by index into those made so far).
    Repeat { which: Index, how: Repeat },
    ReadStream {
        stream: usize,
        from: Option<u64>,
        backward: bool,
        limit: usize,
    },
    ReadAll {
        from: u64,
        limit: usize,
        categories: Vec<usize>,
        types: Vec<usize>,
    },
    /// Closes the embedded store and opens it again.
    Reopen,
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        2 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::Exists),
        3 => Just(Expect::Current),
        1 => (1..4u64).prop_map(Expect::Behind),
        1 => (1..3u64).prop_map(Expect::Ahead),
    ]
}

fn repeat() -> impl Strategy<Value = Repeat> {
    prop_oneof![
        3 => Just(Repeat::Same),
        2 => Just(Repeat::AsAny),
        1 => Just(Repeat::FirstOnly),
        1 => Just(Repeat::WithOneMore),
        1 => (0..STREAMS.len()).prop_map(Repeat::OtherStream),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let event = (0..TYPES.len(), 0..400usize);
    prop_oneof![
        8 => (0..STREAMS.len(), expect(), prop::collection::vec(event, 0..4))
            .prop_map(|(stream, expect, events)| Op::Append { stream, expect, events }),
        3 => (any::<Index>(), repeat()).prop_map(|(which, how)| Op::Repeat { which, how }),
        3 => (0..STREAMS.len(), prop::option::of(0..12u64), any::<bool>(), 0..8usize)
            .prop_map(|(stream, from, backward, limit)| Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            }),
        2 => (
            0..40u64,
            0..12usize,
            prop::collection::vec(0..CATEGORIES.len(), 0..2),
            prop::collection::vec(0..TYPES.len(), 0..2),
        )
            .prop_map(|(from, limit, categories, types)| Op::ReadAll {
                from,
                limit,
                categories,
                types,
            }),
        1 => Just(Op::Reopen),
    ]
}

/// An event as both stores must return it: everything but the recording time.
type Comparable = (
    Position,
    StreamName,
    Version,
    EventId,
    EventType,
    Bytes,
    Bytes,
);

fn comparable(events: Vec<RecordedEvent>) -> Vec<Comparable> {
    events
        .into_iter()
        .map(|e| {
            (
                e.position,
                e.stream,
                e.version,
                e.id,
                e.event_type,
                e.data,
                e.metadata,
            )
        })
        .collect()
}

/// An append's outcome as both stores must report it. The recording time is each store's
/// own clock (the conformance suite checks that it is the stored one), so it is left out.
fn outcome(result: Result<AppendResult, StoreError>) -> Result<AppendResult, (String, String)> {
    result
        .map(|r| AppendResult {
            recorded_at: Default::default(),
            ..r
        })
        .map_err(|e| (e.code().to_owned(), e.to_string()))
}

fn new_event(kind: usize, pad: usize, n: u64) -> NewEvent {
    NewEvent::json(
        EventType::new(TYPES[kind]).unwrap(),
        &serde_json::json!({ "n": n, "pad": "z".repeat(pad) }),
    )
}

struct Run {
    model: MemoryStore,
    store: Option<EmbeddedStore>,
    dir: tempfile::TempDir,
    /// Every append made so far: stream, expectation, events.
    appends: Vec<(StreamName, ExpectedVersion, Vec<NewEvent>)>,
    counter: u64,
}

impl Run {
    fn store(&self) -> &EmbeddedStore {
        self.store.as_ref().unwrap()
    }

    async fn resolve(&self, stream: &StreamName, expect: &Expect) -> ExpectedVersion {
        let current = self.model.stream_version(stream).await.unwrap().0;
        match expect {
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::Exists => ExpectedVersion::Exists,
            Expect::Current => ExpectedVersion::Exact(current),
            Expect::Behind(d) => ExpectedVersion::Exact(current.saturating_sub(*d)),
            Expect::Ahead(d) => ExpectedVersion::Exact(current + d),
        }
    }

    async fn append(
        &mut self,
        stream: StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<(), TestCaseError> {
        let want = outcome(self.model.append(&stream, expected, events.clone()).await);
        let got = outcome(self.store().append(&stream, expected, events.clone()).await);
        prop_assert_eq!(
            &got,
            &want,
            "append to {} expecting {} of {} events",
            stream,
            expected,
            events.len()
        );
        if !events.is_empty() {
            self.appends.push((stream, expected, events));
        }
        Ok(())
    }

    async fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append {
                stream,
                expect,
                events,
            } => {
                let stream = StreamName::new(STREAMS[stream]).unwrap();
                let expected = self.resolve(&stream, &expect).await;
                let events = events
                    .into_iter()
                    .map(|(kind, pad)| {
                        self.counter += 1;
                        new_event(kind, pad, self.counter)
                    })
                    .collect();
                self.append(stream, expected, events).await?;
            }
            Op::Repeat { which, how } => {
                if self.appends.is_empty() {
                    return Ok(());
                }
                let (stream, expected, mut events) =
                    self.appends[which.index(self.appends.len())].clone();
                let (stream, expected) = match how {
                    Repeat::Same => (stream, expected),
                    Repeat::AsAny => (stream, ExpectedVersion::Any),
                    Repeat::FirstOnly => {
                        events.truncate(1);
                        (stream, expected)
                    }
                    Repeat::WithOneMore => {
                        self.counter += 1;
                        events.push(new_event(1, 10, self.counter));
                        (stream, expected)
                    }
                    Repeat::OtherStream(other) => (
                        StreamName::new(STREAMS[other]).unwrap(),
                        ExpectedVersion::Any,
                    ),
                };
                self.append(stream, expected, events).await?;
            }
            Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            } => {
                let stream = StreamName::new(STREAMS[stream]).unwrap();
                let from = from.map(Version);
                let direction = if backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let want = self
                    .model
                    .read_stream(&stream, from, direction, limit)
                    .await
                    .unwrap();
                let got = self
                    .store()
                    .read_stream(&stream, from, direction, limit)
                    .await
                    .unwrap();
                prop_assert_eq!(
                    comparable(got),
                    comparable(want),
                    "read_stream({}, {:?}, {:?}, {})",
                    stream,
                    from,
                    direction,
                    limit
                );
                prop_assert_eq!(
                    self.store().stream_version(&stream).await.unwrap(),
                    self.model.stream_version(&stream).await.unwrap()
                );
            }
            Op::ReadAll {
                from,
                limit,
                categories,
                types,
            } => {
                let mut filter = ReadFilter::all();
                for c in categories {
                    filter = filter.category(CATEGORIES[c]);
                }
                for t in types {
                    filter = filter.event_type(TYPES[t]);
                }
                let want = self
                    .model
                    .read_all(Position(from), limit, &filter)
                    .await
                    .unwrap();
                let got = self
                    .store()
                    .read_all(Position(from), limit, &filter)
                    .await
                    .unwrap();
                prop_assert_eq!(
                    got.next,
                    want.next,
                    "read_all({}, {}, {:?})",
                    from,
                    limit,
                    &filter
                );
                prop_assert_eq!(comparable(got.events), comparable(want.events));
            }
            Op::Reopen => {
                let store = self.store.take().unwrap();
                store.close().await.unwrap();
                let store = EmbeddedStore::open(self.dir.path(), small_segments()).unwrap();
                prop_assert!(store.open_report().torn_tail.is_none());
                self.store = Some(store);
            }
        }
        prop_assert_eq!(
            self.store().head().await.unwrap(),
            self.model.head().await.unwrap()
        );
        Ok(())
    }

    async fn finish(mut self) -> Result<(), TestCaseError> {
        let want = self
            .model
            .read_all(Position(1), usize::MAX, &ReadFilter::all())
            .await
            .unwrap();
        let got = self
            .store()
            .read_all(Position(1), usize::MAX, &ReadFilter::all())
            .await
            .unwrap();
        prop_assert_eq!(comparable(got.events), comparable(want.events));
        self.store.take().unwrap().close().await.unwrap();
        let report = verify(self.dir.path()).unwrap();
        prop_assert!(report.is_intact(), "{:?}", report.problems);
        prop_assert_eq!(report.events, self.model.head().await.unwrap().0);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_behaves_like_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
            let mut run = Run {
                model: MemoryStore::new(),
                store: Some(store),
                dir,
                appends: Vec::new(),
                counter: 0,
            };
            for op in ops {
                run.apply(op).await?;
            }
            run.finish().await
        })?;
    }
}
