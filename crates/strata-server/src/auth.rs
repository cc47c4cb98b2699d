//! Bearer-token access control: a tokens file maps tokens to roles (`read`, `write`,
//! `admin`), and a middleware asks each request for the role its route needs.
//!
//! With no tokens configured every request passes; the server then refuses to listen
//! beyond loopback unless told it is meant to be open (see [`crate::serve`]).

use std::fmt;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// What a token may do. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: every `GET`.
    Read,
    /// Writes: appends and commands (`POST`, `DELETE`).
    Write,
    /// Operations: rebuilding projections and retrying parked events.
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected read, write or admin)"
            )),
        }
    }
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    /// The file could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `token role`.
    #[error("tokens file {path}, line {line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file has no token at all: refusing it avoids an open server by mistake.
    #[error("the tokens file {path} holds no token")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The configured tokens and their roles.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Role)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secrets themselves.
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    /// Tokens from `(token, role)` pairs.
    pub fn new(entries: impl IntoIterator<Item = (String, Role)>) -> Self {
        Self {
            entries: entries.into_iter().collect(),
        }
    }

    /// Reads a tokens file: one `token role` per line; blank lines and lines starting
    /// with `#` are skipped.
    pub fn from_file(path: &Path) -> Result<Self, TokensError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses the text of a tokens file named `path` (for messages).
    pub fn parse(text: &str, path: &str) -> Result<Self, TokensError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |reason: String| TokensError::Syntax {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let mut words = line.split_whitespace();
            let (Some(token), Some(role), None) = (words.next(), words.next(), words.next()) else {
                return Err(syntax("expected `token role`".to_owned()));
            };
            let role = role.parse().map_err(syntax)?;
            entries.push((token.to_owned(), role));
        }
        if entries.is_empty() {
            return Err(TokensError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self { entries })
    }

    /// The role of `token`, if it is configured. Compares every configured token in full
    /// so the time taken does not tell how much of a guess was right.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let mut found = None;
        for (known, role) in &self.entries {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(*role);
            }
        }
        found
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The role a request needs: `GET` reads, other methods write, and the projection
/// operations (`POST /projections/...`) are for admins.
pub fn required_role(method: &Method, path: &str) -> Role {
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        Role::Read
    } else if path.starts_with("/projections/") {
        Role::Admin
    } else {
        Role::Write
    }
}

/// Whether a path is a static file of the console: it holds no data, and a browser
/// cannot send a bearer token when it navigates, so it is served without one. The
/// console's own requests carry the token the user gives it.
fn is_console_asset(method: &Method, path: &str) -> bool {
    method == Method::GET && (path == "/" || path.starts_with("/console/"))
}

/// The middleware: with tokens configured, 401 without a known bearer token and 403 when
/// its role is below the route's.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = state.tokens() else {
        return next.run(request).await;
    };
    let method = request.method();
    let path = request.uri().path();
    if is_console_asset(method, path) {
        return next.run(request).await;
    }
    let needed = required_role(method, path);
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = presented else {
        return ApiError::unauthorized(
            "this server needs a bearer token (Authorization: Bearer <token>)",
        )
        .into_response();
    };
    match tokens.role_of(token) {
        None => {
            ApiError::unauthorized("the bearer token is not known to this server").into_response()
        }
        Some(role) if role < needed => ApiError::forbidden(format!(
            "a {role} token cannot {} {path}: it needs the {needed} role",
            method.as_str()
        ))
        .into_response(),
        Some(_) => next.run(request).await,
    }
}
