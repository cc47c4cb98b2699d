//! The PostgreSQL scenarios: bank-account commands (load, decide, append one event)
//! through strata's command handler on the PostgreSQL store from concurrent clients, and
//! bulk appends; each beside its ceiling, raw INSERTs of the same rows into the same
//! `strata.events` table with no event-store logic at all (no position allocator, no
//! version check, no read). Every run works in a database of its own, created on the
//! server named by `--url` and dropped afterwards.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_core::{EventType, ExpectedVersion, NewEvent};
use strata_domain::{CommandContext, CommandHandler, HandlerOptions, MemorySnapshots};
use strata_store::EventStore;
use strata_store_postgres::{PostgresOptions, PostgresStore};
use tokio::time::Instant;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::args::PostgresArgs;
use crate::bank::{self, Account, COMMANDS_PER_ACCOUNT};
use crate::error::{BenchError, Context as _, Result, ensure};
use crate::fixtures::stream;
use crate::load::closed_loop;
use crate::report::{Ceiling, RawCeiling, ScenarioResult};
use crate::stats::{Summary, rate};

/// Columns of one row of `strata.events` as the raw ceiling inserts it.
const COLUMNS: usize = 8;

/// Runs every PostgreSQL scenario: for each client count its raw ceiling then the
/// commands, then the bulk ceiling then the bulk appends.
pub(crate) async fn postgres(args: &PostgresArgs) -> Result<Vec<ScenarioResult>> {
    let server = tokio_postgres::Config::from_str(&args.url)
        .with_context(|| format!("{:?} is not a postgres:// URL", args.url))?;
    let window = Duration::from_secs_f64(args.seconds);
    let mut results = Vec::new();
    for &clients in &args.clients {
        let clients = clients.max(1);
        let raw = {
            let database = Database::create(&server).await?;
            let raw = raw_commands(&database, clients, window).await;
            database.drop().await?;
            raw?
        };
        let database = Database::create(&server).await?;
        let result = commands(&database, clients, window, &raw, args.cached_aggregates).await;
        database.drop().await?;
        results.push(result?);
    }
    if args.bulk_events > 0 {
        let raw = {
            let database = Database::create(&server).await?;
            let raw = raw_bulk(&database, args).await;
            database.drop().await?;
            raw?
        };
        let database = Database::create(&server).await?;
        let result = bulk(&database, args, &raw).await;
        database.drop().await?;
        results.push(result?);
    }
    Ok(results)
}

/// A database made for one run, migrated to the strata schema.
struct Database {
    server: tokio_postgres::Config,
    name: String,
    config: tokio_postgres::Config,
}

impl Database {
    async fn create(server: &tokio_postgres::Config) -> Result<Self> {
        let name = format!("strata_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(server).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let mut config = server.clone();
        config.dbname(&name);
        // The schema, made by the store's own migrations.
        let store = PostgresStore::connect_with(config.clone(), PostgresOptions::default())
            .await
            .with_context(|| format!("cannot open a store in the database {name}"))?;
        store.close();
        Ok(Self {
            server: server.clone(),
            name,
            config,
        })
    }

    async fn store(&self, connections: usize) -> Result<PostgresStore> {
        let mut options = PostgresOptions::default();
        options.max_connections = connections;
        PostgresStore::connect_with(self.config.clone(), options)
            .await
            .with_context(|| format!("cannot open a store in the database {}", self.name))
    }

    async fn drop(self) -> Result<()> {
        let admin = connect(&self.server).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("cannot drop the database {}", self.name))
    }
}

/// A connection driven by a task of its own.
async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .context("cannot connect to postgres")?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away.
        let _ = connection.await;
    });
    Ok(client)
}

/// The bank account's events as the command handler stores them, for the raw ceiling:
/// same type names, payloads and metadata keys.
fn raw_event(client: usize, seq: u64, context: &CommandContext) -> (String, NewEvent) {
    let (account, command) = bank::command(client, seq);
    let (event_type, data) = match command {
        bank::AccountCommand::Open => ("Opened", serde_json::json!({})),
        bank::AccountCommand::Deposit(amount) => {
            ("Deposited", serde_json::json!({ "amount": amount }))
        }
        bank::AccountCommand::Withdraw(amount) => {
            ("Withdrew", serde_json::json!({ "amount": amount }))
        }
    };
    let event = NewEvent::json(EventType::new(event_type).expect("a valid type"), &data)
        .with_metadata(&context.event_metadata(1));
    (format!("account-{account}"), event)
}

/// The raw ceiling of the commands: `clients` connections, each inserting one event row
/// per autocommitted statement (one commit each), with positions from a counter in this
/// process: what the database commits at that concurrency with no event store around.
async fn raw_commands(database: &Database, clients: usize, window: Duration) -> Result<RawCeiling> {
    let statement_text = insert_values(1);
    let position = Arc::new(AtomicU64::new(0));
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = connect(&database.config).await?;
        let statement = client
            .prepare(&statement_text)
            .await
            .context("cannot prepare the raw insert")?;
        connections.push(Arc::new((client, statement)));
    }
    let outcome = closed_loop(clients, window, |c| {
        let connection = connections[c].clone();
        let position = position.clone();
        move |seq| {
            let connection = connection.clone();
            let position = position.clone();
            async move {
                let context = CommandContext::new();
                let (stream, event) = raw_event(c, seq, &context);
                let version = (seq % COMMANDS_PER_ACCOUNT + 1) as i64;
                let position = position.fetch_add(1, Ordering::Relaxed) as i64 + 1;
                let row = Row::of(&stream, version, position, &event);
                let (client, statement) = &*connection;
                client
                    .execute(statement, &row.params())
                    .await
                    .context("the raw insert failed")?;
                Ok(1)
            }
        }
    })
    .await;
    ensure!(
        outcome.errors == 0,
        "the raw insert failed: {}",
        outcome.first_error.unwrap_or_default()
    );
    Ok(RawCeiling {
        events_per_s: outcome.events_per_s(),
        p50_ms: outcome.latency.p50_ms,
        clients,
        rows_per_statement: 1,
    })
}

/// Bank-account commands through strata's command handler: load the account, decide,
/// append one event expecting the loaded version (group-committed by the store).
async fn commands(
    database: &Database,
    clients: usize,
    window: Duration,
    raw: &RawCeiling,
    cached_aggregates: usize,
) -> Result<ScenarioResult> {
    let store = database.store(clients + 1).await?;
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let handler = Arc::new(
        CommandHandler::new(shared, Arc::new(MemorySnapshots::new())).with_options(
            HandlerOptions {
                cached_aggregates,
                ..HandlerOptions::default()
            },
        ),
    );
    let outcome = closed_loop(clients, window, |c| {
        let handler = handler.clone();
        move |seq| {
            let handler = handler.clone();
            async move {
                let (account, command) = bank::command(c, seq);
                handler
                    .handle::<Account>(&account, &command, &CommandContext::new())
                    .await
                    .with_context(|| format!("the command to account {account} failed"))?;
                Ok(1)
            }
        }
    })
    .await;
    store.close();
    Ok(ScenarioResult::new(
        format!("pg_bank_commands_{clients}"),
        Some(outcome.events_per_s()),
        &outcome.latency,
        "command",
    )
    .against(&Ceiling::RawInsert(raw.clone()))
    .with("commands_per_s", outcome.ops_per_s())
    .with("clients", clients)
    .with("cached_aggregates", cached_aggregates)
    .with("seconds", window.as_secs_f64())
    .with("errors", outcome.errors)
    .with("first_error", outcome.first_error))
}

/// The bulk workload: `bulk_events` deposits to streams of `batch` events each, every
/// event built (with its id) before the clock starts.
fn bulk_batches(args: &PostgresArgs) -> Vec<(String, Vec<NewEvent>)> {
    let batch = args.batch.max(1);
    let context = CommandContext::new();
    let mut batches = Vec::new();
    let mut made = 0;
    while made < args.bulk_events {
        let count = batch.min(args.bulk_events - made);
        let name = format!("account-bulk{}", batches.len());
        let events = (0..count)
            .map(|i| raw_event(0, 1 + i % (COMMANDS_PER_ACCOUNT - 2), &context).1)
            .collect();
        batches.push((name, events));
        made += count;
    }
    batches
}

/// The raw ceiling of bulk appends: the same events inserted with one multi-row
/// `INSERT ... VALUES` per batch, one connection, one commit per batch.
async fn raw_bulk(database: &Database, args: &PostgresArgs) -> Result<RawCeiling> {
    let batches = bulk_batches(args);
    let client = connect(&database.config).await?;
    let mut statements = std::collections::HashMap::new();
    let mut samples = Vec::with_capacity(batches.len());
    let mut position = 0;
    let started = Instant::now();
    for (stream, events) in &batches {
        let rows = events.len();
        if let std::collections::hash_map::Entry::Vacant(entry) = statements.entry(rows) {
            let statement = client
                .prepare(&insert_values(rows))
                .await
                .context("cannot prepare the raw multi-row insert")?;
            entry.insert(statement);
        }
        let rows: Vec<Row> = events
            .iter()
            .enumerate()
            .map(|(i, event)| Row::of(stream, i as i64 + 1, position + i as i64 + 1, event))
            .collect();
        position += rows.len() as i64;
        let params: Vec<&(dyn ToSql + Sync)> = rows.iter().flat_map(Row::params).collect();
        let sent = Instant::now();
        client
            .execute(&statements[&events.len()], &params)
            .await
            .context("the raw multi-row insert failed")?;
        samples.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    Ok(RawCeiling {
        events_per_s: rate(args.bulk_events as f64, elapsed),
        p50_ms: Summary::of(&mut samples).p50_ms,
        clients: 1,
        rows_per_statement: args.batch,
    })
}

/// Bulk appends through the store: each batch one append to a new stream, one at a
/// time.
async fn bulk(
    database: &Database,
    args: &PostgresArgs,
    raw: &RawCeiling,
) -> Result<ScenarioResult> {
    let batches = bulk_batches(args);
    let store = database.store(2).await?;
    let mut samples = Vec::with_capacity(batches.len());
    let started = Instant::now();
    for (name, events) in batches {
        let sent = Instant::now();
        store
            .append(&stream(name), ExpectedVersion::NoStream, events)
            .await
            .map_err(BenchError::from)?;
        samples.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    store.close();
    Ok(ScenarioResult::new(
        "pg_append_bulk",
        Some(rate(args.bulk_events as f64, elapsed)),
        &Summary::of(&mut samples),
        "append",
    )
    .against(&Ceiling::RawInsert(raw.clone()))
    .with("batch", args.batch)
    .with("events", args.bulk_events)
    .with("seconds", elapsed.as_secs_f64()))
}

/// `INSERT INTO strata.events ... VALUES` with `rows` rows of parameters.
fn insert_values(rows: usize) -> String {
    let mut text = String::from(
        "INSERT INTO strata.events \
         (position, stream, version, id, type, category, data, metadata, recorded_at) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            text.push(',');
        }
        let p = row * COLUMNS;
        text.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, now())",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8
        ));
    }
    text
}

/// One row of the raw inserts, owning its values.
struct Row {
    position: i64,
    stream: String,
    version: i64,
    id: uuid::Uuid,
    event_type: String,
    category: String,
    data: Vec<u8>,
    metadata: Vec<u8>,
}

impl Row {
    fn of(stream: &str, version: i64, position: i64, event: &NewEvent) -> Self {
        Self {
            position,
            stream: stream.to_owned(),
            version,
            id: event.id.0,
            event_type: event.event_type.as_str().to_owned(),
            category: stream.split('-').next().unwrap_or(stream).to_owned(),
            data: event.data.to_vec(),
            metadata: event.metadata.to_vec(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); COLUMNS] {
        [
            &self.position,
            &self.stream,
            &self.version,
            &self.id,
            &self.event_type,
            &self.category,
            &self.data,
            &self.metadata,
        ]
    }
}
