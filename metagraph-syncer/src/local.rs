//! Standalone mode's syncer: reads the chain exactly as the distributed syncer does
//! ([`crate::snapshot::read_snapshot`]), keeps the snapshots in SQLite (same tables as
//! Postgres), and hands each new metagraph straight to the in-process worker. One process owns
//! the file, so no advisory lock is needed.

use crate::rpc::ChainClient;
use crate::snapshot::{read_snapshot, records};
use sn1_contracts::metagraph::{Metagraph, Neuron};
use sqlx::SqlitePool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings of the standalone syncer.
#[derive(Clone, Debug)]
pub struct LocalSyncConfig {
    /// `ws://` or `wss://` endpoint.
    pub url: String,
    /// Subnet.
    pub netuid: u16,
    /// Time between syncs.
    pub interval: Duration,
    /// Bound on every chain call.
    pub timeout: Duration,
    /// Snapshots kept in SQLite.
    pub keep: u32,
}

/// Reads one snapshot, stores it, and returns the metagraph.
pub async fn sync_once(config: &LocalSyncConfig, pool: &SqlitePool) -> anyhow::Result<Metagraph> {
    let chain = ChainClient::connect(&config.url, config.timeout).await?;
    let snapshot = read_snapshot(&chain, config.netuid).await?;
    let rows = records(&snapshot.rows);
    sn1_contracts::store::sqlite::store_snapshot(
        pool,
        snapshot.netuid,
        snapshot.block,
        &snapshot.block_hash,
        &rows,
        config.keep,
    )
    .await?;
    tracing::info!(
        netuid = snapshot.netuid,
        block = snapshot.block,
        neurons = rows.len(),
        "metagraph synced"
    );
    Ok(Metagraph {
        netuid: snapshot.netuid,
        block: snapshot.block,
        neurons: rows.iter().map(Neuron::from).collect(),
    })
}

/// Syncs every `interval` until `stop`, calling `install` with each new metagraph. A failed
/// sync keeps the last metagraph and retries with backoff.
pub async fn run(
    config: LocalSyncConfig,
    pool: SqlitePool,
    install: impl Fn(Metagraph) + Send + 'static,
    stop: CancellationToken,
) {
    let mut wait = config.interval;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match sync_once(&config, &pool).await {
            Ok(metagraph) => {
                install(metagraph);
                wait = config.interval;
            }
            Err(e) => {
                tracing::warn!(error = %e, "metagraph sync failed; keeping the last one");
                wait = (wait * 2).min(Duration::from_secs(300));
            }
        }
    }
}
