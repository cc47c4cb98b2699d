//! The pure parts of the Redis host: the writes a projection records, the cache's
//! entry format and its near tier's freshness rule.

use std::sync::Arc;

use strata_core::Position;

use super::cache::{Dependency, Near, decode_entry};
use super::projection::RedisOps;

#[test]
fn writes_are_recorded_in_the_key_space_and_rolled_back_to_a_mark() {
    let mut ops = RedisOps::new("p:counter:v1:");
    ops.hincrby("totals", "a", 2);
    let mark = ops.mark();
    ops.hset("item:1", "name", "mug");
    ops.zadd_lex("items", "1");
    assert_eq!(ops.len(), 3);
    ops.rollback(mark);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops.args, ["I", "p:counter:v1:totals", "a", "2"]);
    ops.set("s", "v");
    ops.del("gone");
    ops.hdel("h", "f");
    assert_eq!(
        ops.args[4..],
        [
            "S",
            "p:counter:v1:s",
            "v",
            "D",
            "p:counter:v1:gone",
            "X",
            "p:counter:v1:h",
            "f"
        ]
    );
}

#[test]
fn a_cache_entry_is_its_position_then_its_value() {
    assert_eq!(
        decode_entry(b"42 {\"a\": 1}"),
        Some((Position(42), &b"{\"a\": 1}"[..]))
    );
    assert_eq!(decode_entry(b"7 "), Some((Position(7), &b""[..])));
    assert_eq!(decode_entry(b"no position"), None);
    assert_eq!(decode_entry(b"12"), None);
}

#[test]
fn the_near_tier_serves_an_answer_only_while_no_dependency_is_stamped_later() {
    let mut near = Near::default();
    let mug = [Dependency::Stream("product-mug")];
    let products = [Dependency::Category("product")];
    near.put("mug", Position(5), Arc::from(&b"v5"[..]));
    assert!(
        near.get("mug", &mug, Position::ZERO).is_none(),
        "nothing is served before the floor is known"
    );
    near.floor = Some(4);
    assert_eq!(
        near.get("mug", &mug, Position(5))
            .map(|(p, v)| (p, v.to_vec())),
        Some((Position(5), b"v5".to_vec()))
    );
    assert!(
        near.get("mug", &mug, Position(6)).is_none(),
        "older than after"
    );

    // Another product: the category's answers go, the mug's stays.
    near.put("all", Position(5), Arc::from(&b"all"[..]));
    near.stamp("product-lamp", "product", 6);
    assert!(near.get("all", &products, Position::ZERO).is_none());
    assert!(near.get("mug", &mug, Position::ZERO).is_some());

    // An event of the mug: stale; an answer computed before it, kept after it, too.
    near.stamp("product-mug", "product", 7);
    assert!(near.get("mug", &mug, Position::ZERO).is_none());
    near.put("mug", Position(8), Arc::from(&b"v8"[..]));
    near.put("mug", Position(6), Arc::from(&b"late"[..]));
    assert_eq!(
        near.get("mug", &mug, Position::ZERO).map(|(p, _)| p),
        Some(Position(8)),
        "an older answer does not replace a newer one"
    );
}

#[test]
fn the_near_tier_counts_an_unknown_stamp_as_its_floor() {
    let mut near = Near::default();
    near.floor = Some(10);
    let other = [Dependency::Stream("product-other")];
    near.put("old", Position(9), Arc::from(&b"x"[..]));
    near.put("new", Position(10), Arc::from(&b"y"[..]));
    assert!(
        near.get("old", &other, Position::ZERO).is_none(),
        "events before the floor may have touched it"
    );
    assert!(near.get("new", &other, Position::ZERO).is_some());

    // Dropping stamps to stay bounded raises the floor to the newest one dropped.
    for n in 0..super::cache::NEAR_STAMPS as u64 {
        near.stamp(&format!("s-{n}"), "s", 11 + n);
    }
    near.stamp("s-last", "s", 1_000_000_000);
    assert!(
        near.get("new", &other, Position::ZERO).is_none(),
        "the floor rose past it"
    );
    assert!(near.floor >= Some(11 + super::cache::NEAR_STAMPS as u64 - 2));
}
