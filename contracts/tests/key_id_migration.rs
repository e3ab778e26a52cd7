//! The key-id migration (issue #17, finding 7) on both store backends: audit rows written with
//! the old `static-<sha256 prefix>` ids get opaque `legacy-<n>` ids (one per old key, numbered
//! by first use), newer ids are left alone, and running the statement again (rows an old api
//! replica wrote during a rolling upgrade) continues the numbering.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use sn1_contracts::store::{Store, testing};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::collections::BTreeMap;

static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");

/// The last migration before key ids changed, per backend.
const POSTGRES_BEFORE: i64 = 3;
const SQLITE_BEFORE: i64 = 2;

/// Old rows: (api_key_id, minutes after the first request).
const OLD_ROWS: [(&str, i64); 5] = [
    ("static-98483c6eb40b", 0),
    ("static-0123456789ab", 1),
    ("static-98483c6eb40b", 2),
    ("kid-00112233445566ff", 3),
    ("anonymous", 4),
];

fn migration_sql(dir: &str, file: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../migrations/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const INSERT_PG: &str = "INSERT INTO completions (request_id, created_at, api_key_id, endpoint,
    netuid, k, timeout_s, strategy, sampling_mode, status, total_ms, k_asked)
    VALUES ($1::uuid, now() + make_interval(mins => $2::int), $3, 'chat', 1, 1, 10, 'first',
    'random', 'answered', 5, 1)";

const INSERT_SQLITE: &str = "INSERT INTO completions (request_id, created_at, api_key_id,
    endpoint, netuid, k, timeout_s, strategy, sampling_mode, status, total_ms, k_asked)
    VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2 || ' minutes'), ?3, 'chat', 1, 1, 10,
    'first', 'random', 'answered', 5, 1)";

/// What each old id became (by the minute it was written at).
fn check_rewritten(ids: &BTreeMap<i64, String>) {
    assert_eq!(ids[&0], "legacy-1", "{ids:?}");
    assert_eq!(ids[&1], "legacy-2", "{ids:?}");
    assert_eq!(ids[&2], "legacy-1", "one old key keeps one id: {ids:?}");
    assert_eq!(ids[&3], "kid-00112233445566ff", "{ids:?}");
    assert_eq!(ids[&4], "anonymous", "{ids:?}");
    assert!(
        ids.values()
            .all(|id| !id.starts_with("static-") && !id.contains("98483c")),
        "{ids:?}"
    );
}

#[tokio::test]
async fn postgres_rows_lose_their_unsalted_key_hashes() {
    let url = testing::fresh_database("keyids").await.unwrap();
    let store = Store::postgres(&url, 2).await.unwrap();
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };
    POSTGRES.run_to(POSTGRES_BEFORE, pool).await.unwrap();
    for (id, minute) in OLD_ROWS {
        sqlx::query(INSERT_PG)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(minute as i32)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    }
    store.migrate().await.unwrap();
    store.check_migrations().await.unwrap();
    let read = async || -> BTreeMap<i64, String> {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT round(extract(epoch FROM created_at - min(created_at) OVER ()) / 60)::bigint,
                    api_key_id FROM completions",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
    };
    check_rewritten(&read().await);

    // A row an old replica writes after the migration: running the statement again numbers
    // its key after the existing ones and leaves those alone.
    sqlx::query(INSERT_PG)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(5)
        .bind("static-fedcba987654")
        .execute(pool)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(migration_sql(
        "postgres",
        "0004_key_ids.sql",
    )))
    .execute(pool)
    .await
    .unwrap();
    let ids = read().await;
    check_rewritten(&ids);
    assert_eq!(ids[&5], "legacy-3", "{ids:?}");
}

#[tokio::test]
async fn sqlite_rows_lose_their_unsalted_key_hashes() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keyids-{}.sqlite3", uuid::Uuid::new_v4()));
    let old = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    SQLITE.run_to(SQLITE_BEFORE, &old).await.unwrap();
    for (id, minute) in OLD_ROWS {
        sqlx::query(INSERT_SQLITE)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(minute.to_string())
            .bind(id)
            .execute(&old)
            .await
            .unwrap();
    }
    old.close().await;

    // Opening the store applies the rest, as standalone mode does at start.
    let store = Store::sqlite(&path).await.unwrap();
    let Store::Sqlite(pool) = &store else {
        unreachable!()
    };
    let read = async || -> BTreeMap<i64, String> {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT CAST(round((julianday(created_at) - (SELECT min(julianday(created_at))
                    FROM completions)) * 1440) AS INTEGER), api_key_id FROM completions",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
    };
    check_rewritten(&read().await);

    sqlx::query(INSERT_SQLITE)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind("5")
        .bind("static-fedcba987654")
        .execute(pool)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(migration_sql(
        "sqlite",
        "0003_key_ids.sql",
    )))
    .execute(pool)
    .await
    .unwrap();
    let ids = read().await;
    check_rewritten(&ids);
    assert_eq!(ids[&5], "legacy-3", "{ids:?}");
    let _ = std::fs::remove_file(&path);
}
