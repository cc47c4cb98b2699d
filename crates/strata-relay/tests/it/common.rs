//! What the broker tests share: the services' addresses, a store with events in several
//! streams, and the check that what a broker delivered is the log, once, in order per
//! stream.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName};
use strata_store::{EventStore, MemoryStore, ReadFilter};

/// How long any wait in these tests may take before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// The URL in `var`, or `None` after printing that the test is skipped.
pub(crate) fn service(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped {test}: {var} is not set (eval \"$(scripts/services.sh)\")");
            None
        }
    }
}

/// A short random name part, so tests never share subjects, streams or exchanges.
pub(crate) fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// `host:port` of a `scheme://[user@]host:port/...` URL.
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned()
}

/// `url` with its `host:port` replaced by `addr`.
pub(crate) fn with_address(url: &str, addr: std::net::SocketAddr) -> String {
    url.replacen(&host_port(url), &addr.to_string(), 1)
}

/// The streams events go to: two categories, a name that needs escaping.
pub(crate) fn streams() -> Vec<StreamName> {
    ["order-1", "order-2", "order-3.b", "payment-1", "payment-2"]
        .iter()
        .map(|s| StreamName::new(s).unwrap())
        .collect()
}

/// Appends one event to each stream, interleaving them; answers the last position.
pub(crate) async fn append_round(store: &MemoryStore, round: usize) -> Position {
    let mut last = Position::ZERO;
    for (i, stream) in streams().iter().enumerate() {
        let event_type = if i % 2 == 0 { "Placed" } else { "Paid.v2" };
        let event = NewEvent::json(
            EventType::new(event_type).unwrap(),
            &json!({ "round": round, "stream": stream.as_str() }),
        );
        let result = store
            .append(stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
        last = result.position;
    }
    last
}

/// Every event of the log.
pub(crate) async fn log(store: &MemoryStore) -> Vec<RecordedEvent> {
    store
        .read_all(Position::ZERO, 100_000, &ReadFilter::all())
        .await
        .unwrap()
        .events
}

/// Checks that `delivered` (envelopes in the order a consumer received them, each with
/// the message id the broker carried) is every event of `log` exactly once after
/// dropping repeated ids, with each stream's events in version order, and that each
/// envelope says what the log says.
pub(crate) fn assert_is_the_log(delivered: &[(String, serde_json::Value)], log: &[RecordedEvent]) {
    let by_id: HashMap<String, &RecordedEvent> =
        log.iter().map(|e| (e.id.to_string(), e)).collect();
    let mut seen = HashSet::new();
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for (message_id, envelope) in delivered {
        let id = envelope["id"].as_str().expect("an id in the envelope");
        assert_eq!(message_id, id, "the message id is the event id");
        if !seen.insert(id.to_owned()) {
            continue;
        }
        let event = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not in the log"));
        assert_eq!(envelope["format"], 1);
        assert_eq!(envelope["position"], event.position.0);
        assert_eq!(envelope["stream"], event.stream.as_str());
        assert_eq!(envelope["version"], event.version.0);
        assert_eq!(envelope["type"], event.event_type.as_str());
        assert_eq!(envelope["data"], event.data_json());
        versions
            .entry(event.stream.as_str().to_owned())
            .or_default()
            .push(event.version.0);
    }
    assert_eq!(seen.len(), log.len(), "every event arrives");
    for (stream, versions) in versions {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "the events of {stream} arrive in order");
    }
}
