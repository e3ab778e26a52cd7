//! The OpenAPI description of the `/v1/chat/completions` body (documentation only: parsing is
//! by hand in [`super::request`] so errors name their `param`). The configured limits and model
//! ids are filled in when the document is served ([`crate::docs`]).

use crate::request::{Excluded, SamplingModeName};
use utoipa::ToSchema;

/// An OpenAI chat completions request. Unknown fields are ignored.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub struct CompletionRequestSchema {
    /// A model id from `GET /v1/models`.
    model: String,
    /// The conversation, oldest first.
    #[schema(min_items = 1)]
    messages: Vec<MessageSchema>,
    /// `true`: SSE `chat.completion.chunk`s ending in `data: [DONE]`.
    #[schema(default = false)]
    stream: Option<bool>,
    /// Streaming options.
    stream_options: Option<StreamOptions>,
    /// Sampling temperature, passed to miners that take it.
    #[schema(minimum = 0, maximum = 2)]
    temperature: Option<f64>,
    /// Nucleus sampling, passed to miners that take it.
    #[schema(minimum = 0, maximum = 1)]
    top_p: Option<f64>,
    /// Most tokens to generate, passed to miners that take it.
    #[schema(minimum = 1, maximum = 2147483647)]
    max_tokens: Option<u32>,
    /// Same as `max_tokens` (wins over it).
    #[schema(minimum = 1, maximum = 2147483647)]
    max_completion_tokens: Option<u32>,
    /// Sampling seed, passed to miners that take it.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    seed: Option<i64>,
    /// Stop sequences, passed to miners that take them.
    stop: Option<Stop>,
    /// Number of answers: only 1.
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u8>,
    /// The end user (accepted, unused).
    user: Option<String>,
    /// Subnet options (the SDKs' `extra_body`).
    sn1: Option<Sn1Options>,
}

/// One message.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct MessageSchema {
    /// Who speaks (`developer` is read as `system`).
    role: MessageRole,
    /// Text, or a list of text parts.
    content: Content,
}

/// The role of a message.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum MessageRole {
    System,
    Developer,
    User,
    Assistant,
}

/// A message's text.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum Content {
    /// Plain text.
    Text(String),
    /// Text parts, joined with newlines.
    Parts(TextParts),
}

/// Text parts, joined with newlines.
#[derive(ToSchema)]
#[schema(min_items = 1)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct TextParts(Vec<TextPart>);

/// A text part.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct TextPart {
    /// Always `text`.
    r#type: TextType,
    /// The text.
    text: String,
}

/// The only part type supported.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum TextType {
    Text,
}

/// Streaming options.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct StreamOptions {
    /// End the stream with a chunk carrying the (estimated) `usage`.
    include_usage: Option<bool>,
}

/// Stop sequences: one, or a list of at most 4.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(StopList),
}

/// At most 4 stop sequences.
#[derive(ToSchema)]
#[schema(max_items = 4)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct StopList(Vec<String>);

/// Subnet options; absent ones come from the model's profile.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct Sn1Options {
    /// Miners to ask (1 ..= configured max).
    #[schema(minimum = 1)]
    k: Option<u16>,
    /// Miners never to ask: uids or hotkeys.
    exclude: Option<Vec<Excluded>>,
    /// How the answer is chosen.
    strategy: Option<StrategyName>,
    /// How miners are chosen.
    sampling_mode: Option<SamplingModeName>,
    /// Seconds the answer may take (0.1 ..= configured max, default 10).
    #[schema(minimum = 0.1)]
    timeout: Option<f64>,
}

/// How the answer is chosen: stream the first usable one, or wait for all and pick.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum StrategyName {
    First,
    Longest,
    Shortest,
}

/// The body of every `/v1` error, and of the `data:` line that ends a failed stream.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub struct OpenAiErrorResponse {
    error: OpenAiErrorDetail,
}

/// What went wrong, in OpenAI's shape.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct OpenAiErrorDetail {
    /// For people; names the parameter of a 400.
    message: String,
    /// `invalid_request_error` (4xx) or `server_error` (5xx).
    r#type: String,
    /// The parameter at fault, e.g. `messages[0].content` or `sn1.k`.
    param: Option<String>,
    /// A stable name, e.g. `invalid_api_key`, `model_not_found`, `no_worker`.
    code: Option<String>,
}

/// The errors of `POST /v1/chat/completions` and whether `Retry-After` goes with them.
/// A managed key over one of its limits.
const RATE_LIMITED: (&str, &str, bool) = (
    "429",
    "A managed key over its requests per minute or answers in flight \
     (`rate_limit_exceeded`); Retry-After",
    true,
);

/// The key store cannot be reached to check a managed key.
const KEY_STORE: (&str, &str, bool) = (
    "503",
    "The key store is unreachable to check a managed key; Retry-After",
    true,
);

const COMPLETION_ERRORS: &[(&str, &str, bool)] = &[
    (
        "400",
        "Malformed JSON or an invalid parameter (named in `param`)",
        false,
    ),
    ("401", "Missing or wrong API key (`invalid_api_key`)", false),
    ("404", "Unknown model (`model_not_found`)", false),
    (
        "408",
        "The body did not arrive within BODY_READ_TIMEOUT",
        false,
    ),
    ("413", "Body larger than the configured cap", false),
    ("415", "Content-Type is not application/json", false),
    (
        "422",
        "No miner left to ask (e.g. after `sn1.exclude`)",
        false,
    ),
    RATE_LIMITED,
    ("502", "Not streamed: no miner gave a usable answer", false),
    (
        "503",
        "Overloaded, job queue unavailable, or the key store unreachable for a managed key; \
         Retry-After",
        true,
    ),
    (
        "504",
        "No worker took the request in time (Retry-After), or, not streamed, the answer was \
         not complete before the timeout",
        true,
    ),
];

/// One SSE event of a streamed completion: its `data` is `[DONE]`, or JSON — a
/// chat.completion.chunk, or the `{"error": …}` that ends a failed stream.
fn sse_event() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "required": ["data"],
        "properties": {"data": {
            "type": "string",
            "if": {"const": "[DONE]"},
            "then": true,
            "else": {
                "contentMediaType": "application/json",
                "contentSchema": {"oneOf": [
                    {"$ref": "#/components/schemas/ChatCompletionChunk"},
                    {"$ref": "#/components/schemas/OpenAiErrorResponse"}
                ]}
            }
        }}
    })
}

/// Completes the generated document for `/v1`: the configured limits and model ids, the two
/// shapes of a completion's 200, and every error with its OpenAI-shaped body.
pub fn complete(doc: &mut serde_json::Value, config: &crate::ApiConfig) {
    use serde_json::{Value, json};
    let limits = &config.limits;
    let ids: Vec<&str> = config.models.all().iter().map(|m| m.id.as_str()).collect();
    for (pointer, value) in [
        ("CompletionRequestSchema/properties/model/enum", json!(ids)),
        (
            "CompletionRequestSchema/properties/messages/maxItems",
            json!(limits.max_messages),
        ),
        ("Sn1Options/properties/k/maximum", json!(limits.max_k)),
        (
            "Sn1Options/properties/timeout/maximum",
            json!(limits.max_timeout_secs),
        ),
    ] {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or_default();
        if let Some(Value::Object(slot)) = doc.pointer_mut(&format!("/components/schemas/{parent}"))
        {
            slot.insert(key.to_string(), value);
        }
    }
    let error = |description: &str, retry: bool| {
        crate::docs::error_response(description, retry, "OpenAiErrorResponse")
    };
    let unauthorized = ("401", "Missing or wrong API key (`invalid_api_key`)", false);
    let unknown = ("404", "Unknown model (`model_not_found`)", false);
    for (path, method, errors) in [
        ("/v1/chat/completions", "post", COMPLETION_ERRORS),
        (
            "/v1/models",
            "get",
            &[unauthorized, RATE_LIMITED, KEY_STORE][..],
        ),
        (
            "/v1/models/{id}",
            "get",
            &[unauthorized, unknown, RATE_LIMITED, KEY_STORE][..],
        ),
    ] {
        let pointer = format!("/paths/{}/{method}/responses", path.replace('/', "~1"));
        if let Some(Value::Object(responses)) = doc.pointer_mut(&pointer) {
            for (status, description, retry) in errors {
                responses.insert(status.to_string(), error(description, *retry));
            }
        }
    }
    if let Some(Value::Object(responses)) =
        doc.pointer_mut("/paths/~1v1~1chat~1completions/post/responses")
    {
        responses.insert("200".into(), json!({
            "description": "`stream: true`: SSE `data:` lines, each a chat.completion.chunk, \
                ending in `data: [DONE]` (or, when the answer fails mid-stream, in one \
                `data: {\"error\": …}` line); otherwise one chat.completion",
            "headers": {"x-request-id": {"description": "The request's id", "schema": {"type": "string"}}},
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionObject"}},
                "text/event-stream": {"schema": sse_event()}
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use crate::ApiConfig;
    use crate::docs::document;

    #[test]
    fn v1_documents_its_models_limits_answers_and_errors() {
        let mut config = ApiConfig::default();
        config.limits.max_k = 9;
        let doc = document(&config);
        let schemas = &doc["components"]["schemas"];
        let request = &schemas["CompletionRequestSchema"]["properties"];
        assert_eq!(request["model"]["enum"], serde_json::json!(["sn1"]));
        assert_eq!(request["messages"]["maxItems"], 256);
        assert_eq!(schemas["Sn1Options"]["properties"]["k"]["maximum"], 9);
        let completions = &doc["paths"]["/v1/chat/completions"]["post"]["responses"];
        for status in [
            "200", "400", "401", "404", "408", "413", "415", "422", "502", "503", "504",
        ] {
            assert!(completions[status].is_object(), "{status}: {completions}");
        }
        assert!(completions["503"]["headers"]["Retry-After"].is_object());
        assert_eq!(
            completions["400"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/OpenAiErrorResponse"
        );
        assert!(completions["200"]["content"]["text/event-stream"].is_object());
        assert!(doc["paths"]["/v1/models/{id}"]["get"]["responses"]["404"].is_object());
        assert!(doc["paths"]["/v1/models"]["get"]["responses"]["401"].is_object());
    }
}
