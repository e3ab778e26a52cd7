//! The syncer's operations endpoints (Kubernetes probes, Prometheus), like the worker's:
//! `GET /livez`; `GET /readyz` — 200 while the newest snapshot of the netuid is younger than
//! `stale_after` (on every replica, leader or standby), 503 otherwise; `GET /metrics` —
//! Prometheus text, with `sn1_metagraph_snapshot_age_seconds` read from the database at scrape.

use crate::status::SyncStatus;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use sn1_contracts::store::metagraph::snapshot_age;
use sqlx::postgres::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct OpsState {
    pool: PgPool,
    status: Arc<SyncStatus>,
    stale_after: Duration,
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

/// Serves the endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    status: Arc<SyncStatus>,
    stale_after: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Installs the recorder before the first sync records anything.
    let handle = sn1_contracts::telemetry::metrics_handle();
    let app = Router::new()
        .route(
            "/livez",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            pool,
            status,
            stale_after,
            handle,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The newest snapshot's age, or why it is unknown.
async fn age(state: &OpsState) -> Result<Option<Duration>, String> {
    let netuid = state.status.view().netuid;
    match tokio::time::timeout(Duration::from_secs(2), snapshot_age(&state.pool, netuid)).await {
        Ok(Ok(age)) => Ok(age),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("database did not answer within 2s".into()),
    }
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let view = state.status.view();
    let age = age(&state).await;
    let fresh = matches!(&age, Ok(Some(a)) if *a <= state.stale_after);
    let status = if fresh {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let (age_secs, db_error) = match age {
        Ok(a) => (a.map(|a| a.as_secs_f64()), None),
        Err(e) => (None, Some(e)),
    };
    (
        status,
        axum::Json(json!({
            "netuid": view.netuid,
            "leader": view.leader,
            "snapshot_age_seconds": age_secs,
            "stale_after_seconds": state.stale_after.as_secs_f64(),
            "last_block": view.last_block,
            "last_snapshot_id": view.last_snapshot_id,
            "last_error": view.last_error,
            "consecutive_failures": view.consecutive_failures,
            "database_error": db_error,
        })),
    )
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    if let Ok(age) = age(&state).await {
        state.status.set_snapshot_age(age);
    }
    state.handle.render()
}
