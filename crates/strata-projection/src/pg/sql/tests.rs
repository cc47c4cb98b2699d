//! Unit tests of the PostgreSQL read store's naming.

use super::*;

#[test]
fn a_schema_name_gives_back_its_generation_and_no_other_name_does() {
    let id = GenerationId {
        version: 3,
        generation: 12,
    };
    let schema = schema_name("shop_orders", id);
    assert_eq!(schema, "rm_shop_orders_v3_g12");
    assert_eq!(generation_of("shop_orders", &schema), Some(id));
    assert_eq!(generation_of("shop", &schema), None);
    assert_eq!(generation_of("shop_orders", "rm_shop_orders_v3_gx"), None);
    let longest = schema_name(
        &"x".repeat(MAX_NAME),
        GenerationId {
            version: u32::MAX,
            generation: 99_999_999,
        },
    );
    assert!(longest.len() <= 63, "{longest} is {} bytes", longest.len());
}
