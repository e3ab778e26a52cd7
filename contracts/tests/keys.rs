//! Managed keys through the store seam, the same rules on both backends (real Postgres, and
//! SQLite in a temporary file): only a hash is kept, revocation and expiry, the requests-per-
//! minute bucket, answers in flight with leases (taken only for keys with that limit) that are
//! given back or expire, usage per key added in sums (with the README's query), and — on Postgres, where replicas share it — two pools admitting one
//! key's requests at once never pass its limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod support;

use chrono::Utc;
use sn1_contracts::store::keys::{Admission, KeyChange, KeyLimits, KeyUsage, NewKey, key_sha256};
use sn1_contracts::store::{Store, testing};
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

async fn postgres() -> (Store, String) {
    let url = testing::fresh_database("keys")
        .await
        .expect("test database");
    let store = Store::postgres(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    (store, url)
}

async fn sqlite(dir: &tempfile::TempDir) -> Store {
    Store::sqlite(&dir.path().join("keys.sqlite3"))
        .await
        .unwrap()
}

fn new_key(name: &str, rpm: Option<u32>, max_streams: Option<u32>) -> NewKey {
    NewKey {
        name: name.into(),
        limits: KeyLimits { rpm, max_streams },
        expires_at: None,
    }
}

async fn admit(store: &Store, key: &str) -> (Uuid, Admission) {
    let id = Uuid::now_v7();
    (
        id,
        store.admit_key(&key_sha256(key), id, LEASE).await.unwrap(),
    )
}

/// Every rule, on one backend.
async fn rules(store: &Store) {
    // Made once, listed without secrets, admitted by the key alone.
    let made = store
        .create_key(&new_key("team a", None, None))
        .await
        .unwrap();
    assert!(made.key.starts_with("sn1-"));
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed, vec![made.info.clone()]);
    assert!(!format!("{listed:?}").contains(&made.key));
    let (_, verdict) = admit(store, &made.key).await;
    assert_eq!(
        verdict,
        Admission::Admitted {
            key_id: made.info.id.clone(),
            leased: false,
            expires_at: None,
        }
    );
    let (_, verdict) = admit(store, "sn1-not-a-key").await;
    assert_eq!(verdict, Admission::Unknown);

    // Requests per minute: a bucket of 3, then a wait of about 20 s for the next.
    let limited = store
        .create_key(&new_key("rpm", Some(3), None))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(
            admit(store, &limited.key).await.1,
            Admission::Admitted { .. }
        ));
    }
    match admit(store, &limited.key).await.1 {
        Admission::OverRpm { retry_after, .. } => {
            assert!(
                retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
                "{retry_after:?}"
            );
        }
        other => panic!("4th of 3 rpm: {other:?}"),
    }
    // A changed limit holds at once (the bucket starts full), and no limit is no limit.
    let change = KeyChange {
        rpm: Some(Some(5)),
        ..KeyChange::default()
    };
    let changed = store
        .change_key(&limited.info.id, &change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.limits.rpm, Some(5));
    for _ in 0..5 {
        assert!(matches!(
            admit(store, &limited.key).await.1,
            Admission::Admitted { .. }
        ));
    }
    assert!(matches!(
        admit(store, &limited.key).await.1,
        Admission::OverRpm { .. }
    ));
    let unlimited = KeyChange {
        rpm: Some(None),
        ..KeyChange::default()
    };
    store
        .change_key(&limited.info.id, &unlimited)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..20 {
        assert!(matches!(
            admit(store, &limited.key).await.1,
            Admission::Admitted { .. }
        ));
    }

    // Answers in flight: two leases, a third refused until one is given back.
    let streams = store
        .create_key(&new_key("streams", None, Some(2)))
        .await
        .unwrap();
    let (first, verdict) = admit(store, &streams.key).await;
    assert!(matches!(verdict, Admission::Admitted { leased: true, .. }));
    admit(store, &streams.key).await;
    assert_eq!(
        admit(store, &streams.key).await.1,
        Admission::OverStreams {
            key_id: streams.info.id.clone()
        }
    );
    store.release_lease(first).await.unwrap();
    // Usage arrives in sums (a key that does not exist is skipped).
    let usage = KeyUsage {
        requests: 1,
        streams: 1,
        est_tokens: 42,
    };
    let sums = [
        (streams.info.id.clone(), usage),
        ("key-gone".to_string(), usage),
    ];
    store.add_key_usage(&sums).await.unwrap();
    assert!(matches!(
        admit(store, &streams.key).await.1,
        Admission::Admitted { .. }
    ));
    // A lease whose replica died expires by itself.
    let once = store
        .create_key(&new_key("one", None, Some(1)))
        .await
        .unwrap();
    let short = Duration::from_millis(300);
    store
        .admit_key(&key_sha256(&once.key), Uuid::now_v7(), short)
        .await
        .unwrap();
    assert!(matches!(
        admit(store, &once.key).await.1,
        Admission::OverStreams { .. }
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        admit(store, &once.key).await.1,
        Admission::Admitted { .. }
    ));

    // Revoked and expired keys are refused by name.
    let revoked = store.revoke_key(&made.info.id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        admit(store, &made.key).await.1,
        Admission::Revoked {
            key_id: made.info.id.clone()
        }
    );
    assert!(store.revoke_key("key-nosuchkey").await.unwrap().is_none());
    let mut old = new_key("old", None, None);
    old.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
    let old = store.create_key(&old).await.unwrap();
    assert_eq!(
        admit(store, &old.key).await.1,
        Admission::Expired {
            key_id: old.info.id.clone()
        }
    );

    // An admission says when the key expires (a replica remembers it for an outage).
    let mut later = new_key("later", None, None);
    later.expires_at = Some(Utc::now() + chrono::Duration::hours(1));
    let later = store.create_key(&later).await.unwrap();
    let Admission::Admitted { expires_at, .. } = admit(store, &later.key).await.1 else {
        panic!("a key expiring in an hour is admitted");
    };
    assert_eq!(expires_at, later.info.expires_at);
    assert!(expires_at.is_some());

    // Bad limits are refused with their name.
    let zero = store
        .create_key(&new_key("zero", Some(0), None))
        .await
        .unwrap_err();
    assert!(zero.to_string().contains("rpm"), "{zero}");
}

#[tokio::test]
async fn sqlite_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    rules(&sqlite(&dir).await).await;
}

#[tokio::test]
async fn postgres_keeps_the_rules_and_counts_usage_with_the_readme_query() {
    let (store, url) = postgres().await;
    rules(&store).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let sql = support::readme_queries()
        .remove("usage_per_key")
        .expect("README has the usage_per_key query");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&pool)
        .await
        .unwrap();
    let streams = rows
        .iter()
        .find(|r| r.get::<String, _>("name") == "streams")
        .expect("a row for the key named streams");
    assert_eq!(streams.get::<i64, _>("requests"), 1);
    assert_eq!(streams.get::<i64, _>("streams"), 1);
    assert_eq!(streams.get::<i64, _>("est_tokens"), 42);
    assert_eq!(streams.get::<i64, _>("rejected"), 1);
    let rpm = rows
        .iter()
        .find(|r| r.get::<String, _>("name") == "rpm")
        .unwrap();
    assert_eq!(rpm.get::<i64, _>("rejected"), 2);
}

/// The api's own role (`deploy/postgres/api-role.sql`) is enough for every key rule.
#[tokio::test]
async fn the_api_role_keeps_the_rules() {
    let (_owner, url) = postgres().await;
    let (role, role_url) = testing::api_role(&url).await.unwrap();
    let store = Store::postgres(&role_url, 4).await.unwrap();
    store.check_migrations().await.unwrap();
    rules(&store).await;
    testing::drop_role(&url, &role).await.unwrap();
}

/// Two replicas (two pools) admit one key's 40 requests at once: exactly its 10 pass.
#[tokio::test]
async fn two_pools_at_once_never_pass_the_limit() {
    let (store, url) = postgres().await;
    let other = Store::postgres(&url, 4).await.unwrap();
    let key = store
        .create_key(&new_key("fleet", Some(10), None))
        .await
        .unwrap()
        .key;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let key = key.clone();
            tokio::spawn(async move { admit(&store, &key).await.1 })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Admission::Admitted { .. }) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
}
