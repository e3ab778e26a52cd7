//! The axon side: how a real bittensor 10.x axon checks a request (docs/protocol.md §5.1, §7),
//! for the simulated miners and for tests of our own dendrite.
//!
//! [`AxonVerifier::verify`] runs the real `AxonMiddleware.dispatch` steps in order, with the
//! real status codes and `status_message` texts:
//! 1. preprocess: route (`404 Synapse name 'X' not found. Available synapses [...]`), synapse
//!    from headers (any parse failure → `500 Internal Server Error #<uuid4>`);
//! 2. blacklist (`403 Forbidden. Key is blacklisted: {reason}.`);
//! 3. `default_verify` (`401 Not Verified with error: ...`): hotkey, nonce rules, signature
//!    against the verifier's *own* hotkey; the nonce is stored as soon as the signature checks
//!    out (as the real axon does, before the body is looked at);
//! 4. (priority is not emulated) 5. `verify_body_integrity`: JSON body, body-hash recompute
//!    (mismatch → `500 Internal Server Error #<uuid4>`, the real axon's generic text).
//!
//! The nonce store maps `"{hotkey}:{uuid}"` to the last accepted nonce. The real axon never
//! forgets; we keep at most [`MAX_NONCE_KEYS`] keys and evict the oldest key beyond that.
//! An evicted key falls back to the time-window rule (≥ 7.2 dendrites), so a replay would
//! need the same uuid, a request less than 4 s + timeout old and 100 000 newer keys.

mod headers;
mod nonces;

use std::sync::Mutex;

use crate::keys::verify_bytes;
use crate::ss58::{self, Ss58Error};
use crate::synapse::{SYNAPSE_NAME, body_hash, sha3_256_hex};
use headers::{SynapseHeaders, parse_headers};
use nonces::NonceStore;

/// `V_7_2_0`: dendrites at or above this version get the time-window nonce rule.
pub const V_7_2_0: i128 = 7_002_000;
/// `ALLOWED_DELTA`: 4 s of clock skew allowed on a first nonce, in nanoseconds.
pub const ALLOWED_DELTA_NS: i128 = 4_000_000_000;
/// Most `"hotkey:uuid"` keys remembered (≈ 100 bytes each, so ≈ 10 MB at most).
pub const MAX_NONCE_KEYS: usize = 100_000;
/// The plain ping synapse every real axon serves at `/Synapse` (attached in `Axon.__init__`).
pub const PING_SYNAPSE_NAME: &str = "Synapse";

/// A refusal, exactly as the real axon would send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxonReject {
    /// HTTP status (400, 401, 403, 404, 500).
    pub status: u16,
    /// The `bt_header_axon_status_message` / `{"message": ...}` text.
    pub message: String,
}

/// A request that passed every check, with the fields a miner needs.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedSynapse {
    /// The route (synapse class) name: `StreamPromptingSynapse` or `Synapse`.
    pub name: String,
    /// The caller's hotkey (SS58), as verified.
    pub dendrite_hotkey: String,
    /// The accepted nonce.
    pub nonce: u64,
    /// The dendrite uuid.
    pub uuid: String,
    /// The synapse timeout from the body (12.0 when absent or null).
    pub timeout_secs: f64,
    /// `roles` from the body (empty for the ping synapse).
    pub roles: Vec<String>,
    /// `messages` from the body (empty for the ping synapse).
    pub messages: Vec<String>,
    /// `task_name` from the body, when it is a string.
    pub task_name: Option<String>,
    /// The whole parsed JSON body.
    pub body: serde_json::Value,
}

/// An axon's request checks: its own hotkey, the served synapse names and the nonce store.
/// Thread-safe (`&self` everywhere, a mutex around the nonce store).
#[derive(Debug)]
pub struct AxonVerifier {
    hotkey: String,
    synapses: Vec<String>,
    require_task_name: bool,
    nonces: Mutex<NonceStore>,
}

/// `{"message":"..."}`, compact, as Starlette's JSONResponse writes the axon's error body.
pub fn error_body(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

fn reject(status: u16, message: impl Into<String>) -> AxonReject {
    AxonReject {
        status,
        message: message.into(),
    }
}

/// The real axon's generic 500 text for exceptions that are not SynapseExceptions.
fn internal_error() -> AxonReject {
    reject(
        500,
        format!("Internal Server Error #{}", uuid::Uuid::new_v4()),
    )
}

fn not_verified(why: impl std::fmt::Display) -> AxonReject {
    reject(401, format!("Not Verified with error: {why}"))
}

/// Python's `list.__repr__` of a list of names: `['Synapse', 'StreamPromptingSynapse']`.
fn names_repr(names: &[String]) -> String {
    crate::pystr::python_str_list(names)
}

fn ss58_error_text(e: &Ss58Error) -> &'static str {
    // bittensor-wallet: "Invalid SS58 address: {sp_core PublicError}".
    match e {
        Ss58Error::NotBase58 => "Base 58 requirement is violated",
        Ss58Error::BadLength(_) => "Length is bad",
        Ss58Error::BadPrefix(_) => "Invalid SS58 prefix byte.",
        Ss58Error::BadChecksum => "Invalid checksum",
    }
}

/// Python's `Keypair.verify(message, signature)` as the axon calls it: `Err(text)` is the
/// exception text, `Ok(false)` a plain mismatch.
fn keypair_verify(public: &[u8; 32], message: &[u8], signature: &str) -> Result<bool, String> {
    let digits = signature
        .strip_prefix("0x")
        .ok_or("Invalid signature format. Expected hex string.")?;
    let bytes = hex::decode(digits).map_err(|e| format!("Invalid hex string: {e:?}"))?;
    let sig: [u8; 64] = bytes
        .try_into()
        .map_err(|_| "Invalid signature".to_string())?;
    if verify_bytes(public, message, &sig) {
        return Ok(true);
    }
    let wrapped = [b"<Bytes>".as_slice(), message, b"</Bytes>".as_slice()].concat();
    Ok(verify_bytes(public, &wrapped, &sig))
}

impl AxonVerifier {
    /// A verifier for the axon whose hotkey is `axon_hotkey_ss58`, serving `/Synapse` and
    /// `/StreamPromptingSynapse` in either shape (classic or v2.12: `task_name` optional).
    pub fn new(axon_hotkey_ss58: String) -> Self {
        AxonVerifier {
            hotkey: axon_hotkey_ss58,
            synapses: vec![PING_SYNAPSE_NAME.to_string(), SYNAPSE_NAME.to_string()],
            require_task_name: false,
            nonces: Mutex::new(NonceStore::default()),
        }
    }

    /// Behave like a prompting v2.8–v2.12.1 miner, whose synapse has a required `task_name`:
    /// a request without `bt_header_input_obj_task_name` (the classic shape) gets a 500.
    pub fn requiring_task_name(mut self) -> Self {
        self.require_task_name = true;
        self
    }

    /// The axon hotkey signatures are checked against.
    pub fn hotkey(&self) -> &str {
        &self.hotkey
    }

    /// Number of `"hotkey:uuid"` keys in the nonce store.
    pub fn stored_nonce_keys(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NonceStore> {
        self.nonces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks one request as a 10.x axon would. `headers` names may be in any case; `now_ns`
    /// is the axon's `time.time_ns()`; `blacklist` returns `Some(reason)` to refuse a hotkey
    /// (it gets `""` when the hotkey header is absent).
    pub fn verify(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        now_ns: u64,
        blacklist: &dyn Fn(&str) -> Option<String>,
    ) -> Result<VerifiedSynapse, AxonReject> {
        // 1. preprocess: request_name = request.url.path.split("/")[1]
        let path = path.split(['?', '#']).next().unwrap_or("");
        let Some(name) = path.split('/').nth(1) else {
            return Err(reject(
                400,
                format!("Improperly formatted request. Could not parser request {path}."),
            ));
        };
        if !self.synapses.iter().any(|s| s == name) {
            return Err(reject(
                404,
                format!(
                    "Synapse name '{name}' not found. Available synapses {}",
                    names_repr(&self.synapses)
                ),
            ));
        }
        let is_stream = name == SYNAPSE_NAME;
        let h = parse_headers(headers, is_stream, is_stream && self.require_task_name)
            .map_err(|()| internal_error())?;

        // 2. blacklist
        if let Some(reason) = blacklist(h.hotkey.as_deref().unwrap_or("")) {
            return Err(reject(
                403,
                format!("Forbidden. Key is blacklisted: {reason}."),
            ));
        }

        // 3. default_verify
        let (hotkey, nonce, uuid) = self.default_verify(&h, now_ns)?;

        // 5. verify_body_integrity + building the synapse from the body
        let verified = self
            .check_body(name, is_stream, body, h.computed_body_hash.as_deref())
            .ok_or_else(internal_error)?;
        Ok(VerifiedSynapse {
            dendrite_hotkey: hotkey,
            nonce,
            uuid,
            ..verified
        })
    }

    /// `Axon.default_verify`; on success stores the nonce and returns (hotkey, nonce, uuid).
    fn default_verify(
        &self,
        h: &SynapseHeaders,
        now_ns: u64,
    ) -> Result<(String, u64, String), AxonReject> {
        let hotkey = h
            .hotkey
            .clone()
            .ok_or_else(|| not_verified("No SS58 formatted address or public key provided."))?;
        let public = ss58::decode(&hotkey)
            .map_err(|e| not_verified(format!("Invalid SS58 address: {}", ss58_error_text(&e))))?;
        let uuid_text = h.uuid.clone().unwrap_or_else(|| "None".to_string());
        let body_hash_text = h
            .computed_body_hash
            .clone()
            .unwrap_or_else(|| "None".to_string());
        let nonce = h.nonce.ok_or_else(|| not_verified("Missing Nonce"))?;
        let message = format!(
            "{nonce}.{hotkey}.{}.{uuid_text}.{body_hash_text}",
            self.hotkey
        );
        let endpoint_key = format!("{hotkey}:{uuid_text}");

        let stored = self.lock().get(&endpoint_key);
        // >= 7.2.0 dendrites: a first nonce must be recent (older versions: no time window).
        if h.version.is_some_and(|v| v >= V_7_2_0)
            && stored.is_none()
            && nonce_is_stale(nonce, now_ns, h.timeout)
        {
            let timeout_ns = h.timeout.unwrap_or(0.0) * 1e9;
            let diff = (i128::from(now_ns) - nonce) as f64 / 1e9;
            let allowed = (ALLOWED_DELTA_NS as f64 + timeout_ns) / 1e9;
            return Err(not_verified(format!(
                "Nonce is too old: acceptable delta is {allowed:.2} seconds but request was \
                 {diff:.2} seconds old"
            )));
        }
        let replayed = "Nonce is too old, a newer one was last processed";
        if stored.is_some_and(|s| nonce <= s) {
            return Err(not_verified(replayed));
        }

        let signature = h
            .signature
            .as_deref()
            .ok_or_else(|| not_verified("Missing Signature"))?;
        match keypair_verify(&public, message.as_bytes(), signature) {
            Ok(true) => {}
            Ok(false) => {
                return Err(not_verified(format!(
                    "Signature mismatch with {message} and {signature}"
                )));
            }
            Err(text) => return Err(not_verified(text)),
        }

        // Store under the lock, re-checking: a concurrent request may have stored a newer one.
        {
            let mut store = self.lock();
            if store.get(&endpoint_key).is_some_and(|s| nonce <= s) {
                return Err(not_verified(replayed));
            }
            store.store(endpoint_key, nonce);
        }
        let nonce = u64::try_from(nonce).map_err(|_| internal_error())?;
        Ok((hotkey, nonce, uuid_text))
    }

    /// `verify_body_integrity`: parse the body as the synapse and recompute its hash.
    fn check_body(
        &self,
        name: &str,
        is_stream: bool,
        body: &[u8],
        header_hash: Option<&str>,
    ) -> Option<VerifiedSynapse> {
        let text = std::str::from_utf8(body).ok()?;
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let obj = value.as_object()?;
        let timeout_secs = match obj.get("timeout") {
            None | Some(serde_json::Value::Null) => 12.0,
            // pydantic's lax mode also takes a numeric string.
            Some(serde_json::Value::String(s)) => s.trim().parse().ok()?,
            Some(v) => v.as_f64()?,
        };
        let str_list = |key: &str| -> Option<Vec<String>> {
            obj.get(key)?
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let (roles, messages, task_name, hash) = if is_stream {
            let roles = str_list("roles")?;
            let messages = str_list("messages")?;
            let task_name = match obj.get("task_name") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(_) if self.require_task_name => return None,
                None if self.require_task_name => return None,
                _ => None,
            };
            let hash = body_hash(&messages);
            (roles, messages, task_name, hash)
        } else {
            // Plain Synapse: no hash fields, so the hash is sha3_256("").
            (Vec::new(), Vec::new(), None, sha3_256_hex(b""))
        };
        if header_hash.unwrap_or("") != hash {
            return None;
        }
        Some(VerifiedSynapse {
            name: name.to_string(),
            dendrite_hotkey: String::new(),
            nonce: 0,
            uuid: String::new(),
            timeout_secs,
            roles,
            messages,
            task_name,
            body: value,
        })
    }
}

/// The ≥ 7.2 first-nonce rule: `nonce <= now - ALLOWED_DELTA - (timeout or 0) * 1e9`, with
/// Python's mix of exact ints and floats (a float timeout makes the window a float).
fn nonce_is_stale(nonce: i128, now_ns: u64, timeout: Option<f64>) -> bool {
    let base = i128::from(now_ns) - ALLOWED_DELTA_NS;
    match timeout {
        Some(t) if t != 0.0 => {
            let window = base as f64 - t * 1e9;
            if window.is_nan() {
                return false;
            }
            // An integer is <= a float iff it is <= the float's floor (exact comparison).
            let floor = window.floor();
            if floor >= i128::MAX as f64 {
                true
            } else if floor <= i128::MIN as f64 {
                false
            } else {
                nonce <= floor as i128
            }
        }
        _ => nonce <= base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_rule_uses_python_int_and_float_arithmetic() {
        let now = 1_795_610_583_274_304_732u64 + 16_000_000_000;
        let nonce = i128::from(now) - 16_000_000_000;
        assert!(nonce_is_stale(nonce, now, Some(12.0)));
        assert!(!nonce_is_stale(nonce + 256, now, Some(12.0)));
        assert!(nonce_is_stale(nonce + 12_000_000_000, now, None));
        assert!(nonce_is_stale(nonce + 12_000_000_000, now, Some(0.0)));
        assert!(!nonce_is_stale(nonce, now, Some(f64::NAN)));
    }

    #[test]
    fn error_body_is_compact_json() {
        assert_eq!(error_body("a \"b\" é"), "{\"message\":\"a \\\"b\\\" é\"}");
    }
}
