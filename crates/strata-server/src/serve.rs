//! Running the server: refusing an open listener beyond loopback, serving until a
//! shutdown signal, then finishing in-flight requests and stopping the projections.
//!
//! Opening the store and building the modules is the binary's job; closing the store
//! after [`serve`] returns is too.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::{AppState, app};

/// How long shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, lets
/// in-flight requests finish (ending subscriptions; at most [`SHUTDOWN_GRACE`]), and
/// shuts the projections down so their checkpoints are stored.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "the listener".to_owned(), |a| a.to_string());
    let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
    let signal_state = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        signal_state.begin_shutdown();
        let _ = began_tx.send(());
    };
    let server = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async move {
        if began_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = server => result.map_err(|source| ServeError::Io { addr, source }),
        () = deadline => {
            tracing::warn!("in-flight requests did not finish within {} s; closing them", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    };
    state.begin_shutdown();
    if let Some(projections) = state.projections() {
        projections.shutdown().await;
    }
    result
}
