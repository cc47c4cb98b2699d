//! The balances read model: built from the accounts' events, read after a consistency
//! token.

use std::time::Duration;

use strata_bank::{BalanceView, BankError};
use strata_core::Position;
use strata_domain::CommandContext;

use crate::support::{TestBank, WAIT};

#[tokio::test]
async fn the_balance_after_a_command_includes_it() {
    let bank = TestBank::start();
    bank.account("alice", "Alice", 0).await;
    let deposit = bank
        .bank
        .deposit("alice", 250, &CommandContext::new())
        .await
        .unwrap();
    let withdrawal = bank
        .bank
        .withdraw("alice", 100, &CommandContext::new())
        .await
        .unwrap();
    assert!(withdrawal.position > deposit.position);

    let view = bank
        .bank
        .balance("alice", Some(withdrawal.position), WAIT)
        .await
        .unwrap();
    assert_eq!(
        view,
        BalanceView {
            account: "alice".into(),
            owner: "Alice".into(),
            balance: 150,
        }
    );
    bank.stop().await;
}

#[tokio::test]
async fn a_refused_withdrawal_changes_no_balance() {
    let bank = TestBank::start();
    bank.account("alice", "Alice", 10).await;
    let err = bank
        .bank
        .withdraw("alice", 11, &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BankError::Refused {
                code: "insufficient_funds",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(bank.balance("alice").await, 10);
    bank.stop().await;
}

#[tokio::test]
async fn an_unknown_account_and_a_token_from_the_future_are_told_apart() {
    let bank = TestBank::start();
    bank.account("alice", "Alice", 10).await;
    let head = bank.head().await;
    let err = bank
        .bank
        .balance("bob", Some(head), WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BankError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err:?}"
    );
    let err = bank
        .bank
        .deposit("bob", 1, &CommandContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BankError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err:?}"
    );
    // A position no command has reached yet: the wait ends, and says so.
    let later = Position(head.0 + 10);
    let err = bank
        .bank
        .balance("alice", Some(later), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BankError::NotCaughtUp { position, .. } if position == later),
        "{err:?}"
    );
    bank.stop().await;
}
