//! Every error the api answers before a stream starts, mapped to HTTP in one place. Bodies are
//! `{"error": {"type", "message"}}`; causes are logged here, never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Seconds a client is told to wait before retrying an overloaded or unavailable gateway, or
/// one where no worker took the request.
pub const RETRY_AFTER_SECS: u64 = 1;

/// An error answered before streaming.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// A managed key that no longer works (revoked, expired): the message says which.
    #[error("{0}")]
    KeyRefused(&'static str),
    /// The key is over one of its limits (requests per minute, answers in flight).
    #[error("{message}")]
    RateLimited {
        /// When to try again.
        retry_after_secs: u64,
        /// Which limit.
        message: &'static str,
    },
    /// A managed key could not be checked: the key store is unreachable.
    #[error("API keys cannot be checked right now; retry shortly")]
    KeyStoreUnavailable,
    /// Invalid JSON or an invalid field (the message names it).
    #[error("{0}")]
    BadRequest(String),
    /// The body did not arrive in time (`BODY_READ_TIMEOUT`).
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    BodyTimeout(std::time::Duration),
    /// Body above the size cap.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Not JSON.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// Well-formed but impossible (e.g. `exclude` leaves no miner).
    #[error("{0}")]
    Unprocessable(String),
    /// Too many requests in flight on this process.
    #[error("the gateway is at capacity; retry shortly")]
    Overloaded,
    /// Too many open connections on this process (`MAX_CONNECTIONS`).
    #[error("the gateway has too many open connections; retry shortly")]
    TooManyConnections,
    /// The job queue is down or full.
    #[error("the job queue is unavailable; retry shortly")]
    QueueUnavailable(String),
    /// No worker took the job in time.
    #[error("no worker took the request in time")]
    NoWorker,
    /// The miners did not answer in time (non-streamed requests).
    #[error("{0}")]
    UpstreamTimeout(String),
    /// No miner gave a usable answer (non-streamed requests).
    #[error("{0}")]
    NoAnswer(String),
}

impl ApiError {
    /// The HTTP status, the stable error name (`type` on `/chat`, `code` on `/v1`) and the
    /// `Retry-After` seconds sent with it, if any. Logs the cause of an unavailable queue (once,
    /// here).
    pub fn classify(&self) -> (StatusCode, &'static str, Option<u64>) {
        let (status, name, retry) = self.kind();
        let seconds = match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => RETRY_AFTER_SECS,
        };
        (status, name, retry.then_some(seconds))
    }

    fn kind(&self) -> (StatusCode, &'static str, bool) {
        match self {
            ApiError::Unauthorized | ApiError::KeyRefused(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", false)
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", true),
            ApiError::KeyStoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "key_store_unavailable",
                true,
            ),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request", false),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout", false),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", false)
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                false,
            ),
            ApiError::Unprocessable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", false)
            }
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", true),
            ApiError::TooManyConnections => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                true,
            ),
            ApiError::QueueUnavailable(cause) => {
                tracing::warn!(cause = %cause, "job queue unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable", true)
            }
            // Workers may be restarting or all busy: worth another try.
            ApiError::NoWorker => (StatusCode::GATEWAY_TIMEOUT, "no_worker", true),
            ApiError::UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout", false),
            ApiError::NoAnswer(_) => (StatusCode::BAD_GATEWAY, "no_answer", false),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, retry) = self.classify();
        metrics::counter!("sn1_api_errors_total", "type" => kind).increment(1);
        let body = json!({"error": {"type": kind, "message": self.to_string()}});
        retry_after((status, axum::Json(body)).into_response(), retry)
    }
}

/// `response`, with `Retry-After: seconds` when given (the `/chat` and `/v1` errors alike).
pub fn retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(e: ApiError) -> (u16, Option<String>) {
        let r = e.into_response();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), retry)
    }

    #[test]
    fn every_retryable_answer_says_when_to_retry() {
        let one = Some("1".to_string());
        assert_eq!(retry_after(ApiError::NoWorker), (504, one.clone()));
        assert_eq!(retry_after(ApiError::Overloaded), (503, one.clone()));
        assert_eq!(
            retry_after(ApiError::TooManyConnections),
            (503, one.clone())
        );
        assert_eq!(
            retry_after(ApiError::QueueUnavailable("x".into())),
            (503, one)
        );
        assert_eq!(retry_after(ApiError::BadRequest("x".into())), (400, None));
        let limited = ApiError::RateLimited {
            retry_after_secs: 7,
            message: "over",
        };
        assert_eq!(retry_after(limited), (429, Some("7".to_string())));
        assert_eq!(
            retry_after(ApiError::KeyStoreUnavailable),
            (503, Some("1".to_string()))
        );
        assert_eq!(retry_after(ApiError::KeyRefused("revoked")), (401, None));
        assert_eq!(
            retry_after(ApiError::UpstreamTimeout("x".into())),
            (504, None)
        );
    }
}
