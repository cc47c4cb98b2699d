//! Unit tests of the parts that need no server: the listing's prefix bound, the
//! migration list and the SQL's channel name.

use crate::migrate::MIGRATIONS;
use crate::sql;
use crate::store::prefix_successor;

#[test]
fn prefix_successor_increments_the_last_character() {
    assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
    assert_eq!(prefix_successor("a-").as_deref(), Some("a."));
    assert_eq!(prefix_successor("é").as_deref(), Some("ê"));
}

#[test]
fn prefix_successor_skips_surrogates_and_drops_maximal_characters() {
    assert_eq!(prefix_successor("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
    assert_eq!(prefix_successor("a\u{10ffff}").as_deref(), Some("b"));
    assert_eq!(prefix_successor("\u{10ffff}"), None);
    assert_eq!(prefix_successor(""), None);
}

#[test]
fn prefix_successor_bounds_exactly_the_names_with_the_prefix() {
    let prefix = "shop-\u{10ffff}";
    let upper = prefix_successor(prefix).expect("a bound");
    for name in [
        "shop-\u{10ffff}",
        "shop-\u{10ffff}x",
        "shop-\u{10ffff}\u{10ffff}",
    ] {
        assert!(
            name >= prefix && name < upper.as_str(),
            "{name:?} is in the range"
        );
    }
    for name in ["shop.", "shop-", "shop-z", "shoq"] {
        let inside = name >= prefix && name < upper.as_str();
        assert_eq!(inside, name.starts_with(prefix), "{name:?}");
    }
}

#[test]
fn every_migration_creates_only_inside_the_strata_schema() {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        for line in sql.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                assert!(
                    rest.starts_with("strata."),
                    "migration {} creates a table outside the strata schema: {line}",
                    index + 1
                );
            }
        }
    }
}

#[test]
fn appends_notify_the_channel_followers_listen_on() {
    for (name, statement) in [
        ("single append", sql::APPEND_WRITE),
        ("group", sql::GROUP_WRITE),
    ] {
        assert!(
            statement.contains(&format!("pg_notify('{}'", sql::HEAD_CHANNEL)),
            "the {name} statement notifies {}",
            sql::HEAD_CHANNEL
        );
    }
}
