//! The public event objects of the seed's API (`StreamChunk`, `StreamError`) and the final JSON
//! of a non-streamed answer, plus their NDJSON and SSE framing.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// One piece of a streamed answer. The last one has `finish_reason: "finished"` and an empty
/// `delta`.
/// Built by reference: the accumulated fields are the relay's own, not copies.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StreamChunk<'a> {
    /// The new text.
    pub delta: &'a str,
    /// `null` while streaming, `"finished"` on the last chunk.
    pub finish_reason: Option<&'static str>,
    /// Every delta so far, this one included.
    pub accumulated_chunks: &'a [String],
    /// Seconds from the request's arrival to each delta.
    pub accumulated_chunks_timings: &'a [f64],
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// 1-based position among the events of this response.
    pub sequence_number: u64,
    /// The miner whose answer this is (-1 for `/echo`).
    pub selected_uid: i32,
}

/// The answer failed (timeout, no miner answered, internal error). Always the last event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StreamError {
    /// What went wrong, safe to show.
    pub error: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// 1-based position among the events of this response.
    pub sequence_number: u64,
    /// Always `"error"`.
    pub finish_reason: &'static str,
}

/// The answer of a request with `"stream": false`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// The deltas as they arrived.
    pub streamed_chunks: Vec<String>,
    /// Seconds from the request's arrival to each delta.
    pub streamed_chunks_timings: Vec<f64>,
    /// The miner whose answer this is (-1 for `/echo`).
    pub uid: i32,
    /// The whole answer.
    pub completion: String,
    /// Seconds the request took.
    pub timing: f64,
}

/// How events are framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `application/x-ndjson`: one JSON object per line; a blank line keeps the connection alive.
    Ndjson,
    /// `text/event-stream`: `data: {json}` events; a `:` comment keeps the connection alive.
    Sse,
}

impl Framing {
    /// The response content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Ndjson => "application/x-ndjson",
            Framing::Sse => "text/event-stream",
        }
    }

    /// One event on the wire.
    pub fn event(self, value: &impl Serialize) -> Bytes {
        let mut out = Vec::with_capacity(512);
        if self == Framing::Sse {
            out.extend_from_slice(b"data: ");
        }
        // Serializing these plain structs into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, value);
        out.extend_from_slice(match self {
            Framing::Ndjson => b"\n",
            Framing::Sse => b"\n\n",
        });
        Bytes::from(out)
    }

    /// A keep-alive that clients ignore.
    pub fn keep_alive(self) -> &'static str {
        match self {
            Framing::Ndjson => "\n",
            Framing::Sse => ": keep-alive\n\n",
        }
    }
}

/// Now, as RFC 3339 UTC with microseconds.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}
