//! The OpenAPI document (`/openapi.json`), generated from the handlers and types, and Swagger UI
//! at `/docs`, served from assets compiled into the binary (works offline).
//!
//! [`document`] completes the generated document in one place: the configured limits of a chat
//! request (`k`, `timeout`, `messages`), and the answers `/chat` and `/echo` share — the three
//! shapes of a 200 and every error before a stream starts, with its `{"error": …}` body and
//! `Retry-After` where one is sent ([`crate::error`]).

use crate::{ApiConfig, AppState, events, openai, request, routes};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

/// The OpenAPI description of the public API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SN1 gateway",
        description = "An API in front of Bittensor subnet 1: ask k miners, stream the answer."
    ),
    paths(
        routes::chat::chat,
        routes::chat::echo,
        routes::ops::livez,
        routes::ops::readyz,
        crate::web::status::status,
        crate::web::request::request,
        routes::openai::chat_completions,
        routes::openai::models,
        routes::openai::model,
        routes::admin::create,
        routes::admin::list,
        routes::admin::change,
        routes::admin::revoke
    ),
    components(schemas(
        request::ChatRequest,
        events::StreamChunk,
        events::StreamError,
        events::ChatCompletion,
        ErrorResponse,
        openai::schema::CompletionRequestSchema,
        openai::schema::OpenAiErrorResponse,
        openai::response::ChatCompletionObject,
        openai::response::ChatCompletionChunk,
        routes::openai::ModelList,
        routes::openai::Model,
        routes::admin::CreateKey,
        routes::admin::ChangeKey,
        routes::admin::KeyList
    ))
)]
pub struct ApiDoc;

/// The body of every error answered before a stream starts.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub struct ErrorResponse {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
struct ErrorDetail {
    /// A stable name, e.g. `invalid_request`, `overloaded`, `no_worker`.
    r#type: String,
    /// For people; names the field for a 400.
    message: String,
}

/// The errors `/chat` and `/echo` answer before a stream starts, and whether `Retry-After` is
/// sent with them.
const ERRORS: &[(&str, &str, bool)] = &[
    (
        "400",
        "Malformed JSON or an invalid field (the message names the field and the rule)",
        false,
    ),
    ("401", "Missing or wrong API key", false),
    (
        "408",
        "The body did not arrive within BODY_READ_TIMEOUT",
        false,
    ),
    ("413", "Body larger than the configured cap", false),
    (
        "415",
        "Content-Type is not application/json (parameters such as charset=utf-8 are fine)",
        false,
    ),
    ("422", "No miner left to ask (e.g. after `exclude`)", false),
    (
        "429",
        "A managed key over its requests per minute or answers in flight; Retry-After",
        true,
    ),
    (
        "502",
        "`stream: false` only: no miner gave a usable answer",
        false,
    ),
    (
        "503",
        "Overloaded (requests or connections), job queue unavailable, or the key store \
         unreachable for a managed key; Retry-After",
        true,
    ),
    (
        "504",
        "No worker took the request in time (with Retry-After), or with `stream: false` no \
         miner answered before the timeout",
        true,
    ),
];

/// The document served at `/openapi.json`, with `config`'s limits.
pub fn document(config: &ApiConfig) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let limits = &config.limits;
    let fields = "/components/schemas/ChatRequest/properties";
    for (pointer, value) in [
        (format!("{fields}/k/maximum"), json!(limits.max_k)),
        (
            format!("{fields}/timeout/maximum"),
            json!(limits.max_timeout_secs),
        ),
        (
            format!("{fields}/messages/maxItems"),
            json!(limits.max_messages),
        ),
        (
            format!("{fields}/roles/maxItems"),
            json!(limits.max_messages),
        ),
    ] {
        if let Some(slot) = pointer_parent(&mut doc, &pointer) {
            slot.insert(last_key(&pointer).to_string(), value);
        }
    }
    for path in ["~1chat", "~1echo"] {
        if let Some(Value::Object(responses)) =
            doc.pointer_mut(&format!("/paths/{path}/post/responses"))
        {
            responses.insert("200".into(), success());
            for (status, description, retry) in ERRORS {
                responses.insert(status.to_string(), error(description, *retry));
            }
        }
    }
    openai::schema::complete(&mut doc, config);
    doc
}

fn pointer_parent<'a>(
    doc: &'a mut Value,
    pointer: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let parent = &pointer[..pointer.rfind('/')?];
    doc.pointer_mut(parent)?.as_object_mut()
}

fn last_key(pointer: &str) -> &str {
    pointer.rsplit('/').next().unwrap_or_default()
}

fn success() -> Value {
    // The schema of one event: one NDJSON line, or one SSE `data:` line.
    let event = json!({"schema": {"oneOf": [
        {"$ref": "#/components/schemas/StreamChunk"},
        {"$ref": "#/components/schemas/StreamError"}
    ]}});
    json!({
        "description": "The answer: NDJSON, one event per line — StreamChunks, the last one \
            finished, or a StreamError last (`application/x-ndjson`; the schema is that of one \
            line); the same events as SSE `data:` lines with `Accept: text/event-stream`; one \
            ChatCompletion with `stream: false`",
        "content": {
            "application/x-ndjson": event,
            "text/event-stream": event,
            "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}}
        }
    })
}

fn error(description: &str, retry: bool) -> Value {
    error_response(description, retry, "ErrorResponse")
}

/// A documented error answer: `description`, a body of the component `schema`, and
/// `Retry-After` when `retry`.
pub(crate) fn error_response(description: &str, retry: bool, schema: &str) -> Value {
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    });
    if retry {
        response["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 0}
        }});
    }
    response
}

/// `/docs` and `/openapi.json`.
pub fn router(config: &ApiConfig) -> axum::Router<AppState> {
    SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", document(config))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        document(&ApiConfig::default())
    }

    #[test]
    fn the_request_schema_says_what_the_parser_accepts() {
        let doc = doc();
        let request = &doc["components"]["schemas"]["ChatRequest"];
        let required: Vec<&str> = request["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["roles", "messages"], "{request}");
        let p = &request["properties"];
        assert_eq!(p["messages"]["minItems"], 1, "{p}");
        assert_eq!(p["messages"]["maxItems"], 256, "{p}");
        assert_eq!(p["roles"]["minItems"], 1, "{p}");
        assert_eq!(p["k"]["minimum"], 1, "{p}");
        assert_eq!(p["k"]["maximum"], 256, "{p}");
        assert_eq!(p["timeout"]["minimum"], 0.1, "{p}");
        assert_eq!(p["timeout"]["maximum"], 120.0, "{p}");
        // exclude: optional (null too); each entry a uid or a hotkey.
        assert_eq!(p["exclude"]["type"], json!(["array", "null"]), "{p}");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            p["exclude"]["items"]["$ref"],
            "#/components/schemas/Excluded"
        );
        let entries: Vec<&Value> = schemas["Excluded"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
                &schemas[name]
            })
            .collect();
        assert_eq!(entries[0]["type"], "integer");
        assert_eq!(entries[0]["maximum"], 65535);
        assert_eq!(entries[1]["type"], "string");
        assert_eq!(entries[1]["minLength"], 1);
        assert_eq!(
            schemas["Role"]["enum"],
            json!(["user", "assistant", "system"])
        );
    }

    #[test]
    fn the_limits_come_from_the_configuration() {
        let mut config = ApiConfig::default();
        config.limits.max_k = 7;
        config.limits.max_timeout_secs = 30.0;
        let doc = document(&config);
        let p = &doc["components"]["schemas"]["ChatRequest"]["properties"];
        assert_eq!(p["k"]["maximum"], 7);
        assert_eq!(p["timeout"]["maximum"], 30.0);
    }

    #[test]
    fn chat_and_echo_document_every_error_and_retry_after() {
        let doc = doc();
        for path in ["/chat", "/echo"] {
            let responses = &doc["paths"][path]["post"]["responses"];
            for status in [
                "200", "400", "401", "408", "413", "415", "422", "502", "503", "504",
            ] {
                assert!(
                    responses[status].is_object(),
                    "{path} {status}: {responses}"
                );
            }
            for status in ["503", "504"] {
                assert!(
                    responses[status]["headers"]["Retry-After"].is_object(),
                    "{path} {status}"
                );
            }
            let content = &responses["200"]["content"];
            assert_eq!(
                content["application/json"]["schema"]["$ref"],
                "#/components/schemas/ChatCompletion"
            );
            assert_eq!(
                content["application/x-ndjson"]["schema"]["oneOf"][1]["$ref"],
                "#/components/schemas/StreamError"
            );
        }
    }
}
