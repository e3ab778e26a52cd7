//! `AxonVerifier` against the captured requests, and the real axon's rejections
//! (docs/protocol.md §7).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod capture_parse;

use std::path::Path;
use std::sync::Arc;

use capture_parse::{
    CapturedRequest, DATA, MINER, STREAM_CAPTURES, VALIDATOR, load_capture, validator_hotkey,
};
use sn1_bittensor::synapse::{
    AxonTarget, DENDRITE_VERSION, DendriteIdentity, SynapseShape, build_request,
};
use sn1_bittensor::verify::{AxonReject, AxonVerifier, VerifiedSynapse, error_body};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn nonce_of(req: &CapturedRequest) -> u64 {
    req.header("bt_header_dendrite_nonce").parse().unwrap()
}

fn run(
    v: &AxonVerifier,
    req: &CapturedRequest,
    now_ns: u64,
) -> Result<VerifiedSynapse, AxonReject> {
    v.verify(&req.path, &req.headers, &req.body, now_ns, &|_| None)
}

fn soon(req: &CapturedRequest) -> u64 {
    nonce_of(req) + MS
}

fn miner_verifier() -> AxonVerifier {
    AxonVerifier::new(MINER.to_string())
}

fn expect_reject(result: Result<VerifiedSynapse, AxonReject>, status: u16, message: &str) {
    let err = result.expect_err("should be rejected");
    assert_eq!(err.status, status, "{err:?}");
    assert_eq!(err.message, message);
}

fn expect_500(result: Result<VerifiedSynapse, AxonReject>) {
    let err = result.expect_err("should be rejected");
    assert_eq!(err.status, 500, "{err:?}");
    let id = err
        .message
        .strip_prefix("Internal Server Error #")
        .unwrap_or_else(|| panic!("{}", err.message));
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[test]
fn accepts_every_captured_request() {
    for name in STREAM_CAPTURES {
        let req = load_capture(name);
        let ok =
            run(&miner_verifier(), &req, soon(&req)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let json = req.json();
        assert_eq!(ok.name, "StreamPromptingSynapse");
        assert_eq!(ok.dendrite_hotkey, VALIDATOR);
        assert_eq!(ok.nonce, nonce_of(&req));
        assert_eq!(ok.uuid, req.header("bt_header_dendrite_uuid"));
        assert_eq!(ok.timeout_secs, json["timeout"].as_f64().unwrap());
        assert_eq!(ok.roles, vec!["user".to_string()]);
        assert_eq!(ok.messages, capture_parse::str_list(&json["messages"]));
        assert_eq!(ok.task_name.as_deref(), json["task_name"].as_str());
        assert_eq!(ok.body, json);
    }
}

#[test]
fn one_changed_byte_is_rejected_with_the_real_messages() {
    for name in ["stream_classic", "stream_v2.12"] {
        let req = load_capture(name);
        let nonce = nonce_of(&req);
        let uuid = req.header("bt_header_dendrite_uuid");
        let hash = req.header("computed_body_hash");
        let sig = req.header("bt_header_dendrite_signature");

        // Signature: flip one hex digit.
        let mut bad_sig = sig.to_string();
        let flipped = if &bad_sig[10..11] == "a" { "b" } else { "a" };
        bad_sig.replace_range(10..11, flipped);
        expect_reject(
            run(
                &miner_verifier(),
                &req.with_header("bt_header_dendrite_signature", Some(&bad_sig)),
                soon(&req),
            ),
            401,
            &format!(
                "Not Verified with error: Signature mismatch with {nonce}.{VALIDATOR}.{MINER}.{uuid}.{hash} and {bad_sig}"
            ),
        );

        // Body: one byte of the message changed → the recomputed hash differs → 500.
        let mut bad_body = req.clone();
        let text = String::from_utf8(req.body.clone())
            .unwrap()
            .replace("What is", "What iz");
        bad_body.body = text.into_bytes();
        expect_500(run(&miner_verifier(), &bad_body, soon(&req)));

        // Nonce header: the signed message changes → signature mismatch.
        let bumped = (nonce + 1).to_string();
        let err = run(
            &miner_verifier(),
            &req.with_header("bt_header_dendrite_nonce", Some(&bumped)),
            soon(&req),
        )
        .unwrap_err();
        assert_eq!(err.status, 401);
        assert!(
            err.message.starts_with(&format!(
                "Not Verified with error: Signature mismatch with {bumped}."
            )),
            "{}",
            err.message
        );

        // Replay of the same request.
        let v = miner_verifier();
        run(&v, &req, soon(&req)).unwrap();
        expect_reject(
            run(&v, &req, soon(&req) + MS),
            401,
            "Not Verified with error: Nonce is too old, a newer one was last processed",
        );

        // Stale first nonce: 20 s old with timeout 12.
        expect_reject(
            run(&miner_verifier(), &req, nonce + 20 * S),
            401,
            "Not Verified with error: Nonce is too old: acceptable delta is 16.00 seconds but \
             request was 20.00 seconds old",
        );

        // Blacklisted hotkey, before any signature check.
        let err = miner_verifier()
            .verify(
                &req.path,
                &req.headers,
                &req.body,
                soon(&req),
                &|hk: &str| Some(format!("Unrecognized hotkey {hk}")),
            )
            .unwrap_err();
        assert_eq!(err.status, 403);
        assert_eq!(
            err.message,
            format!("Forbidden. Key is blacklisted: Unrecognized hotkey {VALIDATOR}.")
        );

        // Unknown route.
        let mut other = req.clone();
        other.path = "/PromptingSynapse".into();
        expect_reject(
            run(&miner_verifier(), &other, soon(&req)),
            404,
            "Synapse name 'PromptingSynapse' not found. Available synapses ['Synapse', \
             'StreamPromptingSynapse']",
        );

        // Missing signature / nonce, signature without 0x, invalid hex.
        expect_reject(
            run(
                &miner_verifier(),
                &req.with_header("bt_header_dendrite_signature", None),
                soon(&req),
            ),
            401,
            "Not Verified with error: Missing Signature",
        );
        expect_reject(
            run(
                &miner_verifier(),
                &req.with_header("bt_header_dendrite_nonce", None),
                soon(&req),
            ),
            401,
            "Not Verified with error: Missing Nonce",
        );
        expect_reject(
            run(
                &miner_verifier(),
                &req.with_header("bt_header_dendrite_signature", Some(&sig[2..])),
                soon(&req),
            ),
            401,
            "Not Verified with error: Invalid signature format. Expected hex string.",
        );
        expect_reject(
            run(
                &miner_verifier(),
                &req.with_header("bt_header_dendrite_signature", Some("0xabc")),
                soon(&req),
            ),
            401,
            "Not Verified with error: Invalid hex string: OddLength",
        );
        expect_reject(
            run(
                &miner_verifier(),
                &req.with_header("bt_header_dendrite_signature", Some("0xabcd")),
                soon(&req),
            ),
            401,
            "Not Verified with error: Invalid signature",
        );

        // Missing or unparsable headers: pydantic fails in from_headers → 500.
        expect_500(run(
            &miner_verifier(),
            &req.with_header("bt_header_input_obj_messages", None),
            soon(&req),
        ));
        expect_500(run(
            &miner_verifier(),
            &req.with_header("bt_header_dendrite_nonce", Some("soon")),
            soon(&req),
        ));
        expect_500(run(
            &miner_verifier(),
            &req.with_header("timeout", Some("twelve")),
            soon(&req),
        ));

        // Missing body hash header: the signed message has "None" → mismatch.
        let err = run(
            &miner_verifier(),
            &req.with_header("computed_body_hash", None),
            soon(&req),
        )
        .unwrap_err();
        assert_eq!(err.status, 401);
        assert!(
            err.message.contains(&format!("{uuid}.None and ")),
            "{}",
            err.message
        );

        // Not JSON.
        let mut not_json = req.clone();
        not_json.body = b"{\"name\": ".to_vec();
        expect_500(run(&miner_verifier(), &not_json, soon(&req)));
    }
}

#[test]
fn signature_is_checked_against_the_verifiers_own_hotkey() {
    let req = load_capture("stream_classic");
    // The axon hotkey header is ignored: a verifier with another hotkey refuses the request.
    let other = AxonVerifier::new(VALIDATOR.to_string());
    let err = run(&other, &req, soon(&req)).unwrap_err();
    assert_eq!(err.status, 401);
    assert!(
        err.message.contains(&format!(".{VALIDATOR}.{VALIDATOR}.")),
        "{}",
        err.message
    );
    // Changing bt_header_axon_hotkey does not matter to the right verifier.
    run(
        &miner_verifier(),
        &req.with_header("bt_header_axon_hotkey", Some(VALIDATOR)),
        soon(&req),
    )
    .unwrap();
}

#[test]
fn nonce_rules_follow_the_dendrite_version() {
    let req = load_capture("stream_classic");
    let nonce = nonce_of(&req);
    // Future nonces are never rejected.
    run(&miner_verifier(), &req, nonce - 3600 * S).unwrap();
    // With timeout 12 a first nonce may be up to (not including) 4 + 12 s old.
    run(&miner_verifier(), &req, nonce + 15 * S).unwrap();
    assert!(run(&miner_verifier(), &req, nonce + 16 * S).is_err());
    // The version header is not signed: without it (or below 7.2.0) only the monotonic
    // rule applies, so an hour-old nonce passes.
    let no_version = req.with_header("bt_header_dendrite_version", None);
    run(&miner_verifier(), &no_version, nonce + 3600 * S).unwrap();
    let old_version = req.with_header("bt_header_dendrite_version", Some("7001002"));
    run(&miner_verifier(), &old_version, nonce + 3600 * S).unwrap();
    // Without a timeout header the window is ALLOWED_DELTA alone.
    let no_timeout = req.with_header("timeout", None);
    let err = run(&miner_verifier(), &no_timeout, nonce + 5 * S).unwrap_err();
    assert_eq!(
        err.message,
        "Not Verified with error: Nonce is too old: acceptable delta is 4.00 seconds but request \
         was 5.00 seconds old"
    );
}

#[test]
fn our_own_requests_pass_and_later_nonces_from_the_same_uuid_too() {
    let hotkey = validator_hotkey();
    let v = miner_verifier();
    let id = DendriteIdentity {
        hotkey: &hotkey,
        uuid: "c136d132-e8cd-11f1-8e98-02fc00000001",
        external_ip: "203.0.113.9",
        version: DENDRITE_VERSION,
    };
    let target = AxonTarget {
        ip: "127.0.0.1".into(),
        port: 9000,
        hotkey: MINER.into(),
    };
    let clock = sn1_bittensor::nonce::NonceClock::new();
    for (i, shape) in [
        SynapseShape::Classic,
        SynapseShape::V212 {
            task_name: "QuestionAnsweringTask".into(),
            target_model: None,
            seed: Some(7),
        },
    ]
    .iter()
    .enumerate()
    {
        let messages = vec![format!("Ünïcödé\u{a0}\u{200b} {i} it's \"q\"\n😀")];
        let nonce = clock.next();
        let req = build_request(
            &id,
            &target,
            shape,
            &["user".into()],
            &messages,
            12.0,
            nonce,
        );
        // Header names in upper case: the axon matches them case-insensitively.
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, val)| (k.to_ascii_uppercase(), val.clone()))
            .collect();
        let ok = v
            .verify(&req.path, &headers, &req.body, nonce + MS, &|_| None)
            .unwrap();
        assert_eq!(ok.messages, messages);
        assert_eq!(ok.nonce, nonce);
    }
    // A v2.12-only miner refuses the classic shape (task_name header missing) with a 500.
    let strict = AxonVerifier::new(MINER.into()).requiring_task_name();
    let classic = load_capture("stream_classic");
    expect_500(run(&strict, &classic, soon(&classic)));
    let v212 = load_capture("stream_v2.12");
    run(&strict, &v212, soon(&v212)).unwrap();
}

#[test]
fn ping_route_is_served_and_verified() {
    let req = load_capture("ping_synapse_json");
    let ok = run(&miner_verifier(), &req, soon(&req)).unwrap();
    assert_eq!(ok.name, "Synapse");
    assert!(ok.messages.is_empty());
}

#[test]
fn blacklist_reply_matches_the_captured_403_bytes() {
    let req = load_capture("stream_blacklisted_403");
    let err = miner_verifier()
        .verify(
            &req.path,
            &req.headers,
            &req.body,
            soon(&req),
            &|hk: &str| Some(format!("Unrecognized hotkey {hk}")),
        )
        .unwrap_err();
    let raw = std::fs::read(Path::new(DATA).join("captures/stream_blacklisted_403.response.http"))
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"));
    assert!(head.contains(&format!(
        "bt_header_axon_status_message: {}\r\n",
        err.message
    )));
    assert_eq!(error_body(&err.message), body);
    // Without the blacklist the same request is accepted.
    run(&miner_verifier(), &req, soon(&req)).unwrap();
}

#[test]
fn concurrent_replays_are_accepted_exactly_once() {
    let req = Arc::new(load_capture("stream_v2.12"));
    let v = Arc::new(miner_verifier());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (req, v) = (req.clone(), v.clone());
            std::thread::spawn(move || run(&v, &req, soon(&req)).is_ok())
        })
        .collect();
    let accepted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(v.stored_nonce_keys(), 1);
}
