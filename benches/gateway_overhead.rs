//! What the gateway adds to time-to-first-chunk and total time, versus asking the same
//! simulated miners directly with the same dendrite code, at 1, 16 and 64 concurrent streams
//! (k = 1 and k = 5), plus CPU per stream of the api and worker processes.
//!
//! api, worker and miners (`sn1-gateway simnet`) run as separate processes over the real
//! NATS JetStream (`NATS_URL`, default 127.0.0.1:4222). Run: `cargo bench --bench
//! gateway_overhead` (add `-- --quick` for a short run). Under `cargo test` it runs one tiny
//! round as a smoke test.
//!
//! Side by side with another build: `SN1_BASELINE_BIN=/path/to/old/sn1-gateway cargo bench
//! --bench gateway_overhead` starts that build's api and worker too (same miners, own NATS
//! prefix) and measures both in the same rounds, one row each. A third row is this build called
//! with a managed API key (`DATABASE_URL` on the api, a fresh database on the local Postgres):
//! what admitting a request through the store adds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use futures::StreamExt;
use serde_json::json;
use sn1_bittensor::dendrite::{
    Deadline, Dendrite, DendriteConfig, MinerProtocol, MinerTarget, Prompt,
};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::reply::ReplyLimits;
use sn1_bittensor::synapse::SynapseShape;
use sn1_contracts::metagraph::Metagraph;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{KEY, Sample, Sn1Gateway, ms, percentile, signed_ms, spawn_bin, summarize};
use tokio::process::Child;

mod support;

const MINERS: u16 = 16;
const FIRST_BYTE_MS: u64 = 50;
const CHUNK_GAP_MS: u64 = 5;

fn spawn(name: &str, args: &[&str], env: &[(&str, String)], logs: &Path) -> Child {
    spawn_bin(
        Path::new(env!("CARGO_BIN_EXE_sn1-gateway")),
        name,
        args,
        env,
        logs,
    )
}

async fn direct(dendrite: &Dendrite, targets: &[MinerTarget], prompt: &Prompt) -> Sample {
    let start = Instant::now();
    let protocol = MinerProtocol::Synapse(SynapseShape::Classic);
    let limits = ReplyLimits {
        first_byte_timeout: Duration::from_secs(10),
        max_bytes: 1 << 20,
    };
    let deadline = Deadline::after(Duration::from_secs(30));
    // Like the gateway's first-valid strategy: the earliest first chunk wins.
    let mut replies: futures::stream::FuturesUnordered<_> = targets
        .iter()
        .map(|t| {
            let mut reply = dendrite.query(t, prompt, &protocol, limits, deadline);
            async move {
                let first = reply.next_chunk().await.map(|_| start.elapsed());
                while reply.next_chunk().await.is_some() {}
                (first, start.elapsed())
            }
        })
        .collect();
    let mut best: Option<Sample> = None;
    while let Some((first, total)) = replies.next().await {
        if let Some(first) = first
            && best.as_ref().is_none_or(|b| first < b.first)
        {
            best = Some(Sample { first, total });
        }
    }
    best.expect("no direct answer")
}

async fn through_gateway(client: &reqwest::Client, url: &str, key: &str, k: usize) -> Sample {
    let start = Instant::now();
    let body =
        json!({"k": k, "timeout": 30, "roles": ["user"], "messages": ["benchmark question"]});
    let response = client
        .post(url)
        .header("api_key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut first = None;
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        buf.extend_from_slice(&chunk);
        if first.is_none()
            && buf.windows(9).any(|w| w == b"\"delta\":\"")
            && !buf.starts_with(b"\n")
        {
            first = Some(start.elapsed());
        }
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.contains("\"finish_reason\":\"finished\""),
        "no finished event: {text}"
    );
    Sample {
        first: first.expect("no chunk"),
        total: start.elapsed(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let quick = !benching || args.iter().any(|a| a == "--quick");
    let levels: Vec<usize> = if benching { vec![1, 16, 64] } else { vec![1] };
    let rounds = if quick { 3 } else { 20 };
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let logs = tempfile::tempdir().expect("tempdir");
    let mg_path = logs.path().join("mg.json");

    let _simnet = spawn(
        "simnet",
        &[
            "simnet",
            "--miners",
            &MINERS.to_string(),
            "--misbehaving",
            "0",
            "--first-byte-ms",
            &FIRST_BYTE_MS.to_string(),
            "--latency-spread-ms",
            "0",
            "--chunk-gap-ms",
            &CHUNK_GAP_MS.to_string(),
            "--metagraph-out",
            mg_path.to_str().expect("path"),
        ],
        &[],
        logs.path(),
    );
    for _ in 0..400 {
        if mg_path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metagraph = Metagraph::load(&mg_path).expect("simnet metagraph");
    let concurrency = [("WORKER_CONCURRENCY", "128".to_string())];
    let mut builds = vec![("this build", env!("CARGO_BIN_EXE_sn1-gateway").to_owned())];
    if let Ok(baseline) = std::env::var("SN1_BASELINE_BIN") {
        builds.push(("baseline", baseline));
    }
    let mut gateways = Vec::new();
    for (label, bin) in &builds {
        let bin = Path::new(bin);
        let g = Sn1Gateway::start(label, bin, &nats, &mg_path, logs.path(), &concurrency).await;
        gateways.push(g);
    }
    // This build again, called with a managed key: each request admitted through Postgres.
    match managed_key().await {
        Ok((database_url, key)) => {
            let bin = Path::new(env!("CARGO_BIN_EXE_sn1-gateway"));
            let place = (nats.as_str(), mg_path.as_path(), logs.path());
            let api_env = [("DATABASE_URL", database_url)];
            let mut g =
                Sn1Gateway::start_with("managed key", bin, place, &concurrency, &api_env).await;
            g.key = key;
            gateways.push(g);
        }
        Err(e) => println!("(no managed-key row: {e})"),
    }
    let seed: [u8; 32] = rand::random();
    let hotkey = Hotkey::from_seed_hex(&format!("0x{}", hex::encode(seed))).expect("key");
    let dendrite = Dendrite::new(
        hotkey,
        DendriteConfig {
            external_ip: "127.0.0.1".into(),
            connect_timeout: Duration::from_secs(3),
        },
    )
    .expect("dendrite");
    let targets: Vec<MinerTarget> = metagraph
        .neurons
        .iter()
        .map(|n| MinerTarget {
            uid: n.uid,
            ip: n.axon_ip.clone(),
            port: n.axon_port,
            hotkey: n.hotkey.clone(),
        })
        .collect();
    let prompt = Prompt {
        roles: vec!["user".into()],
        messages: vec!["benchmark question".into()],
        seed: None,
        sampling: Default::default(),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    // Warm up connections and caches on every path.
    for _ in 0..3 {
        for g in &gateways {
            through_gateway(&client, &g.url, &g.key, 1).await;
        }
        direct(&dendrite, &targets[..1], &prompt).await;
    }

    println!(
        "miners: {MINERS} simulated (first byte {FIRST_BYTE_MS} ms, chunks {CHUNK_GAP_MS} ms apart), {rounds} requests per stream"
    );
    println!(
        "| k | streams | build | direct TTFC p50/p99 ms | gateway TTFC p50/p99 ms | added TTFC p50/p99 ms | added total p50/p99 ms | CPU ms/stream api + worker |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for k in [1usize, 5] {
        for &streams in &levels {
            let mut direct_samples = Vec::new();
            // Direct, then through the gateway, with the same concurrency.
            let tasks: Vec<_> = (0..streams)
                .map(|s| {
                    let d = dendrite.clone();
                    let t: Vec<MinerTarget> = (0..k)
                        .map(|i| targets[(s * k + i) % targets.len()].clone())
                        .collect();
                    let p = prompt.clone();
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        for _ in 0..rounds {
                            out.push(direct(&d, &t, &p).await);
                        }
                        out
                    })
                })
                .collect();
            for t in tasks {
                direct_samples.extend(t.await.expect("direct task"));
            }
            let d = summarize(&direct_samples);
            for g in &gateways {
                let cpu_before = g.cpu_seconds();
                let tasks: Vec<_> = (0..streams)
                    .map(|_| {
                        let (c, u, key) = (client.clone(), g.url.clone(), g.key.clone());
                        tokio::spawn(async move {
                            let mut out = Vec::new();
                            for _ in 0..rounds {
                                out.push(through_gateway(&c, &u, &key, k).await);
                            }
                            out
                        })
                    })
                    .collect();
                let mut gateway_samples = Vec::new();
                for t in tasks {
                    gateway_samples.extend(t.await.expect("gateway task"));
                }
                let cpu = g.cpu_seconds() - cpu_before;
                let gs = summarize(&gateway_samples);
                println!(
                    "| {k} | {streams} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} |",
                    g.label,
                    ms(d[0]),
                    ms(d[1]),
                    ms(gs[0]),
                    ms(gs[1]),
                    signed_ms(gs[0], d[0]),
                    signed_ms(gs[1], d[1]),
                    signed_ms(gs[2], d[2]),
                    signed_ms(gs[3], d[3]),
                    cpu * 1e3 / gateway_samples.len() as f64,
                );
            }
        }
    }
    disconnect_to_close(&nats, logs.path(), if benching { 20 } else { 2 }).await;
}

/// A fresh migrated database on the local Postgres and a managed key in it, with limits far
/// above the load (so every admission takes the whole path: bucket, leases, usage).
async fn managed_key() -> Result<(String, String), String> {
    use sn1_contracts::store::Store;
    use sn1_contracts::store::keys::{KeyLimits, NewKey};
    let url = sn1_contracts::store::testing::fresh_database("bench")
        .await
        .map_err(|e| format!("no Postgres: {e}"))?;
    let store = Store::postgres(&url, 2).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let new = NewKey {
        name: "benchmark".into(),
        limits: KeyLimits {
            rpm: Some(100_000_000),
            max_streams: Some(1_000_000),
        },
        expires_at: None,
    };
    let made = store.create_key(&new).await.map_err(|e| e.to_string())?;
    Ok((url, made.key))
}

/// How long after a client disconnects the miners' connections are closed: in-process
/// simulated miners (so their side is observable) streaming slowly, api and worker as
/// processes.
async fn disconnect_to_close(nats: &str, logs: &Path, trials: usize) {
    use sn1_simnet::fleet::Fleet;
    use sn1_simnet::miner::{SimMinerConfig, sim_hotkey};
    let configs = (0..3)
        .map(|uid| {
            let mut c = SimMinerConfig::new(uid, sim_hotkey(uid).expect("key"));
            c.reply.text = Some("word ".repeat(2000));
            c.reply.chunk_chars = 5;
            c.reply.chunk_delay = Duration::from_millis(20);
            c
        })
        .collect();
    let fleet = Fleet::start_with(configs).await.expect("fleet");
    let mg = logs.join("mg-disconnect.json");
    fleet.metagraph().save_atomically(&mg).expect("metagraph");
    let gateway = Sn1Gateway::start(
        "disconnect",
        Path::new(env!("CARGO_BIN_EXE_sn1-gateway")),
        nats,
        &mg,
        logs,
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let open = || {
        fleet
            .miners()
            .iter()
            .map(|m| m.open_streams())
            .sum::<usize>()
    };
    let mut closes = Vec::new();
    for _ in 0..trials {
        let body = json!({"k": 3, "prefer": "longest", "timeout": 60, "roles": ["user"], "messages": ["go"]});
        let response = client
            .post(&gateway.url)
            .header("api_key", KEY)
            .json(&body)
            .send()
            .await
            .expect("request");
        while open() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let dropped = Instant::now();
        drop(response);
        while open() > 0 {
            assert!(
                dropped.elapsed() < Duration::from_secs(10),
                "miner streams never closed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        closes.push(dropped.elapsed());
    }
    closes.sort();
    println!(
        "client disconnect → all 3 miner connections closed: p50 {:.1} ms, max {:.1} ms over {trials} trials",
        ms(percentile(&closes, 0.5)),
        ms(*closes.last().expect("trials"))
    );
}
