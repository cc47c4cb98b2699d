//! Optimistic concurrency: a command decided on a stale state conflicts, is decided
//! again on the fresh state, and gives up after `max_attempts`.

use std::collections::HashSet;
use std::sync::Arc;

use strata_core::Version;
use strata_domain::{CommandContext, CommandError, CommandHandler, MemorySnapshots};
use strata_store::EventStore;
use tokio::sync::Barrier;

use crate::support::account::{Account, AccountError, deposit, open, withdraw};
use crate::support::{Fixture, Hook, hook, on_both_stores};

on_both_stores!(
    concurrent_commands_all_apply_with_contiguous_versions,
    concurrent_withdrawals_never_overdraw,
    one_attempt_and_a_concurrent_append_is_a_conflict,
    a_conflict_is_retried_on_the_fresh_state,
    every_attempt_conflicting_is_a_conflict,
    the_retry_decides_again_and_may_refuse,
    a_conflict_caused_by_a_copy_of_the_command_answers_its_outcome,
);

/// Another writer depositing `cents` into account `id`, straight into the store.
fn interloper(id: &'static str, cents: u64) -> Hook {
    hook(move |store: Arc<dyn EventStore>| async move {
        CommandHandler::new(store, Arc::new(MemorySnapshots::new()))
            .handle::<Account>(
                id,
                &deposit(cents),
                &CommandContext::new().actor("interloper"),
            )
            .await
            .expect("the interloper's deposit");
    })
}

async fn open_with(fx: &Fixture, id: &str, cents: u64) {
    let handler = fx.handler();
    handler
        .handle::<Account>(id, &open(id), &CommandContext::new())
        .await
        .unwrap();
    if cents > 0 {
        handler
            .handle::<Account>(id, &deposit(cents), &CommandContext::new())
            .await
            .unwrap();
    }
}

const TASKS: u64 = 16;

async fn concurrent_commands_all_apply_with_contiguous_versions(fx: Fixture) {
    open_with(&fx, "busy", 0).await;
    fx.spy.interleave();
    let handler = fx.handler_with_attempts(TASKS as u32 * 4);
    let barrier = Arc::new(Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (1..=TASKS)
        .map(|i| {
            let handler = handler.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let context = CommandContext::new();
                barrier.wait().await;
                let outcome = handler
                    .handle::<Account>("busy", &deposit(i), &context)
                    .await
                    .unwrap_or_else(|e| panic!("deposit {i} failed: {e}"));
                (context.command_id, outcome)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    assert!(fx.spy.conflicts() > 0, "the commands never raced");
    let mut versions: Vec<_> = outcomes.iter().map(|(_, o)| o.version.0).collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=TASKS + 1).collect::<Vec<_>>());
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| !o.duplicate && o.events.len() == 1)
    );

    let stored = fx.events("account-busy").await;
    assert_eq!(stored.len() as u64, TASKS + 1);
    for (i, event) in stored.iter().enumerate() {
        assert_eq!(
            event.version,
            Version(i as u64 + 1),
            "versions are contiguous"
        );
    }
    assert!(stored.windows(2).all(|w| w[0].position < w[1].position));
    let command_ids: HashSet<_> = stored[1..]
        .iter()
        .map(|e| e.metadata_json()["command_id"].as_str().unwrap().to_owned())
        .collect();
    let sent: HashSet<_> = outcomes.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(command_ids, sent, "every command applied exactly once");
    for (_, outcome) in &outcomes {
        let event = &stored[outcome.version.0 as usize - 1];
        assert_eq!(event.id, outcome.events[0].id);
        assert_eq!(event.position, outcome.position);
    }
    let state = handler.load::<Account>("busy").await.unwrap().state;
    assert_eq!(state.balance, TASKS * (TASKS + 1) / 2);
    assert_eq!(state.deposits, TASKS as u32);
}

async fn concurrent_withdrawals_never_overdraw(fx: Fixture) {
    open_with(&fx, "thin", 100).await;
    fx.spy.interleave();
    let handler = fx.handler_with_attempts(64);
    let barrier = Arc::new(Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let handler = handler.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                handler
                    .handle::<Account>("thin", &withdraw(30), &CommandContext::new())
                    .await
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => applied += 1,
            Err(CommandError::Domain(AccountError::InsufficientFunds { balance, .. })) => {
                assert_eq!(balance, 10)
            }
            Err(err) => panic!("unexpected error: {err}"),
        }
    }
    assert_eq!(applied, 3);
    let loaded = handler.load::<Account>("thin").await.unwrap();
    assert_eq!(loaded.state.balance, 10);
    assert_eq!(loaded.version, Version(5));
}

async fn one_attempt_and_a_concurrent_append_is_a_conflict(fx: Fixture) {
    open_with(&fx, "race", 0).await;
    let handler = fx.handler_with_attempts(1);
    fx.spy.before_next_append(interloper("race", 5));
    let err = handler
        .handle::<Account>("race", &deposit(10), &CommandContext::new())
        .await
        .unwrap_err();
    match &err {
        CommandError::Conflict { stream, attempts } => {
            assert_eq!(stream.as_str(), "account-race");
            assert_eq!(*attempts, 1);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "stream account-race kept changing: 1 attempts conflicted"
    );
    let state = handler.load::<Account>("race").await.unwrap().state;
    assert_eq!(state.balance, 5, "only the interloper's deposit is stored");
    assert_eq!(fx.events("account-race").await.len(), 2);
}

async fn a_conflict_is_retried_on_the_fresh_state(fx: Fixture) {
    open_with(&fx, "retry", 0).await;
    let handler = fx.handler_with_attempts(3);
    fx.spy.before_next_append(interloper("retry", 5));
    fx.spy.before_next_append(interloper("retry", 7));
    let outcome = handler
        .handle::<Account>("retry", &deposit(10), &CommandContext::new())
        .await
        .unwrap();
    assert_eq!(fx.spy.conflicts(), 2);
    assert_eq!(outcome.version, Version(4));
    assert_eq!(outcome.events[0].version, Version(4));
    let state = handler.load::<Account>("retry").await.unwrap().state;
    assert_eq!((state.balance, state.deposits), (22, 3));
}

async fn every_attempt_conflicting_is_a_conflict(fx: Fixture) {
    open_with(&fx, "hot", 0).await;
    let handler = fx.handler_with_attempts(3);
    for cents in [1, 2, 3] {
        fx.spy.before_next_append(interloper("hot", cents));
    }
    let err = handler
        .handle::<Account>("hot", &deposit(100), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Conflict { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(fx.spy.conflicts(), 3);
    let state = handler.load::<Account>("hot").await.unwrap().state;
    assert_eq!((state.balance, state.deposits), (6, 3));
}

async fn the_retry_decides_again_and_may_refuse(fx: Fixture) {
    open_with(&fx, "drained", 100).await;
    let handler = fx.handler_with_attempts(5);
    fx.spy
        .before_next_append(hook(|store: Arc<dyn EventStore>| async move {
            CommandHandler::new(store, Arc::new(MemorySnapshots::new()))
                .handle::<Account>("drained", &withdraw(50), &CommandContext::new())
                .await
                .expect("the other withdrawal");
        }));
    let err = handler
        .handle::<Account>("drained", &withdraw(80), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(AccountError::InsufficientFunds {
                balance: 50,
                requested: 80
            })
        ),
        "{err:?}"
    );
    assert_eq!(fx.spy.conflicts(), 1);
    assert_eq!(
        handler
            .load::<Account>("drained")
            .await
            .unwrap()
            .state
            .balance,
        50
    );
}

/// The last attempt conflicts because a copy of the command landed behind another
/// command: the handler answers the copy's outcome instead of a conflict.
async fn a_conflict_caused_by_a_copy_of_the_command_answers_its_outcome(fx: Fixture) {
    open_with(&fx, "echo", 100).await;
    let handler = fx.handler_with_attempts(1);
    let context = CommandContext::new();
    let copy = context.clone();
    fx.spy
        .before_next_append(hook(move |store: Arc<dyn EventStore>| async move {
            let other = CommandHandler::new(store, Arc::new(MemorySnapshots::new()));
            other
                .handle::<Account>("echo", &deposit(1), &CommandContext::new())
                .await
                .expect("another command");
            other
                .handle::<Account>("echo", &withdraw(30), &copy)
                .await
                .expect("the copy");
        }));
    let outcome = handler
        .handle::<Account>("echo", &withdraw(30), &context)
        .await
        .unwrap();
    assert_eq!(fx.spy.conflicts(), 1);
    assert!(outcome.duplicate);
    assert_eq!(outcome.version, Version(4));
    let state = handler.load::<Account>("echo").await.unwrap().state;
    assert_eq!((state.balance, state.withdrawals), (71, 1));
}
