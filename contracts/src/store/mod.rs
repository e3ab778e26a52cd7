//! The store seam: the system of record behind one [`Store`] — Postgres (distributed mode) or
//! SQLite (standalone mode), with the same tables (`migrations/postgres/`, `migrations/sqlite/`).
//!
//! What callers do with it: insert audit batches and prune their content
//! ([`Store::insert_audit`], [`Store::prune_audit_content`]); read the newest metagraph snapshot
//! ([`Store::latest_metagraph`]) and its age; take the syncer's one-writer lock
//! ([`Store::try_lock_sync`]) and write or prune snapshots through it ([`SyncLock`]).
//!
//! Postgres's schema is applied only by `sn1-gateway migrate` (never implicitly by every
//! replica); every role that uses it checks at start that the migrations it was built with are
//! applied ([`Store::check_migrations`]). SQLite is migrated when opened (one process owns it).

pub mod keys;
mod lock;
mod postgres;
pub mod scores;
mod sqlite;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;

pub use lock::SyncLock;

use crate::audit::CompletionRecord;
use crate::metagraph::Metagraph;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::time::Duration;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or refused the connection.
    #[error("cannot reach the database: {0}")]
    Connect(String),
    /// The schema is older than this binary.
    #[error(
        "the database schema is not up to date (missing migrations: {0}); run `sn1-gateway migrate` first"
    )]
    NotMigrated(String),
    /// The database refused the data itself (Postgres SQLSTATE class 22 or 23): retrying the
    /// same rows cannot help.
    #[error("database refused the data: {0}")]
    Refused(String),
    /// A value read back does not fit its type.
    #[error("invalid stored value: {0}")]
    Invalid(String),
    /// A query failed (possibly for a passing reason).
    #[error("database error: {0}")]
    Query(String),
    /// The database cannot be reached: the connection was refused, reset or closed.
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    /// The database is reachable but could not answer in time: no pooled connection was free,
    /// or a lock wait timed out (Postgres SQLSTATE 55P03).
    #[error("the database is busy: {0}")]
    Busy(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                return StoreError::Unreachable(e.to_string());
            }
            sqlx::Error::PoolTimedOut => return StoreError::Busy(e.to_string()),
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                return StoreError::Busy(e.to_string());
            }
            _ => {}
        }
        let refused = match &e {
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
            _ => false,
        };
        if refused {
            StoreError::Refused(e.to_string())
        } else {
            StoreError::Query(e.to_string())
        }
    }
}

impl StoreError {
    /// Whether retrying the same write cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::Refused(_) | StoreError::Invalid(_))
    }
}

/// One row of `metagraph_snapshots`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshot id (increasing).
    pub id: i64,
    /// Subnet.
    pub netuid: u16,
    /// Finalized block the neurons were read at.
    pub block: u64,
    /// Its hash, `0x`-hex.
    pub block_hash: String,
    /// When it was stored (database clock).
    pub taken_at: DateTime<Utc>,
}

/// What [`SyncLock::store_snapshot`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A new snapshot was written.
    Stored(SnapshotInfo),
    /// This block (same hash) was already stored; nothing was written.
    AlreadyStored(SnapshotInfo),
}

impl StoreOutcome {
    /// The snapshot, new or existing.
    pub fn snapshot(&self) -> &SnapshotInfo {
        match self {
            StoreOutcome::Stored(s) | StoreOutcome::AlreadyStored(s) => s,
        }
    }
}

/// How long snapshots are kept. The newest snapshot of a netuid is never pruned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete snapshots stored longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many snapshots per netuid.
    pub keep_last: Option<u32>,
}

/// Snapshots deleted per prune call at most, so one call stays short.
pub const PRUNE_BATCH: i64 = 500;

/// The store of a deployment. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub enum Store {
    /// Postgres (distributed mode).
    Postgres(sqlx::PgPool),
    /// SQLite in a file (standalone mode).
    Sqlite(sqlx::SqlitePool),
}

impl Store {
    /// Connects a pool of at most `max_connections` to Postgres at `url` (`postgres://…`).
    pub async fn postgres(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        postgres::connect(url, max_connections)
            .await
            .map(Store::Postgres)
    }

    /// Opens (creating it if needed) the SQLite file at `path` and applies its migrations.
    pub async fn sqlite(path: &Path) -> Result<Store, StoreError> {
        sqlite::open(path).await.map(Store::Sqlite)
    }

    /// Whether the database can be reached at all: a new connection opens within `within`
    /// (Postgres; a server that says it has too many connections counts as reachable, only
    /// busy). Always true for SQLite, a file.
    pub async fn reachable(&self, within: Duration) -> bool {
        match self {
            Store::Postgres(pool) => postgres::reachable(pool, within).await,
            Store::Sqlite(_) => true,
        }
    }

    /// Applies every pending migration (what `sn1-gateway migrate` does for Postgres); returns
    /// how many migrations this binary knows.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        match self {
            Store::Postgres(pool) => postgres::migrate(pool).await,
            Store::Sqlite(pool) => sqlite::migrate(pool).await,
        }
    }

    /// Checks that every migration of this binary is applied.
    pub async fn check_migrations(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => postgres::check_migrations(pool).await,
            Store::Sqlite(_) => Ok(()),
        }
    }

    /// Inserts `records` in one transaction (a redelivered record is a no-op); returns how many
    /// completions were new.
    pub async fn insert_audit(&self, records: &[&CompletionRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        match self {
            Store::Postgres(pool) => postgres::audit::insert_batch(pool, records).await,
            Store::Sqlite(pool) => sqlite::audit::insert_batch(pool, records).await,
        }
    }

    /// Retention: drops prompts and texts (keeping their hashes) of requests older than
    /// `before`; returns how many completions were pruned.
    pub async fn prune_audit_content(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        match self {
            Store::Postgres(pool) => postgres::audit::prune_content(pool, before).await,
            Store::Sqlite(pool) => sqlite::audit::prune_content(pool, before).await,
        }
    }

    /// The newest snapshot of `netuid`, if any (a cheap check before loading it).
    pub async fn latest_snapshot(&self, netuid: u16) -> Result<Option<SnapshotInfo>, StoreError> {
        Ok(self.list_snapshots(netuid, 1).await?.into_iter().next())
    }

    /// The snapshots of `netuid`, newest first, at most `limit`.
    pub async fn list_snapshots(
        &self,
        netuid: u16,
        limit: i64,
    ) -> Result<Vec<SnapshotInfo>, StoreError> {
        match self {
            Store::Postgres(pool) => postgres::metagraph::list_snapshots(pool, netuid, limit).await,
            Store::Sqlite(pool) => sqlite::metagraph::list_snapshots(pool, netuid, limit).await,
        }
    }

    /// The newest snapshot of `netuid` as the worker's [`Metagraph`], read consistently (pruning
    /// cannot remove it halfway).
    pub async fn latest_metagraph(
        &self,
        netuid: u16,
    ) -> Result<Option<(SnapshotInfo, Metagraph)>, StoreError> {
        match self {
            Store::Postgres(pool) => postgres::metagraph::latest_metagraph(pool, netuid).await,
            Store::Sqlite(pool) => sqlite::metagraph::latest_metagraph(pool, netuid).await,
        }
    }

    /// How long ago the newest snapshot of `netuid` was stored, if there is one.
    pub async fn snapshot_age(&self, netuid: u16) -> Result<Option<Duration>, StoreError> {
        let newest = self.latest_snapshot(netuid).await?;
        Ok(newest.map(|s| (Utc::now() - s.taken_at).to_std().unwrap_or_default()))
    }

    /// Tries once to become the single snapshot writer of `netuid`: `None` when another process
    /// holds the lock.
    pub async fn try_lock_sync(&self, netuid: u16) -> Result<Option<SyncLock>, StoreError> {
        SyncLock::try_acquire(self, netuid).await
    }
}
