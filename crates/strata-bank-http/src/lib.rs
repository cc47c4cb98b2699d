//! The bank's HTTP module: the routes of strata-bank's [`Bank`] service, mounted on
//! strata-server through its [`Module`] seam exactly as the shop's are, from a crate of
//! its own and with nothing but the server's public API. The `strata-bank` binary of this
//! crate serves it on the embedded event store.
//!
//! Commands take their context from the command headers ([`strata_server::CommandHeaders`])
//! and answer `{"position", "events", "duplicate"}`; the position is the consistency
//! token that the balance query accepts as `after`. The module holds no bank rule: it
//! parses, calls one `Bank` method, and maps the result.

mod commands;
mod queries;

use axum::http::StatusCode;
use strata_bank::{Bank, BankError};
use strata_server::{
    ApiError, AppState, CONSISTENCY_TIMEOUT, ErrorMapping, IDEMPOTENCY_KEY_REUSED, Module,
    ModuleError, ModuleRoutes, ModuleState, Role, Routes,
};
use utoipa_axum::routes;

pub use queries::{BalanceJson, TransferJson, TransferStatusJson};

/// docs/guide.md, whose code blocks run as this crate's doc tests so that none of them
/// stops compiling unnoticed.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
pub struct Guide;

/// The bank, as a module of the server.
#[derive(Clone)]
pub struct BankModule {
    bank: Bank,
}

impl BankModule {
    /// The module over a bank whose hosts the caller starts and stops.
    pub fn new(bank: Bank) -> Self {
        Self { bank }
    }
}

/// The state of the bank's handlers: the bank beside the server's state.
type BankState = ModuleState<Bank>;

/// What a bank handler returns when it fails.
type BankFailure = ModuleError<BankError, BankModule>;

impl Module for BankModule {
    fn name(&self) -> &str {
        "bank"
    }

    /// Accounts and transfers are written only through the bank's commands.
    fn owned_categories(&self) -> &[&str] {
        &Bank::CATEGORIES
    }

    fn routes(&self, host: &AppState) -> ModuleRoutes {
        Routes::<BankState>::new()
            .route(Role::Write, routes!(commands::open))
            .route(Role::Read, routes!(queries::balance))
            .route(Role::Write, routes!(commands::deposit))
            .route(Role::Write, routes!(commands::withdraw))
            .route(Role::Write, routes!(commands::transfer))
            .route(Role::Read, routes!(queries::transfer))
            .with_state(ModuleState::new(host.clone(), self.bank.clone()))
    }
}

impl ErrorMapping<BankError> for BankModule {
    fn api_error(error: BankError) -> ApiError {
        let message = error.to_string();
        match error {
            BankError::Refused { code, .. } => ApiError::domain(code, message),
            BankError::NotFound { .. } => ApiError::not_found("not_found", message),
            BankError::InvalidId { .. } => ApiError::invalid(message),
            BankError::Conflict { .. } => ApiError::conflict("conflict", message),
            BankError::NotCaughtUp { position, .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                CONSISTENCY_TIMEOUT,
                message,
            )
            .with_detail("after", position.0),
            BankError::CommandIdReused(_) => ApiError::domain(IDEMPOTENCY_KEY_REUSED, message),
            BankError::Store(store) => ApiError::from(store),
            BankError::ReadModel(err) => ApiError::from(err),
            // A stored event that does not decode, a failed setup: the server's fault,
            // answered opaquely with the cause in the log.
            _ => ApiError::internal(message),
        }
    }
}
