//! Deciding and evolving through the handler: events are stored as decided, the state
//! is their fold, and a refused command writes nothing.

use std::sync::Arc;
use strata_core::{Position, StreamName, Version};

use strata_domain::{CommandContext, CommandError, CommandHandler, DomainError, MemorySnapshots};
use strata_store::StoreError;

use crate::support::account::{
    Account, AccountCommand, AccountError, AccountEvent, Currency, deposit, open, withdraw,
};
use crate::support::counter::{Counter, CounterCommand, CounterEvent};
use crate::support::{Backend, Fixture, on_both_stores, stream_name};

on_both_stores!(
    decided_events_are_stored_and_folded,
    a_refused_command_writes_nothing,
    a_refusal_is_not_remembered,
    a_command_that_decides_nothing_writes_nothing,
    a_multi_event_command_appends_atomically,
    the_answer_carries_the_stored_time_without_reading_it_back,
    an_id_that_makes_no_stream_name_is_refused,
    a_failing_store_is_a_store_error,
    a_long_stream_loads_across_pages,
);

async fn decided_events_are_stored_and_folded(fx: Fixture) {
    let handler = fx.handler();
    let opened = handler
        .handle::<Account>("alice", &open("alice"), &CommandContext::new())
        .await
        .unwrap();
    assert_eq!(opened.stream.as_str(), "account-alice");
    assert_eq!(opened.version, Version(1));
    assert!(!opened.duplicate);
    let deposited = handler
        .handle::<Account>("alice", &deposit(500), &CommandContext::new())
        .await
        .unwrap();
    let withdrawn = handler
        .handle::<Account>("alice", &withdraw(200), &CommandContext::new())
        .await
        .unwrap();
    assert_eq!(withdrawn.version, Version(3));
    assert!(withdrawn.position > deposited.position && deposited.position > opened.position);

    let stored = fx.events("account-alice").await;
    let outcomes: Vec<_> = [&opened, &deposited, &withdrawn]
        .iter()
        .flat_map(|o| o.events.clone())
        .collect();
    assert_eq!(stored.len(), 3);
    for (stored, reported) in stored.iter().zip(&outcomes) {
        assert_eq!(stored.id, reported.id);
        assert_eq!(stored.position, reported.position);
        assert_eq!(stored.version, reported.version);
        assert_eq!(stored.event_type, reported.event_type);
        assert_eq!(stored.data, reported.data);
        assert_eq!(stored.metadata, reported.metadata);
        // One time everywhere: the answer carries the store's recording time.
        assert_eq!(stored.recorded_at, reported.recorded_at);
    }
    let types: Vec<_> = stored.iter().map(|e| e.event_type.to_string()).collect();
    assert_eq!(types, ["opened", "deposited", "withdrawn"]);
    assert_eq!(
        stored[1].data_json(),
        serde_json::json!({ "cents": 500, "currency": "EUR" })
    );

    let loaded = handler.load::<Account>("alice").await.unwrap();
    assert_eq!(loaded.version, Version(3));
    assert_eq!(loaded.position, withdrawn.position);
    assert_eq!(loaded.snapshot, None);
    assert_eq!(
        loaded.state,
        Account {
            owner: Some("alice".into()),
            currency: Some(Currency::Eur),
            open: true,
            balance: 300,
            deposits: 1,
            withdrawals: 1,
        }
    );
    assert_eq!(
        CommandHandler::stream_of::<Account>("alice").unwrap(),
        StreamName::new("account-alice").unwrap()
    );
}

async fn a_refused_command_writes_nothing(fx: Fixture) {
    let handler = fx.handler();
    let err = handler
        .handle::<Account>("bob", &deposit(10), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(AccountError::NotOpen)),
        "{err:?}"
    );
    assert_eq!(
        fx.store
            .stream_version(&stream_name("account-bob"))
            .await
            .unwrap(),
        Version(0)
    );

    handler
        .handle::<Account>("bob", &open("bob"), &CommandContext::new())
        .await
        .unwrap();
    handler
        .handle::<Account>("bob", &deposit(100), &CommandContext::new())
        .await
        .unwrap();
    let head = fx.store.head().await.unwrap();
    let appends = fx.spy.appends();

    let err = handler
        .handle::<Account>("bob", &withdraw(101), &CommandContext::new())
        .await
        .unwrap_err();
    let CommandError::Domain(refusal) = &err else {
        panic!("expected a domain refusal, got {err:?}");
    };
    assert_eq!(refusal.code(), "insufficient_funds");
    assert_eq!(
        refusal,
        &AccountError::InsufficientFunds {
            balance: 100,
            requested: 101
        }
    );
    assert_eq!(
        err.to_string(),
        "the balance of 100 cents does not cover 101 cents"
    );
    let err = handler
        .handle::<Account>("bob", &open("bob"), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(AccountError::AlreadyOpen)),
        "{err:?}"
    );

    assert_eq!(fx.store.head().await.unwrap(), head);
    assert_eq!(
        fx.spy.appends(),
        appends,
        "a refusal must not even try to append"
    );
    assert_eq!(fx.events("account-bob").await.len(), 2);
    assert_eq!(
        handler.load::<Account>("bob").await.unwrap().state.balance,
        100
    );
}

/// A refusal records nothing, so the same command id may succeed once the state allows.
async fn a_refusal_is_not_remembered(fx: Fixture) {
    let handler = fx.handler();
    let context = CommandContext::new();
    handler
        .handle::<Account>("carol", &open("carol"), &CommandContext::new())
        .await
        .unwrap();
    let err = handler
        .handle::<Account>("carol", &withdraw(150), &context)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Domain(AccountError::InsufficientFunds { .. })
    ));
    handler
        .handle::<Account>("carol", &deposit(200), &CommandContext::new())
        .await
        .unwrap();
    let outcome = handler
        .handle::<Account>("carol", &withdraw(150), &context)
        .await
        .unwrap();
    assert!(!outcome.duplicate);
    assert_eq!(outcome.version, Version(3));
}

async fn a_command_that_decides_nothing_writes_nothing(fx: Fixture) {
    let handler = fx.handler();
    let outcome = handler
        .handle::<Counter>(
            "idle",
            &CounterCommand::Record(vec![]),
            &CommandContext::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.version, outcome.position),
        (Version(0), Position(0))
    );
    assert!(outcome.events.is_empty() && !outcome.duplicate);

    let opened = handler
        .handle::<Account>("dave", &open("dave"), &CommandContext::new())
        .await
        .unwrap();
    let appends = fx.spy.appends();
    let outcome = handler
        .handle::<Account>("dave", &deposit(0), &CommandContext::new())
        .await
        .unwrap();
    assert!(outcome.events.is_empty() && !outcome.duplicate);
    assert_eq!(outcome.version, Version(1));
    assert_eq!(
        outcome.position, opened.position,
        "the consistency token of the stream"
    );
    assert_eq!(fx.spy.appends(), appends);
    assert_eq!(fx.events("account-dave").await.len(), 1);
}

async fn a_multi_event_command_appends_atomically(fx: Fixture) {
    let handler = fx.handler();
    for command in [open("erin"), deposit(300)] {
        handler
            .handle::<Account>("erin", &command, &CommandContext::new())
            .await
            .unwrap();
    }
    let closed = handler
        .handle::<Account>("erin", &AccountCommand::Close, &CommandContext::new())
        .await
        .unwrap();
    assert_eq!(closed.events.len(), 2);
    assert_eq!(closed.version, Version(4));
    assert_eq!(closed.events[0].version, Version(3));
    assert_eq!(closed.events[1].version, Version(4));
    assert_eq!(closed.events[1].position.0, closed.events[0].position.0 + 1);
    assert_eq!(closed.position, closed.events[1].position);

    let stored = fx.events("account-erin").await;
    let decoded: Vec<AccountEvent> = stored
        .iter()
        .map(|e| handler.upcasters().decode(e).unwrap())
        .collect();
    assert_eq!(
        decoded[2..],
        [AccountEvent::Withdrawn { cents: 300 }, AccountEvent::Closed]
    );
    let state = handler.load::<Account>("erin").await.unwrap().state;
    assert!(!state.open);
    assert_eq!(state.balance, 0);
    let err = handler
        .handle::<Account>("erin", &deposit(1), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Domain(AccountError::NotOpen)));
}

/// The answer's events carry the store's recording time, taken from the append's result:
/// handling a command reads only what loading needs, never its own events back.
async fn the_answer_carries_the_stored_time_without_reading_it_back(fx: Fixture) {
    let handler = fx.handler_uncached();
    for command in [open("gil"), deposit(300)] {
        handler
            .handle::<Account>("gil", &command, &CommandContext::new())
            .await
            .unwrap();
    }
    let before = fx.spy.events_read();
    let closed = handler
        .handle::<Account>("gil", &AccountCommand::Close, &CommandContext::new())
        .await
        .unwrap();
    assert_eq!(
        fx.spy.events_read() - before,
        2,
        "handling read the two events loading needs and nothing after the append"
    );
    let stored = fx.events("account-gil").await;
    assert_eq!(closed.events.len(), 2);
    for (reported, stored) in closed.events.iter().zip(&stored[2..]) {
        assert_eq!(reported.id, stored.id);
        assert_eq!(
            reported.recorded_at, stored.recorded_at,
            "version {} answered another recording time than the store holds",
            stored.version
        );
    }
}

async fn an_id_that_makes_no_stream_name_is_refused(fx: Fixture) {
    let handler = fx.handler();
    for id in ["line\nbreak", &"x".repeat(300)] {
        let err = handler
            .handle::<Account>(id, &open("x"), &CommandContext::new())
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::InvalidId(_)), "{err:?}");
        assert!(matches!(
            handler.load::<Account>(id).await,
            Err(CommandError::InvalidId(_))
        ));
    }
    assert_eq!(fx.store.head().await.unwrap(), Position(0));
}

async fn a_failing_store_is_a_store_error(fx: Fixture) {
    let handler = fx.handler();
    let huge = AccountCommand::Open {
        owner: "f".repeat(2 * 1024 * 1024),
        currency: Currency::Usd,
    };
    let err = handler
        .handle::<Account>("fay", &huge, &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Store(StoreError::EventTooLarge { .. })),
        "{err:?}"
    );
    assert_eq!(fx.store.head().await.unwrap(), Position(0));

    if let (Backend::Embedded, Some(store)) = (fx.backend, fx.embedded()) {
        store.clone().close().await.unwrap();
        let err = handler
            .handle::<Account>("fay", &open("fay"), &CommandContext::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, CommandError::Store(StoreError::Closed)),
            "{err:?}"
        );
    }
}

/// More events than one page of reads (1024), from one command and then more.
async fn a_long_stream_loads_across_pages(fx: Fixture) {
    let handler = fx.handler();
    let events: Vec<_> = (1..=1100).map(|n| CounterEvent::Added { n }).collect();
    let context = CommandContext::new();
    let first = handler
        .handle::<Counter>("long", &CounterCommand::Record(events.clone()), &context)
        .await
        .unwrap();
    assert_eq!(first.events.len(), 1100);
    handler
        .handle::<Counter>("long", &CounterCommand::Add(-1), &CommandContext::new())
        .await
        .unwrap();
    let sum = |k: i64| k * (k + 1) / 2;

    // Without snapshots, loading replays every page.
    let replay = CommandHandler::new(fx.spy.clone(), Arc::new(MemorySnapshots::new()));
    let loaded = replay.load::<Counter>("long").await.unwrap();
    assert_eq!(
        loaded.state,
        Counter {
            value: sum(1100) - 1,
            applied: 1101
        }
    );
    assert_eq!(loaded.version, Version(1101));
    let past = replay
        .load_at_version::<Counter>("long", Version(1050))
        .await
        .unwrap();
    assert_eq!(past.state.value, sum(1050));
    // A bound inside the first page ends the load while the next page is read ahead.
    let early = replay
        .load_at_version::<Counter>("long", Version(500))
        .await
        .unwrap();
    assert_eq!((early.state.value, early.version), (sum(500), Version(500)));
    let stream = CommandHandler::stream_of::<Counter>("long").unwrap();
    assert_eq!(replay.history(&stream).await.unwrap().len(), 1101);

    let repeat = replay
        .handle::<Counter>("long", &CounterCommand::Record(events), &context)
        .await
        .unwrap();
    assert!(repeat.duplicate);
    assert_eq!(
        repeat.events.len(),
        1100,
        "a repeat answers every event of the command"
    );
    assert_eq!(repeat.version, Version(1100));
    assert_eq!(
        repeat.events.last().unwrap().id,
        first.events.last().unwrap().id
    );

    // Three pages and more, each read ahead while the one before is folded.
    let more: Vec<_> = (1101..=3000).map(|n| CounterEvent::Added { n }).collect();
    handler
        .handle::<Counter>(
            "long",
            &CounterCommand::Record(more),
            &CommandContext::new(),
        )
        .await
        .unwrap();
    let loaded = replay.load::<Counter>("long").await.unwrap();
    assert_eq!(
        (loaded.state.value, loaded.state.applied, loaded.version),
        (sum(3000) - 1, 3001, Version(3001))
    );
    let past = replay
        .load_at_version::<Counter>("long", Version(2100))
        .await
        .unwrap();
    assert_eq!(past.state.value, sum(2099) - 1);
}
