//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with OpenAI's
//! statuses: what the official SDKs turn into `AuthenticationError`, `BadRequestError`,
//! `NotFoundError`, … Every [`ApiError`] of the shared path maps here through
//! [`ApiError::classify`], so `/chat` and `/v1` answer the same status for the same failure.

use crate::error::{ApiError, retry_after};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error of a `/v1` route.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    retry: Option<u64>,
    body: ErrorBody,
}

/// The `error` object.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    /// For people; names the parameter of a 400.
    pub message: String,
    /// `invalid_request_error` (4xx) or `server_error` (5xx).
    pub r#type: &'static str,
    /// The request parameter at fault, e.g. `messages` or `sn1.k`.
    pub param: Option<String>,
    /// A stable name, e.g. `invalid_api_key`, `model_not_found`, `timeout`.
    pub code: Option<&'static str>,
}

impl OpenAiError {
    /// 400 naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        metrics::counter!("sn1_api_errors_total", "type" => "invalid_request").increment(1);
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            retry: None,
            body: ErrorBody {
                message: message.into(),
                r#type: "invalid_request_error",
                param: Some(param.into()),
                code: None,
            },
        }
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> Self {
        metrics::counter!("sn1_api_errors_total", "type" => "model_not_found").increment(1);
        OpenAiError {
            status: StatusCode::NOT_FOUND,
            retry: None,
            body: ErrorBody {
                message: format!("The model `{model}` does not exist"),
                r#type: "invalid_request_error",
                param: Some("model".into()),
                code: Some("model_not_found"),
            },
        }
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error` object.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

/// The type OpenAI gives errors of this status.
fn error_type(status: StatusCode) -> &'static str {
    if status == StatusCode::TOO_MANY_REQUESTS {
        "requests"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let (status, kind, retry) = e.classify();
        metrics::counter!("sn1_api_errors_total", "type" => kind).increment(1);
        let code = match e {
            ApiError::Unauthorized | ApiError::KeyRefused(_) => "invalid_api_key",
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            _ => kind,
        };
        OpenAiError {
            status,
            retry,
            body: ErrorBody {
                message: e.to_string(),
                r#type: error_type(status),
                param: None,
                code: Some(code),
            },
        }
    }
}

/// `{"error": …}`, as the body of an answer or one SSE `data:` line mid-stream.
#[derive(Serialize)]
pub struct Envelope<'a> {
    /// The error.
    pub error: &'a ErrorBody,
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let response = (self.status, axum::Json(Envelope { error: &self.body })).into_response();
        retry_after(response, self.retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn shared_errors_keep_their_status_and_get_openai_types() {
        let e = OpenAiError::from(ApiError::Unauthorized);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.body().code, Some("invalid_api_key"));
        assert_eq!(e.body().r#type, "invalid_request_error");
        let e = OpenAiError::from(ApiError::NoWorker);
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.body().r#type, "server_error");
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let e = OpenAiError::from(ApiError::RateLimited {
            retry_after_secs: 6,
            message: "over",
        });
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.body().code, Some("rate_limit_exceeded"));
        assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "6");
        let e = OpenAiError::model_not_found("gpt-4");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.body().param.as_deref(), Some("model"));
    }
}
