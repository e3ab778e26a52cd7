//! NonceClock under concurrency, and Epistula signing/verification.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod capture_parse;

use std::collections::HashSet;
use std::sync::Arc;

use capture_parse::{MINER, VALIDATOR, miner_hotkey, validator_hotkey};
use sn1_bittensor::epistula::{
    EpistulaReject, request_message, secret_interval_texts, sign_request, verify_request,
};
use sn1_bittensor::keys::verify_hex;
use sn1_bittensor::nonce::NonceClock;

#[test]
fn nonce_clock_is_strictly_increasing_across_threads() {
    let clock = Arc::new(NonceClock::new());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let clock = clock.clone();
            std::thread::spawn(move || (0..10_000).map(|_| clock.next()).collect::<Vec<u64>>())
        })
        .collect();
    let mut all = HashSet::new();
    for t in threads {
        let seq = t.join().unwrap();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "increasing within a thread"
        );
        for n in seq {
            assert!(all.insert(n), "nonce {n} handed out twice");
        }
    }
    assert_eq!(all.len(), 80_000);
    let after = clock.next();
    assert!(all.iter().all(|&n| n < after));
}

const TS: u64 = 1_732_000_005_123;
const UUID: &str = "0b7a8a56-6bb6-4c2b-9b59-4c7c2b1f0001";

fn body() -> Vec<u8> {
    br#"{"messages": [{"role": "user", "content": "hi"}], "model": "m", "stream": true, "seed": 3}"#
        .to_vec()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    &h.iter().find(|(k, _)| k == name).unwrap().1
}

#[test]
fn sign_then_verify_round_trip() {
    let key = validator_hotkey();
    let headers = sign_request(&key, &body(), Some(MINER), TS, UUID);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Epistula-Version",
            "Epistula-Timestamp",
            "Epistula-Uuid",
            "Epistula-Signed-By",
            "Epistula-Request-Signature",
            "Epistula-Signed-For",
            "Epistula-Secret-Signature-0",
            "Epistula-Secret-Signature-1",
            "Epistula-Secret-Signature-2",
        ]
    );
    assert_eq!(header(&headers, "Epistula-Version"), "2");
    assert_eq!(header(&headers, "Epistula-Timestamp"), "1732000005123");
    assert_eq!(header(&headers, "Epistula-Signed-By"), VALIDATOR);

    // Accepted within 8 s, by the intended miner, with header names in any case.
    let lower: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    assert_eq!(
        verify_request(&lower, &body(), TS + 8000, Some(MINER)),
        Ok(VALIDATOR.to_string())
    );
    assert_eq!(
        verify_request(&headers, &body(), TS, None),
        Ok(VALIDATOR.to_string())
    );

    // The request signature is over sha256(body).uuid.timestamp.signed_for.
    let msg = request_message(&body(), UUID, TS, MINER);
    verify_hex(
        VALIDATOR,
        msg.as_bytes(),
        header(&headers, "Epistula-Request-Signature"),
    )
    .unwrap();
}

#[test]
fn tampering_staleness_and_wrong_target_are_refused() {
    let key = validator_hotkey();
    let headers = sign_request(&key, &body(), Some(MINER), TS, UUID);
    let mut tampered = body();
    tampered[5] ^= 1;
    assert_eq!(
        verify_request(&headers, &tampered, TS + 1, None),
        Err(EpistulaReject::SignatureMismatch)
    );
    assert_eq!(
        EpistulaReject::SignatureMismatch.to_string(),
        "Signature Mismatch"
    );
    assert_eq!(
        verify_request(&headers, &body(), TS + 8001, None),
        Err(EpistulaReject::Stale)
    );
    assert_eq!(EpistulaReject::Stale.to_string(), "Request is too stale");
    assert_eq!(
        verify_request(&headers, &body(), TS, Some(VALIDATOR)),
        Err(EpistulaReject::NotForUs)
    );
    // A changed timestamp or uuid breaks the signature.
    let edit = |name: &str, value: &str| -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == name {
                        value.to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    assert_eq!(
        verify_request(
            &edit("Epistula-Timestamp", "1732000005124"),
            &body(),
            TS,
            None
        ),
        Err(EpistulaReject::SignatureMismatch)
    );
    assert_eq!(
        verify_request(&edit("Epistula-Uuid", "other"), &body(), TS, None),
        Err(EpistulaReject::SignatureMismatch)
    );
    // Signed by someone else than Signed-By says.
    let forged = edit("Epistula-Signed-By", miner_hotkey().ss58());
    assert_eq!(
        verify_request(&forged, &body(), TS, None),
        Err(EpistulaReject::SignatureMismatch)
    );
    let missing: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k != "Epistula-Request-Signature")
        .cloned()
        .collect();
    assert_eq!(
        verify_request(&missing, &body(), TS, None),
        Err(EpistulaReject::MissingSignature)
    );
}

#[test]
fn secret_signatures_sign_python_float_texts() {
    let key = validator_hotkey();
    let headers = sign_request(&key, &body(), Some(MINER), TS, UUID);
    let texts = secret_interval_texts(TS);
    assert_eq!(texts[0], "1732000009999.0");
    assert_eq!(texts[1], "1732000010000.0");
    assert_eq!(texts[2], "1732000010001.0");
    for (i, text) in texts.iter().enumerate() {
        let sig = header(&headers, &format!("Epistula-Secret-Signature-{i}"));
        verify_hex(VALIDATOR, format!("{text}.{MINER}").as_bytes(), sig).unwrap();
        // Not over the integer text.
        let int_text = text.trim_end_matches(".0");
        assert!(verify_hex(VALIDATOR, format!("{int_text}.{MINER}").as_bytes(), sig).is_err());
    }
    // Without a target: no Signed-For and no secret signatures; the message ends with ".".
    let anon = sign_request(&key, &body(), None, TS, UUID);
    assert_eq!(anon.len(), 5);
    let msg = request_message(&body(), UUID, TS, "");
    assert!(msg.ends_with(&format!(".{TS}.")));
    verify_hex(
        VALIDATOR,
        msg.as_bytes(),
        header(&anon, "Epistula-Request-Signature"),
    )
    .unwrap();
    // prompting's verify_signature needs Signed-For.
    assert_eq!(
        verify_request(&anon, &body(), TS, None),
        Err(EpistulaReject::InvalidReceiver)
    );
}
