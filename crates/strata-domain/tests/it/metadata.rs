//! What flows from a command into its events' metadata, and from an event into the
//! context of the commands a process manager sends in reaction.

use serde_json::json;
use strata_domain::{CommandContext, derived_event_id};
use uuid::Uuid;

use crate::support::account::{Account, AccountCommand, deposit, open};
use crate::support::counter::{Counter, CounterCommand};
use crate::support::{Fixture, on_both_stores};

on_both_stores!(
    every_event_carries_its_command_context,
    a_bare_context_correlates_and_causes_by_its_command_id,
    commands_caused_by_an_event_derive_their_ids_from_it,
    an_event_without_context_still_causes_a_context,
);

async fn every_event_carries_its_command_context(fx: Fixture) {
    let handler = fx.handler();
    let context = CommandContext {
        command_id: Uuid::now_v7(),
        correlation_id: Some("request-42".into()),
        causation_id: Some("click-7".into()),
        actor: Some("alice".into()),
        tenant: Some("acme".into()),
        request_digest: None,
    };
    let expected = |schema_version: u32| {
        json!({
            "command_id": context.command_id.to_string(),
            "correlation_id": "request-42",
            "causation_id": "click-7",
            "actor": "alice",
            "tenant": "acme",
            "schema_version": schema_version,
        })
    };
    handler
        .handle::<Account>("meta", &open("meta"), &CommandContext::new())
        .await
        .unwrap();
    let deposit_context = CommandContext {
        command_id: Uuid::now_v7(),
        ..context.clone()
    };
    let deposited = handler
        .handle::<Account>("meta", &deposit(10), &deposit_context)
        .await
        .unwrap();
    let closed = handler
        .handle::<Account>("meta", &AccountCommand::Close, &context)
        .await
        .unwrap();

    let stored = fx.events("account-meta").await;
    assert_eq!(stored.len(), 4);
    let mut deposited_metadata = expected(3);
    deposited_metadata["command_id"] = json!(deposit_context.command_id.to_string());
    assert_eq!(
        serde_json::Value::Object(stored[1].metadata_json()),
        deposited_metadata,
        "deposited is at schema version 3"
    );
    assert_eq!(
        stored[1].id,
        derived_event_id(deposit_context.command_id, 0)
    );
    for (index, event) in stored[2..].iter().enumerate() {
        assert_eq!(
            serde_json::Value::Object(event.metadata_json()),
            expected(1)
        );
        assert_eq!(event.id, derived_event_id(context.command_id, index as u32));
    }
    assert_eq!(deposited.events[0].metadata, stored[1].metadata);
    assert_eq!(closed.events[1].metadata, stored[3].metadata);
}

async fn a_bare_context_correlates_and_causes_by_its_command_id(fx: Fixture) {
    let handler = fx.handler();
    let context = CommandContext::new().actor("bob");
    assert_eq!(context.correlation_id, None);
    handler
        .handle::<Counter>("bare", &CounterCommand::Add(1), &context)
        .await
        .unwrap();
    let event = &fx.events("counter-bare").await[0];
    let id = context.command_id.to_string();
    assert_eq!(
        serde_json::Value::Object(event.metadata_json()),
        json!({
            "command_id": id,
            "correlation_id": id,
            "causation_id": id,
            "actor": "bob",
            "schema_version": 1,
        })
    );
    assert_eq!(
        CommandContext::with_id(context.command_id).command_id,
        context.command_id
    );
    assert_ne!(
        CommandContext::new().command_id,
        CommandContext::new().command_id
    );
}

async fn commands_caused_by_an_event_derive_their_ids_from_it(fx: Fixture) {
    let handler = fx.handler();
    let request = CommandContext {
        correlation_id: Some("signup-1".into()),
        actor: Some("alice".into()),
        tenant: Some("acme".into()),
        ..CommandContext::new()
    };
    handler
        .handle::<Account>("pm", &open("pm"), &request)
        .await
        .unwrap();
    let opened = fx.events("account-pm").await.remove(0);

    // A process manager reacting to `opened` sends two commands.
    let first = CommandContext::caused_by(&opened, 0);
    let second = CommandContext::caused_by(&opened, 1);
    assert_eq!(
        first,
        CommandContext::caused_by(&opened, 0),
        "deterministic"
    );
    assert_eq!(first.command_id, derived_event_id(opened.id.0, 0).0);
    assert_eq!(second.command_id, derived_event_id(opened.id.0, 1).0);
    assert_ne!(first.command_id, second.command_id);
    assert_ne!(first.command_id, opened.id.0);
    assert_eq!(first.correlation_id.as_deref(), Some("signup-1"));
    assert_eq!(first.causation_id, Some(opened.id.to_string()));
    assert_eq!(first.actor.as_deref(), Some("alice"));
    assert_eq!(first.tenant.as_deref(), Some("acme"));

    let sent = handler
        .handle::<Counter>("welcome", &CounterCommand::Add(1), &first)
        .await
        .unwrap();
    let metadata = fx.events("counter-welcome").await[0].metadata_json();
    assert_eq!(metadata["command_id"], json!(first.command_id.to_string()));
    assert_eq!(metadata["causation_id"], json!(opened.id.to_string()));
    assert_eq!(metadata["correlation_id"], json!("signup-1"));
    assert_eq!(metadata["actor"], json!("alice"));
    assert_eq!(metadata["tenant"], json!("acme"));

    // Replaying the event sends the same command again, which applies once.
    let replayed = handler
        .handle::<Counter>(
            "welcome",
            &CounterCommand::Add(1),
            &CommandContext::caused_by(&opened, 0),
        )
        .await
        .unwrap();
    assert!(replayed.duplicate);
    assert_eq!(replayed.events[0].id, sent.events[0].id);
    assert_eq!(
        handler
            .load::<Counter>("welcome")
            .await
            .unwrap()
            .state
            .value,
        1
    );
}

async fn an_event_without_context_still_causes_a_context(fx: Fixture) {
    fx.append_raw(
        "account-raw",
        "opened",
        br#"{"owner":"r","currency":"USD"}"#,
        b"{}",
    )
    .await;
    fx.append_raw("account-raw", "withdrawn", br#"{"cents":1}"#, b"not json")
        .await;
    for event in fx.events("account-raw").await {
        let context = CommandContext::caused_by(&event, 3);
        assert_eq!(context.command_id, derived_event_id(event.id.0, 3).0);
        assert_eq!(context.correlation_id, Some(event.id.to_string()));
        assert_eq!(context.causation_id, Some(event.id.to_string()));
        assert_eq!((context.actor, context.tenant), (None, None));
    }
}
