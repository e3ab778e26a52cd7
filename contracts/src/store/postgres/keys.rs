//! Managed keys in Postgres (`migrations/postgres/0005_api_keys.sql`). Admission is one call
//! of `sn1_admit_key`, which does its reads and writes under the key's row lock: one round
//! trip per request, and replicas never both take the last token.

use crate::store::StoreError;
use crate::store::keys::{Admission, KeyChange, KeyInfo, KeyLimits, KeyUsage, NewKey};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;

/// The columns of a [`KeyInfo`], in [`row`]'s order.
const COLUMNS: &str = "id, name, created_at, expires_at, revoked_at, rpm, max_streams";

type Row = (
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<i32>,
    Option<i32>,
);

fn info(r: Row) -> KeyInfo {
    KeyInfo {
        id: r.0,
        name: r.1,
        created_at: r.2,
        expires_at: r.3,
        revoked_at: r.4,
        limits: KeyLimits {
            rpm: r.5.map(|v| v as u32),
            max_streams: r.6.map(|v| v as u32),
        },
    }
}

fn sql_limit(v: Option<u32>) -> Option<i32> {
    v.map(|v| v as i32)
}

pub(crate) async fn create(
    pool: &PgPool,
    id: &str,
    sha: &str,
    new: &NewKey,
) -> Result<KeyInfo, StoreError> {
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_keys (id, name, key_sha256, expires_at, rpm, max_streams, tokens)
         VALUES ($1, $2, $3, $4, $5, $6, coalesce($5, 0)) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(new.name.trim())
    .bind(sha)
    .bind(new.expires_at)
    .bind(sql_limit(new.limits.rpm))
    .bind(sql_limit(new.limits.max_streams))
    .fetch_one(pool)
    .await?;
    Ok(info(row))
}

pub(crate) async fn list(pool: &PgPool) -> Result<Vec<KeyInfo>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(info).collect())
}

pub(crate) async fn revoke(pool: &PgPool, id: &str) -> Result<Option<KeyInfo>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(info))
}

pub(crate) async fn change(
    pool: &PgPool,
    id: &str,
    change: &KeyChange,
) -> Result<Option<KeyInfo>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET
             rpm = CASE WHEN $2 THEN $3 ELSE rpm END,
             tokens = CASE WHEN $2 THEN coalesce($3, 0) ELSE tokens END,
             refilled_at = CASE WHEN $2 THEN now() ELSE refilled_at END,
             max_streams = CASE WHEN $4 THEN $5 ELSE max_streams END,
             expires_at = CASE WHEN $6 THEN $7 ELSE expires_at END
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.rpm.is_some())
    .bind(sql_limit(change.rpm.flatten()))
    .bind(change.max_streams.is_some())
    .bind(sql_limit(change.max_streams.flatten()))
    .bind(change.expires_at.is_some())
    .bind(change.expires_at.flatten())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(info))
}

pub(crate) async fn admit(
    pool: &PgPool,
    sha256: &str,
    request_id: uuid::Uuid,
    lease: Duration,
) -> Result<Admission, StoreError> {
    type Verdict = (
        Option<String>,
        String,
        Option<f64>,
        bool,
        Option<DateTime<Utc>>,
    );
    let (key_id, verdict, retry_after, leased, expires_at): Verdict =
        sqlx::query_as("SELECT * FROM sn1_admit_key($1, $2, $3)")
            .bind(sha256)
            .bind(request_id)
            .bind(lease.as_secs_f64())
            .fetch_one(pool)
            .await?;
    super::super::keys::verdict(key_id, &verdict, retry_after, leased, expires_at)
}

pub(crate) async fn release(pool: &PgPool, request_id: uuid::Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM api_key_leases WHERE request_id = $1")
        .bind(request_id)
        .execute(pool)
        .await?;
    Ok(())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) async fn add_usage(
    pool: &PgPool,
    usage: &[(String, KeyUsage)],
) -> Result<(), StoreError> {
    let ids: Vec<&str> = usage.iter().map(|(id, _)| id.as_str()).collect();
    let column =
        |f: fn(&KeyUsage) -> u64| -> Vec<i64> { usage.iter().map(|(_, u)| count(f(u))).collect() };
    sqlx::query(
        "INSERT INTO api_key_usage AS u (key_id, minute, requests, streams, est_tokens)
         SELECT x.id, date_trunc('minute', now()), x.requests, x.streams, x.tokens
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
              AS x(id, requests, streams, tokens)
         WHERE EXISTS (SELECT 1 FROM api_keys k WHERE k.id = x.id)
         ORDER BY x.id -- every replica locks the rows in one order: no deadlock between flushes
         ON CONFLICT (key_id, minute) DO UPDATE SET
             requests = u.requests + excluded.requests,
             streams = u.streams + excluded.streams,
             est_tokens = u.est_tokens + excluded.est_tokens",
    )
    .bind(&ids)
    .bind(column(|u| u.requests))
    .bind(column(|u| u.streams))
    .bind(column(|u| u.est_tokens))
    .execute(pool)
    .await?;
    Ok(())
}
