use super::*;

fn snapshot(stream: &str, version: u64, state: &'static str) -> Snapshot {
    Snapshot {
        stream: StreamName::new(stream).unwrap(),
        version: Version(version),
        schema_version: 1,
        state: Bytes::from_static(state.as_bytes()),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn memory_snapshots_keep_the_newest_per_stream() {
    block_on(async {
        let snapshots = MemorySnapshots::new();
        let stream = StreamName::new("cart-1").unwrap();
        assert_eq!(snapshots.load(&stream).await.unwrap(), None);

        snapshots
            .save(snapshot("cart-1", 3, "three"))
            .await
            .unwrap();
        snapshots
            .save(snapshot("cart-2", 9, "other"))
            .await
            .unwrap();
        assert_eq!(
            snapshots.load(&stream).await.unwrap(),
            Some(snapshot("cart-1", 3, "three"))
        );

        // An older snapshot (a slow writer) never replaces a newer one.
        snapshots.save(snapshot("cart-1", 2, "two")).await.unwrap();
        assert_eq!(
            snapshots.load(&stream).await.unwrap().unwrap().state,
            "three"
        );
        // The same version replaces (a new snapshot version of the same state).
        snapshots
            .save(snapshot("cart-1", 3, "again"))
            .await
            .unwrap();
        assert_eq!(
            snapshots.load(&stream).await.unwrap().unwrap().state,
            "again"
        );
        snapshots.save(snapshot("cart-1", 6, "six")).await.unwrap();
        assert_eq!(
            snapshots.load(&stream).await.unwrap().unwrap().version,
            Version(6)
        );
        let other = StreamName::new("cart-2").unwrap();
        assert_eq!(
            snapshots.load(&other).await.unwrap().unwrap().state,
            "other"
        );
    });
}

mod encoding {
    //! The state encoding: round trips, reads the JSON of snapshots taken before it, and
    //! refuses a state of another shape, so the handler rebuilds from events.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use strata_core::Version;

    use super::block_on;
    use crate::{
        Aggregate, CommandContext, CommandHandler, DomainError, MemorySnapshots, Snapshot,
        SnapshotStore, TaggedEvent, decode_state, encode_state,
    };

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    enum Mode {
        #[default]
        Open,
        Closed,
        Limited(u8),
    }

    /// A state with the kinds of fields aggregates hold.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    struct Shelf {
        items: BTreeMap<String, u32>,
        label: Option<String>,
        mode: Mode,
        log: Vec<i64>,
        count: u64,
    }

    /// The same field names, another shape: what a changed state looks like.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    struct ShelfV2 {
        items: Vec<String>,
        label: String,
        count: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum ShelfEvent {
        Put { name: String, n: u32 },
        Labelled(Option<String>),
        Switched(Mode),
        Logged(i64),
    }

    impl TaggedEvent for ShelfEvent {}

    #[derive(Debug)]
    enum Never {}

    impl std::fmt::Display for Never {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match *self {}
        }
    }

    impl std::error::Error for Never {}

    impl DomainError for Never {
        fn code(&self) -> &'static str {
            "never"
        }
    }

    impl Aggregate for Shelf {
        const CATEGORY: &'static str = "shelf";
        const SNAPSHOT_VERSION: u32 = 4;
        const SNAPSHOT_EVERY: Option<u64> = Some(1);
        type Command = Vec<ShelfEvent>;
        type Event = ShelfEvent;
        type Error = Never;

        fn decide(&self, command: &Vec<ShelfEvent>) -> Result<Vec<ShelfEvent>, Never> {
            Ok(command.clone())
        }

        fn evolve(mut self, event: &ShelfEvent) -> Self {
            self.count += 1;
            match event {
                ShelfEvent::Put { name, n } => {
                    self.items.insert(name.clone(), *n);
                }
                ShelfEvent::Labelled(label) => self.label = label.clone(),
                ShelfEvent::Switched(mode) => self.mode = *mode,
                ShelfEvent::Logged(x) => self.log.push(*x),
            }
            self
        }
    }

    fn event() -> impl Strategy<Value = ShelfEvent> {
        prop_oneof![
            ("[a-z\"\\\\é]{0,6}", any::<u32>()).prop_map(|(name, n)| ShelfEvent::Put { name, n }),
            proptest::option::of("\\PC{0,8}").prop_map(ShelfEvent::Labelled),
            prop_oneof![
                Just(Mode::Open),
                Just(Mode::Closed),
                any::<u8>().prop_map(Mode::Limited)
            ]
            .prop_map(ShelfEvent::Switched),
            any::<i64>().prop_map(ShelfEvent::Logged),
        ]
    }

    fn events() -> impl Strategy<Value = Vec<ShelfEvent>> {
        prop::collection::vec(event(), 1..40)
    }

    fn fold(events: &[ShelfEvent]) -> Shelf {
        events.iter().fold(Shelf::default(), |s, e| s.evolve(e))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_state_round_trips(events in events()) {
            let state = fold(&events);
            let bytes = encode_state(&state).unwrap();
            prop_assert_eq!(&bytes[..3], b"\0SN");
            prop_assert_eq!(decode_state::<Shelf>(&bytes).unwrap(), state);
        }

        #[test]
        fn a_json_snapshot_from_before_still_decodes(events in events()) {
            let state = fold(&events);
            let json = serde_json::to_vec(&state).unwrap();
            prop_assert_eq!(decode_state::<Shelf>(&json).unwrap(), state);
        }

        #[test]
        fn a_state_of_another_shape_does_not_decode(events in events()) {
            let state = fold(&events);
            prop_assert!(decode_state::<ShelfV2>(&encode_state(&state).unwrap()).is_err());
            prop_assert!(decode_state::<ShelfV2>(&serde_json::to_vec(&state).unwrap()).is_err());
        }

        #[test]
        fn a_snapshot_of_another_version_or_shape_is_ignored_and_rebuilt(
            events in events(),
            planted in 0..4_u8,
        ) {
            block_on(async {
                let snapshots = Arc::new(MemorySnapshots::new());
                // Without the aggregate cache, every load starts from the snapshot store.
                let handler = CommandHandler::new(
                    Arc::new(strata_store::MemoryStore::new()),
                    snapshots.clone(),
                )
                .with_options(crate::HandlerOptions {
                    cached_aggregates: 0,
                    ..Default::default()
                });
                handler
                    .handle::<Shelf>("a", &events, &CommandContext::new())
                    .await
                    .unwrap();
                let stream = CommandHandler::stream_of::<Shelf>("a").unwrap();
                let taken = snapshots.load(&stream).await.unwrap().unwrap();
                prop_assert_eq!(decode_state::<Shelf>(&taken.state).unwrap(), fold(&events));

                // A snapshot at the same version whose state means another thing: of an
                // older or newer snapshot version (binary or JSON), or of the current
                // version but another shape.
                let wrong = Shelf { count: 999, ..Shelf::default() };
                let other_shape = ShelfV2 { items: vec!["x".into()], label: "y".into(), count: 999 };
                let (schema_version, state) = match planted {
                    0 => (3, encode_state(&wrong).unwrap()),
                    1 => (5, encode_state(&wrong).unwrap()),
                    2 => (3, serde_json::to_vec(&wrong).unwrap()),
                    _ => (Shelf::SNAPSHOT_VERSION, encode_state(&other_shape).unwrap()),
                };
                snapshots.save(Snapshot {
                    stream: stream.clone(),
                    version: taken.version,
                    schema_version,
                    state: state.into(),
                }).await.unwrap();
                let loaded = handler.load::<Shelf>("a").await.unwrap();
                prop_assert_eq!(loaded.snapshot, None);
                prop_assert_eq!(loaded.version, Version(events.len() as u64));
                prop_assert_eq!(loaded.state, fold(&events));

                // A JSON snapshot from before, of the current version, is used.
                snapshots.save(Snapshot {
                    stream: stream.clone(),
                    version: taken.version,
                    schema_version: Shelf::SNAPSHOT_VERSION,
                    state: serde_json::to_vec(&fold(&events)).unwrap().into(),
                }).await.unwrap();
                let loaded = handler.load::<Shelf>("a").await.unwrap();
                prop_assert_eq!(loaded.snapshot, Some(taken.version));
                prop_assert_eq!(loaded.state, fold(&events));
                Ok(())
            })?;
        }
    }
}
