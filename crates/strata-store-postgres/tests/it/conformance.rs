//! The shared conformance suite against PostgreSQL, each store in a fresh database.

use std::time::Duration;

use async_trait::async_trait;
use strata_store::conformance::Backend;
use strata_store_postgres::PostgresStore;

use crate::support::{Databases, options};

struct Postgres {
    databases: Databases,
}

#[async_trait]
impl Backend for Postgres {
    type Store = PostgresStore;

    async fn fresh(&self) -> PostgresStore {
        self.databases
            .store(options(Duration::from_millis(200)))
            .await
    }

    async fn reopen(&self, store: PostgresStore) -> Option<PostgresStore> {
        let config = store.config().clone();
        store.close();
        drop(store);
        Some(
            PostgresStore::connect_with(config, options(Duration::from_millis(200)))
                .await
                .expect("reopen the store"),
        )
    }
}

fn backend() -> Option<Postgres> {
    Some(Postgres {
        databases: Databases::new("the postgres conformance case")?,
    })
}

strata_store::conformance_tests!(optional backend);
