//! Redis read models and the query cache against a real Redis (`STRATA_TEST_REDIS_URL`;
//! each test prints that it skipped when it is unset). Every test works under a key
//! prefix of its own and removes it at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use strata_core::{Position, RecordedEvent};
use strata_projection::{
    ApplyError, Dependency, FailurePolicy, QueryCache, RedisOps, RedisProjection, RedisProjections,
    RunnerState,
};
use strata_store::{EventStore, MemoryStore, ReadFilter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::{append, append_many};

const WAIT: Duration = Duration::from_secs(10);

/// The Redis URL to test against, or `None` (and a printed line) to skip.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("STRATA_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped {test}: STRATA_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A key prefix no other test uses.
fn prefix() -> String {
    format!("strata-test:{}:", uuid::Uuid::new_v4().simple())
}

async fn connect(url: &str) -> ConnectionManager {
    ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap()
}

/// The keys under a test's prefix, removed when dropped (a failing test too).
struct Keys {
    url: String,
    prefix: String,
}

impl Drop for Keys {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(&keys).exec(&mut conn);
        }
    }
}

/// A prefix no other test uses, and the guard that removes its keys.
fn scratch(url: &str) -> (String, Keys) {
    let prefix = prefix();
    let keys = Keys {
        url: url.to_owned(),
        prefix: prefix.clone(),
    };
    (prefix, keys)
}

/// Whether `Counter` refuses poisoned events (a test that retries a parked one turns it
/// off; no other test appends poisoned events).
static REFUSE: AtomicBool = AtomicBool::new(true);

/// Counts events of category `acct` and how many times each position was applied (a
/// skipped event is a missing field, a repeated one a count of 2). Events of type
/// `Ignored` are unhandled; events whose data has `"poison": true` are refused.
struct Counter;

impl RedisProjection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn version(&self) -> u32 {
        1
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category("acct")
    }
    fn policy(&self) -> FailurePolicy {
        FailurePolicy::Park
    }
    fn apply(&self, ops: &mut RedisOps, event: &RecordedEvent) -> Result<(), ApplyError> {
        // Written before deciding, so that stepping over or refusing must undo it.
        ops.hincrby("applied", &event.position.0.to_string(), 1);
        if event.event_type.as_str() == "Ignored" {
            return Err(ApplyError::unhandled(event.event_type.as_str()));
        }
        let data: serde_json::Value = serde_json::from_slice(&event.data)?;
        if data["poison"] == true && REFUSE.load(Ordering::SeqCst) {
            return Err(ApplyError::new("poisoned"));
        }
        ops.hincrby("streams", event.stream.as_str(), 1);
        Ok(())
    }
}

/// The model's `applied` hash: position → times applied.
async fn applied(url: &str, prefix: &str) -> std::collections::BTreeMap<u64, u64> {
    let mut conn = connect(url).await;
    redis::cmd("HGETALL")
        .arg(format!("{prefix}counter:v1:applied"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn host(store: &Arc<dyn EventStore>, url: &str, prefix: &str) -> RedisProjections {
    let host = RedisProjections::new(store.clone(), url, prefix).unwrap();
    host.register(Arc::new(Counter)).unwrap();
    host
}

/// Every position of `1..=last` applied exactly once.
fn assert_once(applied: &std::collections::BTreeMap<u64, u64>, last: u64) {
    let wrong: Vec<_> = (1..=last)
        .filter(|p| applied.get(p) != Some(&1))
        .map(|p| (p, applied.get(&p).copied()))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "positions not applied once: {wrong:?}");
    assert_eq!(applied.len() as u64, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_stopped_between_batches_resumes_from_its_checkpoint() {
    let Some(url) = redis_url("a_runner_stopped_between_batches_resumes_from_its_checkpoint")
    else {
        return;
    };
    let (prefix, _keys) = scratch(&url);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let first = append_many(&*store, 3000, 7).await;

    let a = host(&store, &url, &prefix);
    a.start();
    a.wait_for("counter", Position(1000), WAIT).await.unwrap();
    // Gone between two batches, with more of the log still to apply.
    a.shutdown().await;
    let stopped_at = a.checkpoint("counter").unwrap();
    drop(a);

    let last = append_many(&*store, 500, 7).await;
    assert!(last > first);
    let b = host(&store, &url, &prefix);
    b.start();
    b.wait_for("counter", last, WAIT).await.unwrap();
    let status = b.status().into_iter().next().unwrap();
    assert_eq!(status.checkpoint, last);
    assert_eq!(status.lag_events, 0);
    assert!(!status.rebuildable);
    b.shutdown().await;

    assert!(stopped_at >= Position(1000), "{stopped_at}");
    assert_once(&applied(&url, &prefix).await, last.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_on_the_same_keys_never_apply_an_event_twice() {
    let Some(url) = redis_url("two_runners_on_the_same_keys_never_apply_an_event_twice") else {
        return;
    };
    let (prefix, _keys) = scratch(&url);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    append_many(&*store, 2000, 5).await;
    // Two hosts race on one model: each batch is fenced by the stored checkpoint, so the
    // loser of a race writes nothing and goes on from where the winner got.
    let a = host(&store, &url, &prefix);
    let b = host(&store, &url, &prefix);
    a.start();
    b.start();
    let mut last = Position::ZERO;
    for _ in 0..20 {
        last = append_many(&*store, 50, 5).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.wait_for("counter", last, WAIT).await.unwrap();
    b.wait_for("counter", last, WAIT).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
    assert_once(&applied(&url, &prefix).await, last.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhandled_events_are_stepped_over_and_refused_ones_parked() {
    let Some(url) = redis_url("unhandled_events_are_stepped_over_and_refused_ones_parked") else {
        return;
    };
    let (prefix, _keys) = scratch(&url);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    append(&*store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    let ignored = append(&*store, "acct-1", "Ignored", serde_json::json!({})).await;
    append(&*store, "other-1", "Added", serde_json::json!({"n": 1})).await;
    let poison = append(
        &*store,
        "acct-2",
        "Added",
        serde_json::json!({"poison": true}),
    )
    .await;
    let last = append(&*store, "acct-2", "Added", serde_json::json!({"n": 2})).await;

    let host = host(&store, &url, &prefix);
    host.start();
    host.wait_for("counter", last, WAIT).await.unwrap();
    let status = host.status().into_iter().next().unwrap();
    assert_eq!(status.parked, 1);
    // It says it is live once it has noticed being caught up.
    let deadline = tokio::time::Instant::now() + WAIT;
    while host.status()[0].state != RunnerState::Live {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            host.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let parked = host.parked("counter").await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, poison);
    assert_eq!(parked[0].error, "poisoned");

    let applied_now = applied(&url, &prefix).await;
    // The stepped-over and the parked events left none of their writes.
    assert!(!applied_now.contains_key(&ignored.0));
    assert!(!applied_now.contains_key(&poison.0));
    assert_eq!(applied_now.len(), 2);

    // Retried while still refused: it stays parked, one attempt more.
    let again = host.retry_parked("counter", poison).await;
    assert!(again.is_err(), "{again:?}");
    assert_eq!(host.parked("counter").await.unwrap()[0].attempts, 2);
    // Retried once the projection takes it: applied, and no longer parked.
    REFUSE.store(false, Ordering::SeqCst);
    host.retry_parked("counter", poison).await.unwrap();
    REFUSE.store(true, Ordering::SeqCst);
    assert!(host.parked("counter").await.unwrap().is_empty());
    assert_eq!(host.status()[0].parked, 0);
    assert_eq!(applied(&url, &prefix).await.get(&poison.0), Some(&1));
    assert!(host.retry_parked("counter", poison).await.is_err());
    host.shutdown().await;
}

/// A TCP proxy to Redis that can be cut (every connection closed, new ones refused)
/// and restored.
struct Proxy {
    addr: std::net::SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let rx = up.subscribe();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*rx.borrow() {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_retries_while_redis_is_away_and_converges() {
    let Some(url) = redis_url("the_runner_retries_while_redis_is_away_and_converges") else {
        return;
    };
    let (prefix, _keys) = scratch(&url);
    let proxy = Proxy::start(&url).await;
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let first = append_many(&*store, 500, 3).await;
    let host = host(&store, &proxy.url(), &prefix);
    host.start();
    host.wait_for("counter", first, WAIT).await.unwrap();

    proxy.set(false);
    let last = append_many(&*store, 500, 3).await;
    // It cannot get there while Redis is away, and says why.
    let away = host
        .wait_for("counter", last, Duration::from_millis(700))
        .await;
    assert!(away.is_err(), "{away:?}");
    let status = host.status().into_iter().next().unwrap();
    assert!(status.checkpoint < last);
    assert!(status.last_error.is_some(), "{status:?}");

    proxy.set(true);
    host.wait_for("counter", last, WAIT).await.unwrap();
    host.shutdown().await;
    assert_once(&applied(&url, &prefix).await, last.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_invalidated_by_an_event_and_honours_after() {
    let Some(url) = redis_url("a_cached_answer_is_invalidated_by_an_event_and_honours_after")
    else {
        return;
    };
    let (prefix, _keys) = scratch(&url);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let host = RedisProjections::new(store.clone(), &url, &prefix).unwrap();
    let cache = QueryCache::register(&host, ReadFilter::all()).unwrap();
    host.start();
    let item = [Dependency::Stream("item-1")];
    let items = [Dependency::Category("item")];

    let p1 = append(&*store, "item-1", "Added", serde_json::json!({})).await;
    host.wait_for(QueryCache::NAME, p1, WAIT).await.unwrap();
    assert_eq!(cache.get("one", &item, None).await, None);
    cache.put("one", p1, b"v1").await;
    cache.put("all", p1, b"all1").await;
    assert_eq!(
        cache.get("one", &item, None).await.as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        cache.get("one", &item, Some(p1)).await.as_deref(),
        Some(&b"v1"[..])
    );
    // Computed before the caller's own write: not served to it.
    assert_eq!(cache.get("one", &item, Some(p1.next())).await, None);

    // Another stream of the category: the entry on item-1 stays, the category's goes.
    let p2 = append(&*store, "item-2", "Added", serde_json::json!({})).await;
    host.wait_for(QueryCache::NAME, p2, WAIT).await.unwrap();
    assert_eq!(
        cache.get("one", &item, None).await.as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(cache.get("all", &items, None).await, None);

    // An event of item-1: stale, whatever the caller asks.
    let p3 = append(&*store, "item-1", "Changed", serde_json::json!({})).await;
    host.wait_for(QueryCache::NAME, p3, WAIT).await.unwrap();
    assert_eq!(cache.get("one", &item, None).await, None);
    // An answer computed before the event, written after it, is not served either.
    cache.put("one", p2, b"late").await;
    assert_eq!(cache.get("one", &item, None).await, None);
    cache.put("one", p3, b"v3").await;
    assert_eq!(
        cache.get("one", &item, Some(p3)).await.as_deref(),
        Some(&b"v3"[..])
    );
    // An entry beyond the log's head comes from another log: not served.
    cache.put("ahead", Position(p3.0 + 100), b"x").await;
    assert_eq!(cache.get("ahead", &item, None).await, None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (4, 6));

    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_tier_answers_without_redis_and_an_event_still_invalidates_it() {
    let Some(url) =
        redis_url("the_near_tier_answers_without_redis_and_an_event_still_invalidates_it")
    else {
        return;
    };
    let (prefix, _keys) = scratch(&url);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let host = RedisProjections::new(store.clone(), &url, &prefix).unwrap();
    let cache = QueryCache::register(&host, ReadFilter::all()).unwrap();
    host.start();
    let item = [Dependency::Stream("item-1")];

    let p1 = append(&*store, "item-1", "Added", serde_json::json!({})).await;
    host.wait_for(QueryCache::NAME, p1, WAIT).await.unwrap();
    cache.put("one", p1, b"v1").await;

    // The entry is gone from Redis: this process still has it, checked against the
    // stamps its own runner applied.
    let mut conn = connect(&url).await;
    let entries: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*entry:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    redis::cmd("DEL")
        .arg(&entries)
        .exec_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        cache.get("one", &item, Some(p1)).await.as_deref(),
        Some(&b"v1"[..])
    );

    // An event of item-1 makes it stale in this process too.
    let p2 = append(&*store, "item-1", "Changed", serde_json::json!({})).await;
    host.wait_for(QueryCache::NAME, p2, WAIT).await.unwrap();
    assert_eq!(cache.get("one", &item, None).await, None);
    host.shutdown().await;
}
