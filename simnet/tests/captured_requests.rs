//! The requests a real bittensor 10.5.0 dendrite sent (tests/data/captures), sent byte for byte
//! to a simulated miner holding the real miner hotkey: accepted as they are, refused with the
//! real axon's status and message when one byte is changed, replayed or stale.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use std::time::Duration;

use common::{
    CapturedRequest, MINER_SS58, RawResponse, VALIDATOR_SS58, capture, flip_hex_digit, send_raw,
    wallet_hotkey,
};
use sn1_simnet::miner::{
    Blacklist, CallProtocol, Clock, ReplyScript, SimMiner, SimMinerConfig, SimMinerHandle,
    default_answer,
};

const MS: u64 = 1_000_000;

async fn miner_at(clock_ns: u64, require_task_name: bool) -> SimMinerHandle {
    let hotkey = wallet_hotkey("sn1-miner");
    assert_eq!(hotkey.ss58(), MINER_SS58);
    let mut config = SimMinerConfig::new(5, hotkey);
    config.clock = Clock::Fixed(clock_ns);
    config.require_task_name = require_task_name;
    config.reply = ReplyScript {
        chunk_chars: 10,
        chunk_delay: Duration::from_millis(1),
        ..ReplyScript::default()
    };
    SimMiner::spawn(config).await.unwrap()
}

fn assert_refused(response: &RawResponse, status: u16, message_prefix: &str) -> String {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.header("bt_header_axon_status_code"),
        Some(status.to_string().as_str())
    );
    let message = response
        .header("bt_header_axon_status_message")
        .unwrap()
        .to_owned();
    assert!(message.starts_with(message_prefix), "{message}");
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body, serde_json::json!({ "message": message }));
    message
}

async fn accepted(name: &str, require_task_name: bool) {
    let request = CapturedRequest::load(name);
    let miner = miner_at(request.nonce() + MS, require_task_name).await;
    let response = send_raw(miner.addr(), &request.bytes()).await;
    assert_eq!(
        response.status,
        200,
        "{response:?} {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("bt_header_axon_status_code"), Some("200"));
    assert_eq!(
        response.header("bt_header_axon_status_message"),
        Some("Success")
    );
    assert_eq!(response.header("name"), Some("StreamPromptingSynapse"));
    assert_eq!(response.header("timeout"), Some("12.0"));
    assert_eq!(
        response.header("computed_body_hash"),
        Some(request.header("computed_body_hash").as_str())
    );
    let expected = default_answer(5, "What is 2+2?");
    assert_eq!(response.text(), expected);
    assert!(
        response.chunks.len() > 3,
        "streamed in chunks: {:?}",
        response.chunks
    );
    assert!(
        response
            .chunks
            .iter()
            .all(|c| String::from_utf8_lossy(c).chars().count() <= 10)
    );

    let calls = miner.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert!(call.accepted);
    assert_eq!(call.protocol, CallProtocol::Synapse);
    assert_eq!(call.dendrite_hotkey.as_deref(), Some(VALIDATOR_SS58));
    assert_eq!(call.messages, vec!["What is 2+2?"]);
    assert_eq!(call.roles, vec!["user"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let call = &miner.calls()[0];
    assert!(
        call.ended_at.is_some() && call.closed_at.is_some(),
        "{call:?}"
    );
    assert!(!call.dropped_early());
    assert_eq!(miner.open_streams(), 0);
}

#[tokio::test]
async fn captured_classic_request_is_accepted() {
    accepted("stream_classic.request.http", false).await;
}

#[tokio::test]
async fn captured_v2_12_request_is_accepted_by_a_v2_12_miner() {
    accepted("stream_v2.12.request.http", true).await;
}

#[tokio::test]
async fn classic_request_to_a_v2_12_miner_is_a_500() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let miner = miner_at(request.nonce() + MS, true).await;
    let response = send_raw(miner.addr(), &request.bytes()).await;
    assert_refused(&response, 500, "Internal Server Error #");
}

#[tokio::test]
async fn one_changed_signature_digit_is_a_signature_mismatch() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let signature = request.header("bt_header_dendrite_signature");
    let bad = flip_hex_digit(&signature, 40);
    let miner = miner_at(request.nonce() + MS, false).await;
    let response = send_raw(
        miner.addr(),
        &request
            .with_header("bt_header_dendrite_signature", &bad)
            .bytes(),
    )
    .await;
    let message = assert_refused(
        &response,
        401,
        "Not Verified with error: Signature mismatch with ",
    );
    let signed = format!(
        "{}.{VALIDATOR_SS58}.{MINER_SS58}.{}.{}",
        request.nonce(),
        request.header("bt_header_dendrite_uuid"),
        request.header("computed_body_hash")
    );
    assert_eq!(
        message,
        format!("Not Verified with error: Signature mismatch with {signed} and {bad}")
    );
    assert!(!miner.calls()[0].accepted);
}

#[tokio::test]
async fn one_changed_body_byte_is_the_body_hash_500() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let mut changed = request.clone();
    let at = changed.body.windows(3).position(|w| w == b"2+2").unwrap();
    changed.body[at + 2] = b'3';
    let miner = miner_at(request.nonce() + MS, false).await;
    let response = send_raw(miner.addr(), &changed.bytes()).await;
    assert_refused(&response, 500, "Internal Server Error #");
}

#[tokio::test]
async fn one_changed_nonce_digit_is_a_signature_mismatch() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let nonce = request.nonce() + 1;
    let miner = miner_at(request.nonce() + MS, false).await;
    let changed = request.with_header("bt_header_dendrite_nonce", &nonce.to_string());
    let response = send_raw(miner.addr(), &changed.bytes()).await;
    let message = assert_refused(
        &response,
        401,
        "Not Verified with error: Signature mismatch with ",
    );
    assert!(message.contains(&format!("with {nonce}.")), "{message}");
}

#[tokio::test]
async fn a_replayed_request_is_refused() {
    let request = CapturedRequest::load("stream_v2.12.request.http");
    let miner = miner_at(request.nonce() + MS, false).await;
    assert_eq!(send_raw(miner.addr(), &request.bytes()).await.status, 200);
    let response = send_raw(miner.addr(), &request.bytes()).await;
    let message = assert_refused(&response, 401, "Not Verified with error: ");
    assert_eq!(
        message,
        "Not Verified with error: Nonce is too old, a newer one was last processed"
    );
    let calls = miner.calls();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![200, 401]
    );
}

#[tokio::test]
async fn a_stale_nonce_is_refused() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let miner = miner_at(request.nonce() + 20_000 * MS, false).await;
    let response = send_raw(miner.addr(), &request.bytes()).await;
    let message = assert_refused(&response, 401, "Not Verified with error: ");
    assert_eq!(
        message,
        "Not Verified with error: Nonce is too old: acceptable delta is 16.00 seconds but request was 20.00 seconds old"
    );
}

#[tokio::test]
async fn a_blacklisted_caller_gets_the_captured_403() {
    let request = CapturedRequest::load("stream_blacklisted_403.request.http");
    let hotkey = wallet_hotkey("sn1-miner");
    let mut config = SimMinerConfig::new(5, hotkey);
    config.clock = Clock::Fixed(request.nonce() + MS);
    config.blacklist = Blacklist::allow_only(["5SomeoneElse"]);
    let miner = SimMiner::spawn(config).await.unwrap();
    let response = send_raw(miner.addr(), &request.bytes()).await;
    let message = assert_refused(&response, 403, "Forbidden. Key is blacklisted: ");
    // Exactly what the real axon answered.
    let real = String::from_utf8(capture("stream_blacklisted_403.response.http")).unwrap();
    let real_body = real.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(response.text(), real_body);
    assert!(real.contains(&format!("bt_header_axon_status_message: {message}\r\n")));
    assert_eq!(response.header("bt_header_axon_hotkey"), Some(MINER_SS58));
}

#[tokio::test]
async fn unknown_paths_get_the_axon_404() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let miner = miner_at(request.nonce() + MS, false).await;
    let moved = request
        .head
        .replacen("POST /StreamPromptingSynapse ", "POST /Nope ", 1);
    let moved = CapturedRequest {
        head: moved,
        body: request.body.clone(),
    };
    let response = send_raw(miner.addr(), &moved.bytes()).await;
    let message = assert_refused(&response, 404, "Synapse name 'Nope' not found.");
    assert_eq!(
        message,
        "Synapse name 'Nope' not found. Available synapses ['Synapse', 'StreamPromptingSynapse']"
    );
}

#[tokio::test]
async fn get_is_served_like_post() {
    let request = CapturedRequest::load("stream_classic.request.http");
    let miner = miner_at(request.nonce() + MS, false).await;
    let get = request.head.replacen("POST ", "GET ", 1);
    let response = send_raw(
        miner.addr(),
        &CapturedRequest {
            head: get,
            body: request.body.clone(),
        }
        .bytes(),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), default_answer(5, "What is 2+2?"));
}
