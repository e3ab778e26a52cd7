//! What a miner's streamed reply came to: the limits a reader enforces ([`ReplyLimits`], besides
//! the query's [`crate::deadline::Deadline`]), the
//! classification of how the reply ended ([`OutcomeKind`], [`Outcome`]), incremental UTF-8
//! decoding across network reads ([`Utf8Assembler`]), and the extraction of a rejection
//! message from an error reply ([`error_message`]).
//!
//! The reading itself lives in [`crate::dendrite`]; this module holds the pure parts so they
//! can be tested without sockets.

use std::time::Duration;

/// Bounds on reading one miner reply, enforced by [`crate::dendrite::MinerReply`] together
/// with the query's deadline (which bounds the whole reply, connect included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest wait from the start of the query until the first byte of a 200 reply's body
    /// (the deadline still applies when it comes first).
    pub first_byte_timeout: Duration,
    /// Most bytes of reply *text* kept; reading stops there with [`OutcomeKind::Oversize`].
    pub max_bytes: usize,
}

impl Default for ReplyLimits {
    /// 12 s to the first byte (bittensor's default synapse timeout), 1 MiB of text: far above
    /// any SN1 answer (the miners stream a few KiB), low enough to bound a fan-out's memory.
    fn default() -> Self {
        ReplyLimits {
            first_byte_timeout: Duration::from_secs(12),
            max_bytes: 1 << 20,
        }
    }
}

/// How a reply ended.
#[derive(Clone, Debug, PartialEq)]
pub enum OutcomeKind {
    /// 200 and a clean end of stream.
    Ok,
    /// A non-200 reply. `message` comes from the `{"message": ..}` body (or `detail` / `error`
    /// for Epistula miners) or the `bt_header_axon_status_message` header; the error body is
    /// never taken as completion text.
    AxonError {
        /// The HTTP status code.
        status: u16,
        /// The miner's reason, or the status' canonical reason phrase.
        message: String,
    },
    /// The query's deadline or the first-byte wait of [`ReplyLimits`] passed; the partial text
    /// is kept in [`Outcome::text`].
    Timeout {
        /// `true` when no body byte had arrived (the first-byte deadline, or the total one
        /// before anything came).
        before_first_byte: bool,
    },
    /// The TCP connection could not be made (refused, unreachable, connect timeout, bad address).
    ConnectFailure {
        /// What failed.
        message: String,
    },
    /// The reply broke: bad HTTP or chunk framing, a reset mid-stream, invalid UTF-8, an SSE
    /// `data:` line that is not a chat.completion.chunk.
    Malformed {
        /// What was wrong.
        message: String,
    },
    /// The text reached [`ReplyLimits::max_bytes`]: reading stopped, text kept up to the cap.
    Oversize,
}

impl OutcomeKind {
    /// A short snake_case label for logs, metrics and the CLI (`ok`, `axon_error`, `timeout`,
    /// `connect_failure`, `malformed`, `oversize`).
    pub fn label(&self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::AxonError { .. } => "axon_error",
            OutcomeKind::Timeout { .. } => "timeout",
            OutcomeKind::ConnectFailure { .. } => "connect_failure",
            OutcomeKind::Malformed { .. } => "malformed",
            OutcomeKind::Oversize => "oversize",
        }
    }

    /// True for [`OutcomeKind::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, OutcomeKind::Ok)
    }
}

/// The result of one miner query, available once the reply has ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How the reply ended.
    pub kind: OutcomeKind,
    /// The HTTP status, when a response head arrived.
    pub http_status: Option<u16>,
    /// Time from the start of the query to the first body byte of a 200 reply.
    pub time_to_first_byte: Option<Duration>,
    /// Time from the start of the query to its end (whatever the outcome).
    pub total_time: Duration,
    /// Body bytes received on the wire for a 200 reply (SSE framing included; error bodies not).
    pub bytes: usize,
    /// Number of text pieces handed out by `next_chunk`.
    pub chunks: usize,
    /// All text handed out, in order (partial on timeouts and errors, capped on oversize).
    pub text: String,
}

/// An invalid UTF-8 sequence in a reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 in the reply at byte {offset} of the text")]
pub struct InvalidUtf8 {
    /// The text of this read that came before the bad sequence (already valid).
    pub valid_text: String,
    /// Offset of the bad sequence, counted over all bytes pushed so far.
    pub offset: usize,
}

/// Incremental UTF-8 decoding of a byte stream that arrives in arbitrary pieces: a multi-byte
/// character split across two reads is carried over (at most 3 bytes) instead of failing the
/// way `bytes.decode("utf-8")` per read does in bittensor's SN1 streaming code.
#[derive(Debug, Default)]
pub struct Utf8Assembler {
    pending: Vec<u8>,
    consumed: usize,
}

impl Utf8Assembler {
    /// An assembler with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `bytes` after whatever was carried from the previous push. Returns the text
    /// that is complete now (possibly empty); an incomplete trailing sequence is kept for the
    /// next push. An invalid sequence is an error carrying the valid text before it.
    pub fn push(&mut self, bytes: &[u8]) -> Result<String, InvalidUtf8> {
        let joined;
        let data: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(bytes);
            joined = buf;
            &joined
        };
        let start = self.consumed;
        match std::str::from_utf8(data) {
            Ok(text) => {
                self.consumed += data.len();
                Ok(text.to_owned())
            }
            Err(err) => {
                let valid = err.valid_up_to();
                // `valid_up_to` guarantees this prefix is UTF-8; decoding it again cannot fail.
                let valid_text = String::from_utf8_lossy(&data[..valid]).into_owned();
                match err.error_len() {
                    None => {
                        self.pending = data[valid..].to_vec();
                        self.consumed += valid;
                        Ok(valid_text)
                    }
                    Some(_) => Err(InvalidUtf8 {
                        valid_text,
                        offset: start + valid,
                    }),
                }
            }
        }
    }

    /// Ends the stream: an incomplete sequence still pending is an error.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            self.pending.clear();
            Err(InvalidUtf8 {
                valid_text: String::new(),
                offset: self.consumed,
            })
        }
    }

    /// Bytes carried over, waiting for the rest of their character (0..=3).
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }
}

/// Keeps at most `room` bytes of `piece`, cut on a character boundary. Returns the kept part
/// and whether anything was cut.
pub fn cap_text(piece: &str, room: usize) -> (&str, bool) {
    if piece.len() <= room {
        return (piece, false);
    }
    let mut end = room;
    while !piece.is_char_boundary(end) {
        end -= 1;
    }
    (&piece[..end], true)
}

/// The most bytes of an error body read to find its message: the real axon's bodies are
/// ~120 bytes; a signature mismatch message is ~400.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// The message of a non-200 reply. Looks, in order, at the JSON body's `message` (bittensor
/// axon), `detail` (FastAPI `HTTPException`, what Epistula miners raise), `error.message` /
/// `error` (OpenAI-compatible servers), then at the `bt_header_axon_status_message` header,
/// and falls back to the status' reason phrase. The raw body is never returned as is: it may
/// be completion text.
pub fn error_message(status: u16, body: &[u8], header_message: Option<&str>) -> String {
    if let Some(message) = message_from_json(body) {
        return message;
    }
    if let Some(message) = header_message.filter(|m| !m.trim().is_empty()) {
        return message.to_owned();
    }
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|reason| format!("{status} {reason}"))
        .unwrap_or_else(|| format!("HTTP status {status}"))
}

fn message_from_json(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let pick = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    if let Some(m) = object.get("message").and_then(pick) {
        return Some(m);
    }
    if let Some(m) = object.get("detail").and_then(pick) {
        return Some(m);
    }
    match object.get("error") {
        Some(serde_json::Value::Object(e)) => e.get("message").and_then(pick),
        Some(other) => pick(other),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "aé中😀b\u{2028}z";

    #[test]
    fn every_split_point_of_a_multibyte_string_decodes_the_same() {
        let bytes = SAMPLE.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut asm = Utf8Assembler::new();
                let mut out = String::new();
                out += &asm.push(&bytes[..i]).unwrap();
                out += &asm.push(&bytes[i..j]).unwrap();
                out += &asm.push(&bytes[j..]).unwrap();
                asm.finish().unwrap();
                assert_eq!(out, SAMPLE, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn byte_by_byte_yields_each_character_once_complete() {
        let mut asm = Utf8Assembler::new();
        let pieces: Vec<String> = "😀".bytes().map(|b| asm.push(&[b]).unwrap()).collect();
        assert_eq!(pieces, vec!["", "", "", "😀"]);
        assert_eq!(asm.pending_bytes(), 0);
    }

    #[test]
    fn invalid_sequence_keeps_the_text_before_it() {
        let mut asm = Utf8Assembler::new();
        assert_eq!(asm.push(b"Hello ").unwrap(), "Hello ");
        let err = asm.push(b"wor\xffld").unwrap_err();
        assert_eq!(err.valid_text, "wor");
        assert_eq!(err.offset, 9);
    }

    #[test]
    fn invalid_continuation_after_a_carried_lead_byte_is_an_error() {
        let mut asm = Utf8Assembler::new();
        assert_eq!(asm.push(b"ab\xe4").unwrap(), "ab");
        assert_eq!(asm.pending_bytes(), 1);
        let err = asm.push(b"zz").unwrap_err();
        assert_eq!(err.valid_text, "");
        assert_eq!(err.offset, 2);
    }

    #[test]
    fn truncated_character_at_the_end_is_an_error() {
        let mut asm = Utf8Assembler::new();
        assert_eq!(asm.push(&"é".as_bytes()[..1]).unwrap(), "");
        assert!(asm.finish().is_err());
    }

    #[test]
    fn cap_text_cuts_on_a_char_boundary() {
        assert_eq!(cap_text("abc", 5), ("abc", false));
        assert_eq!(cap_text("abc", 3), ("abc", false));
        assert_eq!(cap_text("aé", 2), ("a", true));
        assert_eq!(cap_text("aé", 1), ("a", true));
        assert_eq!(cap_text("éé", 0), ("", true));
    }

    #[test]
    fn error_message_prefers_the_axon_json_body() {
        let body = br#"{"message":"Forbidden. Key is blacklisted: Unrecognized hotkey 5F3p."}"#;
        assert_eq!(
            error_message(403, body, Some("header text")),
            "Forbidden. Key is blacklisted: Unrecognized hotkey 5F3p."
        );
    }

    #[test]
    fn error_message_reads_fastapi_and_openai_shapes() {
        assert_eq!(
            error_message(400, br#"{"detail":"Request is too stale"}"#, None),
            "Request is too stale"
        );
        assert_eq!(
            error_message(
                429,
                br#"{"error":{"message":"rate limited","type":"x"}}"#,
                None
            ),
            "rate limited"
        );
    }

    #[test]
    fn error_message_falls_back_to_header_then_reason_never_raw_body() {
        assert_eq!(
            error_message(
                401,
                b"some completion text",
                Some("Not Verified with error: x")
            ),
            "Not Verified with error: x"
        );
        assert_eq!(
            error_message(500, b"plain text", None),
            "500 Internal Server Error"
        );
        assert_eq!(error_message(599, b"", Some("  ")), "HTTP status 599");
    }

    #[test]
    fn labels_are_stable() {
        assert_eq!(OutcomeKind::Ok.label(), "ok");
        assert_eq!(
            OutcomeKind::Timeout {
                before_first_byte: true
            }
            .label(),
            "timeout"
        );
        assert_eq!(OutcomeKind::Oversize.label(), "oversize");
    }
}
