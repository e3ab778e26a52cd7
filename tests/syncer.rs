//! The metagraph path with real processes, as the README runs it: `sn1-gateway simnet` (miners
//! and the fake Subtensor node) → `migrate` → `metagraph-syncer` → Postgres → `worker` (no
//! metagraph file) → `api` → a streamed answer from a simulated miner. Plus two syncers at once
//! (one writer, no duplicate block, the standby takes over) and the chain going away (the last
//! snapshot stays). Real NATS on 127.0.0.1:4222 and Postgres on 127.0.0.1:5432.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs `sn1-gateway <args>` to its end (at most `within`); returns success and the log.
async fn run_to_end(
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
    within: Duration,
) -> (bool, String) {
    let mut p = Proc::start(name, args, env);
    let status = tokio::time::timeout(within, p.child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {within:?}: {}", p.log_text()))
        .expect("wait");
    (status.success(), p.log_text())
}

/// Starts `simnet` with its fake chain on a free port; returns it and the chain's ws URL.
async fn simnet(name: &str, miners: &str, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let port_s = port.to_string();
    let mut args = vec![
        "simnet",
        "--miners",
        miners,
        "--misbehaving",
        "0",
        "--chain-port",
        &port_s,
    ];
    args.extend_from_slice(extra);
    let p = Proc::start(name, &args, &[]);
    let start = Instant::now();
    while !p.log_text().contains("fake chain: ws://") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "simnet: {}",
            p.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (p, format!("ws://127.0.0.1:{port}"))
}

fn logs(procs: &[Proc]) -> String {
    procs
        .iter()
        .map(|p| p.log_text())
        .collect::<Vec<_>>()
        .join("\n====\n")
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn worker_env(prefix: &str, db: &str, ops: u16) -> Vec<(&'static str, String)> {
    vec![
        ("NATS_URL", nats_url()),
        ("NATS_PREFIX", prefix.to_string()),
        ("OPS_PORT", ops.to_string()),
        ("DATABASE_URL", db.to_string()),
        // JetStream reserves the audit stream's whole max_bytes: keep tests small.
        ("AUDIT_STREAM_MAX_BYTES", (64u64 << 20).to_string()),
        ("BT_WALLET_PATH", wallets().display().to_string()),
        ("BT_WALLET_NAME", "sn1-validator".into()),
        ("BT_WALLET_HOTKEY", "default".into()),
        // The fake chain lists its miners on loopback, refused from the chain unless allowed.
        ("AXON_ALLOW", "127.0.0.0/8".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simnet_chain_through_syncer_and_postgres_to_a_streamed_answer() {
    let db = sn1_contracts::store::testing::fresh_database("e2esync")
        .await
        .expect("Postgres on 127.0.0.1:5432 (scripts/services.sh)");
    let prefix = unique_prefix("mg");
    let (_simnet, chain) = simnet("sync-simnet", "4", &[]).await;
    let db_env = vec![("DATABASE_URL", db.clone())];

    // Before `migrate`, the syncer and the worker refuse to start, and say why.
    let (ok, log) = run_to_end(
        "sync-nomig",
        &["metagraph-syncer", "--subtensor.network", &chain, "--once"],
        &db_env,
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok && log.contains("sn1-gateway migrate"), "{log}");
    let (ok, log) = run_to_end(
        "worker-nomig",
        &["worker"],
        &worker_env(&prefix, &db, free_port()),
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok && log.contains("sn1-gateway migrate"), "{log}");

    let (ok, log) = run_to_end(
        "sync-migrate",
        &["migrate"],
        &db_env,
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{log}");

    // A worker started before the first snapshot: up, but not ready (no neurons).
    let ops = free_port();
    let worker = Proc::start("sync-worker", &["worker"], &worker_env(&prefix, &db, ops));
    let readyz = format!("http://127.0.0.1:{ops}/readyz");
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(&readyz).await {
            assert_eq!(r.status(), 503, "{}", worker.log_text());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One sync: the snapshot is stored and the worker, told on NATS, becomes ready.
    let mut env = db_env.clone();
    env.push(("NATS_URL", nats_url()));
    env.push(("NATS_PREFIX", prefix.clone()));
    let (ok, log) = run_to_end(
        "sync-once",
        &[
            "metagraph-syncer",
            "--subtensor.network",
            &chain,
            "--netuid",
            "1",
            "--once",
        ],
        &env,
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{log}");
    assert!(log.contains("stored (4 neurons, 4 serving"), "{log}");
    let notified = Instant::now();
    wait_ok(&readyz, Duration::from_secs(20)).await;
    assert!(
        notified.elapsed() < Duration::from_secs(20),
        "reload came from the notification, not the 30 s poll"
    );
    assert!(
        worker
            .log_text()
            .contains("metagraph loaded from the store")
    );

    let store = sn1_contracts::store::Store::postgres(&db, 2).await.unwrap();
    let (info, mg) = store
        .latest_metagraph(1)
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(mg.neurons.len(), 4);
    assert!(info.block > 100_000_000, "clock blocks: {}", info.block);
    assert!(
        mg.neurons
            .iter()
            .all(|n| n.axon_ip == "127.0.0.1" && n.axon_port != 0)
    );

    // The api: a /chat request streams a simulated miner's answer.
    let api_port = free_port();
    let key = format!("key-{prefix}");
    let _api = Proc::start(
        "sync-api",
        &["api"],
        &[
            ("NATS_URL", nats_url()),
            ("NATS_PREFIX", prefix.clone()),
            ("PORT", api_port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", key.clone()),
        ],
    );
    wait_ok(
        &format!("http://127.0.0.1:{api_port}/readyz"),
        Duration::from_secs(30),
    )
    .await;
    let out = post_ndjson(
        &format!("http://127.0.0.1:{api_port}/chat"),
        &key,
        &seed_request(),
    )
    .await;
    assert_eq!(out.status, 200, "{}", worker.log_text());
    let (text, uid) = check_stream_events(&out.events);
    assert!((0..4).contains(&uid), "selected uid {uid}");
    assert!(text.starts_with(&format!("Miner {uid} answers")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncers_share_one_lock_and_the_chain_going_away_keeps_the_snapshot() {
    let db = sn1_contracts::store::testing::fresh_database("twosync")
        .await
        .expect("Postgres on 127.0.0.1:5432");
    let db_env = vec![("DATABASE_URL", db.clone())];
    let (ok, log) = run_to_end(
        "two-migrate",
        &["migrate"],
        &db_env,
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{log}");
    let (simnet, chain) = simnet("two-simnet", "2", &["--block-time", "1s"]).await;

    let ops = [free_port(), free_port()];
    let mut syncers: Vec<Proc> = ops
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let mut env = db_env.clone();
            env.push(("OPS_PORT", port.to_string()));
            Proc::start(
                &format!("two-syncer{i}"),
                &[
                    "metagraph-syncer",
                    "--subtensor.network",
                    &chain,
                    "--interval",
                    "300ms",
                    "--max-backoff",
                    "1s",
                    "--stale-after",
                    "60s",
                ],
                &env,
            )
        })
        .collect();
    let store = sn1_contracts::store::Store::postgres(&db, 2).await.unwrap();
    let list = async || store.list_snapshots(1, 1000).await.unwrap();
    let start = Instant::now();
    while list().await.len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            logs(&syncers)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for port in ops {
        wait_ok(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(10),
        )
        .await;
    }
    let leaders = async || {
        let mut out = Vec::new();
        for port in ops {
            let (_, v) = get_json(&format!("http://127.0.0.1:{port}/readyz")).await;
            out.push(v["leader"] == true);
        }
        out
    };
    let now = leaders().await;
    assert_eq!(
        now.iter().filter(|l| **l).count(),
        1,
        "{now:?}\n{}",
        logs(&syncers)
    );
    let snaps = list().await;
    let mut blocks: Vec<u64> = snaps.iter().map(|s| s.block).collect();
    blocks.sort();
    blocks.dedup();
    assert_eq!(blocks.len(), snaps.len(), "a block stored twice");
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", ops[0]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sn1_metagraph_snapshot_age_seconds"),
        "{metrics}"
    );

    // The chain goes away: syncs fail and back off, the newest snapshot stays.
    simnet.terminate();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kept = list().await[0].clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(list().await[0], kept, "{}", logs(&syncers));
    let leader = if now[0] { 0 } else { 1 };
    let (status, v) = get_json(&format!("http://127.0.0.1:{}/readyz", ops[leader])).await;
    assert_eq!(status, 200, "snapshot still fresh: {v}");
    assert!(v["last_error"].is_string(), "{v}");
    for p in &mut syncers {
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "a syncer exited: {}",
            p.log_text()
        );
    }

    // The leader stops: the standby takes the lock.
    syncers[leader].terminate();
    let start = Instant::now();
    loop {
        let (_, v) = get_json(&format!("http://127.0.0.1:{}/readyz", ops[1 - leader])).await;
        if v["leader"] == true {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{v}\n{}",
            logs(&syncers)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
