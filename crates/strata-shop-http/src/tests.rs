use axum::http::StatusCode;
use strata_core::Position;
use strata_projection::{ProjectionError, StopCause};
use strata_server::ErrorMapping;
use strata_shop::ShopError;

use crate::ShopModule;

#[test]
fn shop_errors_map_to_statuses_and_codes() {
    let cases = [
        (
            ShopError::Refused {
                code: "order_empty",
                message: "the order has no line".to_owned(),
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "order_empty",
        ),
        (
            ShopError::NotFound {
                what: "order",
                id: "o-1".to_owned(),
            },
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            ShopError::InvalidCursor {
                cursor: "zz".to_owned(),
            },
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            ShopError::NotCaughtUp {
                read_model: "shop_orders".to_owned(),
                position: Position(9),
                checkpoint: Position(3),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "consistency_timeout",
        ),
        (
            ShopError::CommandIdReused(
                "command id 7 was already used for another command".to_owned(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
        ),
        (
            ShopError::ReadModel(ProjectionError::Stopped {
                name: "shop_catalog".to_owned(),
                cause: StopCause::PoisonEvent {
                    position: Position(4),
                    error: "price -5".to_owned(),
                },
            }),
            StatusCode::SERVICE_UNAVAILABLE,
            "read_model_stopped",
        ),
        (
            ShopError::Internal("cannot open /var/lib/strata/read/x.sqlite".to_owned()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        ),
    ];
    for (error, status, code) in cases {
        let api = ShopModule::api_error(error);
        assert_eq!((api.status(), api.code()), (status, code), "{api}");
    }
}

#[test]
fn a_stopped_read_model_is_named_in_its_503() {
    let api = ShopModule::api_error(ShopError::ReadModel(ProjectionError::Stopped {
        name: "shop_search".to_owned(),
        cause: StopCause::CheckpointAheadOfLog {
            checkpoint: Position(9),
            head: Position(3),
        },
    }));
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(api.to_string().contains("shop_search"), "{api}");
}
