//! The schema's migrations: safe when processes start at once, confined to the `strata`
//! schema, and refusing a schema newer than the build.

use std::time::Duration;

use strata_store_postgres::{PostgresError, PostgresStore};

use crate::support::{Databases, connect, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opening_at_once_migrate_once() {
    let Some(databases) = Databases::new("stores_opening_at_once_migrate_once") else {
        return;
    };
    let config = databases.create().await;
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move {
                PostgresStore::connect_with(config, options(Duration::from_secs(1))).await
            })
        })
        .collect();
    for open in opens {
        open.await
            .expect("open task")
            .expect("every store opens while others migrate");
    }
    let client = connect(&config).await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM strata.schema_version ORDER BY version",
            &[],
        )
        .await
        .expect("read the schema versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1], "each migration is recorded exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_tables_are_left_alone() {
    let Some(databases) = Databases::new("other_clients_tables_are_left_alone") else {
        return;
    };
    let config = databases.create().await;
    let client = connect(&config).await;
    client
        .batch_execute(
            "CREATE TABLE public.events (position bigint PRIMARY KEY, note text);
             INSERT INTO public.events VALUES (1, 'not strata''s');",
        )
        .await
        .expect("another application's table");
    PostgresStore::connect_with(config.clone(), options(Duration::from_secs(1)))
        .await
        .expect("strata opens beside it");
    let note: String = client
        .query_one("SELECT note FROM public.events WHERE position = 1", &[])
        .await
        .expect("the other table is still there")
        .get(0);
    assert_eq!(note, "not strata's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let Some(databases) = Databases::new("a_newer_schema_is_refused") else {
        return;
    };
    let store = databases.store(options(Duration::from_secs(1))).await;
    let config = store.config().clone();
    store.close();
    let client = connect(&config).await;
    client
        .batch_execute("INSERT INTO strata.schema_version (version) VALUES (999)")
        .await
        .expect("pretend a newer build migrated");
    match PostgresStore::connect_with(config, options(Duration::from_secs(1))).await {
        Err(PostgresError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (999, 1));
        }
        Err(err) => panic!("expected a refusal of the newer schema, got {err}"),
        Ok(_) => panic!("a store opened on a schema newer than its build"),
    }
}
