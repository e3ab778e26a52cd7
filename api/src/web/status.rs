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
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sn1_contracts::store::status::{SubnetStatus, rfc3339_millis_opt};
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

/// The subnet and its miners' health over the last hour: the store's [`SubnetStatus`] and,
/// beside it, its snapshot's netuid, block and age.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatusReport {
    /// Subnet of the snapshot (null before the metagraph syncer stored one).
    pub netuid: Option<u16>,
    /// Block the snapshot was read at.
    pub block: Option<u64>,
    /// When the snapshot was stored (RFC 3339).
    #[serde(serialize_with = "rfc3339_millis_opt")]
    pub snapshot_taken_at: Option<DateTime<Utc>>,
    /// Seconds since the snapshot was stored.
    pub snapshot_age_seconds: Option<f64>,
    /// Counts, miners, histogram and minutes of the window.
    #[serde(flatten)]
    pub status: SubnetStatus,
}

impl From<SubnetStatus> for StatusReport {
    fn from(status: SubnetStatus) -> Self {
        let snapshot = status.snapshot.as_ref();
        let taken_at = snapshot.map(|snap| snap.taken_at);
        let age = taken_at.map(|t| (status.generated_at - t).num_milliseconds().max(0) as f64);
        StatusReport {
            netuid: snapshot.map(|snap| snap.netuid),
            block: snapshot.map(|snap| snap.block),
            snapshot_taken_at: taken_at,
            snapshot_age_seconds: age.map(|ms| ms / 1e3),
            status,
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

    /// The store's types serialize to the JSON the api answered before it served them as they
    /// are: the same keys in the same order, times with milliseconds (see also
    /// `web::request`'s test).
    #[test]
    fn the_json_keeps_its_shape() {
        use sn1_contracts::store::SnapshotInfo;
        use sn1_contracts::store::status::{MinerHealth, MinerStatus, MinuteStats};
        use sn1_contracts::store::status::{NeuronCounts, TtfbBucket};
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let health = MinerHealth {
            asked: 3,
            replies: 2,
            success_rate: Some(0.5),
            last_seen: Some(t("2026-12-02T05:59:01.123456Z")),
            ..MinerHealth::default()
        };
        let status = SubnetStatus {
            snapshot: Some(SnapshotInfo {
                id: 9,
                netuid: 1,
                block: 100,
                block_hash: "0x64".into(),
                taken_at: t("2026-12-02T05:59:30Z"),
            }),
            generated_at: t("2026-12-02T06:00:00Z"),
            window_seconds: 3600,
            counts: NeuronCounts {
                neurons: 4,
                serving: 3,
                validators: 1,
                candidates: 2,
            },
            miners: vec![MinerStatus {
                uid: 2,
                hotkey: "5H".into(),
                axon: "1.2.3.4:8091".into(),
                incentive: 0.25,
                stake_tao: 1.0,
                health,
            }],
            ttfb_histogram: vec![TtfbBucket {
                below_ms: None,
                count: 2,
            }],
            per_minute: vec![MinuteStats {
                minute: t("2026-12-02T05:00:00Z"),
                requests: 3,
                errors: 1,
            }],
        };
        let mut before_any = status.clone();
        before_any.snapshot = None;
        let json = serde_json::to_string(&StatusReport::from(status)).unwrap();
        let expected = r#"{"netuid":1,"block":100,"snapshot_taken_at":"2026-12-02T05:59:30.000Z",
            "snapshot_age_seconds":30.0,"generated_at":"2026-12-02T06:00:00.000Z",
            "window_seconds":3600,"counts":{"neurons":4,"serving":3,"validators":1,"candidates":2},
            "miners":[{"uid":2,"hotkey":"5H","axon":"1.2.3.4:8091","incentive":0.25,
            "stake_tao":1.0,"asked":3,"replies":2,"success_rate":0.5,"empty_rate":null,
            "ttfb_p50_ms":null,"ttfb_p95_ms":null,"last_seen":"2026-12-02T05:59:01.123Z"}],
            "ttfb_histogram":[{"below_ms":null,"count":2}],
            "per_minute":[{"minute":"2026-12-02T05:00:00.000Z","requests":3,"errors":1}]}"#;
        assert_eq!(json, expected.replace("\n            ", ""));
        let json = serde_json::to_string(&StatusReport::from(before_any)).unwrap();
        let nulls = r#"{"netuid":null,"block":null,"snapshot_taken_at":null,"#;
        assert!(json.starts_with(nulls), "{json}");
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
            "SubnetStatus",
            "MinerStatus",
            "MinerHealth",
            "NeuronCounts",
            "TtfbBucket",
            "MinuteStats",
            "RequestFanOut",
            "MinerReply",
        ] {
            assert!(schemas[name].is_object(), "{name} missing");
        }
        for (name, field) in [
            ("StatusReport", "snapshot_age_seconds"),
            ("SubnetStatus", "per_minute"),
            ("MinerStatus", "axon"),
            ("MinerHealth", "success_rate"),
            ("MinerHealth", "last_seen"),
        ] {
            let schema = &schemas[name];
            let flattened = &schema["allOf"][1]["properties"][field];
            assert!(
                schema["properties"][field].is_object() || flattened.is_object(),
                "{name}.{field}"
            );
        }
    }
}
