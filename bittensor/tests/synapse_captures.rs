//! Our `build_request` against the exact requests a real bittensor 10.5.0 dendrite sent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod capture_parse;

use capture_parse::{MINER, STREAM_CAPTURES, VALIDATOR, load_capture, str_list, validator_hotkey};
use sn1_bittensor::keys::verify_hex;
use sn1_bittensor::synapse::{
    AxonTarget, DENDRITE_VERSION, DendriteIdentity, SynapseRequest, SynapseShape, body_hash,
    build_request, signature_message,
};

/// Headers aiohttp adds on its own; `Synapse.to_headers()` does not produce them.
const AIOHTTP_ONLY: [&str; 5] = [
    "Host",
    "Accept",
    "Accept-Encoding",
    "User-Agent",
    "Content-Length",
];

/// Rebuilds a captured request from the same inputs.
fn rebuild(name: &str) -> (capture_parse::CapturedRequest, SynapseRequest) {
    let cap = load_capture(name);
    let json = cap.json();
    let shape = match json.get("task_name") {
        Some(t) => SynapseShape::V212 {
            task_name: t.as_str().unwrap().to_string(),
            target_model: json["target_model"].as_str().map(str::to_string),
            seed: json["seed"].as_u64(),
        },
        None => SynapseShape::Classic,
    };
    let hotkey = validator_hotkey();
    let id = DendriteIdentity {
        hotkey: &hotkey,
        uuid: cap.header("bt_header_dendrite_uuid"),
        external_ip: cap.header("bt_header_dendrite_ip"),
        version: DENDRITE_VERSION,
    };
    let target = AxonTarget {
        ip: cap.header("bt_header_axon_ip").to_string(),
        port: cap.header("bt_header_axon_port").parse().unwrap(),
        hotkey: cap.header("bt_header_axon_hotkey").to_string(),
    };
    let req = build_request(
        &id,
        &target,
        &shape,
        &str_list(&json["roles"]),
        &str_list(&json["messages"]),
        cap.header("timeout").parse().unwrap(),
        cap.header("bt_header_dendrite_nonce").parse().unwrap(),
    );
    (cap, req)
}

#[test]
fn same_headers_in_the_same_order() {
    for name in STREAM_CAPTURES {
        let (cap, req) = rebuild(name);
        let captured: Vec<&(String, String)> = cap
            .headers
            .iter()
            .filter(|(k, _)| !AIOHTTP_ONLY.contains(&k.as_str()))
            .collect();
        let names = |h: &[&(String, String)]| h.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        let ours: Vec<&(String, String)> = req.headers.iter().collect();
        assert_eq!(names(&ours), names(&captured), "{name}");
        for ((k, ours), (_, theirs)) in req
            .headers
            .iter()
            .zip(captured.iter().map(|p| (&p.0, &p.1)))
        {
            if k == "bt_header_dendrite_signature" {
                continue; // sr25519 signatures are randomised
            }
            assert_eq!(ours, theirs, "{name}: header {k}");
        }
        assert_eq!(req.path, cap.path);
        assert_eq!(cap.method, "POST");
    }
}

#[test]
fn same_body_hash_and_body_bytes() {
    for name in STREAM_CAPTURES {
        let (cap, req) = rebuild(name);
        assert_eq!(req.body_hash, cap.header("computed_body_hash"), "{name}");
        assert_eq!(req.body_hash, body_hash(&str_list(&cap.json()["messages"])));
        // Same bytes once the (random) signature is swapped for the captured one. total_size
        // is a CPython memory size nobody checks; our model reproduces the captured values.
        let ours_sig = req
            .headers
            .iter()
            .find(|(k, _)| k == "bt_header_dendrite_signature")
            .map(|(_, v)| v.clone())
            .unwrap();
        let body = String::from_utf8(req.body.clone()).unwrap();
        let swapped = body.replace(&ours_sig, cap.header("bt_header_dendrite_signature"));
        assert_eq!(
            swapped,
            String::from_utf8(cap.body.clone()).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn captured_and_our_signatures_verify_over_the_signature_message() {
    for name in STREAM_CAPTURES {
        let (cap, req) = rebuild(name);
        let message = signature_message(
            cap.header("bt_header_dendrite_nonce").parse().unwrap(),
            VALIDATOR,
            MINER,
            cap.header("bt_header_dendrite_uuid"),
            cap.header("computed_body_hash"),
        );
        verify_hex(
            VALIDATOR,
            message.as_bytes(),
            cap.header("bt_header_dendrite_signature"),
        )
        .unwrap_or_else(|e| panic!("{name}: captured signature: {e}"));
        let ours = &req
            .headers
            .iter()
            .find(|(k, _)| k == "bt_header_dendrite_signature")
            .unwrap()
            .1;
        verify_hex(VALIDATOR, message.as_bytes(), ours).unwrap();
        assert!(verify_hex(MINER, message.as_bytes(), ours).is_err());
    }
}

#[test]
fn non_ascii_and_v212_options_are_serialised_like_json_dumps() {
    let hotkey = validator_hotkey();
    let id = DendriteIdentity {
        hotkey: &hotkey,
        uuid: "u",
        external_ip: "192.0.2.1",
        version: DENDRITE_VERSION,
    };
    let target = AxonTarget {
        ip: "10.0.0.1".into(),
        port: 8091,
        hotkey: MINER.into(),
    };
    let shape = SynapseShape::V212 {
        task_name: "InferenceTask".into(),
        target_model: Some("hugging/face-1".into()),
        seed: Some(42),
    };
    let req = build_request(
        &id,
        &target,
        &shape,
        &["user".into()],
        &["café \"q\" 😀\n".into()],
        0.5,
        7,
    );
    let body = String::from_utf8(req.body).unwrap();
    assert!(body.is_ascii());
    assert!(
        body.contains(r#""messages": ["caf\u00e9 \"q\" \ud83d\ude00\n"]"#),
        "{body}"
    );
    assert!(body.contains(r#""timeout": 0.5, "#));
    assert!(body.ends_with(r#""completion": "", "target_model": "hugging/face-1", "seed": 42}"#));
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["messages"][0], "café \"q\" 😀\n");
    assert_eq!(req.headers[1], ("timeout".to_string(), "0.5".to_string()));
}
