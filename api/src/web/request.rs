//! `GET /api/requests/{id}`: one request's fan-out from the audit log — the playground links its
//! answers here. Outcomes and timings only: the prompt, the texts and the key id are never
//! shown, so it is public like `/api/status` (a request id is a random UUID the client got in
//! `x-request-id`).

use super::status::StatusError;
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sn1_contracts::store::status::RequestFanOut;

/// One request's fan-out from the audit log: how it ended and every miner asked (outcome,
/// HTTP status, time to first byte, total, chunks, bytes, selected) — never the prompt, the
/// texts or the key id. Public.
#[utoipa::path(
    get,
    path = "/api/requests/{id}",
    params(("id" = String, Path, description = "The request id (`x-request-id`), a UUID",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "The request", body = RequestFanOut),
        (status = 400, description = "The id is not a UUID", body = crate::docs::ErrorResponse),
        (status = 404, description = "No such request in the audit log (unknown, not written \
            yet, or pruned)", body = crate::docs::ErrorResponse),
        (status = 503, description = "No database (`no_database`), or the database is \
            unavailable (`store_unavailable`, with Retry-After)",
            body = crate::docs::ErrorResponse,
            headers(("Retry-After" = Option<u64>, description = "Seconds to wait before retrying")))
    )
)]
pub async fn request(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return StatusError::BadRequest("the request id must be a UUID".into()).into_response();
    };
    let Some(store) = state.store.as_ref() else {
        return StatusError::NoDatabase.into_response();
    };
    let canonical = id.hyphenated().to_string();
    let query = store.request_fan_out(&canonical);
    match tokio::time::timeout(super::status::QUERY_TIMEOUT, query).await {
        Ok(Ok(Some(found))) => Json(found).into_response(),
        Ok(Ok(None)) => {
            let message = format!("no request {id} in the audit log");
            let body = json!({"error": {"type": "not_found", "message": message}});
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
        Ok(Err(e)) => StatusError::Store(e.to_string()).into_response(),
        Err(_) => StatusError::Store("no answer in time".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sn1_contracts::store::status::MinerReply;

    /// Serialized as it is, the store's type keeps the JSON the api answered before: the same
    /// keys in the same order, times with milliseconds.
    #[test]
    fn the_json_keeps_its_shape() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let fan_out = RequestFanOut {
            request_id: "r".into(),
            created_at: t("2026-12-02T05:00:00.5Z"),
            endpoint: "chat".into(),
            netuid: 1,
            k: 2,
            k_asked: 1,
            strategy: "first".into(),
            status: "answered".into(),
            error: None,
            selected_uid: Some(2),
            time_to_first_chunk_ms: Some(12.5),
            total_ms: 40.0,
            miners: vec![MinerReply {
                uid: 2,
                hotkey: "5H".into(),
                outcome: "ok".into(),
                status_code: Some(200),
                time_to_first_byte_ms: Some(10.0),
                total_ms: None,
                chunks: 3,
                bytes: 42,
                clean_reason: None,
                selected: true,
            }],
        };
        let expected = r#"{"request_id":"r","created_at":"2026-12-02T05:00:00.500Z",
            "endpoint":"chat","netuid":1,"k":2,"k_asked":1,"strategy":"first","status":"answered",
            "error":null,"selected_uid":2,"time_to_first_chunk_ms":12.5,"total_ms":40.0,
            "miners":[{"uid":2,"hotkey":"5H","outcome":"ok","status_code":200,
            "time_to_first_byte_ms":10.0,"total_ms":null,"chunks":3,"bytes":42,
            "clean_reason":null,"selected":true}]}"#;
        let json = serde_json::to_string(&fan_out).unwrap();
        assert_eq!(json, expected.replace("\n            ", ""));
    }
}
