//! Managed keys in SQLite (standalone mode; `migrations/sqlite/0004_api_keys.sql`). One process
//! owns the file, so admission runs under one in-process lock with the rules of Postgres's
//! `sn1_admit_key` (`migrations/postgres/0005_api_keys.sql`), written here in Rust. Times are
//! stored as fixed-width RFC 3339 text (microseconds, `Z`), so they also compare as text.

use crate::store::StoreError;
use crate::store::keys::{Admission, KeyChange, KeyInfo, KeyLimits, KeyUsage, NewKey};
use chrono::{DateTime, DurationRound, Utc};
use sqlx::SqlitePool;
use std::time::Duration;

/// Serialises admissions of this process (the one that owns the file).
static ADMISSION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const COLUMNS: &str = "id, name, created_at, expires_at, revoked_at, rpm, max_streams";

type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Invalid(format!("timestamp {text:?}: {e}")))
}

fn parse_opt(text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.as_deref().map(parse).transpose()
}

fn info(r: Row) -> Result<KeyInfo, StoreError> {
    Ok(KeyInfo {
        id: r.0,
        name: r.1,
        created_at: parse(&r.2)?,
        expires_at: parse_opt(r.3)?,
        revoked_at: parse_opt(r.4)?,
        limits: KeyLimits {
            rpm: r.5.map(|v| v as u32),
            max_streams: r.6.map(|v| v as u32),
        },
    })
}

fn minute(now: DateTime<Utc>) -> String {
    ts(now
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now))
}

pub(crate) async fn create(
    pool: &SqlitePool,
    id: &str,
    sha: &str,
    new: &NewKey,
) -> Result<KeyInfo, StoreError> {
    let now = ts(Utc::now());
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_keys (id, name, key_sha256, created_at, expires_at, rpm, max_streams,
                               tokens, refilled_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, coalesce(?6, 0), ?4) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(new.name.trim())
    .bind(sha)
    .bind(&now)
    .bind(new.expires_at.map(ts))
    .bind(new.limits.rpm.map(i64::from))
    .bind(new.limits.max_streams.map(i64::from))
    .fetch_one(pool)
    .await?;
    info(row)
}

pub(crate) async fn list(pool: &SqlitePool) -> Result<Vec<KeyInfo>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(info).collect()
}

pub(crate) async fn revoke(pool: &SqlitePool, id: &str) -> Result<Option<KeyInfo>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(ts(Utc::now()))
    .fetch_optional(pool)
    .await?;
    row.map(info).transpose()
}

pub(crate) async fn change(
    pool: &SqlitePool,
    id: &str,
    change: &KeyChange,
) -> Result<Option<KeyInfo>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET
             rpm = CASE WHEN ?2 THEN ?3 ELSE rpm END,
             tokens = CASE WHEN ?2 THEN coalesce(?3, 0) ELSE tokens END,
             refilled_at = CASE WHEN ?2 THEN ?8 ELSE refilled_at END,
             max_streams = CASE WHEN ?4 THEN ?5 ELSE max_streams END,
             expires_at = CASE WHEN ?6 THEN ?7 ELSE expires_at END
         WHERE id = ?1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.rpm.is_some())
    .bind(change.rpm.flatten().map(i64::from))
    .bind(change.max_streams.is_some())
    .bind(change.max_streams.flatten().map(i64::from))
    .bind(change.expires_at.is_some())
    .bind(change.expires_at.flatten().map(ts))
    .bind(ts(Utc::now()))
    .fetch_optional(pool)
    .await?;
    row.map(info).transpose()
}

/// The key row admission reads.
type Limits = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    f64,
    String,
);

pub(crate) async fn admit(
    pool: &SqlitePool,
    sha256: &str,
    request_id: uuid::Uuid,
    lease: Duration,
) -> Result<Admission, StoreError> {
    let _one_at_a_time = ADMISSION.lock().await;
    let now = Utc::now();
    // Read and write in one IMMEDIATE transaction: a change from another process (the `keys`
    // command) lands before or after this admission, never in the middle.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let row: Option<Limits> = sqlx::query_as(
        "SELECT id, revoked_at, expires_at, rpm, max_streams, tokens, refilled_at
         FROM api_keys WHERE key_sha256 = ?1",
    )
    .bind(sha256)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((key_id, revoked_at, expires_at, rpm, max_streams, tokens, refilled_at)) = row else {
        return Ok(Admission::Unknown);
    };
    if revoked_at.is_some() {
        return Ok(Admission::Revoked { key_id });
    }
    let expires_at = parse_opt(expires_at)?;
    if expires_at.is_some_and(|t| t <= now) {
        return Ok(Admission::Expired { key_id });
    }
    if let Some(max) = max_streams {
        sqlx::query("DELETE FROM api_key_leases WHERE key_id = ?1 AND expires_at <= ?2")
            .bind(&key_id)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar("SELECT count(*) FROM api_key_leases WHERE key_id = ?1")
            .bind(&key_id)
            .fetch_one(&mut *tx)
            .await?;
        if live >= max {
            reject(&mut tx, &key_id, now).await?;
            tx.commit().await?;
            return Ok(Admission::OverStreams { key_id });
        }
    }
    if let Some(rpm) = rpm {
        let rpm = rpm as f64;
        let elapsed = (now - parse(&refilled_at)?).num_microseconds().unwrap_or(0) as f64 / 1e6;
        let bucket = rpm.min(tokens + elapsed.max(0.0) * rpm / 60.0);
        if bucket < 1.0 {
            reject(&mut tx, &key_id, now).await?;
            tx.commit().await?;
            let retry_after = Duration::from_secs_f64((1.0 - bucket) * 60.0 / rpm);
            return Ok(Admission::OverRpm {
                key_id,
                retry_after,
            });
        }
        sqlx::query("UPDATE api_keys SET tokens = ?2, refilled_at = ?3 WHERE id = ?1")
            .bind(&key_id)
            .bind(bucket - 1.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
    }
    let leased = max_streams.is_some();
    if leased {
        let expires = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::hours(1));
        sqlx::query(
            "INSERT INTO api_key_leases (request_id, key_id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(request_id.to_string())
        .bind(&key_id)
        .bind(ts(expires))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Admission::Admitted {
        key_id,
        leased,
        expires_at,
    })
}

async fn reject(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_key_usage (key_id, minute, rejected) VALUES (?1, ?2, 1)
         ON CONFLICT (key_id, minute) DO UPDATE SET rejected = rejected + 1",
    )
    .bind(key_id)
    .bind(minute(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn release(pool: &SqlitePool, request_id: uuid::Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM api_key_leases WHERE request_id = ?1")
        .bind(request_id.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn add_usage(
    pool: &SqlitePool,
    usage: &[(String, KeyUsage)],
) -> Result<(), StoreError> {
    let minute = minute(Utc::now());
    let mut tx = pool.begin().await?;
    for (key_id, u) in usage {
        sqlx::query(
            "INSERT INTO api_key_usage (key_id, minute, requests, streams, est_tokens)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?1)
             ON CONFLICT (key_id, minute) DO UPDATE SET
                 requests = requests + excluded.requests,
                 streams = streams + excluded.streams,
                 est_tokens = est_tokens + excluded.est_tokens",
        )
        .bind(key_id)
        .bind(&minute)
        .bind(i64::try_from(u.requests).unwrap_or(i64::MAX))
        .bind(i64::try_from(u.streams).unwrap_or(i64::MAX))
        .bind(i64::try_from(u.est_tokens).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
