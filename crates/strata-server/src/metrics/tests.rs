use super::*;

#[test]
fn labels_name_every_method_and_status_as_it_is() {
    for method in ["GET", "POST", "DELETE", "BREW"] {
        assert_eq!(&*method_label(method), method);
    }
    for status in [200, 404, 409, 418, 599] {
        assert_eq!(&*status_label(status), status.to_string());
    }
}

/// The value on the line of `metric` (name and labels) in the Prometheus text.
fn value_of(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(metric)?.trim().parse().ok())
}

#[test]
fn every_request_and_command_is_counted_under_its_labels() {
    let stats = Stats::new();
    for _ in 0..3 {
        // A known method and status (a kept handle) and an unknown one (looked up).
        stats.request("TRACE", 504, Duration::from_millis(1));
        stats.request("BREW", 418, Duration::from_millis(1));
        stats.command("metrics_test_command", 2, Duration::from_millis(1));
    }
    stats.command("metrics_test_other", 0, Duration::from_millis(1));
    let text = render();
    assert_eq!(
        value_of(
            &text,
            r#"strata_http_requests_total{method="TRACE",status="504"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            r#"strata_http_requests_total{method="BREW",status="418"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            r#"strata_command_duration_seconds_count{command="metrics_test_command"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            r#"strata_command_duration_seconds_count{command="metrics_test_other"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(stats.snapshot().events_appended, 6);
}
