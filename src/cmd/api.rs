//! `sn1-gateway api`: the HTTP edge.

use super::common::{self, LogArgs, NatsArgs, parse_duration};
use secrecy::SecretString;
use sn1_api::auth::{Auth, MIN_KEY_ID_SECRET_LEN};
use sn1_api::connections::ConnectionLimits;
use sn1_api::openai::models::Models;
use sn1_api::request::RequestLimits;
use sn1_api::{ApiConfig, AppState};
use sn1_contracts::bus::{Bus, NatsBus};
use sn1_contracts::store::Store;
use std::process::ExitCode;
use std::time::Duration;

/// Who may call the api.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// The API key clients must send (header `api_key`, `api-key` or `Authorization: Bearer`).
    #[arg(
        long = "expected-access-key",
        env = "EXPECTED_ACCESS_KEY",
        hide_env_values = true
    )]
    pub expected_access_key: Option<String>,
    /// Run without authentication (refused unless given explicitly).
    #[arg(long = "insecure-no-auth", env = "INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Server-side secret (16+ characters) keying the ids under which API keys appear in jobs,
    /// logs and the audit log (HMAC-SHA256); every api replica needs the same one.
    #[arg(long = "key-id-secret", env = "KEY_ID_SECRET", hide_env_values = true)]
    pub key_id_secret: Option<String>,
}

/// The admin API's key.
#[derive(clap::Args, Debug, Clone)]
pub struct AdminArgs {
    /// The key of `/admin/keys` (`Authorization: Bearer`, 16+ characters); unset: the admin API
    /// is off (the `keys` command works without it).
    #[arg(long = "admin-key", env = "ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

impl AdminArgs {
    /// Problems with `ADMIN_KEY`.
    pub fn problems(&self) -> Vec<String> {
        match &self.admin_key {
            Some(k) if k.trim().len() < MIN_KEY_ID_SECRET_LEN => vec![format!(
                "ADMIN_KEY must be at least {MIN_KEY_ID_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
            )],
            _ => Vec::new(),
        }
    }

    /// `state` with the admin API on when `ADMIN_KEY` is set.
    pub fn apply(&self, state: AppState) -> AppState {
        match &self.admin_key {
            Some(key) => state.with_admin_key(SecretString::from(key.trim().to_string())),
            None => state,
        }
    }
}

impl AuthArgs {
    /// Problems, each naming its key; `required`: a key or `--insecure-no-auth` must be given
    /// (the api with a `DATABASE_URL` may take managed keys alone).
    pub fn problems(&self, required: bool) -> Vec<String> {
        match (&self.expected_access_key, self.insecure_no_auth) {
            (None, false) if required => vec![
                "EXPECTED_ACCESS_KEY is not set: set it, set DATABASE_URL for managed keys (api), \
                 or pass --insecure-no-auth to run an open API"
                    .into(),
            ],
            (Some(k), _) if k.trim().is_empty() => vec!["EXPECTED_ACCESS_KEY is empty".into()],
            _ => Vec::new(),
        }
    }

    /// Problems with `KEY_ID_SECRET`; `required`: it must be set when a key is (the api: its
    /// replicas must agree on ids, and nothing else they share is secret).
    pub fn secret_problems(&self, required: bool) -> Vec<String> {
        match &self.key_id_secret {
            Some(s) if s.trim().len() < MIN_KEY_ID_SECRET_LEN => vec![format!(
                "KEY_ID_SECRET must be at least {MIN_KEY_ID_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
            )],
            None if required && self.expected_access_key.is_some() => vec![
                "KEY_ID_SECRET is not set: it keys the ids of API keys in the audit log, and every api replica needs the same one (e.g. `openssl rand -hex 32`)"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }

    /// `KEY_ID_SECRET`, when set.
    pub fn key_id_secret(&self) -> Option<SecretString> {
        self.key_id_secret
            .as_deref()
            .map(|s| SecretString::from(s.trim().to_string()))
    }

    /// The configured auth: the key (its id keyed with `id_secret`), or open with
    /// `--insecure-no-auth`; `None` when neither.
    pub fn auth(&self, id_secret: &SecretString) -> Option<Auth> {
        match (&self.expected_access_key, self.insecure_no_auth) {
            (Some(key), _) => Some(Auth::with_key(
                SecretString::from(key.trim().to_string()),
                id_secret,
            )),
            (None, true) => Some(Auth::Open),
            (None, false) => None,
        }
    }
}

/// The api's ops port (api and standalone).
#[derive(clap::Args, Debug, Clone)]
pub struct OpsArgs {
    /// Port of /livez, /readyz and /metrics (on HOST; 0: none). /metrics is served only here,
    /// never on PORT.
    #[arg(long = "ops-port", env = "OPS_PORT", default_value_t = 9102)]
    pub ops_port: u16,
}

impl OpsArgs {
    /// Binds the ops port on `host` and serves it in the background until `shutdown`; nothing
    /// when it is 0.
    pub fn spawn(
        &self,
        host: std::net::IpAddr,
        state: &AppState,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        if self.ops_port == 0 {
            return Ok(());
        }
        let listener = sn1_api::listen(std::net::SocketAddr::new(host, self.ops_port))
            .map_err(|e| anyhow::anyhow!("cannot listen on OPS_PORT {}: {e}", self.ops_port))?;
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = sn1_api::serve_ops(listener, &state, shutdown).await {
                tracing::warn!(error = %e, "ops server stopped");
            }
        });
        Ok(())
    }
}

/// A duration flag whose default comes from the library's `Default` and shows in `--help`
/// (parsed with [`parse_duration`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl std::fmt::Display for DurationArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{}ms", self.0.as_millis())
        }
    }
}

impl std::str::FromStr for DurationArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(DurationArg)
    }
}

/// Client connections: timeouts and the cap (api and standalone).
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// A request head must be complete this long after the connection opens (or after the
    /// first byte of its next request); a slower client is disconnected.
    #[arg(long = "header-read-timeout", env = "HEADER_READ_TIMEOUT", default_value_t = DurationArg(ConnectionLimits::default().header_read_timeout))]
    pub header_read_timeout: DurationArg,
    /// A request body must have arrived this long after its head; a slower one gets 408.
    #[arg(long = "body-read-timeout", env = "BODY_READ_TIMEOUT", default_value_t = DurationArg(ConnectionLimits::default().body_read_timeout))]
    pub body_read_timeout: DurationArg,
    /// A keep-alive connection with no request for this long is closed (keep it above the
    /// load balancer's idle timeout).
    #[arg(long = "idle-timeout", env = "IDLE_TIMEOUT", default_value_t = DurationArg(ConnectionLimits::default().idle_timeout))]
    pub idle_timeout: DurationArg,
    /// Client connections served at once; beyond, /livez and /readyz still answer, other
    /// requests get 503 with Retry-After (lowered to fit the open-file limit).
    #[arg(long = "max-connections", env = "MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
}

impl ConnectionArgs {
    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.header_read_timeout.0.is_zero() {
            out.push("HEADER_READ_TIMEOUT must be longer than 0".into());
        }
        if self.body_read_timeout.0.is_zero() {
            out.push("BODY_READ_TIMEOUT must be longer than 0".into());
        }
        if self.idle_timeout.0.is_zero() {
            out.push("IDLE_TIMEOUT must be longer than 0".into());
        }
        if self.max_connections == 0 {
            out.push("MAX_CONNECTIONS must be at least 1".into());
        }
        out
    }

    /// The limits.
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout.0,
            body_read_timeout: self.body_read_timeout.0,
            idle_timeout: self.idle_timeout.0,
            max_connections: self.max_connections,
        }
    }
}

/// The models `/v1` serves.
#[derive(clap::Args, Debug)]
pub struct ModelsArgs {
    /// The models of `/v1`: a JSON list of routing profiles, e.g.
    /// `[{"id": "sn1", "k": 10, "strategy": "first", "sampling_mode": "random"}]`
    /// (default: one model, `sn1`).
    #[arg(long = "models", env = "MODELS")]
    pub models: Option<String>,
}

impl ModelsArgs {
    /// What is wrong with `MODELS`.
    pub fn problems(&self, max_k: u16) -> Vec<String> {
        match &self.models {
            Some(json) => Models::parse(json, max_k).err().into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// The models (the default when `MODELS` is unset; checked in `problems`).
    pub fn models(&self, max_k: u16) -> Models {
        self.models
            .as_deref()
            .and_then(|json| Models::parse(json, max_k).ok())
            .unwrap_or_default()
    }
}

/// Configuration of the api role.
#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// Port to listen on (the seed's variable).
    #[arg(long, env = "PORT", default_value_t = 10000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: std::net::IpAddr,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Requests relayed at once by this process; more get 503 with Retry-After.
    #[arg(long = "max-in-flight", env = "MAX_IN_FLIGHT", default_value_t = ApiConfig::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Request bodies above this many bytes get 413.
    #[arg(long = "max-body-bytes", env = "MAX_BODY_BYTES", default_value_t = ApiConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest `k` a request may ask for.
    #[arg(long = "max-k", env = "MAX_K", default_value_t = RequestLimits::default().max_k)]
    pub max_k: u16,
    /// Largest `timeout` (seconds) a request may ask for.
    #[arg(long = "max-timeout", env = "MAX_TIMEOUT", default_value_t = 120.0)]
    pub max_timeout: f64,
    /// Postgres (`postgres://…`) holding managed API keys and what the status page shows;
    /// without it only `EXPECTED_ACCESS_KEY` is accepted.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// How long to wait for a worker to take a job before answering 504.
    #[arg(long = "accept-timeout", env = "ACCEPT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub accept_timeout: Duration,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub models: ModelsArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl ApiArgs {
    fn problems(&self) -> Vec<String> {
        let mut out = self.nats.problems();
        out.extend(self.auth.problems(self.database_url.is_none()));
        out.extend(self.admin.problems());
        if self.admin.admin_key.is_some() && self.database_url.is_none() {
            out.push("ADMIN_KEY needs DATABASE_URL (the keys it manages live there)".into());
        }
        out.extend(self.auth.secret_problems(true));
        out.extend(self.connections.problems());
        out.extend(self.models.problems(self.max_k));
        if self.max_in_flight == 0 {
            out.push("MAX_IN_FLIGHT must be at least 1".into());
        }
        if self.max_k == 0 {
            out.push("MAX_K must be at least 1".into());
        }
        if !(self.max_timeout.is_finite() && self.max_timeout > 0.0) {
            out.push("MAX_TIMEOUT must be a positive number of seconds".into());
        }
        out
    }
}

/// Runs the api until SIGTERM / Ctrl-C.
pub async fn run(args: ApiArgs) -> anyhow::Result<ExitCode> {
    common::check(args.problems())?;
    let telemetry = sn1_telemetry::init("sn1-api", args.log.log_format, &args.log.otel);
    // Checked in problems(): set whenever a key is (an open api has no key to give an id).
    let id_secret = args
        .auth
        .key_id_secret()
        .unwrap_or_else(|| SecretString::from(String::new()));
    // Checked in problems(): no static key and no --insecure-no-auth only with DATABASE_URL.
    let auth = args.auth.auth(&id_secret).unwrap_or(Auth::ManagedOnly);
    if matches!(auth, Auth::Open) {
        tracing::warn!("running WITHOUT authentication (--insecure-no-auth)");
    }
    let queue = args.nats.queue_config();
    let bus = Bus::Nats(NatsBus::connect(&args.nats.nats_url, args.nats.subjects(), queue).await?);
    if let Err(e) = bus.ensure_job_queue().await {
        tracing::warn!(error = %e, "jobs stream not ready yet; requests get 503 until it is");
    }
    let mut config = ApiConfig {
        max_body_bytes: args.max_body_bytes,
        max_in_flight: args.max_in_flight,
        accept_timeout: args.accept_timeout,
        connections: args.connections.limits(),
        models: args.models.models(args.max_k),
        ..ApiConfig::default()
    };
    config.limits.max_k = args.max_k;
    config.limits.max_timeout_secs = args.max_timeout;
    let mut state = AppState::new(bus, auth, config);
    if let Some(url) = &args.database_url {
        let store = Store::postgres(url, 16).await?;
        store.check_migrations().await?;
        state = state.with_store(store);
    }
    let state = args.admin.apply(state);
    let listener = sn1_api::listen(std::net::SocketAddr::new(args.host, args.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{} (PORT): {e}", args.host, args.port))?;
    let shutdown = common::shutdown_token();
    args.ops.spawn(args.host, &state, shutdown.clone())?;
    sn1_api::serve(listener, state, shutdown).await?;
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}
