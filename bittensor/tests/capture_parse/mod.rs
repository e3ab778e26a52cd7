//! A tiny HTTP/1.1 request parser for the captured requests, plus helpers shared by the
//! capture-based tests.

#![allow(
    dead_code,
    reason = "each test crate uses a different part of these helpers"
)]

use std::path::Path;

use serde_json::Value;
use sn1_bittensor::keyfile::load_keyfile;
use sn1_bittensor::keys::Hotkey;

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
pub const VALIDATOR: &str = "5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5";
pub const MINER: &str = "5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7";

/// The four captured StreamPromptingSynapse requests.
pub const STREAM_CAPTURES: [&str; 4] = [
    "stream_classic",
    "stream_v2.12",
    "stream_blacklisted_403",
    "stream_timeout_408",
];

/// One parsed HTTP request.
#[derive(Clone, Debug)]
pub struct CapturedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CapturedRequest {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no header {name}"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// A copy with header `name` replaced (or removed when `value` is None).
    pub fn with_header(&self, name: &str, value: Option<&str>) -> CapturedRequest {
        let mut out = self.clone();
        out.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            out.headers.push((name.to_string(), v.to_string()));
        }
        out
    }
}

/// Parses `METHOD path HTTP/1.1\r\nName: value\r\n...\r\n\r\nbody` (body = Content-Length bytes).
pub fn parse_request(raw: &[u8]) -> CapturedRequest {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_string();
    let path = request_line.next().unwrap().to_string();
    assert_eq!(request_line.next(), Some("HTTP/1.1"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("header line");
            (k.to_string(), v.to_string())
        })
        .collect();
    let body = raw[split + 4..].to_vec();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    assert_eq!(body.len(), len, "body length matches Content-Length");
    CapturedRequest {
        method,
        path,
        headers,
        body,
    }
}

pub fn load_capture(name: &str) -> CapturedRequest {
    let path = Path::new(DATA)
        .join("captures")
        .join(format!("{name}.request.http"));
    parse_request(&std::fs::read(path).unwrap())
}

pub fn validator_hotkey() -> Hotkey {
    load_keyfile(
        &Path::new(DATA).join("wallets/sn1-validator/hotkeys/default"),
        None,
    )
    .unwrap()
}

pub fn miner_hotkey() -> Hotkey {
    load_keyfile(
        &Path::new(DATA).join("wallets/sn1-miner/hotkeys/default"),
        None,
    )
    .unwrap()
}

pub fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}
