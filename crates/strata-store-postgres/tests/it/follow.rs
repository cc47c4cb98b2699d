//! Following the head across store handles (as across processes): a NOTIFY wakes another
//! handle's subscriber, losing the LISTEN connection costs no event, and closing a store
//! ends its subscriptions. Also the append checks that need no other handle.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use strata_core::Position;
use strata_core::{EventType, ExpectedVersion, NewEvent, StreamName};
use strata_store::{EventStore, EventStream, ReadFilter, StoreError};
use strata_store_postgres::PostgresStore;

use crate::support::{Databases, connect, options};

/// Long enough that only a notification, or a re-established LISTEN, can wake a
/// subscriber within the test's deadline.
const NO_POLL: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(30);

fn one(value: u64) -> Vec<NewEvent> {
    vec![NewEvent::json(
        EventType::new("Followed").expect("a valid type"),
        &json!({ "n": value }),
    )]
}

async fn next_position(subscription: &mut EventStream) -> u64 {
    tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("the subscriber was woken in time")
        .expect("the subscription is open")
        .expect("an event")
        .position
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_another_handles_subscriber() {
    let Some(databases) = Databases::new("a_notification_wakes_another_handles_subscriber") else {
        return;
    };
    let writer = databases.store(options(NO_POLL)).await;
    let reader = PostgresStore::connect_with(writer.config().clone(), options(NO_POLL))
        .await
        .expect("a second handle");
    let mut subscription = reader.subscribe(Position::ZERO, ReadFilter::all());
    let stream = StreamName::new("followed-1").expect("a valid name");
    for n in 1..=3 {
        writer
            .append(&stream, ExpectedVersion::Any, one(n))
            .await
            .expect("append");
        assert_eq!(next_position(&mut subscription).await, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listen_connection_is_reestablished() {
    let Some(databases) = Databases::new("a_lost_listen_connection_is_reestablished") else {
        return;
    };
    let writer = databases.store(options(NO_POLL)).await;
    let config = writer.config().clone();
    let reader = PostgresStore::connect_with(config.clone(), options(NO_POLL))
        .await
        .expect("a second handle");
    let mut subscription = reader.subscribe(Position::ZERO, ReadFilter::all());
    let stream = StreamName::new("followed-2").expect("a valid name");
    writer
        .append(&stream, ExpectedVersion::Any, one(1))
        .await
        .expect("append");
    assert_eq!(next_position(&mut subscription).await, 1);

    // Kill every LISTENing session of this database, as a server restart or a network
    // cut would; the followers reconnect and read the head again.
    let admin = connect(&config).await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND query ILIKE 'LISTEN%'",
            &[],
        )
        .await
        .expect("terminate the listeners");
    assert!(
        !killed.is_empty(),
        "the handles had LISTEN sessions to kill"
    );

    for n in 2..=3 {
        writer
            .append(&stream, ExpectedVersion::Any, one(n))
            .await
            .expect("append");
        assert_eq!(next_position(&mut subscription).await, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_ends_subscriptions_and_refuses_operations() {
    let Some(databases) = Databases::new("closing_ends_subscriptions_and_refuses_operations")
    else {
        return;
    };
    let store = databases.store(options(NO_POLL)).await;
    let stream = StreamName::new("closed-1").expect("a valid name");
    store
        .append(&stream, ExpectedVersion::Any, one(1))
        .await
        .expect("append");
    let mut subscription = store.subscribe(Position::ZERO, ReadFilter::all());
    assert_eq!(next_position(&mut subscription).await, 1);
    store.close();
    let end = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("the subscription ended in time");
    assert!(
        matches!(end, Some(Err(StoreError::Closed))),
        "a subscription of a closed store ends with Closed, got {end:?}"
    );
    assert!(matches!(
        store.append(&stream, ExpectedVersion::Any, one(2)).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.head().await, Err(StoreError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_naming_one_id_twice_is_refused() {
    let Some(databases) = Databases::new("an_append_naming_one_id_twice_is_refused") else {
        return;
    };
    let store = databases.store(options(NO_POLL)).await;
    let stream = StreamName::new("twice-1").expect("a valid name");
    let event = one(1).remove(0);
    let result = store
        .append(&stream, ExpectedVersion::Any, vec![event.clone(), event])
        .await;
    assert!(
        matches!(
            result,
            Err(StoreError::DuplicateEventId { existing: None, .. })
        ),
        "got {result:?}"
    );
    assert_eq!(store.head().await.expect("head"), Position::ZERO);
}
