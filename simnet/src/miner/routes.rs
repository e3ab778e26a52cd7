//! The simulated miner's HTTP handling. One entry point, [`handle`], for every path and method,
//! because a real axon's middleware runs before routing: every path but the chat route goes
//! through [`AxonVerifier`] (404 for unknown synapse names, 403 blacklist, 401 verify, 500
//! body hash), then the synapse is answered with raw chunked text. The chat route is in
//! [`super::chat`]; the response helpers both use are here.

use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use sn1_bittensor::dendrite::CHAT_PATH;
use sn1_bittensor::synapse::{DENDRITE_VERSION, SYNAPSE_NAME};
use sn1_bittensor::verify::{AxonVerifier, PING_SYNAPSE_NAME, error_body};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{Blacklist, ChatMode, Clock, Misbehaviour, ReplyScript};
use super::record::{CallLog, CallProtocol, CallRecord, StreamGuard};
use super::script::{self, Framing};

/// State shared by the handler and the [`super::SimMinerHandle`].
pub(super) struct Shared {
    pub uid: u16,
    pub hotkey_ss58: String,
    pub verifier: AxonVerifier,
    pub reply: ReplyScript,
    pub blacklist: Blacklist,
    pub chat: ChatMode,
    pub misbehaviour: RwLock<Option<Misbehaviour>>,
    pub clock: RwLock<Clock>,
    pub log: Arc<CallLog>,
    pub cancel: CancellationToken,
    /// The axon's own uuid, sent in error headers as `bt_header_axon_uuid`.
    pub axon_uuid: String,
}

impl Shared {
    pub fn clock(&self) -> Clock {
        *self.clock.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn misbehaviour(&self) -> Option<Misbehaviour> {
        self.misbehaviour
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a handler learnt about a call, turned into a [`CallRecord`].
pub(super) struct Call {
    pub(super) protocol: CallProtocol,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) started: Instant,
    pub(super) hotkey: Option<String>,
    pub(super) roles: Vec<String>,
    pub(super) messages: Vec<String>,
}

impl Call {
    pub(super) fn record(
        self,
        status: u16,
        accepted: bool,
        message: Option<String>,
        done: bool,
    ) -> CallRecord {
        let now = Instant::now();
        CallRecord {
            id: 0,
            protocol: self.protocol,
            method: self.method,
            path: self.path,
            dendrite_hotkey: self.hotkey,
            roles: self.roles,
            messages: self.messages,
            status,
            accepted,
            reject_message: message,
            started_at: self.started,
            chunks_sent: 0,
            ended_at: done.then_some(now),
            closed_at: done.then_some(now),
        }
    }
}

pub(super) fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Control characters cannot go into a header value.
fn header_value(text: &str) -> Option<HeaderValue> {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderValue::from_str(&clean).ok()
}

pub(super) fn push(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), header_value(value))
    {
        headers.append(name, value);
    }
}

pub(super) fn response(status: u16, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *response.headers_mut() = headers;
    response
}

/// The synapse headers a real axon echoes: `name`, `timeout`, `bt_header_*` from the
/// request, the sizes and the body hash (the real axon takes them from the body; same values).
fn echoed(pairs: &[(String, String)], headers: &mut HeaderMap, skip_axon: bool) {
    for (name, value) in pairs {
        let lower = name.to_ascii_lowercase();
        let wanted = matches!(
            lower.as_str(),
            "name" | "timeout" | "header_size" | "total_size" | "computed_body_hash"
        ) || (lower.starts_with("bt_header_")
            && !(skip_axon && lower.starts_with("bt_header_axon_")));
        if wanted {
            push(headers, &lower, value);
        }
    }
}

fn process_time(started: Instant) -> String {
    started.elapsed().as_secs_f64().to_string()
}

/// A refusal as the real axon sends it: status, `{"message": ...}`, the status headers and the
/// axon's own identity headers.
fn axon_error(
    shared: &Shared,
    status: u16,
    message: &str,
    pairs: &[(String, String)],
    started: Instant,
) -> Response {
    let mut headers = HeaderMap::new();
    push(
        &mut headers,
        "bt_header_axon_status_code",
        &status.to_string(),
    );
    push(&mut headers, "bt_header_axon_status_message", message);
    push(
        &mut headers,
        "bt_header_axon_process_time",
        &process_time(started),
    );
    push(
        &mut headers,
        "bt_header_axon_version",
        &DENDRITE_VERSION.to_string(),
    );
    push(&mut headers, "bt_header_axon_uuid", &shared.axon_uuid);
    push(&mut headers, "bt_header_axon_hotkey", &shared.hotkey_ss58);
    echoed(pairs, &mut headers, true);
    push(&mut headers, "content-type", "application/json");
    response(status, headers, Body::from(error_body(message)))
}

/// A FastAPI `HTTPException`: `{"detail": ...}`.
pub(super) fn detail_error(status: u16, detail: &str) -> Response {
    let mut headers = HeaderMap::new();
    push(&mut headers, "content-type", "application/json");
    let body = serde_json::json!({ "detail": detail }).to_string();
    response(status, headers, Body::from(body))
}

/// The one handler (see the module docs).
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = uri.path().to_owned();
    let call = Call {
        protocol: CallProtocol::Other,
        method: method.as_str().to_owned(),
        path: path.clone(),
        started,
        hotkey: None,
        roles: Vec::new(),
        messages: Vec::new(),
    };
    if path == CHAT_PATH && shared.chat != ChatMode::Disabled {
        super::chat::chat(&shared, call, &method, &pairs, &body)
    } else {
        synapse(&shared, call, &method, &pairs, &body)
    }
}

fn synapse(
    shared: &Shared,
    mut call: Call,
    method: &Method,
    pairs: &[(String, String)],
    body: &[u8],
) -> Response {
    let name = call.path.split('/').nth(1).unwrap_or("");
    call.protocol = match name {
        SYNAPSE_NAME => CallProtocol::Synapse,
        PING_SYNAPSE_NAME => CallProtocol::Ping,
        _ => CallProtocol::Other,
    };
    call.hotkey = pairs
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().contains("bt_header_dendrite_hotkey"))
        .map(|(_, v)| v.clone());
    let now_ns = shared.clock().now_ns();
    let blacklist = |hotkey: &str| shared.blacklist.check(hotkey);
    let verified = match shared
        .verifier
        .verify(&call.path, pairs, body, now_ns, &blacklist)
    {
        Ok(verified) => verified,
        Err(reject) => {
            let started = call.started;
            shared
                .log
                .push(call.record(reject.status, false, Some(reject.message.clone()), true));
            return axon_error(shared, reject.status, &reject.message, pairs, started);
        }
    };
    call.hotkey = Some(verified.dendrite_hotkey.clone());
    call.roles = verified.roles.clone();
    call.messages = verified.messages.clone();
    if method != Method::GET && method != Method::POST {
        shared
            .log
            .push(call.record(405, true, Some("Method Not Allowed".into()), true));
        return detail_error(405, "Method Not Allowed");
    }
    let started = call.started;
    let mut headers = HeaderMap::new();
    if call.protocol == CallProtocol::Ping {
        // The ping synapse comes back as JSON (docs/protocol.md §8.1).
        push(&mut headers, "content-type", "application/json");
        push(&mut headers, "bt_header_axon_status_code", "200");
        push(&mut headers, "bt_header_axon_status_message", "Success");
        shared.log.push(call.record(200, true, None, true));
        return response(200, headers, Body::from(verified.body.to_string()));
    }
    let misbehaviour = shared.misbehaviour();
    if let Some(Misbehaviour::ErrorStatus(status)) = misbehaviour {
        let message = simulated_error_text(status);
        shared
            .log
            .push(call.record(status, true, Some(message.clone()), true));
        return axon_error(shared, status, &message, pairs, started);
    }
    let plan = script::plan(
        &shared.reply,
        misbehaviour.as_ref(),
        shared.uid,
        (&verified.roles, &verified.messages),
        &verified.dendrite_hotkey,
    );
    // Success headers as uvicorn writes them for a BTStreamingResponse.
    push(&mut headers, "content-type", "text/event-stream");
    for wanted in ["name", "timeout"] {
        if let Some(value) = header(pairs, wanted) {
            push(&mut headers, wanted, value);
        }
    }
    push(&mut headers, "bt_header_axon_status_code", "200");
    push(&mut headers, "bt_header_axon_status_message", "Success");
    push(
        &mut headers,
        "bt_header_axon_process_time",
        &process_time(started),
    );
    let rest: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("name") && !k.eq_ignore_ascii_case("timeout"))
        .cloned()
        .collect();
    echoed(&rest, &mut headers, false);
    let id = shared.log.push(call.record(200, true, None, false));
    let guard = StreamGuard::open(shared.log.clone(), id);
    let stream = script::body(plan, Framing::Raw, guard, shared.cancel.clone());
    response(200, headers, Body::from_stream(stream))
}

/// The message of [`Misbehaviour::ErrorStatus`]: the real axon's generic 500 text, or a
/// plain one for other codes.
pub(super) fn simulated_error_text(status: u16) -> String {
    if status == 500 {
        format!("Internal Server Error #{}", uuid_v4_text())
    } else {
        format!("Simulated miner error {status}")
    }
}

/// A random uuid4 as text (Python's `str(uuid.uuid4())`).
pub(super) fn uuid_v4_text() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
