//! Leases: the right, held by one node at a time and for a bounded time, to run one
//! named runner over storage that several nodes share. [`Leases`] is the seam a
//! backend implements (a row per lease in PostgreSQL); [`HeldLease`] holds one for a
//! runner, renewing it in the background and saying when it is lost; a [`Fence`]
//! names the grant, so that a sink can refuse to commit for a holder that lost it.
//!
//! It must not decide what a runner does with its lease: the supervise loop waits for
//! one before a session and ends the session when it is lost; a sink checks the fence
//! inside its own commit.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::ToSchema;

/// One grant of a lease: who holds it and in which epoch. Each grant to a new holder
/// (or to the same holder after it lost the lease) has a higher epoch than any before,
/// so a commit checked against the fence is refused once the grant is superseded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name.
    pub name: String,
    /// The node holding it.
    pub holder: String,
    /// The grant's epoch, 1 for the first.
    pub epoch: u64,
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease {} held by {} (epoch {})",
            self.name, self.holder, self.epoch
        )
    }
}

/// The answer to [`Leases::try_acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acquired {
    /// The lease is this node's, under this fence, until its time runs out.
    Granted(Fence),
    /// Another node holds it (its grant has not expired yet).
    HeldBy(Fence),
}

/// How long a lease lasts and how often it is renewed and asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseTimings {
    /// How long a grant or a renewal lasts: a killed holder's lease is free this long
    /// after its last renewal.
    pub ttl: Duration,
    /// How often the holder renews it.
    pub renew_every: Duration,
    /// How often a node without it asks for it again.
    pub retry_every: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            renew_every: Duration::from_secs(1),
            retry_every: Duration::from_secs(1),
        }
    }
}

impl LeaseTimings {
    /// Timings with the given time to live, renewed five times within it.
    pub fn with_ttl(ttl: Duration) -> Self {
        let step = (ttl / 5).max(Duration::from_millis(10));
        Self {
            ttl,
            renew_every: step,
            retry_every: step,
        }
    }
}

/// Why a lease operation failed. Each is retried by the runner that asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The lease's storage failed (a lost connection, say); nothing changed.
    #[error("lease {name}: {message}")]
    Storage {
        /// The lease.
        name: String,
        /// What failed.
        message: String,
    },
    /// The grant was superseded or has expired: the commit it guarded did not happen.
    /// The holder must stop and ask for the lease again.
    #[error("{fence} is lost: the commit was refused")]
    Lost {
        /// The grant that was lost.
        fence: Fence,
    },
}

/// Where leases live: any number of nodes share them, and at most one node holds a
/// given lease at any moment (as the storage's clock sees it).
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// This node's id, the holder its grants name.
    fn node(&self) -> &str;
    /// How long grants last and how often to renew and ask.
    fn timings(&self) -> LeaseTimings;
    /// Takes `name` if it is free or expired (a new, higher epoch), or says who holds
    /// it. Taking a lease this node already holds starts a new epoch too.
    async fn try_acquire(&self, name: &str) -> Result<Acquired, LeaseError>;
    /// Extends the grant by the time to live: `Ok(false)` if it is no longer this
    /// grant (another epoch took over).
    async fn renew(&self, fence: &Fence) -> Result<bool, LeaseError>;
    /// Gives the grant up, so that another node may take the lease at once.
    async fn release(&self, fence: &Fence) -> Result<(), LeaseError>;
}

/// What a status says of a runner's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LeaseStatus {
    /// The node that holds it, as last seen (`None`: nobody, as far as this node knows).
    pub holder: Option<String>,
    /// The epoch of that grant.
    pub epoch: Option<u64>,
    /// Whether this node holds it.
    pub held_here: bool,
    /// This node's id.
    pub node: String,
}

/// The answer to [`HeldLease::try_take`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Taken {
    /// This node holds it now.
    Held(HeldLease),
    /// Another node holds it.
    HeldBy(Fence),
}

/// A lease this node holds for one runner: renewed in the background until dropped,
/// then released. [`HeldLease::signal`] turns true once it is lost (a renewal refused,
/// or none succeeded for long enough that the grant may have expired) or when the
/// outer stop signal it was given turns true.
pub struct HeldLease {
    fence: Fence,
    signal: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    leases: Arc<dyn Leases>,
    released: bool,
}

impl fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldLease")
            .field("fence", &self.fence)
            .field("signalled", &*self.signal.borrow())
            .finish()
    }
}

impl HeldLease {
    /// Asks once for `name`: held (and renewed from now on until dropped, or until
    /// `stop` turns true) if it was free, or who holds it. `stop` is the runner's own stop
    /// signal, folded into [`HeldLease::signal`].
    pub async fn try_take(
        leases: Arc<dyn Leases>,
        name: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<Taken, LeaseError> {
        let asked = Instant::now();
        Ok(match leases.try_acquire(name).await? {
            Acquired::Granted(fence) => Taken::Held(Self::hold(leases, fence, asked, stop.clone())),
            Acquired::HeldBy(other) => Taken::HeldBy(other),
        })
    }

    /// Holds `fence`, granted by a request sent at `asked`, renewing it until dropped.
    fn hold(
        leases: Arc<dyn Leases>,
        fence: Fence,
        asked: Instant,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let (signal_tx, signal) = watch::channel(false);
        let renewer = tokio::spawn(renew(leases.clone(), fence.clone(), asked, stop, signal_tx));
        Self {
            fence,
            signal,
            renewer,
            leases,
            released: false,
        }
    }

    /// The grant, to check inside a commit.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// A signal that turns true when the lease is lost or the runner is asked to stop:
    /// the runner must stop acting on it.
    pub fn signal(&self) -> watch::Receiver<bool> {
        self.signal.clone()
    }
}

impl HeldLease {
    /// Stops renewing and gives the lease up now, so that another node may take it
    /// without waiting for it to expire. A failed release leaves it to expire.
    pub async fn release(mut self) {
        self.renewer.abort();
        self.released = true;
        if let Err(err) = self.leases.release(&self.fence).await {
            tracing::debug!(fence = %self.fence, error = %err, "a lease was left to expire");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let leases = self.leases.clone();
        let fence = self.fence.clone();
        // Released from a task: another node need not wait for the grant to expire. A
        // failed release only leaves the grant to expire.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = leases.release(&fence).await {
                    tracing::debug!(%fence, error = %err, "a lease was left to expire");
                }
            });
        }
    }
}

/// Renews `fence` every `renew_every` until it is refused, a renewal could not be
/// confirmed before the grant may have expired, or `stop` turns true; then sets `lost`.
///
/// NOTE: the local deadline counts from the moment a request was sent, on this node's
/// monotonic clock, and ends one renewal interval before the time to live: the storage
/// sets the expiry later than that from its own clock, so the holder always believes it
/// lost the lease before anyone else can be granted it, whatever the clocks' offsets.
async fn renew(
    leases: Arc<dyn Leases>,
    fence: Fence,
    mut asked: Instant,
    mut stop: watch::Receiver<bool>,
    signal: watch::Sender<bool>,
) {
    let timings = leases.timings();
    let margin = timings.renew_every.min(timings.ttl / 2);
    loop {
        let deadline = asked + timings.ttl.saturating_sub(margin);
        let next = (Instant::now() + timings.renew_every).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => {
                signal.send_replace(true);
                return;
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(%fence, "no renewal was confirmed in time: the lease is given up");
            signal.send_replace(true);
            return;
        }
        let sent = Instant::now();
        let renewal = tokio::time::timeout(deadline - sent, leases.renew(&fence)).await;
        match renewal {
            Ok(Ok(true)) => asked = sent,
            Ok(Ok(false)) => {
                tracing::warn!(%fence, "the lease was taken over");
                signal.send_replace(true);
                return;
            }
            Ok(Err(err)) => tracing::warn!(%fence, error = %err, "a lease renewal failed"),
            Err(_) => tracing::warn!(%fence, "a lease renewal timed out"),
        }
    }
}
