use std::time::Duration;

use serde::Deserialize;
use strata_core::Position;

use super::{DEFAULT_WAIT, Freshness, FreshnessParams, parse};

fn freshness(query: &str, max_wait: Duration) -> Result<Freshness, String> {
    parse::<FreshnessParams>(query)
        .map(|p| Freshness::from_params(&p, max_wait))
        .map_err(|e| e.message().to_owned())
}

#[test]
fn defaults_bounds_and_position_zero() {
    let max = Duration::from_secs(30);
    assert_eq!(
        freshness("", max).unwrap(),
        Freshness::new(None, DEFAULT_WAIT)
    );
    let asked = freshness("after=7&timeout_ms=250", max).unwrap();
    assert_eq!(asked.after(), Some(Position(7)));
    assert_eq!(asked.timeout(), Duration::from_millis(250));
    assert_eq!(
        freshness("timeout_ms=999999999", max).unwrap().timeout(),
        max
    );
    assert_eq!(freshness("after=0", max).unwrap().after(), None);
}

#[test]
fn a_bad_value_or_an_unknown_parameter_names_itself() {
    let max = Duration::from_secs(30);
    let err = freshness("timeout_ms=-1", max).unwrap_err();
    assert!(err.contains("timeout_ms"), "{err}");
    let err = freshness("afterr=1", max).unwrap_err();
    assert!(err.contains("afterr"), "{err}");
}

#[test]
fn a_routes_own_parameters_parse_beside_freshness() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Own {
        q: Option<String>,
        limit: Option<u32>,
    }
    let own: Own = parse("q=blue%20mug&limit=5").unwrap();
    assert_eq!(
        own,
        Own {
            q: Some("blue mug".to_owned()),
            limit: Some(5)
        }
    );
}
