//! The metagraph syncer's one-writer-at-a-time lock, through which snapshots are written.
//!
//! Postgres: a session-level advisory lock (class `"SN1M"`, netuid) held on a dedicated
//! connection. When that connection drops, Postgres releases the lock and another replica takes
//! over; writes go through the same connection, so a writer that lost the lock cannot write.
//! SQLite: one process owns the file, so the lock is always granted and writes use the pool.

use super::postgres::SYNC_LOCK_CLASS;
use super::{Retention, Store, StoreError, StoreOutcome, postgres, sqlite};
use crate::metagraph::NeuronRow;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::time::Duration;

/// How long opening the lock's own connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The right to write the snapshots of one netuid.
pub struct SyncLock {
    netuid: u16,
    holder: Holder,
}

enum Holder {
    Postgres(PgConnection),
    Sqlite(sqlx::SqlitePool),
}

impl SyncLock {
    pub(super) async fn try_acquire(
        store: &Store,
        netuid: u16,
    ) -> Result<Option<Self>, StoreError> {
        let pool = match store {
            Store::Sqlite(pool) => {
                return Ok(Some(SyncLock {
                    netuid,
                    holder: Holder::Sqlite(pool.clone()),
                }));
            }
            Store::Postgres(pool) => pool,
        };
        let options = pool.connect_options();
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| StoreError::Connect(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(SYNC_LOCK_CLASS)
            .bind(i32::from(netuid))
            .fetch_one(&mut conn)
            .await?;
        if locked {
            Ok(Some(SyncLock {
                netuid,
                holder: Holder::Postgres(conn),
            }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The netuid this lock is for.
    pub fn netuid(&self) -> u16 {
        self.netuid
    }

    /// Whether the lock is still held (its connection alive).
    pub async fn is_alive(&mut self) -> bool {
        match &mut self.holder {
            Holder::Postgres(conn) => conn.ping().await.is_ok(),
            Holder::Sqlite(_) => true,
        }
    }

    /// Writes `neurons` as the snapshot at `block` in one transaction. A block already stored
    /// with the same hash is left alone ([`StoreOutcome::AlreadyStored`]); one stored with a
    /// different hash (a restarted development chain) is replaced.
    pub async fn store_snapshot(
        &mut self,
        block: u64,
        block_hash: &str,
        neurons: &[NeuronRow],
    ) -> Result<StoreOutcome, StoreError> {
        let netuid = self.netuid;
        match &mut self.holder {
            Holder::Postgres(conn) => {
                postgres::metagraph::store_snapshot(conn, netuid, block, block_hash, neurons).await
            }
            Holder::Sqlite(pool) => {
                sqlite::metagraph::store_snapshot(pool, netuid, block, block_hash, neurons).await
            }
        }
    }

    /// Deletes the snapshots `retention` no longer keeps (never the newest), a bounded number
    /// per call; returns how many were deleted.
    pub async fn prune(&mut self, retention: Retention) -> Result<u64, StoreError> {
        if retention.max_age.is_none() && retention.keep_last.is_none() {
            return Ok(0);
        }
        let netuid = self.netuid;
        match &mut self.holder {
            Holder::Postgres(conn) => postgres::metagraph::prune(conn, netuid, retention).await,
            Holder::Sqlite(pool) => sqlite::metagraph::prune(pool, netuid, retention).await,
        }
    }

    /// Releases the lock (and closes its connection).
    pub async fn release(self) {
        if let Holder::Postgres(mut conn) = self.holder {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(SYNC_LOCK_CLASS)
                .bind(i32::from(self.netuid))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}
