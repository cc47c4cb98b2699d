//! Writes the seed corpus of the `segment` and `index_files` fuzz targets (`fuzz/`): a
//! small store made by the real engine, with segments small enough to be sealed (so that
//! they have index files), and its files as the targets take them (one flag byte first).
//!
//! `cargo run -p strata-store-embedded --features fuzzing --example fuzz_seeds -- fuzz/corpus`

use std::path::{Path, PathBuf};

use serde_json::json;
use strata_core::{EventType, ExpectedVersion, NewEvent, StreamName};
use strata_store::EventStore;
use strata_store_embedded::{EmbeddedStore, Options};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: fuzz_seeds CORPUS_DIR")?,
    );
    let dir = tempfile::tempdir()?;
    let options = Options {
        segment_bytes: 4096,
        ..Options::default()
    };
    let store = EmbeddedStore::open(dir.path(), options)?;
    let types = [EventType::new("OrderPlaced")?, EventType::new("LineAdded")?];
    for round in 0..12u32 {
        for (n, stream) in ["order-1", "order-2", "cart-7"].iter().enumerate() {
            let stream = StreamName::new(*stream)?;
            let events = (0..=(round % 3))
                .map(|i| {
                    let mut event = NewEvent::json(
                        types[(i as usize + n) % 2].clone(),
                        &json!({"round": round, "i": i, "note": "x".repeat((round * 17 % 90) as usize)}),
                    );
                    if i == 1 {
                        event.metadata = bytes::Bytes::from_static(br#"{"actor":"ann"}"#);
                    }
                    event
                })
                .collect();
            store.append(&stream, ExpectedVersion::Any, events).await?;
        }
    }
    store.close().await?;
    let mut files: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let target = match path.extension().and_then(|e| e.to_str()) {
            Some("seg") => "segment",
            Some("idx") => "index_files",
            _ if name == "HIGH-WATER" => "index_files",
            _ => continue,
        };
        let bytes = std::fs::read(&path)?;
        // Flag 0: as written; flag 1: checksums rewritten (a no-op on valid files).
        for flag in [0u8, 1] {
            write_seed(
                &corpus.join(target),
                &format!("{name}.{flag}"),
                flag,
                &bytes,
            )?;
        }
        // A cut last batch: what a crash leaves behind.
        if target == "segment" && bytes.len() > 64 {
            write_seed(
                &corpus.join(target),
                &format!("{name}.torn"),
                0,
                &bytes[..bytes.len() - 7],
            )?;
        }
    }
    Ok(())
}

fn write_seed(dir: &Path, name: &str, flag: u8, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut seed = Vec::with_capacity(bytes.len() + 1);
    seed.push(flag);
    seed.extend_from_slice(bytes);
    std::fs::write(dir.join(name), seed)
}
