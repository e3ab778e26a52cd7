//! Incremental parsing of an OpenAI-style Server-Sent-Events reply (what Epistula miners and
//! OpenAI-compatible servers stream, docs/protocol.md §6.3): `data: {chat.completion.chunk}` events
//! and the final `data: [DONE]`, fed as bytes in arbitrary network pieces.
//!
//! Entry point: [`SseParser::push`]. Lines end with `\n` or `\r\n`; an event ends at a blank
//! line and its `data:` lines are joined with `\n` (the SSE rules); comments (`:`), `event:`,
//! `id:` and `retry:` lines are ignored. Anything else is not SSE and is an error, so a miner
//! that answers plain JSON or text is caught instead of read as an empty reply.

/// Why an SSE reply is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line was not valid UTF-8.
    #[error("invalid UTF-8 in an SSE line")]
    InvalidUtf8,
    /// A line that is not an SSE field.
    #[error("not an SSE line: {0}")]
    NotSse(String),
    /// A `data:` payload that is not a chat.completion.chunk.
    #[error("SSE data is not a chat.completion.chunk: {0}")]
    InvalidJson(String),
    /// The server sent an `{"error": ...}` event instead of a chunk.
    #[error("the miner sent an error event: {0}")]
    ErrorEvent(String),
    /// A line or an event grew past the parser's limit.
    #[error("an SSE line or event is longer than {0} bytes")]
    TooLong(usize),
}

/// Where the stream is after a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseState {
    /// More events may come.
    Open,
    /// `data: [DONE]` was seen; anything after it is ignored.
    Done,
}

/// The incremental parser. Holds at most one partial line and one partial event.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    max_len: usize,
    done: bool,
}

/// The longest line or event accepted by [`SseParser::default`]: a chunk event is ~200 bytes;
/// a whole answer in one event is still far below this.
pub const DEFAULT_MAX_EVENT: usize = 4 << 20;

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT)
    }
}

#[derive(serde::Deserialize)]
struct ChunkJson {
    #[serde(default)]
    choices: Option<Vec<ChoiceJson>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct ChoiceJson {
    #[serde(default)]
    delta: Option<DeltaJson>,
}

#[derive(serde::Deserialize)]
struct DeltaJson {
    #[serde(default)]
    content: Option<String>,
}

impl SseParser {
    /// A parser that refuses lines and events longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            max_len,
            done: false,
        }
    }

    /// Feeds the next bytes. The delta text of every event completed by them
    /// (`choices[0].delta.content`) is appended to `out`, also when an error follows, so the
    /// caller keeps the text that came before the error.
    pub fn push(&mut self, bytes: &[u8], out: &mut String) -> Result<SseState, SseError> {
        let mut rest = bytes;
        while !self.done && !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    self.extend_line(&rest[..at])?;
                    rest = &rest[at + 1..];
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.line_done(&line, out)?;
                    line.clear();
                    self.line = line;
                }
                None => {
                    self.extend_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(self.state())
    }

    /// Ends the stream (the body closed cleanly): a last line without its newline and a last
    /// event without its blank line are still taken.
    pub fn finish(&mut self, out: &mut String) -> Result<SseState, SseError> {
        if !self.done && !self.line.is_empty() {
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line_done(&line, out)?;
        }
        if !self.done && self.has_data {
            self.dispatch(out)?;
        }
        Ok(self.state())
    }

    fn state(&self) -> SseState {
        if self.done {
            SseState::Done
        } else {
            SseState::Open
        }
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_len {
            return Err(SseError::TooLong(self.max_len));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut String) -> Result<(), SseError> {
        if line.is_empty() {
            return if self.has_data {
                self.dispatch(out)
            } else {
                Ok(())
            };
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_len {
                    return Err(SseError::TooLong(self.max_len));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                Ok(())
            }
            "event" | "id" | "retry" => Ok(()),
            _ => Err(SseError::NotSse(excerpt(line))),
        }
    }

    fn dispatch(&mut self, out: &mut String) -> Result<(), SseError> {
        let data = std::mem::take(&mut self.data);
        self.has_data = false;
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: ChunkJson = serde_json::from_str(&data)
            .map_err(|e| SseError::InvalidJson(format!("{e} in {}", excerpt(&data))))?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            let message = match &error {
                serde_json::Value::Object(o) => match o.get("message") {
                    Some(serde_json::Value::String(m)) => m.clone(),
                    _ => error.to_string(),
                },
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Err(SseError::ErrorEvent(excerpt(&message)));
        }
        if let Some(content) = chunk
            .choices
            .and_then(|c| c.into_iter().next())
            .and_then(|c| c.delta)
            .and_then(|d| d.content)
        {
            out.push_str(&content);
        }
        Ok(())
    }
}

/// At most 120 characters of `s`, for error messages.
fn excerpt(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// Frames `content` as one OpenAI `chat.completion.chunk` SSE event (`data: {...}\n\n`). Used by
/// the simulated miners; `id`/`created`/`model` are what an OpenAI-compatible server sends.
pub fn chunk_event(id: &str, created: u64, model: &str, content: &str) -> String {
    let chunk = serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}],
    });
    format!("data: {chunk}\n\n")
}

/// The last chunk (`finish_reason: "stop"`, empty delta) followed by `data: [DONE]`.
pub fn final_events(id: &str, created: u64, model: &str) -> String {
    let chunk = serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    });
    format!("data: {chunk}\n\ndata: [DONE]\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> String {
        let mut s = String::from(": keep-alive\n\n");
        s += "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
        s += &chunk_event("c1", 1, "m", "Hello, ");
        s += "event: message\r\nid: 7\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"wörld 😀\"}}]}\r\n\r\n";
        s += "data: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\n";
        s += &chunk_event("c1", 1, "m", "!\nbye");
        s += &final_events("c1", 1, "m");
        s
    }

    const EXPECTED: &str = "Hello, wörld 😀!\nbye";

    fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> (String, SseState) {
        let mut parser = SseParser::default();
        let mut out = String::new();
        let mut state = SseState::Open;
        let mut prev = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            state = parser.push(&bytes[prev..cut], &mut out).unwrap();
            prev = cut;
        }
        if state == SseState::Open {
            state = parser.finish(&mut out).unwrap();
        }
        (out, state)
    }

    #[test]
    fn parses_the_same_at_every_single_split_point() {
        let s = stream();
        let bytes = s.as_bytes();
        for cut in 0..=bytes.len() {
            let (text, state) = parse_in_pieces(bytes, &[cut]);
            assert_eq!(text, EXPECTED, "split at {cut}");
            assert_eq!(state, SseState::Done);
        }
    }

    #[test]
    fn parses_the_same_byte_by_byte_and_at_pairs_of_splits() {
        let s = stream();
        let bytes = s.as_bytes();
        let all: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(parse_in_pieces(bytes, &all).0, EXPECTED);
        for a in (0..bytes.len()).step_by(7) {
            for b in (a..bytes.len()).step_by(13) {
                assert_eq!(
                    parse_in_pieces(bytes, &[a, b]).0,
                    EXPECTED,
                    "splits {a},{b}"
                );
            }
        }
    }

    #[test]
    fn text_after_done_is_ignored() {
        let mut parser = SseParser::default();
        let mut out = String::new();
        let input = format!(
            "{}data: [DONE]\n\n{}",
            chunk_event("x", 0, "m", "a"),
            chunk_event("x", 0, "m", "b")
        );
        assert_eq!(parser.push(input.as_bytes(), &mut out), Ok(SseState::Done));
        assert_eq!(out, "a");
    }

    #[test]
    fn stream_without_done_or_final_blank_line_still_yields_its_text() {
        let mut parser = SseParser::default();
        let mut out = String::new();
        let input = chunk_event("x", 0, "m", "tail");
        let input = input.trim_end();
        assert_eq!(parser.push(input.as_bytes(), &mut out), Ok(SseState::Open));
        assert_eq!(out, "");
        assert_eq!(parser.finish(&mut out), Ok(SseState::Open));
        assert_eq!(out, "tail");
    }

    #[test]
    fn data_that_is_not_json_is_an_error_after_the_text_before_it() {
        let mut parser = SseParser::default();
        let mut out = String::new();
        let input = format!("{}data: hello there\n\n", chunk_event("x", 0, "m", "ok "));
        let err = parser.push(input.as_bytes(), &mut out).unwrap_err();
        assert!(
            matches!(err, SseError::InvalidJson(ref m) if m.contains("hello there")),
            "{err}"
        );
        assert_eq!(out, "ok ");
    }

    #[test]
    fn plain_json_body_is_not_sse() {
        let mut parser = SseParser::default();
        let mut out = String::new();
        let err = parser
            .push(b"{\"id\":\"x\",\"choices\":[]}\n", &mut out)
            .unwrap_err();
        assert!(matches!(err, SseError::NotSse(_)), "{err}");
    }

    #[test]
    fn error_event_and_invalid_utf8_and_long_lines_are_errors() {
        let mut out = String::new();
        let err = SseParser::default()
            .push(
                b"data: {\"error\":{\"message\":\"model overloaded\"}}\n\n",
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err, SseError::ErrorEvent("model overloaded".into()));
        let err = SseParser::default()
            .push(
                b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\"}}]}\n",
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err, SseError::InvalidUtf8);
        let mut small = SseParser::new(16);
        assert_eq!(
            small.push(b"data: 0123456789", &mut out),
            Ok(SseState::Open)
        );
        assert_eq!(small.push(b"abcdef", &mut out), Err(SseError::TooLong(16)));
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let mut parser = SseParser::default();
        let mut out = String::new();
        let input = "data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"joined\"}}]}\n\n";
        parser.push(input.as_bytes(), &mut out).unwrap();
        assert_eq!(out, "joined");
    }
}
