//! Helpers shared by the syncer's tests: a fresh migrated Postgres database per test (the local
//! server on 127.0.0.1:5432, as `scripts/services.sh` sets up), the recorded fixtures beside the
//! repository, fast syncer settings, and a metagraph of our own to encode.

#![allow(
    dead_code,
    reason = "each test crate uses a different part of these helpers"
)]

use sn1_contracts::metagraph::{Metagraph, Neuron};
use sn1_contracts::store::Store;
use sn1_metagraph_syncer::SyncerConfig;
use sqlx::postgres::PgPool;
use std::path::PathBuf;
use std::time::Duration;

/// `shared/protocol/fixtures` beside the repository.
pub const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/protocol/fixtures"
);

/// The fixtures directory, or `None` after saying clearly that the test is skipped.
pub fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(FIXTURES);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: the recorded finney fixtures are not at {} (they are in CI)",
            dir.display()
        );
        None
    }
}

/// A fresh database with every migration applied: the store on it, and a pool for the
/// tests' own SQL.
pub async fn migrated_db(tag: &str) -> (Store, PgPool) {
    let url = sn1_contracts::store::testing::fresh_database(tag)
        .await
        .expect("Postgres on 127.0.0.1:5432 (run scripts/services.sh)");
    let store = Store::postgres(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pool) = store.clone() else {
        unreachable!("a Postgres store")
    };
    (store, pool)
}

/// Syncer settings for tests: short interval, timeouts and back-off.
pub fn fast_config(chain_url: &str, netuid: u16) -> SyncerConfig {
    let mut c = SyncerConfig::new(chain_url, netuid);
    c.interval = Duration::from_millis(200);
    c.rpc_timeout = Duration::from_secs(5);
    c.max_backoff = Duration::from_millis(500);
    c.lock_retry = Duration::from_millis(100);
    c
}

/// A small metagraph with real SS58 hotkeys: uid 0 a validator (permit, 5000 τ), uid 2 not
/// serving, uid 3 on IPv6, uids 4 and 5 sharing a coldkey and an IP.
pub fn our_metagraph(netuid: u16) -> Metagraph {
    let neuron = |uid: u16, ip: &str, port: u16| Neuron {
        uid,
        hotkey: sn1_bittensor::ss58::encode(&[uid as u8 + 1; 32]),
        coldkey: sn1_bittensor::ss58::encode(&[0xc0 + uid as u8; 32]),
        active: uid.is_multiple_of(2),
        axon_ip: ip.into(),
        axon_port: port,
        axon_ip_type: if ip.contains(':') { 6 } else { 4 },
        stake_tao: f64::from(uid) * 1.5,
        incentive: f64::from(uid) / 10.0,
        validator_permit: false,
    };
    let mut neurons = vec![
        neuron(0, "10.0.0.1", 8091),
        neuron(1, "10.0.0.2", 8092),
        neuron(2, "0.0.0.0", 0),
        neuron(3, "2001:db8::1", 8094),
        neuron(4, "10.0.0.5", 8095),
        neuron(5, "10.0.0.5", 8096),
    ];
    neurons[0].validator_permit = true;
    neurons[0].stake_tao = 5000.0;
    neurons[5].coldkey = neurons[4].coldkey.clone();
    Metagraph {
        netuid,
        block: 0,
        neurons,
    }
}

/// Snapshots of `netuid` as (id, block), oldest first.
pub async fn snapshots(pool: &PgPool, netuid: u16) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT id, block FROM metagraph_snapshots WHERE netuid = $1 ORDER BY id")
        .bind(i32::from(netuid))
        .fetch_all(pool)
        .await
        .unwrap()
}
