//! `sn1-gateway` with no arguments is `standalone --simnet`: it makes up a key, prints a
//! ready-to-paste curl, syncs the metagraph from its in-process fake chain into SQLite, answers
//! the curl from in-process simulated miners, and keeps the audit log in SQLite too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_arguments_runs_standalone_simnet_and_audits_into_sqlite() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let proc = Proc::start(
        "standalone-noargs",
        &[],
        &[
            ("PORT", port.to_string()),
            ("DATA_DIR", data.path().display().to_string()),
            // No wallet anywhere: simnet mode must not need one.
            (
                "BT_WALLET_PATH",
                data.path().join("no-wallets").display().to_string(),
            ),
        ],
    );
    wait_ok(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(30),
    )
    .await;
    // The banner names the made-up key and the curl to paste.
    let start = Instant::now();
    let key = loop {
        let log = proc.log_text();
        if let Some(line) = log.lines().find(|l| l.starts_with("API key: ")) {
            assert!(
                log.contains(&format!(
                    "curl --no-buffer -X POST http://127.0.0.1:{port}/chat/"
                )),
                "{log}"
            );
            break line.trim_start_matches("API key: ").trim().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no banner: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(key.starts_with("sn1-") && key.len() > 20, "{key}");

    let out = post_ndjson(
        &format!("http://127.0.0.1:{port}/chat/"),
        &key,
        &seed_request(),
    )
    .await;
    assert_eq!(out.status, 200, "{}", proc.log_text());
    let (text, uid) = check_stream_events(&out.events);
    assert!(text.starts_with(&format!("Miner {uid} answers:")), "{text}");
    let wrong = post_ndjson(
        &format!("http://127.0.0.1:{port}/chat/"),
        "wrong",
        &seed_request(),
    )
    .await;
    assert_eq!(wrong.status, 401);

    // The audit record lands in SQLite.
    let db = data.path().join("sn1.sqlite3");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let id = out.request_id.expect("x-request-id");
    let start = Instant::now();
    loop {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT status, (SELECT count(*) FROM miner_responses m WHERE m.request_id = c.request_id) FROM completions c WHERE request_id = ?",
        )
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some((status, miners)) = row {
            assert_eq!(status, "answered");
            assert_eq!(miners, 5);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no audit row for {id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
