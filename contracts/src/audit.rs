//! The audit record: one per request, what was asked, of whom, what came back and how fast.
//! The worker publishes it to the JetStream stream `<PREFIX>_AUDIT`; the audit writer inserts it
//! into Postgres (`completions` + `miner_responses`).
//!
//! Content (prompts and texts) is kept, hashed or dropped by [`ContentPolicy`] *before* the
//! record leaves the worker, so a `hash` or `none` deployment never has prompts in the queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the audit log keeps of prompts and answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ContentPolicy {
    /// Prompts and texts as they are (pruned to hashes after the retention period).
    #[default]
    Full,
    /// Only SHA-256 hashes of prompts and texts.
    Hash,
    /// Neither prompts, texts nor their hashes.
    None,
}

/// A text as the audit log keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The text itself (policy `full`).
    pub text: Option<String>,
    /// Its SHA-256, hex (policies `full` and `hash`).
    pub sha256: Option<String>,
}

impl ContentPolicy {
    /// Applies the policy to one text.
    pub fn keep(self, text: &str) -> Kept {
        match self {
            ContentPolicy::Full => Kept {
                text: Some(text.to_string()),
                sha256: Some(sha256_hex(text.as_bytes())),
            },
            ContentPolicy::Hash => Kept {
                text: None,
                sha256: Some(sha256_hex(text.as_bytes())),
            },
            ContentPolicy::None => Kept::default(),
        }
    }

    /// Applies the policy to a list of messages (hashed as their JSON).
    pub fn keep_all(self, messages: &[String]) -> (Option<Vec<String>>, Option<String>) {
        self.keep_all_capped(messages, usize::MAX)
    }

    /// Like [`ContentPolicy::keep`], keeping at most `max_bytes` of the text (cut on a
    /// character boundary, NUL characters replaced: Postgres text cannot hold them); the hash
    /// is always of the whole text.
    pub fn keep_capped(self, text: &str, max_bytes: usize) -> Kept {
        let mut kept = self.keep(text);
        kept.text = kept.text.map(|t| storable(cap(&t, max_bytes)));
        kept
    }

    /// Like [`ContentPolicy::keep_all`], keeping at most `budget` bytes across all messages.
    pub fn keep_all_capped(
        self,
        messages: &[String],
        budget: usize,
    ) -> (Option<Vec<String>>, Option<String>) {
        let json = serde_json::to_string(messages).unwrap_or_default();
        let each = budget / messages.len().max(1);
        let capped = || messages.iter().map(|m| storable(cap(m, each))).collect();
        match self {
            ContentPolicy::Full => (Some(capped()), Some(sha256_hex(json.as_bytes()))),
            ContentPolicy::Hash => (None, Some(sha256_hex(json.as_bytes()))),
            ContentPolicy::None => (None, None),
        }
    }
}

/// `text` without NUL characters (replaced by U+FFFD), which Postgres `text` and `jsonb` refuse.
pub fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_string()
    }
}

/// At most `max` bytes of `text`, cut on a character boundary.
pub fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl ContentPolicy {}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One request, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletionRecord {
    /// The request id (UUID v7, time-ordered).
    pub request_id: String,
    /// When the api received it.
    pub created_at: DateTime<Utc>,
    /// Id of the API key (never the key).
    pub api_key_id: String,
    /// `chat` or `echo`.
    pub endpoint: String,
    /// Subnet.
    pub netuid: u16,
    /// Miners asked for.
    pub k: u16,
    /// Requested timeout, seconds.
    pub timeout_s: f64,
    /// `first`, `longest` or `shortest`.
    pub strategy: String,
    /// `random` or `top_incentive`.
    pub sampling_mode: String,
    /// The request's `exclude`, as JSON.
    pub exclude: serde_json::Value,
    /// Roles of the messages.
    pub roles: Vec<String>,
    /// The messages (policy `full` only).
    pub messages: Option<Vec<String>>,
    /// SHA-256 of the messages' JSON.
    pub messages_sha256: Option<String>,
    /// The miner whose answer was sent (-1 for echo, none when no answer).
    pub selected_uid: Option<i32>,
    /// The answer sent to the client.
    pub completion: Kept,
    /// `answered`, `broken`, `timeout`, `no_answer`, `no_candidates`, `cancelled`, `echo`.
    pub status: String,
    /// The error shown to the client, if any.
    pub error: Option<String>,
    /// Milliseconds from the worker's start to the first chunk sent.
    pub time_to_first_chunk_ms: Option<f64>,
    /// Milliseconds the worker spent on the job.
    pub total_ms: f64,
    /// One row per miner asked.
    pub miners: Vec<MinerResponseRecord>,
}

/// One miner's reply to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinerResponseRecord {
    /// The miner.
    pub uid: u16,
    /// Its hotkey, SS58.
    pub hotkey: String,
    /// `ok`, `empty`, `refused`, `error`, `timeout`, `connect_failure`, `cancelled`.
    pub outcome: String,
    /// HTTP status of its reply.
    pub status_code: Option<u16>,
    /// Milliseconds to its first body byte.
    pub time_to_first_byte_ms: Option<f64>,
    /// Milliseconds until its reply ended.
    pub total_ms: Option<f64>,
    /// Chunks received.
    pub chunks: u32,
    /// Bytes received.
    pub bytes: u64,
    /// Its text (capped), per the content policy.
    pub text: Kept,
    /// Why the text was not used (cleaning) or how the reply failed.
    pub clean_reason: Option<String>,
    /// Whether its answer was sent to the client.
    pub selected: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_content_keeps_the_hash_of_the_whole_text() {
        let text = "héllo\0wörld".repeat(10);
        let kept = ContentPolicy::Full.keep_capped(&text, 8);
        assert_eq!(kept.text.as_deref(), Some("héllo\u{FFFD}w"));
        assert_eq!(kept.sha256, Some(sha256_hex(text.as_bytes())));
        let (messages, hash) =
            ContentPolicy::Full.keep_all_capped(&["a".repeat(10), "b".repeat(10)], 8);
        assert_eq!(messages, Some(vec!["aaaa".to_string(), "bbbb".to_string()]));
        assert!(hash.is_some());
        assert_eq!(cap("é", 1), "");
    }
}
