use serde_json::Value;

use super::*;
use crate::stats::Summary;

#[test]
fn a_bulk_body_holds_its_events_of_the_asked_size_without_ids() {
    let body: Value = serde_json::from_str(&bulk_body(256)).unwrap();
    assert_eq!(body["expected_version"], "any");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), BULK_EVENTS);
    for event in events {
        assert_eq!(event["type"], BENCH_TYPE);
        assert_eq!(serde_json::to_string(&event["data"]).unwrap().len(), 256);
        assert!(event.get("id").is_none(), "the server gives the ids");
    }
}

fn phase(scenario: &str, key: &str, per_s: f64) -> ScenarioResult {
    ScenarioResult::new(scenario, None, &Summary::default(), "request")
        .with(key, per_s)
        .with("bench_cpu_cores", 0.5)
        .with("server_cpu_cores", 1.0)
}

#[test]
fn every_http_phase_is_a_ratio_to_the_stack_with_its_floor() {
    let cases = [
        ("http_shop_queries", "requests_per_s", 0.5),
        ("http_appends", "requests_per_s", 0.35),
        ("http_shop_commands", "commands_per_s", 0.25),
    ];
    for (scenario, key, floor) in cases {
        let result = against_stack(phase(scenario, key, 2_500.0), 10_000.0);
        assert_eq!(result.extra["ratio_to_stack"], 0.25, "{scenario}");
        assert_eq!(result.extra["ratio_to_stack_floor"], floor, "{scenario}");
        assert_eq!(result.extra["stack_requests_per_s"], 10_000.0);
    }
}

#[test]
fn the_cpu_share_divides_by_every_core() {
    let result = with_cpu_share(phase("http_appends", "requests_per_s", 1.0));
    let cores = machine_cores() as f64;
    assert_eq!(result.extra["machine_cores"], machine_cores());
    assert_eq!(
        result.extra["bench_cpu_share"],
        (0.5 / cores * 1e4).round() / 1e4
    );
    assert_eq!(
        result.extra["server_cpu_share"],
        (1.0 / cores * 1e4).round() / 1e4
    );
}
