//! The bank-account comparison on cqrs-es with postgres-es: the same aggregate and the
//! same command sequence as `strata bench postgres` (open, seven deposits, a withdrawal,
//! a deposit, then a new account), from 1, 8 and 32 closed-loop clients, each command
//! loading the aggregate from its events, deciding and committing one event.
//!
//! Usage: strata-peer-cqrs-es URL [--clients 1,8,32] [--seconds 5]
//! Prints one JSON line per client count. The database at URL gets a fresh `events`
//! table per run (any old one is dropped).

use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::{PostgresCqrs, postgres_cqrs};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;

const COMMANDS_PER_ACCOUNT: u64 = 10;
const DEPOSIT: i64 = 100;
const WITHDRAWAL: i64 = 50;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    open: bool,
    balance: i64,
}

#[derive(Debug, Clone, Copy)]
enum AccountCommand {
    Open,
    Deposit(i64),
    Withdraw(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountEvent {
    Opened,
    Deposited { amount: i64 },
    Withdrew { amount: i64 },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            AccountEvent::Opened => "Opened",
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrew { .. } => "Withdrew",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("the balance is too low")]
    InsufficientFunds,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AccountCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AccountError> {
        let event = match (command, self.open) {
            (AccountCommand::Open, true) => return Err(AccountError::AlreadyOpen),
            (AccountCommand::Open, false) => AccountEvent::Opened,
            (_, false) => return Err(AccountError::NotOpen),
            (AccountCommand::Deposit(amount), true) => AccountEvent::Deposited { amount },
            (AccountCommand::Withdraw(amount), true) if amount > self.balance => {
                return Err(AccountError::InsufficientFunds);
            }
            (AccountCommand::Withdraw(amount), true) => AccountEvent::Withdrew { amount },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Opened => self.open = true,
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrew { amount } => self.balance -= amount,
        }
    }
}

/// Client `client`'s `seq`-th command: the account it goes to and what it asks.
fn command(client: usize, seq: u64) -> (String, AccountCommand) {
    let account = format!("c{client}n{}", seq / COMMANDS_PER_ACCOUNT);
    let command = match seq % COMMANDS_PER_ACCOUNT {
        0 => AccountCommand::Open,
        8 => AccountCommand::Withdraw(WITHDRAWAL),
        _ => AccountCommand::Deposit(DEPOSIT),
    };
    (account, command)
}

/// The table postgres-es documents (its `db/init.sql`).
const SCHEMA: &str = "
DROP TABLE IF EXISTS events;
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);";

struct Args {
    url: String,
    clients: Vec<usize>,
    seconds: f64,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut clients = vec![1, 8, 32];
    let mut seconds = 5.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--clients" => {
                let list = args.next().ok_or("--clients needs a list")?;
                clients = list
                    .split(',')
                    .map(|n| n.parse().map_err(|_| format!("bad client count {n:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("bad seconds {value:?}"))?;
            }
            other if url.is_none() && !other.starts_with("--") => url = Some(other.to_owned()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Args {
        url: url.ok_or("usage: strata-peer-cqrs-es URL [--clients 1,8,32] [--seconds 5]")?,
        clients,
        seconds,
    })
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    for &clients in &args.clients {
        if let Err(message) = run(&args.url, clients.max(1), args.seconds).await {
            eprintln!("cqrs-es with {clients} clients: {message}");
            std::process::exit(1);
        }
    }
}

async fn run(url: &str, clients: usize, seconds: f64) -> Result<(), String> {
    let pool = PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect(url)
        .await
        .map_err(|err| format!("cannot connect to {url}: {err}"))?;
    sqlx::raw_sql(SCHEMA)
        .execute(&pool)
        .await
        .map_err(|err| format!("cannot create the events table: {err}"))?;
    let cqrs: std::sync::Arc<PostgresCqrs<Account>> =
        std::sync::Arc::new(postgres_cqrs(pool.clone(), Vec::new(), ()));
    let window = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let window_start = start + window / 10;
    let end = window_start + window;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let cqrs = cqrs.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut seq = 0;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let (account, command) = command(client, seq);
                seq += 1;
                let result = cqrs.execute(&account, command).await;
                let done = Instant::now();
                match result {
                    Ok(()) if done >= window_start && done < end => {
                        samples.push(done - started);
                    }
                    Ok(()) => {}
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| err.to_string());
                        if errors >= 100 {
                            break;
                        }
                    }
                }
            }
            (samples, errors, first_error)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (s, e, f) = task
            .await
            .map_err(|err| format!("a client failed: {err}"))?;
        samples.extend(s);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    pool.close().await;
    samples.sort_unstable();
    let percentile = |p: f64| -> Option<f64> {
        if samples.is_empty() || (p > 50.0 && samples.len() < 1000) {
            return None;
        }
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        Some(samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0)
    };
    let line = serde_json::json!({
        "impl": "cqrs-es",
        "scenario": format!("bank_commands_{clients}"),
        "clients": clients,
        "commands_per_s": samples.len() as f64 / window.as_secs_f64(),
        "p50_ms": percentile(50.0),
        "p99_ms": percentile(99.0),
        "samples": samples.len(),
        "errors": errors,
        "first_error": first_error,
        "seconds": seconds,
    });
    println!("{line}");
    Ok(())
}
