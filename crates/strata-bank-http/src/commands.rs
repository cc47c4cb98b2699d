//! The bank's command routes: each reads its body and the command headers, runs one
//! `Bank` command through the server's [`run_command`] and answers its
//! [`CommandAnswer`].

use axum::extract::State;
use serde::Deserialize;
use strata_server::{CommandAnswer, CommandHeaders, ErrorEnvelope, JsonBody, Path, run_command};
use utoipa::ToSchema;

use crate::{BankFailure, BankState};

/// What a command route returns.
type CommandResult = Result<CommandAnswer, BankFailure>;

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    /// Who holds it.
    owner: String,
}

/// Opens an account with a balance of zero.
#[utoipa::path(
    post,
    path = "/bank/accounts/{id}",
    tag = "bank",
    params(("id" = String, Path, description = "The account's id"), CommandHeaders),
    request_body = NewAccount,
    responses(
        (status = 200, description = "Opened", body = CommandAnswer),
        (status = 400, description = "Malformed body or id", body = ErrorEnvelope),
        (status = 422, description = "Refused: `account_exists`, `invalid_owner`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn open(
    State(state): State<BankState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<NewAccount>,
) -> CommandResult {
    let command = state.module().open(&id, &body.owner, &context);
    Ok(run_command(state.host(), "open_account", command).await?)
}

/// An amount to move.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Amount {
    /// How much, in minor units (cents).
    amount: u64,
}

/// Puts money into an account.
#[utoipa::path(
    post,
    path = "/bank/accounts/{id}/deposit",
    tag = "bank",
    params(("id" = String, Path, description = "The account's id"), CommandHeaders),
    request_body = Amount,
    responses(
        (status = 200, description = "Deposited", body = CommandAnswer),
        (status = 400, description = "Malformed body or id", body = ErrorEnvelope),
        (status = 404, description = "No such account", body = ErrorEnvelope),
        (status = 422, description = "Refused: `invalid_amount`, `balance_too_large`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn deposit(
    State(state): State<BankState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<Amount>,
) -> CommandResult {
    let command = state.module().deposit(&id, body.amount, &context);
    Ok(run_command(state.host(), "deposit", command).await?)
}

/// Takes money out of an account, never below zero.
#[utoipa::path(
    post,
    path = "/bank/accounts/{id}/withdraw",
    tag = "bank",
    params(("id" = String, Path, description = "The account's id"), CommandHeaders),
    request_body = Amount,
    responses(
        (status = 200, description = "Withdrawn", body = CommandAnswer),
        (status = 400, description = "Malformed body or id", body = ErrorEnvelope),
        (status = 404, description = "No such account", body = ErrorEnvelope),
        (status = 422, description = "Refused: `invalid_amount`, `insufficient_funds`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn withdraw(
    State(state): State<BankState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<Amount>,
) -> CommandResult {
    let command = state.module().withdraw(&id, body.amount, &context);
    Ok(run_command(state.host(), "withdraw", command).await?)
}

/// A transfer to ask for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTransfer {
    /// The account the money leaves.
    from: String,
    /// The account the money reaches.
    to: String,
    /// How much, in minor units (cents).
    amount: u64,
}

/// Asks for a transfer between two accounts. The money moves afterwards; read the
/// transfer to see how it ended.
#[utoipa::path(
    post,
    path = "/bank/transfers/{id}",
    tag = "bank",
    params(("id" = String, Path, description = "The transfer's id"), CommandHeaders),
    request_body = NewTransfer,
    responses(
        (status = 200, description = "Requested", body = CommandAnswer),
        (status = 400, description = "Malformed body or id", body = ErrorEnvelope),
        (status = 422, description = "Refused: `transfer_exists`, `same_account`, `invalid_amount`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn transfer(
    State(state): State<BankState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<NewTransfer>,
) -> CommandResult {
    let bank = state.module();
    let command = bank.transfer(&id, &body.from, &body.to, body.amount, &context);
    Ok(run_command(state.host(), "request_transfer", command).await?)
}
