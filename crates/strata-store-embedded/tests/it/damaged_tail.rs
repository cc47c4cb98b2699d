//! `EmbeddedStore::damaged_tail`: a reader learns of bytes past the last complete batch
//! that no writer is writing, and hears nothing while a writer may be writing them.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use strata_core::{ExpectedVersion, Position, StreamName};
use strata_store::EventStore;
use strata_store_embedded::{EmbeddedStore, Options};

use crate::basics::{event, small_segments};

/// A closed store of 30 events in small segments, one batch each.
async fn closed_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let stream = StreamName::new("acct-1").unwrap();
    for i in 0..30 {
        store
            .append(&stream, ExpectedVersion::Any, vec![event("Deposited", i)])
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    dir
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test]
async fn an_intact_log_has_no_damaged_tail() {
    let dir = closed_store().await;
    let reader = EmbeddedStore::open_read_only(dir.path(), Options::default()).unwrap();
    assert_eq!(reader.head().await.unwrap(), Position(30));
    assert!(reader.damaged_tail().unwrap().is_none());
}

#[tokio::test]
async fn a_cut_last_batch_is_reported_to_a_reader_and_left_on_disk() {
    let dir = closed_store().await;
    let last = last_segment(dir.path());
    let intact = len(&last);
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(intact - 5)
        .unwrap();
    let reader = EmbeddedStore::open_read_only(dir.path(), Options::default()).unwrap();
    assert_eq!(reader.head().await.unwrap(), Position(29));
    let tail = reader.damaged_tail().unwrap().expect("a damaged tail");
    assert_eq!(tail.file, last);
    assert_eq!(tail.offset + tail.bytes, intact - 5);
    assert!(tail.bytes > 0 && tail.offset > 0, "{tail:?}");
    assert_eq!(len(&last), intact - 5, "a reader changes nothing");
}

#[tokio::test]
async fn bytes_past_the_end_say_nothing_while_a_writer_holds_the_directory() {
    let dir = closed_store().await;
    let writer = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    // What a reader sees while the writer's next batch is half written.
    let last = last_segment(dir.path());
    OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap()
        .write_all(&[0xAB; 11])
        .unwrap();
    let reader = EmbeddedStore::open_read_only(dir.path(), Options::default()).unwrap();
    assert!(reader.damaged_tail().unwrap().is_none());
    // The writer's own handle never reports one: opening cut any.
    assert!(writer.damaged_tail().unwrap().is_none());
    writer.close().await.unwrap();
    // With the writer gone, the same bytes are damage.
    let tail = reader.damaged_tail().unwrap().expect("a damaged tail");
    assert_eq!(tail.bytes, 11);
}
