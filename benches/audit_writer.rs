//! Audit writer throughput: records (one completion + its k = 5 miner rows) published to the
//! real JetStream audit stream, then drained by the audit writer into the real Postgres with
//! its default durability (synchronous commit). Prints records/s.
//!
//! Run: `cargo bench --bench audit_writer` (`-- --records N` to change the count, default
//! 50,000). Under `cargo test` it drains 300 records as a smoke test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use chrono::Utc;
use sn1_contracts::audit::{CompletionRecord, ContentPolicy, MinerResponseRecord};
use sn1_contracts::bus::{AuditQueueConfig, Bus, NatsBus, QueueConfig, Subjects};
use sn1_contracts::store::Store;
use sn1_worker::audit::{WriterConfig, run_writer};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn record(i: usize) -> CompletionRecord {
    let text = "A simulated answer of a typical length, streamed in chunks by a miner. ".repeat(4);
    let (messages, messages_sha256) =
        ContentPolicy::Full.keep_all(&[format!("benchmark question number {i}")]);
    CompletionRecord {
        request_id: uuid::Uuid::now_v7().to_string(),
        created_at: Utc::now(),
        api_key_id: "static-bench".into(),
        endpoint: "chat".into(),
        netuid: 1,
        k: 5,
        timeout_s: 10.0,
        strategy: "first".into(),
        sampling_mode: "random".into(),
        exclude: serde_json::json!([]),
        roles: vec!["user".into()],
        messages,
        messages_sha256,
        selected_uid: Some(3),
        completion: ContentPolicy::Full.keep(&text),
        status: "answered".into(),
        error: None,
        time_to_first_chunk_ms: Some(51.5),
        total_ms: 420.0,
        miners: (0..5)
            .map(|uid| MinerResponseRecord {
                uid,
                hotkey: format!("5SimulatedMinerHotkey{uid:02}"),
                outcome: if uid == 3 { "ok" } else { "cancelled" }.into(),
                status_code: Some(200),
                time_to_first_byte_ms: Some(50.0 + f64::from(uid)),
                total_ms: Some(400.0),
                chunks: 12,
                bytes: text.len() as u64,
                text: ContentPolicy::Full.keep(&text),
                clean_reason: None,
                selected: uid == 3,
                quality: Default::default(),
            })
            .collect(),
        traceparent: None,
        quality: Default::default(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let records: usize = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if benching { 50_000 } else { 300 });
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let subjects = Subjects::new(format!("abench{:08x}", rand::random::<u32>()));
    let config = QueueConfig {
        audit: AuditQueueConfig {
            max_bytes: 512 << 20,
            ..AuditQueueConfig::default()
        },
        ..QueueConfig::default()
    };
    let queue = Bus::Nats(
        NatsBus::connect(&nats, subjects.clone(), config)
            .await
            .expect("NATS"),
    );
    queue.ensure_audit_queue().await.expect("audit stream");

    let url = sn1_contracts::store::testing::fresh_database("abench")
        .await
        .expect("database");
    let store = Store::postgres(&url, 8).await.expect("pool");
    store.migrate().await.expect("migrate");
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");

    // Fill the stream first, so the drain measures the writer alone.
    let publish_start = Instant::now();
    let mut tasks = Vec::new();
    let per_task = records.div_ceil(16);
    for t in 0..16 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for i in t * per_task..((t + 1) * per_task).min(records) {
                queue.publish_audit(&record(i)).await.expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let published = publish_start.elapsed();

    let stop = CancellationToken::new();
    let start = Instant::now();
    let writer = tokio::spawn(run_writer(
        queue.clone(),
        store,
        WriterConfig::default(),
        stop.clone(),
    ));
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM completions")
            .fetch_one(&pool)
            .await
            .expect("count");
        if n as usize >= records {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "writer stalled at {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = start.elapsed();
    stop.cancel();
    let _ = writer.await;
    let miners: i64 = sqlx::query_scalar("SELECT count(*) FROM miner_responses")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(miners as usize, records * 5);
    // JetStream reserves the stream's max_bytes: give it back.
    let client = async_nats::connect(&nats).await.expect("NATS");
    let _ = async_nats::jetstream::new(client)
        .delete_stream(subjects.audit_stream())
        .await;
    println!(
        "audit writer: {records} records ({} miner rows) drained from JetStream into Postgres in {:.2} s = {:.0} records/s (publishing them took {:.2} s)",
        records * 5,
        drained.as_secs_f64(),
        records as f64 / drained.as_secs_f64(),
        published.as_secs_f64()
    );
}
