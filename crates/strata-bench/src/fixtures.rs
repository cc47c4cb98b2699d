//! What scenarios work on, built before anything is timed: scratch directories, event
//! payloads of a given size, logs of many streams, and a shop's history of events.

use std::io::IsTerminal as _;
use std::path::Path;

use crate::error::{Context as _, Result};
use bytes::Bytes;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_core::{EventType, ExpectedVersion, NewEvent, StreamName};
use strata_domain::{CommandContext, EventCodec};
use strata_shop::domain::{
    InventoryEvent, Money, OrderEvent, OrderLine, PaymentEvent, ProductEvent,
};
use strata_store_embedded::{BatchAppend, Durability, EmbeddedStore, Options};

/// The type of every event the store scenarios write.
pub(crate) const BENCH_TYPE: &str = "BenchEvent";
/// Events per `append_batch` call when filling a log.
const FILL_EVENTS_PER_CALL: usize = 1000;
/// `append_batch` calls in flight when filling a log.
const FILL_CALLS_IN_FLIGHT: usize = 4;

/// A scratch directory under `dir` (created if needed), removed when dropped.
pub(crate) fn scratch(dir: &Path, what: &str) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(&format!("strata-bench-{what}-"))
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a scratch directory in {}", dir.display()))
}

/// A JSON object of exactly `bytes` bytes (`{"p":"xxxx"}`), or `bytes` digits when that is
/// too short for an object.
pub(crate) fn payload(bytes: usize) -> Bytes {
    const FRAME: usize = r#"{"p":""}"#.len();
    if bytes < FRAME {
        return Bytes::from(vec![b'7'; bytes]);
    }
    let mut text = String::with_capacity(bytes);
    text.push_str(r#"{"p":""#);
    text.extend(std::iter::repeat_n('x', bytes - FRAME));
    text.push_str(r#""}"#);
    Bytes::from(text)
}

/// The event type of the store scenarios.
pub(crate) fn bench_type() -> EventType {
    EventType::new(BENCH_TYPE).expect("a valid event type")
}

/// A new event of the store scenarios with a fresh id.
pub(crate) fn bench_event(data: &Bytes) -> NewEvent {
    NewEvent::raw(bench_type(), data.clone())
}

/// A stream name made by the scenarios (always valid).
pub(crate) fn stream(name: String) -> StreamName {
    StreamName::new(name).expect("a valid stream name")
}

/// Options for a store that only fixtures write to: nothing timed waits on its syncs.
pub(crate) fn fixture_options() -> Options {
    Options {
        durability: Durability::None,
        ..Options::default()
    }
}

/// Opens a store for writing.
pub(crate) fn open_store(dir: &Path, options: Options) -> Result<EmbeddedStore> {
    EmbeddedStore::open(dir, options)
        .with_context(|| format!("cannot open the event store in {}", dir.display()))
}

/// Appends `appends` in calls of about [`FILL_EVENTS_PER_CALL`] events, a few calls in
/// flight. Every append must succeed. `progress` is told the events written so far.
pub(crate) async fn append_all(
    store: &EmbeddedStore,
    appends: impl Iterator<Item = BatchAppend>,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let calls = chunk_by_events(appends, FILL_EVENTS_PER_CALL);
    let mut results = futures::stream::iter(calls)
        .map(|call| {
            let events: u64 = call.iter().map(|a| a.events.len() as u64).sum();
            let store = store.clone();
            async move { (events, store.append_batch(call).await) }
        })
        .buffered(FILL_CALLS_IN_FLIGHT);
    let mut written = 0;
    while let Some((events, outcomes)) = results.next().await {
        for outcome in outcomes {
            outcome.context("cannot write the benchmark's events")?;
        }
        written += events;
        progress(written);
    }
    Ok(written)
}

/// Groups appends into calls of at least `events` events each (the last may hold fewer).
fn chunk_by_events(
    appends: impl Iterator<Item = BatchAppend>,
    events: usize,
) -> impl Iterator<Item = Vec<BatchAppend>> {
    let mut appends = appends.peekable();
    std::iter::from_fn(move || {
        appends.peek()?;
        let mut call = Vec::new();
        let mut held = 0;
        while held < events {
            let Some(append) = appends.next() else { break };
            held += append.events.len();
            call.push(append);
        }
        Some(call)
    })
}

/// `events` events of `data` in streams `{prefix}-0`, `{prefix}-1`, … of `per_stream`
/// events each, one append per stream.
pub(crate) fn log_appends(
    prefix: &str,
    events: u64,
    per_stream: u64,
    data: Bytes,
) -> impl Iterator<Item = BatchAppend> {
    let prefix = prefix.to_owned();
    let streams = events.div_ceil(per_stream);
    (0..streams).map(move |s| {
        let count = per_stream.min(events - s * per_stream);
        BatchAppend {
            stream: stream(format!("{prefix}-{s}")),
            expected: ExpectedVersion::NoStream,
            events: (0..count).map(|_| bench_event(&data)).collect(),
            recorded_at: None,
        }
    })
}

/// Shows the progress of a long build on standard error: a bar on a terminal, otherwise
/// (a log file, CI) a line every tenth of a build of a million events or more. Standard
/// output, where the report goes, is never touched.
pub(crate) fn progress_printer(what: &'static str, total: u64) -> impl FnMut(u64) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg}: {bar:40} {human_pos} of {human_len} events ({percent}%, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar.set_message(format!("bench: {what}"));
        bar
    });
    let step = (total / 10).max(1);
    let mut next = step;
    move |done| match &bar {
        Some(bar) => {
            bar.set_position(done);
            if done >= total {
                bar.finish_and_clear();
            }
        }
        None => {
            if total >= 1_000_000 && done >= next {
                eprintln!("bench: {what}: {done} of {total} events written");
                while next <= done {
                    next += step;
                }
            }
        }
    }
}

/// Encodes one of the shop's events as its command handler would: the event's type and
/// JSON, and the command's metadata.
pub(crate) fn shop_event<E: EventCodec>(event: &E, context: &CommandContext) -> NewEvent {
    let (event_type, data) = event.encode_bytes().expect("shop events encode");
    let schema = E::schema_version(&event_type);
    NewEvent::raw(
        EventType::new(&event_type).expect("shop event types are valid"),
        data,
    )
    .with_id(strata_domain::derived_event_id(context.command_id, 0))
    .with_metadata(&context.event_metadata(schema))
}

/// The steps of one order's life through checkout, each one command appending one event.
const ORDER_STEPS: u64 = 11;
/// Orders going through checkout at once: their steps interleave in the log.
const ORDERS_AT_ONCE: u64 = 16;
/// A product's price in the generated history.
const PRICE: Money = Money(1250);

/// A shop's history of about `events` events, one append per command, as the shop writes
/// it: `products` products created and stocked, then orders going through checkout
/// (created, two lines, placed, two reservations, payment authorized and captured,
/// confirmed, reservations committed), [`ORDERS_AT_ONCE`] at a time.
pub(crate) fn shop_history(events: u64, products: u64) -> impl Iterator<Item = BatchAppend> {
    let catalog = (0..products).flat_map(|p| {
        let sku = sku(p);
        [
            one(
                format!("product-{sku}"),
                &ProductEvent::Created {
                    sku: sku.clone(),
                    name: format!("Product {p}"),
                    description: format!("A useful thing, number {p}, in blue"),
                    price: PRICE,
                },
            ),
            one(
                format!("inventory-{sku}"),
                &InventoryEvent::Received {
                    sku,
                    quantity: 1_000_000_000,
                },
            ),
        ]
    });
    let order_events = events.saturating_sub(2 * products);
    let orders = order_events.div_ceil(ORDER_STEPS);
    let waves = orders.div_ceil(ORDERS_AT_ONCE);
    let checkouts = (0..waves).flat_map(move |wave| {
        (0..ORDER_STEPS).flat_map(move |step| {
            let first = wave * ORDERS_AT_ONCE;
            (first..(first + ORDERS_AT_ONCE).min(orders))
                .map(move |order| order_step(order, step, products))
        })
    });
    catalog.chain(checkouts).take(events as usize)
}

fn sku(p: u64) -> String {
    format!("sku{p}")
}

/// One append of one event to `stream`.
fn one<E: EventCodec>(stream_name: String, event: &E) -> BatchAppend {
    BatchAppend {
        stream: stream(stream_name),
        expected: ExpectedVersion::Any,
        events: vec![shop_event(event, &CommandContext::new())],
        recorded_at: None,
    }
}

/// Step `step` of order `n`'s checkout.
fn order_step(n: u64, step: u64, products: u64) -> BatchAppend {
    let id = format!("o{n}");
    let customer = format!("customer{}", n % 997);
    let skus = [sku(n % products), sku((n + 1) % products)];
    let line = |i: usize| OrderLine {
        sku: skus[i].clone(),
        quantity: 1,
        unit_price: PRICE,
    };
    let total = Money(PRICE.0 * 2);
    let order = |event: OrderEvent| one(format!("order-{id}"), &event);
    let inventory = |i: usize, event: InventoryEvent| one(format!("inventory-{}", skus[i]), &event);
    let payment = |event: PaymentEvent| one(format!("payment-{id}"), &event);
    match step {
        0 => order(OrderEvent::Created {
            order_id: id.clone(),
            customer,
        }),
        1 | 2 => order(OrderEvent::LineAdded {
            order_id: id.clone(),
            line: line(step as usize - 1),
        }),
        3 => order(OrderEvent::Placed {
            order_id: id.clone(),
            customer,
            lines: vec![line(0), line(1)],
            total,
        }),
        4 | 5 => {
            let i = step as usize - 4;
            inventory(
                i,
                InventoryEvent::Reserved {
                    sku: skus[i].clone(),
                    order_id: id.clone(),
                    quantity: 1,
                },
            )
        }
        6 => payment(PaymentEvent::Authorized {
            order_id: id.clone(),
            customer,
            amount: total,
            authorization: format!("auth-{id}"),
        }),
        7 => payment(PaymentEvent::Captured {
            order_id: id.clone(),
            amount: total,
        }),
        8 => order(OrderEvent::Confirmed {
            order_id: id.clone(),
            customer,
            total,
        }),
        _ => {
            let i = (step as usize - 9).min(1);
            inventory(
                i,
                InventoryEvent::Committed {
                    sku: skus[i].clone(),
                    order_id: id.clone(),
                    quantity: 1,
                },
            )
        }
    }
}

/// Sums the sizes of the files directly in `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
