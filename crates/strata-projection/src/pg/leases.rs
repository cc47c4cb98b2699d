//! [`PgLeases`]: leases as rows of `strata_lease.leases`, taken and renewed with plain
//! statements (no advisory locks, so it works on PostgreSQL-compatible engines that
//! lack them), expiring on the database's clock; and [`check_fence`], run inside a
//! guarded commit.
//!
//! It must not let a node's clock decide anything: every expiry is set and compared by
//! the database.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use crate::lease::{Acquired, Fence, LeaseError, LeaseTimings, Leases};

/// Takes the lease if it is free, expired, or this node's own (a new epoch each time);
/// otherwise changes nothing and returns no row.
const ACQUIRE: &str = "
INSERT INTO strata_lease.leases AS l (name, holder, epoch, expires_at, acquired_at, renewed_at)
VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3), clock_timestamp(), clock_timestamp())
ON CONFLICT (name) DO UPDATE
    SET holder = excluded.holder, epoch = l.epoch + 1, expires_at = excluded.expires_at,
        acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at
    WHERE l.expires_at <= clock_timestamp() OR l.holder = excluded.holder
RETURNING epoch";

/// The current holder and epoch.
const HOLDER: &str = "SELECT holder, epoch FROM strata_lease.leases WHERE name = $1";

/// Extends this grant (only while it is the current one).
const RENEW: &str = "
UPDATE strata_lease.leases
   SET expires_at = clock_timestamp() + make_interval(secs => $4), renewed_at = clock_timestamp()
 WHERE name = $1 AND holder = $2 AND epoch = $3";

/// Ends this grant at once (only while it is the current one).
const RELEASE: &str = "
UPDATE strata_lease.leases SET expires_at = clock_timestamp()
 WHERE name = $1 AND holder = $2 AND epoch = $3";

/// The fence: the grant must be current and unexpired, and its row stays locked against
/// a takeover until the caller's transaction ends.
const FENCE: &str = "
SELECT 1 FROM strata_lease.leases
 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()
   FOR SHARE";

/// Leases in PostgreSQL, for one node.
pub struct PgLeases {
    pool: Pool,
    node: String,
    timings: LeaseTimings,
}

impl std::fmt::Debug for PgLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLeases")
            .field("node", &self.node)
            .field("timings", &self.timings)
            .finish()
    }
}

impl PgLeases {
    pub(crate) fn new(pool: Pool, node: String, timings: LeaseTimings) -> Self {
        Self {
            pool,
            node,
            timings,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    async fn client(&self, name: &str) -> Result<deadpool_postgres::Object, LeaseError> {
        self.pool.get().await.map_err(|e| storage(name, e))
    }

    fn ttl_secs(&self) -> f64 {
        self.timings.ttl.as_secs_f64()
    }
}

fn storage(name: &str, err: impl std::fmt::Display) -> LeaseError {
    LeaseError::Storage {
        name: name.to_owned(),
        message: err.to_string(),
    }
}

fn epoch_of(name: &str, epoch: i64) -> Result<u64, LeaseError> {
    u64::try_from(epoch).map_err(|_| storage(name, format!("the stored epoch {epoch} is negative")))
}

fn stored_epoch(fence: &Fence) -> i64 {
    i64::try_from(fence.epoch).unwrap_or(i64::MAX)
}

#[async_trait]
impl Leases for PgLeases {
    fn node(&self) -> &str {
        &self.node
    }

    fn timings(&self) -> LeaseTimings {
        self.timings
    }

    async fn try_acquire(&self, name: &str) -> Result<Acquired, LeaseError> {
        let client = self.client(name).await?;
        let taken = client
            .query_opt(ACQUIRE, &[&name, &self.node, &self.ttl_secs()])
            .await
            .map_err(|e| storage(name, e))?;
        if let Some(row) = taken {
            let epoch: i64 = row.try_get(0).map_err(|e| storage(name, e))?;
            return Ok(Acquired::Granted(Fence {
                name: name.to_owned(),
                holder: self.node.clone(),
                epoch: epoch_of(name, epoch)?,
            }));
        }
        let row = client
            .query_one(HOLDER, &[&name])
            .await
            .map_err(|e| storage(name, e))?;
        let holder: String = row.try_get(0).map_err(|e| storage(name, e))?;
        let epoch: i64 = row.try_get(1).map_err(|e| storage(name, e))?;
        Ok(Acquired::HeldBy(Fence {
            name: name.to_owned(),
            holder,
            epoch: epoch_of(name, epoch)?,
        }))
    }

    async fn renew(&self, fence: &Fence) -> Result<bool, LeaseError> {
        let client = self.client(&fence.name).await?;
        let renewed = client
            .execute(
                RENEW,
                &[
                    &fence.name,
                    &fence.holder,
                    &stored_epoch(fence),
                    &self.ttl_secs(),
                ],
            )
            .await
            .map_err(|e| storage(&fence.name, e))?;
        Ok(renewed == 1)
    }

    async fn release(&self, fence: &Fence) -> Result<(), LeaseError> {
        let client = self.client(&fence.name).await?;
        client
            .execute(RELEASE, &[&fence.name, &fence.holder, &stored_epoch(fence)])
            .await
            .map_err(|e| storage(&fence.name, e))?;
        Ok(())
    }
}

/// Checks, inside the transaction that is about to commit a guarded batch, that `fence`
/// is still the current, unexpired grant, and locks its row (`FOR SHARE`) so that no
/// other node can be granted the lease before this transaction ends: a takeover waits
/// for this commit, and then reads what it committed. [`LeaseError::Lost`] if the grant
/// was superseded or expired; the caller must roll back.
pub async fn check_fence<C: GenericClient>(client: &C, fence: &Fence) -> Result<(), LeaseError> {
    let held = client
        .query_opt(FENCE, &[&fence.name, &fence.holder, &stored_epoch(fence)])
        .await
        .map_err(|e| storage(&fence.name, e))?;
    match held {
        Some(_) => Ok(()),
        None => Err(LeaseError::Lost {
            fence: fence.clone(),
        }),
    }
}
