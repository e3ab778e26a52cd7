//! SN1 "Epistula" request signing and its miner-side check (docs/protocol.md §6.2;
//! macrocosm-os/prompting `shared/epistula.py`: `generate_header`, `verify_signature`).
//!
//! * [`sign_request`] — the `Epistula-*` headers, in `generate_header`'s order.
//! * [`verify_request`] — `verify_signature` (8 s staleness, sr25519 over
//!   `"{sha256_hex(body)}.{uuid}.{timestamp}.{signed_for}"`), plus the miner's "is it for me"
//!   check when `expected_signed_for` is given. There is no nonce memory (as in prompting).
//! * [`body_field_headers`] — the extra headers the validator's httpx hook adds: `str(value)`
//!   of every body field except `messages`, `model` and `stream`.
//!
//! The secret signatures sign `f"{iv}.{signed_for}"` with `iv = ceil(ts / 1e4) * 1e4`, a
//! Python float, so the text is e.g. `1732000010000.0` (see [`secret_interval_texts`]).

use sha2::{Digest, Sha256};

use crate::keys::{Hotkey, verify_hex};
use crate::pystr::{python_float_str, python_str_json};

/// `Epistula-Version` value.
pub const EPISTULA_VERSION: &str = "2";
/// `ALLOWED_DELTA_MS` of `verify_signature`: a request older than this is stale.
pub const ALLOWED_DELTA_MS: u64 = 8000;

/// A list of Epistula headers (name, value), in the order they were generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpistulaHeaders(pub Vec<(String, String)>);

/// Why a miner refuses an Epistula request; `Display` is prompting's error text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EpistulaReject {
    /// `Epistula-Request-Signature` is missing.
    #[error("Invalid Signature")]
    MissingSignature,
    /// `Epistula-Timestamp` is missing or not an integer.
    #[error("Invalid Timestamp")]
    InvalidTimestamp,
    /// `Epistula-Signed-By` is missing or not an SS58 address.
    #[error("Invalid Sender key")]
    InvalidSender,
    /// `Epistula-Signed-For` is missing.
    #[error("Invalid receiver key")]
    InvalidReceiver,
    /// `Epistula-Uuid` is missing.
    #[error("Invalid uuid")]
    InvalidUuid,
    /// The request is addressed to another hotkey (the miner's own check).
    #[error("Bad Request, message is not intended for self")]
    NotForUs,
    /// `timestamp + 8000 < now_ms`.
    #[error("Request is too stale")]
    Stale,
    /// The signature does not verify (also a malformed signature).
    #[error("Signature Mismatch")]
    SignatureMismatch,
}

/// Lowercase hex SHA-256 of the exact body bytes.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The text of `iv - 1`, `iv`, `iv + 1` where `iv = ceil(timestamp_ms / 1e4) * 1e4` is a
/// Python float: for 1732000005123 → `1732000009999.0`, `1732000010000.0`, `1732000010001.0`.
pub fn secret_interval_texts(timestamp_ms: u64) -> [String; 3] {
    let iv = ((timestamp_ms as f64) / 1e4).ceil() * 1e4;
    [
        python_float_str(iv - 1.0),
        python_float_str(iv),
        python_float_str(iv + 1.0),
    ]
}

/// The message of `Epistula-Request-Signature`: `"{sha256_hex(body)}.{uuid}.{ts}.{signed_for}"`.
pub fn request_message(body: &[u8], uuid: &str, timestamp_ms: u64, signed_for: &str) -> String {
    format!("{}.{uuid}.{timestamp_ms}.{signed_for}", sha256_hex(body))
}

/// The `Epistula-*` headers for `body`, as prompting's `generate_header` makes them. The
/// `Signed-For` and secret-signature headers are only present when `signed_for` is given.
pub fn sign_request(
    hotkey: &Hotkey,
    body: &[u8],
    signed_for: Option<&str>,
    timestamp_ms: u64,
    uuid: &str,
) -> Vec<(String, String)> {
    let target = signed_for.unwrap_or("");
    let message = request_message(body, uuid, timestamp_ms, target);
    let mut headers = vec![
        ("Epistula-Version".to_string(), EPISTULA_VERSION.to_string()),
        ("Epistula-Timestamp".to_string(), timestamp_ms.to_string()),
        ("Epistula-Uuid".to_string(), uuid.to_string()),
        ("Epistula-Signed-By".to_string(), hotkey.ss58().to_string()),
        (
            "Epistula-Request-Signature".to_string(),
            hotkey.sign_hex(message.as_bytes()),
        ),
    ];
    if let Some(target) = signed_for.filter(|s| !s.is_empty()) {
        headers.push(("Epistula-Signed-For".to_string(), target.to_string()));
        for (i, iv) in secret_interval_texts(timestamp_ms).iter().enumerate() {
            let text = format!("{iv}.{target}");
            headers.push((
                format!("Epistula-Secret-Signature-{i}"),
                hotkey.sign_hex(text.as_bytes()),
            ));
        }
    }
    headers
}

/// `str(value)` headers for every top-level field of a JSON object body except `messages`,
/// `model` and `stream`. Values use Python's `str()` (dicts as their repr). serde_json's map
/// is sorted by key, so the headers come in key order rather than body order (header order
/// carries no meaning). A body that is not a JSON object gives no headers.
pub fn body_field_headers(body: &[u8]) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "messages" | "model" | "stream"))
        .map(|(k, v)| (k.clone(), python_str_json(v)))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The miner-side check. `expected_signed_for`: the miner's own hotkey, to refuse requests
/// addressed to someone else. Returns the signer's SS58 address.
pub fn verify_request(
    headers: &[(String, String)],
    body: &[u8],
    now_ms: u64,
    expected_signed_for: Option<&str>,
) -> Result<String, EpistulaReject> {
    let signed_for = header(headers, "Epistula-Signed-For");
    if let Some(expected) = expected_signed_for
        && signed_for != Some(expected)
    {
        return Err(EpistulaReject::NotForUs);
    }
    let signature =
        header(headers, "Epistula-Request-Signature").ok_or(EpistulaReject::MissingSignature)?;
    let timestamp: i128 = header(headers, "Epistula-Timestamp")
        .and_then(|t| t.trim().parse().ok())
        .ok_or(EpistulaReject::InvalidTimestamp)?;
    let signed_by = header(headers, "Epistula-Signed-By").ok_or(EpistulaReject::InvalidSender)?;
    let signed_for = signed_for.ok_or(EpistulaReject::InvalidReceiver)?;
    let uuid = header(headers, "Epistula-Uuid").ok_or(EpistulaReject::InvalidUuid)?;
    crate::ss58::decode(signed_by).map_err(|_| EpistulaReject::InvalidSender)?;
    if timestamp + i128::from(ALLOWED_DELTA_MS) < i128::from(now_ms) {
        return Err(EpistulaReject::Stale);
    }
    let message = format!("{}.{uuid}.{timestamp}.{signed_for}", sha256_hex(body));
    verify_hex(signed_by, message.as_bytes(), signature)
        .map_err(|_| EpistulaReject::SignatureMismatch)?;
    Ok(signed_by.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_texts_are_python_floats() {
        assert_eq!(
            secret_interval_texts(1732000005123),
            [
                "1732000009999.0".to_string(),
                "1732000010000.0".to_string(),
                "1732000010001.0".to_string()
            ]
        );
        // Exactly on a boundary: ceil keeps it.
        assert_eq!(secret_interval_texts(1732000010000)[1], "1732000010000.0");
    }

    #[test]
    fn body_fields_use_python_str() {
        let body = br#"{"messages": [], "model": "m", "stream": true, "seed": 7, "sampling_parameters": {"temperature": 0.7, "do_sample": true}, "task": "InferenceTask"}"#;
        let h = body_field_headers(body);
        assert_eq!(
            h,
            vec![
                (
                    "sampling_parameters".to_string(),
                    "{'do_sample': True, 'temperature': 0.7}".to_string()
                ),
                ("seed".to_string(), "7".to_string()),
                ("task".to_string(), "InferenceTask".to_string()),
            ]
        );
    }
}
