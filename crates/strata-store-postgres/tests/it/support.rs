//! Fresh databases for tests: each is created on the server named by
//! `STRATA_TEST_POSTGRES_URL` and dropped (with its connections) when its owner is.

use std::str::FromStr as _;
use std::time::Duration;

use parking_lot::Mutex;
use strata_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;

/// The variable naming the server the tests use.
pub(crate) const URL_VARIABLE: &str = "STRATA_TEST_POSTGRES_URL";

/// The databases one test made; dropped with it.
pub(crate) struct Databases {
    admin: tokio_postgres::Config,
    names: Mutex<Vec<String>>,
}

impl Databases {
    /// The test's databases, or `None` (after saying the test is skipped) when no server
    /// is configured.
    pub(crate) fn new(test: &str) -> Option<Self> {
        let url = match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                println!("skipped {test}: {URL_VARIABLE} is unset (a postgres:// URL runs it)");
                return None;
            }
        };
        let admin = tokio_postgres::Config::from_str(&url)
            .unwrap_or_else(|err| panic!("{URL_VARIABLE} is not a PostgreSQL URL: {err}"));
        Some(Self {
            admin,
            names: Mutex::new(Vec::new()),
        })
    }

    /// Creates an empty database and returns the settings to connect to it.
    pub(crate) async fn create(&self) -> tokio_postgres::Config {
        let name = format!("strata_test_{}", uuid::Uuid::new_v4().simple());
        let client = connect(&self.admin).await;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|err| panic!("create test database {name}: {err}"));
        self.names.lock().push(name.clone());
        let mut config = self.admin.clone();
        config.dbname(&name);
        config
    }

    /// A fresh database with a store open on it.
    pub(crate) async fn store(&self, options: PostgresOptions) -> PostgresStore {
        let config = self.create().await;
        PostgresStore::connect_with(config, options)
            .await
            .unwrap_or_else(|err| panic!("open a store on a fresh database: {err}"))
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock());
        if names.is_empty() {
            return;
        }
        let admin = self.admin.clone();
        // Drop may run inside the test's runtime, which cannot be blocked on: drop the
        // databases from a thread with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop test databases");
            runtime.block_on(async {
                let client = connect(&admin).await;
                for name in names {
                    if let Err(err) = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await
                    {
                        eprintln!("could not drop test database {name}: {err}");
                    }
                }
            });
        });
        if dropper.join().is_err() {
            eprintln!("dropping the test databases panicked");
        }
    }
}

/// A plain connection, driven by a task of the current runtime.
pub(crate) async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = tokio::time::timeout(Duration::from_secs(30), config.connect(NoTls))
        .await
        .expect("connecting to PostgreSQL timed out")
        .unwrap_or_else(|err| panic!("connect to PostgreSQL: {err}"));
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away.
        let _ = connection.await;
    });
    client
}

/// Options for tests: the defaults, with a poll interval that tests can choose.
pub(crate) fn options(poll_interval: Duration) -> PostgresOptions {
    let mut options = PostgresOptions::default();
    options.poll_interval = poll_interval;
    options
}
