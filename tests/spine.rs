//! The API suite, end to end with real processes: each test runs against the distributed path
//! (`sn1-gateway api` and `worker` over the real NATS JetStream on this machine) and against
//! `sn1-gateway standalone` (in-process queue, SQLite) — one suite, two backends, so the seams
//! cannot drift apart. Simulated miners speak the real axon protocol over real sockets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::json;
use sn1_simnet::fleet::Fleet;
use sn1_simnet::miner::{Misbehaviour, SimMinerConfig, sim_hotkey};
use std::time::{Duration, Instant};

fn miner(uid: u16) -> SimMinerConfig {
    let mut c = SimMinerConfig::new(uid, sim_hotkey(uid).unwrap());
    c.reply.chunk_delay = Duration::from_millis(10);
    c
}

async fn fleet_of(n: u16, tweak: impl Fn(&mut SimMinerConfig)) -> Fleet {
    let configs = (0..n)
        .map(|uid| {
            let mut c = miner(uid);
            tweak(&mut c);
            c
        })
        .collect();
    Fleet::start_with(configs).await.unwrap()
}

/// Runs an API test against both backends.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distributed() {
                super::$name(super::Backend::Distributed).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                super::$name(super::Backend::Standalone).await
            }
        }
    )*};
}

both_backends!(
    the_seed_curl_streams_a_full_answer,
    k_and_exclude_are_respected,
    auth_and_validation_errors,
    a_stalling_miner_does_not_delay_a_good_one_and_timeouts_are_stream_errors,
    client_disconnect_closes_the_miner_connections,
    a_long_answer_arrives_whole,
    a_byte_by_byte_miner_costs_its_client_bytes_linear_in_the_answer,
);

/// Miners that stream `words` five-character chunks, `gap_ms` apart: a long-running answer.
async fn slow_fleet(n: u16, words: usize, gap_ms: u64) -> Fleet {
    fleet_of(n, |c| {
        c.reply.text = Some("slow ".repeat(words));
        c.reply.chunk_chars = 5;
        c.reply.chunk_delay = Duration::from_millis(gap_ms);
    })
    .await
}

fn total_calls(fleet: &Fleet) -> usize {
    fleet.miners().iter().map(|m| m.calls().len()).sum()
}

async fn the_seed_curl_streams_a_full_answer(backend: Backend) {
    // Every role as its own process, as the README says (simnet included).
    let dir = tempfile::tempdir().unwrap();
    let mg = dir.path().join("mg.json");
    let simnet = Proc::start(
        "simnet-seed",
        &[
            "simnet",
            "--miners",
            "8",
            "--misbehaving",
            "0",
            "--metagraph-out",
            mg.to_str().unwrap(),
        ],
        &[],
    );
    let start = Instant::now();
    while !mg.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "simnet wrote no metagraph: {}",
            simnet.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stack = Stack::start_on(backend, "seed", &mg, &[]).await;
    let out = post_ndjson(&stack.api(0, "/chat/"), &stack.key, &seed_request()).await;
    assert_eq!(out.status, 200, "{}", stack.logs());
    assert_eq!(out.content_type, "application/x-ndjson");
    let (text, uid) = check_stream_events(&out.events);
    assert!((0..8).contains(&uid), "selected uid {uid}");
    assert!(
        text.starts_with(&format!(
            "Miner {uid} answers: you asked \"Tell me a happy story"
        )),
        "{text}"
    );
    assert!(text.ends_with("streamed in chunks."), "{text}");
    assert!(out.events.len() > 3, "answer came in several chunks");

    // /echo goes through the queue and a worker too.
    let out = post_ndjson(
        &stack.api(0, "/echo"),
        &stack.key,
        &json!({"roles": ["user"], "messages": ["one two three"]}),
    )
    .await;
    assert_eq!(out.status, 200);
    let (text, uid) = check_stream_events(&out.events);
    assert_eq!((text.as_str(), uid), ("one two three", -1));
    assert_eq!(out.events.len(), 4);

    // The same objects as SSE with `Accept: text/event-stream`.
    let response = reqwest::Client::new()
        .post(stack.api(0, "/chat"))
        .header("api_key", &stack.key)
        .header("accept", "text/event-stream")
        .json(&seed_request())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let events: Vec<serde_json::Value> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data event: {e:?}"));
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let (text, _) = check_stream_events(&events);
    assert!(text.contains("Tell me a happy story"), "{text}");

    // `"stream": false`: the seed's final JSON, encoded once.
    let mut body = seed_request();
    body["stream"] = json!(false);
    let r = reqwest::Client::new()
        .post(stack.api(0, "/chat"))
        .header("api_key", &stack.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let chunks: Vec<&str> = v["streamed_chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(v["completion"].as_str().unwrap(), chunks.concat());
    assert_eq!(
        v["streamed_chunks_timings"].as_array().unwrap().len(),
        chunks.len()
    );
    assert!(v["uid"].as_i64().unwrap() >= 0 && v["timing"].as_f64().unwrap() > 0.0);
    drop(simnet);
}

async fn k_and_exclude_are_respected(backend: Backend) {
    let fleet = fleet_of(6, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start_on(backend, "kex", &mg, &[]).await;
    let excluded_hotkey = fleet.miner(4).unwrap().hotkey_ss58().to_string();
    for _ in 0..3 {
        let body = json!({"k": 2, "prefer": "longest", "exclude": [1, excluded_hotkey], "roles": ["user"], "messages": ["hi"]});
        let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
        assert_eq!(out.status, 200, "{}", stack.logs());
        let (_, uid) = check_stream_events(&out.events);
        assert!(![1, 4].contains(&uid));
    }
    // prefer waits for all k: exactly 2 miners per request were asked, never 1 or 4.
    assert_eq!(total_calls(&fleet), 6);
    assert!(fleet.miner(1).unwrap().calls().is_empty());
    assert!(fleet.miner(4).unwrap().calls().is_empty());
    // The worker signs with the validator test hotkey; the miners checked it.
    for m in fleet.miners() {
        for call in m.calls() {
            assert!(call.accepted, "{call:?}");
            assert_eq!(
                call.dendrite_hotkey.as_deref(),
                Some("5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5")
            );
        }
    }
    // Excluding everyone: 422 before streaming.
    let body =
        json!({"k": 3, "exclude": [0, 1, 2, 3, 4, 5], "roles": ["user"], "messages": ["hi"]});
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
    assert_eq!(out.status, 422);
    assert_eq!(out.events[0]["error"]["type"], "unprocessable");
}

/// 20,000 words through `/echo` (20,000 chunk events, far more than any event buffer): the
/// answer is complete in both modes — a slow reader holds the worker back, it never loses
/// events and still answers 200.
async fn a_long_answer_arrives_whole(backend: Backend) {
    let fleet = fleet_of(1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start_on(backend, "longecho", &mg, &[]).await;
    let words: String = (0..20_000).map(|i| format!("w{i} ")).collect();
    let r = reqwest::Client::new()
        .post(stack.api(0, "/echo"))
        .header("api_key", &stack.key)
        .json(&json!({"roles": ["user"], "messages": [words], "stream": false, "timeout": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", stack.logs());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["completion"].as_str().map(str::len),
        Some(words.len()),
        "the echo came back short"
    );
    assert_eq!(body["completion"], words.as_str());
}

/// A miner sending 5,000 one-byte chunks 1 ms apart made its client download 205 MB of NDJSON
/// (every seed `StreamChunk` repeats all earlier chunks). The answer still arrives whole, in
/// bytes linear in it: at most the api's cap (64 × the text + 2 MiB, `api/src/answer.rs`) plus
/// the last event.
async fn a_byte_by_byte_miner_costs_its_client_bytes_linear_in_the_answer(backend: Backend) {
    const BYTES: usize = 5_000;
    let fleet = fleet_of(1, |c| {
        c.misbehaviour = Some(Misbehaviour::ByteFlood(BYTES));
        c.reply.chunk_delay = Duration::from_millis(1);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start_on(backend, "byteflood", &mg, &[]).await;
    let body = json!({"k": 1, "timeout": 60, "roles": ["user"], "messages": ["flood me"]});
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
    assert_eq!(out.status, 200, "{}", stack.logs());
    let (text, _) = check_stream_events(&out.events);
    assert_eq!(
        text,
        sn1_simnet::miner::byte_flood(BYTES),
        "the answer is whole"
    );
    eprintln!(
        "byte flood: {} bytes, {} events in {:?} for {BYTES} bytes of text",
        out.bytes,
        out.events.len(),
        out.elapsed
    );
    let last_event = 2 * BYTES + 24 * out.events.len() + 512;
    let cap = 64 * BYTES + 2 * 1024 * 1024 + last_event;
    assert!(
        out.bytes <= cap,
        "{} bytes on the wire for {BYTES} bytes of text (cap {cap}, {} events)",
        out.bytes,
        out.events.len()
    );
    assert!(
        out.events.len() < BYTES / 4,
        "{} events for {BYTES} one-byte chunks",
        out.events.len()
    );
}

async fn auth_and_validation_errors(backend: Backend) {
    let fleet = fleet_of(1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start_on(backend, "auth", &mg, &[]).await;
    let client = reqwest::Client::new();
    let url = stack.api(0, "/chat");
    // Missing and wrong key: 401 before the body is even looked at.
    let r = client.post(&url).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(&url)
        .header("api_key", "wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "unauthorized");
    // Bearer works too.
    let r = client
        .post(stack.api(0, "/echo"))
        .header("authorization", format!("Bearer {}", stack.key))
        .json(&json!({"roles": ["user"], "messages": ["x"], "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["completion"], "x");
    assert_eq!(body["uid"], -1);
    // Malformed bodies: 400 naming the field.
    for (body, field) in [
        ("{", "JSON"),
        (r#"{"roles":["user"]}"#, "`messages`"),
        (r#"{"roles":["user","user"],"messages":["a"]}"#, "`roles`"),
        (r#"{"k":0,"roles":["user"],"messages":["a"]}"#, "`k`"),
        (
            r#"{"timeout":-1,"roles":["user"],"messages":["a"]}"#,
            "`timeout`",
        ),
        (
            r#"{"exclude":"all","roles":["user"],"messages":["a"]}"#,
            "`exclude`",
        ),
    ] {
        let r = client
            .post(&url)
            .header("api_key", &stack.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    // Wrong content type: 415; oversized body: 413.
    let r = client
        .post(&url)
        .header("api_key", &stack.key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Ops endpoints.
    let r = client
        .get(stack.api(0, "/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(doc["paths"]["/chat"]["post"].is_object());
    let r = client.get(stack.api(0, "/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("swagger"));
    let metrics = client
        .get(stack.api_ops(0, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sn1_api_errors_total"), "{metrics}");
    // Oversized body: 413 (the server then closes the connection without reading the rest).
    let big = format!(
        r#"{{"roles":["user"],"messages":["{}"]}}"#,
        "a".repeat(2 << 20)
    );
    let r = reqwest::Client::new()
        .post(&url)
        .header("api_key", &stack.key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

async fn a_stalling_miner_does_not_delay_a_good_one_and_timeouts_are_stream_errors(
    backend: Backend,
) {
    let fleet = fleet_of(2, |c| {
        if c.uid == 0 {
            c.misbehaviour = Some(Misbehaviour::StallAfter { chunks: 0 });
        } else {
            c.reply.first_byte_delay = Duration::from_millis(100);
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start_on(backend, "stall", &mg, &[]).await;
    let body = json!({"k": 2, "timeout": 10, "roles": ["user"], "messages": ["hello"]});
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
    assert_eq!(out.status, 200);
    let (_, uid) = check_stream_events(&out.events);
    assert_eq!(uid, 1);
    assert!(
        out.elapsed < Duration::from_secs(3),
        "took {:?}: the stalled miner held the answer",
        out.elapsed
    );

    // Only the stalling miner: the timeout ends the stream with a StreamError.
    fleet
        .miner(1)
        .unwrap()
        .set_misbehaviour(Some(Misbehaviour::StallAfter { chunks: 0 }));
    let body = json!({"k": 2, "timeout": 1.5, "roles": ["user"], "messages": ["hello"]});
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
    assert_eq!(out.status, 200);
    let last = out.events.last().unwrap();
    assert_eq!(last["finish_reason"], "error", "{:?}", out.events);
    assert!(last["error"].as_str().unwrap().contains("within"), "{last}");
    assert_eq!(out.events.len(), 1);
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
}

async fn client_disconnect_closes_the_miner_connections(backend: Backend) {
    let fleet = slow_fleet(3, 400, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start_on(backend, "disc", &mg, &[]).await;
    let body = json!({"k": 3, "prefer": "longest", "timeout": 60, "roles": ["user"], "messages": ["tell me"]});
    let response = reqwest::Client::new()
        .post(stack.api(0, "/chat"))
        .header("api_key", &stack.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Wait until all three miners are streaming, then go away.
    let start = Instant::now();
    while fleet
        .miners()
        .iter()
        .map(|m| m.open_streams())
        .sum::<usize>()
        < 3
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "miners never streamed: {}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped_at = Instant::now();
    drop(response);
    loop {
        let open: usize = fleet.miners().iter().map(|m| m.open_streams()).sum();
        if open == 0 {
            break;
        }
        assert!(
            dropped_at.elapsed() < Duration::from_secs(5),
            "{open} miner streams still open 5 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closed_after = dropped_at.elapsed();
    eprintln!("miner connections closed {closed_after:?} after the client disconnected");
    for m in fleet.miners() {
        for call in m.calls() {
            assert!(call.dropped_early(), "{call:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_share_load_and_answer_each_job_once() {
    let fleet = fleet_of(4, |c| c.reply.first_byte_delay = Duration::from_millis(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start(
        "share",
        &mg,
        2,
        2,
        &[("WORKER_CONCURRENCY", "4".to_string())],
    )
    .await;
    let requests = 24;
    let mut tasks = Vec::new();
    for i in 0..requests {
        let url = stack.api(i % 2, "/chat");
        let key = stack.key.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"k": 1, "roles": ["user"], "messages": [format!("question {i}")]});
            post_ndjson(&url, &key, &body).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap();
        assert_eq!(out.status, 200, "request {i}: {}", stack.logs());
        let (text, _) = check_stream_events(&out.events);
        assert!(
            text.contains(&format!("question {i}\"")),
            "request {i} got another's answer: {text}"
        );
    }
    // k = 1: each job reached exactly one miner, exactly once.
    assert_eq!(total_calls(&fleet), requests);
    // Both workers took jobs.
    let client = reqwest::Client::new();
    for port in &stack.worker_ops_ports {
        let m = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let answered: f64 = m
            .lines()
            .filter(|l| l.starts_with("sn1_worker_jobs_total") && l.contains("answered"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(answered >= 1.0, "worker on {port} answered nothing:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_means_503_with_retry_after_and_not_ready() {
    let port = free_port();
    let dead_nats = format!("nats://127.0.0.1:{}", free_port());
    let api = Proc::start(
        "api-nonats",
        &["api"],
        &[
            ("NATS_URL", dead_nats),
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", "k".into()),
        ],
    );
    wait_ok(
        &format!("http://127.0.0.1:{port}/livez"),
        Duration::from_secs(20),
    )
    .await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = client
        .post(format!("http://127.0.0.1:{port}/chat"))
        .header("api_key", "k")
        .json(&json!({"roles": ["user"], "messages": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "{}", api.log_text());
    assert_eq!(r.headers()["retry-after"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_names_every_bad_key() {
    let out = tokio::process::Command::new(bin())
        .args(["api"])
        .env_remove("EXPECTED_ACCESS_KEY")
        .env("NATS_PREFIX", "bad.prefix")
        .env("MAX_IN_FLIGHT", "0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["EXPECTED_ACCESS_KEY", "NATS_PREFIX", "MAX_IN_FLIGHT"] {
        assert!(err.contains(key), "{key} not named in: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_help_or_errors() {
    // Set in the environment, as a Kubernetes Secret would: `--help` shows no value.
    for role in ["api", "worker", "metagraph-syncer", "standalone", "migrate"] {
        let out = tokio::process::Command::new(bin())
            .args([role, "--help"])
            .env("NATS_URL", "tls://user:hunter2@nats.example:4222")
            .env("DATABASE_URL", "postgres://app:hunter2@db.example/sn1")
            .env("SUBTENSOR_NETWORK", "wss://rpc.example/v1/KEY123")
            .env("EXPECTED_ACCESS_KEY", "hunter2")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{role} --help: {text}");
        for secret in ["hunter2", "KEY123"] {
            assert!(
                !text.contains(secret),
                "{role} --help shows {secret}: {text}"
            );
        }
    }
    // A bad URL is named, without its password.
    let out = tokio::process::Command::new(bin())
        .args(["api"])
        .env("NATS_URL", "http://user:hunter2@nats.example:4222")
        .env("EXPECTED_ACCESS_KEY", "k")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NATS_URL"), "{err}");
    assert!(!err.contains("hunter2"), "the password is shown: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_get_503_with_retry_after() {
    let fleet = slow_fleet(1, 200, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let prefix = unique_prefix("busy");
    let port = free_port();
    let ops = free_port();
    let _worker = Proc::start(
        &format!("{prefix}-worker"),
        &["worker", "--wallet.ephemeral"],
        &[
            ("NATS_PREFIX", prefix.clone()),
            ("OPS_PORT", ops.to_string()),
            ("METAGRAPH_FILE", mg.display().to_string()),
        ],
    );
    let _api = Proc::start(
        &format!("{prefix}-api"),
        &["api"],
        &[
            ("NATS_PREFIX", prefix.clone()),
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", "k".into()),
            ("MAX_IN_FLIGHT", "1".into()),
        ],
    );
    wait_ok(
        &format!("http://127.0.0.1:{ops}/readyz"),
        Duration::from_secs(30),
    )
    .await;
    wait_ok(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(30),
    )
    .await;
    let client = reqwest::Client::new();
    let body = json!({"k": 1, "roles": ["user"], "messages": ["hold the slot"]});
    let first = client
        .post(format!("http://127.0.0.1:{port}/chat"))
        .header("api_key", "k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = client
        .post(format!("http://127.0.0.1:{port}/chat"))
        .header("api_key", "k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let v: serde_json::Value = second.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded");
    // Once the first answer is complete, the slot is free again.
    let text = first.text().await.unwrap();
    assert!(text.contains("\"finish_reason\":\"finished\""));
    let third = post_ndjson(&format!("http://127.0.0.1:{port}/chat"), "k", &body).await;
    assert_eq!(third.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_leaves_new_jobs_to_an_idle_one() {
    // Each miner streams for ~3 s; each worker takes one job at a time.
    let fleet = slow_fleet(2, 75, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start("busy2", &mg, 1, 2, &[("WORKER_CONCURRENCY", "1".into())]).await;
    for round in 0..3 {
        let (url, key) = (stack.api(0, "/chat"), stack.key.clone());
        let first = tokio::spawn(async move {
            let body = json!({"k": 1, "roles": ["user"], "messages": ["long one"]});
            post_ndjson(&url, &key, &body).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // One worker is busy for ~3 s; the other is idle and must take this one at once.
        let body = json!({"k": 1, "roles": ["user"], "messages": ["second"]});
        let second = post_ndjson(&stack.api(0, "/chat"), &stack.key, &body).await;
        assert_eq!(second.status, 200);
        let at = second.first_event_at.expect("a chunk");
        assert!(
            at < Duration::from_millis(2000),
            "round {round}: first chunk after {at:?}: the busy worker held the job\n{}",
            stack.logs()
        );
        assert_eq!(first.await.unwrap().status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_says_how_long_jobs_have_waited_for_it() {
    // One worker, one job at a time, ~3 s answers: a second job waits in the queue.
    let fleet = slow_fleet(1, 75, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = Stack::start("waits", &mg, 1, 1, &[("WORKER_CONCURRENCY", "1".into())]).await;
    let metrics_url = format!("http://127.0.0.1:{}/metrics", stack.worker_ops_ports[0]);
    let idle = metric(
        &metrics_url,
        "sn1_worker_seconds_without_job_while_waiting",
        "",
    )
    .await;
    assert_eq!(idle, Some(0.0), "nothing waits yet");
    let body = json!({"k": 1, "roles": ["user"], "messages": ["long one"]});
    let (url, key) = (stack.api(0, "/chat"), stack.key.clone());
    let first = tokio::spawn({
        let (url, key, body) = (url.clone(), key.clone(), body.clone());
        async move { post_ndjson(&url, &key, &body).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn(async move { post_ndjson(&url, &key, &body).await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let waiting = metric(&metrics_url, "sn1_queue_jobs_waiting", "").await;
    let stalled = metric(
        &metrics_url,
        "sn1_worker_seconds_without_job_while_waiting",
        "",
    )
    .await;
    assert_eq!(waiting, Some(1.0), "the second job waits\n{}", stack.logs());
    let oldest = metric(&metrics_url, "sn1_queue_oldest_job_waiting_seconds", "").await;
    assert!(
        oldest.is_some_and(|s| (1.0..5.0).contains(&s)),
        "the waiting job was queued about 1.2 s ago: {oldest:?}"
    );
    assert!(
        stalled.is_some_and(|s| s >= 1.0),
        "the worker has taken nothing for over a second while a job waits: {stalled:?}"
    );
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
    let after = metric(
        &metrics_url,
        "sn1_worker_seconds_without_job_while_waiting",
        "",
    )
    .await;
    assert_eq!(after, Some(0.0), "nothing waits any more");
    let oldest = metric(&metrics_url, "sn1_queue_oldest_job_waiting_seconds", "").await;
    assert_eq!(oldest, Some(0.0), "nothing waits any more");
}
