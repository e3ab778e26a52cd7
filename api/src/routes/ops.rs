//! Operations endpoints on the api port, documented in the OpenAPI spec: `GET /livez` and
//! `GET /metrics` are the shared ones ([`sn1_telemetry::ops`]); `GET /readyz` checks the bus.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

/// The process is up.
#[utoipa::path(get, path = "/livez", responses((status = 200, description = "alive")))]
pub async fn livez() -> impl IntoResponse {
    sn1_telemetry::ops::livez().await
}

/// Ready to take requests: the job queue is reachable.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "NATS unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.bus.is_connected() {
        (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "nats": "connected"})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "nats": "disconnected"})),
        )
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    sn1_telemetry::ops::metrics_text()
}
