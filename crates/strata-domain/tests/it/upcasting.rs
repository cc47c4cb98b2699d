//! Old event shapes (JSON fixtures under `tests/fixtures/`) appended raw to a store load
//! in the current shape through the upcasters, and their stored bytes never change.

use serde::Deserialize;
use serde_json::value::RawValue;
use strata_core::RecordedEvent;
use strata_domain::{CodecError, CommandContext, CommandError, CommandHandler, Upcasters};

use crate::support::account::{Account, AccountEvent, Currency, deposit, upcasters, withdraw};
use crate::support::{Fixture, on_both_stores};

const OPENED: &str = include_str!("../fixtures/opened.json");
const DEPOSITED_V1: &str = include_str!("../fixtures/deposited_v1.json");
const DEPOSITED_V1_IMPLICIT: &str = include_str!("../fixtures/deposited_v1_implicit.json");
const DEPOSITED_V2: &str = include_str!("../fixtures/deposited_v2.json");
const DEPOSITED_V4: &str = include_str!("../fixtures/deposited_v4.json");
const TELEPORTED: &str = include_str!("../fixtures/teleported.json");

/// A stored event as a fixture file holds it.
#[derive(Deserialize)]
struct Stored<'a> {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow)]
    metadata: &'a RawValue,
}

fn parse(fixture: &str) -> Stored<'_> {
    serde_json::from_str(fixture).expect("a fixture is a stored event")
}

/// Appends a fixture's data and metadata byte for byte.
async fn append_fixture(fx: &Fixture, stream: &str, fixture: &str) {
    let stored = parse(fixture);
    fx.append_raw(
        stream,
        &stored.event_type,
        stored.data.get().as_bytes(),
        stored.metadata.get().as_bytes(),
    )
    .await;
}

on_both_stores!(
    old_shapes_load_in_the_current_shape,
    a_missing_upcaster_is_a_clear_error,
    a_schema_newer_than_the_code_is_a_clear_error,
    an_unknown_event_type_is_unknown_type,
    a_payload_that_does_not_fit_is_malformed,
);

async fn old_shapes_load_in_the_current_shape(fx: Fixture) {
    let fixtures = [OPENED, DEPOSITED_V1, DEPOSITED_V2, DEPOSITED_V1_IMPLICIT];
    for fixture in fixtures {
        append_fixture(&fx, "account-olga", fixture).await;
    }
    let handler = fx.handler();
    // A current event among the old ones.
    handler
        .handle::<Account>("olga", &deposit(100), &CommandContext::new())
        .await
        .unwrap();
    let before = fx.events("account-olga").await;

    let decoded: Vec<AccountEvent> = before
        .iter()
        .map(|e| upcasters().decode(e).unwrap())
        .collect();
    let eur = |cents| AccountEvent::Deposited {
        cents,
        currency: Currency::Eur,
    };
    assert_eq!(
        decoded,
        [
            AccountEvent::Opened {
                owner: "olga".into(),
                currency: Currency::Eur
            },
            eur(1200),
            eur(250),
            eur(300),
            eur(100),
        ]
    );
    let loaded = handler.load::<Account>("olga").await.unwrap();
    assert_eq!((loaded.state.balance, loaded.state.deposits), (1850, 4));
    // Commands decide on the upcast state.
    handler
        .handle::<Account>("olga", &withdraw(1850), &CommandContext::new())
        .await
        .unwrap();
    assert_eq!(
        handler.load::<Account>("olga").await.unwrap().state.balance,
        0
    );

    let after = fx.events("account-olga").await;
    for (fixture, event) in fixtures.iter().zip(&after) {
        let stored = parse(fixture);
        assert_eq!(event.event_type.as_str(), stored.event_type);
        assert_eq!(
            &event.data[..],
            stored.data.get().as_bytes(),
            "data bytes unchanged"
        );
        assert_eq!(&event.metadata[..], stored.metadata.get().as_bytes());
    }
    assert_eq!(before[..], after[..before.len()]);
}

fn codec_error(err: CommandError<crate::support::account::AccountError>) -> CodecError {
    match err {
        CommandError::Codec(err) => err,
        other => panic!("expected a codec error, got {other:?}"),
    }
}

async fn a_missing_upcaster_is_a_clear_error(fx: Fixture) {
    append_fixture(&fx, "account-nora", OPENED).await;
    append_fixture(&fx, "account-nora", DEPOSITED_V2).await;
    let head = fx.store.head().await.unwrap();
    // No upcasters at all, then only the one from version 1.
    let only_v1 = Upcasters::new().with(strata_domain::Upcaster {
        event_type: "deposited",
        from: 1,
        upcast: |data| data,
    });
    for upcasters in [Upcasters::new(), only_v1] {
        let handler =
            CommandHandler::new(fx.spy.clone(), fx.snapshots.clone()).with_upcasters(upcasters);
        let err = codec_error(handler.load::<Account>("nora").await.unwrap_err());
        match &err {
            CodecError::Malformed { event_type, reason } => {
                assert_eq!(event_type, "deposited");
                assert_eq!(reason, "no upcaster from schema version 2");
            }
            other => panic!("expected a missing upcaster, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "event of type \"deposited\" does not decode: no upcaster from schema version 2"
        );
        let err = handler
            .handle::<Account>("nora", &deposit(1), &CommandContext::new())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            CommandError::Codec(CodecError::Malformed { .. })
        ));
    }
    assert_eq!(fx.store.head().await.unwrap(), head, "nothing was written");
}

async fn a_schema_newer_than_the_code_is_a_clear_error(fx: Fixture) {
    append_fixture(&fx, "account-otto", OPENED).await;
    append_fixture(&fx, "account-otto", DEPOSITED_V4).await;
    let handler = fx.handler();
    let err = codec_error(handler.load::<Account>("otto").await.unwrap_err());
    assert!(
        matches!(
            &err,
            CodecError::TooNew { event_type, stored: 4, current: 3 } if event_type == "deposited"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "event of type \"deposited\" has schema version 4, newer than 3"
    );
    let head = fx.store.head().await.unwrap();
    let err = handler
        .handle::<Account>("otto", &deposit(1), &CommandContext::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Codec(CodecError::TooNew { .. })
    ));
    assert_eq!(fx.store.head().await.unwrap(), head);
}

async fn an_unknown_event_type_is_unknown_type(fx: Fixture) {
    append_fixture(&fx, "account-pia", OPENED).await;
    append_fixture(&fx, "account-pia", TELEPORTED).await;
    let err = codec_error(fx.handler().load::<Account>("pia").await.unwrap_err());
    assert!(
        matches!(&err, CodecError::UnknownType(t) if t == "teleported"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "unknown event type \"teleported\"");
}

/// A payload of a known type that does not fit its shape is malformed, not an unknown
/// type, even when the misfit is an unknown variant of an enum inside it.
async fn a_payload_that_does_not_fit_is_malformed(fx: Fixture) {
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "deposited",
            br#"{"cents":5,"currency":"XYZ"}"#,
            "unknown variant",
        ),
        (
            "deposited",
            br#"{"cents":"five","currency":"EUR"}"#,
            "invalid type",
        ),
        ("withdrawn", b"\xff not json", "payload is not JSON"),
        (
            "opened",
            br#"{"owner":"q","currency":"GBP"}"#,
            "unknown variant",
        ),
    ];
    for (event_type, data, says) in cases {
        let metadata: &[u8] = if event_type == "deposited" {
            br#"{"schema_version":3}"#
        } else {
            b"{}"
        };
        let event = raw_event(&fx, event_type, data, metadata).await;
        let err = upcasters().decode::<AccountEvent>(&event).unwrap_err();
        match &err {
            CodecError::Malformed {
                event_type: t,
                reason,
            } => {
                assert_eq!(t, event_type);
                assert!(reason.contains(says), "{reason}");
            }
            other => panic!("{event_type} {data:?}: expected malformed, got {other:?}"),
        }
    }
}

async fn raw_event(fx: &Fixture, event_type: &str, data: &[u8], metadata: &[u8]) -> RecordedEvent {
    let result = fx
        .append_raw("account-raw", event_type, data, metadata)
        .await;
    fx.events("account-raw").await[result.last_version.0 as usize - 1].clone()
}
