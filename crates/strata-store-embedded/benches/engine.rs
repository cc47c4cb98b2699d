//! Criterion benches of the embedded engine's hot paths: durable batch appends, many
//! concurrent single-event appends (group commit), reading a stream, scanning the log.
//! They measure; nothing here asserts a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, StreamName};
use strata_store::{Direction, EventStore, ReadFilter};
use strata_store_embedded::{EmbeddedStore, Options};

fn payload_event(bytes: usize) -> NewEvent {
    NewEvent::raw(EventType::new("Bench").unwrap(), vec![b'7'; bytes])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn append_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    let stream = StreamName::new("bench-1").unwrap();
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("batch_1000x256B_durable", |b| {
        b.iter(|| {
            let events = (0..1000).map(|_| payload_event(256)).collect();
            store
                .append_blocking(&stream, ExpectedVersion::Any, events)
                .unwrap()
        })
    });
    group.finish();
}

fn concurrent_writers(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), Options::default()).unwrap());
    let streams: Arc<Vec<StreamName>> = Arc::new(
        (0..256)
            .map(|i| StreamName::new(format!("writer-{i}")).unwrap())
            .collect(),
    );
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(256 * 20));
    group.bench_function("256_writers_x20_single_events", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for i in 0..256 {
                    let store = store.clone();
                    let streams = streams.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..20 {
                            store
                                .append(&streams[i], ExpectedVersion::Any, vec![payload_event(256)])
                                .await
                                .unwrap();
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    let stream = StreamName::new("long-1").unwrap();
    for _ in 0..10 {
        let events = (0..1000).map(|_| payload_event(256)).collect();
        store
            .append_blocking(&stream, ExpectedVersion::Any, events)
            .unwrap();
    }
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("stream_10000_events", |b| {
        b.iter(|| {
            let events = store
                .read_stream_sync(&stream, None, Direction::Forward, usize::MAX)
                .unwrap();
            assert_eq!(events.len(), 10_000);
        })
    });
    group.bench_function("read_all_10000_events", |b| {
        b.iter(|| {
            let mut from = Position(1);
            let mut n = 0;
            while n < 10_000 {
                let page = store.read_all_sync(from, 4096, &ReadFilter::all()).unwrap();
                n += page.events.len();
                from = page.next;
            }
        })
    });
    group.bench_function("subscription_catch_up_10000_events", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                rt.block_on(async {
                    use futures::StreamExt;
                    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all());
                    for _ in 0..10_000 {
                        sub.next().await.unwrap().unwrap();
                    }
                });
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, append_batch, concurrent_writers, reads);
criterion_main!(benches);
