//! The answer-quality columns (migration 0006) on the real Postgres: the audit writer's insert
//! keeps the scores used, the commit point, failovers and per-reply verdicts; the README's
//! answer-quality queries return the right rows; the workers' grouped score query reads them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use chrono::{Duration, Utc};
use sn1_contracts::audit::{
    CompletionRecord, ContentPolicy, MinerQuality, MinerResponseRecord, QualityRecord,
};
use sn1_contracts::store::{self, Store};
use sqlx::Row;

/// The README query named `name` (its `-- query: <name>` first line).
fn readme_query(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    readme
        .split("```sql")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().trim().to_string())
        .find(|sql| sql.lines().next() == Some(&format!("-- query: {name}")))
        .unwrap_or_else(|| panic!("README has no query {name}"))
}

fn miner(uid: u16, verdict: &str, continuation: bool) -> MinerResponseRecord {
    MinerResponseRecord {
        uid,
        hotkey: format!("5Hotkey{uid}"),
        outcome: "ok".into(),
        status_code: Some(200),
        time_to_first_byte_ms: Some(20.0 * f64::from(uid)),
        total_ms: Some(400.0),
        chunks: 3,
        bytes: 42,
        text: ContentPolicy::Full.keep("an answer"),
        clean_reason: None,
        selected: verdict == "usable",
        quality: MinerQuality {
            axon: Some(format!("10.0.0.{uid}:8091")),
            verdict: Some(verdict.into()),
            continuation,
        },
    }
}

fn record(failover: bool) -> CompletionRecord {
    let (messages, messages_sha256) = ContentPolicy::Full.keep_all(&["question".to_string()]);
    CompletionRecord {
        request_id: uuid::Uuid::now_v7().to_string(),
        created_at: Utc::now() - Duration::minutes(2),
        api_key_id: "key".into(),
        endpoint: "chat".into(),
        netuid: 1,
        k: 2,
        timeout_s: 10.0,
        strategy: "first".into(),
        sampling_mode: "reliable".into(),
        exclude: serde_json::json!([]),
        roles: vec!["user".into()],
        messages,
        messages_sha256,
        selected_uid: Some(if failover { 3 } else { 1 }),
        completion: ContentPolicy::Full.keep("an answer"),
        status: "answered".into(),
        error: None,
        time_to_first_chunk_ms: Some(30.0),
        total_ms: 500.0,
        miners: if failover {
            vec![
                miner(1, "stalled", false),
                miner(2, "unknown", false),
                miner(3, "usable", true),
            ]
        } else {
            vec![miner(1, "usable", false), miner(2, "unusable", false)]
        },
        traceparent: None,
        quality: QualityRecord {
            selection: serde_json::json!([
                {"uid": 1, "score": 0.93, "judged": 12.5, "explored": false},
                {"uid": 2, "score": null, "judged": 0.0, "explored": true},
            ]),
            commit_uid: Some(1),
            commit_chars: Some(48),
            commit_ms: Some(30.0),
            failovers: if failover {
                serde_json::json!([{"from_uid": 1, "to_uid": 3,
                    "reason": "stalled: no text for 1500 ms after 48 characters",
                    "at_chars": 48, "gap_ms": 1612.5}])
            } else {
                serde_json::Value::Null
            },
        },
    }
}

#[tokio::test]
async fn quality_columns_are_stored_and_the_readme_queries_read_them() {
    let url = store::testing::fresh_database("quality")
        .await
        .expect("test database");
    let store = Store::postgres(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let records = [record(true), record(false), record(false)];
    let refs: Vec<&CompletionRecord> = records.iter().collect();
    assert_eq!(store.insert_audit(&refs).await.unwrap(), 3);
    let Store::Postgres(pool) = store.clone() else {
        unreachable!("a Postgres store")
    };

    let rows = sqlx::query(sqlx::AssertSqlSafe(readme_query("failovers_last_hour")))
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<Option<String>, _>("continued_by").as_deref(),
        Some("3")
    );
    assert_eq!(rows[0].get::<i32, _>("commit_chars"), 48);

    let rows = sqlx::query(sqlx::AssertSqlSafe(readme_query(
        "miner_reliability_last_hour",
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let by_uid: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get("hotkey"), r.get("judged"), r.get("stalls")))
        .collect();
    assert_eq!(by_uid[0], ("5Hotkey3".into(), 1, 0), "most usable first");
    assert!(by_uid.contains(&("5Hotkey1".into(), 3, 1)));

    let id = uuid::Uuid::parse_str(&records[0].request_id).unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(readme_query("scores_used")))
        .bind(id)
        .fetch_all(&pool)
        .await
        .unwrap();
    let picks: Vec<(String, Option<f64>, bool)> = rows
        .iter()
        .map(|r| (r.get("uid"), r.get("score"), r.get("explored")))
        .collect();
    assert_eq!(
        picks,
        vec![("1".into(), Some(0.93), false), ("2".into(), None, true)]
    );

    // The workers' score query: judged replies only, per miner, verdict and minute.
    let buckets = store
        .verdict_buckets(Utc::now() - Duration::minutes(30))
        .await
        .unwrap();
    let stalled: i64 = buckets
        .iter()
        .filter(|b| b.verdict == "stalled")
        .map(|b| b.replies)
        .sum();
    assert_eq!(stalled, 1);
    assert!(buckets.iter().all(|b| b.verdict != "unknown"));
    assert!(buckets.iter().all(|b| b.axon.starts_with("10.0.0.")));
}
