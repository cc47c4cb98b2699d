//! Bearer tokens and roles.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use strata_server::{AppState, MIN_TOKEN_BYTES, Role, Tokens, TokensError, app, check_exposure};
use strata_store::MemoryStore;

use crate::support::{Answer, send};

fn secured() -> Router {
    let tokens = Tokens::parse(
        "# comment\n\nreader-token-0123 read\nwriter-token-0123 write\nadmin-token-01234 admin\n",
        "tokens",
    )
    .unwrap();
    app(AppState::builder(Arc::new(MemoryStore::new()))
        .tokens(Some(tokens))
        .build())
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = if method == "POST" {
        json!({"events": [{"type": "A", "data": {}}]}).to_string()
    } else {
        String::new()
    };
    send(app, request.body(Body::from(body)).unwrap()).await
}

#[tokio::test]
async fn without_a_token_every_route_is_401() {
    let app = secured();
    for (method, uri) in [
        ("GET", "/health"),
        ("GET", "/streams/acct-1"),
        ("GET", "/all"),
        ("GET", "/subscribe"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/projections"),
        ("POST", "/streams/acct-1"),
        ("POST", "/projections/x/rebuild"),
    ] {
        let answer = call(&app, method, uri, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(answer.code(), "unauthorized");
        assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
        let wrong = call(&app, method, uri, Some("guess")).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
}

#[tokio::test]
async fn roles_allow_reads_writes_and_operations() {
    let app = secured();
    assert_eq!(
        call(&app, "GET", "/health", Some("reader-token-0123"))
            .await
            .status,
        StatusCode::OK
    );
    let write = call(&app, "POST", "/streams/acct-1", Some("reader-token-0123")).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.code(), "forbidden");
    assert_eq!(
        call(&app, "POST", "/streams/acct-1", Some("writer-token-0123"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/streams/acct-1", Some("writer-token-0123"))
            .await
            .status,
        StatusCode::OK
    );
    let ops = call(
        &app,
        "POST",
        "/projections/x/rebuild",
        Some("writer-token-0123"),
    )
    .await;
    assert_eq!(ops.status, StatusCode::FORBIDDEN);
    // An admin passes the check; there is no such projection.
    let ops = call(
        &app,
        "POST",
        "/projections/x/rebuild",
        Some("admin-token-01234"),
    )
    .await;
    assert_eq!(ops.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&app, "POST", "/streams/acct-1", Some("admin-token-01234"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unknown_route_needs_a_reader_and_an_undeclared_method_an_admin() {
    let app = secured();
    let missing = call(&app, "GET", "/nowhere", Some("reader-token-0123")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&app, "GET", "/nowhere", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let undeclared = call(&app, "DELETE", "/streams/acct-1", Some("writer-token-0123")).await;
    assert_eq!(
        undeclared.status,
        StatusCode::FORBIDDEN,
        "{}",
        undeclared.text()
    );
    let wrong = call(&app, "DELETE", "/streams/acct-1", Some("admin-token-01234")).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_console_page_needs_no_token_but_its_data_does() {
    let app = secured();
    assert_eq!(call(&app, "GET", "/", None).await.status, StatusCode::OK);
    assert_eq!(
        call(&app, "GET", "/console/app.js", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/stats", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

const A: &str = "aaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbb";

#[test]
fn tokens_files_are_checked_line_by_line() {
    let tokens = Tokens::parse(&format!("{A} read\n{B} write\n"), "f").unwrap();
    assert_eq!(tokens.role_of(A), Some(Role::Read));
    assert_eq!(tokens.role_of(B), Some(Role::Write));
    assert_eq!(tokens.role_of("cccccccccccccccc"), None);
    let err = Tokens::parse(&format!("{A} read\n{B} owner\n"), "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("owner"), "{err}");
    let err = Tokens::parse("lonely\n", "f").unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    assert!(Tokens::parse("# nothing\n", "f").is_err());
    // A third word names who holds the token; lines without one keep working.
    let named = Tokens::parse(&format!("{A} write clerk-7\n{B} read\n"), "f").unwrap();
    assert_eq!(named.role_of(A), Some(Role::Write));
    assert_eq!(named.name_of(A), Some("clerk-7"));
    assert_eq!(named.name_of(B), None);
    let err = Tokens::parse(&format!("{A} read ann bob\n"), "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn a_token_given_twice_is_refused_naming_both_lines() {
    // The attack: one token with two roles, where the last line silently won.
    let text = format!("{A} read\n# admins\n{B} write\n{A} admin\n");
    let err = Tokens::parse(&text, "tokens").unwrap_err();
    assert!(
        matches!(
            err,
            TokensError::Duplicate {
                first: 1,
                second: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("lines 1 and 4") && message.contains("same token"),
        "{message}"
    );
}

#[test]
fn short_tokens_are_refused() {
    for short in ["x", "fifteen-bytes-x"] {
        let err = Tokens::parse(&format!("{A} read\n{short} admin\n"), "tokens").unwrap_err();
        assert!(
            matches!(
                err,
                TokensError::TooShort {
                    line: 2,
                    min: MIN_TOKEN_BYTES,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("line 2") && message.contains("at least 16 bytes"),
            "{message}"
        );
    }
    let exactly = "sixteen-bytes-xx";
    assert_eq!(exactly.len(), MIN_TOKEN_BYTES);
    assert!(Tokens::parse(&format!("{exactly} read\n"), "tokens").is_ok());
}

#[test]
fn without_tokens_only_loopback_unless_insecure() {
    let public = "0.0.0.0:7700".parse().unwrap();
    let loopback = "127.0.0.1:7700".parse().unwrap();
    let v6 = "[::1]:7700".parse().unwrap();
    assert!(check_exposure(loopback, false, false).is_ok());
    assert!(check_exposure(v6, false, false).is_ok());
    let err = check_exposure(public, false, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--insecure"), "{err}");
    assert!(check_exposure(public, true, false).is_ok());
    assert!(check_exposure(public, false, true).is_ok());
}
