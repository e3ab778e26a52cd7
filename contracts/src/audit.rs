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
    /// W3C `traceparent` of the job's span, so the audit insert links to the request's trace
    /// (not stored in the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What the worker decided for answer quality (absent in records of older workers).
    #[serde(default)]
    pub quality: QualityRecord,
}

/// A request's answer-quality decisions: the scores its miners were picked by, where the
/// answer was committed, and every stall failover.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityRecord {
    /// The miners picked, in rank order: `[{"uid", "score", "judged", "explored"}]` (`score`
    /// null for a miner never judged); null when the sampling mode uses no scores.
    pub selection: serde_json::Value,
    /// The miner committed to (the first whose answer went to the client).
    pub commit_uid: Option<u16>,
    /// Characters of usable text it had sent when committed (the hedge threshold or more).
    pub commit_chars: Option<u32>,
    /// Milliseconds from the fan-out's start to the commit.
    pub commit_ms: Option<f64>,
    /// Stalls and failovers, in order: `[{"from_uid", "to_uid", "reason", "at_chars",
    /// "gap_ms"}]` (`to_uid` null: the answer ended with an error); null when none.
    pub failovers: serde_json::Value,
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
    /// How the reply counts for the miner's reliability score (absent in older records).
    #[serde(default)]
    pub quality: MinerQuality,
}

/// One reply as the reliability scores see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerQuality {
    /// The axon asked, `ip:port` (scores are per hotkey and axon).
    pub axon: Option<String>,
    /// `usable`, `unusable`, `stalled`, `failed` or `unknown` (dropped before it was judged).
    pub verdict: Option<String>,
    /// It was asked to continue another miner's stalled answer.
    pub continuation: bool,
}

/// Appended to a text cut so that its record fits the audit queue (the hash stays the whole
/// text's).
pub const CUT_MARKER: &str = "…[cut to fit the audit queue]";

/// Entries of `exclude` an audit record keeps; the rest are counted in a last entry.
pub const MAX_EXCLUDE_KEPT: usize = 64;

impl CompletionRecord {
    /// Serialized size in bytes (what travels on the audit queue).
    pub fn size(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }

    /// Cuts the largest texts (prompt messages, the answer, miner texts) until the record's
    /// serialized size is at most `max_bytes`, marking each cut text with [`CUT_MARKER`]; keeps
    /// every other field. Returns whether anything was cut. A record is never dropped for its
    /// size: what is left of it still says who asked what, of whom, and how it went.
    pub fn fit(&mut self, max_bytes: usize) -> bool {
        let mut cut = false;
        loop {
            let size = self.size();
            let Some(text) = (size > max_bytes).then(|| self.largest_text()).flatten() else {
                return cut;
            };
            cut = true;
            // JSON escapes make a text take up to 6× its bytes: cut at least the excess.
            let keep = text
                .len()
                .saturating_sub(size - max_bytes + CUT_MARKER.len())
                .min(text.len() / 2);
            let mut kept = cap(text, keep).to_string();
            kept.push_str(CUT_MARKER);
            *text = kept;
        }
    }

    /// The longest text still worth cutting, if any.
    fn largest_text(&mut self) -> Option<&mut String> {
        let messages = self.messages.iter_mut().flatten();
        let answer = self.completion.text.iter_mut();
        let miners = self.miners.iter_mut().filter_map(|m| m.text.text.as_mut());
        messages
            .chain(answer)
            .chain(miners)
            .filter(|t| t.len() > CUT_MARKER.len() * 2)
            .max_by_key(|t| t.len())
    }
}

/// A request's `exclude` as the audit log keeps it: at most [`MAX_EXCLUDE_KEPT`] entries, then
/// one `"+N more"`.
pub fn kept_exclusions(exclude: Vec<serde_json::Value>) -> serde_json::Value {
    let more = exclude.len().saturating_sub(MAX_EXCLUDE_KEPT);
    let mut kept: Vec<_> = exclude.into_iter().take(MAX_EXCLUDE_KEPT).collect();
    if more > 0 {
        kept.push(serde_json::json!(format!("+{more} more")));
    }
    serde_json::Value::Array(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str, miners: usize) -> CompletionRecord {
        let miner = MinerResponseRecord {
            uid: 1,
            hotkey: "5Hk".into(),
            outcome: "ok".into(),
            status_code: Some(200),
            time_to_first_byte_ms: Some(1.0),
            total_ms: Some(2.0),
            chunks: 1,
            bytes: text.len() as u64,
            text: ContentPolicy::Full.keep(text),
            clean_reason: None,
            selected: false,
            quality: MinerQuality::default(),
        };
        CompletionRecord {
            request_id: "r".into(),
            created_at: Utc::now(),
            api_key_id: "k".into(),
            endpoint: "chat".into(),
            netuid: 1,
            k: miners as u16,
            timeout_s: 10.0,
            strategy: "first".into(),
            sampling_mode: "random".into(),
            exclude: serde_json::json!([]),
            roles: vec!["user".into()],
            messages: Some(vec![text.to_string()]),
            messages_sha256: None,
            selected_uid: Some(1),
            completion: ContentPolicy::Full.keep(text),
            status: "answered".into(),
            error: None,
            time_to_first_chunk_ms: None,
            total_ms: 1.0,
            miners: vec![miner; miners],
            traceparent: None,
            quality: QualityRecord::default(),
        }
    }

    #[test]
    fn a_record_of_control_characters_is_cut_to_fit_and_marked() {
        // Each control character becomes six bytes of JSON: 640 KiB of them is ~4 MB.
        let hostile = "\u{1}".repeat(64 * 1024);
        let mut r = record(&hostile, 9);
        assert!(r.size() > 1 << 20);
        let whole = r.completion.sha256.clone();
        assert!(r.fit(1_000_000));
        assert!(r.size() <= 1_000_000, "{}", r.size());
        // Each text is either whole or cut and marked; the hashes stay the whole texts'.
        let texts: Vec<&str> = (r.messages.iter().flatten().map(String::as_str))
            .chain(r.completion.text.as_deref())
            .chain(r.miners.iter().filter_map(|m| m.text.text.as_deref()))
            .collect();
        let cut = texts.iter().filter(|t| t.ends_with(CUT_MARKER)).count();
        assert!(cut > 0);
        assert!(
            texts
                .iter()
                .all(|t| t.ends_with(CUT_MARKER) || *t == hostile)
        );
        assert_eq!(r.completion.sha256, whole);
        assert_eq!(r.miners.len(), 9, "every miner's row stays");
        // A record that fits is left alone.
        let mut small = record("fine", 3);
        let before = small.clone();
        assert!(!small.fit(1_000_000));
        assert_eq!(small, before);
    }

    #[test]
    fn exclusions_are_capped_with_a_count() {
        let many: Vec<_> = (0..1000).map(|i| serde_json::json!(i)).collect();
        let kept = kept_exclusions(many);
        let list = kept.as_array().map(Vec::len);
        assert_eq!(list, Some(MAX_EXCLUDE_KEPT + 1));
        assert_eq!(kept[MAX_EXCLUDE_KEPT], "+936 more");
    }

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
