//! Group commit: appends made at the same time share one transaction, yet each is decided
//! alone: a conflicting member fails with its own typed error, a member reusing an id
//! stored elsewhere is refused alone, repeats answer their first result, and the others
//! commit. One group mixing every fate checks the group's decision member by member.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, StreamName, Version};
use strata_store::{AppendResult, Direction, EventStore, ReadFilter, StoreError};

use crate::support::{Databases, options};

const APPENDS: usize = 32;

fn event(n: usize) -> NewEvent {
    NewEvent::json(
        EventType::new("Grouped").expect("a valid type"),
        &json!({ "n": n }),
    )
}

fn stream(n: usize) -> StreamName {
    StreamName::new(format!("account-{n}")).expect("a valid name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_different_streams_share_commits() {
    let Some(databases) = Databases::new("concurrent_appends_to_different_streams_share_commits")
    else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let appends = (0..APPENDS).map(|n| {
        let store = store.clone();
        async move {
            store
                .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
                .await
        }
    });
    let results: Vec<_> = join_all(appends).await;
    let mut positions = BTreeSet::new();
    for result in results {
        let appended = result.expect("every append to its own stream commits");
        assert_eq!(appended.position, appended.first_position);
        positions.insert(appended.position.0);
    }
    assert_eq!(
        positions,
        (1..=APPENDS as u64).collect(),
        "the appends took positions 1..=n, each one"
    );
    // One group is one statement: its events share one recording time.
    let log = store
        .read_all(Position(1), APPENDS, &ReadFilter::all())
        .await
        .expect("read the log")
        .events;
    let commits: BTreeSet<_> = log.iter().map(|e| e.recorded_at).collect();
    assert!(
        commits.len() <= APPENDS / 2,
        "{APPENDS} concurrent appends took {} commits",
        commits.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_member_fails_alone() {
    let Some(databases) = Databases::new("a_conflicting_member_fails_alone") else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    // Every even stream exists already, so expecting no stream conflicts there.
    for n in (0..APPENDS).step_by(2) {
        store
            .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
            .await
            .expect("set up a stream");
    }
    let head = store.head().await.expect("head");
    let appends = (0..APPENDS).map(|n| {
        let store = store.clone();
        async move {
            store
                .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
                .await
        }
    });
    let results: Vec<_> = join_all(appends).await;
    for (n, result) in results.into_iter().enumerate() {
        if n % 2 == 0 {
            assert!(
                matches!(
                    &result,
                    Err(StoreError::WrongExpectedVersion { actual, .. }) if actual.0 == 1
                ),
                "stream {n} exists: {result:?}"
            );
        } else {
            let appended = result.unwrap_or_else(|err| panic!("stream {n} is new: {err}"));
            assert_eq!(appended.last_version.0, 1);
        }
    }
    assert_eq!(
        store.head().await.expect("head").0,
        head.0 + APPENDS as u64 / 2,
        "only the new streams' events were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reusing_an_id_of_another_stream_is_refused_alone() {
    let Some(databases) =
        Databases::new("a_member_reusing_an_id_of_another_stream_is_refused_alone")
    else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let taken = event(0);
    let stored = store
        .append(&stream(1000), ExpectedVersion::Any, vec![taken.clone()])
        .await
        .expect("store the id");
    let appends = (0..APPENDS).map(|n| {
        let store = store.clone();
        let events = if n == APPENDS / 2 {
            vec![taken.clone()]
        } else {
            vec![event(n)]
        };
        async move { store.append(&stream(n), ExpectedVersion::Any, events).await }
    });
    let results: Vec<_> = join_all(appends).await;
    for (n, result) in results.into_iter().enumerate() {
        if n == APPENDS / 2 {
            assert!(
                matches!(
                    &result,
                    Err(StoreError::DuplicateEventId { id, existing: Some(at), .. })
                        if *id == taken.id && *at == stored.position
                ),
                "the reused id is refused: {result:?}"
            );
        } else {
            result.unwrap_or_else(|err| panic!("append {n} commits: {err}"));
        }
    }
    assert_eq!(store.head().await.expect("head").0, APPENDS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_answer_the_first_result() {
    let Some(databases) = Databases::new("concurrent_repeats_answer_the_first_result") else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let events: Vec<NewEvent> = (0..3).map(event).collect();
    let target = stream(7);
    // The same append eight times at once: one group takes one of them, the others wait
    // for a later group (same stream) and are recognised as repeats.
    let appends = (0..8).map(|_| {
        let store = store.clone();
        let events = events.clone();
        let target = target.clone();
        async move {
            store
                .append(&target, ExpectedVersion::NoStream, events)
                .await
        }
    });
    let results: Vec<_> = join_all(appends).await;
    let first = *results[0].as_ref().expect("the append commits");
    for result in &results {
        assert_eq!(result.as_ref().expect("a repeat succeeds"), &first);
    }
    assert_eq!(store.head().await.expect("head").0, 3, "written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_append_is_written_whole() {
    let Some(databases) = Databases::new("a_bulk_append_is_written_whole") else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let events: Vec<NewEvent> = (0..5000).map(event).collect();
    let appended = store
        .append(&stream(1), ExpectedVersion::NoStream, events.clone())
        .await
        .expect("a bulk append");
    assert_eq!((appended.first_position.0, appended.position.0), (1, 5000));
    let stored = store
        .read_all(Position(1), 10_000, &ReadFilter::all())
        .await
        .expect("read back")
        .events;
    assert_eq!(stored.len(), 5000);
    for ((got, want), version) in stored.iter().zip(&events).zip(1..) {
        assert_eq!((got.id, got.version.0), (want.id, version));
    }
}

/// Two handles (two committers, as two processes) append to the same few streams at
/// once: a group decided from a read that another handle's commit overtook is refused by
/// the unique indexes and decided again under the lock. Every append must be written
/// exactly once, at the versions and positions it was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_overtaken_by_another_process_are_decided_again() {
    const STREAMS: usize = 2;
    const TASKS: usize = 8;
    const ROUNDS: usize = 20;
    let Some(databases) = Databases::new("groups_overtaken_by_another_process_are_decided_again")
    else {
        return;
    };
    let config = databases.create().await;
    let mut handles = Vec::new();
    for _ in 0..2 {
        let store = strata_store_postgres::PostgresStore::connect_with(
            config.clone(),
            options(Duration::from_millis(200)),
        )
        .await
        .expect("open a handle");
        handles.push(store);
    }
    let tasks = (0..2 * TASKS).map(|t| {
        let store = handles[t % 2].clone();
        tokio::spawn(async move {
            let mut answered = Vec::new();
            for round in 0..ROUNDS {
                let target = stream((t + round) % STREAMS);
                let appended = store
                    .append(
                        &target,
                        ExpectedVersion::Any,
                        vec![event(t * ROUNDS + round)],
                    )
                    .await
                    .expect("an append with any expected version commits");
                answered.push((target, t * ROUNDS + round, appended));
            }
            answered
        })
    });
    let mut answered = Vec::new();
    for task in join_all(tasks).await {
        answered.extend(task.expect("an appending task"));
    }
    let total = 2 * TASKS * ROUNDS;
    let log = handles[0]
        .read_all(Position(1), total + 1, &ReadFilter::all())
        .await
        .expect("read the log")
        .events;
    assert_eq!(log.len(), total, "every append is stored once");
    for (target, n, appended) in &answered {
        let stored = &log[(appended.position.0 - 1) as usize];
        assert_eq!(stored.position, appended.position);
        assert_eq!(&stored.stream, target);
        assert_eq!(stored.version, appended.first_version);
        assert_eq!(
            stored.data_json(),
            json!({ "n": n }),
            "the event answered is the one stored"
        );
    }
    for s in 0..STREAMS {
        let events = handles[0]
            .read_stream(&stream(s), None, Direction::Forward, total)
            .await
            .expect("read a stream");
        let versions: Vec<u64> = events.iter().map(|e| e.version.0).collect();
        assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>());
    }
}

/// What one member of the mixed group must be answered.
enum Fate {
    /// Written at these versions, taking the next positions in group order.
    Written { first_version: u64, count: u64 },
    /// A repeat: the result of the append it repeats.
    Repeat(AppendResult),
    /// A conflict with the stream at this version.
    Conflict { actual: u64 },
}

/// An append of the mixed group and what it must be answered.
struct Member {
    stream: StreamName,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    fate: Fate,
}

// NOTE: a current-thread runtime: every append below reaches the committer's queue before
// the committer runs, so they form one group.
#[tokio::test]
async fn one_group_decides_winners_conflicts_and_repeats_each_on_its_own() {
    one_group(
        "one_group_decides_winners_conflicts_and_repeats_each_on_its_own",
        |_| true,
    )
    .await;
}

/// A group whose members all expect an exact version is written without reading the
/// streams first: a member ahead of its stream, one behind it and one repeating it must
/// still be decided each on its own.
#[tokio::test]
async fn a_group_expecting_exact_versions_decides_each_member_on_its_own() {
    one_group(
        "a_group_expecting_exact_versions_decides_each_member_on_its_own",
        |expected| expected.exact().is_some(),
    )
    .await;
}

/// The mixed group below, of the members whose expectation `keep` keeps.
async fn one_group(test: &str, keep: fn(ExpectedVersion) -> bool) {
    let Some(databases) = Databases::new(test) else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let named = |name: &str| StreamName::new(name).expect("a valid name");
    let fresh = |count: usize| (0..count).map(event).collect::<Vec<_>>();
    let setup = |name: &str, expected: ExpectedVersion, events: Vec<NewEvent>| {
        let store = store.clone();
        let stream = named(name);
        async move {
            store
                .append(&stream, expected, events)
                .await
                .unwrap_or_else(|err| panic!("set up {stream}: {err}"))
        }
    };
    // The streams as the group finds them.
    let repeated_whole = fresh(2);
    let whole = setup(
        "repeat-1",
        ExpectedVersion::NoStream,
        repeated_whole.clone(),
    )
    .await;
    let repeated_any = fresh(1);
    let any = setup("repeat-2", ExpectedVersion::Any, repeated_any.clone()).await;
    let repeated_later = fresh(1);
    setup("repeat-3", ExpectedVersion::NoStream, fresh(1)).await;
    let later = setup(
        "repeat-3",
        ExpectedVersion::Exact(1),
        repeated_later.clone(),
    )
    .await;
    setup("conflict-1", ExpectedVersion::NoStream, fresh(1)).await;
    setup("conflict-2", ExpectedVersion::NoStream, fresh(2)).await;
    let overlapping = fresh(2);
    setup("conflict-4", ExpectedVersion::NoStream, overlapping.clone()).await;
    setup("conflict-5", ExpectedVersion::NoStream, fresh(1)).await;
    setup("write-2", ExpectedVersion::NoStream, fresh(1)).await;
    setup("write-3", ExpectedVersion::NoStream, fresh(1)).await;
    let head = store.head().await.expect("head");

    let written = |first_version, count| Fate::Written {
        first_version,
        count,
    };
    let members = vec![
        // A new stream.
        Member {
            stream: named("write-1"),
            expected: ExpectedVersion::NoStream,
            events: fresh(1),
            fate: written(1, 1),
        },
        // The same events again at the same expected version.
        Member {
            stream: named("repeat-1"),
            expected: ExpectedVersion::NoStream,
            events: repeated_whole,
            fate: Fate::Repeat(whole),
        },
        // The stream exists already.
        Member {
            stream: named("conflict-1"),
            expected: ExpectedVersion::NoStream,
            events: fresh(1),
            fate: Fate::Conflict { actual: 1 },
        },
        // The version expected is the stream's.
        Member {
            stream: named("write-2"),
            expected: ExpectedVersion::Exact(1),
            events: fresh(2),
            fate: written(2, 2),
        },
        // `any` with an id the stream holds.
        Member {
            stream: named("repeat-2"),
            expected: ExpectedVersion::Any,
            events: repeated_any,
            fate: Fate::Repeat(any),
        },
        // A version beyond the stream's.
        Member {
            stream: named("conflict-2"),
            expected: ExpectedVersion::Exact(5),
            events: fresh(1),
            fate: Fate::Conflict { actual: 2 },
        },
        // `exists` on a stream that does not.
        Member {
            stream: named("conflict-3"),
            expected: ExpectedVersion::Exists,
            events: fresh(1),
            fate: Fate::Conflict { actual: 0 },
        },
        // A repeat of the stream's second append, expecting what it expected.
        Member {
            stream: named("repeat-3"),
            expected: ExpectedVersion::Exact(1),
            events: repeated_later,
            fate: Fate::Repeat(later),
        },
        // Its first event repeats the stream's last, its second goes beyond the stream.
        Member {
            stream: named("conflict-4"),
            expected: ExpectedVersion::Exact(1),
            events: vec![overlapping[1].clone(), event(9)],
            fate: Fate::Conflict { actual: 2 },
        },
        // Behind the stream, with other events than the stored ones.
        Member {
            stream: named("conflict-5"),
            expected: ExpectedVersion::NoStream,
            events: fresh(1),
            fate: Fate::Conflict { actual: 1 },
        },
        // The largest version there is: refused alone, never failing its neighbours.
        Member {
            stream: named("conflict-6"),
            expected: ExpectedVersion::Exact(u64::MAX),
            events: fresh(1),
            fate: Fate::Conflict { actual: 0 },
        },
        // `exists` on a stream that does.
        Member {
            stream: named("write-3"),
            expected: ExpectedVersion::Exists,
            events: fresh(1),
            fate: written(2, 1),
        },
        // `any` on a new stream.
        Member {
            stream: named("write-4"),
            expected: ExpectedVersion::Any,
            events: fresh(3),
            fate: written(1, 3),
        },
    ];
    let members: Vec<Member> = members.into_iter().filter(|m| keep(m.expected)).collect();
    let results = join_all(
        members
            .iter()
            .map(|member| store.append(&member.stream, member.expected, member.events.clone())),
    )
    .await;

    let mut next_position = head.0 + 1;
    let mut commits = BTreeSet::new();
    for (member, result) in members.iter().zip(results) {
        let stream = &member.stream;
        match &member.fate {
            Fate::Written {
                first_version,
                count,
            } => {
                let appended = result.unwrap_or_else(|err| panic!("{stream} is written: {err}"));
                assert_eq!(
                    (appended.first_version.0, appended.last_version.0),
                    (*first_version, first_version + count - 1),
                    "{stream}'s versions"
                );
                assert_eq!(
                    (appended.first_position.0, appended.position.0),
                    (next_position, next_position + count - 1),
                    "{stream} takes the next positions, in group order"
                );
                next_position += count;
                commits.insert(appended.recorded_at);
                let stored = store
                    .read_stream(
                        stream,
                        Some(Version(*first_version)),
                        Direction::Forward,
                        10,
                    )
                    .await
                    .expect("read the stream");
                let ids: Vec<_> = stored.iter().map(|e| e.id).collect();
                let want: Vec<_> = member.events.iter().map(|e| e.id).collect();
                assert_eq!(ids, want, "{stream} holds its events");
            }
            Fate::Repeat(first) => {
                assert_eq!(
                    result.unwrap_or_else(|err| panic!("{stream} repeats: {err}")),
                    *first,
                    "{stream} answers its first result"
                );
            }
            Fate::Conflict { actual } => {
                assert!(
                    matches!(
                        &result,
                        Err(StoreError::WrongExpectedVersion { expected, actual: found, .. })
                            if *expected == member.expected && found.0 == *actual
                    ),
                    "{stream} conflicts at version {actual}: {result:?}"
                );
            }
        }
    }
    assert_eq!(commits.len(), 1, "the writes shared one commit");
    assert_eq!(
        store.head().await.expect("head").0,
        next_position - 1,
        "only the winners' events were written"
    );
    for (name, version) in [("conflict-1", 1), ("conflict-2", 2), ("conflict-3", 0)] {
        assert_eq!(
            store.stream_version(&named(name)).await.expect("version").0,
            version,
            "{name} is unchanged"
        );
    }
}
