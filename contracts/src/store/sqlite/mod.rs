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
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
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
