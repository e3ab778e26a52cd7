//! The Grafana dashboard (`deploy/grafana/sn1-gateway.json`) names only metrics the gateway
//! exposes: real api and worker processes (with an audit writer on a fresh Postgres database)
//! serve a few requests, their `/metrics` are scraped, and every `sn1_*` name in the
//! dashboard's queries must be among the scraped series.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Every `sn1_*` metric name in the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/sn1-gateway.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("sn1_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

/// The series names in a Prometheus text body.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// The series of `url`'s `/metrics` (none when it does not answer 200).
async fn scrape(url: &str) -> BTreeSet<String> {
    match reqwest::get(url).await {
        Ok(r) if r.status() == 200 => exposed(&r.text().await.unwrap_or_default()),
        _ => BTreeSet::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_on_the_dashboard_is_exposed() {
    let wanted = dashboard_metrics();
    assert!(wanted.len() >= 10, "{wanted:?}");
    let dir = tempfile::tempdir().unwrap();
    let (_fleet, mg) = simple_fleet(3, dir.path()).await;
    let db = migrated_database("dashboard").await;
    // The api serves /metrics on its ops port (OPS_PORT) where it has one.
    let api_ops = free_port();
    let stack = Stack::start_with(
        "dash",
        &mg,
        1,
        1,
        &[("DATABASE_URL", db.clone())],
        &[("OPS_PORT", api_ops.to_string())],
    )
    .await;
    let body = json!({"k": 3, "timeout": 15, "roles": ["user"], "messages": ["Hello there"]});
    for _ in 0..3 {
        let answer = post_ndjson(&stack.api(0, "/chat/"), &stack.key, &body).await;
        assert_eq!(answer.status, 200, "{}", stack.logs());
    }
    // One refused request, so the error counter has a series.
    let refused = post_ndjson(&stack.api(0, "/chat/"), "wrong key", &body).await;
    assert_eq!(refused.status, 401);

    let worker = format!("http://127.0.0.1:{}/metrics", stack.worker_ops_ports[0]);
    let api = [
        format!("http://127.0.0.1:{api_ops}/metrics"),
        stack.api(0, "/metrics"),
    ];
    let started = Instant::now();
    let mut have;
    loop {
        have = scrape(&worker).await;
        for url in &api {
            have.extend(scrape(url).await);
        }
        let missing: Vec<_> = wanted.difference(&have).collect();
        if missing.is_empty() {
            break;
        }
        // The audit writer commits in the background: give it a moment.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dashboard names metrics no process exposes: {missing:?}\nexposed: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
