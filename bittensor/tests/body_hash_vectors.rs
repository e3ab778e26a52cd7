//! The 16 body-hash vectors recorded from bittensor 10.5.0 (tests/data/fixtures).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use serde_json::Value;
use sn1_bittensor::pystr::python_str_list;
use sn1_bittensor::synapse::{INPUT_OBJ_LIST, INPUT_OBJ_STR, body_hash, sha3_256_hex};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fixtures/body_hash_vectors.json"
);

#[test]
fn all_vectors_match_python() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let messages: Vec<String> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        let py = python_str_list(&messages);
        assert_eq!(py, case["python_str"].as_str().unwrap(), "{messages:?}");
        assert_eq!(
            sha3_256_hex(py.as_bytes()),
            case["inner_sha3"].as_str().unwrap()
        );
        assert_eq!(
            body_hash(&messages),
            case["computed_body_hash"].as_str().unwrap(),
            "{messages:?}"
        );
    }
    assert_eq!(
        sha3_256_hex(b""),
        v["empty_required_hash_fields"].as_str().unwrap()
    );
    assert_eq!(v["input_obj_header_values"]["str"], INPUT_OBJ_STR);
    assert_eq!(v["input_obj_header_values"]["list"], INPUT_OBJ_LIST);
}

#[test]
fn a_changed_message_changes_the_hash() {
    let a = body_hash(&["What is 2+2?".to_string()]);
    let b = body_hash(&["What is 2+3?".to_string()]);
    let c = body_hash(&["What is 2+2?".to_string(), String::new()]);
    assert_ne!(a, b);
    assert_ne!(a, c);
}
