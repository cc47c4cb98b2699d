//! The shared conformance suite, run against the embedded engine with small segments so
//! that its cases roll segments and reopen from index files.

use async_trait::async_trait;
use parking_lot::Mutex;
use strata_store::conformance::Backend;
use strata_store_embedded::{EmbeddedStore, Options};

/// Segments small enough that the suite's larger cases roll several of them.
const SEGMENT_BYTES: u64 = 64 * 1024;

/// Fresh stores in temporary directories, removed when the backend is dropped.
struct Embedded {
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

fn options() -> Options {
    Options {
        segment_bytes: SEGMENT_BYTES,
        ..Options::default()
    }
}

#[async_trait]
impl Backend for Embedded {
    type Store = EmbeddedStore;

    async fn fresh(&self) -> EmbeddedStore {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), options()).unwrap();
        self.dirs.lock().push(dir);
        store
    }

    async fn reopen(&self, store: EmbeddedStore) -> Option<EmbeddedStore> {
        let dir = store.dir().to_owned();
        store.close().await.unwrap();
        Some(EmbeddedStore::open(&dir, options()).unwrap())
    }
}

fn backend() -> Embedded {
    Embedded {
        dirs: Mutex::new(Vec::new()),
    }
}

strata_store::conformance_tests!(backend);
