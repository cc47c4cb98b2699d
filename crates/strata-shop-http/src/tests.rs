use axum::http::StatusCode;
use strata_core::Position;
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
