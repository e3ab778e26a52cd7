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

/// Verdict on a streaming prefix, judged in one go. `prompt` is the last message of the
/// request. While streaming, use [`PrefixJudge`]: calling this on the growing text is quadratic.
pub fn on_prefix(text: &str, prompt: &str) -> PrefixVerdict {
    PrefixJudge::new(prompt).feed(text, prompt)
}

/// Bytes of text a reply may send while its verdict is still "wait" (whitespace, the start of a
/// refusal, a prompt echo, a `{` that may be an axon error body). A real answer does not open
/// with 4 KiB of blanks or of the user's own words, and an axon error body is a few hundred
/// bytes; past this a hostile miner would only hold the race (and its buffer) hostage. Then
/// whitespace and echoes are rejected (the user is better served by another miner's answer
/// than by a copy of the prompt, and a whole-text echo is rejected at the end anyway), while
/// text opening with `{` is released: it is too long to be an error body, so it is JSON the
/// user asked for.
pub const WAIT_CAP: usize = 4 * 1024;

/// Chars of the trimmed start kept for the refusal check (longer than every refusal).
const HEAD_CHARS: usize = 32;

/// Reason recorded for a reply that kept the verdict at "wait" past [`WAIT_CAP`] with blanks.
pub const STALLING: &str = "whitespace past the wait cap";

/// The incremental form of [`on_prefix`]: fed one chunk at a time, it does work proportional to
/// the chunk (never rescans the text so far) and keeps at most [`HEAD_CHARS`] chars.
#[derive(Clone, Debug, Default)]
pub struct PrefixJudge {
    /// Bytes fed so far.
    seen: usize,
    /// The first chars after the leading whitespace (empty while there are only blanks).
    head: String,
    /// Chars in `head`.
    head_chars: usize,
    /// Bytes of the trimmed prompt matched so far, `None` once the text left the prompt.
    echo: Option<usize>,
    /// Whitespace followed the echo without matching the prompt: anything else ends the echo.
    echo_tail: bool,
}

impl PrefixJudge {
    /// A judge for replies to `prompt` (the trimmed prompt is compared on each call).
    pub fn new(prompt: &str) -> PrefixJudge {
        PrefixJudge {
            echo: (!prompt.trim().is_empty()).then_some(0),
            ..PrefixJudge::default()
        }
    }

    /// Feeds the next `chunk` and returns the verdict on all text fed so far. `prompt` must
    /// be the one given to [`PrefixJudge::new`].
    pub fn feed(&mut self, chunk: &str, prompt: &str) -> PrefixVerdict {
        self.seen += chunk.len();
        let p = prompt.trim();
        for c in chunk.chars() {
            if self.head_chars == 0 && c.is_whitespace() {
                continue;
            }
            if self.head_chars < HEAD_CHARS {
                self.head.push(c);
                self.head_chars += 1;
            }
            if let Some(pos) = self.echo {
                let rest = p.get(pos..).unwrap_or_default();
                if !self.echo_tail && rest.starts_with(c) {
                    self.echo = Some(pos + c.len_utf8());
                } else if c.is_whitespace() {
                    self.echo_tail = true;
                } else {
                    self.echo = None;
                }
            }
        }
        let verdict = self.verdict();
        if verdict != PrefixVerdict::Wait || self.seen < WAIT_CAP {
            return verdict;
        }
        if self.head.is_empty() {
            PrefixVerdict::Reject(STALLING)
        } else if self.head.starts_with('{') {
            PrefixVerdict::Commit
        } else {
            PrefixVerdict::Reject(ECHO)
        }
    }

    fn verdict(&self) -> PrefixVerdict {
        let t = self.head.as_str();
        if t.is_empty() || t.starts_with('{') {
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
        if self.echo.is_some() {
            return PrefixVerdict::Wait;
        }
        PrefixVerdict::Commit
    }
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
    let head: String = t.chars().take(HEAD_CHARS).collect();
    let lower = head.to_lowercase();
    if REFUSALS.iter().any(|r| lower.starts_with(r)) {
        return Some(REFUSAL);
    }
    if t == prompt.trim() {
        return Some(ECHO);
    }
    None
}

fn is_error_body(t: &str) -> bool {
    // Longer than the wait cap, it was released as an answer while streaming (see [`WAIT_CAP`]).
    if !t.starts_with('{') || t.len() > WAIT_CAP {
        return false;
    }
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

    /// Feeds `text` to a judge char by char, checking it against [`on_prefix`] at every step.
    fn fed_like_the_whole(text: &str, prompt: &str) {
        let mut judge = PrefixJudge::new(prompt);
        let mut so_far = String::new();
        for c in text.chars() {
            so_far.push(c);
            let verdict = judge.feed(c.encode_utf8(&mut [0; 4]), prompt);
            assert_eq!(verdict, on_prefix(&so_far, prompt), "{so_far:?}");
            if verdict != PrefixVerdict::Wait {
                return;
            }
        }
    }

    #[test]
    fn the_judge_fed_chunk_by_chunk_agrees_with_the_whole_prefix() {
        for (text, prompt) in [
            ("  \n Once upon a time", "q"),
            ("I'm sorry, but I can't", "q"),
            ("I think so", "q"),
            ("Tell me a story", "Tell me a story"),
            ("Tell me \n\t", "Tell me a story"),
            ("Tell me \nx", "Tell me a story"),
            ("Tell you", "Tell me a story"),
            ("{\"message\": \"no\"}", "q"),
            ("  Tell me", "  Tell me a story  "),
        ] {
            fed_like_the_whole(text, prompt);
        }
    }

    #[test]
    fn a_hundred_thousand_one_byte_blanks_cost_little_and_are_rejected_at_the_cap() {
        let mut judge = PrefixJudge::new("Tell me a story");
        let started = std::time::Instant::now();
        let mut verdicts = Vec::new();
        for _ in 0..100_000 {
            verdicts.push(judge.feed(" ", "Tell me a story"));
        }
        let took = started.elapsed();
        // Before: the whole text was rescanned per chunk, 9 s of CPU for these chunks.
        assert!(
            took < std::time::Duration::from_millis(200),
            "took {took:?}"
        );
        assert!(
            verdicts[..WAIT_CAP - 1]
                .iter()
                .all(|v| *v == PrefixVerdict::Wait)
        );
        assert_eq!(verdicts[WAIT_CAP - 1], PrefixVerdict::Reject(STALLING));
    }

    #[test]
    fn a_long_echo_is_rejected_at_the_cap_and_long_json_released() {
        let prompt = "word ".repeat(2_000);
        let mut judge = PrefixJudge::new(&prompt);
        let verdicts: Vec<_> = prompt
            .as_bytes()
            .chunks(7)
            .map(|c| judge.feed(std::str::from_utf8(c).unwrap(), &prompt))
            .collect();
        assert!(verdicts.contains(&PrefixVerdict::Reject(ECHO)));
        let first = verdicts.iter().position(|v| *v != PrefixVerdict::Wait);
        assert_eq!(first, Some(WAIT_CAP.div_ceil(7) - 1));

        let json = format!("{{\"a\": \"{}\"}}", "x".repeat(WAIT_CAP));
        let mut judge = PrefixJudge::new("q");
        assert_eq!(judge.feed(&json[..100], "q"), PrefixVerdict::Wait);
        assert_eq!(judge.feed(&json[100..], "q"), PrefixVerdict::Commit);
        assert_eq!(on_final(&json, "q"), None);
    }
}
