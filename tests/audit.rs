//! The audit log's durable path, end to end with real processes: worker → JetStream → audit
//! writer → Postgres, and nothing lost while the writer is cut off from Postgres.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::json;
use sn1_simnet::fleet::Fleet;
use sn1_simnet::miner::{SimMinerConfig, sim_hotkey};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn wait_for_completions(
    pool: &sqlx::PgPool,
    n: i64,
    within: Duration,
    logs: impl Fn() -> String,
) {
    let start = Instant::now();
    loop {
        let have = count(pool, "SELECT count(*) FROM completions").await;
        if have >= n {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{have} of {n} audit records after {within:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_postgres_exactly_once_across_an_outage() {
    let (url, pool) = migrated("durable").await;

    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let proxied = url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let configs = (0..3)
        .map(|uid| SimMinerConfig::new(uid, sim_hotkey(uid).unwrap()))
        .collect();
    let fleet = Fleet::start_with(configs).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start(
        "audit",
        &mg,
        1,
        1,
        &[
            ("DATABASE_URL", proxied),
            ("AUDIT_STREAM_MAX_BYTES", (64 << 20).to_string()),
        ],
    )
    .await;

    let mut ids = BTreeSet::new();
    let ask = |i: usize| {
        let (url, key) = (stack.api(0, "/chat"), stack.key.clone());
        async move {
            let body = json!({"k": 2, "prefer": "longest", "roles": ["user"], "messages": [format!("q{i}")]});
            let out = post_ndjson(&url, &key, &body).await;
            assert_eq!(out.status, 200);
            check_stream_events(&out.events);
            out.request_id.expect("x-request-id")
        }
    };
    for i in 0..10 {
        ids.insert(ask(i).await);
    }
    wait_for_completions(&pool, 10, Duration::from_secs(20), || stack.logs()).await;

    // Cut the writer off from Postgres; chat keeps answering.
    proxy.cut();
    for i in 10..25 {
        ids.insert(ask(i).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM completions").await,
        10,
        "the cut did not cut"
    );

    proxy.restore().await;
    wait_for_completions(&pool, 25, Duration::from_secs(30), || stack.logs()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored: BTreeSet<String> = sqlx::query_scalar("SELECT request_id::text FROM completions")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored, ids, "every request exactly once");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM miner_responses").await,
        50
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM miner_responses WHERE selected").await,
        25
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM completions WHERE status = 'answered' AND completion LIKE 'Miner % answers: %' AND api_key_id LIKE 'kid-%'").await,
        25
    );
    // The key itself is never stored (keys here are `key-<prefix>`; ids `kid-<hmac>`).
    let leaked = count(
        &pool,
        "SELECT count(*) FROM completions WHERE api_key_id LIKE 'key-%'",
    )
    .await;
    assert_eq!(leaked, 0);

    // A NUL character (valid JSON and UTF-8, refused by Postgres text/jsonb) in the prompt —
    // which the simulated miners also echo back — neither loses the record nor stalls the
    // writer.
    let body = json!({"k": 2, "roles": ["user"], "messages": ["nul\u{0}here"]});
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
    assert_eq!(out.status, 200);
    wait_for_completions(&pool, 26, Duration::from_secs(20), || stack.logs()).await;
    let stored: String =
        sqlx::query_scalar("SELECT messages->>0 FROM completions WHERE request_id = $1::uuid")
            .bind(out.request_id.expect("x-request-id"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, "nul\u{FFFD}here");
}

/// A migrated fresh database and a pool on it (the README's way: `sn1-gateway migrate`).
async fn migrated(tag: &str) -> (String, sqlx::PgPool) {
    let url = sn1_contracts::store::testing::fresh_database(tag)
        .await
        .unwrap();
    let out = tokio::process::Command::new(bin())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    (url, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_for_nats_is_cut_and_stored() {
    // A prompt of 170,000 control characters (six bytes each in JSON: the most a 1 MiB body
    // allows) with 1,000 exclusions, to a hostile miner answering 100,000 more: the record would
    // be ~1.1 MB, over NATS's 1 MB limit, and used to go unaudited. It is cut to fit, marked,
    // and stored.
    let (url, pool) = migrated("bigrec").await;
    let mut miner = SimMinerConfig::new(0, sim_hotkey(0).unwrap());
    miner.reply.text = Some("\u{1}".repeat(100_000));
    let fleet = Fleet::start_with(vec![miner]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let env = [
        ("DATABASE_URL", url),
        ("AUDIT_STREAM_MAX_BYTES", (64 << 20).to_string()),
    ];
    let stack = Stack::start("bigrec", &mg, 1, 1, &env).await;
    let prompt = "\u{1}".repeat(170_000);
    let exclude: Vec<u32> = (1000..2000).collect();
    let body = json!({"k": 1, "roles": ["user"], "messages": [prompt], "exclude": exclude});
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
    assert_eq!(out.status, 200);
    wait_for_completions(&pool, 1, Duration::from_secs(20), || stack.logs()).await;
    let (message, completion, excluded): (String, String, i32) = sqlx::query_as(
        "SELECT messages->>0, coalesce(completion, ''), jsonb_array_length(exclude) FROM completions",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let marker = sn1_contracts::audit::CUT_MARKER;
    let cut = [&message, &completion]
        .iter()
        .filter(|t| t.ends_with(marker))
        .count();
    assert!(
        cut > 0,
        "a cut text is marked: message {} completion {} bytes\n{}",
        message.len(),
        completion.len(),
        stack.logs()
    );
    assert!(message.len() < prompt.len());
    assert_eq!(
        excluded as usize,
        sn1_contracts::audit::MAX_EXCLUDE_KEPT + 1,
        "kept exclusions plus their count"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM miner_responses").await,
        1,
        "the miner's row is kept"
    );
}
