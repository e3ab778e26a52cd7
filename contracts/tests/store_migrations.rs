//! The schema check every role runs at start, against the real Postgres.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use sn1_contracts::store::{self, Store, StoreError};

#[tokio::test]
async fn an_unmigrated_database_is_named_and_migrate_fixes_it() {
    let url = store::testing::fresh_database("mig")
        .await
        .expect("test database");
    let db = Store::postgres(&url, 2).await.unwrap();
    match db.check_migrations().await {
        Err(StoreError::NotMigrated(missing)) => assert!(missing.contains("1_init"), "{missing}"),
        other => panic!("expected NotMigrated, got {other:?}"),
    }
    let message = db.check_migrations().await.unwrap_err().to_string();
    assert!(message.contains("sn1-gateway migrate"), "{message}");
    db.migrate().await.unwrap();
    db.check_migrations().await.unwrap();
    // Applying twice is a no-op.
    db.migrate().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let err = Store::postgres("postgres://postgres@127.0.0.1:1/none", 1)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot reach the database"),
        "{err}"
    );
}
