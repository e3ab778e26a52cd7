//! The status page's queries in SQLite: the same raw rows as Postgres's
//! ([`super::super::status::AuditWindow`]). SQLite has no `percentile_cont` or `width_bucket`:
//! the rows percentiles interpolate between are picked with a window function and integer
//! arithmetic, the histogram's bucket with a `CASE`. Timestamps are RFC 3339 text in UTC
//! (`+00:00`), so they compare as text and their first 16 characters are their minute.

use crate::store::StoreError;
use crate::store::status::{
    AuditWindow, ERROR_STATUSES, FAILED_VERDICT, HealthRow, MinerReply, OrderStat, RequestFanOut,
    TTFB_BUCKETS_MS,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::SqlitePool;

/// The miner rows of the window, with the request's netuid checked.
const WINDOW: &str = "FROM miner_responses m JOIN completions c ON c.request_id = m.request_id
     WHERE m.created_at > ?1 AND (?2 IS NULL OR c.netuid = ?2)";

/// uid, hotkey, asked, cancelled, ok, empty, last seen.
type HealthTuple = (i64, String, i64, i64, i64, i64, String);

pub(crate) async fn newest_netuid(pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT netuid FROM metagraph_snapshots ORDER BY id DESC LIMIT 1")
            .fetch_optional(pool)
            .await?,
    )
}

fn timestamp(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Invalid(format!("timestamp {text:?}")))
}

/// `YYYY-MM-DDTHH:MM`, the minute of a stored timestamp.
fn minute(text: &str) -> Result<DateTime<Utc>, StoreError> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .map(|t| t.and_utc())
        .map_err(|_| StoreError::Invalid(format!("minute {text:?}")))
}

/// `CASE WHEN t < 25 THEN 0 WHEN t < 50 THEN 1 … ELSE 9 END`, Postgres's `width_bucket`.
fn bucket_case() -> String {
    let mut case = String::from("CASE");
    for (i, edge) in TTFB_BUCKETS_MS.iter().enumerate() {
        case.push_str(&format!(" WHEN m.time_to_first_byte_ms < {edge} THEN {i}"));
    }
    case.push_str(&format!(" ELSE {} END", TTFB_BUCKETS_MS.len()));
    case
}

pub(crate) async fn audit_window(
    pool: &SqlitePool,
    netuid: Option<u16>,
    since: DateTime<Utc>,
) -> Result<AuditWindow, StoreError> {
    let netuid = netuid.map(i64::from);
    let since = since.to_rfc3339();
    let health = sqlx::query_as::<_, HealthTuple>(sqlx::AssertSqlSafe(format!(
        "SELECT m.uid, m.hotkey, count(*),
                    sum(m.outcome = 'cancelled' AND NOT {FAILED_VERDICT}),
                    sum(m.outcome = 'ok' AND NOT {FAILED_VERDICT}),
                    sum(m.outcome = 'empty'), max(m.created_at)
             {WINDOW} GROUP BY m.uid, m.hotkey"
    )))
    .bind(&since)
    .bind(netuid)
    .fetch_all(pool);
    let order_stats =
        sqlx::query_as::<_, (i64, String, i64, i64, f64)>(sqlx::AssertSqlSafe(format!(
            "SELECT uid, hotkey, i, n, t FROM (
               SELECT m.uid, m.hotkey, m.time_to_first_byte_ms AS t,
                      row_number() OVER w - 1 AS i,
                      count(*) OVER (PARTITION BY m.uid, m.hotkey) AS n
               {WINDOW} AND m.time_to_first_byte_ms IS NOT NULL
               WINDOW w AS (PARTITION BY m.uid, m.hotkey ORDER BY m.time_to_first_byte_ms)
             ) AS ranked
             WHERE i IN ((50 * (n - 1)) / 100, (50 * (n - 1) + 99) / 100,
                         (95 * (n - 1)) / 100, (95 * (n - 1) + 99) / 100)"
        )))
        .bind(&since)
        .bind(netuid)
        .fetch_all(pool);
    let histogram = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(format!(
        "SELECT {}, count(*) {WINDOW} AND m.time_to_first_byte_ms IS NOT NULL GROUP BY 1",
        bucket_case()
    )))
    .bind(&since)
    .bind(netuid)
    .fetch_all(pool);
    let errors = ERROR_STATUSES
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let minutes = sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(format!(
        "SELECT substr(created_at, 1, 16), count(*), sum(status IN ({errors}))
         FROM completions
         WHERE created_at > ?1 AND (?2 IS NULL OR netuid = ?2)
         GROUP BY 1"
    )))
    .bind(&since)
    .bind(netuid)
    .fetch_all(pool);
    // Four scans of the window, one after another: at once they would hold four of the
    // standalone process's few pooled connections for seconds on a large audit log, starving
    // the api's key admission, the audit writer, the syncer and the score refresh that share
    // them (`sqlite/mod.rs`). One connection at a time leaves the others free.
    let health = health.await?;
    let order_stats = order_stats.await?;
    let histogram = histogram.await?;
    let minutes = minutes.await?;
    Ok(AuditWindow {
        health: health
            .into_iter()
            .map(|(uid, hotkey, asked, cancelled, ok, empty, last_seen)| {
                Ok(HealthRow {
                    uid,
                    hotkey,
                    asked,
                    cancelled,
                    ok,
                    empty,
                    last_seen: timestamp(&last_seen)?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        order_stats: order_stats
            .into_iter()
            .map(|(uid, hotkey, index, count, ttfb_ms)| OrderStat {
                uid,
                hotkey,
                index,
                count,
                ttfb_ms,
            })
            .collect(),
        histogram,
        minutes: minutes
            .into_iter()
            .map(|(m, requests, errors)| Ok((minute(&m)?, requests, errors)))
            .collect::<Result<_, StoreError>>()?,
    })
}

pub(crate) async fn request_fan_out(
    pool: &SqlitePool,
    request_id: &str,
) -> Result<Option<RequestFanOut>, StoreError> {
    let request: Option<RequestFanOut> = sqlx::query_as(
        "SELECT request_id, created_at, endpoint, netuid, k, k_asked, strategy, status, error,
                selected_uid, time_to_first_chunk_ms, total_ms
         FROM completions WHERE request_id = ?",
    )
    .bind(request_id)
    .fetch_optional(pool)
    .await?;
    let Some(mut request) = request else {
        return Ok(None);
    };
    request.miners = sqlx::query_as::<_, MinerReply>(
        "SELECT uid, hotkey, outcome, status_code, time_to_first_byte_ms, total_ms, chunks, bytes,
                clean_reason, selected
         FROM miner_responses WHERE request_id = ?
         ORDER BY selected DESC, time_to_first_byte_ms IS NULL, time_to_first_byte_ms, uid",
    )
    .bind(request_id)
    .fetch_all(pool)
    .await?;
    Ok(Some(request))
}
