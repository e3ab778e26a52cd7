//! The answers of `POST /v1/chat/completions`: a `chat.completion` (with `usage`), or SSE
//! `data:` lines of `chat.completion.chunk`s ending in `data: [DONE]` — or, when the answer
//! fails mid-stream, in one `data: {"error": …}` line (the official SDKs raise on it) and no
//! `[DONE]`, so a partial answer is never presented as complete.
//!
//! `usage` is an estimate: one token per 4 characters (Unicode scalar values), rounded up, of
//! the messages' contents (prompt) and of the answer (completion). Miners report no counts.

use super::error::{Envelope, ErrorBody, OpenAiError};
use crate::error::ApiError;
use crate::events::Framing;
use crate::relay::{Relay, Relayed};
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Estimated tokens of a text of `chars` characters: 4 characters a token, rounded up.
pub fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// Token counts (estimated: see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Usage {
    /// Estimated tokens of the messages.
    pub prompt_tokens: u64,
    /// Estimated tokens of the answer.
    pub completion_tokens: u64,
    /// The sum.
    pub total_tokens: u64,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_chars: usize) -> Usage {
        let completion_tokens = estimate_tokens(completion_chars);
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// A non-streamed answer (`object: "chat.completion"`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionObject {
    /// `chatcmpl-` + the request id (`x-request-id`).
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// The model asked for.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Estimated token counts.
    pub usage: Usage,
    /// Which miner answered.
    pub sn1: Sn1Info,
}

/// The one answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// Always `stop`.
    pub finish_reason: String,
}

/// The assistant's message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// The answer's text.
    pub content: String,
}

/// Subnet details of an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sn1Info {
    /// The uid of the miner whose answer this is.
    pub uid: i32,
}

/// One streamed event (`object: "chat.completion.chunk"`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionChunk<'a> {
    /// The same for every chunk of an answer.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// The model asked for.
    pub model: &'a str,
    /// One choice; none in the last chunk of `include_usage`.
    pub choices: Vec<ChunkChoice<'a>>,
    /// With `stream_options.include_usage`: `null`, except in the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = true)]
    pub usage: Option<Option<Usage>>,
}

/// The new part of the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkChoice<'a> {
    /// Always 0.
    pub index: u32,
    /// The new text.
    pub delta: Delta<'a>,
    /// `null`, then `stop` on the last chunk.
    pub finish_reason: Option<&'static str>,
}

/// New text; the first chunk names the role.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delta<'a> {
    /// `assistant`, in the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The new text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// What every chunk of one answer shares.
pub struct Answering {
    /// `chatcmpl-…`.
    pub id: String,
    /// The model asked for.
    pub model: String,
    /// Unix seconds.
    pub created: i64,
    /// Estimated tokens of the prompt.
    pub prompt_tokens: u64,
    /// Whether the stream ends with a usage chunk.
    pub include_usage: bool,
}

impl Answering {
    fn chunk<'a>(&'a self, delta: Delta<'a>, finish_reason: Option<&'static str>) -> Bytes {
        Framing::Sse.event(&ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage: self.include_usage.then_some(None),
        })
    }

    /// The end of an answer: the `stop` chunk, the usage chunk if asked for, `[DONE]`.
    fn finish(&self, completion_chars: usize) -> Bytes {
        let mut out = self
            .chunk(
                Delta {
                    role: None,
                    content: None,
                },
                Some("stop"),
            )
            .to_vec();
        if self.include_usage {
            out.extend_from_slice(&Framing::Sse.event(&ChatCompletionChunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(Usage::new(self.prompt_tokens, completion_chars))),
            }));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        Bytes::from(out)
    }
}

/// The streamed answer, with `x-request-id`.
pub fn stream(relay: Relay, answering: Answering, request_id: &str) -> Response {
    let state = (relay, answering, 0usize, false);
    let stream = futures::stream::unfold(
        state,
        |(mut relay, answering, mut chars, mut named)| async move {
            let bytes = match relay.next().await? {
                Relayed::Chunk(c) => {
                    chars += c.delta.chars().count();
                    let role = (!named).then_some("assistant");
                    named = true;
                    answering.chunk(
                        Delta {
                            role,
                            content: Some(c.delta),
                        },
                        None,
                    )
                }
                Relayed::Finished(_) if !named => {
                    named = true;
                    let mut out = answering
                        .chunk(
                            Delta {
                                role: Some("assistant"),
                                content: Some(""),
                            },
                            None,
                        )
                        .to_vec();
                    out.extend_from_slice(&answering.finish(chars));
                    Bytes::from(out)
                }
                Relayed::Finished(_) => answering.finish(chars),
                Relayed::Failed { error, timed_out } => {
                    let failure = stream_error(error.error, timed_out);
                    Framing::Sse.event(&Envelope { error: &failure })
                }
                Relayed::Idle => Bytes::from_static(Framing::Sse.keep_alive().as_bytes()),
            };
            Some((
                Ok::<_, std::convert::Infallible>(bytes),
                (relay, answering, chars, named),
            ))
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    set_request_id(&mut response, request_id);
    response
}

/// The error line of an answer that failed mid-stream.
fn stream_error(message: String, timed_out: bool) -> ErrorBody {
    ErrorBody {
        message,
        r#type: "server_error",
        param: None,
        code: Some(if timed_out { "timeout" } else { "stream_error" }),
    }
}

/// The whole answer as one `chat.completion`. An answer that failed part-way is an error
/// (504 timeout, 502 otherwise), never a partial text presented as complete.
pub async fn collect(
    mut relay: Relay,
    answering: Answering,
    request_id: &str,
) -> Result<Response, OpenAiError> {
    while let Some(item) = relay.next().await {
        match item {
            Relayed::Chunk(_) | Relayed::Idle => {}
            Relayed::Finished(_) => break,
            Relayed::Failed {
                error,
                timed_out: true,
            } => {
                return Err(ApiError::UpstreamTimeout(error.error).into());
            }
            Relayed::Failed { error, .. } => return Err(ApiError::NoAnswer(error.error).into()),
        }
    }
    let (chunks, _, uid) = relay.answer();
    let content = chunks.concat();
    let usage = Usage::new(answering.prompt_tokens, content.chars().count());
    let body = ChatCompletionObject {
        id: answering.id,
        object: "chat.completion".into(),
        created: answering.created,
        model: answering.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content,
            },
            finish_reason: "stop".into(),
        }],
        usage,
        sn1: Sn1Info { uid },
    };
    let mut response = axum::Json(body).into_response();
    set_request_id(&mut response, request_id);
    Ok(response)
}

fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_four_characters_a_token_rounded_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
        assert_eq!(Usage::new(3, 9).total_tokens, 6);
    }

    #[test]
    fn the_end_of_a_stream_has_stop_usage_and_done() {
        let answering = Answering {
            id: "chatcmpl-x".into(),
            model: "sn1".into(),
            created: 1,
            prompt_tokens: 2,
            include_usage: true,
        };
        let text = String::from_utf8(answering.finish(5).to_vec()).unwrap();
        let lines: Vec<&str> = text.split("\n\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        let stop: serde_json::Value =
            serde_json::from_str(lines[0].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(stop["choices"][0]["finish_reason"], "stop");
        assert!(
            stop["usage"].is_null() && stop.get("usage").is_some(),
            "{stop}"
        );
        let usage: serde_json::Value =
            serde_json::from_str(lines[1].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 4);
        assert_eq!(lines[2], "data: [DONE]");
    }
}
