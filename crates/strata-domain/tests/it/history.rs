//! An aggregate's history: for each event, what happened, when, who asked and why.

use serde_json::json;
use strata_domain::{CommandContext, CommandHandler};

use crate::support::account::{Account, AccountCommand, deposit, open};
use crate::support::{Fixture, on_both_stores, stream_name};

on_both_stores!(history_tells_who_when_and_why);

async fn history_tells_who_when_and_why(fx: Fixture) {
    let handler = fx.handler();
    let signup = CommandContext {
        correlation_id: Some("signup-1".into()),
        ..CommandContext::new().actor("alice")
    };
    let payroll = CommandContext {
        causation_id: Some("invoice-9".into()),
        tenant: Some("acme".into()),
        ..CommandContext::new().actor("payroll")
    };
    let closing = CommandContext::new().actor("alice");
    handler
        .handle::<Account>("vic", &open("vic"), &signup)
        .await
        .unwrap();
    handler
        .handle::<Account>("vic", &deposit(900), &payroll)
        .await
        .unwrap();
    handler
        .handle::<Account>("vic", &AccountCommand::Close, &closing)
        .await
        .unwrap();

    let stream = CommandHandler::stream_of::<Account>("vic").unwrap();
    let history = handler.history(&stream).await.unwrap();
    let stored = fx.events("account-vic").await;
    assert_eq!(history.len(), 4);
    let why = [
        (
            &signup,
            "signup-1".to_owned(),
            signup.command_id.to_string(),
        ),
        (
            &payroll,
            payroll.command_id.to_string(),
            "invoice-9".to_owned(),
        ),
        (
            &closing,
            closing.command_id.to_string(),
            closing.command_id.to_string(),
        ),
        (
            &closing,
            closing.command_id.to_string(),
            closing.command_id.to_string(),
        ),
    ];
    for ((entry, event), (context, correlation, causation)) in history.iter().zip(&stored).zip(why)
    {
        assert_eq!(entry.position, event.position.0);
        assert_eq!(entry.version, event.version.0);
        assert_eq!(entry.id, event.id.to_string());
        assert_eq!(entry.event_type, event.event_type.as_str());
        assert_eq!(entry.recorded_at, event.recorded_at);
        assert_eq!(entry.data, event.data_json());
        assert_eq!(entry.actor, context.actor);
        assert_eq!(entry.command_id, Some(context.command_id.to_string()));
        assert_eq!(entry.correlation_id, Some(correlation));
        assert_eq!(entry.causation_id, Some(causation));
    }
    let types: Vec<_> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["opened", "deposited", "withdrawn", "closed"]);
    assert_eq!(history[2].data, json!({ "cents": 900 }));

    let wire = serde_json::to_value(&history[1]).unwrap();
    assert_eq!(wire["type"], "deposited");
    assert_eq!(wire["actor"], "payroll");
    assert_eq!(
        wire["recorded_at"],
        json!(stored[1].recorded_at.to_string())
    );
    assert_eq!(wire["data"], json!({ "cents": 900, "currency": "EUR" }));

    // Events written without a command context have a history too, with gaps.
    fx.append_raw(
        "account-wes",
        "opened",
        br#"{"owner":"w","currency":"EUR"}"#,
        b"{}",
    )
    .await;
    let history = handler.history(&stream_name("account-wes")).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            &history[0].actor,
            &history[0].command_id,
            &history[0].causation_id
        ),
        (&None, &None, &None)
    );
    assert!(
        handler
            .history(&stream_name("account-nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}
