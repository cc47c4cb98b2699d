//! Process managers: commands sent once with ids derived from their cause, nothing new
//! sent after a restart, failed sends retried, and durable timeouts that fire once, after
//! a restart too. A process manager says it cannot be rebuilt, and refuses to run from a
//! checkpoint beyond the log's head.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strata_core::{Position, RecordedEvent, Timestamp};
use strata_domain::CommandContext;
use strata_projection::{
    CommandSender, ProcessManager, ProcessManagers, ProjectionError, Reaction, RunnerState,
    SendError, StopCause,
};
use strata_store::ReadFilter;

use crate::support::{Fixture, Kind, WAIT, append, both_stores, eventually, read_log};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct OrderState {
    placed: bool,
    notes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Cmd {
    Reserve(String),
    Confirm(String),
    Cancel(String),
}

/// Placed → reserve and wait for payment; Paid → confirm, done; no payment in time →
/// cancel, done.
pub(crate) struct Checkout {
    pub(crate) pay_within: Duration,
}

impl ProcessManager for Checkout {
    type State = OrderState;
    type Command = Cmd;

    fn name(&self) -> &'static str {
        "checkout"
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category("order")
    }
    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        event.stream.id().map(str::to_owned)
    }
    fn react(&self, mut state: OrderState, event: &RecordedEvent) -> Reaction<OrderState, Cmd> {
        let order = event.stream.id().unwrap_or_default().to_owned();
        match event.event_type.as_str() {
            "Placed" => {
                state.placed = true;
                let deadline = Timestamp::from_unix_nanos(
                    event.recorded_at.unix_nanos() + self.pay_within.as_nanos() as i64,
                );
                Reaction::new(state)
                    .send(Cmd::Reserve(order))
                    .timeout("payment", deadline)
            }
            "Paid" => Reaction::new(state).send(Cmd::Confirm(order)).done(),
            _ => {
                state.notes += 1;
                Reaction::new(state)
            }
        }
    }
    fn on_timeout(&self, state: OrderState, timeout: &str) -> Reaction<OrderState, Cmd> {
        assert_eq!(timeout, "payment");
        Reaction::new(state).send(Cmd::Cancel("?".into())).done()
    }
}

/// Records what it is sent; fails the first `fail` sends.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) sent: Mutex<Vec<(Cmd, CommandContext)>>,
    fail: AtomicU32,
    attempts: AtomicU32,
}

#[async_trait]
impl CommandSender<Cmd> for Recorder {
    async fn send(&self, command: Cmd, context: CommandContext) -> Result<(), SendError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SendError::new("the command bus is down"));
        }
        self.sent.lock().push((command, context));
        Ok(())
    }
}

impl Recorder {
    pub(crate) fn count(&self) -> usize {
        self.sent.lock().len()
    }
}

fn host(fx: &Fixture, pay_within: Duration, recorder: &Arc<Recorder>) -> ProcessManagers {
    let host = ProcessManagers::new(fx.store.clone(), fx.dir.path().join("process"));
    host.register(Arc::new(Checkout { pay_within }), recorder.clone())
        .unwrap();
    host.start();
    host
}

/// Whether the runner is live with nothing left to send: it has handled what the log
/// holds and sent what that led to.
fn settled(pms: &ProcessManagers) -> bool {
    let status = &pms.status()[0];
    status.state == RunnerState::Live && status.outbox == 0 && !status.retrying
}

both_stores!(
    commands_are_sent_once_with_derived_ids,
    failed_sends_are_retried,
    a_timeout_fires_once_after_a_restart,
    a_checkpoint_beyond_the_head_is_refused
);

async fn commands_are_sent_once_with_derived_ids(kind: Kind) {
    let fx = Fixture::new(kind);
    let hour = Duration::from_secs(3600);
    let recorder = Arc::new(Recorder::default());
    let pms = host(&fx, hour, &recorder);
    for order in 1..=3 {
        append(
            &*fx.store,
            &format!("order-{order}"),
            "Placed",
            serde_json::json!({}),
        )
        .await;
    }
    append(&*fx.store, "order-1", "Noted", serde_json::json!({})).await;
    append(&*fx.store, "stock-1", "Received", serde_json::json!({})).await;
    append(&*fx.store, "order-1", "Paid", serde_json::json!({})).await;
    let head = append(&*fx.store, "order-2", "Paid", serde_json::json!({})).await;
    // After `done`, events of the instance are ignored.
    let head2 = append(&*fx.store, "order-2", "Placed", serde_json::json!({})).await;
    pms.wait_for("checkout", head2, WAIT).await.unwrap();
    assert!(
        eventually(WAIT, || recorder.count() == 5
            && pms.status()[0].outbox == 0)
        .await
    );
    assert!(head < head2);

    // Each command's id derives from the event that caused it.
    let log = read_log(&*fx.store).await;
    let sent = recorder.sent.lock().clone();
    for (command, context) in &sent {
        let (stream, event_type) = match command {
            Cmd::Reserve(order) => (format!("order-{order}"), "Placed"),
            Cmd::Confirm(order) => (format!("order-{order}"), "Paid"),
            Cmd::Cancel(_) => panic!("no timeout is due"),
        };
        let cause = log
            .iter()
            .find(|e| e.stream.as_str() == stream && e.event_type.as_str() == event_type)
            .unwrap();
        assert_eq!(context, &CommandContext::caused_by(cause, 0));
        assert_eq!(
            context.causation_id.as_deref(),
            Some(cause.id.to_string().as_str())
        );
    }
    let status = pms.status().remove(0);
    assert_eq!(
        (status.instances, status.pending_timeouts, status.outbox),
        (1, 1, 0)
    );
    assert_eq!(status.lag_events, 0);
    assert!(eventually(WAIT, || pms.status()[0].state == RunnerState::Live).await);
    pms.shutdown().await;
    drop(pms);

    // A restart replays nothing: the checkpoint and the outbox are durable.
    let again = Arc::new(Recorder::default());
    let pms = host(&fx, hour, &again);
    pms.wait_for("checkout", head2, WAIT).await.unwrap();
    // Live with an empty outbox: whatever a replay would have sent is sent by now.
    assert!(eventually(WAIT, || settled(&pms)).await);
    assert_eq!(again.count(), 0);
    pms.shutdown().await;
    drop(pms);

    // Even a replay from scratch (the database lost) sends the same ids, which the
    // command handler de-duplicates.
    std::fs::remove_dir_all(fx.dir.path().join("process")).unwrap();
    let replay = Arc::new(Recorder::default());
    let pms = host(&fx, hour, &replay);
    assert!(eventually(WAIT, || replay.count() == 5).await);
    let mut first: Vec<_> = sent.iter().map(|(_, c)| c.command_id).collect();
    let mut second: Vec<_> = replay
        .sent
        .lock()
        .iter()
        .map(|(_, c)| c.command_id)
        .collect();
    first.sort();
    second.sort();
    assert_eq!(first, second);
    pms.shutdown().await;
}

async fn failed_sends_are_retried(kind: Kind) {
    let fx = Fixture::new(kind);
    let recorder = Arc::new(Recorder {
        fail: AtomicU32::new(3),
        ..Recorder::default()
    });
    let pms = host(&fx, Duration::from_secs(3600), &recorder);
    append(&*fx.store, "order-1", "Placed", serde_json::json!({})).await;
    let head = append(&*fx.store, "order-1", "Paid", serde_json::json!({})).await;
    pms.wait_for("checkout", head, WAIT).await.unwrap();
    assert!(eventually(WAIT, || recorder.count() == 2).await);
    assert_eq!(recorder.attempts.load(Ordering::SeqCst), 5);
    let sent: Vec<Cmd> = recorder
        .sent
        .lock()
        .iter()
        .map(|(c, _)| c.clone())
        .collect();
    assert_eq!(sent, [Cmd::Reserve("1".into()), Cmd::Confirm("1".into())]);
    let status = pms.status().remove(0);
    assert!(
        status
            .last_error
            .unwrap()
            .contains("the command bus is down")
    );
    assert!(
        eventually(WAIT, || !pms.status()[0].retrying
            && pms.status()[0].outbox == 0)
        .await
    );
    pms.shutdown().await;
}

async fn a_timeout_fires_once_after_a_restart(kind: Kind) {
    let fx = Fixture::new(kind);
    let within = Duration::from_millis(400);
    let recorder = Arc::new(Recorder::default());
    let pms = host(&fx, within, &recorder);
    let placed = append(&*fx.store, "order-1", "Placed", serde_json::json!({})).await;
    pms.wait_for("checkout", placed, WAIT).await.unwrap();
    assert!(eventually(WAIT, || recorder.count() == 1).await);
    // Stop before the deadline; the timeout is stored.
    pms.shutdown().await;
    assert_eq!(pms.status()[0].pending_timeouts, 1);
    drop(pms);
    tokio::time::sleep(within).await;

    let after = Arc::new(Recorder::default());
    let pms = host(&fx, within, &after);
    assert!(eventually(WAIT, || after.count() == 1).await);
    let (command, context) = after.sent.lock()[0].clone();
    assert_eq!(command, Cmd::Cancel("?".into()));
    assert!(
        context
            .causation_id
            .unwrap()
            .starts_with("timeout:checkout/1/payment")
    );
    assert!(
        eventually(WAIT, || pms.status()[0].pending_timeouts == 0
            && pms.status()[0].instances == 0)
        .await
    );
    pms.shutdown().await;
    drop(pms);

    // It fired once: another restart sends nothing.
    let later = Arc::new(Recorder::default());
    let pms = host(&fx, within, &later);
    pms.wait_for("checkout", placed, WAIT).await.unwrap();
    // Live with no timeout pending and an empty outbox: a second firing would have
    // been sent by now.
    assert!(
        eventually(WAIT, || settled(&pms)
            && pms.status()[0].pending_timeouts == 0)
        .await
    );
    assert_eq!(later.count(), 0);

    // And a timeout fires in a running host too.
    let placed2 = append(&*fx.store, "order-2", "Placed", serde_json::json!({})).await;
    pms.wait_for("checkout", placed2, WAIT).await.unwrap();
    assert!(eventually(WAIT, || later.count() == 2).await);
    assert_eq!(later.sent.lock()[1].0, Cmd::Cancel("?".into()));
    assert_eq!(pms.status()[0].checkpoint, Position(placed2.0));
    pms.shutdown().await;
}

async fn a_checkpoint_beyond_the_head_is_refused(kind: Kind) {
    let fx = Fixture::new(kind);
    let hour = Duration::from_secs(3600);
    let recorder = Arc::new(Recorder::default());
    let pms = host(&fx, hour, &recorder);
    append(&*fx.store, "order-1", "Placed", serde_json::json!({})).await;
    let head = append(&*fx.store, "order-1", "Noted", serde_json::json!({})).await;
    pms.wait_for("checkout", head, WAIT).await.unwrap();
    let status = pms.status().remove(0);
    assert!(!status.rebuildable);
    pms.shutdown().await;
    drop(pms);

    // The same process database over a log that holds less than it handled.
    let short = Fixture::new(kind);
    let short_head = append(&*short.store, "order-9", "Noted", serde_json::json!({})).await;
    let pms = ProcessManagers::new(short.store.clone(), fx.dir.path().join("process"));
    let again = Arc::new(Recorder::default());
    pms.register(Arc::new(Checkout { pay_within: hour }), again.clone())
        .unwrap();
    pms.start();
    let err = pms
        .wait_for("checkout", Position(head.0 + 1), WAIT)
        .await
        .unwrap_err();
    let expected = StopCause::CheckpointAheadOfLog {
        checkpoint: head,
        head: short_head,
    };
    assert!(
        matches!(&err, ProjectionError::Stopped { name, cause } if name == "checkout" && *cause == expected),
        "{err}"
    );
    let status = pms.status().remove(0);
    assert_eq!(status.state, RunnerState::Failed);
    assert_eq!(status.stopped_by, Some(expected));
    assert_eq!(status.checkpoint, head);
    assert_eq!(again.count(), 0);
    pms.shutdown().await;
}
