//! De-duplication by command id: a command id seen before answers the first outcome and
//! writes nothing, across restarts, under concurrency, and for multi-event commands.

use std::sync::Arc;

use strata_core::{RecordedEvent, Version};
use strata_domain::{
    CommandContext, CommandError, CommandHandler, CommandOutcome, MemorySnapshots,
};
use strata_store::EventStore;
use tokio::sync::Barrier;

use crate::support::account::{
    Account, AccountCommand, AccountCommand::Close, deposit, open, withdraw,
};
use crate::support::counter::{Counter, CounterCommand, CounterEvent};
use crate::support::{Fixture, hook, on_both_stores};

on_both_stores!(
    the_same_command_id_twice_answers_the_first_outcome,
    a_duplicate_is_recognised_after_a_restart,
    a_multi_event_duplicate_answers_all_its_events_and_no_others,
    concurrent_duplicates_apply_once,
    a_duplicate_landing_right_after_the_lookup_applies_once,
    a_duplicate_landing_right_after_the_lookup_is_not_refused,
    a_command_id_reused_for_another_request_is_refused,
);

/// What must be equal between an outcome and its repeat. The recording time is left
/// out: a fresh outcome reports the handler's clock, a repeat the stored time.
fn same_events(a: &[RecordedEvent], b: &[RecordedEvent]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(
            (
                a.id,
                a.position,
                a.version,
                &a.event_type,
                &a.data,
                &a.metadata
            ),
            (
                b.id,
                b.position,
                b.version,
                &b.event_type,
                &b.data,
                &b.metadata
            )
        );
    }
}

fn same_outcome(first: &CommandOutcome, repeat: &CommandOutcome) {
    assert_eq!(first.stream, repeat.stream);
    assert_eq!(first.version, repeat.version);
    assert_eq!(first.position, repeat.position);
    same_events(&first.events, &repeat.events);
}

async fn open_with(handler: &CommandHandler, id: &str, cents: u64) {
    handler
        .handle::<Account>(id, &open(id), &CommandContext::new())
        .await
        .unwrap();
    handler
        .handle::<Account>(id, &deposit(cents), &CommandContext::new())
        .await
        .unwrap();
}

async fn the_same_command_id_twice_answers_the_first_outcome(fx: Fixture) {
    let handler = fx.handler();
    open_with(&handler, "gus", 100).await;
    let context = CommandContext::new();
    let first = handler
        .handle::<Account>("gus", &withdraw(70), &context)
        .await
        .unwrap();
    assert!(!first.duplicate);
    let appends = fx.spy.appends();
    let head = fx.store.head().await.unwrap();

    let repeat = handler
        .handle::<Account>("gus", &withdraw(70), &context)
        .await
        .unwrap();
    assert!(repeat.duplicate);
    same_outcome(&first, &repeat);
    // The id decides, not the body: a different command under a used id is the repeat.
    let other_body = handler
        .handle::<Account>("gus", &deposit(5), &context)
        .await
        .unwrap();
    assert!(other_body.duplicate);
    same_outcome(&first, &other_body);

    // Later commands do not change what the repeat answers.
    let later = handler
        .handle::<Account>("gus", &deposit(1), &CommandContext::new())
        .await
        .unwrap();
    let repeat = handler
        .handle::<Account>("gus", &withdraw(70), &context)
        .await
        .unwrap();
    assert!(repeat.duplicate);
    same_outcome(&first, &repeat);
    assert_eq!(repeat.version, Version(3));
    assert!(later.position > repeat.position);

    assert_eq!(
        fx.spy.appends(),
        appends + 1,
        "only the later command appended"
    );
    assert_eq!(later.position.0, head.0 + 1);
    assert_eq!(
        handler.load::<Account>("gus").await.unwrap().state.balance,
        31
    );
    // The same id on another aggregate is refused: its event ids are taken in the log.
    let head = fx.store.head().await.unwrap();
    match handler
        .handle::<Account>("hal", &open("hal"), &context)
        .await
    {
        Err(CommandError::CommandIdReused {
            command_id, stream, ..
        }) => assert_eq!(
            (command_id, stream.as_str()),
            (context.command_id, "account-hal")
        ),
        other => panic!("a command id reused on another aggregate: {other:?}"),
    }
    assert_eq!(fx.store.head().await.unwrap(), head, "nothing was written");
}

/// A command id bound to a request digest answers only repeats with that digest: another
/// request under the id is refused, on the same aggregate or another, and still after a
/// restart.
async fn a_command_id_reused_for_another_request_is_refused(mut fx: Fixture) {
    let bound = |digest: &str| CommandContext {
        request_digest: Some(digest.to_owned()),
        ..CommandContext::with_id(uuid::Uuid::from_u128(7))
    };
    let first = {
        let handler = fx.handler();
        open_with(&handler, "jo", 100).await;
        let first = handler
            .handle::<Account>("jo", &withdraw(30), &bound("withdraw 30"))
            .await
            .unwrap();
        let repeat = handler
            .handle::<Account>("jo", &withdraw(30), &bound("withdraw 30"))
            .await
            .unwrap();
        assert!(repeat.duplicate);
        same_outcome(&first, &repeat);
        first
    };
    let head = fx.store.head().await.unwrap();
    fx.reopen().await;

    let handler = fx.handler();
    let reused = |result: Result<CommandOutcome, CommandError<_>>, what: &str| match result {
        Err(CommandError::CommandIdReused { command_id, .. }) => {
            assert_eq!(command_id, uuid::Uuid::from_u128(7), "{what}");
        }
        other => panic!("{what}: want CommandIdReused, got {other:?}"),
    };
    reused(
        handler
            .handle::<Account>("jo", &deposit(5), &bound("deposit 5"))
            .await,
        "another request to the same aggregate",
    );
    reused(
        handler
            .handle::<Account>("kim", &open("kim"), &bound("open kim"))
            .await,
        "a request to another aggregate",
    );
    assert_eq!(fx.store.head().await.unwrap(), head, "nothing was written");
    let repeat = handler
        .handle::<Account>("jo", &withdraw(30), &bound("withdraw 30"))
        .await
        .unwrap();
    assert!(repeat.duplicate, "the first request still repeats");
    same_outcome(&first, &repeat);
    assert_eq!(
        handler.load::<Account>("jo").await.unwrap().state.balance,
        70
    );
}

async fn a_duplicate_is_recognised_after_a_restart(mut fx: Fixture) {
    let context = CommandContext::new();
    let closing = CommandContext::new();
    let (first, closed) = {
        let handler = fx.handler();
        open_with(&handler, "ida", 100).await;
        let first = handler
            .handle::<Account>("ida", &withdraw(40), &context)
            .await
            .unwrap();
        let closed = handler
            .handle::<Account>("ida", &Close, &closing)
            .await
            .unwrap();
        (first, closed)
    };
    let head = fx.store.head().await.unwrap();
    fx.reopen().await;

    let handler = fx.handler();
    let repeat = handler
        .handle::<Account>("ida", &withdraw(40), &context)
        .await
        .unwrap();
    assert!(repeat.duplicate);
    same_outcome(&first, &repeat);
    let repeat = handler
        .handle::<Account>("ida", &Close, &closing)
        .await
        .unwrap();
    assert!(repeat.duplicate);
    assert_eq!(repeat.events.len(), 2);
    same_outcome(&closed, &repeat);
    assert_eq!(fx.spy.appends(), 0);
    assert_eq!(fx.store.head().await.unwrap(), head);
}

async fn a_multi_event_duplicate_answers_all_its_events_and_no_others(fx: Fixture) {
    let handler = fx.handler();
    let context = CommandContext::new();
    let record = CounterCommand::Record(vec![
        CounterEvent::Added { n: 4 },
        CounterEvent::Doubled,
        CounterEvent::Added { n: 1 },
    ]);
    handler
        .handle::<Counter>("multi", &CounterCommand::Add(1), &CommandContext::new())
        .await
        .unwrap();
    let first = handler
        .handle::<Counter>("multi", &record, &context)
        .await
        .unwrap();
    assert_eq!(first.events.len(), 3);
    // Right behind it, another command's events, then another multi-event command.
    handler
        .handle::<Counter>("multi", &CounterCommand::Add(2), &CommandContext::new())
        .await
        .unwrap();
    handler
        .handle::<Counter>("multi", &record, &CommandContext::new())
        .await
        .unwrap();

    let repeat = handler
        .handle::<Counter>("multi", &record, &context)
        .await
        .unwrap();
    assert!(repeat.duplicate);
    same_outcome(&first, &repeat);
    assert_eq!(repeat.version, Version(4));
    assert_eq!(fx.events("counter-multi").await.len(), 8);
}

async fn concurrent_duplicates_apply_once(fx: Fixture) {
    let handler = fx.handler_with_attempts(64);
    open_with(&handler, "jo", 100).await;
    fx.spy.interleave();
    let context = CommandContext::new();
    let barrier = Arc::new(Barrier::new(12));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let handler = handler.clone();
        let barrier = barrier.clone();
        // Eight copies of one withdrawal, among four other deposits.
        let (command, context) = if i % 3 == 2 {
            (deposit(1), CommandContext::new())
        } else {
            (withdraw(60), context.clone())
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = handler.handle::<Account>("jo", &command, &context).await;
            (matches!(command, AccountCommand::Withdraw { .. }), outcome)
        }));
    }
    let mut withdrawals = Vec::new();
    for task in tasks {
        let (is_withdrawal, outcome) = task.await.unwrap();
        let outcome = outcome.unwrap_or_else(|e| panic!("a command failed: {e}"));
        if is_withdrawal {
            withdrawals.push(outcome);
        }
    }
    assert_eq!(withdrawals.len(), 8);
    for repeat in &withdrawals[1..] {
        same_outcome(&withdrawals[0], repeat);
    }
    assert!(
        withdrawals.iter().any(|o| !o.duplicate),
        "one of them applied it"
    );

    let stored = fx.events("account-jo").await;
    let applied = stored
        .iter()
        .filter(|e| e.id == withdrawals[0].events[0].id)
        .count();
    assert_eq!(applied, 1);
    assert_eq!(stored.len(), 2 + 1 + 4);
    let state = handler.load::<Account>("jo").await.unwrap().state;
    assert_eq!((state.balance, state.withdrawals), (100 - 60 + 4, 1));
}

/// The same command, sent again by a client that gave up waiting, lands from another
/// handler right after this handler looked for it and found nothing.
async fn a_duplicate_landing_right_after_the_lookup_applies_once(fx: Fixture) {
    let handler = fx.handler();
    open_with(&handler, "kim", 200).await;
    let context = CommandContext::new();
    let other = context.clone();
    fx.spy
        .after_next_lookup(hook(move |store: Arc<dyn EventStore>| async move {
            CommandHandler::new(store, Arc::new(MemorySnapshots::new()))
                .handle::<Account>("kim", &withdraw(60), &other)
                .await
                .expect("the other copy applies");
        }));
    let outcome = handler
        .handle::<Account>("kim", &withdraw(60), &context)
        .await
        .unwrap();
    let stored = fx.events("account-kim").await;
    assert_eq!(
        stored.len(),
        3,
        "the withdrawal is stored once: {stored:#?}"
    );
    same_events(&outcome.events, &stored[2..]);
    assert_eq!(
        handler.load::<Account>("kim").await.unwrap().state.balance,
        140
    );
}

/// As above, where applying the command twice would break a rule: the repeat answers
/// the outcome instead of a refusal.
async fn a_duplicate_landing_right_after_the_lookup_is_not_refused(fx: Fixture) {
    let handler = fx.handler();
    open_with(&handler, "lou", 100).await;
    let context = CommandContext::new();
    let other = context.clone();
    fx.spy
        .after_next_lookup(hook(move |store: Arc<dyn EventStore>| async move {
            CommandHandler::new(store, Arc::new(MemorySnapshots::new()))
                .handle::<Account>("lou", &withdraw(60), &other)
                .await
                .expect("the other copy applies");
        }));
    let outcome = handler
        .handle::<Account>("lou", &withdraw(60), &context)
        .await
        .unwrap_or_else(|e| panic!("the repeat was answered with an error: {e}"));
    assert_eq!(outcome.version, Version(3));
    assert_eq!(fx.events("account-lou").await.len(), 3);
}
