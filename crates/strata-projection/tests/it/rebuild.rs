//! Rebuilds without downtime: a new generation builds beside the answering one, which
//! keeps answering until the new one has caught up; version bumps do the same on start;
//! a rebuild that fails is given up and says so, and the old generation keeps answering.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use strata_projection::{ProjectionError, Projections, RunnerState, StopCause};

use crate::support::{
    Counter, Fixture, Kind, WAIT, append, append_many, both_stores, eventually, expected_model,
    query_model, read_log, read_model,
};

both_stores!(
    rebuild_keeps_answering_from_the_old_generation,
    a_version_bump_builds_beside_the_old_version,
    a_failed_rebuild_is_given_up_and_the_old_generation_keeps_answering
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

async fn a_failed_rebuild_is_given_up_and_the_old_generation_keeps_answering(kind: Kind) {
    let fx = Fixture::new(kind);
    let store = &*fx.store;
    append(store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    let poison = append(
        store,
        "acct-2",
        "Added",
        serde_json::json!({"n": 2, "poison": true}),
    )
    .await;
    let head = append(store, "acct-1", "Added", serde_json::json!({"n": 4})).await;
    // Policy `Stop`; the answering generation is built while the code still accepts
    // the event, then the code changes and a rebuild meets it.
    let counter = Arc::new(Counter::new("counter"));
    counter.refuse.store(false, Ordering::SeqCst);
    let host = fx.host();
    host.register(counter.clone()).unwrap();
    host.start();
    host.wait_for("counter", head, WAIT).await.unwrap();
    counter.refuse.store(true, Ordering::SeqCst);

    let err = host.rebuild("counter").await.unwrap_err();
    assert!(
        matches!(
            &err,
            ProjectionError::Stopped { name, cause: StopCause::PoisonEvent { position, .. } }
                if name == "counter" && *position == poison
        ),
        "{err}"
    );
    // The status says so, and is not stuck at `rebuilding`.
    let status = host.status().remove(0);
    assert_ne!(status.state, RunnerState::Rebuilding);
    assert_eq!(status.stopped_by, None);
    assert_eq!(status.generation, 1);
    let failed = status.rebuild.expect("the failed rebuild is reported");
    assert_eq!(failed.state, RunnerState::Failed);
    assert_eq!(failed.generation, 2);
    assert!(
        matches!(failed.stopped_by, Some(StopCause::PoisonEvent { position, .. }) if position == poison)
    );
    assert!(failed.last_error.unwrap().contains("poison at"));

    // Another attempt fails the same way, in a generation of its own.
    assert!(matches!(
        host.rebuild("counter").await,
        Err(ProjectionError::Stopped { .. })
    ));
    assert_eq!(host.status()[0].rebuild.as_ref().unwrap().generation, 3);

    // The old generation keeps answering and following the log; the failed ones' files
    // go.
    let later = append(store, "acct-3", "Added", serde_json::json!({"n": 8})).await;
    host.wait_for("counter", later, WAIT).await.unwrap();
    assert_eq!(answered_by(&host).await, (1, 1));
    let log = read_log(store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, later.0, &[])
    );
    let dir = fx.read_dir();
    assert!(
        eventually(WAIT, || files(&dir) == ["counter-v1-g1.sqlite3"]).await,
        "{:?}",
        files(&dir)
    );

    // A restart does not resume the given-up build.
    host.shutdown().await;
    drop(host);
    let host = fx.host();
    host.register(counter.clone()).unwrap();
    host.start();
    host.wait_for("counter", later, WAIT).await.unwrap();
    let status = host.status().remove(0);
    assert_eq!((status.generation, status.rebuild), (1, None));

    // After a fix, a new rebuild takes over.
    counter.refuse.store(false, Ordering::SeqCst);
    host.rebuild("counter").await.unwrap();
    assert_eq!(answered_by(&host).await, (1, 2));
    assert_eq!(host.status()[0].rebuild, None);
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, later.0, &[])
    );
    host.shutdown().await;
}
