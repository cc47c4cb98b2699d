//! The checkpoint and the model move in one transaction: a runner stopped between
//! batches, or cancelled in the middle of one, resumes without skipping or repeating an
//! event (the counter's `applied` table has every position once).

use std::sync::Arc;
use std::time::Duration;

use strata_projection::Projections;

use crate::support::{
    Counter, Fixture, Kind, append, append_many, expected_model, read_log, read_model,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A small deterministic pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Rounds of: start, let it run a little while events keep arriving, then either shut
/// down gracefully or drop the runtime under it (cancelling the runner wherever it is);
/// after each round the model is exactly the fold of the log up to its checkpoint.
fn stop_and_cancel_at_random(kind: Kind) {
    let fx = Fixture::new(kind);
    let rt = runtime();
    rt.block_on(append_many(&*fx.store, 3_000, 11));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checkpoints = Vec::new();
    for round in 0..8 {
        let host = fx.host();
        let counter = Counter::new("counter").delay(50);
        host.register(Arc::new(counter)).unwrap();
        let graceful = round % 2 == 0;
        let rt = runtime();
        rt.block_on(async {
            host.start();
            for i in 0..rng.below(40) {
                append(
                    &*fx.store,
                    &format!("acct-r{round}"),
                    "Added",
                    serde_json::json!({"n": i}),
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(10 + rng.below(60))).await;
            if graceful {
                host.shutdown().await;
            }
        });
        // Dropping the runtime cancels the runner at whatever await it is in.
        drop(rt);
        drop(host);

        let check = runtime();
        let host = Projections::new(fx.store.clone(), fx.read_dir());
        host.register(Arc::new(Counter::new("counter"))).unwrap();
        let model = check.block_on(host.query("counter", read_model)).unwrap();
        let log = check.block_on(read_log(&*fx.store));
        assert_eq!(
            model,
            expected_model(&log, model.checkpoint, &[]),
            "round {round}"
        );
        checkpoints.push(model.checkpoint);
    }
    assert!(
        checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "{checkpoints:?}"
    );
    assert!(*checkpoints.last().unwrap() > 0, "{checkpoints:?}");
}

#[test]
fn stop_and_cancel_at_random_memory() {
    stop_and_cancel_at_random(Kind::Memory);
}

#[test]
fn stop_and_cancel_at_random_embedded() {
    stop_and_cancel_at_random(Kind::Embedded);
}
