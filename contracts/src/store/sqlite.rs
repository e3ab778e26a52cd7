//! Standalone mode's store: SQLite in a data directory, with the same audit tables as
//! Postgres (`migrations/sqlite/`). Applied at start (one process owns the file).

use super::StoreError;
use crate::audit::CompletionRecord;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::path::Path;

/// The SQLite migrations compiled into this binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Opens (creating it if needed) the database file and applies the migrations.
pub async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect(format!("{}: {e}", path.display())))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| StoreError::Query(e.into()))?;
    Ok(pool)
}

/// Inserts `records` in one transaction (idempotent, like Postgres); returns how many
/// completions were new.
pub async fn insert_batch(
    pool: &SqlitePool,
    records: &[CompletionRecord],
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for r in records {
        let json = |v: &serde_json::Value| v.to_string();
        inserted += sqlx::query(
            "INSERT OR IGNORE INTO completions (request_id, created_at, api_key_id, endpoint, netuid,
                 k, timeout_s, strategy, sampling_mode, exclude, roles, messages, messages_sha256,
                 selected_uid, completion, completion_sha256, status, error, time_to_first_chunk_ms,
                 total_ms, k_asked)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for m in &r.miners {
            sqlx::query(
                "INSERT OR IGNORE INTO miner_responses (request_id, uid, created_at, hotkey, outcome,
                     status_code, time_to_first_byte_ms, total_ms, chunks, bytes, text, text_sha256,
                     clean_reason, selected)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Stores one metagraph snapshot (standalone mode's syncer) and prunes all but the newest
/// `keep` snapshots of the netuid. A block already stored is not stored again; returns whether
/// a snapshot was written.
pub async fn store_snapshot(
    pool: &SqlitePool,
    netuid: u16,
    block: u64,
    block_hash: &str,
    neurons: &[super::metagraph::NeuronRecord],
    keep: u32,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT OR IGNORE INTO metagraph_snapshots (netuid, block, block_hash, taken_at)
         VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(i64::from(netuid))
    .bind(block as i64)
    .bind(block_hash)
    .bind(chrono::Utc::now().to_rfc3339())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    for n in neurons {
        sqlx::query(
            "INSERT INTO neurons (snapshot_id, uid, hotkey, coldkey, active, axon_ip, axon_port,
                 axon_ip_type, axon_protocol, axon_version, stake_tao, incentive, consensus,
                 dividends, validator_trust, emission_tao, validator_permit, last_update)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(i64::from(n.uid))
        .bind(&n.hotkey)
        .bind(&n.coldkey)
        .bind(n.active)
        .bind(&n.axon_ip)
        .bind(i64::from(n.axon_port))
        .bind(i64::from(n.axon_ip_type))
        .bind(i64::from(n.axon_protocol))
        .bind(i64::from(n.axon_version))
        .bind(n.stake_tao)
        .bind(n.incentive)
        .bind(n.consensus)
        .bind(n.dividends)
        .bind(n.validator_trust)
        .bind(n.emission_tao)
        .bind(n.validator_permit)
        .bind(n.last_update as i64)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "DELETE FROM metagraph_snapshots WHERE netuid = ? AND id NOT IN
             (SELECT id FROM metagraph_snapshots WHERE netuid = ? ORDER BY id DESC LIMIT ?)",
    )
    .bind(i64::from(netuid))
    .bind(i64::from(netuid))
    .bind(i64::from(keep.max(1)))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
