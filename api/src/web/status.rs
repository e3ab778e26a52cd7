//! `GET /api/status`: the JSON behind the status page — the newest metagraph snapshot and the
//! last hour of the audit log, read through the store seam ([`Store::subnet_status`]), so
//! standalone (SQLite) and distributed (Postgres) answer the same.
//!
//! Public, like the metagraph it describes: it shows miners' public identities and how they
//! answered, and request counts — never prompts, texts or key ids. Because anyone may call it,
//! answers are cached per netuid, and computed once for everyone who asks while it runs: for
//! [`CACHE_TTL`], or for [`COST_FACTOR`] times as long as the queries took when that is longer
//! — so polling pages, however many, keep the database busy a fifth of the time at most
//! (measured on Postgres on a 2-core machine: an hour of 1,000,000 miner rows takes 3.3–4.1 s
//! to summarise, so it is then reused for ~17–20 s; `contracts/tests/status_queries.rs`
//! `a_busy_hour_in_postgres`). A failure is reused for [`ERROR_TTL`]. A netuid without any
//! snapshot is a 404 found without reading the audit log, and the cache keeps
//! [`CACHE_ENTRIES`] netuids, dropping the stalest one at a time: asking for every netuid in
//! turn neither scans the audit log for each nor empties the cache.

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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
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

/// How long a failure (the database unavailable or too slow) is reused: clients are told to
/// retry later anyway, and a struggling database is not asked again by every poll.
pub const ERROR_TTL: Duration = Duration::from_secs(3);

/// Netuids cached at once (each `?netuid=` is its own entry); beyond, the stalest is dropped.
pub const CACHE_ENTRIES: usize = 16;

/// What a request is answered.
type Answer = Result<Arc<StatusReport>, StatusError>;

/// One computation of an answer and until when it is reused: everyone who asks while it runs
/// waits for it, then it is read until it goes stale.
type Slot = Arc<OnceCell<(Instant, Answer)>>;

/// Recent answers by requested netuid. The map's lock is only held to look a slot up, never
/// while an answer is computed.
#[derive(Default)]
pub struct StatusCache {
    entries: Mutex<HashMap<Option<u16>, Slot>>,
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
#[derive(Clone, Debug, thiserror::Error)]
pub enum StatusError {
    /// A query parameter is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The requested netuid has no metagraph snapshot.
    #[error("no metagraph snapshot of netuid {0}: the gateway does not follow that subnet")]
    NoSnapshot(u16),
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
            StatusError::NoSnapshot(_) => (StatusCode::NOT_FOUND, "not_found"),
            StatusError::NoDatabase => (StatusCode::SERVICE_UNAVAILABLE, "no_database"),
            StatusError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
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
/// least; failures 3 s). A netuid without any snapshot is a 404.
#[utoipa::path(
    get,
    path = "/api/status",
    params(("netuid" = Option<u16>, Query, minimum = 0, maximum = 65535,
        description = "Subnet; default: that of the newest snapshot")),
    responses(
        (status = 200, description = "The status", body = StatusReport),
        (status = 400, description = "`netuid` is not an integer from 0 to 65535",
            body = crate::docs::ErrorResponse),
        (status = 404, description = "`netuid` has no metagraph snapshot (`not_found`): the \
            gateway does not follow that subnet", body = crate::docs::ErrorResponse),
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
    cache.get(netuid, || compute(store, netuid)).await.map(Json)
}

/// The answer for `netuid`, from the database.
async fn compute(store: &Store, netuid: Option<u16>) -> Answer {
    let query = store.subnet_status(netuid, Utc::now(), WINDOW);
    let status = tokio::time::timeout(QUERY_TIMEOUT, query)
        .await
        .map_err(|_| StatusError::Store(format!("no answer within {QUERY_TIMEOUT:?}")))
        .and_then(|r| r.map_err(|e: StoreError| StatusError::Store(e.to_string())));
    match status {
        Ok(status) => answer(netuid, status),
        Err(e) => {
            tracing::warn!(cause = %e, "status query failed");
            Err(e)
        }
    }
}

/// The report, or a 404 for a requested netuid that has no snapshot (the store answered it
/// without reading the audit log).
fn answer(requested: Option<u16>, status: SubnetStatus) -> Answer {
    match requested {
        Some(netuid) if status.snapshot.is_none() => Err(StatusError::NoSnapshot(netuid)),
        _ => Ok(Arc::new(StatusReport::from(status))),
    }
}

impl StatusCache {
    /// The answer for `netuid`: the cached one while fresh; the one being computed, when one
    /// is; else `compute`'s, then cached. If the caller computing it goes away, the next one
    /// waiting takes over.
    async fn get<F, Fut>(&self, netuid: Option<u16>, compute: F) -> Answer
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        let slot = self.slot(netuid);
        let (_, answer) = slot
            .get_or_init(|| async {
                let started = Instant::now();
                let answer = compute().await;
                let reuse = match &answer {
                    Err(StatusError::Store(_)) => ERROR_TTL,
                    _ => CACHE_TTL.max(started.elapsed() * COST_FACTOR),
                };
                (Instant::now() + reuse, answer)
            })
            .await;
        answer.clone()
    }

    /// The slot of `netuid`: its current one when fresh or still being computed, else a new
    /// one in its place — dropping, when the cache is full, the entry that goes stale first
    /// (one being computed last: its waiters keep it).
    fn slot(&self, netuid: Option<u16>) -> Slot {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = entries.get(&netuid) {
            match slot.get() {
                Some((fresh_until, _)) if now >= *fresh_until => {}
                _ => return slot.clone(),
            }
        } else if entries.len() >= CACHE_ENTRIES {
            let stalest = entries
                .iter()
                .min_by_key(|(_, slot)| slot.get().map_or((1, now), |(until, _)| (0, *until)))
                .map(|(key, _)| *key);
            if let Some(key) = stalest {
                entries.remove(&key);
            }
        }
        let slot = Slot::default();
        entries.insert(netuid, slot.clone());
        slot
    }

    /// How many netuids are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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

    /// A status with a snapshot of `netuid` (or none).
    fn status_of(netuid: Option<u16>) -> SubnetStatus {
        SubnetStatus {
            snapshot: netuid.map(|netuid| sn1_contracts::store::SnapshotInfo {
                id: 1,
                netuid,
                block: 1,
                block_hash: "0x01".into(),
                taken_at: Utc::now(),
            }),
            generated_at: Utc::now(),
            window_seconds: 3600,
            counts: Default::default(),
            miners: Vec::new(),
            ttfb_histogram: Vec::new(),
            per_minute: Vec::new(),
        }
    }

    fn report(netuid: Option<u16>) -> Answer {
        Ok(Arc::new(StatusReport::from(status_of(netuid))))
    }

    /// A computation that counts its runs and takes `delay`.
    async fn counted(runs: &std::sync::atomic::AtomicUsize, delay: Duration, a: Answer) -> Answer {
        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        a
    }

    fn runs(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let cache = StatusCache::default();
        let n = std::sync::atomic::AtomicUsize::new(0);
        let slow = Duration::from_millis(100);
        let calls = (0..8).map(|_| cache.get(Some(1), || counted(&n, slow, report(Some(1)))));
        let answers = futures::future::join_all(calls).await;
        assert_eq!(runs(&n), 1, "one query for eight callers");
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().unwrap().netuid == Some(1))
        );
        // Fresh: reused.
        let again = cache.get(Some(1), || counted(&n, Duration::ZERO, report(Some(1))));
        again.await.unwrap();
        assert_eq!(runs(&n), 1);
        // Another netuid is its own entry.
        let other = cache.get(Some(2), || counted(&n, Duration::ZERO, report(Some(2))));
        assert_eq!(other.await.unwrap().netuid, Some(2));
        assert_eq!(runs(&n), 2);
    }

    #[tokio::test]
    async fn failures_are_reused_for_a_few_seconds() {
        let cache = StatusCache::default();
        let n = std::sync::atomic::AtomicUsize::new(0);
        let failing = || counted(&n, Duration::ZERO, Err(StatusError::Store("down".into())));
        for _ in 0..3 {
            let err = cache.get(None, failing).await.unwrap_err();
            assert!(matches!(err, StatusError::Store(_)), "{err}");
        }
        assert_eq!(
            runs(&n),
            1,
            "the failure is cached, not retried by every caller"
        );
        let err = cache.get(Some(7), || {
            counted(&n, Duration::ZERO, answer(Some(7), status_of(None)))
        });
        assert!(matches!(err.await, Err(StatusError::NoSnapshot(7))));
        let err = cache.get(Some(7), || counted(&n, Duration::ZERO, report(Some(7))));
        assert!(
            matches!(err.await, Err(StatusError::NoSnapshot(7))),
            "cached too"
        );
        assert_eq!(runs(&n), 2);
    }

    #[tokio::test]
    async fn a_full_cache_drops_one_entry_not_all() {
        let cache = StatusCache::default();
        let n = std::sync::atomic::AtomicUsize::new(0);
        for netuid in 0..=CACHE_ENTRIES as u16 {
            let get = cache.get(Some(netuid), || {
                counted(&n, Duration::ZERO, report(Some(netuid)))
            });
            get.await.unwrap();
        }
        assert_eq!(runs(&n), CACHE_ENTRIES + 1);
        assert_eq!(cache.len(), CACHE_ENTRIES);
        // Only the stalest (the first) went: the others are still answered from the cache.
        for netuid in 1..=CACHE_ENTRIES as u16 {
            let get = cache.get(Some(netuid), || {
                counted(&n, Duration::ZERO, report(Some(netuid)))
            });
            get.await.unwrap();
        }
        assert_eq!(runs(&n), CACHE_ENTRIES + 1);
    }

    #[test]
    fn a_netuid_without_a_snapshot_is_not_found() {
        let none = status_of(None);
        assert!(matches!(
            answer(Some(5), none.clone()),
            Err(StatusError::NoSnapshot(5))
        ));
        // No netuid asked and no snapshot yet: the empty report.
        assert!(answer(None, none).unwrap().netuid.is_none());
        let response = StatusError::NoSnapshot(5).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
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
        for status in ["200", "400", "404", "503"] {
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
