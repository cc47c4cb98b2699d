//! Bearer-token access control: a tokens file maps tokens to roles (`read`, `write`,
//! `admin`) and, optionally, to the name of who holds them; a middleware asks each
//! request for the role its route declared (see [`crate::Routes`]) and tells the
//! handlers who called.
//!
//! With no tokens configured every request passes; the server then refuses to listen
//! beyond loopback unless told it is meant to be open (see [`crate::serve`]).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::module::{Access, AccessTable};

/// What a token may do. Each role includes the ones below it; each route declares the
/// one it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: queries, reads of the log, subscriptions, operations' status.
    Read,
    /// Writes: appends and commands.
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
    /// A line is not `token role [name]`.
    #[error("tokens file {path}, line {line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A token is shorter than [`MIN_TOKEN_BYTES`]: short tokens are guessed.
    #[error(
        "tokens file {path}, line {line}: the token is {len} bytes long; a token needs at least {min} bytes"
    )]
    TooShort {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// The token's length in bytes.
        len: usize,
        /// The least length accepted ([`MIN_TOKEN_BYTES`]).
        min: usize,
    },
    /// One token is given twice: whichever line won, the other role would be a surprise.
    #[error(
        "tokens file {path}: lines {first} and {second} give the same token; each token may appear once"
    )]
    Duplicate {
        /// The file.
        path: String,
        /// The 1-based line that gave it first.
        first: usize,
        /// The 1-based line that gave it again.
        second: usize,
    },
    /// The file has no token at all: refusing it avoids an open server by mistake.
    #[error("the tokens file {path} holds no token")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The shortest token a tokens file may give, in bytes: 16 bytes of random text are
/// beyond guessing over the network.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The longest name a token may carry, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// The configured tokens, their roles and the names of who holds them.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    token: String,
    role: Role,
    name: Option<String>,
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
    /// Tokens from `(token, role)` pairs, without names.
    pub fn new(entries: impl IntoIterator<Item = (String, Role)>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|(token, role)| Entry {
                    token,
                    role,
                    name: None,
                })
                .collect(),
        }
    }

    /// Reads a tokens file: one `token role [name]` per line; blank lines and lines
    /// starting with `#` are skipped. Each token is at least [`MIN_TOKEN_BYTES`] long and
    /// appears on one line only. The name (one word, at most 255 bytes) is who holds
    /// the token: the actor recorded on the events of its commands.
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
        // The line each token came from, to name both lines of a duplicate.
        let mut lines: HashMap<&str, usize> = HashMap::new();
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
            let (Some(token), Some(role), name, None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(syntax("expected `token role [name]`".to_owned()));
            };
            let role = role.parse().map_err(syntax)?;
            if token.len() < MIN_TOKEN_BYTES {
                return Err(TokensError::TooShort {
                    path: path.to_owned(),
                    line: index + 1,
                    len: token.len(),
                    min: MIN_TOKEN_BYTES,
                });
            }
            if let Some(first) = lines.insert(token, index + 1) {
                return Err(TokensError::Duplicate {
                    path: path.to_owned(),
                    first,
                    second: index + 1,
                });
            }
            if name.is_some_and(|n| n.len() > MAX_NAME_BYTES) {
                return Err(syntax(format!(
                    "the name is longer than {MAX_NAME_BYTES} bytes"
                )));
            }
            entries.push(Entry {
                token: token.to_owned(),
                role,
                name: name.map(str::to_owned),
            });
        }
        if entries.is_empty() {
            return Err(TokensError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self { entries })
    }

    /// The role of `token`, if it is configured.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.find(token).map(|entry| entry.role)
    }

    /// The name given to `token` in the tokens file, if it is configured with one.
    pub fn name_of(&self, token: &str) -> Option<&str> {
        self.find(token).and_then(|entry| entry.name.as_deref())
    }

    /// The entry of `token`. Compares every configured token in full so the time taken
    /// does not tell how much of a guess was right.
    fn find(&self, token: &str) -> Option<&Entry> {
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(entry.token.as_bytes(), token.as_bytes()) {
                found = Some(entry);
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

/// Who called, as the token check found it: present on a request only when the server
/// has tokens.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The name the tokens file gives the caller's token, if any.
    pub(crate) name: Option<String>,
    /// The token's role.
    pub(crate) role: Role,
}

/// What the token check needs: the tokens and the access each route declared.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) tokens: Option<Tokens>,
    pub(crate) access: Arc<AccessTable>,
}

/// The middleware: with tokens configured, 401 without a known bearer token and 403 when
/// its role is below the one the route declared. A request that matches no route (a 404
/// in the making) needs the read role; one that matches a route but no declared
/// operation, the admin role.
///
/// It runs after routing (as a route layer), so the matched route path is known.
pub(crate) async fn require_token(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = &guard.tokens else {
        return next.run(request).await;
    };
    let method = request.method();
    let access = match request.extensions().get::<MatchedPath>() {
        // No route: the answer is a 404, which any reader may get.
        None => Access::Needs(Role::Read),
        // A route without a declaration for this method (a 405 in the making): only an
        // admin, so that an operation whose declaration went missing is never opened
        // to everyone.
        Some(path) => guard
            .access
            .get(method, path.as_str())
            .unwrap_or(Access::Needs(Role::Admin)),
    };
    let needed = match access {
        Access::Public => return next.run(request).await,
        Access::Needs(role) => role,
    };
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
    let Some(entry) = tokens.find(token) else {
        return ApiError::unauthorized("the bearer token is not known to this server")
            .into_response();
    };
    if entry.role < needed {
        return ApiError::forbidden(format!(
            "a {} token cannot {} {}: it needs the {needed} role",
            entry.role,
            method.as_str(),
            request.uri().path()
        ))
        .into_response();
    }
    let caller = Caller {
        name: entry.name.clone(),
        role: entry.role,
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}
