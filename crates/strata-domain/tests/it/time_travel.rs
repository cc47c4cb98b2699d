//! Loading an aggregate as it was: at a stream version, at a global position, at a time;
//! also when a snapshot lies beyond the bound.

use std::time::Duration;

use bytes::Bytes;
use strata_core::{EventId, EventType, ExpectedVersion, NewEvent, Position, Timestamp, Version};
use strata_domain::{Aggregate, CommandContext, EventCodec, Loaded};
use time::macros::datetime;

use crate::support::account::{Account, AccountEvent, deposit, open, withdraw};
use crate::support::counter::{Counter, CounterCommand};
use crate::support::{Backend, Fixture, on_both_stores, stream_name};

on_both_stores!(
    as_of_a_version_a_position_and_a_time,
    with_a_snapshot_beyond_the_bound,
);

fn fold_account(events: &[AccountEvent]) -> Account {
    events.iter().fold(Account::default(), |s, e| s.evolve(e))
}

async fn as_of_a_version_a_position_and_a_time(fx: Fixture) {
    let handler = fx.handler();
    let commands = [
        open("tim"),
        deposit(100),
        deposit(200),
        withdraw(50),
        deposit(25),
    ];
    let mut decided = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let outcome = handler
            .handle::<Account>("tim", command, &CommandContext::new())
            .await
            .unwrap();
        for event in &outcome.events {
            decided.push(handler.upcasters().decode::<AccountEvent>(event).unwrap());
        }
        // Another stream's event between each of ours, so positions have gaps.
        handler
            .handle::<Account>(&format!("other{i}"), &open("other"), &CommandContext::new())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stored = fx.events("account-tim").await;
    assert_eq!(stored.len(), 5);
    assert!(
        stored
            .windows(2)
            .all(|w| w[0].recorded_at < w[1].recorded_at),
        "separate appends are recorded at increasing times"
    );

    let check = |loaded: Loaded<Account>, k: usize, bound: &str| {
        assert_eq!(loaded.state, fold_account(&decided[..k]), "{bound}");
        assert_eq!(loaded.version, Version(k as u64), "{bound}");
        let position = if k == 0 {
            Position(0)
        } else {
            stored[k - 1].position
        };
        assert_eq!(loaded.position, position, "{bound}");
    };
    for k in 0..=5 {
        check(
            handler
                .load_at_version::<Account>("tim", Version(k as u64))
                .await
                .unwrap(),
            k,
            &format!("version {k}"),
        );
    }
    for k in 1..=5 {
        let event = &stored[k - 1];
        check(
            handler
                .load_at_position::<Account>("tim", event.position)
                .await
                .unwrap(),
            k,
            &format!("at the position of event {k}"),
        );
        // The other stream's event right after ours: still k events.
        check(
            handler
                .load_at_position::<Account>("tim", event.position.next())
                .await
                .unwrap(),
            k,
            &format!("just after the position of event {k}"),
        );
        check(
            handler
                .load_at_time::<Account>("tim", event.recorded_at)
                .await
                .unwrap(),
            k,
            &format!("at the time of event {k}"),
        );
        let just_before = Timestamp::from_unix_nanos(event.recorded_at.unix_nanos() - 1);
        check(
            handler
                .load_at_time::<Account>("tim", just_before)
                .await
                .unwrap(),
            k - 1,
            &format!("just before event {k}"),
        );
    }
    check(
        handler
            .load_at_position::<Account>("tim", Position(0))
            .await
            .unwrap(),
        0,
        "position 0",
    );
    check(
        handler
            .load_at_version::<Account>("tim", Version(99))
            .await
            .unwrap(),
        5,
        "a version past the end",
    );
    let far_future = Timestamp::from_datetime(datetime!(2200-01-01 0:00 UTC));
    check(
        handler
            .load_at_time::<Account>("tim", far_future)
            .await
            .unwrap(),
        5,
        "far in the future",
    );

    if let (Backend::Embedded, Some(store)) = (fx.backend, fx.embedded()) {
        // Events imported with known recording times: one a day, at noon.
        let days = [1, 2, 3, 4];
        let mut events = Vec::new();
        let mut times = Vec::new();
        for day in days {
            let (event_type, data) = AccountEvent::Deposited {
                cents: day,
                currency: crate::support::account::Currency::Eur,
            }
            .encode()
            .unwrap();
            events.push(NewEvent {
                id: EventId::new(),
                event_type: EventType::new(event_type).unwrap(),
                data: Bytes::from(serde_json::to_vec(&data).unwrap()),
                metadata: Bytes::from_static(br#"{"schema_version":3}"#),
            });
            let noon = datetime!(2021-03-01 12:00 UTC) + time::Duration::days(day as i64 - 1);
            times.push(Timestamp::from_datetime(noon));
        }
        let opened = NewEvent::json(
            EventType::new("opened").unwrap(),
            &serde_json::json!({"owner": "uma", "currency": "EUR"}),
        );
        store
            .append_with_timestamps(
                &stream_name("account-uma"),
                ExpectedVersion::Exact(0),
                vec![opened],
                vec![Timestamp::from_datetime(datetime!(2021-02-28 0:00 UTC))],
            )
            .await
            .unwrap();
        for (event, at) in events.into_iter().zip(times) {
            store
                .append_with_timestamps(
                    &stream_name("account-uma"),
                    ExpectedVersion::Any,
                    vec![event],
                    vec![at],
                )
                .await
                .unwrap();
        }
        let at = |dt| Timestamp::from_datetime(dt);
        let cases = [
            (datetime!(2021-02-27 23:59 UTC), 0, 0),
            (datetime!(2021-03-01 11:59:59.999999999 UTC), 1, 0),
            (datetime!(2021-03-01 12:00 UTC), 2, 1),
            (datetime!(2021-03-03 0:00 UTC), 3, 3),
            (datetime!(2021-03-03 12:00 UTC), 4, 6),
            (datetime!(2021-04-01 0:00 UTC), 5, 10),
        ];
        for (time, version, balance) in cases {
            let loaded = handler
                .load_at_time::<Account>("uma", at(time))
                .await
                .unwrap();
            assert_eq!(
                (loaded.version, loaded.state.balance),
                (Version(version), balance),
                "{time}"
            );
        }
    }
}

async fn with_a_snapshot_beyond_the_bound(fx: Fixture) {
    let handler = fx.handler();
    for n in 1..=8 {
        handler
            .handle::<Counter>("tt", &CounterCommand::Add(n), &CommandContext::new())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stored = fx.events("counter-tt").await;
    assert_eq!(
        handler.load::<Counter>("tt").await.unwrap().snapshot,
        Some(Version(6))
    );
    let sum = |k: i64| k * (k + 1) / 2;

    let expect = |loaded: Loaded<Counter>, k: usize, snapshot: Option<u64>, bound: &str| {
        assert_eq!(
            loaded.state,
            Counter {
                value: sum(k as i64),
                applied: k as u64
            },
            "{bound}"
        );
        assert_eq!(loaded.version, Version(k as u64), "{bound}");
        assert_eq!(loaded.position, stored[k - 1].position, "{bound}");
        assert_eq!(loaded.snapshot, snapshot.map(Version), "{bound}");
    };
    for k in 1..=8 {
        let loaded = handler
            .load_at_version::<Counter>("tt", Version(k as u64))
            .await
            .unwrap();
        let snapshot = (k >= 6).then_some(6);
        expect(loaded, k, snapshot, &format!("version {k}"));
    }
    // Positions and times use the snapshot too when its last event is within the bound.
    for k in 1..=8 {
        let event = &stored[k - 1];
        let snapshot = (k >= 6).then_some(6);
        let by_position = handler
            .load_at_position::<Counter>("tt", event.position)
            .await
            .unwrap();
        expect(by_position, k, snapshot, &format!("position of event {k}"));
        let by_time = handler
            .load_at_time::<Counter>("tt", event.recorded_at)
            .await
            .unwrap();
        expect(by_time, k, snapshot, &format!("time of event {k}"));
    }
}
