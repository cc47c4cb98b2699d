//! Process managers' state and leases in PostgreSQL: a lease is granted to one node at a
//! time, renewed, and taken over with a higher epoch once expired; a holder that lost it
//! cannot commit (the fence), and a takeover waits for a guarded commit in flight; two
//! hosts on one database run a process manager on one node, each command sent once, and
//! the other takes over, durable timeouts included. Needs `STRATA_TEST_POSTGRES_URL` and the `postgres` feature;
//! says it is skipped without them. Each test runs in a database made for it.

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_tests_need_the_postgres_feature() {
    println!("skipped the postgres process-manager tests: built without the postgres feature");
}

#[cfg(feature = "postgres")]
mod with_postgres {
    use std::str::FromStr as _;
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;
    use strata_projection::{
        Acquired, LeaseError, LeaseTimings, Leases, PostgresHome, PostgresHomeOptions,
        ProcessManagers, RunnerState, check_fence,
    };
    use strata_store::{EventStore, MemoryStore};
    use tokio_postgres::NoTls;

    use crate::process::{Checkout, Cmd, Recorder};
    use crate::support::{WAIT, append, eventually};

    /// A database made for one test, dropped (with its connections) after it.
    struct Database {
        admin: tokio_postgres::Config,
        name: String,
    }

    impl Database {
        fn new(test: &str) -> Option<Self> {
            let url = match std::env::var("STRATA_TEST_POSTGRES_URL") {
                Ok(url) if !url.trim().is_empty() => url,
                _ => {
                    println!("skipped {test}: STRATA_TEST_POSTGRES_URL is unset");
                    return None;
                }
            };
            let admin = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
            let name = format!("strata_pm_test_{}", uuid::Uuid::new_v4().simple());
            run_admin(&admin, &format!("CREATE DATABASE \"{name}\""));
            Some(Self { admin, name })
        }

        fn config(&self) -> tokio_postgres::Config {
            let mut config = self.admin.clone();
            config.dbname(&self.name);
            config
        }

        async fn home(&self, node: &str, ttl: Duration) -> PostgresHome {
            let mut options = PostgresHomeOptions::default();
            options.lease_timings = LeaseTimings::with_ttl(ttl);
            PostgresHome::connect(self.config(), node, options)
                .await
                .expect("a home on a fresh database")
        }

        async fn client(&self) -> tokio_postgres::Client {
            let (client, connection) = self.config().connect(NoTls).await.expect("connect");
            tokio::spawn(connection);
            client
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            run_admin(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            );
        }
    }

    /// Runs one statement from a thread with a runtime of its own (also from `Drop`).
    fn run_admin(admin: &tokio_postgres::Config, sql: &str) {
        let admin = admin.clone();
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let (client, connection) = admin.connect(NoTls).await.expect("connect");
                tokio::spawn(connection);
                client
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
            });
        })
        .join()
        .expect("the admin statement ran");
    }

    fn granted(acquired: Acquired) -> strata_projection::Fence {
        match acquired {
            Acquired::Granted(fence) => fence,
            other => panic!("expected the lease, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_lease_is_held_by_one_node_and_renewed_by_it() {
        let Some(db) = Database::new("lease held and renewed") else {
            return;
        };
        let a = db.home("node-a", Duration::from_secs(5)).await.leases();
        let b = db.home("node-b", Duration::from_secs(5)).await.leases();
        let fence = granted(a.try_acquire("process/x").await.unwrap());
        assert_eq!((fence.holder.as_str(), fence.epoch), ("node-a", 1));
        match b.try_acquire("process/x").await.unwrap() {
            Acquired::HeldBy(held) => assert_eq!(held, fence),
            other => panic!("node-b must not get a held lease: {other:?}"),
        }
        assert!(a.renew(&fence).await.unwrap(), "the holder renews");
        assert!(
            !b.renew(&strata_projection::Fence {
                holder: "node-b".into(),
                ..fence.clone()
            })
            .await
            .unwrap(),
            "another node cannot renew it"
        );
        // Another lease is independent.
        granted(b.try_acquire("process/y").await.unwrap());
        // Released, it is free at once.
        a.release(&fence).await.unwrap();
        let taken = granted(b.try_acquire("process/x").await.unwrap());
        assert_eq!((taken.holder.as_str(), taken.epoch), ("node-b", 2));
    }

    #[tokio::test]
    async fn an_expired_lease_goes_to_another_node_and_fences_the_old_holder() {
        let Some(db) = Database::new("lease expiry and fencing") else {
            return;
        };
        let a = db.home("node-a", Duration::from_millis(300)).await.leases();
        let b = db.home("node-b", Duration::from_millis(300)).await.leases();
        let old = granted(a.try_acquire("process/x").await.unwrap());
        let client = db.client().await;
        check_fence(&client, &old)
            .await
            .expect("a current grant passes its fence");

        tokio::time::sleep(Duration::from_millis(450)).await;
        // Expired and not yet taken: a commit under it is refused already.
        assert!(matches!(
            check_fence(&client, &old).await,
            Err(LeaseError::Lost { .. })
        ));
        let new = granted(b.try_acquire("process/x").await.unwrap());
        assert_eq!((new.holder.as_str(), new.epoch), ("node-b", 2));
        assert!(
            !a.renew(&old).await.unwrap(),
            "the zombie cannot renew a superseded grant"
        );
        // The zombie's commit is refused; the new holder's passes.
        let mut zombie = db.client().await;
        let tx = zombie.transaction().await.unwrap();
        match check_fence(&tx, &old).await {
            Err(LeaseError::Lost { fence }) => assert_eq!(fence, old),
            other => panic!("the zombie's commit must be refused: {other:?}"),
        }
        tx.rollback().await.unwrap();
        check_fence(&client, &new)
            .await
            .expect("the new holder's fence");
    }

    #[tokio::test]
    async fn a_takeover_waits_for_a_guarded_commit_in_flight() {
        let Some(db) = Database::new("takeover waits for a guarded commit") else {
            return;
        };
        let a = db.home("node-a", Duration::from_millis(300)).await.leases();
        let b = db.home("node-b", Duration::from_millis(300)).await.leases();
        let fence = granted(a.try_acquire("process/x").await.unwrap());
        let mut holder = db.client().await;
        let tx = holder.transaction().await.unwrap();
        check_fence(&tx, &fence).await.expect("the fence holds");
        tokio::time::sleep(Duration::from_millis(450)).await;
        // The grant has expired, but the guarded transaction locked its row: the takeover
        // waits until that transaction ends, so it never overlaps a commit of the old grant.
        let takeover = tokio::spawn(async move { b.try_acquire("process/x").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!takeover.is_finished(), "the takeover waits for the commit");
        tx.commit().await.unwrap();
        let taken = granted(
            tokio::time::timeout(WAIT, takeover)
                .await
                .expect("the takeover ends after the commit")
                .unwrap()
                .unwrap(),
        );
        assert_eq!(taken.epoch, 2);
    }

    fn status_of(host: &ProcessManagers) -> strata_projection::ProcessStatus {
        host.status()
            .into_iter()
            .next()
            .expect("one process manager")
    }

    #[tokio::test]
    async fn a_process_manager_runs_on_the_lease_holder_and_another_node_takes_over() {
        let Some(db) = Database::new("process manager on two nodes") else {
            return;
        };
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let ttl = Duration::from_secs(1);
        let first = Arc::new(Recorder::default());
        let second = Arc::new(Recorder::default());
        let pay_within = Duration::from_secs(3600);
        let host_a = ProcessManagers::on_postgres(store.clone(), db.home("node-a", ttl).await);
        host_a
            .register(Arc::new(Checkout { pay_within }), first.clone())
            .unwrap();
        host_a.start();
        let host_b = ProcessManagers::on_postgres(store.clone(), db.home("node-b", ttl).await);
        host_b
            .register(Arc::new(Checkout { pay_within }), second.clone())
            .unwrap();
        host_b.start();

        for order in 1..=5 {
            append(&*store, &format!("order-{order}"), "Placed", json!({})).await;
        }
        assert!(
            eventually(WAIT, || first.count() + second.count() == 5).await,
            "five reservations sent"
        );
        let (holder, standby, holder_sent, standby_sent) = if first.count() > 0 {
            (&host_a, &host_b, &first, &second)
        } else {
            (&host_b, &host_a, &second, &first)
        };
        assert_eq!(
            (holder_sent.count(), standby_sent.count()),
            (5, 0),
            "one node sends everything"
        );
        let head = store.head().await.unwrap();
        assert!(
            eventually(WAIT, || {
                let s = status_of(standby);
                s.state == RunnerState::Standby && s.checkpoint == head
            })
            .await,
            "the other node stands by, showing the holder's checkpoint: {:?}",
            status_of(standby)
        );
        let lease = status_of(standby).lease.expect("a leased status");
        assert!(!lease.held_here);
        assert_eq!(lease.holder, status_of(holder).lease.unwrap().holder);

        // The holder goes away; the other takes over and sends only what is new.
        holder.shutdown().await;
        for order in 6..=8 {
            append(&*store, &format!("order-{order}"), "Placed", json!({})).await;
        }
        assert!(
            eventually(WAIT, || standby_sent.count() == 3).await,
            "the new holder sends the new reservations: {:?}",
            status_of(standby)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(holder_sent.count() + standby_sent.count(), 8);
        let mut ids: Vec<_> = first
            .sent
            .lock()
            .iter()
            .chain(second.sent.lock().iter())
            .map(|(command, context)| {
                assert!(matches!(command, Cmd::Reserve(_)));
                context.command_id
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "no command was sent twice");
        assert!(status_of(standby).lease.unwrap().held_here);
        standby.shutdown().await;
    }

    #[tokio::test]
    async fn a_durable_timeout_fires_once_on_postgres_after_the_holder_goes_away() {
        let Some(db) = Database::new("timeouts on postgres") else {
            return;
        };
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let ttl = Duration::from_secs(1);
        let pay_within = Duration::from_millis(1500);
        let first = Arc::new(Recorder::default());
        let host_a = ProcessManagers::on_postgres(store.clone(), db.home("node-a", ttl).await);
        host_a
            .register(Arc::new(Checkout { pay_within }), first.clone())
            .unwrap();
        host_a.start();
        append(&*store, "order-1", "Placed", json!({})).await;
        assert!(eventually(WAIT, || first.count() == 1).await);
        assert_eq!(status_of(&host_a).pending_timeouts, 1);
        // The holder stops before the deadline; another node, started only now, finds
        // the timeout in the database and fires it.
        host_a.shutdown().await;
        let second = Arc::new(Recorder::default());
        let host_b = ProcessManagers::on_postgres(store.clone(), db.home("node-b", ttl).await);
        host_b
            .register(Arc::new(Checkout { pay_within }), second.clone())
            .unwrap();
        host_b.start();
        assert!(
            eventually(WAIT, || second.count() == 1).await,
            "the timeout fires on the new holder: {:?}",
            status_of(&host_b)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!((first.count(), second.count()), (1, 1));
        assert!(matches!(second.sent.lock()[0].0, Cmd::Cancel(_)));
        let status = status_of(&host_b);
        assert_eq!(
            (status.instances, status.pending_timeouts, status.outbox),
            (0, 0, 0)
        );
        host_b.shutdown().await;
    }
}
