//! `GET /api/status`: the JSON behind the status page — the newest metagraph snapshot and the
//! last hour of the audit log, read through the store seam ([`Store::subnet_status`]), so
//! standalone (SQLite) and distributed (Postgres) answer the same.
//!
//! Public, like the metagraph it describes: it shows miners' public identities and how they
//! answered, and request counts — never prompts, texts or key ids. Because anyone may call it,
//! answers are cached and computed one at a time: for [`CACHE_TTL`], or for
//! [`COST_FACTOR`] times as long as the queries took when that is longer — so polling pages,
//! however many, keep the database busy a fifth of the time at most (measured on Postgres on
//! a 2-core machine: an hour of 1,000,000 miner rows takes 3.3–4.1 s to summarise, so it is
//! then reused for ~17–20 s; `contracts/tests/status_queries.rs` `a_busy_hour_in_postgres`).

use crate::AppState;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use sn1_contracts::store::status::{MinerStatus, SubnetStatus};
use sn1_contracts::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use utoipa::ToSchema;

/// How long an answer is reused at least: the page refreshes every 10 s, snapshots come every
/// minute.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// An answer that took `t` to compute is reused for `COST_FACTOR × t` when that is longer than
/// [`CACHE_TTL`].
pub const COST_FACTOR: u32 = 5;

/// How long the queries may take before the answer is a 503 (the database is struggling).
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The audit window the page shows.
const WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Netuids cached at once (each `?netuid=` is its own entry); beyond, the cache starts over.
const CACHE_ENTRIES: usize = 16;

/// An answer and until when it is reused.
type Cached = (Instant, Arc<StatusReport>);

/// Recent answers by requested netuid; the lock is held while one is computed.
#[derive(Default)]
pub struct StatusCache {
    entries: Mutex<HashMap<Option<u16>, Cached>>,
}

/// The subnet and its miners' health over the last hour.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatusReport {
    /// Subnet of the snapshot (null before the metagraph syncer stored one).
    pub netuid: Option<u16>,
    /// Block the snapshot was read at.
    pub block: Option<u64>,
    /// When the snapshot was stored (RFC 3339).
    #[schema(format = DateTime)]
    pub snapshot_taken_at: Option<String>,
    /// Seconds since the snapshot was stored.
    pub snapshot_age_seconds: Option<f64>,
    /// When this answer was computed (RFC 3339); the window ends here.
    #[schema(format = DateTime)]
    pub generated_at: String,
    /// Length of the audit window, seconds (3600).
    pub window_seconds: i64,
    /// Neuron counts of the snapshot.
    pub counts: Counts,
    /// One per serving miner (serving an axon, not a validator), in uid order.
    pub miners: Vec<MinerRow>,
    /// Replies' times to first byte in the window, by bucket.
    pub ttfb_histogram: Vec<TtfbBar>,
    /// Requests and errors per minute of the window, oldest first.
    pub per_minute: Vec<MinuteRow>,
}

/// Neuron counts of the snapshot.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Counts {
    /// All neurons.
    pub neurons: u32,
    /// Serving an axon (IP not 0.0.0.0, port not 0).
    pub serving: u32,
    /// A validator permit and at least 4096 τ of stake.
    pub validators: u32,
    /// Serving and not validators: the miners a request may ask.
    pub candidates: u32,
}

/// One serving miner and its health over the window (rows of its uid and hotkey).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MinerRow {
    /// Uid.
    pub uid: u16,
    /// Hotkey, SS58.
    pub hotkey: String,
    /// `ip:port`.
    pub axon: String,
    /// Incentive, 0 to 1.
    pub incentive: f64,
    /// Stake, τ.
    pub stake_tao: f64,
    /// Times it was asked.
    pub asked: u64,
    /// Replies that ended (asked, less those dropped because another miner answered first).
    pub replies: u64,
    /// Share of replies that were usable (null: no reply).
    pub success_rate: Option<f64>,
    /// Share of replies that were empty (null: no reply).
    pub empty_rate: Option<f64>,
    /// Median time to first byte, ms.
    pub ttfb_p50_ms: Option<f64>,
    /// 95th percentile of time to first byte, ms.
    pub ttfb_p95_ms: Option<f64>,
    /// When it was last asked (RFC 3339).
    #[schema(format = DateTime)]
    pub last_seen: Option<String>,
}

/// One bar of the TTFB histogram.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TtfbBar {
    /// Upper edge, ms, exclusive (null: the last bar, everything above the previous edge).
    pub below_ms: Option<f64>,
    /// Replies in it.
    pub count: u64,
}

/// One minute of traffic.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MinuteRow {
    /// Its start (RFC 3339).
    #[schema(format = DateTime)]
    pub minute: String,
    /// Requests that started in it.
    pub requests: u64,
    /// Of those, errors (broken, timeout, no answer, no candidates).
    pub errors: u64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<MinerStatus> for MinerRow {
    fn from(m: MinerStatus) -> Self {
        let h = m.health;
        MinerRow {
            uid: m.uid,
            hotkey: m.hotkey,
            axon: m.axon,
            incentive: m.incentive,
            stake_tao: m.stake_tao,
            asked: h.asked,
            replies: h.replies,
            success_rate: h.success_rate,
            empty_rate: h.empty_rate,
            ttfb_p50_ms: h.ttfb_p50_ms,
            ttfb_p95_ms: h.ttfb_p95_ms,
            last_seen: h.last_seen.map(rfc3339),
        }
    }
}

impl From<SubnetStatus> for StatusReport {
    fn from(s: SubnetStatus) -> Self {
        let age = s
            .snapshot
            .as_ref()
            .map(|snap| (s.generated_at - snap.taken_at).num_milliseconds().max(0) as f64 / 1e3);
        StatusReport {
            netuid: s.snapshot.as_ref().map(|snap| snap.netuid),
            block: s.snapshot.as_ref().map(|snap| snap.block),
            snapshot_taken_at: s.snapshot.as_ref().map(|snap| rfc3339(snap.taken_at)),
            snapshot_age_seconds: age,
            generated_at: rfc3339(s.generated_at),
            window_seconds: s.window_seconds,
            counts: Counts {
                neurons: s.counts.neurons,
                serving: s.counts.serving,
                validators: s.counts.validators,
                candidates: s.counts.candidates,
            },
            miners: s.miners.into_iter().map(MinerRow::from).collect(),
            ttfb_histogram: s
                .ttfb_histogram
                .into_iter()
                .map(|b| TtfbBar {
                    below_ms: b.below_ms,
                    count: b.count,
                })
                .collect(),
            per_minute: s
                .per_minute
                .into_iter()
                .map(|m| MinuteRow {
                    minute: rfc3339(m.minute),
                    requests: m.requests,
                    errors: m.errors,
                })
                .collect(),
        }
    }
}

/// Why the status could not be given.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A query parameter is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// This api process has no database.
    #[error(
        "this api process has no database (DATABASE_URL is not set): the status page reads \
         the metagraph snapshots and the audit log from it"
    )]
    NoDatabase,
    /// The database failed or was too slow.
    #[error("the database is unavailable; retry shortly")]
    Store(String),
}

impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            StatusError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            StatusError::NoDatabase => (StatusCode::SERVICE_UNAVAILABLE, "no_database"),
            StatusError::Store(cause) => {
                tracing::warn!(cause = %cause, "status query failed");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
        };
        metrics::counter!("sn1_api_errors_total", "type" => kind).increment(1);
        let body = json!({"error": {"type": kind, "message": self.to_string()}});
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE && !matches!(self, StatusError::NoDatabase) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::error::RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// The `netuid` of a query string: absent → `None`; anything but one integer 0–65535 → 400.
pub fn parse_netuid(query: Option<&str>) -> Result<Option<u16>, StatusError> {
    let mut netuid = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "netuid" {
            continue;
        }
        let bad = || {
            StatusError::BadRequest(format!(
                "netuid must be one integer from 0 to 65535, got {value:?}"
            ))
        };
        if netuid.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        netuid = Some(value.parse::<u16>().map_err(|_| bad())?);
    }
    Ok(netuid)
}

/// The subnet at a glance: the newest metagraph snapshot's counts and one row per serving
/// miner with its health over the last hour (replies, success and empty rates, TTFB p50/p95,
/// last seen), a TTFB histogram, and requests and errors per minute. Public; cached (2 s at
/// least).
#[utoipa::path(
    get,
    path = "/api/status",
    params(("netuid" = Option<u16>, Query, minimum = 0, maximum = 65535,
        description = "Subnet; default: that of the newest snapshot")),
    responses(
        (status = 200, description = "The status", body = StatusReport),
        (status = 400, description = "`netuid` is not an integer from 0 to 65535",
            body = crate::docs::ErrorResponse),
        (status = 503, description = "No database (`no_database`: the api has no \
            DATABASE_URL), or the database is unavailable (`store_unavailable`, with \
            Retry-After)", body = crate::docs::ErrorResponse,
            headers(("Retry-After" = Option<u64>, description = "Seconds to wait before retrying")))
    )
)]
pub async fn status(
    State(state): State<AppState>,
    axum::Extension(cache): axum::Extension<Arc<StatusCache>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Arc<StatusReport>>, StatusError> {
    let netuid = parse_netuid(query.as_deref())?;
    let store = state.store.as_ref().ok_or(StatusError::NoDatabase)?;
    cache.get(store, netuid).await.map(Json)
}

impl StatusCache {
    /// The answer for `netuid`, from the cache when fresh.
    async fn get(
        &self,
        store: &Store,
        netuid: Option<u16>,
    ) -> Result<Arc<StatusReport>, StatusError> {
        let mut entries = self.entries.lock().await;
        if let Some((fresh_until, report)) = entries.get(&netuid)
            && Instant::now() < *fresh_until
        {
            return Ok(report.clone());
        }
        let started = Instant::now();
        let query = store.subnet_status(netuid, Utc::now(), WINDOW);
        let status = tokio::time::timeout(QUERY_TIMEOUT, query)
            .await
            .map_err(|_| StatusError::Store(format!("no answer within {QUERY_TIMEOUT:?}")))?
            .map_err(|e: StoreError| StatusError::Store(e.to_string()))?;
        let report = Arc::new(StatusReport::from(status));
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        let reuse = CACHE_TTL.max(started.elapsed() * COST_FACTOR);
        entries.insert(netuid, (Instant::now() + reuse, report.clone()));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netuid_is_one_integer_or_absent() {
        assert_eq!(parse_netuid(None).unwrap(), None);
        assert_eq!(parse_netuid(Some("")).unwrap(), None);
        assert_eq!(parse_netuid(Some("other=x")).unwrap(), None);
        assert_eq!(parse_netuid(Some("netuid=1")).unwrap(), Some(1));
        assert_eq!(parse_netuid(Some("a=b&netuid=65535")).unwrap(), Some(65535));
        for bad in [
            "netuid=",
            "netuid",
            "netuid=-1",
            "netuid=65536",
            "netuid=1.5",
            "netuid=%31",
            "netuid=1&netuid=2",
            "netuid=99999999999999999999",
        ] {
            let err = parse_netuid(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, StatusError::BadRequest(m) if m.contains("netuid")),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_database_the_answer_says_so() {
        let response = StatusError::NoDatabase.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "no_database");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("DATABASE_URL")
        );
    }

    #[test]
    fn the_openapi_document_describes_the_endpoint() {
        let doc = crate::docs::document(&crate::ApiConfig::default());
        let get = &doc["paths"]["/api/status"]["get"];
        for status in ["200", "400", "503"] {
            assert!(get["responses"][status].is_object(), "{status}: {get}");
        }
        assert_eq!(get["parameters"][0]["name"], "netuid", "{get}");
        assert!(get["security"].is_null(), "public: {get}");
        let schemas = &doc["components"]["schemas"];
        let get = &doc["paths"]["/api/requests/{id}"]["get"];
        for status in ["200", "400", "404", "503"] {
            assert!(get["responses"][status].is_object(), "{status}: {get}");
        }
        assert!(
            get["parameters"][0]["schema"]["pattern"].is_string(),
            "{get}"
        );
        for name in [
            "StatusReport",
            "MinerRow",
            "Counts",
            "TtfbBar",
            "MinuteRow",
            "RequestReport",
            "MinerReplyRow",
        ] {
            assert!(schemas[name].is_object(), "{name} missing");
        }
        let row = &schemas["MinerRow"]["properties"];
        for field in [
            "uid",
            "hotkey",
            "axon",
            "success_rate",
            "ttfb_p95_ms",
            "last_seen",
        ] {
            assert!(row[field].is_object(), "MinerRow.{field}");
        }
    }
}
