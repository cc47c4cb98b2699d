//! Running the server: refusing an open listener beyond loopback, accepting connections
//! under a cap with header, idle and body timeouts, serving until a shutdown signal, then
//! finishing in-flight requests and stopping the projections.
//!
//! Opening the store and building the modules is the binary's job; closing the store
//! after [`serve`] returns is too.
//!
//! The accept loop is ours rather than `axum::serve`'s because a server must bound what a
//! client costs before it has said anything: every open connection holds a file
//! descriptor, and the store and the read models need descriptors of their own to answer
//! anyone at all.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::{AppState, app};

/// How long shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// File descriptors kept out of the connection cap when it is derived from the process's
/// limit: the store's segments and index, the read models' SQLite files (a database, its
/// WAL and its shared memory, for the writer and every pooled reader), logs and
/// listeners.
pub const RESERVED_FDS: u64 = 256;

/// The connection cap when the process has no file descriptor limit at all.
const UNLIMITED_CAP: usize = 16_384;

/// The fewest connections a derived cap allows, however low the process's limit is.
const MIN_CAP: usize = 16;

/// How long the accept loop pauses after the system refused it a descriptor: long enough
/// for connections to close, short enough that a client barely notices.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The most bytes a connection buffers for writing (and for reading a request head)
/// before it waits on its client.
const WRITE_BUFFER: usize = 64 * 1024;

/// What a connection beyond the cap is answered before it is closed.
const REFUSAL_BODY: &str = r#"{"error":{"code":"too_many_connections","message":"the server is serving as many connections as it allows; try again later"}}"#;

/// Why the server would not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No tokens are configured and the address is reachable from other machines.
    #[error(
        "refusing to listen on {addr} without tokens: anyone who can reach it could read and write every stream; \
         listen on a loopback address (127.0.0.1), give --tokens FILE, or pass --insecure to accept the risk"
    )]
    Exposed {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The listener failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Whether a listener on `addr` may be opened: a server without tokens stays on
/// loopback unless `insecure`.
pub fn check_exposure(
    addr: SocketAddr,
    has_tokens: bool,
    insecure: bool,
) -> Result<(), ServeError> {
    if has_tokens || insecure || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::Exposed { addr })
    }
}

/// The connection cap derived from the process's soft file descriptor limit: the limit
/// minus [`RESERVED_FDS`] (at least 16; 16,384 when the process has no limit).
pub fn derived_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    cap_for(limit)
}

fn cap_for(limit: Option<u64>) -> usize {
    match limit {
        None => UNLIMITED_CAP,
        Some(limit) => usize::try_from(limit.saturating_sub(RESERVED_FDS))
            .unwrap_or(UNLIMITED_CAP)
            .clamp(MIN_CAP, UNLIMITED_CAP),
    }
}

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, lets
/// in-flight requests finish (ending subscriptions; at most [`SHUTDOWN_GRACE`]), and
/// shuts the projections down so their checkpoints are stored.
///
/// At most [`crate::Limits::max_connections`] connections are served at once (derived
/// from the file descriptor limit when unset, see [`derived_max_connections`]); one more
/// is answered 503 `too_many_connections` and closed at once. A client has
/// [`crate::Limits::header_timeout`] to send a request's head, and a kept-alive
/// connection is closed once it has been idle that long; a request body that stops
/// arriving for [`crate::Limits::body_timeout`] is refused. Responses are not timed here,
/// so subscriptions stream for as long as their client reads.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "the listener".to_owned(), |a| a.to_string());
    let limits = state.limits();
    let cap = limits
        .max_connections
        .unwrap_or_else(derived_max_connections);
    tracing::info!(
        max_connections = cap,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        "accepting connections"
    );
    let permits = Arc::new(Semaphore::new(cap));
    let mut http = http1::Builder::new();
    // NOTE: hyper starts the header timer whenever it waits for a request's head, so the
    // same timer closes a kept-alive connection that stays idle between requests.
    // The write buffer is bounded so that a client that stops reading holds little
    // memory (it is closed after `send_timeout`; see `SendTimeout`).
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(WRITE_BUFFER)
        .keep_alive(true);
    let router = app(state.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    let mut failure = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) if is_exhaustion(&err) => {
                // Out of descriptors or memory: nothing is wrong with the listener; wait
                // for connections to close instead of spinning on the error.
                tracing::warn!(error = %err, "cannot accept a connection; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            Err(source) => {
                failure = Some(ServeError::Io { addr, source });
                break;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics::gauge!("strata_connections").increment(1.0);
        let connection = http.serve_connection(
            TokioIo::new(SendTimeout::new(stream, limits.send_timeout)),
            TowerToHyperService::new(router.clone()),
        );
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let stopping = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stopping => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "a connection ended with an error");
            }
            metrics::gauge!("strata_connections").decrement(1.0);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    state.begin_shutdown();
    stop_tx.send_replace(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "in-flight requests did not finish within {} s; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
        connections.shutdown().await;
    }
    if let Some(projections) = state.projections() {
        projections.shutdown().await;
    }
    failure.map_or(Ok(()), Err)
}

/// Answers a connection beyond the cap with a 503 and closes it. The answer fits in a
/// fresh socket's send buffer, so it is written without waiting; a client that cannot
/// take even that gets the close alone.
fn refuse(stream: &TcpStream) {
    metrics::counter!("strata_connections_refused_total").increment(1);
    tracing::debug!("refusing a connection: at the connection limit");
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// A connection that fails once its client has taken no bytes for `timeout` while the
/// server had some to send: a client that stops reading is let go instead of holding a
/// descriptor and a buffer for ever. Reads are not timed here (hyper times the request
/// head; the router times bodies).
struct SendTimeout {
    io: TcpStream,
    timeout: Duration,
    /// Armed when a write would block; disarmed by any write that makes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SendTimeout {
    fn new(io: TcpStream, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Turns a write's outcome into a timeout once writes have been blocked too long.
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Pending => {
                let timeout = self.timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stalled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client took no bytes for {} s", timeout.as_secs_f64()),
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for SendTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An accept error that concerns only the connection being accepted.
fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// An accept error that says the process or the system ran out of something that
/// closing connections gives back (descriptors, memory).
fn is_exhaustion(err: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(err),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

#[cfg(test)]
mod tests;
