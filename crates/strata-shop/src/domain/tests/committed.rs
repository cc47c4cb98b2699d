//! The committed orders behave as the `BTreeMap<String, u32>` they replace: the same
//! answers, the same serialised form, whatever order the ids come in.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::domain::{CommittedOrders, Inventory};

/// Ids from a small alphabet, so that repeats and shared prefixes are common.
fn id() -> impl Strategy<Value = String> {
    "[a-c0-9é\"\\\\\\x00]{0,9}"
}

fn ops() -> impl Strategy<Value = Vec<(String, u32)>> {
    prop::collection::vec((id(), any::<u32>()), 0..300)
}

proptest! {
    #[test]
    fn it_answers_as_a_map_does(ops in ops(), probes in prop::collection::vec(id(), 0..20)) {
        let mut orders = CommittedOrders::new();
        let mut model = BTreeMap::new();
        for (id, quantity) in &ops {
            orders.insert(id, *quantity);
            model.insert(id.clone(), *quantity);
            prop_assert_eq!(orders.len(), model.len());
        }
        for id in probes.iter().chain(model.keys()) {
            prop_assert_eq!(orders.get(id), model.get(id).copied());
            prop_assert_eq!(orders.contains_key(id), model.contains_key(id));
        }
        let listed: Vec<(String, u32)> = orders.iter().map(|(i, q)| (i.to_owned(), q)).collect();
        let expected: Vec<(String, u32)> = model.clone().into_iter().collect();
        prop_assert_eq!(listed, expected);
        prop_assert_eq!(orders.is_empty(), model.is_empty());
    }

    #[test]
    fn it_serialises_as_a_map_does(ops in ops()) {
        let orders: CommittedOrders = ops.iter().map(|(i, q)| (i.as_str(), *q)).collect();
        let model: BTreeMap<String, u32> = ops.iter().cloned().collect();
        let json = serde_json::to_string(&orders).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&model).unwrap());
        let back: CommittedOrders = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &orders);
        prop_assert_eq!(format!("{back:?}"), format!("{model:?}"));
    }

    #[test]
    fn it_reads_a_map_in_any_order(ops in ops()) {
        // A JSON object in the order the ids came, repeats included: the last one wins.
        let mut json = String::from("{");
        for (n, (id, quantity)) in ops.iter().enumerate() {
            if n > 0 {
                json.push(',');
            }
            json.push_str(&serde_json::to_string(id).unwrap());
            json.push(':');
            json.push_str(&quantity.to_string());
        }
        json.push('}');
        let orders: CommittedOrders = serde_json::from_str(&json).unwrap();
        let model: BTreeMap<String, u32> = serde_json::from_str(&json).unwrap();
        let listed: Vec<(String, u32)> = orders.iter().map(|(i, q)| (i.to_owned(), q)).collect();
        prop_assert_eq!(listed, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn equal_sets_are_equal_whatever_order_they_were_built_in() {
    let ids: Vec<String> = (0..200).map(|i| format!("o{i}")).collect();
    let forward: CommittedOrders = ids.iter().map(|i| (i.as_str(), 1)).collect();
    let backward: CommittedOrders = ids.iter().rev().map(|i| (i.as_str(), 1)).collect();
    assert_eq!(forward, backward);
    let fewer: CommittedOrders = ids[1..].iter().map(|i| (i.as_str(), 1)).collect();
    assert_ne!(forward, fewer);
    let other_units: CommittedOrders = ids.iter().map(|i| (i.as_str(), 2)).collect();
    assert_ne!(forward, other_units);
}

#[test]
fn a_snapshot_of_the_inventory_before_this_representation_still_loads() {
    // The state as `BTreeMap<String, u32>` serialised it.
    let old = br#"{"sku":"mug","received":10,"committed":5,"reservations":{"o3":1},"committed_orders":{"o1":4,"o2":1}}"#;
    let state: Inventory = serde_json::from_slice(old).unwrap();
    assert_eq!(state.committed_orders.get("o1"), Some(4));
    assert_eq!(state.committed_orders.get("o2"), Some(1));
    assert_eq!(state.committed_orders.len(), 2);
    assert_eq!(state.available(), 4);
    assert_eq!(serde_json::to_vec(&state).unwrap(), old.to_vec());
}
