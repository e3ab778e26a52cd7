//! Operations endpoints. On the api port, documented in the OpenAPI spec: `GET /livez` (the
//! shared one, [`sn1_telemetry::ops`]) and `GET /readyz` (checks the bus), for probes and load
//! balancers. `/metrics` is not on the api port: it is served with `/livez` and `/readyz` on
//! the ops port ([`ApiProbe`], `OPS_PORT`), like the worker's, so the public port never shows
//! it.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use sn1_contracts::bus::Bus;

/// The process is up.
#[utoipa::path(get, path = "/livez", responses((status = 200, description = "alive")))]
pub async fn livez() -> impl IntoResponse {
    sn1_telemetry::ops::livez().await
}

/// Ready to take requests: the job queue is reachable.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "NATS unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, details) = readiness(&state.bus);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(details))
}

fn readiness(bus: &Bus) -> (bool, serde_json::Value) {
    if bus.is_connected() {
        (true, json!({"status": "ready", "nats": "connected"}))
    } else {
        (
            false,
            json!({"status": "not ready", "nats": "disconnected"}),
        )
    }
}

/// The api's ops port: `/livez`, `/readyz` (the same answer as on the api port) and `/metrics`.
#[derive(Clone)]
pub struct ApiProbe {
    /// The job queue / event bus.
    pub bus: Bus,
}

impl sn1_telemetry::ops::Probe for ApiProbe {
    async fn readiness(&self) -> (bool, serde_json::Value) {
        readiness(&self.bus)
    }
}
