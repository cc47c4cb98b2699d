use axum::http::{HeaderMap, HeaderValue};
use uuid::Uuid;

use super::{Caller, context};
use crate::Role;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn a_uuid_key_is_the_command_id_and_any_other_key_hashes_to_one() {
    let id = "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a01";
    let given = context(&headers(&[("idempotency-key", id)]), None).unwrap();
    assert_eq!(given.command_id, Uuid::parse_str(id).unwrap());
    let a = context(&headers(&[("idempotency-key", "order 7 try")]), None).unwrap();
    let b = context(&headers(&[("idempotency-key", "order 7 try")]), None).unwrap();
    assert_eq!(a.command_id, b.command_id);
    let fresh = context(&HeaderMap::new(), None).unwrap();
    assert_ne!(fresh.command_id, a.command_id);
}

#[test]
fn without_tokens_the_actor_is_the_header() {
    let ctx = context(
        &headers(&[("x-actor", "ann"), ("x-correlation-id", "req-1")]),
        None,
    )
    .unwrap();
    assert_eq!(ctx.actor.as_deref(), Some("ann"));
    assert_eq!(ctx.correlation_id.as_deref(), Some("req-1"));
}

#[test]
fn with_tokens_the_actor_is_the_tokens_name_and_the_header_is_refused() {
    let caller = Caller {
        name: Some("ops-bot".to_owned()),
        role: Role::Write,
    };
    let ctx = context(&HeaderMap::new(), Some(&caller)).unwrap();
    assert_eq!(ctx.actor.as_deref(), Some("ops-bot"));
    let nameless = Caller {
        name: None,
        role: Role::Write,
    };
    assert_eq!(
        context(&HeaderMap::new(), Some(&nameless)).unwrap().actor,
        None
    );
    let err = context(&headers(&[("x-actor", "ann")]), Some(&caller)).unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.message().contains("x-actor"), "{err}");
}

#[test]
fn a_malformed_header_is_invalid_input() {
    let long = "k".repeat(256);
    for map in [
        headers(&[("idempotency-key", &long)]),
        headers(&[("x-correlation-id", "  ")]),
    ] {
        assert_eq!(context(&map, None).unwrap_err().code(), "invalid_input");
    }
}
