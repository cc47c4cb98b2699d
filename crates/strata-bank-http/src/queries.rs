//! The bank's query routes: an account's balance from the balances read model (waiting
//! for a consistency token given as `after`), and a transfer from its own stream.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use strata_bank::{BalanceView, Transfer, TransferStatus};
use strata_server::{ErrorEnvelope, Freshness, Path};
use utoipa::ToSchema;

use crate::{BankFailure, BankState};

/// What a query route returns.
type QueryResult<T> = Result<Json<T>, BankFailure>;

/// An account and its balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceJson {
    /// The account's id.
    pub account: String,
    /// Who holds it.
    pub owner: String,
    /// The balance in minor units (cents).
    pub balance: u64,
}

impl From<BalanceView> for BalanceJson {
    fn from(view: BalanceView) -> Self {
        Self {
            account: view.account,
            owner: view.owner,
            balance: view.balance,
        }
    }
}

/// An account's balance, from the balances read model.
#[utoipa::path(
    get,
    path = "/bank/accounts/{id}",
    tag = "bank",
    params(("id" = String, Path, description = "The account's id"), Freshness),
    responses(
        (status = 200, description = "The account", body = BalanceJson),
        (status = 404, description = "No such account", body = ErrorEnvelope),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn balance(
    State(state): State<BankState>,
    Path(id): Path<String>,
    fresh: Freshness,
) -> QueryResult<BalanceJson> {
    let view = state
        .module()
        .balance(&id, fresh.after(), fresh.timeout())
        .await?;
    Ok(Json(BalanceJson::from(view)))
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatusJson {
    /// Asked for; the money is on its way.
    Requested,
    /// The money left the source and reached the target.
    Completed,
    /// The money did not move (or was given back to the source).
    Failed,
}

/// A transfer and how it ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferJson {
    /// The transfer's id.
    pub id: String,
    /// The account the money leaves.
    pub from: String,
    /// The account the money reaches.
    pub to: String,
    /// How much, in minor units (cents).
    pub amount: u64,
    /// Where it stands.
    pub status: TransferStatusJson,
    /// Why it failed: the code of the refusal that stopped it (`insufficient_funds`).
    pub reason: Option<String>,
}

impl From<Transfer> for TransferJson {
    fn from(transfer: Transfer) -> Self {
        let status = match transfer.status {
            Some(TransferStatus::Completed) => TransferStatusJson::Completed,
            Some(TransferStatus::Failed) => TransferStatusJson::Failed,
            Some(TransferStatus::Requested) | None => TransferStatusJson::Requested,
        };
        Self {
            id: transfer.id,
            from: transfer.from,
            to: transfer.to,
            amount: transfer.amount,
            status,
            reason: transfer.reason,
        }
    }
}

/// A transfer as its own stream has it now.
#[utoipa::path(
    get,
    path = "/bank/transfers/{id}",
    tag = "bank",
    params(("id" = String, Path, description = "The transfer's id")),
    responses(
        (status = 200, description = "The transfer", body = TransferJson),
        (status = 404, description = "No such transfer", body = ErrorEnvelope),
    )
)]
pub(crate) async fn transfer(
    State(state): State<BankState>,
    Path(id): Path<String>,
) -> QueryResult<TransferJson> {
    let transfer = state.module().transfer_state(&id).await?;
    Ok(Json(TransferJson::from(transfer)))
}
