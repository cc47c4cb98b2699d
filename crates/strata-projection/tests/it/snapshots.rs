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
