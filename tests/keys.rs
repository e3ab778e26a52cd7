//! Managed API keys across a fleet: two api replicas over one Postgres, a worker and simulated
//! miners. Keys made by the CLI and by `/admin/keys` work on `/chat`, `/echo` and `/v1`; a
//! 10 rpm key admits 10 ± 1 of 20 requests alternating between the replicas (429 with
//! `Retry-After` past it, in each API's shape); revocation and limit changes made through one
//! replica hold on the other within 1 s; answers in flight are limited fleet-wide; usage is in
//! SQL, the key's id (never the key) in the audit rows; no key appears in any log. Then the
//! key store is cut off from one replica: keys it admitted recently keep working (fail open),
//! a key it never saw gets 503.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-key-for-the-keys-test-0123";

async fn send(url: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (status, retry, body)
}

fn echo() -> Value {
    json!({"roles": ["user"], "messages": ["one two three"], "stream": false})
}

async fn admin(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header("authorization", format!("Bearer {ADMIN}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `sn1-gateway keys …` against `database_url`: its one JSON object.
fn cli(database_url: &str, args: &[&str]) -> Value {
    let out = std::process::Command::new(bin())
        .arg("keys")
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run keys");
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Sends `/echo` with `key` to `url` every 50 ms until the status is `want`; how long it took.
async fn until_status(url: &str, key: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if send(url, key, &echo()).await.0 == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_limits_hold_across_two_replicas() {
    let dir = tempfile::tempdir().unwrap();
    // Miners that take ~1.5 s per answer, so an answer is still in flight when it must be.
    let configs = (0..3)
        .map(|uid| {
            let mut c = sn1_simnet::miner::SimMinerConfig::for_uid(uid).unwrap();
            c.reply.chunk_chars = 8;
            c.reply.chunk_delay = Duration::from_millis(100);
            c
        })
        .collect();
    let fleet = sn1_simnet::fleet::Fleet::start_with(configs).await.unwrap();
    let metagraph = write_metagraph(&fleet, dir.path());
    let db = migrated_database("keys").await;
    // The api replicas connect as the api's own role (deploy/postgres/api-role.sql), the
    // worker and the CLI as the owner.
    let (role, api_db) = sn1_contracts::store::testing::api_role(&db).await.unwrap();
    // api 0 reaches Postgres directly and serves the admin API; api 1 goes through a proxy
    // the test can cut, and has no ADMIN_KEY.
    let stack = Stack::start_with(
        "keys",
        &metagraph,
        1,
        1,
        &[("DATABASE_URL", db.clone())],
        &[
            ("DATABASE_URL", api_db.clone()),
            ("ADMIN_KEY", ADMIN.into()),
        ],
    )
    .await;
    let pg = TcpProxy::start("127.0.0.1:5432").await;
    let port = free_port();
    let api1 = Proc::start(
        &format!("{}-api1", stack.prefix),
        &["api"],
        &[
            ("NATS_URL", nats_url()),
            ("NATS_PREFIX", stack.prefix.clone()),
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", stack.key.clone()),
            (
                "DATABASE_URL",
                api_db.replacen("127.0.0.1:5432", &pg.addr.to_string(), 1),
            ),
        ],
    );
    let apis = [stack.api(0, ""), format!("http://127.0.0.1:{port}")];
    wait_ok(&format!("{}/readyz", apis[1]), Duration::from_secs(30)).await;

    // A 10 rpm key from the CLI: 10 ± 1 of 20 alternating requests pass, the rest get 429.
    let made = cli(&db, &["create", "--name", "ten a minute", "--rpm", "10"]);
    let (rpm_key, rpm_id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    let mut admitted = 0;
    for i in 0..20 {
        let (status, retry, body) = send(&format!("{}/echo", apis[i % 2]), rpm_key, &echo()).await;
        match status {
            200 => admitted += 1,
            429 => {
                assert_eq!(body["error"]["type"], "rate_limited", "{body}");
                let retry: u64 = retry.expect("Retry-After").parse().unwrap();
                assert!((1..=6).contains(&retry), "Retry-After {retry}");
            }
            other => panic!("request {i}: {other} {body}"),
        }
    }
    assert!((9..=11).contains(&admitted), "{admitted} of 20 admitted");
    eprintln!("10 rpm key: {admitted} of 20 alternating requests admitted");
    // The same limit on /v1, in OpenAI's shape.
    let (status, retry, body) = send(
        &format!("{}/v1/chat/completions", apis[1]),
        rpm_key,
        &json!({"model": "sn1", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert!(retry.is_some());

    // A flood of one key (60 at once on one replica) never switches its limit off: at most its
    // 5 pass, the rest are refused (429, or 503 should the store fall behind), never served.
    let flood = cli(&db, &["create", "--name", "flood", "--rpm", "5"]);
    let flood_key = flood["key"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (url, key) = (format!("{}/echo", apis[0]), flood_key.clone());
            tokio::spawn(async move { send(&url, &key, &echo()).await.0 })
        })
        .collect();
    let mut served = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => served += 1,
            429 | 503 => {}
            other => panic!("flood: {other}"),
        }
    }
    assert!(served <= 5, "{served} of a 5 rpm key's flood served");
    eprintln!("flood of 60 at once with a 5 rpm key: {served} served");

    // A key from /admin/keys works on /chat and /v1; a change through the CLI holds on both
    // replicas within 1 s; so does a revocation through api 0's admin API.
    let (status, made) = admin(
        reqwest::Method::POST,
        format!("{}/admin/keys", apis[0]),
        Some(json!({"name": "team b", "expires": "30d"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    let streamed = post_ndjson(&format!("{}/chat", apis[1]), key, &seed_request()).await;
    assert_eq!(streamed.status, 200);
    check_stream_events(&streamed.events);
    let v1 = json!({"model": "sn1", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        send(&format!("{}/v1/chat/completions", apis[0]), key, &v1)
            .await
            .0,
        200
    );
    cli(&db, &["set-limits", id, "--rpm", "1"]);
    let changed = Instant::now();
    let took = until_status(
        &format!("{}/echo", apis[1]),
        key,
        429,
        Duration::from_secs(1),
    )
    .await;
    eprintln!("rpm 1 held on the other replica after {took:?}");
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "limit change took {:?}",
        changed.elapsed()
    );
    cli(&db, &["set-limits", id, "--rpm", "none"]);
    assert_eq!(
        send(&format!("{}/echo", apis[0]), key, &echo()).await.0,
        200
    );
    let (status, revoked) = admin(
        reqwest::Method::DELETE,
        format!("{}/admin/keys/{id}", apis[0]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let at = Instant::now();
    for api in &apis {
        let (status, _, body) = send(&format!("{api}/echo"), key, &echo()).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked"),
            "{body}"
        );
    }
    assert!(at.elapsed() < Duration::from_secs(1));
    eprintln!(
        "revocation refused on both replicas within {:?}",
        at.elapsed()
    );

    // The admin API: listed without secrets, guarded, 404 for an unknown id.
    let (status, listed) = admin(
        reqwest::Method::GET,
        format!("{}/admin/keys", apis[0]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3, "{listed}");
    assert!(!listed.to_string().contains(key) && !listed.to_string().contains(rpm_key));
    let wrong = reqwest::Client::new()
        .get(format!("{}/admin/keys", apis[0]))
        .header("authorization", "Bearer not-the-admin-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (status, _) = admin(
        reqwest::Method::DELETE,
        format!("{}/admin/keys/key-none", apis[0]),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Replica 1 has no ADMIN_KEY: its admin API is off.
    let (status, body) = admin(
        reqwest::Method::GET,
        format!("{}/admin/keys", apis[1]),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Answers in flight: one at a time for the fleet.
    let one = cli(
        &db,
        &["create", "--name", "one at a time", "--max-streams", "1"],
    );
    let one_key = one["key"].as_str().unwrap().to_string();
    let slow = json!({"roles": ["user"], "messages": ["slow"], "k": 1, "timeout": 20});
    let first = {
        let (url, key) = (format!("{}/chat", apis[0]), one_key.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("api-key", key)
                .json(&slow)
                .send()
                .await
                .unwrap()
        })
    };
    let response = first.await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, retry, body) = send(&format!("{}/echo", apis[1]), &one_key, &echo()).await;
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "{body}");
    drop(response); // the client goes away: its lease is given back
    until_status(
        &format!("{}/echo", apis[1]),
        &one_key,
        200,
        Duration::from_secs(3),
    )
    .await;

    // Usage in SQL (the README's query), the key id in the audit rows.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    // Each replica adds its usage once a second.
    let start = Instant::now();
    let (requests, rejected) = loop {
        let (requests, rejected): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(requests), 0)::bigint, coalesce(sum(rejected), 0)::bigint
             FROM api_key_usage WHERE key_id = $1",
        )
        .bind(rpm_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        if requests >= admitted || start.elapsed() > Duration::from_secs(5) {
            break (requests, rejected);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(requests, admitted, "requests served with the 10 rpm key");
    assert_eq!(rejected, 20 - admitted + 1, "requests refused");
    let start = Instant::now();
    loop {
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM completions WHERE api_key_id = $1")
                .bind(rpm_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if rows == admitted {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{rows} audit rows for {rpm_id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The key store cut off from replica 1 — its connections reset, refused, or never
    // answered: a key it admitted before still works (limits off) within the admission timeout
    // and a probe, a key it never saw gets 503 with Retry-After; back when the store is. A
    // remembered key that expired meanwhile is not let in.
    let soon = cli(
        &db,
        &["create", "--name", "expires soon", "--expires", "5s"],
    );
    let soon_key = soon["key"].as_str().unwrap();
    let (status, _, body) = send(&format!("{}/echo", apis[1]), soon_key, &echo()).await;
    assert_eq!(status, 200, "{body}");
    let soon_made = Instant::now();
    let mut unknown_keys = Vec::new();
    for outage in ["reset", "refused", "unanswered"] {
        let never = cli(
            &db,
            &["create", "--name", &format!("never seen ({outage})")],
        );
        let never_key = never["key"].as_str().unwrap().to_string();
        match outage {
            "reset" => pg.cut(),
            "refused" => pg.refuse().await,
            _ => pg.hang().await,
        }
        for round in 0..2 {
            let asked = Instant::now();
            let (status, _, body) = send(&format!("{}/echo", apis[1]), &one_key, &echo()).await;
            assert_eq!(status, 200, "{outage}, round {round}: {body}");
            let waited = asked.elapsed();
            // At most the admission timeout (1 s) and a probe's (1 s), on a loaded machine.
            assert!(
                waited < Duration::from_secs(4),
                "{outage}: waited {waited:?}"
            );
        }
        let (status, retry, body) = send(&format!("{}/echo", apis[1]), &never_key, &echo()).await;
        assert_eq!(
            (status, retry.as_deref()),
            (503, Some("1")),
            "{outage}: {body}"
        );
        assert_eq!(body["error"]["type"], "key_store_unavailable");
        pg.restore().await;
        until_status(
            &format!("{}/echo", apis[1]),
            &never_key,
            200,
            Duration::from_secs(10),
        )
        .await;
        unknown_keys.push(never_key);
    }
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(soon_made.elapsed())).await;
    pg.cut();
    let (status, _, body) = send(&format!("{}/echo", apis[1]), soon_key, &echo()).await;
    assert_eq!(
        status, 503,
        "an expired key let in during an outage: {body}"
    );
    pg.restore().await;

    // No key in any log.
    let logs = format!("{}{}", stack.logs(), api1.log_text());
    for secret in [rpm_key, key, &one_key, soon_key, ADMIN]
        .into_iter()
        .chain(unknown_keys.iter().map(String::as_str))
    {
        assert!(!logs.contains(secret), "a key is in the logs");
    }
    drop((api1, stack));
    sn1_contracts::store::testing::drop_role(&db, &role)
        .await
        .unwrap();
}
