//! The aggregates' rules, given / when / then, with no store.

use strata_bank::{
    Account, AccountCommand, AccountEvent, MAX_BALANCE, Transfer, TransferCommand, TransferEvent,
    TransferStatus,
};
use strata_domain::testing::given;

fn opened() -> AccountEvent {
    AccountEvent::Opened {
        account: "alice".into(),
        owner: "Alice".into(),
    }
}

fn deposited(amount: u64) -> AccountEvent {
    AccountEvent::Deposited {
        account: "alice".into(),
        amount,
        transfer: None,
    }
}

fn deposit(amount: u64) -> AccountCommand {
    AccountCommand::Deposit {
        amount,
        transfer: None,
    }
}

fn withdraw(amount: u64) -> AccountCommand {
    AccountCommand::Withdraw {
        amount,
        transfer: None,
    }
}

#[test]
fn an_account_opens_once_with_a_balance_of_zero() {
    let open = AccountCommand::Open {
        account: "alice".into(),
        owner: "Alice".into(),
    };
    let account = given::<Account>(&[]).when(&open).then(&[opened()]);
    assert_eq!(account.balance, 0);
    assert_eq!(account.owner.as_deref(), Some("Alice"));
    given::<Account>(&[opened()])
        .when(&open)
        .then_refused("account_exists");
    let blank = AccountCommand::Open {
        account: "alice".into(),
        owner: "  ".into(),
    };
    given::<Account>(&[])
        .when(&blank)
        .then_refused("invalid_owner");
}

#[test]
fn deposits_and_withdrawals_move_the_balance() {
    let account = given::<Account>(&[opened(), deposited(100)])
        .when(&withdraw(30))
        .then(&[AccountEvent::Withdrawn {
            account: "alice".into(),
            amount: 30,
            transfer: None,
        }]);
    assert_eq!(account.balance, 70);
    let account = given::<Account>(&[opened()])
        .when(&deposit(5))
        .then(&[deposited(5)]);
    assert_eq!(account.balance, 5);
}

#[test]
fn a_withdrawal_that_would_overdraw_is_refused() {
    given::<Account>(&[opened(), deposited(100)])
        .when(&withdraw(101))
        .then_refused("insufficient_funds");
    // The whole balance may go.
    let account = given::<Account>(&[opened(), deposited(100)])
        .when(&withdraw(100))
        .then(&[AccountEvent::Withdrawn {
            account: "alice".into(),
            amount: 100,
            transfer: None,
        }]);
    assert_eq!(account.balance, 0);
}

#[test]
fn amounts_must_be_above_zero_and_balances_bounded() {
    given::<Account>(&[opened()])
        .when(&deposit(0))
        .then_refused("invalid_amount");
    given::<Account>(&[opened(), deposited(1)])
        .when(&withdraw(0))
        .then_refused("invalid_amount");
    given::<Account>(&[opened(), deposited(MAX_BALANCE)])
        .when(&deposit(1))
        .then_refused("balance_too_large");
}

#[test]
fn an_account_never_opened_refuses_everything_but_opening() {
    given::<Account>(&[])
        .when(&deposit(1))
        .then_refused("account_not_found");
    given::<Account>(&[])
        .when(&withdraw(1))
        .then_refused("account_not_found");
}

fn requested() -> TransferEvent {
    TransferEvent::Requested {
        transfer: "t-1".into(),
        from: "alice".into(),
        to: "bob".into(),
        amount: 30,
    }
}

#[test]
fn a_transfer_is_requested_between_two_accounts() {
    let request = TransferCommand::Request {
        transfer: "t-1".into(),
        from: "alice".into(),
        to: "bob".into(),
        amount: 30,
    };
    let transfer = given::<Transfer>(&[]).when(&request).then(&[requested()]);
    assert_eq!(transfer.status, Some(TransferStatus::Requested));
    given::<Transfer>(&[requested()])
        .when(&request)
        .then_refused("transfer_exists");
    let to_itself = TransferCommand::Request {
        transfer: "t-2".into(),
        from: "alice".into(),
        to: "alice".into(),
        amount: 30,
    };
    given::<Transfer>(&[])
        .when(&to_itself)
        .then_refused("same_account");
    let nothing = TransferCommand::Request {
        transfer: "t-3".into(),
        from: "alice".into(),
        to: "bob".into(),
        amount: 0,
    };
    given::<Transfer>(&[])
        .when(&nothing)
        .then_refused("invalid_amount");
}

#[test]
fn a_transfer_ends_once_either_way() {
    let completed = TransferEvent::Completed {
        transfer: "t-1".into(),
    };
    let failed = TransferEvent::Failed {
        transfer: "t-1".into(),
        reason: "insufficient_funds".into(),
    };
    let fail = TransferCommand::Fail {
        reason: "insufficient_funds".into(),
    };
    given::<Transfer>(&[requested()])
        .when(&TransferCommand::Complete)
        .then(std::slice::from_ref(&completed));
    let transfer = given::<Transfer>(&[requested()])
        .when(&fail)
        .then(std::slice::from_ref(&failed));
    assert_eq!(transfer.reason.as_deref(), Some("insufficient_funds"));
    // The same end again changes nothing; the other end is refused.
    given::<Transfer>(&[requested(), completed.clone()])
        .when(&TransferCommand::Complete)
        .then(&[]);
    given::<Transfer>(&[requested(), completed])
        .when(&fail)
        .then_refused("transfer_ended");
    given::<Transfer>(&[requested(), failed])
        .when(&TransferCommand::Complete)
        .then_refused("transfer_ended");
    given::<Transfer>(&[])
        .when(&TransferCommand::Complete)
        .then_refused("transfer_not_found");
}
