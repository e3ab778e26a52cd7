//! The whole path on real mainnet bytes: the fake chain serves the recorded finney answers
//! (block 6852690, netuid 1; the legacy netuid-23 answer) over WebSocket, the syncer reads them
//! with subxt's RPC client, decodes and writes them to Postgres, and SQL on `latest_neurons`
//! gives what bittensor 10.5.0's own Metagraph reports. Read from `../shared/protocol/fixtures`;
//! without it each test says SKIPPED and passes. Also the selection rules on the decoded rows,
//! and the time one sync of the 1024-neuron snapshot takes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use sn1_contracts::job::Exclusion;
use sn1_contracts::job::SamplingMode;
use sn1_contracts::metagraph::{Metagraph, Neuron};
use sn1_contracts::store::StoreOutcome;
use sn1_metagraph_syncer::Syncer;
use sn1_metagraph_syncer::snapshot::decode_snapshot;
use sn1_simnet::chain::FakeChain;
use sn1_worker::reliability::Scoreboard;
use sn1_worker::selection::{SelectionPolicy, eligible, rank, sample};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const HASH: &str = "0xdb13c066e2c63969f140164fb3bfe7a0aaa7b71407fc0fe525d68e57329ef9d0";

fn text(dir: &Path, name: &str) -> String {
    let raw = std::fs::read(dir.join(name)).unwrap();
    if name.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(raw).unwrap()
    }
}

fn fixture_bytes(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let hex = |name| sn1_bittensor::metagraph::hex_result(&text(dir, name)).unwrap();
    (
        hex("finney_b6852690_netuid1_NeuronInfoRuntimeApi_get_neurons_lite.hex"),
        hex("finney_b6852690_netuid1_SubnetInfoRuntimeApi_get_subnet_state.hex.gz"),
    )
}

fn csv(dir: &Path) -> Vec<HashMap<String, String>> {
    let t = text(dir, "finney_b6852690_netuid1_expected_first16.csv");
    let mut lines = t.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    // The SDK's floats went through float32: agree to ~1e-7 relative.
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1e-9),
        "{what}: {a} vs SDK {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_chain_to_postgres_matches_the_sdk() {
    let Some(dir) = fixtures() else { return };
    let chain = FakeChain::from_fixture_dir(&dir).unwrap();
    let server = chain.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (db, pool) = migrated_db("fixture").await;
    let syncer = Syncer::new(fast_config(&server.ws_url(), 1), db.clone(), None)
        .await
        .unwrap();
    let started = Instant::now();
    let report = syncer
        .run_once(&CancellationToken::new(), Duration::from_secs(5), 1)
        .await
        .unwrap();
    eprintln!(
        "sync over ws of the 1024-neuron fixture: {:?} in all (fetch {:?}, decode {:?}, write {:?})",
        started.elapsed(),
        report.fetch_time,
        report.decode_time,
        report.write_time
    );
    assert!(report.stored);
    assert_eq!((report.neurons, report.serving), (1024, 827));
    assert_eq!(report.snapshot.block, 6_852_690);
    assert_eq!(report.snapshot.block_hash, HASH);

    // The syncer asked only what it should, with the SDK's param format, at the head.
    for call in chain.calls() {
        assert!(
            [
                "chain_getFinalizedHead",
                "chain_getHeader",
                "chain_getBlockHash",
                "state_call"
            ]
            .contains(&call.method.as_str()),
            "{call:?}"
        );
        if call.method == "state_call" {
            assert_eq!(call.params[1], "0100", "{call:?}");
            assert_eq!(call.params[2], HASH, "{call:?}");
        }
    }

    // Counts by SQL on the view people use.
    let row = sqlx::query(
        "SELECT count(*) AS n, \
           count(*) FILTER (WHERE axon_ip <> '0.0.0.0' AND axon_port <> 0) AS serving, \
           count(*) FILTER (WHERE validator_permit AND stake_tao >= 4096) AS validators, \
           count(*) FILTER (WHERE axon_ip <> '0.0.0.0' AND axon_port <> 0 \
             AND NOT (validator_permit AND stake_tao >= 4096)) AS candidates, \
           count(*) FILTER (WHERE axon_ip IS NULL) AS null_ips, \
           min(block) AS block \
         FROM latest_neurons WHERE netuid = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let get = |c: &str| row.get::<i64, _>(c);
    assert_eq!(
        (
            get("n"),
            get("serving"),
            get("validators"),
            get("candidates"),
            get("null_ips")
        ),
        (1024, 827, 12, 820, 0)
    );
    assert_eq!(get("block"), 6_852_690);

    // The first 16 rows, field for field, against the SDK's values.
    let rows =
        sqlx::query("SELECT * FROM latest_neurons WHERE netuid = 1 AND uid < 16 ORDER BY uid")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected = csv(&dir);
    assert_eq!((rows.len(), expected.len()), (16, 16));
    for (r, e) in rows.iter().zip(&expected) {
        let uid: i32 = r.get("uid");
        let num = |c: &str| e[c].parse::<f64>().unwrap();
        assert_eq!(uid.to_string(), e["uid"]);
        assert_eq!(r.get::<String, _>("hotkey"), e["hotkey"], "uid {uid}");
        assert_eq!(r.get::<String, _>("coldkey"), e["coldkey"], "uid {uid}");
        assert_eq!(r.get::<bool, _>("active"), e["active"] == "1", "uid {uid}");
        assert_eq!(r.get::<String, _>("axon_ip"), e["axon_ip"], "uid {uid}");
        assert_eq!(f64::from(r.get::<i32, _>("axon_port")), num("axon_port"));
        assert_eq!(
            f64::from(r.get::<i16, _>("axon_ip_type")),
            num("axon_ip_type")
        );
        assert_eq!(
            f64::from(r.get::<i16, _>("axon_protocol")),
            num("axon_protocol")
        );
        assert_eq!(r.get::<i64, _>("axon_version") as f64, num("axon_version"));
        let stake: f64 = r.get("stake_tao");
        assert_eq!(stake, num("state_total_stake_rao") / 1e9, "uid {uid}: S");
        close(stake, num("sdk_S"), &format!("uid {uid} stake_tao"));
        let incentive: f64 = r.get("incentive");
        assert_eq!(incentive, num("incentive_u16") / 65535.0);
        close(incentive, num("sdk_I"), &format!("uid {uid} incentive"));
        for (col, src) in [
            ("consensus", "consensus_u16"),
            ("dividends", "dividends_u16"),
            ("validator_trust", "validator_trust_u16"),
        ] {
            assert_eq!(r.get::<f64, _>(col), num(src) / 65535.0, "uid {uid} {col}");
        }
        assert_eq!(r.get::<f64, _>("emission_tao"), num("emission_rao") / 1e9);
        assert_eq!(r.get::<i64, _>("last_update") as f64, num("last_update"));
        assert_eq!(
            r.get::<bool, _>("validator_permit"),
            e["validator_permit"] == "1",
            "uid {uid}"
        );
    }

    // The legacy Vec<u8>-wrapped answer (netuid 23, no subnet state) goes through too.
    let syncer23 = Syncer::new(fast_config(&server.ws_url(), 23), db.clone(), None)
        .await
        .unwrap();
    let report = syncer23
        .run_once(&CancellationToken::new(), Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert_eq!(report.neurons, 19);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM latest_neurons WHERE netuid = 23")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_of_1024_neurons_decode_plus_write_timing() {
    let Some(dir) = fixtures() else { return };
    let (neurons, state) = fixture_bytes(&dir);
    let (db, pool) = migrated_db("timing").await;
    let mut lock = db.try_lock_sync(1).await.unwrap().unwrap();
    let mut totals = Vec::new();
    for i in 0..7u64 {
        let started = Instant::now();
        let snapshot = decode_snapshot(1, 6_852_690 + i, HASH, &neurons, &state).unwrap();
        let decoded = started.elapsed();
        let outcome = lock
            .store_snapshot(snapshot.block, HASH, &snapshot.rows)
            .await
            .unwrap();
        let total = started.elapsed();
        assert!(matches!(outcome, StoreOutcome::Stored(_)));
        eprintln!(
            "run {i}: decode {decoded:?} + write {:?} = {total:?} (1024 neurons, {} bytes)",
            total - decoded,
            neurons.len()
        );
        totals.push(total);
    }
    totals.sort();
    eprintln!(
        "one sync of the 1024-neuron snapshot (decode + write), median of 7: {:?}",
        totals[3]
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM neurons")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 7 * 1024);
}

fn fixture_metagraph(dir: &Path) -> Metagraph {
    let (neurons, state) = fixture_bytes(dir);
    let snapshot = decode_snapshot(1, 6_852_690, HASH, &neurons, &state).unwrap();
    Metagraph {
        netuid: 1,
        block: snapshot.block,
        neurons: snapshot.rows.iter().map(Neuron::from).collect(),
    }
}

#[test]
fn selection_rules_on_the_real_fixture() {
    let Some(dir) = fixtures() else { return };
    let mg = fixture_metagraph(&dir);
    assert_eq!(mg.neurons.len(), 1024);
    assert_eq!(mg.neurons.iter().filter(|n| n.is_serving()).count(), 827);
    let validators: HashSet<u16> = mg
        .neurons
        .iter()
        .filter(|n| n.is_validator(4096.0))
        .map(|n| n.uid)
        .collect();
    assert_eq!(validators.len(), 12);

    let policy = SelectionPolicy::default();
    let all = eligible(&mg, &[], &policy);
    assert_eq!(all.len(), 820);
    assert!(
        all.iter()
            .all(|n| n.is_serving() && !validators.contains(&n.uid))
    );
    // A lower threshold turns more permit holders into validators; a huge one none.
    let strict = SelectionPolicy {
        validator_stake_threshold: f64::INFINITY,
        ..SelectionPolicy::default()
    };
    let serving_validators = mg
        .neurons
        .iter()
        .filter(|n| n.is_serving() && validators.contains(&n.uid))
        .count();
    assert_eq!(eligible(&mg, &[], &strict).len(), 820 + serving_validators);

    // One per coldkey / IP, as every job's ranking applies them.
    let board = Scoreboard::new(Duration::from_secs(300));
    let kept = |p: &SelectionPolicy| {
        let pool = eligible(&mg, &[], p);
        rank(
            pool,
            0,
            SamplingMode::Random,
            p,
            &board,
            0.0,
            &mut rand::rng(),
        )
        .0
    };
    let per_coldkey = kept(&SelectionPolicy {
        one_per_coldkey: true,
        ..SelectionPolicy::default()
    });
    let coldkeys: HashSet<&str> = all.iter().map(|n| n.coldkey.as_str()).collect();
    assert_eq!(per_coldkey.len(), coldkeys.len());
    assert!(per_coldkey.len() < 820, "{}", per_coldkey.len());
    let per_ip = kept(&SelectionPolicy {
        one_per_ip: true,
        ..SelectionPolicy::default()
    });
    let ips: HashSet<&str> = all.iter().map(|n| n.axon_ip.as_str()).collect();
    assert_eq!(per_ip.len(), ips.len());
    assert!(per_ip.len() < 820, "{}", per_ip.len());
    eprintln!(
        "fixture: 820 candidates, {} with one per coldkey, {} with one per IP",
        per_coldkey.len(),
        per_ip.len()
    );

    // exclude by uid and hotkey.
    let first = all[0];
    let ex = [
        Exclusion::Uid(first.uid),
        Exclusion::Hotkey(all[1].hotkey.clone()),
    ];
    assert_eq!(eligible(&mg, &ex, &policy).len(), 818);

    // top_incentive by I. At this block all incentive goes to one neuron (I = 1) that serves no
    // axon, so no candidate has any; with three given some, those three come first, in order.
    let rich: Vec<&Neuron> = mg.neurons.iter().filter(|n| n.incentive > 0.0).collect();
    assert_eq!(rich.len(), 1);
    assert!(rich[0].incentive == 1.0 && !rich[0].is_serving());
    assert!(all.iter().all(|n| n.incentive == 0.0));
    let mut boosted = mg.clone();
    for (uid, i) in [(all[10].uid, 0.2), (all[400].uid, 0.5), (all[819].uid, 0.3)] {
        if let Some(n) = boosted.neurons.iter_mut().find(|n| n.uid == uid) {
            n.incentive = i;
        }
    }
    let pool = eligible(&boosted, &[], &policy);
    let picked = sample(pool, 4, SamplingMode::TopIncentive, &mut rand::rng());
    let got: Vec<(u16, f64)> = picked.iter().map(|n| (n.uid, n.incentive)).collect();
    assert_eq!(
        got[..3],
        [(all[400].uid, 0.5), (all[819].uid, 0.3), (all[10].uid, 0.2)]
    );
    assert_eq!(got[3].1, 0.0);
}
