//! The audit store against the real Postgres: batch inserts are idempotent, retention prunes
//! content, and every query of the README's "Querying completions" section returns the right
//! rows on seeded data (the queries are read from the README, so it cannot drift).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use chrono::{Duration, Utc};
use sn1_contracts::audit::{CompletionRecord, ContentPolicy, Kept, MinerResponseRecord};
use sn1_contracts::store::{self, Store};
use sqlx::{PgPool, Row};
use std::collections::HashMap;

mod support;
use support::readme_queries;

fn miner(uid: u16, outcome: &str, ttfb: Option<f64>, selected: bool) -> MinerResponseRecord {
    MinerResponseRecord {
        uid,
        hotkey: format!("5Hotkey{uid}"),
        outcome: outcome.into(),
        status_code: Some(200),
        time_to_first_byte_ms: ttfb,
        total_ms: ttfb.map(|t| t + 100.0),
        chunks: 3,
        bytes: 42,
        text: ContentPolicy::Full.keep(if outcome == "empty" { "" } else { "an answer" }),
        clean_reason: (outcome == "empty").then(|| "empty".to_string()),
        selected,
        quality: Default::default(),
    }
}

fn record(age: Duration, key: &str, i: u32) -> CompletionRecord {
    let (messages, messages_sha256) = ContentPolicy::Full.keep_all(&[format!("question {i}")]);
    CompletionRecord {
        request_id: uuid::Uuid::now_v7().to_string(),
        created_at: Utc::now() - age,
        api_key_id: key.into(),
        endpoint: "chat".into(),
        netuid: 1,
        k: 4,
        timeout_s: 10.0,
        strategy: "first".into(),
        sampling_mode: "random".into(),
        exclude: serde_json::json!([]),
        roles: vec!["user".into()],
        messages,
        messages_sha256,
        selected_uid: Some(1),
        completion: ContentPolicy::Full.keep("an answer"),
        status: "answered".into(),
        error: None,
        time_to_first_chunk_ms: Some(20.0 + f64::from(i)),
        total_ms: 300.0,
        miners: vec![
            miner(1, "ok", Some(10.0 + f64::from(i)), true),
            miner(2, "empty", Some(40.0), false),
            miner(3, "ok", Some(500.0 + f64::from(i) * 10.0), false),
            miner(4, "connect_failure", None, false),
        ],
        traceparent: None,
        quality: Default::default(),
    }
}

async fn seeded() -> (Store, PgPool, Vec<CompletionRecord>) {
    let url = store::testing::fresh_database("audit")
        .await
        .expect("test database");
    let store = Store::postgres(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pool) = store.clone() else {
        unreachable!("a Postgres store")
    };
    let mut records: Vec<CompletionRecord> = (0..6)
        .map(|i| record(Duration::minutes(5), "key-a", i))
        .collect();
    records.extend((0..2).map(|i| record(Duration::minutes(10), "key-b", i)));
    // Two hours old: outside every "last hour" query.
    records.extend((0..3).map(|i| record(Duration::hours(2), "key-a", i)));
    let refs: Vec<&CompletionRecord> = records.iter().collect();
    assert_eq!(store.insert_audit(&refs).await.unwrap(), 11);
    (store, pool, records)
}

#[tokio::test]
async fn inserts_are_idempotent() {
    let (store, pool, records) = seeded().await;
    let refs: Vec<&CompletionRecord> = records.iter().collect();
    // A redelivered batch (and a partly new one) never duplicates a row.
    assert_eq!(store.insert_audit(&refs[..5]).await.unwrap(), 0);
    let extra = record(Duration::minutes(1), "key-c", 99);
    assert_eq!(store.insert_audit(&[&extra, refs[0]]).await.unwrap(), 1);
    let completions: i64 = sqlx::query_scalar("SELECT count(*) FROM completions")
        .fetch_one(&pool)
        .await
        .unwrap();
    let miners: i64 = sqlx::query_scalar("SELECT count(*) FROM miner_responses")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((completions, miners), (12, 48));
    let row = sqlx::query("SELECT messages, completion, k_asked, api_key_id FROM completions WHERE request_id = $1::uuid")
        .bind(&extra.request_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        row.get::<serde_json::Value, _>("messages"),
        serde_json::json!(["question 99"])
    );
    assert_eq!(
        row.get::<Option<String>, _>("completion").as_deref(),
        Some("an answer")
    );
    assert_eq!(row.get::<i32, _>("k_asked"), 4);
}

#[tokio::test]
async fn retention_prunes_content_but_keeps_hashes_and_timings() {
    let (store, pool, _) = seeded().await;
    let pruned = store
        .prune_audit_content(Utc::now() - Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(pruned, 3);
    let rows = sqlx::query(
        "SELECT messages IS NULL AS gone, messages_sha256 IS NOT NULL AS hashed, total_ms
         FROM completions WHERE created_at < now() - interval '1 hour'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert!(r.get::<bool, _>("gone") && r.get::<bool, _>("hashed"));
        assert_eq!(r.get::<f64, _>("total_ms"), 300.0);
    }
    let texts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM miner_responses WHERE text IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(texts, 8 * 4, "recent rows keep their text");
    // The hash policy never had content in the first place.
    let kept = ContentPolicy::Hash.keep("secret prompt");
    assert!(kept.text.is_none() && kept.sha256.as_deref().is_some_and(|h| h.len() == 64));
    assert_eq!(ContentPolicy::None.keep("x"), Kept::default());
}

#[tokio::test]
async fn the_readme_queries_return_the_right_rows() {
    let (_store, pool, records) = seeded().await;
    let queries = readme_queries();
    for name in queries.keys() {
        assert!(
            support::TESTED_QUERIES.contains(&name.as_str()),
            "README query {name} is run by no test"
        );
    }

    let rows = sqlx::query(sqlx::AssertSqlSafe(
        queries["miner_health_last_hour"].clone(),
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let by_uid: HashMap<i32, &sqlx::postgres::PgRow> =
        rows.iter().map(|r| (r.get("uid"), r)).collect();
    assert_eq!(by_uid.len(), 4);
    let num = |r: &sqlx::postgres::PgRow, c: &str| -> f64 {
        r.get::<sqlx::types::BigDecimal, _>(c)
            .to_string()
            .parse()
            .unwrap()
    };
    assert_eq!(
        by_uid[&1].get::<i64, _>("replies"),
        8,
        "old rows are not in the last hour"
    );
    assert_eq!(num(by_uid[&1], "success_rate"), 1.0);
    assert_eq!(num(by_uid[&2], "empty_rate"), 1.0);
    assert_eq!(num(by_uid[&2], "success_rate"), 0.0);
    assert_eq!(num(by_uid[&4], "success_rate"), 0.0);
    let p50: f64 = by_uid[&1].get("ttfb_p50_ms");
    assert_eq!(p50, 11.5, "median of 10, 10, 11, 11, 12, 13, 14, 15");
    assert!(by_uid[&4].get::<Option<f64>, _>("ttfb_p50_ms").is_none());
    assert_eq!(rows[0].get::<i32, _>("uid"), 1, "healthiest first");

    let rows = sqlx::query(sqlx::AssertSqlSafe(
        queries["slowest_miners_last_hour"].clone(),
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let uids: Vec<i32> = rows.iter().map(|r| r.get("uid")).collect();
    assert_eq!(uids, vec![3, 2, 1]);
    let p95: f64 = rows[0].get("ttfb_p95_ms");
    assert!(p95 >= 540.0, "{p95}");

    let rows = sqlx::query(sqlx::AssertSqlSafe(queries["volume_per_api_key"].clone()))
        .fetch_all(&pool)
        .await
        .unwrap();
    let volume: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get("api_key_id"), r.get("status"), r.get("requests")))
        .collect();
    assert_eq!(
        volume,
        vec![
            ("key-a".into(), "answered".into(), 9),
            ("key-b".into(), "answered".into(), 2)
        ]
    );

    let id = uuid::Uuid::parse_str(&records[0].request_id).unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(queries["one_request_fan_out"].clone()))
        .bind(id)
        .fetch_all(&pool)
        .await
        .unwrap();
    let fan: Vec<(i32, String, bool)> = rows
        .iter()
        .map(|r| (r.get("uid"), r.get("outcome"), r.get("selected")))
        .collect();
    assert_eq!(
        fan,
        vec![
            (1, "ok".into(), true),
            (2, "empty".into(), false),
            (3, "ok".into(), false),
            (4, "connect_failure".into(), false)
        ]
    );
}
