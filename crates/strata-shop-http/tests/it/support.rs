//! Helpers: the shop mounted on a server over a fresh store, requests, and JSON answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use strata_domain::{CommandHandler, MemorySnapshots};
use strata_projection::{ProcessManagers, Projections};
use strata_server::{AppState, AppStateBuilder, ReadSide, app};
use strata_shop::{FakePaymentProvider, Shop};
use strata_shop_http::ShopModule;
use strata_store::{EventStore, MemoryStore};
use tower::ServiceExt as _;

/// A server with the shop mounted over an in-memory store, its read models in a
/// temporary directory.
pub(crate) struct ShopServer {
    pub(crate) app: Router,
    pub(crate) read_side: ReadSide,
    _dir: tempfile::TempDir,
}

impl ShopServer {
    /// The shop with its projections and checkout running.
    pub(crate) fn start() -> Self {
        Self::start_with(|builder| builder)
    }

    /// The same, with the server's state set up further by `configure` (tokens,
    /// limits).
    pub(crate) fn start_with(configure: impl FnOnce(AppStateBuilder) -> AppStateBuilder) -> Self {
        Self::start_over(
            tempfile::tempdir().unwrap(),
            Arc::new(MemoryStore::new()),
            configure,
        )
    }

    /// The same over a given store, with the read models kept in `dir` (perhaps built
    /// over another store before).
    pub(crate) fn start_over(
        dir: tempfile::TempDir,
        store: Arc<dyn EventStore>,
        configure: impl FnOnce(AppStateBuilder) -> AppStateBuilder,
    ) -> Self {
        let handler = Arc::new(CommandHandler::new(
            store.clone(),
            Arc::new(MemorySnapshots::new()),
        ));
        let projections = Projections::new(store.clone(), dir.path().join("read"));
        let processes = ProcessManagers::new(store.clone(), dir.path().join("process"));
        let shop = Shop::new(
            handler,
            projections.clone(),
            &processes,
            Arc::new(FakePaymentProvider::default()),
        )
        .unwrap();
        projections.start();
        processes.start();
        let read_side = ReadSide::new(projections, Some(processes));
        let builder = AppState::builder(store)
            .projections(Arc::new(read_side.clone()))
            .module(Arc::new(ShopModule::new(shop)));
        ShopServer {
            app: app(configure(builder).build()),
            read_side,
            _dir: dir,
        }
    }

    /// Stops the read side, its checkpoints stored.
    pub(crate) async fn stop(self) {
        self.stop_keeping_files().await;
    }

    /// Stops the read side and hands back the directory of its read models.
    pub(crate) async fn stop_keeping_files(self) -> tempfile::TempDir {
        use strata_server::ProjectionHost as _;
        self.read_side.shutdown().await;
        self._dir
    }
}

/// An answer: status and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error code of an error answer.
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", String::from_utf8_lossy(&self.body)))
            .to_owned()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body is readable")
        .to_bytes()
        .to_vec();
    Answer { status, body }
}

pub(crate) async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// A command: POST `uri` with `body` (none: empty), under an idempotency `key`.
pub(crate) async fn command(
    app: &Router,
    uri: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Answer {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    send(app, request.body(Body::from(body)).unwrap()).await
}

/// A command that must succeed; its answer.
pub(crate) async fn ok(app: &Router, uri: &str, body: Option<Value>) -> Value {
    let answer = command(app, uri, body, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text());
    answer.json()
}
