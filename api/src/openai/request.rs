//! The body of `POST /v1/chat/completions`, parsed field by field so each error names its
//! `param` (what OpenAI's 400s carry). Unknown fields are ignored, as OpenAI does. Our own
//! knobs travel in the `sn1` object (the SDKs' `extra_body`); the model's profile gives their
//! defaults.

use super::error::OpenAiError;
use super::models::Models;
use crate::request::{self, FieldError, ParsedRequest, RequestLimits};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sn1_contracts::job::{ChatParams, Sampling, Strategy};

/// Most stop sequences (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// A parsed `/v1/chat/completions` request.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// The model asked for (a configured profile).
    pub model: String,
    /// The job's parameters, deadline and whether to stream.
    pub parsed: ParsedRequest,
    /// `stream_options.include_usage`: end the stream with a chunk carrying `usage`.
    pub include_usage: bool,
}

/// Parses and validates a body that arrived at `received_at`.
pub fn parse(
    body: &[u8],
    limits: &RequestLimits,
    models: &Models,
    received_at: DateTime<Utc>,
) -> Result<CompletionRequest, OpenAiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OpenAiError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(OpenAiError::invalid(
            "body",
            "the body must be a JSON object",
        ));
    };
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        None | Some(Value::Null) => {
            return Err(OpenAiError::invalid("model", "`model` is required"));
        }
        Some(_) => return Err(OpenAiError::invalid("model", "`model` must be a string")),
    };
    let (roles, messages) = conversation(obj.get("messages"), limits)?;
    let stream = flag(&obj, "stream")?;
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => {
            flag(o, "include_usage").map_err(|e| rename(e, "stream_options."))?
        }
        Some(_) => return Err(OpenAiError::invalid("stream_options", "must be an object")),
    };
    match obj.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if request::whole_number(v) == Some(1) => {}
        Some(_) => {
            return Err(OpenAiError::invalid(
                "n",
                "only `n: 1` is supported (one answer per request)",
            ));
        }
    }
    match obj.get("user") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err(OpenAiError::invalid("user", "must be a string")),
    }
    let sampling = sampling(&obj)?;
    let sn1 = match obj.get("sn1") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(OpenAiError::invalid("sn1", "must be an object")),
    };
    // The body is valid; now the model (OpenAI answers 404 for a model it does not serve).
    let profile = models
        .get(&model)
        .ok_or_else(|| OpenAiError::model_not_found(&model))?;
    let k = match sn1.get("k") {
        None | Some(Value::Null) => profile.k.min(limits.max_k),
        Some(v) => match request::whole_number(v) {
            Some(k) if k >= 1 && k <= u64::from(limits.max_k) => k as u16,
            _ => {
                return Err(OpenAiError::invalid(
                    "sn1.k",
                    format!("`sn1.k` must be an integer from 1 to {}", limits.max_k),
                ));
            }
        },
    };
    let strategy = match sn1.get("strategy") {
        None | Some(Value::Null) => profile.strategy,
        Some(Value::String(s)) if s == "first" => Strategy::First,
        Some(Value::String(s)) if s == "longest" => Strategy::Longest,
        Some(Value::String(s)) if s == "shortest" => Strategy::Shortest,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "sn1.strategy",
                "`sn1.strategy` must be \"first\", \"longest\" or \"shortest\"",
            ));
        }
    };
    let sampling_mode = request::sampling_mode(sn1.get("sampling_mode"), profile.sampling_mode)
        .map_err(|e| rename(e, "sn1."))?;
    let exclude = request::exclusions(sn1.get("exclude")).map_err(|e| rename(e, "sn1."))?;
    let deadline = request::deadline(sn1.get("timeout"), limits, received_at)
        .map_err(|e| rename(e, "sn1."))?;
    Ok(CompletionRequest {
        model,
        parsed: ParsedRequest {
            params: ChatParams {
                k,
                exclude,
                roles,
                messages,
                strategy,
                sampling_mode,
                sampling,
            },
            deadline,
            stream,
        },
        include_usage,
    })
}

/// A field error of the shared parser, its field under `prefix` (e.g. `sn1.timeout`).
fn rename(e: FieldError, prefix: &str) -> OpenAiError {
    let param = format!("{prefix}{}", e.field);
    let message = e
        .message
        .replace(&format!("`{}`", e.field), &format!("`{param}`"));
    OpenAiError::invalid(param, message)
}

/// An optional boolean (default false).
fn flag(obj: &Map<String, Value>, field: &'static str) -> Result<bool, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FieldError {
            field,
            message: format!("field `{field}`: must be true or false"),
        }),
    }
}

impl From<FieldError> for OpenAiError {
    fn from(e: FieldError) -> Self {
        OpenAiError::invalid(e.field, e.message)
    }
}

/// `messages`: roles and texts. Content is a string or a list of text parts, joined; the
/// `developer` role is read as `system` (what OpenAI does for older models).
fn conversation(
    value: Option<&Value>,
    limits: &RequestLimits,
) -> Result<(Vec<String>, Vec<String>), OpenAiError> {
    let items = match value {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => {
            return Err(OpenAiError::invalid(
                "messages",
                "`messages` must not be empty",
            ));
        }
        None | Some(Value::Null) => {
            return Err(OpenAiError::invalid("messages", "`messages` is required"));
        }
        Some(_) => {
            return Err(OpenAiError::invalid(
                "messages",
                "`messages` must be a list of messages",
            ));
        }
    };
    if items.len() > limits.max_messages {
        return Err(OpenAiError::invalid(
            "messages",
            format!("at most {} messages", limits.max_messages),
        ));
    }
    let mut roles = Vec::with_capacity(items.len());
    let mut texts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(message) = item else {
            return Err(OpenAiError::invalid(
                format!("messages[{i}]"),
                "each message must be an object",
            ));
        };
        let role = match message.get("role") {
            Some(Value::String(r)) if matches!(r.as_str(), "system" | "user" | "assistant") => {
                r.clone()
            }
            Some(Value::String(r)) if r == "developer" => "system".to_string(),
            _ => {
                return Err(OpenAiError::invalid(
                    format!("messages[{i}].role"),
                    "the role must be \"system\", \"developer\", \"user\" or \"assistant\"",
                ));
            }
        };
        roles.push(role);
        texts.push(content(message.get("content"), i)?);
    }
    let chars: usize = texts.iter().map(|m| m.chars().count()).sum();
    if chars > limits.max_message_chars {
        return Err(OpenAiError::invalid(
            "messages",
            format!(
                "{chars} characters in all, at most {} allowed",
                limits.max_message_chars
            ),
        ));
    }
    Ok((roles, texts))
}

/// A message's `content`: a string, or text parts `[{"type": "text", "text": …}]` (joined
/// with newlines).
fn content(value: Option<&Value>, i: usize) -> Result<String, OpenAiError> {
    let param = || format!("messages[{i}].content");
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) if !parts.is_empty() => parts
            .iter()
            .map(|part| match (part.get("type"), part.get("text")) {
                (Some(Value::String(t)), Some(Value::String(text))) if t == "text" => {
                    Ok(text.as_str())
                }
                _ => Err(OpenAiError::invalid(
                    param(),
                    "only text parts ({\"type\": \"text\", \"text\": …}) are supported",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        _ => Err(OpenAiError::invalid(
            param(),
            "the content must be a string or a non-empty list of text parts",
        )),
    }
}

/// `temperature`, `top_p`, `max_tokens` / `max_completion_tokens`, `seed`, `stop`.
fn sampling(obj: &Map<String, Value>) -> Result<Sampling, OpenAiError> {
    let number = |field: &'static str, max: f64| -> Result<Option<f64>, OpenAiError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if (0.0..=max).contains(&x) => Ok(Some(x)),
                _ => Err(OpenAiError::invalid(
                    field,
                    format!("`{field}` must be a number from 0 to {max}"),
                )),
            },
        }
    };
    let count = |field: &'static str| -> Result<Option<u32>, OpenAiError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match request::whole_number(v)
                .and_then(|n| i32::try_from(n).ok())
                .and_then(|n| u32::try_from(n).ok())
            {
                Some(n) if n >= 1 => Ok(Some(n)),
                _ => Err(OpenAiError::invalid(
                    field,
                    format!("`{field}` must be an integer from 1 to 2^31 - 1"),
                )),
            },
        }
    };
    let max_tokens = count("max_tokens")?;
    let max_tokens = count("max_completion_tokens")?.or(max_tokens);
    let seed = match obj.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            request::whole_number(v)
                .filter(|&n| i64::try_from(n).is_ok())
                .ok_or_else(|| {
                    OpenAiError::invalid("seed", "`seed` must be an integer from 0 to 2^63 - 1")
                })?,
        ),
    };
    let stop_rule = || {
        OpenAiError::invalid(
            "stop",
            format!("`stop` must be a string or a list of at most {MAX_STOP} strings"),
        )
    };
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= MAX_STOP => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(stop_rule))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(stop_rule()),
    };
    Ok(Sampling {
        temperature: number("temperature", 2.0)?,
        top_p: number("top_p", 1.0)?,
        max_tokens,
        seed,
        stop,
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
