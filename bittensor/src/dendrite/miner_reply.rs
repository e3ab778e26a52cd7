//! [`MinerReply`]: one in-flight miner request and the reading of its streamed body, within the
//! query's [`Deadline`] and the first-byte wait and size cap of [`ReplyLimits`], and the
//! classification into [`OutcomeKind`].
//!
//! Nothing is spawned: the request future and then the body stream live inside the reply, so
//! dropping the reply drops the connection (hyper closes it rather than pooling a half-read one).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::{Instant, timeout_at};

use crate::deadline::Deadline;
use crate::reply::{
    InvalidUtf8, MAX_ERROR_BODY, Outcome, OutcomeKind, ReplyLimits, Utf8Assembler, cap_text,
    error_message,
};
use crate::sse::{SseError, SseParser, SseState};

type Sending = Pin<Box<dyn Future<Output = Result<reqwest::Response, SendError>> + Send>>;
type Body = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The longest rejection message kept (a signature mismatch message is ~400 bytes).
const MAX_MESSAGE: usize = 2048;

enum State {
    Sending(Sending),
    Streaming(Body),
    Ended,
}

enum Decoder {
    /// Synapse replies: raw UTF-8 text.
    Raw(Utf8Assembler),
    /// Epistula / OpenAI replies: SSE chat.completion.chunk events.
    Sse(SseParser),
}

/// The in-flight reply of one miner. Read it with [`MinerReply::next_chunk`] until `None`, then
/// take the [`Outcome`]. Dropping it closes the connection at once.
pub struct MinerReply {
    state: State,
    decoder: Decoder,
    limits: ReplyLimits,
    deadline: Deadline,
    started: Instant,
    ended: Option<Instant>,
    kind: Option<OutcomeKind>,
    http_status: Option<u16>,
    ttfb: Option<Duration>,
    bytes: usize,
    chunks: usize,
    text: String,
}

impl std::fmt::Debug for MinerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MinerReply")
            .field("http_status", &self.http_status)
            .field("kind", &self.kind)
            .field("bytes", &self.bytes)
            .field("chunks", &self.chunks)
            .finish()
    }
}

impl MinerReply {
    pub(super) fn start(
        request: impl Future<Output = Result<reqwest::Response, SendError>> + Send + 'static,
        sse: bool,
        limits: ReplyLimits,
        deadline: Deadline,
    ) -> MinerReply {
        let decoder = if sse {
            // An event may hold all the text, plus JSON framing.
            Decoder::Sse(SseParser::new(
                limits.max_bytes.saturating_mul(2).max(64 * 1024),
            ))
        } else {
            Decoder::Raw(Utf8Assembler::new())
        };
        MinerReply {
            state: State::Sending(Box::pin(request)),
            decoder,
            limits,
            deadline,
            started: Instant::now(),
            ended: None,
            kind: None,
            http_status: None,
            ttfb: None,
            bytes: 0,
            chunks: 0,
            text: String::new(),
        }
    }

    pub(super) fn failed(kind: OutcomeKind, limits: ReplyLimits, deadline: Deadline) -> MinerReply {
        let mut reply = MinerReply::start(std::future::pending(), false, limits, deadline);
        reply.finish(kind);
        reply
    }

    /// The next piece of text, as it arrives (never empty; valid UTF-8 even when a character was
    /// split across network reads). `None` once the reply has ended, whatever the outcome.
    pub async fn next_chunk(&mut self) -> Option<String> {
        loop {
            let deadline = self.deadline();
            match &mut self.state {
                State::Ended => return None,
                State::Sending(request) => match timeout_at(deadline, request.as_mut()).await {
                    Err(_) => self.finish(OutcomeKind::Timeout {
                        before_first_byte: true,
                    }),
                    Ok(Err(err)) => self.finish(send_error(&err)),
                    Ok(Ok(response)) => self.on_response(response).await,
                },
                State::Streaming(body) => match timeout_at(deadline, body.next()).await {
                    Err(_) => {
                        let before_first_byte = self.ttfb.is_none();
                        self.finish(OutcomeKind::Timeout { before_first_byte })
                    }
                    Ok(None) => {
                        if let Some(piece) = self.on_end() {
                            return Some(piece);
                        }
                    }
                    Ok(Some(Err(err))) => self.finish(OutcomeKind::Malformed {
                        message: format!("the reply broke off: {}", error_chain(&err)),
                    }),
                    Ok(Some(Ok(bytes))) => {
                        if let Some(piece) = self.on_bytes(&bytes) {
                            return Some(piece);
                        }
                    }
                },
            }
        }
    }

    /// True once the reply has ended (`next_chunk` returns `None`).
    pub fn is_finished(&self) -> bool {
        self.kind.is_some()
    }

    /// The HTTP status, once the response head has arrived.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// The text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How the reply ended. Call it after `next_chunk` returned `None`; called earlier, it ends
    /// the reply there (closing the connection) and reports it as
    /// `Malformed { "the reply was abandoned before it ended" }` with the text so far.
    pub fn outcome(mut self) -> Outcome {
        if self.kind.is_none() {
            self.finish(OutcomeKind::Malformed {
                message: "the reply was abandoned before it ended".to_owned(),
            });
        }
        let ended = self.ended.unwrap_or_else(Instant::now);
        Outcome {
            kind: self.kind.take().unwrap_or(OutcomeKind::Ok),
            http_status: self.http_status,
            time_to_first_byte: self.ttfb,
            total_time: ended.saturating_duration_since(self.started),
            bytes: self.bytes,
            chunks: self.chunks,
            text: std::mem::take(&mut self.text),
        }
    }

    /// When the current wait ends: the query's deadline, or the first-byte wait before then.
    fn deadline(&self) -> Instant {
        let total = self.deadline.instant();
        if self.ttfb.is_none() {
            total.min(self.started + self.limits.first_byte_timeout)
        } else {
            total
        }
    }

    fn finish(&mut self, kind: OutcomeKind) {
        self.state = State::Ended;
        if self.kind.is_none() {
            self.kind = Some(kind);
            self.ended = Some(Instant::now());
        }
    }

    async fn on_response(&mut self, response: reqwest::Response) {
        let status = response.status().as_u16();
        self.http_status = Some(status);
        if status == 200 {
            self.state = State::Streaming(Box::pin(response.bytes_stream()));
            return;
        }
        // The error body is read for its message only, within the query's deadline.
        let header_message = response
            .headers()
            .get("bt_header_axon_status_message")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        let _ = timeout_at(self.deadline.instant(), async {
            while let Some(Ok(bytes)) = stream.next().await {
                let room = MAX_ERROR_BODY - body.len();
                body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                if body.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
        })
        .await;
        let message = error_message(status, &body, header_message.as_deref());
        let message = cap_text(&message, MAX_MESSAGE).0.to_owned();
        self.finish(OutcomeKind::AxonError { status, message });
    }

    /// Decodes one network read; returns the text to hand out, if any.
    fn on_bytes(&mut self, bytes: &[u8]) -> Option<String> {
        if bytes.is_empty() {
            return None;
        }
        if self.ttfb.is_none() {
            self.ttfb = Some(self.started.elapsed());
        }
        self.bytes += bytes.len();
        let mut piece = String::new();
        let mut end = None;
        match &mut self.decoder {
            Decoder::Raw(assembler) => match assembler.push(bytes) {
                Ok(text) => piece = text,
                Err(err) => {
                    end = Some(utf8_kind(&err));
                    piece = err.valid_text;
                }
            },
            Decoder::Sse(parser) => match parser.push(bytes, &mut piece) {
                Ok(SseState::Open) => {}
                Ok(SseState::Done) => end = Some(OutcomeKind::Ok),
                Err(err) => end = Some(sse_kind(err)),
            },
        }
        self.emit(piece, end)
    }

    /// The body ended cleanly (the terminating chunk arrived).
    fn on_end(&mut self) -> Option<String> {
        let mut piece = String::new();
        let kind = match &mut self.decoder {
            Decoder::Raw(assembler) => match assembler.finish() {
                Ok(()) => OutcomeKind::Ok,
                Err(_) => OutcomeKind::Malformed {
                    message: "the reply ended inside a UTF-8 character".to_owned(),
                },
            },
            // A stream that closes cleanly without `data: [DONE]` is still a complete reply:
            // the HTTP framing says the server finished; SN1's validator read it the same way.
            Decoder::Sse(parser) => match parser.finish(&mut piece) {
                Ok(_) => OutcomeKind::Ok,
                Err(err) => sse_kind(err),
            },
        };
        self.emit(piece, Some(kind))
    }

    /// Applies the size cap, records the piece and ends the reply when `end` is set.
    fn emit(&mut self, mut piece: String, mut end: Option<OutcomeKind>) -> Option<String> {
        let room = self.limits.max_bytes.saturating_sub(self.text.len());
        let (kept, cut) = cap_text(&piece, room);
        if cut {
            let kept_len = kept.len();
            piece.truncate(kept_len);
            end = Some(OutcomeKind::Oversize);
        }
        if !piece.is_empty() {
            self.chunks += 1;
            self.text.push_str(&piece);
        }
        if let Some(kind) = end {
            self.finish(kind);
        }
        (!piece.is_empty()).then_some(piece)
    }
}

fn utf8_kind(err: &InvalidUtf8) -> OutcomeKind {
    OutcomeKind::Malformed {
        message: err.to_string(),
    }
}

fn sse_kind(err: SseError) -> OutcomeKind {
    match err {
        SseError::TooLong(_) => OutcomeKind::Oversize,
        other => OutcomeKind::Malformed {
            message: other.to_string(),
        },
    }
}

/// A failure before the response head: no TCP connection is a connect failure; a connection
/// that broke or spoke bad HTTP is malformed.
/// Why a request got no response.
pub(super) enum SendError {
    /// The request could not be built (e.g. an axon address that is not a URL).
    Build(String),
    /// The HTTP exchange failed.
    Http(reqwest::Error),
}

fn send_error(err: &SendError) -> OutcomeKind {
    let err = match err {
        SendError::Build(message) => {
            return OutcomeKind::ConnectFailure {
                message: message.clone(),
            };
        }
        SendError::Http(err) => err,
    };
    let message = error_chain(err);
    if err.is_connect() {
        OutcomeKind::ConnectFailure { message }
    } else {
        OutcomeKind::Malformed { message }
    }
}

/// The error and its causes, `: `-joined (reqwest's own Display hides the cause).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    cap_text(&message, MAX_MESSAGE).0.to_owned()
}
