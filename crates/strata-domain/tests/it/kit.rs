//! The given/when/then kit: it passes what is right and panics on what is not.

use std::panic::{AssertUnwindSafe, catch_unwind};

use strata_domain::testing::given;

use crate::support::account::{
    Account, AccountCommand, AccountError, AccountEvent, Currency, deposit, open, withdraw,
};

fn opened() -> AccountEvent {
    AccountEvent::Opened {
        owner: "kit".into(),
        currency: Currency::Usd,
    }
}

fn deposited(cents: u64) -> AccountEvent {
    AccountEvent::Deposited {
        cents,
        currency: Currency::Usd,
    }
}

/// Runs `f`, expecting it to panic with a message containing `says`.
fn panics_saying(says: &str, f: impl FnOnce()) {
    let payload =
        catch_unwind(AssertUnwindSafe(f)).expect_err("the kit accepted a wrong expectation");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        message.contains(says),
        "the panic says {message:?}, not {says:?}"
    );
}

#[test]
fn then_passes_the_decided_events_and_returns_the_state_after_them() {
    let state = given::<Account>(&[opened(), deposited(100)])
        .when(&withdraw(30))
        .then(&[AccountEvent::Withdrawn { cents: 30 }]);
    assert_eq!(state.balance, 70);
    assert_eq!(state.withdrawals, 1);

    let state = given::<Account>(&[])
        .when(&open("kit"))
        .then(&[AccountEvent::Opened {
            owner: "kit".into(),
            currency: Currency::Eur,
        }]);
    assert!(state.open);

    // Deciding nothing is `then(&[])`.
    let state = given::<Account>(&[opened()]).when(&deposit(0)).then(&[]);
    assert_eq!(state.balance, 0);

    let state = given::<Account>(&[opened(), deposited(5)])
        .when(&AccountCommand::Close)
        .then(&[AccountEvent::Withdrawn { cents: 5 }, AccountEvent::Closed]);
    assert!(!state.open && state.balance == 0);
}

#[test]
fn given_folds_the_events() {
    let given = given::<Account>(&[opened(), deposited(10), deposited(20)]);
    assert_eq!(given.state().balance, 30);
    assert_eq!(given.state().deposits, 2);
    let then = given.when(&withdraw(31));
    assert_eq!(
        then.result().as_ref().unwrap_err(),
        &AccountError::InsufficientFunds {
            balance: 30,
            requested: 31
        }
    );
}

#[test]
fn then_refused_passes_the_broken_rule() {
    given::<Account>(&[opened(), deposited(10)])
        .when(&withdraw(11))
        .then_refused("insufficient_funds");
    given::<Account>(&[])
        .when(&deposit(1))
        .then_refused("account_not_open");
    given::<Account>(&[opened()])
        .when(&open("again"))
        .then_refused("account_already_open");
}

#[test]
fn then_panics_on_other_events() {
    panics_saying("the command decided other events", || {
        given::<Account>(&[opened(), deposited(100)])
            .when(&withdraw(30))
            .then(&[AccountEvent::Withdrawn { cents: 31 }]);
    });
    panics_saying("the command decided other events", || {
        given::<Account>(&[opened(), deposited(5)])
            .when(&AccountCommand::Close)
            .then(&[AccountEvent::Closed]);
    });
    panics_saying("the command decided other events", || {
        given::<Account>(&[opened()]).when(&deposit(1)).then(&[]);
    });
}

#[test]
fn then_panics_on_a_refusal() {
    panics_saying("but the command was refused: InsufficientFunds", || {
        given::<Account>(&[opened()])
            .when(&withdraw(1))
            .then(&[AccountEvent::Withdrawn { cents: 1 }]);
    });
}

#[test]
fn then_refused_panics_when_the_command_is_accepted() {
    panics_saying(
        "expected refusal \"insufficient_funds\", but the command decided",
        || {
            given::<Account>(&[opened(), deposited(10)])
                .when(&withdraw(10))
                .then_refused("insufficient_funds");
        },
    );
}

#[test]
fn then_refused_panics_on_another_rule() {
    panics_saying(
        "refused for another reason: the account is not open",
        || {
            given::<Account>(&[])
                .when(&withdraw(10))
                .then_refused("insufficient_funds");
        },
    );
}
