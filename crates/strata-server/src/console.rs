//! The web console: static files compiled into the binary (no CDN, nothing fetched from
//! outside). The page talks to the same API as any other client.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::extract::Path;

/// The console's files: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
];

const INDEX: &str = include_str!("../console/index.html");

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The console's page.
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    responses((status = 200, description = "The console", content_type = "text/html", body = String))
)]
pub(crate) async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// One of the console's scripts or style sheets.
#[utoipa::path(
    get,
    path = "/console/{file}",
    tag = "console",
    params(("file" = String, Path, description = "`app.js` or `style.css`")),
    responses(
        (status = 200, description = "The file", content_type = "text/plain", body = String),
        (status = 404, description = "No such file"),
    )
)]
pub(crate) async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, body)| file(content_type, body))
        .ok_or_else(|| {
            ApiError::not_found("not_found", format!("the console has no file {name:?}"))
        })
}
