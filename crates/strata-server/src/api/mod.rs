//! The router: every route with its OpenAPI description, the middleware around them
//! (auth, body limit, timeouts, latency, tracing), and the JSON answers for unknown
//! routes and methods.

pub(crate) mod ops;
pub(crate) mod schema;
pub(crate) mod streams;
pub(crate) mod subscribe;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Guard;
use crate::module::{ModuleRoutes, Routes};
use crate::{ApiError, AppState, Role, auth, console};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "strata",
        description = "strata's HTTP API: the event store (append, read, subscribe), \
            operations (health, metrics, projections, relays), the console, and the modules the \
            server mounts. Errors answer `{\"error\": {\"code\", \"message\"}}`; a 500 \
            answers only an `error_id`, under which the server logs what failed. With \
            tokens configured, every route but the console's static files needs \
            `Authorization: Bearer <token>` with the role its `security` requirement names \
            (`read` < `write` < `admin`)."
    ),
    tags(
        (name = "event store", description = "Append, read and follow the log"),
        (name = "operations", description = "Health, metrics, projections, relays"),
        (name = "console", description = "The web console's static files"),
    )
)]
struct ApiDoc;

/// Every route of the server with its OpenAPI description and the access it needs: the
/// store API, operations, the console and each module's routes. Subscriptions carry no
/// request timeout.
pub(crate) fn api_router(state: &AppState) -> ModuleRoutes {
    let mut timed = Routes::<AppState>::new()
        .route(Role::Read, routes!(streams::list_streams))
        .route(Role::Write, routes!(streams::append))
        .route(Role::Read, routes!(streams::read_stream))
        .route(Role::Read, routes!(streams::read_all))
        .route(Role::Read, routes!(ops::health))
        .route(Role::Read, routes!(ops::metrics))
        .route(Role::Read, routes!(ops::stats))
        .route(Role::Read, routes!(ops::openapi))
        .route(Role::Read, routes!(ops::list_projections))
        .route(Role::Read, routes!(ops::list_relays))
        .route(Role::Admin, routes!(ops::rebuild))
        .route(Role::Read, routes!(ops::parked))
        .route(Role::Admin, routes!(ops::retry))
        .public(routes!(console::index))
        .public(routes!(console::asset))
        .with_state(state.clone());
    for module in state.modules() {
        timed = timed.merge(module.routes(state));
    }
    timed.router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(timed.router)
        .layer(middleware::from_fn_with_state(state.clone(), timed_request));
    timed.merge(
        Routes::<AppState>::new()
            .route(Role::Read, routes!(subscribe::subscribe))
            .with_state(state.clone()),
    )
}

/// The server's router over `state`.
pub fn app(state: AppState) -> Router {
    let ModuleRoutes { router, access } = api_router(&state);
    let (router, mut doc) = router.split_for_parts();
    document_common(&mut doc);
    let limits = state.limits();
    let guard = Guard {
        tokens: state.tokens().cloned(),
        access: Arc::new(access),
    };
    router
        .layer(Extension(Arc::new(doc)))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // Inside the token check: a request's body is read for its digest only once it
        // may be served.
        .layer(middleware::from_fn(crate::command::digest_request))
        .layer(middleware::from_fn_with_state(guard, auth::require_token))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(tower::util::MapRequestLayer::new(
            move |request: Request| crate::body_timeout::limit(request, limits.body_timeout),
        ))
        .layer(
            TraceLayer::new_for_http()
                // NOTE: the request span is at debug level: at the default `info` the
                // subscriber would build one (and format its fields) for every request.
                // `RUST_LOG=info,tower_http=debug` logs every request with its span and
                // latency.
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// Adds what every route shares to the description: the bearer-token security scheme,
/// and the answers every operation can give: 400 for a malformed parameter or body (where
/// it takes any), 401 and 403 when tokens are configured (but not on public routes), and
/// the opaque 500.
fn document_common(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            crate::module::BEARER_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let takes_input = operation.request_body.is_some()
                || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let public = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == Default::default()));
            let responses = &mut operation.responses.responses;
            if takes_input {
                responses
                    .entry("400".to_owned())
                    .or_insert_with(|| error("Malformed input: `invalid_input`").into());
            }
            if !public {
                responses.entry("401".to_owned()).or_insert_with(|| {
                    error("No bearer token (when tokens are configured)").into()
                });
                responses.entry("403".to_owned()).or_insert_with(|| {
                    error("The token's role is below the one this route needs").into()
                });
            }
            responses.entry("500".to_owned()).or_insert_with(|| {
                error("`internal`: the server failed; the answer holds only an `error_id`").into()
            });
        }
    }
}

/// Bounds a request's time and counts its latency.
async fn timed_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let started = Instant::now();
    let timeout = state.limits().request_timeout;
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(
            "timeout",
            format!(
                "the request took longer than the server's limit of {} s",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    };
    state.stats().request(
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found("not_found", format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
