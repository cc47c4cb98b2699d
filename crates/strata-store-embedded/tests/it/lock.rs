//! The data directory's lock: one writing process at a time, and never a child process
//! that this process happens to be starting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_store_embedded::EmbeddedStore;

use crate::basics::small_segments;

#[test]
fn reopening_while_child_processes_start_is_not_refused_as_locked() {
    // A child inherits the lock file's descriptor from fork until it execs; the process
    // that closed its store and opens it again must not be refused meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let status = std::process::Command::new("true").status().unwrap();
                assert!(status.success());
                spawned += 1;
            }
            spawned
        })
    };
    for reopened in 0..200 {
        let store = EmbeddedStore::open(dir.path(), small_segments())
            .unwrap_or_else(|e| panic!("reopen {reopened} failed: {e}"));
        drop(store);
    }
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    assert!(
        spawned > 0,
        "processes started while the store was reopened"
    );
}

#[test]
fn a_lock_really_held_is_still_reported_promptly() {
    // The retry above is bounded: a lock really held is reported, quickly.
    let dir = tempfile::tempdir().unwrap();
    let _store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let started = Instant::now();
    let err = EmbeddedStore::open(dir.path(), small_segments())
        .err()
        .expect("the second open must fail");
    assert_eq!(err.code(), "store_locked", "{err}");
    assert!(
        err.to_string().contains(&std::process::id().to_string()),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
