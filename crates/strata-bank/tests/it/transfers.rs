//! Transfers carried out by the process manager: completed, failed before the money
//! moved, and failed after it left the source (which gives it back).

use strata_bank::{AccountEvent, BankError, TransferStatus};
use strata_core::StreamName;
use strata_domain::{CommandContext, Upcasters};
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
