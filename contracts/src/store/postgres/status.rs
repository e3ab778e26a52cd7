//! The status page's queries in Postgres: the raw rows of the audit window
//! ([`super::super::status::AuditWindow`]) that `store/status.rs` turns into the page's data.
//! Every query reads `miner_responses` / `completions` by their `created_at` indexes; a netuid
//! narrows them to that subnet's requests.

use crate::store::StoreError;
use crate::store::status::{
    AuditWindow, ERROR_STATUSES, FAILED_VERDICT, HealthRow, MinerReply, OrderStat, RequestFanOut,
    TTFB_BUCKETS_MS,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The miner rows of the window, with the request's netuid checked.
const WINDOW: &str = "FROM miner_responses m JOIN completions c USING (request_id)
     WHERE m.created_at > $1 AND ($2::integer IS NULL OR c.netuid = $2)";

/// uid, hotkey, asked, cancelled, ok, empty, last seen.
type HealthTuple = (i32, String, i64, i64, i64, i64, DateTime<Utc>);

pub(crate) async fn newest_netuid(pool: &PgPool) -> Result<Option<i32>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT netuid FROM metagraph_snapshots ORDER BY id DESC LIMIT 1")
            .fetch_optional(pool)
            .await?,
    )
}

pub(crate) async fn audit_window(
    pool: &PgPool,
    netuid: Option<u16>,
    since: DateTime<Utc>,
) -> Result<AuditWindow, StoreError> {
    let netuid = netuid.map(i32::from);
    let health = sqlx::query_as::<_, HealthTuple>(sqlx::AssertSqlSafe(format!(
        "SELECT m.uid, m.hotkey, count(*),
                    count(*) FILTER (WHERE m.outcome = 'cancelled' AND NOT {FAILED_VERDICT}),
                    count(*) FILTER (WHERE m.outcome = 'ok' AND NOT {FAILED_VERDICT}),
                    count(*) FILTER (WHERE m.outcome = 'empty'),
                    max(m.created_at)
             {WINDOW} GROUP BY m.uid, m.hotkey"
    )))
    .bind(since)
    .bind(netuid)
    .fetch_all(pool);
    // Only the values percentile_cont(0.5) and (0.95) interpolate between (integer division:
    // floor and ceil of p·(n−1), see `percentile_indices`).
    let order_stats =
        sqlx::query_as::<_, (i32, String, i64, i64, f64)>(sqlx::AssertSqlSafe(format!(
            "SELECT uid, hotkey, i, n, t FROM (
               SELECT m.uid, m.hotkey, m.time_to_first_byte_ms AS t,
                      row_number() OVER w - 1 AS i, count(*) OVER (PARTITION BY m.uid, m.hotkey) AS n
               {WINDOW} AND m.time_to_first_byte_ms IS NOT NULL
               WINDOW w AS (PARTITION BY m.uid, m.hotkey ORDER BY m.time_to_first_byte_ms)
             ) AS ranked
             WHERE i IN ((50 * (n - 1)) / 100, (50 * (n - 1) + 99) / 100,
                         (95 * (n - 1)) / 100, (95 * (n - 1) + 99) / 100)"
        )))
        .bind(since)
        .bind(netuid)
        .fetch_all(pool);
    let histogram = sqlx::query_as::<_, (i32, i64)>(sqlx::AssertSqlSafe(format!(
        "SELECT width_bucket(m.time_to_first_byte_ms, $3::double precision[]), count(*)
         {WINDOW} AND m.time_to_first_byte_ms IS NOT NULL GROUP BY 1"
    )))
    .bind(since)
    .bind(netuid)
    .bind(TTFB_BUCKETS_MS.to_vec())
    .fetch_all(pool);
    let minutes = sqlx::query_as::<_, (DateTime<Utc>, i64, i64)>(
        "SELECT date_trunc('minute', created_at, 'UTC'), count(*),
                count(*) FILTER (WHERE status = ANY($3))
         FROM completions
         WHERE created_at > $1 AND ($2::integer IS NULL OR netuid = $2)
         GROUP BY 1",
    )
    .bind(since)
    .bind(netuid)
    .bind(ERROR_STATUSES.to_vec())
    .fetch_all(pool);
    // Four independent scans of the window: at once, on their own pool connections.
    let (health, order_stats, histogram, minutes) =
        tokio::try_join!(health, order_stats, histogram, minutes)?;
    Ok(AuditWindow {
        health: health
            .into_iter()
            .map(
                |(uid, hotkey, asked, cancelled, ok, empty, last_seen)| HealthRow {
                    uid: i64::from(uid),
                    hotkey,
                    asked,
                    cancelled,
                    ok,
                    empty,
                    last_seen,
                },
            )
            .collect(),
        order_stats: order_stats
            .into_iter()
            .map(|(uid, hotkey, index, count, ttfb_ms)| OrderStat {
                uid: i64::from(uid),
                hotkey,
                index,
                count,
                ttfb_ms,
            })
            .collect(),
        histogram: histogram
            .into_iter()
            .map(|(b, c)| (i64::from(b), c))
            .collect(),
        minutes,
    })
}

pub(crate) async fn request_fan_out(
    pool: &PgPool,
    request_id: &str,
) -> Result<Option<RequestFanOut>, StoreError> {
    // An id that is not a UUID is simply not found.
    let Ok(request_id) = uuid::Uuid::parse_str(request_id) else {
        return Ok(None);
    };
    let request: Option<RequestFanOut> = sqlx::query_as(
        "SELECT request_id::text AS request_id, created_at, endpoint, netuid::bigint AS netuid,
                k::bigint AS k, k_asked::bigint AS k_asked, strategy, status, error,
                selected_uid::bigint AS selected_uid, time_to_first_chunk_ms, total_ms
         FROM completions WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(pool)
    .await?;
    let Some(mut request) = request else {
        return Ok(None);
    };
    request.miners = sqlx::query_as::<_, MinerReply>(
        "SELECT uid::bigint AS uid, hotkey, outcome, status_code::bigint AS status_code,
                time_to_first_byte_ms, total_ms, chunks::bigint AS chunks, bytes, clean_reason,
                selected
         FROM miner_responses WHERE request_id = $1
         ORDER BY selected DESC, time_to_first_byte_ms NULLS LAST, uid",
    )
    .bind(request_id)
    .fetch_all(pool)
    .await?;
    Ok(Some(request))
}
