//! Rebuilds without downtime: a new generation builds beside the answering one, which
//! keeps answering until the new one has caught up; version bumps do the same on start;
//! a rebuild that fails is given up and says so, and the old generation keeps answering.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use strata_core::Position;
use strata_projection::{FailurePolicy, ProjectionError, Projections, RunnerState, StopCause};

use crate::support::{
    Counter, Fixture, Kind, WAIT, append, append_many, both_stores, eventually, expected_model,
    query_model, read_log, read_model,
};

both_stores!(
    several_models_build_at_once_each_by_its_policy,
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

/// Positions of the interesting events of [`mixed_log`].
struct MixedLog {
    head: Position,
    /// `Added` events with `"poison": true`.
    poisons: Vec<Position>,
    /// `acct` events of a type the counter does not handle.
    unhandled: Vec<Position>,
}

/// Writes `count` events one append at a time: most `Added` to `acct` streams, some of
/// another category (filtered out), some of a type the counter steps over, and two
/// poison events past the first batches.
async fn mixed_log(store: &dyn strata_store::EventStore, count: u64) -> MixedLog {
    let mut log = MixedLog {
        head: Position::ZERO,
        poisons: Vec::new(),
        unhandled: Vec::new(),
    };
    for i in 1..=count {
        let stream = format!("acct-{}", i % 7);
        let poison = i == count * 3 / 5 || i == count * 4 / 5;
        log.head = if !poison && i % 10 == 0 {
            append(store, "other-1", "Added", serde_json::json!({"n": i})).await
        } else if !poison && i % 13 == 0 {
            let at = append(store, &stream, "Noted", serde_json::json!({"n": i})).await;
            log.unhandled.push(at);
            at
        } else {
            let data = serde_json::json!({"n": i, "poison": poison});
            let at = append(store, &stream, "Added", data).await;
            if poison {
                log.poisons.push(at);
            }
            at
        };
    }
    log
}

/// The three counters of [`several_models_build_at_once_each_by_its_policy`]: one parks
/// poison events, one stops at the first, one takes them.
fn three_counters(host: &Projections) {
    host.register(Arc::new(Counter::new("parks").policy(FailurePolicy::Park)))
        .unwrap();
    host.register(Arc::new(Counter::new("stops"))).unwrap();
    let takes = Counter::new("takes");
    takes.refuse.store(false, Ordering::SeqCst);
    host.register(Arc::new(takes)).unwrap();
}

/// Checks each counter of `host` against the log: `parks` has everything but the
/// poison events, which it parked; `stops` stopped just before the first poison event;
/// `takes` has everything. Returns the three models.
async fn check_by_policy(
    host: &Projections,
    store: &dyn strata_store::EventStore,
    log: &MixedLog,
) -> Vec<crate::support::Model> {
    host.wait_for("parks", log.head, WAIT).await.unwrap();
    host.wait_for("takes", log.head, WAIT).await.unwrap();
    let first_poison = log.poisons[0];
    match host.wait_for("stops", log.head, WAIT).await {
        Err(ProjectionError::Stopped {
            cause: StopCause::PoisonEvent { position, .. },
            ..
        }) => assert_eq!(position, first_poison),
        other => panic!("expected `stops` to stop at {first_poison}, got {other:?}"),
    }
    let events = read_log(store).await;
    let skipped = log.unhandled.clone();
    let parks = query_model(host, "parks").await;
    let mut parked_and_unhandled = [log.unhandled.clone(), log.poisons.clone()].concat();
    parked_and_unhandled.sort();
    let raw = |p: &[Position]| p.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(
        parks,
        expected_model(&events, log.head.0, &raw(&parked_and_unhandled))
    );
    let parked = host.parked("parks").unwrap();
    assert_eq!(
        parked.iter().map(|p| p.position).collect::<Vec<_>>(),
        log.poisons
    );
    let stops = query_model(host, "stops").await;
    assert_eq!(
        stops,
        expected_model(&events, first_poison.0 - 1, &raw(&skipped))
    );
    assert!(host.parked("stops").unwrap().is_empty());
    let takes = query_model(host, "takes").await;
    assert_eq!(takes, expected_model(&events, log.head.0, &raw(&skipped)));
    vec![parks, stops, takes]
}

/// Several models of one host built at once, following the log as it is written and
/// again from a log that is all there (each runner reading its next batch while it
/// applies the last): each follows its own policy, never skips nor repeats an event
/// (the counter's rows would show it), and a rebuilt model equals the one built as the
/// log grew.
async fn several_models_build_at_once_each_by_its_policy(kind: Kind) {
    let fx = Fixture::new(kind);
    let store = &*fx.store;
    let host = fx.host();
    three_counters(&host);
    host.start();
    let log = mixed_log(store, 3_000).await;
    let incremental = check_by_policy(&host, store, &log).await;

    // The same models built from position 0 at once, in another directory.
    let dir = tempfile::tempdir().unwrap();
    let fresh = Projections::new(fx.store.clone(), dir.path());
    three_counters(&fresh);
    fresh.start();
    let rebuilt = check_by_policy(&fresh, store, &log).await;
    assert_eq!(rebuilt, incremental);
    fresh.shutdown().await;

    // A rebuild beside the answering generation ends with the same model and parks the
    // same events.
    host.rebuild("parks").await.unwrap();
    assert_eq!(query_model(&host, "parks").await, incremental[0]);
    assert_eq!(
        host.parked("parks")
            .unwrap()
            .iter()
            .map(|p| p.position)
            .collect::<Vec<_>>(),
        log.poisons
    );
    host.shutdown().await;
}
