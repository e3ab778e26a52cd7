//! The api role: the stateless HTTP edge. Authenticates, validates, publishes chat jobs to the
//! job queue and relays their events to the client. Holds no hotkey and no chain access.
//!
//! Entry points: [`router`] (the axum app over an [`AppState`]) and [`serve`].

pub mod answer;
pub mod auth;
pub mod connections;
pub mod dispatch;
pub mod docs;
pub mod error;
pub mod events;
pub mod http_span;
pub mod keys;
pub mod openai;
pub mod relay;
pub mod request;
pub mod routes;
pub mod submit;
pub mod web;

use auth::Auth;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connections::ConnectionLimits;
use error::ApiError;
use request::RequestLimits;
use sn1_contracts::bus::Bus;
use sn1_contracts::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Settings of an api process.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Request bodies above this many bytes are refused (413).
    pub max_body_bytes: usize,
    /// Field limits.
    pub limits: RequestLimits,
    /// Requests relayed at once by this process; more get 503.
    pub max_in_flight: usize,
    /// How long to wait for a worker to take a job (then 504).
    pub accept_timeout: Duration,
    /// Relay timings (keep-alive, worker silence, deadline grace).
    pub relay: relay::RelayTimings,
    /// Client connections: header-read and idle timeouts, how many at once.
    pub connections: ConnectionLimits,
    /// The models `/v1` serves (`MODELS`).
    pub models: openai::models::Models,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1 << 20,
            limits: RequestLimits::default(),
            max_in_flight: 1024,
            accept_timeout: Duration::from_secs(5),
            relay: relay::RelayTimings {
                keep_alive: Duration::from_secs(5),
                worker_silence: Duration::from_millis(2500),
                deadline_grace: Duration::from_secs(2),
            },
            connections: ConnectionLimits::default(),
            models: openai::models::Models::default(),
        }
    }
}

/// Admin request bodies above this many bytes are refused (413).
pub const ADMIN_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The job queue / event bus.
    pub bus: Bus,
    /// Who may call.
    pub auth: Auth,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Slots for requests in flight (bounded; full → 503).
    pub inflight: Arc<Semaphore>,
    /// The system of record, when this process has one (`DATABASE_URL`; standalone's SQLite):
    /// managed keys and the status page read it.
    pub store: Option<Store>,
    /// Managed keys admitted recently (let in while the store is unreachable).
    pub recent_keys: Arc<keys::RecentKeys>,
    /// Managed-key admissions waiting for the store (capped per key and in all).
    pub pending_admissions: Arc<keys::PendingAdmissions>,
    /// Whether the key store can be reached (fail open) or is only busy (fail closed).
    pub key_store: Arc<keys::StoreReach>,
    /// Managed keys' usage served here, added to the store once a second.
    pub usage: Arc<keys::UsageTally>,
    /// The key of `/admin/keys` (`ADMIN_KEY`); without it the admin API is off.
    pub admin_key: Option<Arc<secrecy::SecretString>>,
    /// Where this process receives its jobs' events (subscribed on first use).
    inbox: Arc<tokio::sync::OnceCell<sn1_contracts::bus::EventInbox>>,
}

impl AppState {
    /// State for `bus`, `auth` and `config`.
    pub fn new(bus: Bus, auth: Auth, config: ApiConfig) -> Self {
        // Install the metrics recorder before the first request records anything.
        let _ = sn1_telemetry::metrics_handle();
        AppState {
            bus,
            auth,
            inflight: Arc::new(Semaphore::new(config.max_in_flight)),
            config: Arc::new(config),
            store: None,
            recent_keys: Arc::default(),
            pending_admissions: Arc::default(),
            key_store: Arc::default(),
            usage: Arc::default(),
            admin_key: None,
            inbox: Arc::default(),
        }
    }

    /// The same state, reading and writing `store`.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// The same state, with the admin API on under `key` (`ADMIN_KEY`).
    pub fn with_admin_key(mut self, key: secrecy::SecretString) -> Self {
        self.admin_key = Some(Arc::new(key));
        self
    }

    /// This process's event inbox: one subscription for every request it serves.
    pub async fn inbox(
        &self,
    ) -> Result<&sn1_contracts::bus::EventInbox, sn1_contracts::bus::BusError> {
        self.inbox.get_or_try_init(|| self.bus.event_inbox()).await
    }
}

/// The whole HTTP app.
pub fn router(state: AppState) -> Router {
    let chat = Router::new()
        .route("/chat", post(routes::chat::chat))
        .route("/chat/", post(routes::chat::chat))
        .route("/echo", post(routes::chat::echo))
        .route("/echo/", post(routes::chat::echo))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_json,
        ));
    let v1 = Router::new()
        .route(
            "/v1/chat/completions",
            post(routes::openai::chat_completions),
        )
        .route("/v1/models", get(routes::openai::models))
        .route("/v1/models/{id}", get(routes::openai::model));
    let admin = Router::new()
        .route(
            "/admin/keys",
            post(routes::admin::create).get(routes::admin::list),
        )
        .route(
            "/admin/keys/{id}",
            axum::routing::patch(routes::admin::change).delete(routes::admin::revoke),
        )
        .layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_BYTES));
    Router::new()
        .merge(chat)
        .merge(v1)
        .merge(admin)
        .merge(web::router())
        .route("/livez", get(routes::ops::livez))
        .route("/readyz", get(routes::ops::readyz))
        .merge(docs::router(&state.config))
        // Bodies are read with an explicit cap in the handlers (413 as JSON).
        .layer(axum::extract::DefaultBodyLimit::disable())
        // The server span of each request (OpenTelemetry HTTP conventions).
        .layer(axum::middleware::from_fn(http_span::trace))
        .with_state(state)
}

/// A chat body declared as anything but JSON gets 415 (after auth: a caller without a key
/// learns nothing about the request). No `Content-Type` at all is read as JSON.
async fn require_json(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_TYPE);
    if declared.is_none_or(|v| v.to_str().is_ok_and(request::is_json_content_type)) {
        return next.run(request).await;
    }
    match keys::authenticate(&state, request.headers(), uuid::Uuid::now_v7()).await {
        Ok(_caller) => ApiError::UnsupportedMediaType.into_response(),
        Err(e) => e.into_response(),
    }
}

pub use connections::listen;

/// Serves the ops port (`/livez`, `/readyz`, `/metrics`, as the worker's) on `listener` until
/// `shutdown` fires. `/metrics` is served only here, never on the api port.
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    state: &AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "api ops port listening");
    let probe = routes::ops::ApiProbe {
        bus: state.bus.clone(),
    };
    sn1_telemetry::ops::serve(listener, probe, shutdown).await
}

/// Serves the app on `listener` until `shutdown` fires, then lets open responses finish. Client
/// connections get the header-read and idle timeouts and the cap of the state's
/// [`ConnectionLimits`] (see [`connections`]); the process's open-file limit is raised to its
/// hard limit first, and the cap kept below it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = state.config.connections;
    let cap = connections::open_files::connection_cap(
        limits.max_connections,
        connections::open_files::raise_limit(),
    );
    tracing::info!(
        addr = %listener.local_addr()?,
        max_connections = cap,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "api listening"
    );
    // Managed keys' usage goes to the store once a second, and once more after the last answer.
    let usage = state.store.clone().map(|store| {
        let (tally, stop) = (state.usage.clone(), CancellationToken::new());
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { tally.run(store, stop).await }
        });
        (task, stop)
    });
    let served = connections::run(listener, router(state), limits, cap, shutdown).await;
    if let Some((task, stop)) = usage {
        stop.cancel();
        let _ = task.await;
    }
    served
}
