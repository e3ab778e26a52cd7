//! The `/chat` and `/echo` request body (`QueryValidatorParams` of the seed): parsed field by
//! field so every error names the field and the rule it broke. The `timeout` becomes the job's
//! deadline here, once; nothing downstream converts it again.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sn1_contracts::job::{ChatParams, Exclusion, SamplingMode, Strategy};
use utoipa::ToSchema;

/// Limits on requests, from configuration.
#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// Largest `k`.
    pub max_k: u16,
    /// Largest `timeout`, seconds.
    pub max_timeout_secs: f64,
    /// Most messages in one request.
    pub max_messages: usize,
    /// Total characters across all messages.
    pub max_message_chars: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_k: 256,
            max_timeout_secs: 120.0,
            max_messages: 256,
            max_message_chars: 200_000,
        }
    }
}

/// The request body of `POST /chat` and `POST /echo` (documentation schema; parsing is by
/// hand so errors can name the field).
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub struct ChatRequest {
    /// Number of miners to query (1 ..= configured max, default 10).
    #[schema(default = 10, minimum = 1)]
    k: Option<u16>,
    /// Miners never to query: uids (int) or hotkeys (str).
    #[schema(value_type = Vec<Object>)]
    exclude: Option<Vec<Value>>,
    /// Role of each message: `user`, `assistant` or `system`; same length as `messages`.
    roles: Vec<String>,
    /// The conversation; non-empty.
    messages: Vec<String>,
    /// Seconds the answer may take (0 < t ≤ configured max, default 10).
    #[schema(default = 10.0)]
    timeout: Option<f64>,
    /// `longest` or `shortest`: wait for every miner, clean, pick. Absent: stream the first.
    prefer: Option<String>,
    /// `random` (default) or `top_incentive`.
    sampling_mode: Option<String>,
    /// `false` returns one JSON body instead of a stream.
    #[schema(default = true)]
    stream: Option<bool>,
}

/// A parsed request: the job parameters plus how the client wants the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRequest {
    /// What the worker gets.
    pub params: ChatParams,
    /// When the answer must be complete: the time the request arrived plus its `timeout`.
    pub deadline: DateTime<Utc>,
    /// Stream the answer (default) or send one JSON body.
    pub stream: bool,
}

/// A field that broke a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field, e.g. `messages`.
    pub field: &'static str,
    /// The whole message, naming the field.
    pub message: String,
}

fn bad(field: &'static str, rule: impl std::fmt::Display) -> FieldError {
    FieldError {
        field,
        message: format!("field `{field}`: {rule}"),
    }
}

/// Parses and validates a request body that arrived at `received_at` (the deadline counts from
/// then).
pub fn parse(
    body: &[u8],
    limits: &RequestLimits,
    received_at: DateTime<Utc>,
) -> Result<ParsedRequest, FieldError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| FieldError {
        field: "body",
        message: format!("the body is not valid JSON: {e}"),
    })?;
    let Value::Object(obj) = value else {
        return Err(FieldError {
            field: "body",
            message: "the body must be a JSON object".into(),
        });
    };
    let k = match obj.get("k") {
        None | Some(Value::Null) => 10.min(limits.max_k),
        Some(v) => match v.as_u64() {
            Some(k) if k >= 1 && k <= u64::from(limits.max_k) => k as u16,
            _ => {
                return Err(bad(
                    "k",
                    format!("must be an integer from 1 to {}", limits.max_k),
                ));
            }
        },
    };
    let messages = string_list(&obj, "messages")?;
    if messages.is_empty() {
        return Err(bad("messages", "must not be empty"));
    }
    if messages.len() > limits.max_messages {
        return Err(bad(
            "messages",
            format!("at most {} messages", limits.max_messages),
        ));
    }
    let chars: usize = messages.iter().map(|m| m.chars().count()).sum();
    if chars > limits.max_message_chars {
        return Err(bad(
            "messages",
            format!(
                "{chars} characters in all, at most {} allowed",
                limits.max_message_chars
            ),
        ));
    }
    let roles = string_list(&obj, "roles")?;
    if roles.len() != messages.len() {
        return Err(bad(
            "roles",
            format!(
                "has {} entries but `messages` has {}: they must be the same length",
                roles.len(),
                messages.len()
            ),
        ));
    }
    if let Some(role) = roles
        .iter()
        .find(|r| !matches!(r.as_str(), "user" | "assistant" | "system"))
    {
        return Err(bad(
            "roles",
            format!("{role:?} is not one of \"user\", \"assistant\", \"system\""),
        ));
    }
    let deadline = deadline(obj.get("timeout"), limits, received_at)?;
    let strategy = match obj.get("prefer") {
        None | Some(Value::Null) => Strategy::First,
        Some(Value::String(s)) if s == "longest" => Strategy::Longest,
        Some(Value::String(s)) if s == "shortest" => Strategy::Shortest,
        Some(_) => return Err(bad("prefer", "must be \"longest\" or \"shortest\"")),
    };
    let sampling_mode = match obj.get("sampling_mode") {
        None | Some(Value::Null) => SamplingMode::Random,
        Some(Value::String(s)) if s == "random" => SamplingMode::Random,
        Some(Value::String(s)) if s == "top_incentive" => SamplingMode::TopIncentive,
        Some(_) => {
            return Err(bad(
                "sampling_mode",
                "must be \"random\" or \"top_incentive\"",
            ));
        }
    };
    let exclude = match obj.get("exclude") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(h) if !h.is_empty() => Ok(Exclusion::Hotkey(h.clone())),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|u| u16::try_from(u).ok())
                    .map(Exclusion::Uid)
                    .ok_or_else(|| bad("exclude", format!("{n} is not a uid (0..=65535)"))),
                other => Err(bad(
                    "exclude",
                    format!("entries must be uids (int) or hotkeys (str), got {other}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("exclude", "must be a list of uids or hotkeys")),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream", "must be true or false")),
    };
    Ok(ParsedRequest {
        params: ChatParams {
            k,
            exclude,
            roles,
            messages,
            strategy,
            sampling_mode,
        },
        deadline,
        stream,
    })
}

/// The deadline of a request with this `timeout` field (seconds, default 10 or the limit).
fn deadline(
    timeout: Option<&Value>,
    limits: &RequestLimits,
    received_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldError> {
    let rule = || {
        bad(
            "timeout",
            format!(
                "must be a number of seconds, 0 < timeout <= {}",
                limits.max_timeout_secs
            ),
        )
    };
    let secs = match timeout {
        None | Some(Value::Null) => 10.0_f64.min(limits.max_timeout_secs),
        Some(v) => match v.as_f64() {
            Some(t) if t > 0.0 && t <= limits.max_timeout_secs => t,
            _ => return Err(rule()),
        },
    };
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| received_at.checked_add_signed(d))
        .ok_or_else(rule)
}

fn string_list(obj: &Map<String, Value>, field: &'static str) -> Result<Vec<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(bad(field, "is required")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(field, format!("entries must be strings, got {other}"))),
            })
            .collect(),
        Some(_) => Err(bad(field, "must be a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> FieldError {
        parse(body.as_bytes(), &RequestLimits::default(), Utc::now()).unwrap_err()
    }

    #[test]
    fn the_seed_example_parses_with_defaults() {
        let body =
            r#"{"k": 5, "timeout": 15, "roles": ["user"], "messages": ["Tell me a happy story"]}"#;
        let at = Utc::now();
        let p = parse(body.as_bytes(), &RequestLimits::default(), at).unwrap();
        assert_eq!(p.params.k, 5);
        assert_eq!(p.deadline - at, chrono::Duration::seconds(15));
        assert_eq!(p.params.strategy, Strategy::First);
        assert_eq!(p.params.sampling_mode, SamplingMode::Random);
        assert!(p.stream);
        let p = parse(br#"{"roles":["user"],"messages":["x"],"exclude":[3,"5F3p"],"prefer":"shortest","stream":false}"#, &RequestLimits::default(), at).unwrap();
        assert_eq!(p.params.k, 10);
        assert_eq!(p.deadline - at, chrono::Duration::seconds(10));
        assert_eq!(
            p.params.exclude,
            vec![Exclusion::Uid(3), Exclusion::Hotkey("5F3p".into())]
        );
        assert_eq!(p.params.strategy, Strategy::Shortest);
        assert!(!p.stream);
        let q = parse(
            br#"{"timeout":0.25,"roles":["user"],"messages":["x"]}"#,
            &RequestLimits::default(),
            at,
        )
        .unwrap();
        assert_eq!(q.deadline - at, chrono::Duration::milliseconds(250));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err("{").field, "body");
        assert_eq!(err("[]").field, "body");
        assert_eq!(err(r#"{"roles":["user"]}"#).field, "messages");
        assert_eq!(err(r#"{"roles":["user"],"messages":[]}"#).field, "messages");
        assert_eq!(err(r#"{"roles":[],"messages":["a"]}"#).field, "roles");
        assert_eq!(
            err(r#"{"roles":["robot"],"messages":["a"]}"#).field,
            "roles"
        );
        assert_eq!(
            err(r#"{"roles":["user"],"messages":[1]}"#).field,
            "messages"
        );
        assert_eq!(
            err(r#"{"k":0,"roles":["user"],"messages":["a"]}"#).field,
            "k"
        );
        assert_eq!(
            err(r#"{"k":257,"roles":["user"],"messages":["a"]}"#).field,
            "k"
        );
        assert_eq!(
            err(r#"{"k":"5","roles":["user"],"messages":["a"]}"#).field,
            "k"
        );
        assert_eq!(
            err(r#"{"timeout":0,"roles":["user"],"messages":["a"]}"#).field,
            "timeout"
        );
        assert_eq!(
            err(r#"{"timeout":121,"roles":["user"],"messages":["a"]}"#).field,
            "timeout"
        );
        assert_eq!(
            err(r#"{"prefer":"best","roles":["user"],"messages":["a"]}"#).field,
            "prefer"
        );
        assert_eq!(
            err(r#"{"sampling_mode":"x","roles":["user"],"messages":["a"]}"#).field,
            "sampling_mode"
        );
        assert_eq!(
            err(r#"{"exclude":[-1],"roles":["user"],"messages":["a"]}"#).field,
            "exclude"
        );
        assert_eq!(
            err(r#"{"stream":"yes","roles":["user"],"messages":["a"]}"#).field,
            "stream"
        );
        assert!(
            err(r#"{"k":0,"roles":["user"],"messages":["a"]}"#)
                .message
                .contains("`k`")
        );
    }
}
