//! Crash consistency: a child process (this test binary, re-run with an environment
//! variable) appends to an embedded store and projects it; the parent SIGKILLs it at
//! random moments, and after every kill the read model is exactly the fold of the log
//! up to its checkpoint: no event skipped, none applied twice.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::Position;
use strata_projection::Projections;
use strata_store::EventStore;

use crate::support::{Counter, append, expected_model, open_embedded, read_log, read_model};

/// Set in the child: the directory to work in.
const CHILD_DIR: &str = "STRATA_PROJECTION_CRASH_DIR";
/// Kill rounds.
const ROUNDS: u64 = 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The child: feed the store and project it until killed.
fn child(dir: &Path) -> ! {
    let rt = runtime();
    rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(open_embedded(&dir.join("store")));
        let host = Projections::new(store.clone(), dir.join("read"));
        host.register(Arc::new(Counter::new("counter"))).unwrap();
        host.start();
        let mut i: u64 = std::process::id().into();
        loop {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let stream = if i.is_multiple_of(5) {
                format!("noise-{}", (i >> 33) % 7)
            } else {
                format!("acct-{}", (i >> 33) % 13)
            };
            append(
                &*store,
                &stream,
                "Added",
                serde_json::json!({"n": (i >> 40) % 1000}),
            )
            .await;
            if i.is_multiple_of(3) {
                tokio::task::yield_now().await;
            }
        }
    })
}

/// Opens what the killed child left and checks the model against the log.
fn check(dir: &Path, round: u64) -> (u64, u64) {
    let rt = runtime();
    rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(open_embedded(&dir.join("store")));
        let log = read_log(&*store).await;
        let host = Projections::new(store.clone(), dir.join("read"));
        host.register(Arc::new(Counter::new("counter"))).unwrap();
        let model = host.query("counter", read_model).await.unwrap();
        assert!(
            model.checkpoint <= log.len() as u64,
            "round {round}: checkpoint past the log"
        );
        assert_eq!(
            model,
            expected_model(&log, model.checkpoint, &[]),
            "round {round}"
        );
        (model.checkpoint, log.len() as u64)
    })
}

#[test]
fn sigkill_at_random_moments_never_skips_or_repeats_an_event() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut checkpoints = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::sigkill_at_random_moments_never_skips_or_repeats_an_event",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let life = Duration::from_millis(150 + seed % 700);
        std::thread::sleep(life);
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: the child ended by itself"
        );
        // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no shutdown.
        child.kill().unwrap();
        child.wait().unwrap();
        let (checkpoint, head) = check(dir, round);
        eprintln!("round {round}: killed after {life:?}, checkpoint {checkpoint} of {head}");
        checkpoints.push(checkpoint);
    }
    assert!(
        checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "{checkpoints:?}"
    );
    assert!(
        checkpoints.iter().filter(|&&c| c > 0).count() >= 2,
        "the child made no progress: {checkpoints:?}"
    );

    // Finally, a runner in this process catches up with everything the children wrote.
    let rt = runtime();
    rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(open_embedded(&dir.join("store")));
        let head = store.head().await.unwrap();
        let host = Projections::new(store.clone(), dir.join("read"));
        host.register(Arc::new(Counter::new("counter"))).unwrap();
        host.start();
        host.wait_for("counter", head, Duration::from_secs(20))
            .await
            .unwrap();
        let model = host.query("counter", read_model).await.unwrap();
        let log = read_log(&*store).await;
        assert_eq!(model, expected_model(&log, head.0, &[]));
        assert!(model.checkpoint >= Position(head.0).0);
        host.shutdown().await;
    });
    eprintln!("crash test took {:?}", started.elapsed());
}
