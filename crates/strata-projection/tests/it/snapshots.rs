//! Durable snapshots for the command side.

use bytes::Bytes;
use strata_core::{StreamName, Version};
use strata_domain::{Snapshot, SnapshotStore};
use strata_projection::SqliteSnapshots;

fn snapshot(stream: &StreamName, version: u64, state: &str) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version: Version(version),
        schema_version: 3,
        state: Bytes::from(state.to_owned()),
    }
}

#[tokio::test]
async fn keeps_the_latest_snapshot_per_stream_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshots").join("snapshots.sqlite3");
    let order = StreamName::new("order-1").unwrap();
    let other = StreamName::new("order-2").unwrap();
    {
        let snapshots = SqliteSnapshots::open(&path).unwrap();
        assert_eq!(snapshots.load(&order).await.unwrap(), None);
        snapshots
            .save(snapshot(&order, 10, "{\"a\":1}"))
            .await
            .unwrap();
        snapshots
            .save(snapshot(&order, 20, "{\"a\":2}"))
            .await
            .unwrap();
        // An older snapshot never replaces a newer one.
        snapshots
            .save(snapshot(&order, 15, "{\"a\":9}"))
            .await
            .unwrap();
        snapshots.save(snapshot(&other, 1, "{}")).await.unwrap();
    }
    let snapshots = SqliteSnapshots::open(&path).unwrap();
    assert_eq!(
        snapshots.load(&order).await.unwrap(),
        Some(snapshot(&order, 20, "{\"a\":2}"))
    );
    assert_eq!(
        snapshots.load(&other).await.unwrap(),
        Some(snapshot(&other, 1, "{}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_sees_every_save_that_returned_before_it_while_saves_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshots.sqlite3");
    let snapshots = std::sync::Arc::new(SqliteSnapshots::open(&path).unwrap());
    let stream = StreamName::new("inventory-sku1").unwrap();
    let saved = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let saver = {
        let (snapshots, stream, saved) = (snapshots.clone(), stream.clone(), saved.clone());
        tokio::spawn(async move {
            for version in 1..=300 {
                snapshots
                    .save(snapshot(&stream, version, &format!("{{\"v\":{version}}}")))
                    .await
                    .unwrap();
                saved.store(version, std::sync::atomic::Ordering::Release);
            }
        })
    };
    let mut loaders = Vec::new();
    for _ in 0..4 {
        let (snapshots, stream, saved) = (snapshots.clone(), stream.clone(), saved.clone());
        loaders.push(tokio::spawn(async move {
            let mut loads = 0;
            loop {
                let before = saved.load(std::sync::atomic::Ordering::Acquire);
                let loaded = snapshots.load(&stream).await.unwrap();
                let version = loaded.as_ref().map_or(0, |s| s.version.0);
                assert!(
                    version >= before,
                    "a load after the save of version {before} found version {version}"
                );
                if let Some(loaded) = loaded {
                    assert_eq!(loaded.state, Bytes::from(format!("{{\"v\":{version}}}")));
                }
                loads += 1;
                if before == 300 {
                    return loads;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    saver.await.unwrap();
    for loader in loaders {
        assert!(loader.await.unwrap() > 0);
    }
}
