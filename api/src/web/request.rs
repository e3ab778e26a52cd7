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
use serde::Serialize;
use serde_json::json;
use sn1_contracts::store::status::{MinerReply, RequestFanOut};
use utoipa::ToSchema;

/// One request and every miner it asked.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RequestReport {
    /// The request id.
    pub request_id: String,
    /// When it arrived (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// `chat`, `echo` or `v1`.
    pub endpoint: String,
    /// Subnet.
    pub netuid: i64,
    /// Miners asked for.
    pub k: i64,
    /// Miners actually asked.
    pub k_asked: i64,
    /// `first`, `longest`, `shortest`, …
    pub strategy: String,
    /// How it ended: `answered`, `echo`, `broken`, `timeout`, `no_answer`, `no_candidates`,
    /// `cancelled`.
    pub status: String,
    /// The error the client saw, if any.
    pub error: Option<String>,
    /// The miner whose answer was sent.
    pub selected_uid: Option<i64>,
    /// Time to the first chunk sent, ms.
    pub time_to_first_chunk_ms: Option<f64>,
    /// Time to the end, ms.
    pub total_ms: f64,
    /// Every miner asked: the selected one first, then by time to first byte.
    pub miners: Vec<MinerReplyRow>,
}

/// One miner's part in a request.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MinerReplyRow {
    /// Uid.
    pub uid: i64,
    /// Hotkey, SS58.
    pub hotkey: String,
    /// `ok`, `empty`, `refused`, `error`, `timeout`, `connect_failure`, `cancelled`.
    pub outcome: String,
    /// The axon's HTTP status.
    pub status_code: Option<i64>,
    /// Time to first byte, ms.
    pub time_to_first_byte_ms: Option<f64>,
    /// Time to the end of its reply, ms.
    pub total_ms: Option<f64>,
    /// Chunks received.
    pub chunks: i64,
    /// Bytes received.
    pub bytes: i64,
    /// Why its text was not usable, if it was not.
    pub clean_reason: Option<String>,
    /// Whether its answer went to the client.
    pub selected: bool,
}

impl From<MinerReply> for MinerReplyRow {
    fn from(m: MinerReply) -> Self {
        MinerReplyRow {
            uid: m.uid,
            hotkey: m.hotkey,
            outcome: m.outcome,
            status_code: m.status_code,
            time_to_first_byte_ms: m.time_to_first_byte_ms,
            total_ms: m.total_ms,
            chunks: m.chunks,
            bytes: m.bytes,
            clean_reason: m.clean_reason,
            selected: m.selected,
        }
    }
}

impl From<RequestFanOut> for RequestReport {
    fn from(r: RequestFanOut) -> Self {
        RequestReport {
            request_id: r.request_id,
            created_at: r
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            endpoint: r.endpoint,
            netuid: r.netuid,
            k: r.k,
            k_asked: r.k_asked,
            strategy: r.strategy,
            status: r.status,
            error: r.error,
            selected_uid: r.selected_uid,
            time_to_first_chunk_ms: r.time_to_first_chunk_ms,
            total_ms: r.total_ms,
            miners: r.miners.into_iter().map(MinerReplyRow::from).collect(),
        }
    }
}

/// One request's fan-out from the audit log: how it ended and every miner asked (outcome,
/// HTTP status, time to first byte, total, chunks, bytes, selected) — never the prompt, the
/// texts or the key id. Public.
#[utoipa::path(
    get,
    path = "/api/requests/{id}",
    params(("id" = String, Path, description = "The request id (`x-request-id`), a UUID",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "The request", body = RequestReport),
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
        Ok(Ok(Some(found))) => Json(RequestReport::from(found)).into_response(),
        Ok(Ok(None)) => {
            let message = format!("no request {id} in the audit log");
            let body = json!({"error": {"type": "not_found", "message": message}});
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
        Ok(Err(e)) => StatusError::Store(e.to_string()).into_response(),
        Err(_) => StatusError::Store("no answer in time".into()).into_response(),
    }
}
