//! SQLite behind the [`super::Store`] (standalone mode): a file in the data directory with the
//! same tables as Postgres (`migrations/sqlite/`), migrated when opened (one process owns it).

pub(super) mod audit;
pub(super) mod keys;
pub(super) mod metagraph;
pub(super) mod status;

use super::StoreError;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::path::Path;

/// The SQLite migrations compiled into this binary.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

pub(super) async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true);
    // One pool for the whole standalone process: the api (managed-key admission, the status
    // page), the audit writer, the metagraph syncer and the score refresh. 8 rather than 4 so
    // that a long read (the status page's scans, one connection at a time) leaves several
    // free: in WAL mode readers do not block each other nor the one writer, so more
    // connections add concurrency, not lock contention (writes still go one at a time).
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect(format!("{}: {e}", path.display())))?;
    migrate(&pool).await?;
    Ok(pool)
}

pub(super) async fn migrate(pool: &SqlitePool) -> Result<usize, StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Query(e.to_string()))?;
    Ok(MIGRATOR.iter().count())
}
