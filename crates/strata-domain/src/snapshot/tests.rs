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
