//! The metagraph syncer's one-writer-at-a-time lock: a Postgres session-level advisory lock
//! ([`SYNC_LOCK_CLASS`], netuid) held on a dedicated connection.

use super::SYNC_LOCK_CLASS;
use crate::store::StoreError;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::time::Duration;

/// The session-level advisory lock that makes the syncer of a netuid a single writer. It lives
/// on its own connection: when that connection drops, Postgres releases the lock and another
/// replica takes over. Writes go through [`SyncLock::connection`], so a writer that lost its
/// connection (and with it the lock) cannot write either.
pub struct SyncLock {
    conn: PgConnection,
    netuid: u16,
}

impl SyncLock {
    /// Opens a connection to `url` and tries the lock once: `None` when another process holds it.
    pub async fn try_acquire(url: &str, netuid: u16) -> Result<Option<SyncLock>, StoreError> {
        let connect = PgConnection::connect(url);
        let mut conn = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| StoreError::Connect("timed out after 10s".into()))?
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(SYNC_LOCK_CLASS)
            .bind(i32::from(netuid))
            .fetch_one(&mut conn)
            .await?;
        if locked {
            Ok(Some(SyncLock { conn, netuid }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The netuid this lock is for.
    pub fn netuid(&self) -> u16 {
        self.netuid
    }

    /// The locked connection, for writes.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Whether the connection (and so the lock) is still alive.
    pub async fn is_alive(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// Releases the lock and closes the connection.
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(SYNC_LOCK_CLASS)
            .bind(i32::from(self.netuid))
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}
