//! The simulated miner's `POST /v1/chat/completions`: prompting's Epistula miner checks
//! (`verify_request`: 400 not for us, 401 signer refused, 400 stale / signature mismatch), or
//! none in OpenAI mode, then the reply as SSE chat.completion.chunk events.

use axum::body::Body;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use sn1_bittensor::epistula::{self, EpistulaReject};

use super::config::{ChatMode, Misbehaviour};
use super::record::{CallProtocol, StreamGuard};
use super::routes::{Call, Shared, detail_error, header, push, response, simulated_error_text};
use super::script::{self, Framing};

pub(super) fn chat(
    shared: &Shared,
    mut call: Call,
    method: &Method,
    pairs: &[(String, String)],
    body: &[u8],
) -> Response {
    call.protocol = match shared.chat {
        ChatMode::OpenAi => CallProtocol::OpenAi,
        _ => CallProtocol::Epistula,
    };
    call.hotkey = header(pairs, "Epistula-Signed-By").map(str::to_owned);
    let refuse = |call: Call, status: u16, detail: &str| {
        shared
            .log
            .push(call.record(status, false, Some(detail.to_owned()), true));
        detail_error(status, detail)
    };
    if method != Method::POST {
        return refuse(call, 405, "Method Not Allowed");
    }
    if call.protocol == CallProtocol::Epistula {
        // prompting's verify_request order: addressed to us (400), signer allowed (401),
        // then verify_signature (400).
        if header(pairs, "Epistula-Signed-For") != Some(shared.hotkey_ss58.as_str()) {
            return refuse(call, 400, &EpistulaReject::NotForUs.to_string());
        }
        if shared
            .blacklist
            .check(call.hotkey.as_deref().unwrap_or(""))
            .is_some()
        {
            return refuse(call, 401, "Signer not in metagraph");
        }
        let now_ms = shared.clock().now_ns() / 1_000_000;
        if let Err(reject) =
            epistula::verify_request(pairs, body, now_ms, Some(&shared.hotkey_ss58))
        {
            return refuse(call, 400, &reject.to_string());
        }
    }
    let Some((roles, messages, model)) = parse_chat(body) else {
        return refuse(call, 400, "The body is not a chat completion request");
    };
    call.roles = roles;
    call.messages = messages;
    let misbehaviour = shared.misbehaviour();
    if let Some(Misbehaviour::ErrorStatus(status)) = misbehaviour {
        let message = simulated_error_text(status);
        shared
            .log
            .push(call.record(status, true, Some(message.clone()), true));
        return detail_error(status, &message);
    }
    let plan = script::plan(
        &shared.reply,
        misbehaviour.as_ref(),
        shared.uid,
        (&call.roles, &call.messages),
        call.hotkey.as_deref().unwrap_or(""),
    );
    let id = shared.log.push(call.record(200, true, None, false));
    let framing = Framing::Sse {
        id: format!("chatcmpl-sim{}-{id}", shared.uid),
        created: shared.clock().now_ns() / 1_000_000_000,
        model: model.unwrap_or_else(|| "sn1-simnet".to_owned()),
    };
    let guard = StreamGuard::open(shared.log.clone(), id);
    let stream = script::body(plan, framing, guard, shared.cancel.clone());
    let mut headers = HeaderMap::new();
    push(&mut headers, "content-type", "text/event-stream");
    push(&mut headers, "cache-control", "no-cache");
    response(200, headers, Body::from_stream(stream))
}

/// (roles, messages, model) of an OpenAI chat body; a message content that is a list of parts
/// keeps its text parts.
fn parse_chat(body: &[u8]) -> Option<(Vec<String>, Vec<String>, Option<String>)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = value.get("messages")?.as_array()?;
    let mut roles = Vec::with_capacity(list.len());
    let mut messages = Vec::with_capacity(list.len());
    for message in list {
        roles.push(message.get("role")?.as_str()?.to_owned());
        let content = match message.get("content")? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(""),
            _ => return None,
        };
        messages.push(content);
    }
    let model = value
        .get("model")
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    Some((roles, messages, model))
}
