//! A held lease, against a scripted [`Leases`]: renewed in the background while the
//! storage confirms it; its signal turns true when a renewal is refused, when none is
//! confirmed before the grant may have expired, or when the runner is asked to stop; and
//! it is given back when released or dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use strata_projection::{Acquired, Fence, HeldLease, LeaseError, LeaseTimings, Leases, Taken};
use tokio::sync::watch;
use tokio::time::Instant;

/// Grants every lease; renewals answer as told.
struct Scripted {
    timings: LeaseTimings,
    /// Renewals answer `Ok(false)`: another node took it.
    refuse: AtomicBool,
    /// Renewals fail: the storage cannot be reached.
    fail: AtomicBool,
    renewals: AtomicU32,
    releases: AtomicU32,
}

impl Scripted {
    fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            timings: LeaseTimings::with_ttl(ttl),
            refuse: AtomicBool::new(false),
            fail: AtomicBool::new(false),
            renewals: AtomicU32::new(0),
            releases: AtomicU32::new(0),
        })
    }
}

#[async_trait]
impl Leases for Scripted {
    fn node(&self) -> &str {
        "here"
    }
    fn timings(&self) -> LeaseTimings {
        self.timings
    }
    async fn try_acquire(&self, name: &str) -> Result<Acquired, LeaseError> {
        Ok(Acquired::Granted(Fence {
            name: name.to_owned(),
            holder: "here".to_owned(),
            epoch: 1,
        }))
    }
    async fn renew(&self, fence: &Fence) -> Result<bool, LeaseError> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(LeaseError::Storage {
                name: fence.name.clone(),
                message: "the database is away".to_owned(),
            });
        }
        Ok(!self.refuse.load(Ordering::SeqCst))
    }
    async fn release(&self, _fence: &Fence) -> Result<(), LeaseError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn take(leases: &Arc<Scripted>, stop: &watch::Receiver<bool>) -> HeldLease {
    match HeldLease::try_take(leases.clone(), "runner", stop)
        .await
        .unwrap()
    {
        Taken::Held(held) => held,
        other => panic!("the scripted leases grant everything: {other:?}"),
    }
}

/// How long until `signal` turns true, at most `limit`.
async fn signalled_within(signal: &mut watch::Receiver<bool>, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    tokio::time::timeout(limit, signal.wait_for(|s| *s))
        .await
        .ok()
        .map(|_| started.elapsed())
}

#[tokio::test]
async fn a_held_lease_is_renewed_until_a_renewal_is_refused() {
    let leases = Scripted::new(Duration::from_millis(500));
    let (_stop_tx, stop) = watch::channel(false);
    let held = take(&leases, &stop).await;
    let mut signal = held.signal();
    assert_eq!(
        signalled_within(&mut signal, Duration::from_millis(600)).await,
        None,
        "renewed, it holds beyond its time to live"
    );
    assert!(leases.renewals.load(Ordering::SeqCst) >= 3);
    leases.refuse.store(true, Ordering::SeqCst);
    assert!(
        signalled_within(&mut signal, Duration::from_millis(300))
            .await
            .is_some(),
        "a refused renewal loses the lease at once"
    );
    held.release().await;
    assert_eq!(leases.releases.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lease_whose_renewals_fail_is_given_up_before_it_can_expire() {
    let ttl = Duration::from_millis(500);
    let leases = Scripted::new(ttl);
    leases.fail.store(true, Ordering::SeqCst);
    let (_stop_tx, stop) = watch::channel(false);
    let taken = Instant::now();
    let held = take(&leases, &stop).await;
    let mut signal = held.signal();
    signalled_within(&mut signal, ttl)
        .await
        .expect("given up within the time to live");
    assert!(
        taken.elapsed() < ttl,
        "the holder must stop believing before the storage can grant it again: {:?}",
        taken.elapsed()
    );
    drop(held);
    // Dropped without a release, it is given back from a task.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(leases.releases.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_runners_stop_signal_ends_a_held_lease() {
    let leases = Scripted::new(Duration::from_secs(5));
    let (stop_tx, stop) = watch::channel(false);
    let held = take(&leases, &stop).await;
    let mut signal = held.signal();
    stop_tx.send_replace(true);
    assert!(
        signalled_within(&mut signal, Duration::from_millis(300))
            .await
            .is_some()
    );
}
