//! [`RedisProjections`]: the host of Redis read models. Each projection is a slot of
//! the shared registry, run by the shared supervise loop through its [`Sink`]: open
//! reads the checkpoint (and the parked count) from Redis, apply turns a batch into
//! writes and commits them with the checkpoint in one fenced script.
//!
//! It must not decide what a model holds (the projection does) nor retry on its own
//! (the supervise loop does, with backoff). No call here blocks a runtime thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use strata_core::{Position, RecordedEvent};
use strata_store::{EventStore, ReadFilter};
use tokio::time::Instant;

use super::batch::commit;
use super::projection::{RedisOps, RedisProjection};
use crate::db::now;
use crate::lane::{Lane, WaitEnd, wait_error};
use crate::registry::{Registry, validate_name};
use crate::supervise::{Exit, Sink};
use crate::{ApplyError, FailurePolicy, ParkedEvent, ProjectionError, ProjectionStatus, StopCause};

/// How long one command may wait for Redis's answer before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The host of a set of Redis read models over one event store.
///
/// Cloning is cheap and gives another handle to the same host. Every key it writes
/// starts with its prefix; a projection's keys with `<prefix><name>:v<version>:`.
#[derive(Clone)]
pub struct RedisProjections {
    inner: Arc<Host>,
}

struct Host {
    registry: Registry<Slot>,
    conn: ConnectionManager,
    prefix: String,
}

/// One registered projection: its sink.
struct Slot {
    projection: Arc<dyn RedisProjection>,
    /// `<prefix><name>:v<version>:`.
    space: String,
    lane: Lane,
    parked: AtomicU64,
    conn: ConnectionManager,
}

impl Slot {
    fn checkpoint_key(&self) -> String {
        format!("{}checkpoint", self.space)
    }

    fn parked_key(&self) -> String {
        format!("{}parked", self.space)
    }
}

/// A Redis failure as the crate's error.
pub(crate) fn redis_error(
    context: impl Into<String>,
    source: redis::RedisError,
) -> ProjectionError {
    ProjectionError::Redis {
        context: context.into(),
        source,
    }
}

impl RedisProjections {
    /// A host over `store` keeping its models in the Redis server at `url`
    /// (`redis://HOST:PORT[/DB]`), every key under `prefix` (for example
    /// [`super::DEFAULT_PREFIX`]).
    ///
    /// It connects lazily and reconnects by itself: a server that is down now only
    /// makes the runners retry (with backoff) until it is up. Call it inside a tokio
    /// runtime. Fails only on a URL that is not a Redis URL.
    pub fn new(
        store: Arc<dyn EventStore>,
        url: &str,
        prefix: impl Into<String>,
    ) -> Result<Self, ProjectionError> {
        let client = redis::Client::open(url)
            .map_err(|e| redis_error(format!("invalid Redis URL {url:?}"), e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| redis_error(format!("cannot set up a connection to {url}"), e))?;
        Ok(Self {
            inner: Arc::new(Host {
                registry: Registry::new(store, PathBuf::new()),
                conn,
                prefix: prefix.into(),
            }),
        })
    }

    /// A connection to the host's Redis server, for queries (it reconnects by itself).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// The key prefix of everything this host writes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The key space of a projection: its keys are `<key space><key>`.
    pub fn key_space(&self, name: &str, version: u32) -> String {
        format!("{}{name}:v{version}:", self.inner.prefix)
    }

    /// Removes every key under the host's prefix and answers how many there were: for a
    /// prefix made for one run (a test, a benchmark). Stop the runners first.
    pub async fn remove_all(&self) -> Result<u64, ProjectionError> {
        let mut conn = self.connection();
        let mut pattern = String::new();
        for c in self.inner.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let failed = |e| redis_error(format!("cannot remove the keys {pattern}"), e);
        let mut cursor = 0_u64;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            if !keys.is_empty() {
                let gone: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(failed)?;
                removed += gone;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Registers a projection and, if the host is started, starts its runner. Opens
    /// nothing: the runner reads its checkpoint from Redis when it starts.
    pub fn register(&self, projection: Arc<dyn RedisProjection>) -> Result<(), ProjectionError> {
        let name = projection.name();
        validate_name(name)?;
        let registry = &self.inner.registry;
        registry.check_free(name)?;
        let slot = Arc::new(Slot {
            space: self.key_space(name, projection.version()),
            projection,
            lane: Lane::new(Position::ZERO),
            parked: AtomicU64::new(0),
            conn: self.inner.conn.clone(),
        });
        if let Some(runtime) = registry.insert(name, slot.clone())? {
            registry.spawn(&runtime, slot);
        }
        Ok(())
    }

    /// Starts every runner on the current tokio runtime (and those registered later).
    /// Outside a tokio runtime nothing starts and an error is logged.
    pub fn start(&self) {
        let registry = &self.inner.registry;
        let Some(runtime) = registry.start("redis projections") else {
            return;
        };
        for slot in registry.all() {
            registry.spawn(&runtime, slot);
        }
    }

    /// Stops every runner after its current batch and waits for them; `start` resumes
    /// from the checkpoints stored in Redis.
    pub async fn shutdown(&self) {
        let slots = self.inner.registry.all();
        self.inner
            .registry
            .stop_and_join(|| {
                for slot in &slots {
                    slot.lane.ask_stop();
                }
            })
            .await;
    }

    /// Restarts a runner that stopped for good (a poison event under policy `Stop`, a
    /// checkpoint beyond the log's head), from its checkpoint. Does nothing to a running
    /// one. The host must be started.
    pub fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        let registry = &self.inner.registry;
        let slot = registry.get(name)?;
        let runtime = registry.started()?;
        registry.spawn(&runtime, slot);
        Ok(())
    }

    /// Whether answers computed at `position` may be served on behalf of `name`'s
    /// runner: it has not stopped for good (a checkpoint beyond the log's head says its
    /// keys belong to another log) and `position` is not beyond the log's head.
    pub(crate) fn vouches_for(&self, name: &str, position: Position) -> bool {
        let registry = &self.inner.registry;
        let healthy = registry
            .get(name)
            .is_ok_and(|slot| slot.lane.stopped_by().is_none());
        healthy && position <= registry.head()
    }

    /// Whether `name`'s runner is applying events in this process as they come: it has
    /// not stopped for good and is not waiting to retry after a fault.
    pub(crate) fn is_live(&self, name: &str) -> bool {
        self.inner
            .registry
            .get(name)
            .is_ok_and(|slot| slot.lane.stopped_by().is_none() && !slot.lane.retrying())
    }

    /// The checkpoint of `name` as its runner last committed (or read) it.
    pub fn checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        Ok(self.inner.registry.get(name)?.lane.checkpoint())
    }

    /// Every projection's health, by name. A Redis projection keeps one generation per
    /// version and is not rebuilt in place (`rebuildable` is false): a new version
    /// builds its own keys from position 0.
    pub fn status(&self) -> Vec<ProjectionStatus> {
        let registry = &self.inner.registry;
        let head = registry.head();
        registry
            .all()
            .iter()
            .map(|slot| {
                let lane = slot.lane.status(head);
                ProjectionStatus {
                    name: slot.projection.name().to_owned(),
                    version: slot.projection.version(),
                    generation: 1,
                    rebuildable: false,
                    checkpoint: lane.checkpoint,
                    head,
                    lag_events: lane.lag_events,
                    lag_seconds: lane.lag_seconds,
                    state: lane.info.state,
                    last_error: lane.info.last_error,
                    stopped_by: lane.info.stopped_by,
                    retrying: lane.info.retrying,
                    parked: slot.parked.load(Ordering::Acquire),
                    rebuild: None,
                }
            })
            .collect()
    }

    /// Waits until `name` has applied everything up to `position` (a command's
    /// consistency token), for at most `timeout`.
    ///
    /// [`ProjectionError::Timeout`] if it does not get there in time (a runner not
    /// started yet, or retrying while Redis is away, is waited for);
    /// [`ProjectionError::Stopped`] at once if its runner stopped for good first.
    pub async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let started = Instant::now();
        let end = slot
            .lane
            .wait_until(position, started + timeout, std::future::pending())
            .await;
        match end {
            WaitEnd::Reached => Ok(()),
            end => {
                Err(wait_error(name, position, end, started).unwrap_or(ProjectionError::ShutDown))
            }
        }
    }

    /// The events `name` parked, oldest first.
    pub async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let mut conn = slot.conn.clone();
        let key = slot.parked_key();
        let entries: Vec<(u64, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(format!("cannot read {key}"), e))?;
        let mut parked = entries
            .into_iter()
            .map(|(position, json)| {
                serde_json::from_str::<ParkedEvent>(&json).map_err(|source| {
                    ProjectionError::Decode {
                        context: format!("parked event {position} in {key}"),
                        source,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        parked.sort_by_key(|p| p.position);
        Ok(parked)
    }

    /// Applies the parked event at `position` of `name` again (read from the log). On
    /// success it leaves the parked hash in the same script as its writes; on failure
    /// [`ProjectionError::Apply`] says why and the event stays parked, its error and
    /// attempts updated.
    pub async fn retry_parked(
        &self,
        name: &str,
        position: Position,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let mut conn = slot.conn.clone();
        let parked_key = slot.parked_key();
        let entry: Option<String> = redis::cmd("HGET")
            .arg(&parked_key)
            .arg(position.0)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(format!("cannot read {parked_key}"), e))?;
        let not_parked = || ProjectionError::NotParked {
            name: name.to_owned(),
            position,
        };
        let mut entry: ParkedEvent = match entry {
            None => return Err(not_parked()),
            Some(json) => {
                serde_json::from_str(&json).map_err(|source| ProjectionError::Decode {
                    context: format!("parked event {position} in {parked_key}"),
                    source,
                })?
            }
        };
        let page = self
            .inner
            .registry
            .store
            .read_all(position, 1, &ReadFilter::all())
            .await?;
        let event = page
            .events
            .into_iter()
            .find(|e| e.position == position)
            .ok_or_else(not_parked)?;
        let mut ops = RedisOps::new(&slot.space);
        match slot.projection.apply(&mut ops, &event) {
            Ok(()) => {}
            // Its type is no longer handled: it leaves the hash, writing nothing.
            Err(err) if err.is_unhandled() => ops = RedisOps::new(&slot.space),
            Err(error) => {
                entry.error = error.to_string();
                entry.attempts = entry.attempts.saturating_add(1);
                let json = serde_json::to_string(&entry).unwrap_or_default();
                redis::cmd("HSET")
                    .arg(&parked_key)
                    .arg(position.0)
                    .arg(json)
                    .exec_async(&mut conn)
                    .await
                    .map_err(|e| redis_error(format!("cannot write {parked_key}"), e))?;
                return Err(ProjectionError::Apply {
                    name: name.to_owned(),
                    position,
                    error,
                });
            }
        }
        ops.hdel("parked", &position.0.to_string());
        // The writes go in the batch script with the checkpoint left where it is, so a
        // batch of the runner never interleaves with them.
        let key = slot.checkpoint_key();
        for _ in 0..10 {
            let stored: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(format!("cannot read {key}"), e))?;
            let at = Position(stored.unwrap_or(0));
            let after = commit(&mut conn, &key, at, at, &ops.args)
                .await
                .map_err(|e| redis_error(format!("cannot write a parked event of {name}"), e))?;
            if after == at {
                let _ = slot
                    .parked
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                slot.lane.update(|_| {});
                return Ok(());
            }
        }
        Err(ProjectionError::ShutDown)
    }
}

#[async_trait]
impl Sink for Slot {
    fn name(&self) -> &'static str {
        self.projection.name()
    }

    fn lane(&self) -> &Lane {
        &self.lane
    }

    fn filter(&self) -> Option<ReadFilter> {
        Some(self.projection.filter())
    }

    async fn open(self: Arc<Self>, _fence: Option<crate::lease::Fence>) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let key = self.checkpoint_key();
        let (checkpoint, parked): (Option<String>, u64) = redis::pipe()
            .get(&key)
            .hlen(self.parked_key())
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("cannot read {key} from Redis: {e}"))?;
        let checkpoint = match checkpoint {
            None => Position::ZERO,
            Some(text) => Position(
                text.parse::<u64>()
                    .map_err(|_| format!("{key} in Redis holds {text:?}, not a position"))?,
            ),
        };
        // Redis is the truth: this may move the checkpoint back (a server that lost its
        // data rebuilds the model from there).
        self.lane.reset_checkpoint(checkpoint);
        self.parked.store(parked, Ordering::Release);
        Ok(())
    }

    async fn apply(&self, events: Vec<RecordedEvent>, through: Position) -> Result<Position, Exit> {
        let from = self.lane.checkpoint();
        let policy = self.projection.policy();
        let mut ops = RedisOps::new(&self.space);
        let mut last = from;
        let mut parked = 0;
        let mut poison = None;
        for event in &events {
            if event.position <= last {
                continue;
            }
            let mark = ops.mark();
            match self.projection.apply(&mut ops, event) {
                Ok(()) => {}
                Err(err) if err.is_unhandled() => ops.rollback(mark),
                Err(err) if err.is_transient() => return Err(Exit::Retry(err.to_string())),
                Err(err) => {
                    ops.rollback(mark);
                    if policy == FailurePolicy::Stop {
                        poison = Some((event.position, err.to_string()));
                        break;
                    }
                    self.park(&mut ops, event, &err);
                    parked += 1;
                }
            }
            last = event.position;
        }
        let to = match poison {
            Some(_) => last,
            None => last.max(through),
        };
        if to > from {
            let mut conn = self.conn.clone();
            let stored = commit(&mut conn, &self.checkpoint_key(), from, to, &ops.args)
                .await
                .map_err(|e| Exit::Retry(format!("cannot write a batch to Redis: {e}")))?;
            if stored != to {
                // NOTE: nothing was written; the next session reads the stored checkpoint
                // and goes on from there, so nothing is skipped or applied twice.
                return Err(Exit::Retry(format!(
                    "the checkpoint of {} in Redis is {stored}, not {from}: another writer \
                     moved it",
                    self.projection.name()
                )));
            }
            self.parked.fetch_add(parked, Ordering::AcqRel);
        }
        match poison {
            None => Ok(to.max(from)),
            Some((position, error)) => {
                self.lane.publish_checkpoint(to);
                Err(Exit::Failed(StopCause::PoisonEvent { position, error }))
            }
        }
    }
}

impl Slot {
    /// Records a refused event in the parked hash, in the batch.
    fn park(&self, ops: &mut RedisOps, event: &RecordedEvent, err: &ApplyError) {
        let entry = ParkedEvent {
            position: event.position,
            stream: event.stream.as_str().to_owned(),
            event_type: event.event_type.as_str().to_owned(),
            error: err.to_string(),
            parked_at: now(),
            attempts: 1,
        };
        let json = serde_json::to_string(&entry).unwrap_or_default();
        ops.hset("parked", &event.position.0.to_string(), &json);
    }
}
