//! [`RelayError`]: everything a relay can fail on. It must not carry broker client types,
//! so the API stays the same whichever brokers are compiled in.

use std::path::PathBuf;

use strata_core::Position;
use strata_store::StoreError;

/// What went wrong in a relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A `--relay` URL could not be read: fix the URL.
    #[error("invalid relay url {url}: {reason}")]
    InvalidUrl {
        /// The URL as given, credentials removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names a broker this build leaves out (its cargo feature is off).
    #[error("relay url {url}: this build has no {broker} support")]
    BrokerNotBuilt {
        /// The URL as given, credentials removed.
        url: String,
        /// The broker's name.
        broker: &'static str,
    },
    /// A relay name is not 1 to 64 of `a-z 0-9 _` (it names a file).
    #[error("invalid relay name {0:?}: use 1 to 64 of a-z, 0-9 and _")]
    InvalidName(String),
    /// Two relays share a name (and so a checkpoint file).
    #[error("relay {0} is already running")]
    AlreadyRunning(String),
    /// No relay has this name.
    #[error("no relay named {0}")]
    Unknown(String),
    /// The broker refused, dropped or did not confirm something; the relay reconnects and
    /// publishes again from its checkpoint.
    #[error("{broker} at {target}: {message}")]
    Broker {
        /// The broker's name (`nats`, `amqp`, `sns`, `sqs`).
        broker: &'static str,
        /// Where it is (credentials removed).
        target: String,
        /// What happened.
        message: String,
    },
    /// A message is not an envelope this build reads (another format, or not an event).
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    /// A remote read model's file was built by another projection or version: delete it
    /// to build it again from the broker.
    #[error("read model {}: built by {found}, not {expected}", path.display())]
    ReadModelMismatch {
        /// The file.
        path: PathBuf,
        /// The projection and version that built it.
        found: String,
        /// The projection and version opening it.
        expected: String,
    },
    /// A remote read model could not be written for a passing reason; it retries.
    #[error("read model {}: {message}", path.display())]
    ReadModel {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// The projection refused an event and its policy is to stop: the read side stops
    /// until an operator looks.
    #[error("the projection refused position {position}: {message}")]
    Apply {
        /// The refused event's position.
        position: Position,
        /// The projection's error.
        message: String,
    },
    /// A remote read model met an event other than the one it holds at the same
    /// stream version: the broker carries another log than the one the model was built
    /// from (another store, or a store made again). The read side stops; rebuild the
    /// model (delete its file) against the right broker.
    #[error(
        "stream {stream} version {version} is event {applied} in the read model but {delivered} in the broker: the broker carries another log"
    )]
    ForeignEvent {
        /// The stream.
        stream: String,
        /// The version both claim.
        version: u64,
        /// The event id the read model took in at that version.
        applied: String,
        /// The event id the broker delivered for it.
        delivered: String,
    },
    /// A relay's checkpoint in a shared PostgreSQL database could not be read or
    /// written; the relay retries.
    #[error("relay {name}: its checkpoint in postgres: {message}")]
    SharedCheckpoint {
        /// The relay (or the schema, while migrating).
        name: String,
        /// What failed.
        message: String,
    },
    /// The relay's lease went to another server before its checkpoint was stored: the
    /// checkpoint is left to the new holder, and this server stands by.
    #[error("relay {name}: {fence} was lost; the checkpoint was not stored")]
    LeaseLost {
        /// The relay.
        name: String,
        /// The grant that was lost.
        fence: String,
    },
    /// The checkpoint file could not be opened, read or written; the relay retries.
    #[error("relay checkpoint {}: {source}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// An SQS consumer's read model could not be opened, set up or written (its
    /// checkpoint is in the same file and transaction); nothing of the batch was applied.
    #[error("read model {}: {source}", path.display())]
    ConsumerReadModel {
        /// The read model's SQLite file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The directory that holds the checkpoints could not be created.
    #[error("relay checkpoint directory {}: {source}", path.display())]
    CheckpointDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading the event log failed; the relay retries from its checkpoint.
    #[error("relay cannot read the event log: {0}")]
    Store(#[from] StoreError),
    /// The checkpoint is beyond the log's head: the log lost events the relay had
    /// published, or the checkpoint belongs to another store. The relay stops until an
    /// operator looks; running from it would skip events.
    #[error("relay checkpoint {checkpoint} is beyond the log's head {head}")]
    CheckpointAheadOfLog {
        /// The stored checkpoint.
        checkpoint: Position,
        /// The log's head.
        head: Position,
    },
    /// A wait on a relay's checkpoint ran out of time.
    #[error("relay {name} did not reach position {position} in time (at {checkpoint})")]
    Timeout {
        /// The relay.
        name: String,
        /// The position waited for.
        position: Position,
        /// Where its checkpoint was.
        checkpoint: Position,
    },
    /// The relay stopped for good (see its status) before reaching what was waited for.
    #[error("relay {name} stopped: {cause}")]
    Stopped {
        /// The relay.
        name: String,
        /// Why it stopped.
        cause: String,
    },
}
