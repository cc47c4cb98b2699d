//! The one seam between the shop's queries and the database its read models live in:
//! [`Reads`] answers every query the service makes (and waits for a consistency token)
//! from SQLite (`Projections`) or, with the `postgres` feature, from PostgreSQL
//! (`PostgresProjections`). Both answer the same for the same events.
//!
//! It must not hold a rule of the shop: the service decides pages and cursors, the models
//! decide their SQL; this only routes a call to one of them.

use std::time::Duration;

use async_trait::async_trait;
use strata_core::Position;
use strata_projection::{Projections, ReadModelHost};

use crate::ShopError;
use crate::read_models::{
    CATALOG, Catalog, DAILY_SALES, DailySales, DaySales, ORDERS, OrderSummaries, OrderSummary,
    OrderView, PRODUCT_SEARCH, ProductSearch, ProductView, SearchHit,
};

/// The shop's read side: waits and queries, whatever stores the models.
#[async_trait]
pub(crate) trait Reads: Send + Sync + 'static {
    /// The host, for waits and status.
    fn host(&self) -> &dyn ReadModelHost;

    /// The order `id`, if the model has it.
    async fn order(&self, id: String) -> Result<Option<OrderView>, ShopError>;

    /// At most `limit` orders of `customer` created after position `after`.
    async fn customer_orders(
        &self,
        customer: String,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OrderSummary>, ShopError>;

    /// At most `limit` orders of any customer created before position `before` (none:
    /// from the latest), newest first.
    async fn orders(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OrderSummary>, ShopError>;

    /// The product `sku`, if the catalog has it.
    async fn product(&self, sku: String) -> Result<Option<ProductView>, ShopError>;

    /// At most `limit` products whose sku sorts after `after`.
    async fn products(&self, after: String, limit: usize) -> Result<Vec<ProductView>, ShopError>;

    /// At most `limit` hits for `text` after the first `offset`, best first.
    async fn search(
        &self,
        text: String,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SearchHit>, ShopError>;

    /// At most `limit` days with sales after the day `after`.
    async fn days(&self, after: String, limit: usize) -> Result<Vec<DaySales>, ShopError>;

    /// Waits until `name` has applied everything up to `position`.
    async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ShopError> {
        Ok(self.host().wait_for(name, position, timeout).await?)
    }

    /// The checkpoint of `name` (0 if it is unknown).
    fn checkpoint(&self, name: &str) -> Position {
        self.host().checkpoint(name).unwrap_or(Position(0))
    }
}

/// The read models in SQLite.
pub(crate) struct SqliteReads(pub(crate) Projections);

#[async_trait]
impl Reads for SqliteReads {
    fn host(&self) -> &dyn ReadModelHost {
        &self.0
    }

    async fn order(&self, id: String) -> Result<Option<OrderView>, ShopError> {
        Ok(self
            .0
            .point_query(ORDERS, |conn| OrderSummaries::order(conn, &id))?)
    }

    async fn customer_orders(
        &self,
        customer: String,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OrderSummary>, ShopError> {
        Ok(self
            .0
            .query(ORDERS, move |conn| {
                OrderSummaries::customer_orders(conn, &customer, after, limit)
            })
            .await?)
    }

    async fn orders(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OrderSummary>, ShopError> {
        Ok(self
            .0
            .query(ORDERS, move |conn| {
                OrderSummaries::orders(conn, before, limit)
            })
            .await?)
    }

    async fn product(&self, sku: String) -> Result<Option<ProductView>, ShopError> {
        Ok(self
            .0
            .point_query(CATALOG, |conn| Catalog::product(conn, &sku))?)
    }

    async fn products(&self, after: String, limit: usize) -> Result<Vec<ProductView>, ShopError> {
        Ok(self
            .0
            .query(CATALOG, move |conn| Catalog::products(conn, &after, limit))
            .await?)
    }

    async fn search(
        &self,
        text: String,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SearchHit>, ShopError> {
        Ok(self
            .0
            .query(PRODUCT_SEARCH, move |conn| {
                ProductSearch::search(conn, &text, offset, limit)
            })
            .await?)
    }

    async fn days(&self, after: String, limit: usize) -> Result<Vec<DaySales>, ShopError> {
        Ok(self
            .0
            .query(DAILY_SALES, move |conn| {
                DailySales::days(conn, &after, limit)
            })
            .await?)
    }
}

#[cfg(feature = "postgres")]
pub(crate) use postgres::PostgresReads;

#[cfg(feature = "postgres")]
mod postgres {
    use futures::FutureExt as _;
    use strata_projection::{PostgresProjections, ProjectionError, ReadModelHost};

    use super::Reads;
    use crate::ShopError;
    use crate::read_models::postgres::{self as pg, QueryError};
    use crate::read_models::{
        CATALOG, DAILY_SALES, DaySales, ORDERS, OrderSummary, OrderView, PRODUCT_SEARCH,
        ProductView, SearchHit,
    };

    /// The read models in PostgreSQL.
    pub(crate) struct PostgresReads(pub(crate) PostgresProjections);

    /// Runs one of `pg`'s queries on the answering schema of `name`.
    macro_rules! query {
        ($self:ident, $name:expr, |$client:ident| $call:expr) => {{
            let answer = $self
                .0
                .query($name, move |$client| async move { Ok($call.await) }.boxed())
                .await?;
            answer.map_err(|err| match err {
                QueryError::Postgres(source) => ShopError::ReadModel(ProjectionError::Postgres {
                    context: format!("query on projection {} failed", $name),
                    source: source.into(),
                }),
                QueryError::Invalid(message) => ShopError::Internal(message),
            })
        }};
    }

    #[async_trait::async_trait]
    impl Reads for PostgresReads {
        fn host(&self) -> &dyn ReadModelHost {
            &self.0
        }

        async fn order(&self, id: String) -> Result<Option<OrderView>, ShopError> {
            query!(self, ORDERS, |client| pg::order(client, &id))
        }

        async fn customer_orders(
            &self,
            customer: String,
            after: u64,
            limit: usize,
        ) -> Result<Vec<OrderSummary>, ShopError> {
            query!(self, ORDERS, |client| pg::customer_orders(
                client, &customer, after, limit
            ))
        }

        async fn orders(
            &self,
            before: Option<u64>,
            limit: usize,
        ) -> Result<Vec<OrderSummary>, ShopError> {
            query!(self, ORDERS, |client| pg::orders(client, before, limit))
        }

        async fn product(&self, sku: String) -> Result<Option<ProductView>, ShopError> {
            query!(self, CATALOG, |client| pg::product(client, &sku))
        }

        async fn products(
            &self,
            after: String,
            limit: usize,
        ) -> Result<Vec<ProductView>, ShopError> {
            query!(self, CATALOG, |client| pg::products(client, &after, limit))
        }

        async fn search(
            &self,
            text: String,
            offset: usize,
            limit: usize,
        ) -> Result<Vec<SearchHit>, ShopError> {
            query!(self, PRODUCT_SEARCH, |client| pg::search(
                client, &text, offset, limit
            ))
        }

        async fn days(&self, after: String, limit: usize) -> Result<Vec<DaySales>, ShopError> {
            query!(self, DAILY_SALES, |client| pg::days(client, &after, limit))
        }
    }
}
