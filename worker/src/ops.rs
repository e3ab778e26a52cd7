//! The worker's operations endpoints (for Kubernetes probes and Prometheus): `GET /livez`,
//! `GET /readyz` (NATS connected and a non-empty metagraph), `GET /metrics`.

use crate::directory::Directory;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use sn1_contracts::bus::Bus;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct OpsState {
    bus: Bus,
    directory: Directory,
}

/// Serves the endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bus: Bus,
    directory: Directory,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let metrics = sn1_contracts::telemetry::metrics_handle();
    let app = Router::new()
        .route(
            "/livez",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render();
                async move { body }
            }),
        )
        .with_state(OpsState { bus, directory });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let neurons = state.directory.snapshot().neurons.len();
    let nats = state.bus.is_connected();
    let status = if nats && neurons > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"nats": nats, "neurons": neurons})),
    )
}
