//! Extractors that answer a malformed request in the server's error shape: a JSON body,
//! a query string and path parameters that do not parse become 400 `invalid_input` with a
//! message naming the field; a body over the limit becomes 413 `too_large`.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// The request body as bytes, read under the body size limit.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) => Err(body_rejection(&rejection)),
        }
    }
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the request body is over the server's size limit")
    } else {
        ApiError::invalid(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        ))
    }
}

/// A JSON body deserialized into `T`. The body may come without a content type (as
/// `curl -d` sends it); what counts is that it parses.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body; an empty body reads as `{}` so commands without fields need none.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|err| json_error(&err))
}

/// A `serde_json` error as a sentence naming where the body is wrong.
pub fn json_error(err: &serde_json::Error) -> ApiError {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let message = match text.strip_suffix(&suffix) {
        Some(message) => format!(
            "invalid JSON body at line {} column {}: {message}",
            err.line(),
            err.column()
        ),
        None => format!("invalid JSON body: {text}"),
    };
    ApiError::invalid(message)
}

/// A query string deserialized into `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection: QueryRejection| {
                ApiError::invalid(format!("invalid query: {}", strip(&rejection.body_text())))
            })
    }
}

/// Path parameters deserialized into `T`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|rejection: PathRejection| {
                ApiError::invalid(format!("invalid path: {}", strip(&rejection.body_text())))
            })
    }
}

/// axum's rejection texts start with a capitalised preamble; keep the part that names the
/// field.
fn strip(text: &str) -> String {
    for prefix in [
        "Failed to deserialize query string: ",
        "Failed to deserialize query string. ",
        "Invalid URL: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    text.to_owned()
}
