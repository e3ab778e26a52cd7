//! The syncer on bytes we encode ourselves (these always run): through the fake chain over
//! WebSocket into Postgres, one snapshot per block, one writer at a time, chain outages that
//! keep the last snapshot, malformed answers that are errors, retention, and the clear error of
//! an unmigrated database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use sn1_contracts::store::{Retention, Store};
use sn1_metagraph_syncer::rpc::ChainClient;
use sn1_metagraph_syncer::{SyncError, Syncer};
use sn1_simnet::chain::{FakeChain, Head, encode_metagraph};
use sqlx::Row;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn fixed(number: u64) -> Head {
    Head::Fixed {
        number,
        hash: format!("0x{number:064x}"),
    }
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_bytes_go_through_ws_into_postgres_once_per_block() {
    let mg = our_metagraph(7);
    let chain = FakeChain::from_metagraph(&mg, fixed(100)).unwrap();
    let server = chain.start("127.0.0.1:0".parse().unwrap()).await.unwrap();

    // The RPC client alone: head and raw bytes as encoded.
    let client = ChainClient::connect(&server.ws_url(), Duration::from_secs(5))
        .await
        .unwrap();
    let head = client.finalized_head().await.unwrap();
    assert_eq!((head.number, head.hash.clone()), chain.head());
    let (neurons_bytes, _) = encode_metagraph(&mg).unwrap();
    let got = client
        .state_call(
            "NeuronInfoRuntimeApi_get_neurons_lite",
            &7u16.to_le_bytes(),
            &head.hash,
        )
        .await
        .unwrap();
    assert_eq!(got, neurons_bytes);

    let (db, pool) = migrated_db("encoded").await;
    let syncer = Syncer::new(fast_config(&server.ws_url(), 7), db.clone(), None)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let first = syncer
        .run_once(&stop, Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert!(first.stored);
    assert_eq!((first.neurons, first.serving), (6, 5));
    let rows = sqlx::query("SELECT * FROM latest_neurons WHERE netuid = 7 ORDER BY uid")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    for (r, n) in rows.iter().zip(&mg.neurons) {
        assert_eq!(r.get::<i64, _>("block"), 100);
        assert_eq!(r.get::<String, _>("hotkey"), n.hotkey);
        assert_eq!(r.get::<String, _>("coldkey"), n.coldkey);
        assert_eq!(r.get::<bool, _>("active"), n.active);
        assert_eq!(r.get::<String, _>("axon_ip"), n.axon_ip);
        assert_eq!(r.get::<i32, _>("axon_port"), i32::from(n.axon_port));
        assert_eq!(r.get::<f64, _>("stake_tao"), n.stake_tao);
        let incentive: f64 = r.get("incentive");
        assert!((incentive - n.incentive).abs() < 1e-4, "{incentive}");
        assert_eq!(r.get::<bool, _>("validator_permit"), n.validator_permit);
    }

    // Same block again: nothing new. Same number with another hash (a restarted dev chain):
    // replaced. A new block: a second snapshot.
    let again = syncer
        .run_once(&stop, Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert!(!again.stored);
    assert_eq!(again.snapshot.id, first.snapshot.id);
    chain.set_head(Head::Fixed {
        number: 100,
        hash: format!("0x{:064x}", 0xabcdu32),
    });
    let replaced = syncer
        .run_once(&stop, Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert!(replaced.stored);
    chain.set_head(fixed(101));
    syncer
        .run_once(&stop, Duration::from_secs(5), 1)
        .await
        .unwrap();
    let blocks: Vec<i64> = snapshots(&pool, 7).await.iter().map(|s| s.1).collect();
    assert_eq!(blocks, vec![100, 101]);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM neurons WHERE snapshot_id NOT IN (SELECT id FROM metagraph_snapshots)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);

    // The worker's view of the newest snapshot.
    let (info, worker_mg) = db.latest_metagraph(7).await.unwrap().unwrap();
    assert_eq!(
        (info.block, worker_mg.block, worker_mg.netuid),
        (101, 101, 7)
    );
    assert_eq!(worker_mg.neurons.len(), 6);
    assert_eq!(worker_mg.neurons[3].axon_ip, "2001:db8::1");
    assert!(worker_mg.neurons[0].is_validator(4096.0));
    let age = db.snapshot_age(7).await.unwrap().unwrap();
    assert!(age < Duration::from_secs(60), "{age:?}");
    assert!(db.snapshot_age(8).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_at_a_time() {
    let mg = our_metagraph(3);
    let chain = FakeChain::from_metagraph(&mg, Head::clock(Duration::from_millis(100))).unwrap();
    let server = chain.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (db, pool) = migrated_db("lock").await;

    // While someone holds the lock, --once waits and then gives up without writing.
    let held = db.try_lock_sync(3).await.unwrap().unwrap();
    assert!(db.try_lock_sync(3).await.unwrap().is_none());
    assert!(db.try_lock_sync(4).await.unwrap().is_some(), "per netuid");
    let syncer = Syncer::new(fast_config(&server.ws_url(), 3), db.clone(), None)
        .await
        .unwrap();
    let err = syncer
        .run_once(&CancellationToken::new(), Duration::from_millis(400), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::LockTimeout { netuid: 3, .. }),
        "{err}"
    );
    assert!(snapshots(&pool, 3).await.is_empty());
    held.release().await;

    // Two looping replicas: never both leaders, snapshots keep coming, blocks never repeat.
    let a = Arc::new(
        Syncer::new(fast_config(&server.ws_url(), 3), db.clone(), None)
            .await
            .unwrap(),
    );
    let b = Arc::new(
        Syncer::new(fast_config(&server.ws_url(), 3), db.clone(), None)
            .await
            .unwrap(),
    );
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let ta = tokio::spawn({
        let (a, s) = (a.clone(), stop_a.clone());
        async move { a.run(s).await }
    });
    let tb = tokio::spawn({
        let (b, s) = (b.clone(), stop_b.clone());
        async move { b.run(s).await }
    });
    let start = Instant::now();
    let mut seen_leader = false;
    while start.elapsed() < Duration::from_secs(2) {
        let (la, lb) = (a.status().view().leader, b.status().view().leader);
        assert!(!(la && lb), "two leaders");
        seen_leader |= la || lb;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_leader);
    let before = snapshots(&pool, 3).await;
    assert!(before.len() >= 3, "{before:?}");
    let mut blocks: Vec<i64> = before.iter().map(|s| s.1).collect();
    blocks.dedup();
    assert_eq!(blocks.len(), before.len(), "a block stored twice");

    // The leader stops: the standby takes over and snapshots keep coming.
    let (leader_stop, standby) = if a.status().view().leader {
        (stop_a.clone(), b.clone())
    } else {
        (stop_b.clone(), a.clone())
    };
    leader_stop.cancel();
    wait_for(
        "the standby to take over",
        Duration::from_secs(10),
        async || standby.status().view().leader,
    )
    .await;
    let last = before.last().map(|s| s.0).unwrap_or_default();
    wait_for(
        "a snapshot from the new leader",
        Duration::from_secs(10),
        async || {
            snapshots(&pool, 3)
                .await
                .last()
                .map(|s| s.0)
                .unwrap_or_default()
                > last + 1
        },
    )
    .await;
    stop_a.cancel();
    stop_b.cancel();
    ta.await.unwrap();
    tb.await.unwrap();
    assert!(
        db.try_lock_sync(3).await.unwrap().is_some(),
        "lock released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_outages_back_off_and_keep_the_last_snapshot() {
    let mg = our_metagraph(5);
    let chain = FakeChain::from_metagraph(&mg, Head::clock(Duration::from_millis(100))).unwrap();
    let server = chain.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.addr();
    let (db, pool) = migrated_db("outage").await;
    let syncer = Arc::new(
        Syncer::new(fast_config(&server.ws_url(), 5), db.clone(), None)
            .await
            .unwrap(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (s, t) = (syncer.clone(), stop.clone());
        async move { s.run(t).await }
    });
    wait_for("a first snapshot", Duration::from_secs(10), async || {
        !snapshots(&pool, 5).await.is_empty()
    })
    .await;

    // The node answers errors: syncs fail, the snapshot stays, the loop goes on.
    chain.set_failing(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = db.latest_snapshot(5).await.unwrap().unwrap();
    wait_for(
        "failures to be recorded",
        Duration::from_secs(10),
        async || syncer.status().view().consecutive_failures >= 2,
    )
    .await;
    assert!(
        syncer
            .status()
            .view()
            .last_error
            .unwrap_or_default()
            .contains("simulated outage")
    );
    assert_eq!(db.latest_snapshot(5).await.unwrap().unwrap(), kept);

    // The node goes away altogether: same.
    chain.set_failing(false);
    drop(server);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(db.latest_snapshot(5).await.unwrap().unwrap(), kept);
    let (_, mg_kept) = db.latest_metagraph(5).await.unwrap().unwrap();
    assert_eq!(mg_kept.neurons.len(), 6);
    assert!(syncer.status().view().last_error.is_some());

    // It comes back at the same address: the syncer reconnects and resumes.
    let _server = chain.start(addr).await.unwrap();
    wait_for(
        "a snapshot after the outage",
        Duration::from_secs(15),
        async || db.latest_snapshot(5).await.unwrap().unwrap().id > kept.id,
    )
    .await;
    assert!(syncer.status().view().last_error.is_none());
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_errors_and_store_nothing() {
    let mg = our_metagraph(1);
    let chain = FakeChain::from_metagraph(&mg, fixed(9)).unwrap();
    let server = chain.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (db, pool) = migrated_db("malformed").await;
    let syncer = Syncer::new(fast_config(&server.ws_url(), 1), db.clone(), None)
        .await
        .unwrap();
    let (neurons, state) = encode_metagraph(&mg).unwrap();
    let once = async || {
        syncer
            .run_once(&CancellationToken::new(), Duration::from_secs(5), 1)
            .await
    };

    chain.set_subnet(1, neurons[..neurons.len() - 3].to_vec(), state.clone());
    let err = once().await.unwrap_err().to_string();
    assert!(
        err.contains("NeuronInfoRuntimeApi_get_neurons_lite") && err.contains("truncated"),
        "{err}"
    );
    chain.set_subnet(1, neurons.clone(), state[..10].to_vec());
    let err = once().await.unwrap_err().to_string();
    assert!(
        err.contains("SubnetInfoRuntimeApi_get_subnet_state"),
        "{err}"
    );
    chain.set_subnet(1, vec![0], vec![0]);
    let err = once().await.unwrap_err().to_string();
    assert!(err.contains("no neurons"), "{err}");
    // Neurons of another netuid than asked for.
    let (other, other_state) = encode_metagraph(&our_metagraph(2)).unwrap();
    chain.set_subnet(1, other, other_state);
    let err = once().await.unwrap_err().to_string();
    assert!(err.contains("belongs to netuid 2"), "{err}");
    assert!(snapshots(&pool, 1).await.is_empty());

    // And the good bytes again: stored.
    chain.set_subnet(1, neurons, state);
    assert!(once().await.unwrap().stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_snapshots_but_never_the_newest() {
    let (db, pool) = migrated_db("retention").await;
    let mut lock = db.try_lock_sync(2).await.unwrap().unwrap();
    let mg = our_metagraph(2);
    let (n, s) = encode_metagraph(&mg).unwrap();
    let snap = sn1_metagraph_syncer::snapshot::decode_snapshot(2, 0, "0x", &n, &s).unwrap();
    for block in 1..=5u64 {
        lock.store_snapshot(block, &format!("0x{block:02x}"), &snap.rows)
            .await
            .unwrap();
    }
    let keep2 = Retention {
        max_age: None,
        keep_last: Some(2),
    };
    assert_eq!(lock.prune(keep2).await.unwrap(), 3);
    let left: Vec<i64> = snapshots(&pool, 2).await.iter().map(|s| s.1).collect();
    assert_eq!(left, vec![4, 5]);
    let neurons: i64 = sqlx::query_scalar("SELECT count(*) FROM neurons")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(neurons, 2 * 6, "neurons of pruned snapshots deleted");

    // By age: both are "old", yet the newest stays.
    sqlx::query("UPDATE metagraph_snapshots SET taken_at = now() - interval '8 days'")
        .execute(&pool)
        .await
        .unwrap();
    let week = Retention {
        max_age: Some(Duration::from_secs(7 * 86_400)),
        keep_last: None,
    };
    assert_eq!(lock.prune(week).await.unwrap(), 1);
    let left: Vec<i64> = snapshots(&pool, 2).await.iter().map(|s| s.1).collect();
    assert_eq!(left, vec![5]);
    let age = db.snapshot_age(2).await.unwrap().unwrap();
    assert!(age > Duration::from_secs(7 * 86_400), "{age:?}");
    assert_eq!(lock.prune(Retention::default()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_database_is_a_clear_error() {
    let url = sn1_contracts::store::testing::fresh_database("nomig")
        .await
        .expect("Postgres on 127.0.0.1:5432");
    let store = Store::postgres(&url, 2).await.unwrap();
    let err = Syncer::new(fast_config("ws://127.0.0.1:9", 1), store, None)
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("metagraph") && err.contains("sn1-gateway migrate"),
        "{err}"
    );
}
