//! Metagraph snapshots in SQLite (`migrations/sqlite/0002_metagraph.sql`), with the semantics of
//! the Postgres store: one transaction per snapshot, a block stored once (replaced when its hash
//! changed), the newest read back as the worker's [`Metagraph`], retention that keeps the newest.

use crate::metagraph::{Metagraph, Neuron, NeuronRow};
use crate::store::{PRUNE_BATCH, Retention, SnapshotInfo, StoreError, StoreOutcome};
use chrono::{DateTime, Utc};
use sqlx::{Row, SqlitePool};

type SnapshotRow = (i64, i64, i64, String, String);

const SNAPSHOT_COLUMNS: &str =
    "SELECT id, netuid, block, block_hash, taken_at FROM metagraph_snapshots";

fn snapshot_info(row: SnapshotRow) -> Result<SnapshotInfo, StoreError> {
    let (id, netuid, block, block_hash, taken_at) = row;
    let bad = |what: &str, v: &dyn std::fmt::Display| StoreError::Invalid(format!("{what} {v}"));
    Ok(SnapshotInfo {
        id,
        netuid: u16::try_from(netuid).map_err(|_| bad("netuid", &netuid))?,
        block: u64::try_from(block).map_err(|_| bad("block", &block))?,
        block_hash,
        taken_at: DateTime::parse_from_rfc3339(&taken_at)
            .map_err(|_| bad("taken_at", &taken_at))?
            .with_timezone(&Utc),
    })
}

pub(crate) async fn store_snapshot(
    pool: &SqlitePool,
    netuid: u16,
    block: u64,
    block_hash: &str,
    neurons: &[NeuronRow],
) -> Result<StoreOutcome, StoreError> {
    let block = i64::try_from(block)
        .map_err(|_| StoreError::Invalid(format!("block {block} does not fit in INTEGER")))?;
    let mut tx = pool.begin().await?;
    let existing: Option<SnapshotRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SNAPSHOT_COLUMNS} WHERE netuid = ? AND block = ?"
    )))
    .bind(i64::from(netuid))
    .bind(block)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        let info = snapshot_info(row)?;
        if info.block_hash == block_hash {
            tx.commit().await?;
            return Ok(StoreOutcome::AlreadyStored(info));
        }
        sqlx::query("DELETE FROM metagraph_snapshots WHERE id = ?")
            .bind(info.id)
            .execute(&mut *tx)
            .await?;
    }
    let row: SnapshotRow = sqlx::query_as(
        "INSERT INTO metagraph_snapshots (netuid, block, block_hash, taken_at) VALUES (?, ?, ?, ?)
         RETURNING id, netuid, block, block_hash, taken_at",
    )
    .bind(i64::from(netuid))
    .bind(block)
    .bind(block_hash)
    .bind(Utc::now().to_rfc3339())
    .fetch_one(&mut *tx)
    .await?;
    let info = snapshot_info(row)?;
    for n in neurons {
        sqlx::query(
            "INSERT INTO neurons (snapshot_id, uid, hotkey, coldkey, active, axon_ip, axon_port,
                 axon_ip_type, axon_protocol, axon_version, stake_tao, incentive, consensus,
                 dividends, validator_trust, emission_tao, validator_permit, last_update)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(info.id)
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
        .bind(i64::try_from(n.last_update).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(StoreOutcome::Stored(info))
}

pub(crate) async fn list_snapshots(
    pool: &SqlitePool,
    netuid: u16,
    limit: i64,
) -> Result<Vec<SnapshotInfo>, StoreError> {
    let rows: Vec<SnapshotRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SNAPSHOT_COLUMNS} WHERE netuid = ? ORDER BY id DESC LIMIT ?"
    )))
    .bind(i64::from(netuid))
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(snapshot_info).collect()
}

pub(crate) async fn latest_metagraph(
    pool: &SqlitePool,
    netuid: u16,
) -> Result<Option<(SnapshotInfo, Metagraph)>, StoreError> {
    // One transaction: a prune cannot remove the snapshot between the two reads.
    let mut tx = pool.begin().await?;
    let row: Option<SnapshotRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SNAPSHOT_COLUMNS} WHERE netuid = ? ORDER BY id DESC LIMIT 1"
    )))
    .bind(i64::from(netuid))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let info = snapshot_info(row)?;
    let rows = sqlx::query(
        "SELECT uid, hotkey, coldkey, active, axon_ip, axon_port, axon_ip_type, stake_tao,
             incentive, validator_permit
         FROM neurons WHERE snapshot_id = ? ORDER BY uid",
    )
    .bind(info.id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let narrow = |what: &str, v: i64| StoreError::Invalid(format!("neurons.{what} = {v}"));
    let neurons = rows
        .iter()
        .map(|r| {
            let uid: i64 = r.try_get("uid")?;
            let port: i64 = r.try_get("axon_port")?;
            let ip_type: i64 = r.try_get("axon_ip_type")?;
            Ok(Neuron {
                uid: u16::try_from(uid).map_err(|_| narrow("uid", uid))?,
                hotkey: r.try_get("hotkey")?,
                coldkey: r.try_get("coldkey")?,
                active: r.try_get("active")?,
                axon_ip: r.try_get("axon_ip")?,
                axon_port: u16::try_from(port).map_err(|_| narrow("axon_port", port))?,
                axon_ip_type: u8::try_from(ip_type).map_err(|_| narrow("axon_ip_type", ip_type))?,
                stake_tao: r.try_get("stake_tao")?,
                incentive: r.try_get("incentive")?,
                validator_permit: r.try_get("validator_permit")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let metagraph = Metagraph {
        netuid,
        block: info.block,
        neurons,
    };
    Ok(Some((info, metagraph)))
}

pub(crate) async fn prune(
    pool: &SqlitePool,
    netuid: u16,
    retention: Retention,
) -> Result<u64, StoreError> {
    let before = retention
        .max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .map(|age| (Utc::now() - age).to_rfc3339());
    let keep_last = retention.keep_last.map(|n| i64::from(n.max(1)));
    let deleted = sqlx::query(
        "DELETE FROM metagraph_snapshots WHERE id IN (
           SELECT id FROM (
             SELECT id, taken_at, row_number() OVER (ORDER BY id DESC) AS rank
             FROM metagraph_snapshots WHERE netuid = ?1
           ) AS s
           WHERE s.rank > 1 AND (
             (?2 IS NOT NULL AND s.taken_at < ?2) OR (?3 IS NOT NULL AND s.rank > ?3))
           ORDER BY id LIMIT ?4)",
    )
    .bind(i64::from(netuid))
    .bind(before)
    .bind(keep_last)
    .bind(PRUNE_BATCH)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
