//! `strata serve --read-store`: where the shop's read models and their checkpoints live —
//! SQLite files in the data directory (the default) or a PostgreSQL database given by a
//! `postgres://` URL, the event store's or another one. It opens the host, builds the
//! shop on it, and hands the server its read side.
//!
//! It wires components together and holds no read-model logic of its own.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;

use anyhow::Context as _;
use strata_domain::CommandHandler;
use strata_projection::{
    PostgresHome, PostgresHomeOptions, PostgresProjections, ProcessManagers, Projections,
};
use strata_server::ReadSide;
use strata_shop::{FakePaymentProvider, Shop};
use strata_store::EventStore;

use crate::serve::redacted;

/// The host of the shop's read models.
pub(crate) enum ReadStore {
    /// SQLite files in a directory of the data directory.
    Sqlite(Projections),
    /// A PostgreSQL database (its URL, without the password, kept for messages).
    Postgres(PostgresProjections, String),
}

impl ReadStore {
    /// The host `url` names (`None`: SQLite in `dir`). Connects to PostgreSQL and creates
    /// the `strata_read` schema there if it is missing. `node` names this server when
    /// several share the event store: each PostgreSQL read model then runs on one of them
    /// at a time, under a lease kept in the read store's own database (the fence is
    /// checked in the transaction of every batch, so it must live beside the models).
    pub(crate) async fn open(
        url: Option<&str>,
        store: Arc<dyn EventStore>,
        dir: &Path,
        node: Option<&str>,
    ) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self::Sqlite(Projections::new(store, dir)));
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!(
                "--read-store takes a postgres:// URL, not {:?}",
                redacted(url)
            );
        }
        let host = PostgresProjections::connect(store, url)
            .await
            .with_context(|| format!("cannot open the read store at {}", redacted(url)))?;
        if let Some(node) = node {
            let config = tokio_postgres::Config::from_str(url)
                .with_context(|| format!("--read-store {} is not valid", redacted(url)))?;
            let home = PostgresHome::connect(config, node, PostgresHomeOptions::default())
                .await
                .with_context(|| {
                    format!("cannot keep the read models' leases in {}", redacted(url))
                })?;
            host.set_leases(Some(home.leases()));
        }
        Ok(Self::Postgres(host, redacted(url)))
    }

    /// The shop, its read models registered here and its checkout with `processes`.
    pub(crate) async fn shop(
        &self,
        handler: Arc<CommandHandler>,
        processes: &ProcessManagers,
    ) -> anyhow::Result<Shop> {
        let provider = Arc::new(FakePaymentProvider::default());
        let shop = match self {
            Self::Sqlite(projections) => {
                Shop::new(handler, projections.clone(), processes, provider)
            }
            Self::Postgres(projections, _) => {
                Shop::on_postgres(handler, projections.clone(), processes, provider).await
            }
        };
        shop.context("cannot set up the shop")
    }

    /// Starts the read models' runners.
    pub(crate) fn start(&self) {
        match self {
            Self::Sqlite(projections) => projections.start(),
            Self::Postgres(projections, _) => projections.start(),
        }
    }

    /// Where the read models are, for the log.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Sqlite(projections) => format!("sqlite in {}", projections.dir().display()),
            Self::Postgres(_, url) => url.clone(),
        }
    }

    /// The read side the server shows and shuts down: these read models and `processes`.
    pub(crate) fn read_side(self, processes: ProcessManagers) -> ReadSide {
        match self {
            Self::Sqlite(projections) => ReadSide::new(projections, Some(processes)),
            Self::Postgres(projections, _) => ReadSide::new(projections, Some(processes)),
        }
    }
}
