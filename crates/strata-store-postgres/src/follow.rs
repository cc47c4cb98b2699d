//! Follows the committed head for this process: LISTEN on a dedicated, unpooled
//! connection that is re-established whenever it drops, plus a poll of the head row on a
//! timer. It owns only the head watch's updates; it never reads events.
//!
//! Notifications are hints. The head published is always read from the head row, so a
//! notification that is lost (the listening connection dropped, a server that does not
//! deliver them) delays a subscriber by at most one poll interval and never makes it skip
//! or repeat an event.

use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt as _;
use strata_core::Position;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::sql;

/// Raises the watched head to `position` if that is higher; never lowers it.
pub(crate) fn publish(head: &watch::Sender<Position>, position: Position) {
    head.send_if_modified(|current| {
        if position > *current {
            *current = position;
            true
        } else {
            false
        }
    });
}

/// Runs until aborted: keeps `head` at the committed head of the database.
pub(crate) async fn follow_head(
    config: tokio_postgres::Config,
    pool: Pool,
    head: watch::Sender<Position>,
    poll_interval: Duration,
) {
    let mut listening: Option<Listening> = None;
    loop {
        if listening.is_none() {
            match listen(&config).await {
                Ok(connection) => listening = Some(connection),
                Err(err) => tracing::warn!(
                    error = %err,
                    "cannot listen for postgres head notifications; polling every {poll_interval:?}"
                ),
            }
        }
        // NOTE: read after LISTEN is in place, so a commit between the two is either in
        // this read or notified.
        refresh(&pool, &head).await;
        let open = match listening.as_mut() {
            Some(connection) => tokio::select! {
                message = connection.wake.recv() => message.is_some(),
                () = tokio::time::sleep(poll_interval) => true,
            },
            None => {
                tokio::time::sleep(poll_interval).await;
                false
            }
        };
        if !open && listening.take().is_some() {
            tracing::warn!("the postgres notification connection closed; reconnecting");
        }
    }
}

/// A LISTENing connection: the client keeps it open, the receiver gets one message per
/// notification (coalesced) and closes when the connection does.
struct Listening {
    _client: tokio_postgres::Client,
    wake: mpsc::Receiver<()>,
}

/// Opens a connection and LISTENs on the head channel.
async fn listen(config: &tokio_postgres::Config) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, wake) = mpsc::channel(1);
    // Drives the connection until it fails or the client is dropped.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    // A full channel already holds a wake-up: coalesce.
                    let _ = sender.try_send(());
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "postgres notification connection failed");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", sql::HEAD_CHANNEL))
        .await?;
    Ok(Listening {
        _client: client,
        wake,
    })
}

/// Reads the head row and publishes it; failures are logged and retried on the next
/// wake-up.
async fn refresh(pool: &Pool, head: &watch::Sender<Position>) {
    let result = async {
        let client = pool.get().await.map_err(|err| err.to_string())?;
        let row = client
            .query_one(sql::HEAD, &[])
            .await
            .map_err(|err| err.to_string())?;
        row.try_get::<_, i64>(0).map_err(|err| err.to_string())
    }
    .await;
    match result {
        Ok(position) => publish(head, Position(u64::try_from(position).unwrap_or(0))),
        Err(err) => tracing::warn!(error = %err, "cannot read the postgres head"),
    }
}
