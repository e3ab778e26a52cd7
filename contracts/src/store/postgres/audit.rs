//! The audit log in Postgres: batch inserts and the retention job.
//!
//! A batch of records goes in with two `INSERT … SELECT FROM unnest(…)` statements (one for
//! `completions`, one for `miner_responses`) in one transaction: a handful of round trips per
//! batch whatever its size, which is what lets one writer keep up with thousands of records a
//! second. `ON CONFLICT DO NOTHING` on the primary keys makes a redelivered record a no-op.

use crate::audit::CompletionRecord;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Inserts `records` in one transaction; returns how many completions were new.
pub(crate) async fn insert_batch(
    pool: &PgPool,
    records: &[&CompletionRecord],
) -> Result<u64, StoreError> {
    let mut c = CompletionColumns::default();
    let mut m = MinerColumns::default();
    for r in records {
        let Ok(id) = uuid::Uuid::parse_str(&r.request_id) else {
            tracing::warn!(request_id = %r.request_id, "audit record with a malformed request id skipped");
            continue;
        };
        c.push(id, r);
        for miner in &r.miners {
            m.request_id.push(id);
            m.uid.push(i32::from(miner.uid));
            m.created_at.push(r.created_at);
            m.hotkey.push(miner.hotkey.clone());
            m.outcome.push(miner.outcome.clone());
            m.status_code.push(miner.status_code.map(i32::from));
            m.ttfb.push(miner.time_to_first_byte_ms);
            m.total.push(miner.total_ms);
            m.chunks.push(miner.chunks as i32);
            m.bytes.push(miner.bytes as i64);
            m.text.push(miner.text.text.clone());
            m.text_sha256.push(miner.text.sha256.clone());
            m.clean_reason.push(miner.clean_reason.clone());
            m.selected.push(miner.selected);
            m.axon.push(miner.quality.axon.clone());
            m.verdict.push(miner.quality.verdict.clone());
            m.continuation.push(miner.quality.continuation);
        }
    }
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO completions (request_id, created_at, api_key_id, endpoint, netuid, k, timeout_s,
             strategy, sampling_mode, exclude, roles, messages, messages_sha256, selected_uid,
             completion, completion_sha256, status, error, time_to_first_chunk_ms, total_ms, k_asked,
             selection, commit_uid, commit_chars, commit_ms, failovers)
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::int[],
             $6::int[], $7::float8[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[],
             $12::jsonb[], $13::text[], $14::int[], $15::text[], $16::text[], $17::text[],
             $18::text[], $19::float8[], $20::float8[], $21::int[], $22::jsonb[], $23::int[],
             $24::int[], $25::float8[], $26::jsonb[])
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(&c.request_id)
    .bind(&c.created_at)
    .bind(&c.api_key_id)
    .bind(&c.endpoint)
    .bind(&c.netuid)
    .bind(&c.k)
    .bind(&c.timeout_s)
    .bind(&c.strategy)
    .bind(&c.sampling_mode)
    .bind(&c.exclude)
    .bind(&c.roles)
    .bind(&c.messages)
    .bind(&c.messages_sha256)
    .bind(&c.selected_uid)
    .bind(&c.completion)
    .bind(&c.completion_sha256)
    .bind(&c.status)
    .bind(&c.error)
    .bind(&c.ttfc)
    .bind(&c.total)
    .bind(&c.k_asked)
    .bind(&c.selection)
    .bind(&c.commit_uid)
    .bind(&c.commit_chars)
    .bind(&c.commit_ms)
    .bind(&c.failovers)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO miner_responses (request_id, uid, created_at, hotkey, outcome, status_code,
             time_to_first_byte_ms, total_ms, chunks, bytes, text, text_sha256, clean_reason, selected,
             axon, verdict, continuation)
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[], $5::text[],
             $6::int[], $7::float8[], $8::float8[], $9::int[], $10::int8[], $11::text[],
             $12::text[], $13::text[], $14::bool[], $15::text[], $16::text[], $17::bool[])
         ON CONFLICT (request_id, uid) DO NOTHING",
    )
    .bind(&m.request_id)
    .bind(&m.uid)
    .bind(&m.created_at)
    .bind(&m.hotkey)
    .bind(&m.outcome)
    .bind(&m.status_code)
    .bind(&m.ttfb)
    .bind(&m.total)
    .bind(&m.chunks)
    .bind(&m.bytes)
    .bind(&m.text)
    .bind(&m.text_sha256)
    .bind(&m.clean_reason)
    .bind(&m.selected)
    .bind(&m.axon)
    .bind(&m.verdict)
    .bind(&m.continuation)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Retention: drops prompts and texts (keeping their hashes) of requests older than `before`.
/// Returns how many completions were pruned.
pub(crate) async fn prune_content(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let pruned = sqlx::query(
        "UPDATE completions SET messages = NULL, completion = NULL
         WHERE created_at < $1 AND (messages IS NOT NULL OR completion IS NOT NULL)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE miner_responses SET text = NULL WHERE created_at < $1 AND text IS NOT NULL",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pruned)
}

#[derive(Default)]
struct CompletionColumns {
    request_id: Vec<uuid::Uuid>,
    created_at: Vec<DateTime<Utc>>,
    api_key_id: Vec<String>,
    endpoint: Vec<String>,
    netuid: Vec<i32>,
    k: Vec<i32>,
    timeout_s: Vec<f64>,
    strategy: Vec<String>,
    sampling_mode: Vec<String>,
    exclude: Vec<serde_json::Value>,
    roles: Vec<serde_json::Value>,
    messages: Vec<Option<serde_json::Value>>,
    messages_sha256: Vec<Option<String>>,
    selected_uid: Vec<Option<i32>>,
    completion: Vec<Option<String>>,
    completion_sha256: Vec<Option<String>>,
    status: Vec<String>,
    error: Vec<Option<String>>,
    ttfc: Vec<Option<f64>>,
    total: Vec<f64>,
    k_asked: Vec<i32>,
    selection: Vec<Option<serde_json::Value>>,
    commit_uid: Vec<Option<i32>>,
    commit_chars: Vec<Option<i32>>,
    commit_ms: Vec<Option<f64>>,
    failovers: Vec<Option<serde_json::Value>>,
}

impl CompletionColumns {
    fn push(&mut self, id: uuid::Uuid, r: &CompletionRecord) {
        self.request_id.push(id);
        self.created_at.push(r.created_at);
        self.api_key_id.push(r.api_key_id.clone());
        self.endpoint.push(r.endpoint.clone());
        self.netuid.push(i32::from(r.netuid));
        self.k.push(i32::from(r.k));
        self.timeout_s.push(r.timeout_s);
        self.strategy.push(r.strategy.clone());
        self.sampling_mode.push(r.sampling_mode.clone());
        self.exclude.push(r.exclude.clone());
        self.roles.push(serde_json::json!(r.roles));
        self.messages
            .push(r.messages.as_ref().map(|m| serde_json::json!(m)));
        self.messages_sha256.push(r.messages_sha256.clone());
        self.selected_uid.push(r.selected_uid);
        self.completion.push(r.completion.text.clone());
        self.completion_sha256.push(r.completion.sha256.clone());
        self.status.push(r.status.clone());
        self.error.push(r.error.clone());
        self.ttfc.push(r.time_to_first_chunk_ms);
        self.total.push(r.total_ms);
        self.k_asked.push(r.miners.len() as i32);
        let q = &r.quality;
        let json = |v: &serde_json::Value| (!v.is_null()).then(|| v.clone());
        self.selection.push(json(&q.selection));
        self.commit_uid.push(q.commit_uid.map(i32::from));
        self.commit_chars
            .push(q.commit_chars.map(|c| c.min(i32::MAX as u32) as i32));
        self.commit_ms.push(q.commit_ms);
        self.failovers.push(json(&q.failovers));
    }
}

#[derive(Default)]
struct MinerColumns {
    request_id: Vec<uuid::Uuid>,
    uid: Vec<i32>,
    created_at: Vec<DateTime<Utc>>,
    hotkey: Vec<String>,
    outcome: Vec<String>,
    status_code: Vec<Option<i32>>,
    ttfb: Vec<Option<f64>>,
    total: Vec<Option<f64>>,
    chunks: Vec<i32>,
    bytes: Vec<i64>,
    text: Vec<Option<String>>,
    text_sha256: Vec<Option<String>>,
    clean_reason: Vec<Option<String>>,
    selected: Vec<bool>,
    axon: Vec<Option<String>>,
    verdict: Vec<Option<String>>,
    continuation: Vec<bool>,
}

/// Judged replies since `since`, grouped per miner (hotkey, axon), verdict and minute: what
/// the workers' reliability scores are made of.
pub(crate) async fn verdict_buckets(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<crate::store::scores::VerdictBucket>, StoreError> {
    let rows: Vec<crate::store::scores::BucketRow<DateTime<Utc>>> = sqlx::query_as(
        "SELECT hotkey, axon, verdict, date_trunc('minute', created_at), count(*),
                coalesce(sum(time_to_first_byte_ms), 0)::float8, count(time_to_first_byte_ms)
         FROM miner_responses
         WHERE created_at > $1 AND verdict IS NOT NULL AND verdict <> 'unknown'
               AND axon IS NOT NULL
         GROUP BY 1, 2, 3, 4",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(crate::store::scores::VerdictBucket::from)
        .collect())
}
