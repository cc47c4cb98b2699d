//! The pure parts of the Redis host: the writes a projection records and the cache's
//! entry format.

use strata_core::Position;

use super::cache::decode_entry;
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
