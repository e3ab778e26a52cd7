//! The audit log in SQLite: the same rows as Postgres, inserted row by row in one transaction
//! (`INSERT OR IGNORE`, so a record written twice is stored once), and the retention job.

use crate::audit::CompletionRecord;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

/// Inserts `records` in one transaction (idempotent, like Postgres); returns how many
/// completions were new.
pub(crate) async fn insert_batch(
    pool: &SqlitePool,
    records: &[&CompletionRecord],
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for r in records {
        let json = |v: &serde_json::Value| v.to_string();
        inserted += sqlx::query(
            "INSERT OR IGNORE INTO completions (request_id, created_at, api_key_id, endpoint, netuid,
                 k, timeout_s, strategy, sampling_mode, exclude, roles, messages, messages_sha256,
                 selected_uid, completion, completion_sha256, status, error, time_to_first_chunk_ms,
                 total_ms, k_asked, selection, commit_uid, commit_chars, commit_ms, failovers)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.request_id)
        .bind(r.created_at.to_rfc3339())
        .bind(&r.api_key_id)
        .bind(&r.endpoint)
        .bind(i64::from(r.netuid))
        .bind(i64::from(r.k))
        .bind(r.timeout_s)
        .bind(&r.strategy)
        .bind(&r.sampling_mode)
        .bind(json(&r.exclude))
        .bind(json(&serde_json::json!(r.roles)))
        .bind(r.messages.as_ref().map(|m| json(&serde_json::json!(m))))
        .bind(&r.messages_sha256)
        .bind(r.selected_uid)
        .bind(&r.completion.text)
        .bind(&r.completion.sha256)
        .bind(&r.status)
        .bind(&r.error)
        .bind(r.time_to_first_chunk_ms)
        .bind(r.total_ms)
        .bind(r.miners.len() as i64)
        .bind((!r.quality.selection.is_null()).then(|| json(&r.quality.selection)))
        .bind(r.quality.commit_uid.map(i64::from))
        .bind(r.quality.commit_chars.map(i64::from))
        .bind(r.quality.commit_ms)
        .bind((!r.quality.failovers.is_null()).then(|| json(&r.quality.failovers)))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for m in &r.miners {
            sqlx::query(
                "INSERT OR IGNORE INTO miner_responses (request_id, uid, created_at, hotkey, outcome,
                     status_code, time_to_first_byte_ms, total_ms, chunks, bytes, text, text_sha256,
                     clean_reason, selected, axon, verdict, continuation)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.request_id)
            .bind(i64::from(m.uid))
            .bind(r.created_at.to_rfc3339())
            .bind(&m.hotkey)
            .bind(&m.outcome)
            .bind(m.status_code.map(i64::from))
            .bind(m.time_to_first_byte_ms)
            .bind(m.total_ms)
            .bind(i64::from(m.chunks))
            .bind(m.bytes as i64)
            .bind(&m.text.text)
            .bind(&m.text.sha256)
            .bind(&m.clean_reason)
            .bind(m.selected)
            .bind(&m.quality.axon)
            .bind(&m.quality.verdict)
            .bind(m.quality.continuation)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Retention: drops prompts and texts (keeping their hashes) of requests older than `before`.
pub(crate) async fn prune_content(
    pool: &SqlitePool,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let before = before.to_rfc3339();
    let mut tx = pool.begin().await?;
    let pruned = sqlx::query(
        "UPDATE completions SET messages = NULL, completion = NULL
         WHERE created_at < ? AND (messages IS NOT NULL OR completion IS NOT NULL)",
    )
    .bind(&before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE miner_responses SET text = NULL WHERE created_at < ? AND text IS NOT NULL")
        .bind(&before)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(pruned)
}

/// Judged replies since `since`, grouped per miner (hotkey, axon), verdict and minute (the
/// first 16 characters of the RFC 3339 time): what the workers' reliability scores are made of.
pub(crate) async fn verdict_buckets(
    pool: &SqlitePool,
    since: DateTime<Utc>,
) -> Result<Vec<crate::store::scores::VerdictBucket>, StoreError> {
    let rows: Vec<crate::store::scores::BucketRow<String>> = sqlx::query_as(
        "SELECT hotkey, axon, verdict, substr(created_at, 1, 16), count(*),
                coalesce(sum(time_to_first_byte_ms), 0.0), count(time_to_first_byte_ms)
         FROM miner_responses
         WHERE created_at > ? AND verdict IS NOT NULL AND verdict <> 'unknown'
               AND axon IS NOT NULL
         GROUP BY 1, 2, 3, 4",
    )
    .bind(since.to_rfc3339())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(hotkey, axon, verdict, minute, n, sum, ttfb_n)| {
            let minute = DateTime::parse_from_rfc3339(&format!("{minute}:00Z"))
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(since);
            crate::store::scores::VerdictBucket::from((
                hotkey, axon, verdict, minute, n, sum, ttfb_n,
            ))
        })
        .collect())
}
