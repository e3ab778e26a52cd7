//! The schema check every role runs at start, against the real Postgres.

use sn1_contracts::store::{self, StoreError};

#[tokio::test]
async fn an_unmigrated_database_is_named_and_migrate_fixes_it() {
    let url = store::testing::fresh_database("mig")
        .await
        .expect("test database");
    let pool = store::connect(&url, 2).await.unwrap();
    match store::check_migrations(&pool).await {
        Err(StoreError::NotMigrated(missing)) => assert!(missing.contains("1_init"), "{missing}"),
        other => panic!("expected NotMigrated, got {other:?}"),
    }
    let message = store::check_migrations(&pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("sn1-gateway migrate"), "{message}");
    store::migrate(&pool).await.unwrap();
    store::check_migrations(&pool).await.unwrap();
    // Applying twice is a no-op.
    store::migrate(&pool).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let err = store::connect("postgres://postgres@127.0.0.1:1/none", 1)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot reach the database"),
        "{err}"
    );
}
