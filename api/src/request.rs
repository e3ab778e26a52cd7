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

/// The smallest `timeout` a request may ask for, seconds: below it no miner can answer (a
/// first byte alone takes longer), so such a request can only time out.
pub const MIN_TIMEOUT_SECS: f64 = 0.1;

/// The request body of `POST /chat` and `POST /echo` (documentation schema; parsing is by
/// hand so errors can name the field). The configured maxima (`k`, `timeout`, `messages`) are
/// filled in when the document is served ([`crate::docs`]).
#[derive(ToSchema)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub struct ChatRequest {
    /// Number of miners to query (1 ..= configured max, default 10).
    #[schema(default = 10, minimum = 1)]
    k: Option<u16>,
    /// Miners never to query: uids (int) or hotkeys (str).
    exclude: Option<Vec<Excluded>>,
    /// Role of each message: `user`, `assistant` or `system`; same length as `messages`.
    #[schema(min_items = 1)]
    roles: Vec<Role>,
    /// The conversation; non-empty.
    #[schema(min_items = 1)]
    messages: Vec<String>,
    /// Seconds the answer may take (0.1 <= t <= configured max, default 10).
    #[schema(default = 10.0, minimum = 0.1)]
    timeout: Option<f64>,
    /// Wait for every miner, clean, pick the longest or shortest. Absent: stream the first.
    prefer: Option<Prefer>,
    /// How the k miners are chosen (default `reliable`: the best-scored miners, with a share
    /// of picks left to exploring).
    sampling_mode: Option<SamplingModeName>,
    /// `false` returns one JSON body instead of a stream.
    #[schema(default = true)]
    stream: Option<bool>,
}

/// A miner to leave out: its uid or its hotkey (SS58).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub(crate) enum Excluded {
    /// A uid.
    Uid(Uid),
    /// A hotkey.
    Hotkey(Hotkey),
}

/// A uid.
#[derive(ToSchema)]
#[schema(minimum = 0, maximum = 65535)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub(crate) struct Uid(u16);

/// A hotkey (SS58).
#[derive(ToSchema)]
#[schema(min_length = 1)]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub(crate) struct Hotkey(String);

/// The role of a message.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum Role {
    User,
    Assistant,
    System,
}

/// Which answer to keep when waiting for every miner.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
enum Prefer {
    Longest,
    Shortest,
}

/// How the k miners are chosen.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "read only by the OpenAPI derive")]
pub(crate) enum SamplingModeName {
    Random,
    TopIncentive,
    Reliable,
}

/// Whether a `Content-Type` header value names JSON: `application/json`, in any case,
/// optionally with parameters (a `charset` must be UTF-8, the only encoding JSON has).
pub fn is_json_content_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|param| match param.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = charset.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
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
        Some(v) => match whole_number(v) {
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
    let sampling_mode = sampling_mode(obj.get("sampling_mode"), SamplingMode::Reliable)?;
    let exclude = exclusions(obj.get("exclude"))?;
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
            sampling: Default::default(),
        },
        deadline,
        stream,
    })
}

/// The `exclude` field: uids (int) and hotkeys (str); absent or `null` is none.
/// `sampling_mode` (`/chat`'s field, `/v1`'s `sn1.sampling_mode`); absent or null: `default`.
pub(crate) fn sampling_mode(
    value: Option<&Value>,
    default: SamplingMode,
) -> Result<SamplingMode, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) if s == "random" => Ok(SamplingMode::Random),
        Some(Value::String(s)) if s == "top_incentive" => Ok(SamplingMode::TopIncentive),
        Some(Value::String(s)) if s == "reliable" => Ok(SamplingMode::Reliable),
        Some(_) => Err(bad(
            "sampling_mode",
            "must be \"random\", \"top_incentive\" or \"reliable\"",
        )),
    }
}

pub(crate) fn exclusions(value: Option<&Value>) -> Result<Vec<Exclusion>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(h) if !h.is_empty() => Ok(Exclusion::Hotkey(h.clone())),
                Value::Number(n) => whole_number(item)
                    .and_then(|u| u16::try_from(u).ok())
                    .map(Exclusion::Uid)
                    .ok_or_else(|| bad("exclude", format!("{n} is not a uid (0..=65535)"))),
                other => Err(bad(
                    "exclude",
                    format!("entries must be uids (int) or hotkeys (str), got {other}"),
                )),
            })
            .collect(),
        Some(_) => Err(bad("exclude", "must be a list of uids or hotkeys")),
    }
}

/// The deadline of a request with this `timeout` field (seconds, default 10 or the limit).
pub(crate) fn deadline(
    timeout: Option<&Value>,
    limits: &RequestLimits,
    received_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldError> {
    let rule = || {
        bad(
            "timeout",
            format!(
                "must be a number of seconds from {MIN_TIMEOUT_SECS} to {}",
                limits.max_timeout_secs
            ),
        )
    };
    let secs = match timeout {
        None | Some(Value::Null) => 10.0_f64.min(limits.max_timeout_secs),
        Some(v) => match v.as_f64() {
            Some(t) if (MIN_TIMEOUT_SECS..=limits.max_timeout_secs).contains(&t) => t,
            _ => return Err(rule()),
        },
    };
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| received_at.checked_add_signed(d))
        .ok_or_else(rule)
}

/// A non-negative whole number, written `5` or `5.0` (JSON Schema's `integer` admits both).
pub(crate) fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    })
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
        assert_eq!(p.params.sampling_mode, SamplingMode::Reliable);
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

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        let p = parse(
            br#"{"k":3.0,"exclude":[7.0],"roles":["user"],"messages":["a"]}"#,
            &RequestLimits::default(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(p.params.k, 3);
        assert_eq!(p.params.exclude, vec![Exclusion::Uid(7)]);
        assert_eq!(
            err(r#"{"k":2.5,"roles":["user"],"messages":["a"]}"#).field,
            "k"
        );
        assert_eq!(
            err(r#"{"exclude":[1.5],"roles":["user"],"messages":["a"]}"#).field,
            "exclude"
        );
        assert_eq!(
            err(r#"{"k":-1.0,"roles":["user"],"messages":["a"]}"#).field,
            "k"
        );
    }

    #[test]
    fn timeout_has_a_floor_and_the_message_says_it() {
        // 120.00000000000001 is the float just above 120: it must be read as such (serde_json's
        // float_roundtrip), not rounded down to the limit (schemathesis found that).
        for tiny in ["1e-9", "0.05", "0.0999", "-1", "0", "120.00000000000001"] {
            let e = err(&format!(
                r#"{{"timeout":{tiny},"roles":["user"],"messages":["a"]}}"#
            ));
            assert_eq!(e.field, "timeout", "{tiny}");
            assert_eq!(
                e.message,
                "field `timeout`: must be a number of seconds from 0.1 to 120"
            );
        }
        let at = Utc::now();
        for (ok, ms) in [("0.1", 100), ("120", 120_000)] {
            let p = parse(
                format!(r#"{{"timeout":{ok},"roles":["user"],"messages":["a"]}}"#).as_bytes(),
                &RequestLimits::default(),
                at,
            )
            .unwrap();
            assert_eq!(p.deadline - at, chrono::Duration::milliseconds(ms), "{ok}");
        }
    }

    #[test]
    fn only_json_content_types_are_json() {
        for ok in [
            "application/json",
            "Application/JSON",
            " application/json ",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json; charset=utf8; foo=bar",
        ] {
            assert!(is_json_content_type(ok), "{ok:?}");
        }
        for bad in [
            "application/jsonx",
            "application/json-patch+json",
            "application/x-www-form-urlencoded",
            "text/json",
            "application/json; charset=latin1",
            "application/ json",
            "",
        ] {
            assert!(!is_json_content_type(bad), "{bad:?}");
        }
    }
}
