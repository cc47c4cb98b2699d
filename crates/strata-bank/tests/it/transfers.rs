//! Transfers carried out by the process manager: completed, failed before the money
//! moved, and failed after it left the source (which gives it back); and its pure
//! reactions, event by event.

use strata_bank::{
    AccountEvent, BankError, TransferEvent, TransferProcess, TransferProgress, TransferStatus,
    TransferStep,
};
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};
use strata_domain::{CommandContext, Upcasters};
use strata_projection::ProcessManager as _;
use strata_store::{Direction, EventStore};

use crate::support::{TestBank, eventually};

#[tokio::test]
async fn a_transfer_moves_the_money_and_completes() {
    let bank = TestBank::start();
    bank.account("alice", "Alice", 100).await;
    bank.account("bob", "Bob", 0).await;
    bank.bank
        .transfer("t-1", "alice", "bob", 30, &CommandContext::new())
        .await
        .unwrap();

    let transfer = bank.ended("t-1").await;
    assert_eq!(transfer.status, Some(TransferStatus::Completed));
    assert_eq!(transfer.reason, None);
    assert_eq!(bank.balance("alice").await, 70);
    assert_eq!(bank.balance("bob").await, 30);
    bank.stop().await;
}

#[tokio::test]
async fn a_transfer_that_would_overdraw_fails_and_moves_nothing() {
    let bank = TestBank::start();
    bank.account("alice", "Alice", 100).await;
    bank.account("bob", "Bob", 0).await;
    bank.bank
        .transfer("t-1", "alice", "bob", 500, &CommandContext::new())
        .await
        .unwrap();

    let transfer = bank.ended("t-1").await;
    assert_eq!(transfer.status, Some(TransferStatus::Failed));
    assert_eq!(transfer.reason.as_deref(), Some("insufficient_funds"));
    assert_eq!(bank.balance("alice").await, 100);
    assert_eq!(bank.balance("bob").await, 0);
    bank.stop().await;
}

#[tokio::test]
async fn a_transfer_to_no_account_fails_and_gives_the_money_back() {
    let bank = TestBank::start();
    bank.account("alice", "Alice", 100).await;
    bank.bank
        .transfer("t-1", "alice", "nobody", 30, &CommandContext::new())
        .await
        .unwrap();

    let transfer = bank.ended("t-1").await;
    assert_eq!(transfer.status, Some(TransferStatus::Failed));
    assert_eq!(transfer.reason.as_deref(), Some("account_not_found"));
    // The money left alice, then came back, both recorded as part of the transfer.
    let stream = StreamName::new("account-alice").unwrap();
    let moves = eventually(|| async {
        let events = bank
            .store
            .read_stream(&stream, None, Direction::Forward, 100)
            .await
            .unwrap();
        let moves: Vec<AccountEvent> = events
            .iter()
            .map(|e| Upcasters::new().decode(e).unwrap())
            .filter(|e: &AccountEvent| {
                matches!(
                    e,
                    AccountEvent::Deposited {
                        transfer: Some(_),
                        ..
                    }
                ) || matches!(
                    e,
                    AccountEvent::Withdrawn {
                        transfer: Some(_),
                        ..
                    }
                )
            })
            .collect();
        (moves.len() == 2).then_some(moves)
    })
    .await;
    assert!(matches!(
        moves[0],
        AccountEvent::Withdrawn { amount: 30, .. }
    ));
    assert!(matches!(
        moves[1],
        AccountEvent::Deposited { amount: 30, .. }
    ));
    assert_eq!(bank.balance("alice").await, 100);
    bank.stop().await;
}

#[tokio::test]
async fn a_transfer_is_refused_up_front_when_it_cannot_be_one() {
    let bank = TestBank::start();
    let err = bank
        .bank
        .transfer("t-1", "alice", "alice", 30, &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BankError::Refused {
                code: "same_account",
                ..
            }
        ),
        "{err:?}"
    );
    let err = bank.bank.transfer_state("t-1").await.unwrap_err();
    assert!(
        matches!(
            err,
            BankError::NotFound {
                what: "transfer",
                ..
            }
        ),
        "{err:?}"
    );
    bank.stop().await;
}

/// `event` as the store would return it from `stream` at `position`.
fn recorded<E: strata_domain::EventCodec>(stream: &str, position: u64, event: &E) -> RecordedEvent {
    let (event_type, data) = event.encode().unwrap();
    RecordedEvent {
        position: Position(position),
        stream: StreamName::new(stream).unwrap(),
        version: Version(position),
        id: EventId::new(),
        event_type: EventType::new(event_type).unwrap(),
        data: data.to_string().into_bytes().into(),
        metadata: b"{}".to_vec().into(),
        recorded_at: Timestamp::default(),
    }
}

#[test]
fn the_reactions_send_each_step_once_and_end_the_instance() {
    let process = TransferProcess;
    let requested = recorded(
        "transfer-t-1",
        1,
        &TransferEvent::Requested {
            transfer: "t-1".into(),
            from: "alice".into(),
            to: "bob".into(),
            amount: 30,
        },
    );
    let withdrawn = recorded(
        "account-alice",
        2,
        &AccountEvent::Withdrawn {
            account: "alice".into(),
            amount: 30,
            transfer: Some("t-1".into()),
        },
    );
    let deposited = recorded(
        "account-bob",
        3,
        &AccountEvent::Deposited {
            account: "bob".into(),
            amount: 30,
            transfer: Some("t-1".into()),
        },
    );
    let completed = recorded(
        "transfer-t-1",
        4,
        &TransferEvent::Completed {
            transfer: "t-1".into(),
        },
    );
    for event in [&requested, &withdrawn, &deposited, &completed] {
        assert_eq!(process.correlate(event).as_deref(), Some("t-1"));
    }

    let step = process.react(TransferProgress::default(), &requested);
    assert_eq!(
        step.commands,
        [TransferStep::Withdraw {
            transfer: "t-1".into(),
            from: "alice".into(),
            amount: 30
        }]
    );
    let step = process.react(step.state, &withdrawn);
    assert_eq!(
        step.commands,
        [TransferStep::Deposit {
            transfer: "t-1".into(),
            to: "bob".into(),
            amount: 30
        }]
    );
    // The same withdrawal seen again deposits nothing more.
    let again = process.react(step.state.clone(), &withdrawn);
    assert!(again.commands.is_empty());
    let step = process.react(step.state, &deposited);
    assert_eq!(
        step.commands,
        [TransferStep::Complete {
            transfer: "t-1".into()
        }]
    );
    let step = process.react(step.state, &completed);
    assert!(step.done && step.commands.is_empty());
}

#[test]
fn a_failure_after_the_withdrawal_refunds_before_the_end() {
    let process = TransferProcess;
    let state = TransferProgress {
        from: "alice".into(),
        to: "nobody".into(),
        amount: 30,
        withdrawn: true,
        refunding: false,
    };
    let failed = recorded(
        "transfer-t-1",
        3,
        &TransferEvent::Failed {
            transfer: "t-1".into(),
            reason: "account_not_found".into(),
        },
    );
    let step = process.react(state, &failed);
    assert!(!step.done);
    assert_eq!(
        step.commands,
        [TransferStep::Refund {
            transfer: "t-1".into(),
            from: "alice".into(),
            amount: 30
        }]
    );
    let refunded = recorded(
        "account-alice",
        4,
        &AccountEvent::Deposited {
            account: "alice".into(),
            amount: 30,
            transfer: Some("t-1".into()),
        },
    );
    let step = process.react(step.state, &refunded);
    assert!(step.done && step.commands.is_empty());
}
