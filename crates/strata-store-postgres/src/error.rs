//! Errors of opening a PostgreSQL store. Once open, the store speaks
//! [`strata_store::StoreError`]; this type converts into it.

use strata_store::StoreError;

/// Why a PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection URL did not parse.
    #[error("invalid postgres connection url: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("cannot build the postgres connection pool: {0}")]
    Pool(String),
    /// No connection to the server could be made.
    #[error("cannot connect to postgres: {0}")]
    Connect(String),
    /// Preparing or recording the schema migrations failed.
    #[error("cannot migrate the strata schema: {0}")]
    Migrate(#[source] tokio_postgres::Error),
    /// One migration's SQL failed; nothing of it was applied.
    #[error("migration {version} of the strata schema failed: {error}")]
    Migration {
        /// The schema version the migration would have reached.
        version: u32,
        /// The server's error.
        #[source]
        error: tokio_postgres::Error,
    },
    /// The database holds a schema newer than this build knows: a newer strata
    /// migrated it. Refusing is safer than writing in an old layout.
    #[error(
        "the strata schema is at version {found}, newer than version {supported} that this build supports"
    )]
    SchemaTooNew {
        /// The version found.
        found: u32,
        /// The latest version this build knows.
        supported: u32,
    },
    /// The primary's system identifier or head could not be read (for checking its
    /// standby).
    #[error("cannot read the primary's system identifier and head: {0}")]
    Primary(#[source] tokio_postgres::Error),
    /// The server given as the standby is not a copy of the primary: it belongs to
    /// another database cluster. Point it at a standby made from the primary.
    #[error(
        "the replica is not a standby of the primary: its system identifier is {standby}, the primary's is {primary}"
    )]
    NotAStandby {
        /// The primary's system identifier.
        primary: i64,
        /// The other server's.
        standby: i64,
    },
    /// The standby could not be reached, or had not replayed the database, the schema or
    /// the primary's head, within the wait. Check that it runs and streams from the
    /// primary.
    #[error("the standby is not ready after {waited:?}: {reason}")]
    StandbyNotReady {
        /// How long opening waited.
        waited: std::time::Duration,
        /// The last reason it was not ready.
        reason: String,
    },
}

impl PostgresError {
    pub(crate) fn migrate(error: tokio_postgres::Error) -> Self {
        PostgresError::Migrate(error)
    }
}

impl From<PostgresError> for StoreError {
    fn from(error: PostgresError) -> Self {
        StoreError::Backend(Box::new(error))
    }
}
