//! Is a miner's text a usable answer? Checked on the growing prefix while it streams (so the
//! first miner with valid text can be streamed at once) and on the whole text at the end.
//!
//! Rejected: empty or whitespace-only text, an axon error body (`{"message": ...}`) arriving as
//! text, refusals, and echoes of the prompt. Invalid UTF-8 never gets here: the dendrite
//! classifies it as malformed.

/// What the prefix seen so far says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixVerdict {
    /// Usable: stream it.
    Commit,
    /// Could still turn out either way: wait for more text.
    Wait,
    /// Not usable, whatever follows.
    Reject(&'static str),
}

/// Why a whole text is not usable, or `None` when it is.
pub type FinalVerdict = Option<&'static str>;

/// Openings of answers that refuse. Compared case-insensitively on the trimmed start.
const REFUSALS: &[&str] = &[
    "i'm sorry, but i can",
    "i am sorry, but i can",
    "i’m sorry, but i can",
    "sorry, i can't",
    "sorry, but i can't",
    "i cannot help with",
    "i can't help with",
    "i can't assist with",
    "i cannot assist with",
    "i'm unable to help",
    "i am unable to help",
];

/// Reason recorded for whitespace-only text.
pub const EMPTY: &str = "empty";
/// Reason recorded for an axon error body received as text.
pub const ERROR_BODY: &str = "axon error body";
/// Reason recorded for a refusal.
pub const REFUSAL: &str = "refusal";
/// Reason recorded for an echo of the prompt.
pub const ECHO: &str = "echo of the prompt";

/// Verdict on a streaming prefix. `prompt` is the last message of the request.
pub fn on_prefix(text: &str, prompt: &str) -> PrefixVerdict {
    let t = text.trim_start();
    if t.is_empty() {
        return PrefixVerdict::Wait;
    }
    if t.starts_with('{') {
        // Could be `{"message": "..."}`: decide on the whole text.
        return PrefixVerdict::Wait;
    }
    let lower = t.to_lowercase();
    for refusal in REFUSALS {
        if lower.starts_with(refusal) {
            return PrefixVerdict::Reject(REFUSAL);
        }
        if refusal.starts_with(lower.as_str()) {
            return PrefixVerdict::Wait;
        }
    }
    let p = prompt.trim();
    if !p.is_empty() && p.starts_with(t.trim_end()) {
        // So far the miner repeats the prompt.
        return PrefixVerdict::Wait;
    }
    PrefixVerdict::Commit
}

/// Verdict on a complete text.
pub fn on_final(text: &str, prompt: &str) -> FinalVerdict {
    let t = text.trim();
    if t.is_empty() {
        return Some(EMPTY);
    }
    if is_error_body(t) {
        return Some(ERROR_BODY);
    }
    let lower = t.to_lowercase();
    if REFUSALS.iter().any(|r| lower.starts_with(r)) {
        return Some(REFUSAL);
    }
    if t == prompt.trim() {
        return Some(ECHO);
    }
    None
}

fn is_error_body(t: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Object(map)) => map.contains_key("message") && map.len() <= 2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(on_prefix("  ", "q"), PrefixVerdict::Wait);
        assert_eq!(on_prefix("Once upon", "q"), PrefixVerdict::Commit);
        assert_eq!(on_prefix("{\"mess", "q"), PrefixVerdict::Wait);
        assert_eq!(on_prefix("I", "q"), PrefixVerdict::Wait);
        assert_eq!(on_prefix("I think", "q"), PrefixVerdict::Commit);
        assert_eq!(
            on_prefix("I'm sorry, but I can't do that", "q"),
            PrefixVerdict::Reject(REFUSAL)
        );
        assert_eq!(on_prefix("Tell me", "Tell me a story"), PrefixVerdict::Wait);
        assert_eq!(
            on_prefix("Tell you", "Tell me a story"),
            PrefixVerdict::Commit
        );
    }

    #[test]
    fn finals() {
        assert_eq!(on_final(" \n\t", "q"), Some(EMPTY));
        assert_eq!(
            on_final(r#"{"message":"Forbidden. Key is blacklisted"}"#, "q"),
            Some(ERROR_BODY)
        );
        assert_eq!(
            on_final("I'm sorry, but I can't help with that.", "q"),
            Some(REFUSAL)
        );
        assert_eq!(on_final("Tell me a story", "Tell me a story"), Some(ECHO));
        assert_eq!(on_final("{\"a\": 1, \"b\": 2, \"c\": 3}", "q"), None);
        assert_eq!(on_final("Once upon a time.", "q"), None);
        assert_eq!(on_final("I", "q"), None);
    }
}
