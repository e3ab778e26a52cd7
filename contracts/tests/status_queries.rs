//! The status page's data ([`Store::subnet_status`]) on seeded snapshots and audit rows, from
//! SQLite and from a real Postgres (a fresh database): each backend gives the expected figures,
//! and both give exactly the same answer; the api's restricted Postgres role
//! (`deploy/postgres/api-role.sql`) reads the same and none of the audit log's texts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use chrono::{DateTime, Duration, DurationRound, Utc};
use sn1_contracts::audit::CompletionRecord;
use sn1_contracts::metagraph::NeuronRow;
use sn1_contracts::store::Store;
use sn1_contracts::store::status::SubnetStatus;

fn neuron(uid: u16, ip: &str, permit: bool, stake: f64) -> NeuronRow {
    NeuronRow {
        uid,
        hotkey: format!("5Hotkey{uid}"),
        coldkey: format!("5Cold{uid}"),
        active: true,
        axon_ip: ip.into(),
        axon_port: if ip == "0.0.0.0" { 0 } else { 8091 },
        axon_ip_type: if ip.contains(':') { 6 } else { 4 },
        axon_protocol: 4,
        axon_version: 1,
        stake_tao: stake,
        incentive: f64::from(uid) / 10.0,
        consensus: 0.0,
        dividends: 0.0,
        validator_trust: 0.0,
        emission_tao: 0.0,
        validator_permit: permit,
        last_update: 1,
    }
}

/// A miner's reply, built from JSON like the audit queue carries it (fields added later with
/// defaults need no change here).
fn reply(uid: u16, hotkey: &str, outcome: &str, ttfb: Option<f64>) -> serde_json::Value {
    serde_json::json!({
        "uid": uid, "hotkey": hotkey, "outcome": outcome, "status_code": 200,
        "time_to_first_byte_ms": ttfb, "total_ms": ttfb.map(|t| t + 100.0), "chunks": 3,
        "bytes": 42, "text": {"text": "an answer", "sha256": null}, "clean_reason": null,
        "selected": outcome == "ok",
    })
}

/// A miner that stalled after committing: the worker stores it as cancelled, with the verdict
/// `stalled`.
fn stalled(uid: u16) -> serde_json::Value {
    let mut miner = reply(uid, &format!("5Hotkey{uid}"), "cancelled", None);
    miner["quality"] =
        serde_json::json!({"axon": null, "verdict": "stalled", "continuation": false});
    miner
}

fn request(
    at: DateTime<Utc>,
    netuid: u16,
    status: &str,
    miners: Vec<serde_json::Value>,
) -> CompletionRecord {
    serde_json::from_value(serde_json::json!({
        "request_id": uuid::Uuid::now_v7().to_string(), "created_at": at,
        "api_key_id": "kid-test", "endpoint": "chat", "netuid": netuid, "k": 2,
        "timeout_s": 10.0, "strategy": "first", "sampling_mode": "random", "exclude": [],
        "roles": ["user"], "messages": ["question"], "messages_sha256": null,
        "selected_uid": 1, "completion": {"text": "an answer", "sha256": null},
        "status": status, "error": null, "time_to_first_chunk_ms": 20.0, "total_ms": 300.0,
        "miners": miners,
    }))
    .expect("a completion record")
}

/// Snapshots of netuids 2 then 1 (the newest), and audit rows in and out of the window.
async fn seed(store: &Store, now: DateTime<Utc>) {
    let mut lock = store.try_lock_sync(2).await.unwrap().unwrap();
    lock.store_snapshot(7, "0x07", &[neuron(1, "1.2.3.4", false, 0.0)])
        .await
        .unwrap();
    lock.release().await;
    let mut lock = store.try_lock_sync(1).await.unwrap().unwrap();
    let neurons = [
        neuron(0, "1.1.1.1", true, 5000.0), // a validator (serving too)
        neuron(1, "1.2.3.4", false, 10.0),
        neuron(2, "5.6.7.8", false, 20.0),
        neuron(3, "0.0.0.0", false, 0.0),    // not serving
        neuron(4, "2001:db8::1", true, 5.0), // a permit without the stake: a miner
    ];
    lock.store_snapshot(100, "0x64", &neurons).await.unwrap();
    lock.release().await;

    let five = now - Duration::minutes(5);
    let two = now - Duration::minutes(2);
    let ok = |uid: u16, t: f64| reply(uid, &format!("5Hotkey{uid}"), "ok", Some(t));
    let records = [
        request(
            five,
            1,
            "answered",
            vec![ok(1, 10.0), reply(2, "5Hotkey2", "empty", Some(600.0))],
        ),
        request(
            five,
            1,
            "answered",
            vec![ok(1, 20.0), reply(2, "5Hotkey2", "timeout", None)],
        ),
        request(five, 1, "answered", vec![ok(1, 30.0)]),
        request(five, 1, "answered", vec![ok(1, 40.0)]),
        // uid 2's previous hotkey: not the miner of the snapshot.
        request(
            two,
            1,
            "timeout",
            vec![
                reply(1, "5Hotkey1", "cancelled", None),
                reply(2, "5Old2", "ok", Some(5.0)),
            ],
        ),
        // A committed miner that stalled: stored as cancelled, judged `stalled` — a reply
        // that did not succeed.
        request(five, 1, "answered", vec![stalled(1)]),
        // Outside the window, and another subnet's.
        request(now - Duration::hours(2), 1, "answered", vec![ok(1, 1000.0)]),
        request(
            now - Duration::minutes(1),
            2,
            "answered",
            vec![ok(1, 2000.0)],
        ),
        // A subnet without any snapshot.
        request(two, 9, "answered", vec![ok(1, 3.0)]),
    ];
    let refs: Vec<&CompletionRecord> = records.iter().collect();
    assert_eq!(store.insert_audit(&refs).await.unwrap(), 9);
}

fn check(status: &SubnetStatus, now: DateTime<Utc>) {
    let snapshot = status.snapshot.as_ref().expect("a snapshot");
    assert_eq!((snapshot.netuid, snapshot.block), (1, 100));
    assert_eq!(status.window_seconds, 3600);
    let c = status.counts;
    assert_eq!(
        (c.neurons, c.serving, c.validators, c.candidates),
        (5, 4, 1, 3)
    );
    let uids: Vec<u16> = status.miners.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 4]);
    let m1 = &status.miners[0];
    assert_eq!(
        (m1.hotkey.as_str(), m1.axon.as_str()),
        ("5Hotkey1", "1.2.3.4:8091")
    );
    assert_eq!((m1.incentive, m1.stake_tao), (0.1, 10.0));
    let h = &m1.health;
    // 4 ok, 1 cancelled (not a reply), 1 stalled (a reply that did not succeed).
    assert_eq!((h.asked, h.replies), (6, 5));
    assert_eq!((h.success_rate, h.empty_rate), (Some(0.8), Some(0.0)));
    assert_eq!(h.ttfb_p50_ms, Some(25.0));
    assert!((h.ttfb_p95_ms.unwrap() - 38.5).abs() < 1e-9, "{h:?}");
    assert_eq!(h.last_seen, Some(now - Duration::minutes(2)));
    let h = &status.miners[1].health;
    assert_eq!((h.asked, h.replies), (2, 2));
    assert_eq!((h.success_rate, h.empty_rate), (Some(0.0), Some(0.5)));
    assert_eq!((h.ttfb_p50_ms, h.ttfb_p95_ms), (Some(600.0), Some(600.0)));
    assert_eq!(h.last_seen, Some(now - Duration::minutes(5)));
    let m4 = &status.miners[2];
    assert_eq!(m4.axon, "[2001:db8::1]:8091");
    assert_eq!((m4.health.asked, m4.health.success_rate), (0, None));
    assert_eq!(m4.health.last_seen, None);

    let counts: Vec<u64> = status.ttfb_histogram.iter().map(|b| b.count).collect();
    assert_eq!(counts, [3, 2, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(status.ttfb_histogram[0].below_ms, Some(25.0));
    assert_eq!(status.ttfb_histogram[9].below_ms, None);

    assert_eq!(status.per_minute.len(), 61);
    let minute = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap();
    let at = |t| {
        let m = status
            .per_minute
            .iter()
            .find(|m| m.minute == minute(t))
            .unwrap();
        (m.requests, m.errors)
    };
    assert_eq!(at(now - Duration::minutes(5)), (5, 0));
    assert_eq!(at(now - Duration::minutes(2)), (1, 1));
    let total: u64 = status.per_minute.iter().map(|m| m.requests).sum();
    assert_eq!(total, 6, "only netuid 1's requests of the last hour");
}

/// Everything a backend answers, checked; returns the default view for the cross-check.
async fn exercise(store: &Store, now: DateTime<Utc>) -> SubnetStatus {
    let empty = store
        .subnet_status(None, now, Duration::hours(1))
        .await
        .unwrap();
    assert!(empty.snapshot.is_none() && empty.miners.is_empty());
    assert_eq!(empty.counts.neurons, 0);
    assert_eq!(empty.per_minute.len(), 61);

    seed(store, now).await;
    let status = store
        .subnet_status(None, now, Duration::hours(1))
        .await
        .unwrap();
    check(&status, now);
    assert_eq!(
        store
            .subnet_status(Some(1), now, Duration::hours(1))
            .await
            .unwrap(),
        status
    );

    let other = store
        .subnet_status(Some(2), now, Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(other.snapshot.as_ref().map(|s| s.block), Some(7));
    assert_eq!(other.miners.len(), 1);
    assert_eq!(other.miners[0].health.ttfb_p50_ms, Some(2000.0));
    let none = store
        .subnet_status(Some(9), now, Duration::hours(1))
        .await
        .unwrap();
    assert!(none.snapshot.is_none() && none.miners.is_empty());
    // Netuid 9 has audit rows in the window but no snapshot: answered without reading the
    // audit log (anyone may ask for any netuid), so its figures are all zero.
    let no_snapshot = store
        .subnet_status(Some(9), now, Duration::hours(1))
        .await
        .unwrap();
    assert!(no_snapshot.snapshot.is_none() && no_snapshot.miners.is_empty());
    assert_eq!(no_snapshot.per_minute.len(), 61);
    let requests: u64 = no_snapshot.per_minute.iter().map(|m| m.requests).sum();
    let ttfbs: u64 = no_snapshot.ttfb_histogram.iter().map(|b| b.count).sum();
    assert_eq!((requests, ttfbs), (0, 0), "the audit log was not scanned");
    status
}

#[tokio::test]
async fn sqlite_and_postgres_give_the_same_status() {
    // Whole seconds: Postgres keeps microseconds, SQLite the text as written.
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let dir = std::env::temp_dir().join(format!("sn1-status-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Store::sqlite(&dir.join("status.sqlite3")).await.unwrap();
    let from_sqlite = exercise(&sqlite, now).await;
    let _ = std::fs::remove_dir_all(&dir);

    let url = sn1_contracts::store::testing::fresh_database("status")
        .await
        .unwrap();
    let postgres = Store::postgres(&url, 2).await.unwrap();
    postgres.migrate().await.unwrap();
    let from_postgres = exercise(&postgres, now).await;

    // Same rows, same figures — except the snapshots' ids and storage times.
    let strip = |mut s: SubnetStatus| {
        s.snapshot = None;
        s
    };
    assert_eq!(strip(from_sqlite), strip(from_postgres));
}

/// One request's fan-out (the playground's request link): the request and its miners, the
/// selected one first; an unknown or malformed id is not found.
async fn fan_out(store: &Store, now: DateTime<Utc>) -> sn1_contracts::store::status::RequestFanOut {
    let record = request(
        now,
        1,
        "answered",
        vec![
            reply(3, "5Hotkey3", "empty", Some(50.0)),
            reply(1, "5Hotkey1", "ok", Some(90.0)),
            reply(2, "5Hotkey2", "cancelled", None),
        ],
    );
    store.insert_audit(&[&record]).await.unwrap();
    let found = store
        .request_fan_out(&record.request_id)
        .await
        .unwrap()
        .expect("the request");
    assert_eq!(found.request_id, record.request_id);
    assert_eq!((found.status.as_str(), found.k_asked), ("answered", 3));
    let order: Vec<(i64, &str)> = found
        .miners
        .iter()
        .map(|m| (m.uid, m.outcome.as_str()))
        .collect();
    assert_eq!(order, [(1, "ok"), (3, "empty"), (2, "cancelled")]);
    assert!(found.miners[0].selected && !found.miners[1].selected);
    assert_eq!(found.miners[1].time_to_first_byte_ms, Some(50.0));
    for missing in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_string()] {
        assert_eq!(store.request_fan_out(&missing).await.unwrap(), None);
    }
    found
}

#[tokio::test]
async fn a_request_fan_out_reads_the_same_from_both_backends() {
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let dir = std::env::temp_dir().join(format!("sn1-fan-out-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Store::sqlite(&dir.join("fan-out.sqlite3")).await.unwrap();
    let mut from_sqlite = fan_out(&sqlite, now).await;
    let _ = std::fs::remove_dir_all(&dir);
    let url = sn1_contracts::store::testing::fresh_database("fanout")
        .await
        .unwrap();
    let postgres = Store::postgres(&url, 2).await.unwrap();
    postgres.migrate().await.unwrap();
    let mut from_postgres = fan_out(&postgres, now).await;
    from_sqlite.request_id.clear();
    from_postgres.request_id.clear();
    assert_eq!(from_sqlite, from_postgres);
}

/// The api's own role (`deploy/postgres/api-role.sql`) reads the status and a request's fan-out
/// as the owner does, and may neither read a prompt, an answer, a miner's text or a key id nor
/// write to the audit log or the metagraph.
#[tokio::test]
async fn the_api_role_reads_the_status_and_no_text() {
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let url = sn1_contracts::store::testing::fresh_database("apirole")
        .await
        .unwrap();
    let owner = Store::postgres(&url, 2).await.unwrap();
    owner.migrate().await.unwrap();
    seed(&owner, now).await;
    let (role, role_url) = sn1_contracts::store::testing::api_role(&url).await.unwrap();
    let api = Store::postgres(&role_url, 2).await.unwrap();
    api.check_migrations().await.unwrap();
    let status = api
        .subnet_status(None, now, Duration::hours(1))
        .await
        .unwrap();
    check(&status, now);

    let pool = sqlx::PgPool::connect(&role_url).await.unwrap();
    let owner_pool = sqlx::PgPool::connect(&url).await.unwrap();
    let id: String = sqlx::query_scalar("SELECT request_id::text FROM completions LIMIT 1")
        .fetch_one(&owner_pool)
        .await
        .unwrap();
    let seen = api
        .request_fan_out(&id)
        .await
        .unwrap()
        .expect("the request");
    assert_eq!(Some(seen), owner.request_fan_out(&id).await.unwrap());

    for sql in [
        "SELECT messages FROM completions",
        "SELECT completion FROM completions",
        "SELECT api_key_id FROM completions",
        "SELECT * FROM completions",
        "SELECT text FROM miner_responses",
        "INSERT INTO completions (request_id) VALUES (gen_random_uuid())",
        "UPDATE miner_responses SET verdict = 'usable'",
        "DELETE FROM completions",
        "DELETE FROM neurons",
        "UPDATE metagraph_snapshots SET block = 0",
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{sql}: {err}"
        );
    }
    pool.close().await;
    sn1_contracts::store::testing::drop_role(&url, &role)
        .await
        .unwrap();
}

/// How long the status takes on a busy hour in Postgres: 200,000 requests and 1,000,000
/// miner rows over 1,000 uids (about 55 requests a second at k = 5). Not run by default
/// (seeding takes ~25 s): `cargo test -p sn1-contracts --test status_queries -- --ignored`.
#[tokio::test]
#[ignore = "a measurement: seeds a million rows"]
async fn a_busy_hour_in_postgres() {
    let url = sn1_contracts::store::testing::fresh_database("statusbench")
        .await
        .unwrap();
    let store = Store::postgres(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for sql in [
        "INSERT INTO completions (request_id, created_at, api_key_id, endpoint, netuid, k,
             timeout_s, strategy, sampling_mode, status, total_ms, k_asked)
         SELECT gen_random_uuid(), now() - (g % 3600) * interval '1 second', 'kid', 'chat', 1,
                5, 10, 'first', 'random',
                CASE WHEN g % 50 = 0 THEN 'timeout' ELSE 'answered' END, 300, 5
         FROM generate_series(1, 200000) g",
        "INSERT INTO miner_responses (request_id, uid, created_at, hotkey, outcome,
             time_to_first_byte_ms, chunks, bytes, selected)
         SELECT c.request_id, u, c.created_at, '5Hotkey' || u,
                CASE WHEN random() < 0.8 THEN 'ok' WHEN random() < 0.5 THEN 'cancelled'
                     ELSE 'empty' END,
                random() * 2000, 3, 100, u = 0
         FROM completions c, LATERAL (
             SELECT (abs(hashtext(c.request_id::text)) + s * 197) % 1000 AS u
             FROM generate_series(0, 4) s) x
         ON CONFLICT DO NOTHING",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let mut lock = store.try_lock_sync(1).await.unwrap().unwrap();
    let neurons: Vec<NeuronRow> = (0..1000)
        .map(|u| neuron(u, "1.2.3.4", false, 1.0))
        .collect();
    lock.store_snapshot(1, "0x01", &neurons).await.unwrap();
    lock.release().await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let status = store
            .subnet_status(None, Utc::now(), Duration::hours(1))
            .await
            .unwrap();
        println!(
            "subnet_status over 1,000,000 miner rows: {:?}",
            started.elapsed()
        );
        assert_eq!(status.miners.len(), 1000);
        assert!(status.miners.iter().all(|m| m.health.asked > 0));
    }
}
