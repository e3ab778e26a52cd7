//! The system of record in Postgres: metagraph snapshots and the audit log.
//!
//! The schema lives in `migrations/postgres/` and is applied only by `sn1-gateway migrate`
//! (never implicitly by every replica); every role that uses the store checks at start that
//! the migrations it was built with are applied ([`check_migrations`]).

pub mod audit;
pub mod metagraph;
pub mod sqlite;
pub mod testing;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashSet;
use std::time::Duration;

/// The migrations compiled into this binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres is unreachable or refused the connection.
    #[error("cannot reach the database: {0}")]
    Connect(String),
    /// The schema is older than this binary.
    #[error(
        "the database schema is not up to date (missing migrations: {0}); run `sn1-gateway migrate` first"
    )]
    NotMigrated(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// Connects a pool to `url` (`postgres://…`), with at most `max_connections`.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))
}

/// Applies every pending migration (what `sn1-gateway migrate` does).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Query(e.into()))
}

/// Checks that every migration of this binary is applied.
pub async fn check_migrations(pool: &PgPool) -> Result<(), StoreError> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let applied: HashSet<i64> = if table_exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::NotMigrated(missing.join(", ")))
    }
}
