//! Metagraph snapshots in Postgres (`migrations/postgres/0002_metagraph.sql`): one snapshot
//! written in one transaction on the syncer's lock connection, the newest read back as the
//! worker's [`Metagraph`], retention.
//!
//! "The newest snapshot" of a netuid is the one stored last (highest `id`), which is what the
//! `latest_neurons` view shows; `(netuid, block)` is unique, so a block is stored once.

use crate::metagraph::{Metagraph, Neuron, NeuronRow};
use crate::store::{PRUNE_BATCH, Retention, SnapshotInfo, StoreError, StoreOutcome};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};

fn invalid(message: String) -> StoreError {
    StoreError::Invalid(message)
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| invalid(format!("{what} {v} does not fit in BIGINT")))
}

type SnapshotRow = (i64, i32, i64, String, DateTime<Utc>);

fn snapshot_info(row: SnapshotRow) -> Result<SnapshotInfo, StoreError> {
    let (id, netuid, block, block_hash, taken_at) = row;
    Ok(SnapshotInfo {
        id,
        netuid: u16::try_from(netuid).map_err(|_| invalid(format!("netuid {netuid}")))?,
        block: u64::try_from(block).map_err(|_| invalid(format!("block {block}")))?,
        block_hash,
        taken_at,
    })
}

/// Writes `neurons` as the snapshot of `netuid` at `block` in one transaction on `conn` (the
/// lock's connection, so only the lock holder writes).
///
/// A block already stored with the same hash is left alone ([`StoreOutcome::AlreadyStored`]);
/// one stored with a different hash (a restarted development chain) is replaced.
pub(crate) async fn store_snapshot(
    conn: &mut PgConnection,
    netuid: u16,
    block: u64,
    block_hash: &str,
    neurons: &[NeuronRow],
) -> Result<StoreOutcome, StoreError> {
    let block_i64 = to_i64(block, "block")?;
    let mut tx = conn.begin().await?;
    let existing: Option<SnapshotRow> = sqlx::query_as(
        "SELECT id, netuid, block, block_hash, taken_at FROM metagraph_snapshots \
         WHERE netuid = $1 AND block = $2 FOR UPDATE",
    )
    .bind(i32::from(netuid))
    .bind(block_i64)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        let info = snapshot_info(row)?;
        if info.block_hash == block_hash {
            tx.commit().await?;
            return Ok(StoreOutcome::AlreadyStored(info));
        }
        sqlx::query("DELETE FROM metagraph_snapshots WHERE id = $1")
            .bind(info.id)
            .execute(&mut *tx)
            .await?;
    }
    let row: SnapshotRow = sqlx::query_as(
        "INSERT INTO metagraph_snapshots (netuid, block, block_hash) VALUES ($1, $2, $3) \
         RETURNING id, netuid, block, block_hash, taken_at",
    )
    .bind(i32::from(netuid))
    .bind(block_i64)
    .bind(block_hash)
    .fetch_one(&mut *tx)
    .await?;
    let info = snapshot_info(row)?;
    insert_neurons(&mut tx, info.id, neurons).await?;
    tx.commit().await?;
    Ok(StoreOutcome::Stored(info))
}

/// One `INSERT … SELECT FROM UNNEST(arrays)`: a single round trip for the whole subnet.
async fn insert_neurons(
    conn: &mut PgConnection,
    snapshot_id: i64,
    neurons: &[NeuronRow],
) -> Result<(), StoreError> {
    let col = |f: fn(&NeuronRow) -> i64| neurons.iter().map(f).collect::<Vec<i64>>();
    let flt = |f: fn(&NeuronRow) -> f64| neurons.iter().map(f).collect::<Vec<f64>>();
    let last_update = neurons
        .iter()
        .map(|n| to_i64(n.last_update, "last_update"))
        .collect::<Result<Vec<i64>, _>>()?;
    sqlx::query(
        "INSERT INTO neurons (snapshot_id, uid, hotkey, coldkey, active, axon_ip, axon_port, \
           axon_ip_type, axon_protocol, axon_version, stake_tao, incentive, consensus, dividends, \
           validator_trust, emission_tao, validator_permit, last_update) \
         SELECT $1, * FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::bool[], $6::text[], \
           $7::int4[], $8::int2[], $9::int2[], $10::int8[], $11::float8[], $12::float8[], \
           $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::bool[], $18::int8[])",
    )
    .bind(snapshot_id)
    .bind(neurons.iter().map(|n| i32::from(n.uid)).collect::<Vec<_>>())
    .bind(neurons.iter().map(|n| n.hotkey.clone()).collect::<Vec<_>>())
    .bind(
        neurons
            .iter()
            .map(|n| n.coldkey.clone())
            .collect::<Vec<_>>(),
    )
    .bind(neurons.iter().map(|n| n.active).collect::<Vec<_>>())
    .bind(
        neurons
            .iter()
            .map(|n| n.axon_ip.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        neurons
            .iter()
            .map(|n| i32::from(n.axon_port))
            .collect::<Vec<_>>(),
    )
    .bind(
        neurons
            .iter()
            .map(|n| i16::from(n.axon_ip_type))
            .collect::<Vec<_>>(),
    )
    .bind(
        neurons
            .iter()
            .map(|n| i16::from(n.axon_protocol))
            .collect::<Vec<_>>(),
    )
    .bind(col(|n| i64::from(n.axon_version)))
    .bind(flt(|n| n.stake_tao))
    .bind(flt(|n| n.incentive))
    .bind(flt(|n| n.consensus))
    .bind(flt(|n| n.dividends))
    .bind(flt(|n| n.validator_trust))
    .bind(flt(|n| n.emission_tao))
    .bind(
        neurons
            .iter()
            .map(|n| n.validator_permit)
            .collect::<Vec<_>>(),
    )
    .bind(last_update)
    .execute(conn)
    .await?;
    Ok(())
}

/// The snapshots of `netuid`, newest first, at most `limit`.
pub(crate) async fn list_snapshots(
    pool: &PgPool,
    netuid: u16,
    limit: i64,
) -> Result<Vec<SnapshotInfo>, StoreError> {
    let rows: Vec<SnapshotRow> = sqlx::query_as(
        "SELECT id, netuid, block, block_hash, taken_at FROM metagraph_snapshots \
         WHERE netuid = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(i32::from(netuid))
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(snapshot_info).collect()
}

async fn read_neurons(
    conn: &mut PgConnection,
    snapshot_id: i64,
) -> Result<Vec<NeuronRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT uid, hotkey, coldkey, active, axon_ip, axon_port, axon_ip_type, axon_protocol, \
           axon_version, stake_tao, incentive, consensus, dividends, validator_trust, \
           emission_tao, validator_permit, last_update \
         FROM neurons WHERE snapshot_id = $1 ORDER BY uid",
    )
    .bind(snapshot_id)
    .fetch_all(conn)
    .await?;
    let narrow = |v: i64, what: &str| invalid(format!("neurons.{what} = {v} is out of range"));
    rows.iter()
        .map(|r| {
            let uid: i32 = r.try_get("uid")?;
            let port: i32 = r.try_get("axon_port")?;
            let ip_type: i16 = r.try_get("axon_ip_type")?;
            let protocol: i16 = r.try_get("axon_protocol")?;
            let version: i64 = r.try_get("axon_version")?;
            let last_update: i64 = r.try_get("last_update")?;
            Ok(NeuronRow {
                uid: u16::try_from(uid).map_err(|_| narrow(uid.into(), "uid"))?,
                hotkey: r.try_get("hotkey")?,
                coldkey: r.try_get("coldkey")?,
                active: r.try_get("active")?,
                axon_ip: r.try_get("axon_ip")?,
                axon_port: u16::try_from(port).map_err(|_| narrow(port.into(), "axon_port"))?,
                axon_ip_type: u8::try_from(ip_type)
                    .map_err(|_| narrow(ip_type.into(), "axon_ip_type"))?,
                axon_protocol: u8::try_from(protocol)
                    .map_err(|_| narrow(protocol.into(), "axon_protocol"))?,
                axon_version: u32::try_from(version)
                    .map_err(|_| narrow(version, "axon_version"))?,
                stake_tao: r.try_get("stake_tao")?,
                incentive: r.try_get("incentive")?,
                consensus: r.try_get("consensus")?,
                dividends: r.try_get("dividends")?,
                validator_trust: r.try_get("validator_trust")?,
                emission_tao: r.try_get("emission_tao")?,
                validator_permit: r.try_get("validator_permit")?,
                last_update: u64::try_from(last_update)
                    .map_err(|_| narrow(last_update, "last_update"))?,
            })
        })
        .collect()
}

/// The newest snapshot of `netuid` as the worker's [`Metagraph`], read consistently (one
/// repeatable-read transaction, so pruning cannot remove it halfway).
pub(crate) async fn latest_metagraph(
    pool: &PgPool,
    netuid: u16,
) -> Result<Option<(SnapshotInfo, Metagraph)>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let row: Option<SnapshotRow> = sqlx::query_as(
        "SELECT id, netuid, block, block_hash, taken_at FROM metagraph_snapshots \
         WHERE netuid = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(i32::from(netuid))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let info = snapshot_info(row)?;
    let records = read_neurons(&mut tx, info.id).await?;
    tx.commit().await?;
    let metagraph = Metagraph {
        netuid,
        block: info.block,
        neurons: records.iter().map(Neuron::from).collect(),
    };
    Ok(Some((info, metagraph)))
}

/// Deletes (with their neurons) the snapshots of `netuid` that `retention` no longer keeps, at
/// most [`PRUNE_BATCH`] per call, never the newest; returns how many were deleted.
pub(crate) async fn prune(
    conn: &mut PgConnection,
    netuid: u16,
    retention: Retention,
) -> Result<u64, StoreError> {
    if retention.max_age.is_none() && retention.keep_last.is_none() {
        return Ok(0);
    }
    let max_age_secs = retention.max_age.map(|d| d.as_secs_f64());
    let keep_last = retention.keep_last.map(|n| i64::from(n.max(1)));
    let deleted = sqlx::query(
        "DELETE FROM metagraph_snapshots WHERE id IN ( \
           SELECT id FROM ( \
             SELECT id, taken_at, row_number() OVER (ORDER BY id DESC) AS rank \
             FROM metagraph_snapshots WHERE netuid = $1 \
           ) AS s \
           WHERE s.rank > 1 AND ( \
             ($2::float8 IS NOT NULL AND s.taken_at < now() - make_interval(secs => $2::float8)) \
             OR ($3::int8 IS NOT NULL AND s.rank > $3::int8)) \
           ORDER BY id LIMIT $4)",
    )
    .bind(i32::from(netuid))
    .bind(max_age_secs)
    .bind(keep_last)
    .bind(PRUNE_BATCH)
    .execute(conn)
    .await?;
    Ok(deleted.rows_affected())
}
