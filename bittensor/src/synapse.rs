//! Signed `StreamPromptingSynapse` requests, byte-compatible with a bittensor 10.5.0 dendrite
//! (docs/protocol.md §2–§4, `captures/stream_classic.request.http`, `stream_v2.12.request.http`).
//!
//! * [`body_hash`] — `sha3_256_hex(sha3_256_hex(str(messages)))` with Python's `str()`.
//! * [`signature_message`] — `"{nonce}.{dendrite}.{axon}.{uuid}.{body_hash}"`.
//! * [`build_request`] — the headers in the dendrite's order and the JSON body in
//!   `json.dumps` format (`", "`/`": "` separators, `ensure_ascii=True`), field order as captured.
//!
//! `header_size` and `total_size` are CPython memory sizes that no axon checks
//! (docs/protocol.md §11). We send the captured `header_size` (464) and a `total_size` computed
//! by a small model of CPython's recursive `sys.getsizeof` that reproduces the four captured
//! values exactly for ASCII text.

use std::fmt::Write as _;

use sha3::{Digest, Sha3_256};

use crate::keys::Hotkey;
use crate::pystr::{python_float_str, python_json_float, python_str_list};

/// The route and class name of the SN1 synapse.
pub const SYNAPSE_NAME: &str = "StreamPromptingSynapse";
/// `bt_header_dendrite_version` we send: bittensor 10.5.0 (`10·10⁶ + 5·10³ + 0`).
pub const DENDRITE_VERSION: u64 = 10005000;
/// `base64(json.dumps(""))`: the `bt_header_input_obj_*` value of a required `str` field.
pub const INPUT_OBJ_STR: &str = "IiI=";
/// `base64(json.dumps([]))`: the `bt_header_input_obj_*` value of a required list field.
pub const INPUT_OBJ_LIST: &str = "W10=";
/// `header_size` we send: the value every captured 10.5.0 request carried (never checked).
pub const HEADER_SIZE: u64 = 464;

/// Which `StreamPromptingSynapse` class the miner runs (docs/protocol.md §6.1).
#[derive(Clone, Debug, PartialEq)]
pub enum SynapseShape {
    /// prompting v2.0–v2.7: roles, messages, completion.
    Classic,
    /// prompting v2.8–v2.12.1: adds the required `task_name`, and `target_model`, `seed`.
    V212 {
        /// The task class name, e.g. `QuestionAnsweringTask` (required field).
        task_name: String,
        /// Optional model the validator asks for (`null` when absent).
        target_model: Option<String>,
        /// Optional sampling seed (`null` when absent).
        seed: Option<u64>,
    },
}

/// Who is sending: the dendrite's hotkey, its per-process uuid, IP and version.
pub struct DendriteIdentity<'a> {
    /// The validator hotkey that signs.
    pub hotkey: &'a Hotkey,
    /// `str(uuid.uuid1())`, one per dendrite (process).
    pub uuid: &'a str,
    /// The dendrite's external IP as sent in `bt_header_dendrite_ip`.
    pub external_ip: &'a str,
    /// `bt_header_dendrite_version` (normally [`DENDRITE_VERSION`]).
    pub version: u64,
}

/// The axon being called, as the metagraph's AxonInfo describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AxonTarget {
    /// AxonInfo ip string, pasted as is.
    pub ip: String,
    /// AxonInfo port.
    pub port: u16,
    /// The axon hotkey, SS58.
    pub hotkey: String,
}

/// A ready-to-send request: POST `path` with these headers (in order) and body.
#[derive(Clone, Debug, PartialEq)]
pub struct SynapseRequest {
    /// `"/StreamPromptingSynapse"`.
    pub path: String,
    /// Headers in the exact order a 10.5.0 dendrite sends them (without aiohttp's own).
    pub headers: Vec<(String, String)>,
    /// The JSON body bytes.
    pub body: Vec<u8>,
    /// The `computed_body_hash` header value.
    pub body_hash: String,
    /// The `bt_header_dendrite_nonce` value.
    pub nonce: u64,
}

/// Lowercase hex SHA3-256 (FIPS-202) of `data`.
pub fn sha3_256_hex(data: &[u8]) -> String {
    hex::encode(Sha3_256::digest(data))
}

/// `computed_body_hash` of a StreamPromptingSynapse: `sha3(sha3(str(messages)))`, lowercase hex.
pub fn body_hash(messages: &[String]) -> String {
    sha3_256_hex(sha3_256_hex(python_str_list(messages).as_bytes()).as_bytes())
}

/// The text the dendrite signs: `"{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}"`.
pub fn signature_message(
    nonce: u64,
    dendrite_hotkey: &str,
    axon_hotkey: &str,
    uuid: &str,
    body_hash: &str,
) -> String {
    format!("{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}")
}

/// Appends `s` as a JSON string the way Python's `json.dumps(ensure_ascii=True)` writes it.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn push_json_str_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_json_str(out, item);
    }
    out.push(']');
}

/// A plausible CPython recursive `sys.getsizeof` of the synapse (the `total_size` field).
/// Calibrated on the captures: one role and one message of ASCII text reproduce them exactly.
fn total_size(shape: &SynapseShape, roles: &[String], messages: &[String]) -> u64 {
    // Each str costs 49 bytes + its length (ASCII) and 8 bytes of list slot.
    let strings =
        |items: &[String]| -> u64 { items.iter().map(|s| 57 + s.len() as u64).sum::<u64>() };
    let base = match shape {
        SynapseShape::Classic => 3652 - 2 * 57,
        SynapseShape::V212 {
            task_name,
            target_model,
            seed,
        } => {
            3873 - 2 * 57
                + task_name.len() as u64
                + target_model.as_ref().map_or(0, |m| 49 + m.len() as u64)
                + seed.map_or(0, |_| 32)
        }
    };
    base + strings(roles) + strings(messages)
}

/// Builds the request a bittensor 10.5.0 dendrite sends for this synapse, signed by `id.hotkey`.
///
/// The body and hash depend only on the inputs; the signature is random (sr25519) but always
/// verifies against [`signature_message`] of the returned nonce and hash.
pub fn build_request(
    id: &DendriteIdentity,
    target: &AxonTarget,
    shape: &SynapseShape,
    roles: &[String],
    messages: &[String],
    timeout_secs: f64,
    nonce: u64,
) -> SynapseRequest {
    let hash = body_hash(messages);
    let dendrite_hotkey = id.hotkey.ss58();
    let message = signature_message(nonce, dendrite_hotkey, &target.hotkey, id.uuid, &hash);
    let signature = id.hotkey.sign_hex(message.as_bytes());
    let timeout = python_float_str(timeout_secs);
    let timeout_json = python_json_float(timeout_secs);
    let total = total_size(shape, roles, messages);

    let mut body = String::with_capacity(900 + messages.iter().map(String::len).sum::<usize>());
    body.push_str("{\"name\": ");
    push_json_str(&mut body, SYNAPSE_NAME);
    let _ = write!(
        body,
        ", \"timeout\": {timeout_json}, \"total_size\": {total}, \"header_size\": 0, \"dendrite\": \
         {{\"status_code\": null, \"status_message\": null, \"process_time\": null, \"ip\": "
    );
    push_json_str(&mut body, id.external_ip);
    let _ = write!(
        body,
        ", \"port\": null, \"version\": {}, \"nonce\": {nonce}, \"uuid\": ",
        id.version
    );
    push_json_str(&mut body, id.uuid);
    body.push_str(", \"hotkey\": ");
    push_json_str(&mut body, dendrite_hotkey);
    body.push_str(", \"signature\": ");
    push_json_str(&mut body, &signature);
    body.push_str(
        "}, \"axon\": {\"status_code\": null, \"status_message\": null, \"process_time\": null, \
         \"ip\": ",
    );
    push_json_str(&mut body, &target.ip);
    let _ = write!(
        body,
        ", \"port\": {}, \"version\": null, \"nonce\": null, \"uuid\": null, \"hotkey\": ",
        target.port
    );
    push_json_str(&mut body, &target.hotkey);
    body.push_str(
        ", \"signature\": null}, \"computed_body_hash\": \"\", \"required_hash_fields\": \
         [\"messages\"], ",
    );
    if let SynapseShape::V212 { task_name, .. } = shape {
        body.push_str("\"task_name\": ");
        push_json_str(&mut body, task_name);
        body.push_str(", ");
    }
    body.push_str("\"roles\": ");
    push_json_str_list(&mut body, roles);
    body.push_str(", \"messages\": ");
    push_json_str_list(&mut body, messages);
    body.push_str(", \"completion\": \"\"");
    if let SynapseShape::V212 {
        target_model, seed, ..
    } = shape
    {
        body.push_str(", \"target_model\": ");
        match target_model {
            Some(m) => push_json_str(&mut body, m),
            None => body.push_str("null"),
        }
        match seed {
            Some(s) => {
                let _ = write!(body, ", \"seed\": {s}");
            }
            None => body.push_str(", \"seed\": null"),
        }
    }
    body.push('}');

    let mut headers: Vec<(String, String)> = Vec::with_capacity(20);
    let mut h = |name: &str, value: String| headers.push((name.to_string(), value));
    h("name", SYNAPSE_NAME.to_string());
    h("timeout", timeout);
    h("bt_header_axon_ip", target.ip.clone());
    h("bt_header_axon_port", target.port.to_string());
    h("bt_header_axon_hotkey", target.hotkey.clone());
    h("bt_header_dendrite_ip", id.external_ip.to_string());
    h("bt_header_dendrite_version", id.version.to_string());
    h("bt_header_dendrite_nonce", nonce.to_string());
    h("bt_header_dendrite_uuid", id.uuid.to_string());
    h("bt_header_dendrite_hotkey", dendrite_hotkey.to_string());
    h("bt_header_dendrite_signature", signature);
    if matches!(shape, SynapseShape::V212 { .. }) {
        h("bt_header_input_obj_task_name", INPUT_OBJ_STR.to_string());
    }
    h("bt_header_input_obj_roles", INPUT_OBJ_LIST.to_string());
    h("bt_header_input_obj_messages", INPUT_OBJ_LIST.to_string());
    h("header_size", HEADER_SIZE.to_string());
    h("total_size", total.to_string());
    h("computed_body_hash", hash.clone());
    h("Content-Type", "application/json".to_string());

    SynapseRequest {
        path: format!("/{SYNAPSE_NAME}"),
        headers,
        body: body.into_bytes(),
        body_hash: hash,
        nonce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_hash() {
        assert_eq!(
            body_hash(&["What is 2+2?".to_string()]),
            "aa3b8458244b4728b8d4d96175f9336188c2c6fc536bfe4729ccc63b3abada42"
        );
        assert_eq!(
            sha3_256_hex(b""),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
    }

    #[test]
    fn json_strings_like_python_ensure_ascii() {
        let mut out = String::new();
        push_json_str(
            &mut out,
            "a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f} é 中 😀 \u{2028}",
        );
        assert_eq!(
            out,
            r#""a\"b\\c\n\r\t\b\f\u0000\u001f\u007f \u00e9 \u4e2d \ud83d\ude00 \u2028""#
        );
    }
}
