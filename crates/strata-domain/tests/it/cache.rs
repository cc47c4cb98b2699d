//! The aggregate cache: a command to an aggregate the handler decided on lately skips the
//! load, and a cached state is never trusted where it may be stale: another writer's
//! append makes the next command decide again on a fresh load, as does a refusal or a
//! decision to do nothing, and a repeated command id still answers its first outcome.
//! A load starts from the cached state and reads only the events appended after it.

use strata_core::Version;
use strata_domain::{CommandContext, CommandError, CommandHandler, CommandOutcome, HandlerOptions};

use crate::support::account::{
    Account, AccountCommand, AccountError, AccountEvent, deposit, open, withdraw,
};
use crate::support::{Fixture, hook, on_both_stores};

/// Handles one command with a fresh command id, which must succeed.
async fn handle(handler: &CommandHandler, id: &str, command: &AccountCommand) -> CommandOutcome {
    handler
        .handle::<Account>(id, command, &CommandContext::new())
        .await
        .unwrap_or_else(|err| panic!("the command to {id} succeeds: {err}"))
}

on_both_stores!(
    the_next_command_skips_the_load,
    another_writers_append_is_not_missed,
    a_refusal_by_a_stale_state_is_decided_again,
    a_repeated_command_id_answers_its_first_outcome,
    an_uncached_handler_loads_every_time,
    the_least_recently_used_aggregate_leaves_first,
    two_cached_handlers_never_overdraw,
    a_load_reads_only_what_was_appended_after_the_cached_state,
);

async fn the_next_command_skips_the_load(fx: Fixture) {
    let handler = fx.handler();
    for command in [open("ann"), deposit(100)] {
        handle(&handler, "ann", &command).await;
    }
    let before = fx.spy.events_read();
    let outcome = handle(&handler, "ann", &withdraw(40)).await;
    assert_eq!(outcome.version, Version(3));
    assert_eq!(fx.spy.events_read(), before, "no event was read to decide");
    // What a fresh load folds is what the cache decided on.
    let loaded = fx.handler_uncached().load::<Account>("ann").await.unwrap();
    assert_eq!(loaded.state.balance, 60);
    assert_eq!(loaded.version, Version(3));
}

async fn another_writers_append_is_not_missed(fx: Fixture) {
    let handler = fx.handler();
    for command in [open("bo"), deposit(100)] {
        handle(&handler, "bo", &command).await;
    }
    // Another writer (another handler, without this one's cache) deposits meanwhile.
    handle(&fx.handler_uncached(), "bo", &deposit(50)).await;
    // The cached state (balance 100) allows this; appended expecting its version, it is
    // refused, and the command is decided again on the stored state.
    let conflicts = fx.spy.conflicts();
    let outcome = handle(&handler, "bo", &withdraw(50)).await;
    assert_eq!(
        outcome.version,
        Version(4),
        "decided after the other deposit"
    );
    assert_eq!(
        fx.spy.conflicts(),
        conflicts + 1,
        "the stale state was refused once"
    );
    let events = fx.events("account-bo").await;
    let last: AccountEvent = serde_json::from_value(serde_json::json!({
        "type": events[3].event_type.as_str(),
        "data": events[3].data_json(),
    }))
    .unwrap();
    assert_eq!(last, AccountEvent::Withdrawn { cents: 50 });
    let loaded = fx.handler_uncached().load::<Account>("bo").await.unwrap();
    assert_eq!(loaded.state.balance, 100);
    // A cached state of the aggregate with every event decides the next command.
    let before = fx.spy.events_read();
    handle(&handler, "bo", &deposit(1)).await;
    assert_eq!(fx.spy.events_read(), before);
}

async fn a_refusal_by_a_stale_state_is_decided_again(fx: Fixture) {
    let handler = fx.handler();
    for command in [open("cy"), deposit(100)] {
        handle(&handler, "cy", &command).await;
    }
    // Slipped in right before the handler would load: the cached state does not know.
    fx.append_raw(
        "account-cy",
        "deposited",
        br#"{"cents":500,"currency":"EUR"}"#,
        br#"{"schema_version":3}"#,
    )
    .await;
    // The cached balance (100) refuses this; the stored one (600) allows it.
    let outcome = handle(&handler, "cy", &withdraw(300)).await;
    assert_eq!(outcome.version, Version(4));
    // And a refusal on a fresh state stands.
    let err = handler
        .handle::<Account>("cy", &withdraw(10_000), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Domain(AccountError::InsufficientFunds { .. })
    ));
    // A decision to do nothing is checked the same way: opening an open account is
    // refused, not answered from the cache alone.
    assert!(
        handler
            .handle::<Account>("cy", &open("cy"), &CommandContext::new())
            .await
            .is_err()
    );
}

async fn a_repeated_command_id_answers_its_first_outcome(fx: Fixture) {
    let handler = fx.handler();
    handle(&handler, "di", &open("di")).await;
    let context = CommandContext::new();
    let first = handler
        .handle::<Account>("di", &deposit(70), &context)
        .await
        .unwrap();
    // The same command again: the cached state already holds its deposit, so deciding
    // on it would deposit twice; the store refuses the repeated ids and a fresh load
    // finds the first outcome.
    let again = handler
        .handle::<Account>("di", &deposit(70), &context)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.version, first.version);
    assert_eq!(again.position, first.position);
    assert_eq!(fx.events("account-di").await.len(), 2, "written once");
    // Another writer's repeat landing right before the append is caught the same way
    // (the handler caches the aggregate again with its next command).
    handle(&handler, "di", &deposit(1)).await;
    let context = CommandContext::new();
    let other = fx.handler_uncached();
    let repeat = context.clone();
    fx.spy.before_next_append(hook(move |_| async move {
        other
            .handle::<Account>("di", &deposit(5), &repeat)
            .await
            .unwrap();
    }));
    let raced = handler
        .handle::<Account>("di", &deposit(5), &context)
        .await
        .unwrap();
    // The store answers the repeat of its events with their first result (it may say
    // `duplicate: false`, as for any copy racing the first to the store).
    assert_eq!(raced.version, Version(4));
    assert_eq!(fx.events("account-di").await.len(), 4, "written once");
    let loaded = fx.handler_uncached().load::<Account>("di").await.unwrap();
    assert_eq!(loaded.state.balance, 76);
}

async fn an_uncached_handler_loads_every_time(fx: Fixture) {
    let handler = fx.handler_uncached();
    handle(&handler, "ed", &open("ed")).await;
    let before = fx.spy.events_read();
    handle(&handler, "ed", &deposit(1)).await;
    assert_eq!(fx.spy.events_read(), before + 1);
}

async fn the_least_recently_used_aggregate_leaves_first(fx: Fixture) {
    let handler = fx.handler().with_options(HandlerOptions {
        cached_aggregates: 2,
        ..HandlerOptions::default()
    });
    for id in ["f1", "f2", "f3"] {
        handle(&handler, id, &open(id)).await;
    }
    // f1 was pushed out by f3; f2 and f3 are cached.
    let before = fx.spy.events_read();
    for id in ["f3", "f2"] {
        handle(&handler, id, &deposit(1)).await;
    }
    assert_eq!(fx.spy.events_read(), before);
    handle(&handler, "f1", &deposit(1)).await;
    assert_eq!(fx.spy.events_read(), before + 1);
}

/// Two handlers, each with its own cache (two processes), withdraw from one account at
/// the same time until it refuses: each decides on a state the other made stale, and the
/// account must never go below zero nor lose a withdrawal.
async fn two_cached_handlers_never_overdraw(fx: Fixture) {
    let first = fx.handler_with_attempts(64);
    let second = fx.handler_with_attempts(64);
    handle(&first, "gus", &open("gus")).await;
    handle(&first, "gus", &deposit(1000)).await;
    // Both have the account cached before the race.
    handle(&second, "gus", &deposit(1)).await;
    handle(&first, "gus", &deposit(1)).await;
    fx.spy.interleave();
    let tasks: Vec<_> = [first, second]
        .into_iter()
        .flat_map(|handler| (0..3).map(move |_| handler.clone()))
        .map(|handler| {
            tokio::spawn(async move {
                let mut applied = 0_u64;
                loop {
                    match handler
                        .handle::<Account>("gus", &withdraw(70), &CommandContext::new())
                        .await
                    {
                        Ok(_) => applied += 1,
                        Err(CommandError::Domain(AccountError::InsufficientFunds {
                            balance,
                            ..
                        })) => {
                            assert!(balance < 70, "refused with {balance} cents left");
                            return applied;
                        }
                        Err(err) => panic!("a withdrawal failed: {err}"),
                    }
                }
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        applied += task.await.expect("a withdrawing task");
    }
    // 1002 cents allow exactly 14 withdrawals of 70.
    assert_eq!(applied, 14);
    let loaded = fx.handler_uncached().load::<Account>("gus").await.unwrap();
    assert_eq!(loaded.state.balance, 1002 - 14 * 70);
    assert_eq!(loaded.version, Version(4 + 14));
}

async fn a_load_reads_only_what_was_appended_after_the_cached_state(fx: Fixture) {
    let handler = fx.handler();
    for command in [open("cy"), deposit(100), deposit(20)] {
        handle(&handler, "cy", &command).await;
    }
    // Cached by the last command: nothing is read.
    let before = fx.spy.events_read();
    let loaded = handler.load::<Account>("cy").await.unwrap();
    assert_eq!(fx.spy.events_read(), before, "the cached state is current");
    assert_eq!((loaded.state.balance, loaded.version), (120, Version(3)));

    // Another writer appends twice: only those two events are read, and the load is
    // what a fresh load folds.
    let other = fx.handler_uncached();
    handle(&other, "cy", &deposit(5)).await;
    handle(&other, "cy", &withdraw(25)).await;
    let before = fx.spy.events_read();
    let loaded = handler.load::<Account>("cy").await.unwrap();
    assert_eq!(fx.spy.events_read() - before, 2, "only the newer events");
    let fresh = other.load::<Account>("cy").await.unwrap();
    assert_eq!(
        (loaded.state.balance, loaded.version, loaded.position),
        (fresh.state.balance, fresh.version, fresh.position)
    );
    assert_eq!(loaded.state.balance, 100);

    // The load cached what it read: the next one reads nothing, and a command decides
    // on it without a load.
    let before = fx.spy.events_read();
    assert_eq!(
        handler.load::<Account>("cy").await.unwrap().version,
        Version(5)
    );
    let outcome = handle(&handler, "cy", &withdraw(10)).await;
    assert_eq!(outcome.version, Version(6));
    assert_eq!(fx.spy.events_read(), before, "nothing read since the load");

    // An aggregate no command touched is loaded in full, then cached.
    handle(&other, "dee", &open("dee")).await;
    handle(&other, "dee", &deposit(7)).await;
    let before = fx.spy.events_read();
    assert_eq!(
        handler.load::<Account>("dee").await.unwrap().state.balance,
        7
    );
    assert_eq!(fx.spy.events_read() - before, 2);
    handler.load::<Account>("dee").await.unwrap();
    assert_eq!(
        fx.spy.events_read() - before,
        2,
        "the second load reads nothing"
    );
}
