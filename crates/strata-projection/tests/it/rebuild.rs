//! Rebuilds without downtime: a new generation builds beside the answering one, which
//! keeps answering until the new one has caught up; version bumps do the same on start.

use std::sync::Arc;
use std::time::Duration;

use strata_projection::{Projections, RunnerState};

use crate::support::{
    Counter, Fixture, Kind, WAIT, append, append_many, both_stores, eventually, expected_model,
    query_model, read_log, read_model,
};

both_stores!(
    rebuild_keeps_answering_from_the_old_generation,
    a_version_bump_builds_beside_the_old_version
);

/// Which generation and version a query answered from.
async fn answered_by(host: &Projections) -> (u32, u64) {
    host.query("counter", |conn| {
        conn.query_row("SELECT version, generation FROM strata_model", [], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64))
        })
    })
    .await
    .unwrap()
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("counter-") && n.ends_with(".sqlite3"))
        .collect();
    names.sort();
    names
}

async fn rebuild_keeps_answering_from_the_old_generation(kind: Kind) {
    let fx = Fixture::new(kind);
    let head = append_many(&*fx.store, 1_500, 9).await;
    let host = fx.host();
    // Slow enough that the rebuild takes a while.
    host.register(Arc::new(Counter::new("counter").delay(400)))
        .unwrap();
    host.start();
    host.wait_for("counter", head, WAIT).await.unwrap();
    assert_eq!(answered_by(&host).await, (1, 1));

    let rebuild = tokio::spawn({
        let host = host.clone();
        async move { host.rebuild("counter").await }
    });
    // While it rebuilds: queries keep answering, from the old generation with the whole
    // model, and live events keep reaching it.
    let mut seen_rebuilding = false;
    let mut last = head;
    let mut answers = Vec::new();
    while !rebuild.is_finished() {
        let status = host.status().remove(0);
        if status.state == RunnerState::Rebuilding {
            seen_rebuilding = true;
            let rebuild = status.rebuild.unwrap();
            assert_eq!((rebuild.version, rebuild.generation), (1, 2));
        }
        last = append(
            &*fx.store,
            "acct-live",
            "Added",
            serde_json::json!({"n": 1}),
        )
        .await;
        let (version, generation) = answered_by(&host).await;
        let model = query_model(&host, "counter").await;
        answers.push(generation);
        if generation == 1 {
            assert!(
                model.checkpoint >= head.0,
                "the old generation answered a partial model"
            );
        }
        assert!(model.applied.iter().all(|&(_, times)| times == 1));
        assert_eq!(version, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rebuild.await.unwrap().unwrap();
    assert!(seen_rebuilding);
    assert!(
        answers.iter().filter(|&&g| g == 1).count() >= 3,
        "{answers:?}"
    );
    assert!(answers.windows(2).all(|w| w[0] <= w[1]), "{answers:?}");

    assert_eq!(answered_by(&host).await, (1, 2));
    host.wait_for("counter", last, WAIT).await.unwrap();
    let log = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, last.0, &[])
    );
    let status = host.status().remove(0);
    assert_eq!(status.generation, 2);
    assert!(status.rebuild.is_none());
    // The old file goes once nothing holds it.
    let dir = fx.read_dir();
    assert!(
        eventually(WAIT, || files(&dir) == ["counter-v1-g2.sqlite3"]).await,
        "{:?}",
        files(&dir)
    );
    host.shutdown().await;

    // A restart picks the new generation.
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    assert_eq!(answered_by(&host).await, (1, 2));
}

async fn a_version_bump_builds_beside_the_old_version(kind: Kind) {
    let fx = Fixture::new(kind);
    let head = append_many(&*fx.store, 600, 5).await;
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    host.wait_for("counter", head, WAIT).await.unwrap();
    host.shutdown().await;
    drop(host);

    let host = fx.host();
    host.register(Arc::new(Counter::new("counter").version(2).delay(200)))
        .unwrap();
    // Until the new version has caught up, the old one answers.
    let status = host.status().remove(0);
    assert_eq!((status.version, status.state), (1, RunnerState::Rebuilding));
    assert_eq!(status.rebuild.as_ref().map(|r| r.version), Some(2));
    assert_eq!(answered_by(&host).await, (1, 1));
    assert_eq!(query_model(&host, "counter").await.checkpoint, head.0);

    host.start();
    assert!(
        eventually(WAIT, || host.status()[0].version == 2).await,
        "{:?}",
        host.status()
    );
    assert_eq!(answered_by(&host).await, (2, 2));
    let last = append(&*fx.store, "acct-9", "Added", serde_json::json!({"n": 3})).await;
    host.wait_for("counter", last, WAIT).await.unwrap();
    let log = read_log(&*fx.store).await;
    let model = host.query("counter", read_model).await.unwrap();
    assert_eq!(model, expected_model(&log, last.0, &[]));
    let dir = fx.read_dir();
    assert!(
        eventually(WAIT, || files(&dir) == ["counter-v2-g2.sqlite3"]).await,
        "{:?}",
        files(&dir)
    );
    host.shutdown().await;
    drop(host);

    // The same version again: no rebuild, the same file.
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter").version(2)))
        .unwrap();
    let status = host.status().remove(0);
    assert_eq!((status.version, status.generation), (2, 2));
    assert!(status.rebuild.is_none());
}
