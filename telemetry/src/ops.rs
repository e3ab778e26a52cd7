//! The operations endpoints every role serves, written once: `GET /livez` (the process is up),
//! `GET /readyz` (what the role's [`Probe`] says, 200 or 503 with its details as JSON) and
//! `GET /metrics` (Prometheus text).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// What a role reports about itself.
pub trait Probe: Clone + Send + Sync + 'static {
    /// Whether the role can do its work now, and the details shown on `/readyz`.
    fn readiness(&self) -> impl Future<Output = (bool, serde_json::Value)> + Send;

    /// Refreshes gauges read at scrape time (default: nothing).
    fn before_scrape(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// `GET /livez`: the process is up.
pub async fn livez() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// The Prometheus text of this process, with its content type.
pub fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics_handle().render(),
    )
}

/// `/livez`, `/readyz` and `/metrics` for `probe`.
pub fn router<P: Probe>(probe: P) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz::<P>))
        .route("/metrics", get(metrics::<P>))
        .with_state(probe)
}

/// Serves `router(probe)` on `listener` until `shutdown` fires.
pub async fn serve<P: Probe>(
    listener: tokio::net::TcpListener,
    probe: P,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Installs the recorder before the role records anything.
    let _ = crate::metrics_handle();
    axum::serve(listener, router(probe))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn readyz<P: Probe>(State(probe): State<P>) -> impl IntoResponse {
    let (ready, details) = probe.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(details))
}

async fn metrics<P: Probe>(State(probe): State<P>) -> impl IntoResponse {
    probe.before_scrape().await;
    metrics_text()
}
