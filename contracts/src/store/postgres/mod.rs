//! Postgres behind the [`super::Store`]: the pool, migrations (`migrations/postgres/`) and the
//! schema check; the audit log ([`audit`]) and metagraph snapshots ([`metagraph`]).

pub(super) mod audit;
pub(super) mod keys;
pub(super) mod metagraph;
pub(super) mod status;

use super::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashSet;
use std::time::Duration;

/// The migrations compiled into this binary.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Advisory-lock class of the metagraph syncer (`"SN1M"`); the second key is the netuid.
pub(super) const SYNC_LOCK_CLASS: i32 = 0x534E_314D;

pub(super) async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))
}

/// Whether a new connection (not one of `pool`'s, which may all be busy) opens within
/// `within`: a server that refuses, resets, does not answer or does not accept logins yet is
/// unreachable; one that has too many connections (SQLSTATE 53300) is up, only busy.
pub(super) async fn reachable(pool: &PgPool, within: Duration) -> bool {
    use sqlx::Connection;
    let options = pool.connect_options();
    match tokio::time::timeout(within, sqlx::PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            true
        }
        Ok(Err(sqlx::Error::Database(e))) => e.code().as_deref() == Some("53300"),
        Ok(Err(_)) | Err(_) => false,
    }
}

pub(super) async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Query(e.to_string()))?;
    Ok(MIGRATOR.iter().count())
}

pub(super) async fn check_migrations(pool: &PgPool) -> Result<(), StoreError> {
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
