//! Where the worker connects: a metagraph from the chain (a snapshot in a fresh Postgres
//! database, as the syncer writes it) whose miner listens on a non-public address (the
//! simulated miners are on loopback) is never asked unless `--axon-allow` admits it, while the
//! same neurons from a metagraph file, the operator's own list, are asked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use sn1_bittensor::dendrite::{Dendrite, DendriteConfig, MinerProtocol};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::synapse::SynapseShape;
use sn1_contracts::job::ChatJob;
use sn1_simnet::chain::encode_metagraph;
use sn1_simnet::fleet::Fleet;
use sn1_simnet::miner::{SimMinerConfig, sim_hotkey};
use sn1_worker::WorkerConfig;
use sn1_worker::axon_policy::{AxonPolicy, Cidr};
use sn1_worker::directory::Directory;
use sn1_worker::job::{JobRunner, JobStatus};
use sn1_worker::selection::SelectionPolicy;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn runner(directory: Directory) -> JobRunner {
    let hotkey = Hotkey::from_seed_hex(&format!("0x{}", "11".repeat(32))).unwrap();
    JobRunner {
        dendrite: Dendrite::new(hotkey, DendriteConfig::default()).unwrap(),
        directory,
        config: WorkerConfig {
            instance_id: "test".into(),
            concurrency: 1,
            protocol: MinerProtocol::Synapse(SynapseShape::Classic),
            first_byte_timeout: Duration::from_secs(5),
            max_reply_bytes: 64 * 1024,
            selection: SelectionPolicy::default(),
            heartbeat_interval: Duration::from_secs(1),
            progress_interval: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(1),
            quality: Default::default(),
        },
    }
}

/// A /chat job asking `k` miners, accepted and due far ahead.
fn job(k: u16) -> ChatJob {
    serde_json::from_value(serde_json::json!({
        "request_id": format!("axon-policy-{:08x}", rand::random::<u32>()),
        "endpoint": "chat",
        "api_key_id": "test",
        "created_at": "2026-01-01T00:00:00Z",
        "accept_by": "2100-01-01T00:00:00Z",
        "deadline": "2100-01-01T00:00:00Z",
        "params": {
            "k": k, "exclude": [], "roles": ["user"], "messages": ["hello there"],
            "strategy": "first", "sampling_mode": "random"
        }
    }))
    .unwrap()
}

async fn run(directory: Directory, k: u16) -> JobStatus {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let summary = runner(directory)
        .process(&job(k), CancellationToken::new(), tx)
        .await;
    drain.await.unwrap();
    summary.status
}

fn calls(fleet: &Fleet) -> usize {
    fleet.miners().iter().map(|m| m.calls().len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_axon_on_a_private_address_is_never_asked_but_the_same_file_entry_is() {
    let configs = (0..2)
        .map(|uid| SimMinerConfig::new(uid, sim_hotkey(uid).unwrap()))
        .collect();
    let fleet = Fleet::start_with(configs).await.unwrap();
    let mut mg = fleet.metagraph().clone();
    assert!(mg.neurons.iter().all(|n| n.axon_ip == "127.0.0.1"));

    // The snapshot as the syncer stores it: chain bytes decoded into rows.
    let (db, _pool) = migrated_db("axonpolicy").await;
    let (n, s) = encode_metagraph(&mg).unwrap();
    let snap = sn1_metagraph_syncer::snapshot::decode_snapshot(1, 0, "0x", &n, &s).unwrap();
    let mut lock = db.try_lock_sync(1).await.unwrap().unwrap();
    lock.store_snapshot(5, "0x05", &snap.rows).await.unwrap();
    drop(lock);

    // From the chain, no allowlist: both loopback miners are left out, the job finds no
    // candidate and no request is sent.
    let strict = Directory::from_store(db.clone(), 1, AxonPolicy::default())
        .await
        .unwrap();
    assert!(strict.snapshot().neurons.is_empty());
    assert_eq!(run(strict, 2).await, JobStatus::NoCandidates);
    assert_eq!(calls(&fleet), 0, "a refused miner was asked");

    // A /32 allowlist that admits another address changes nothing.
    let other = AxonPolicy {
        allow: vec!["127.0.0.2".parse::<Cidr>().unwrap()],
    };
    let narrow = Directory::from_store(db.clone(), 1, other).await.unwrap();
    assert_eq!(run(narrow, 2).await, JobStatus::NoCandidates);
    assert_eq!(calls(&fleet), 0, "a refused miner was asked");

    // Allowed explicitly, they are asked.
    let allowed = AxonPolicy {
        allow: vec![Cidr::IPV4_LOOPBACK],
    };
    let admitted = Directory::from_store(db.clone(), 1, allowed).await.unwrap();
    assert_eq!(admitted.snapshot().neurons.len(), 2);
    assert_eq!(run(admitted, 1).await, JobStatus::Answered);
    assert_eq!(calls(&fleet), 1);

    // The same neurons in a metagraph file: the operator's list, used as written.
    let dir = tempdir();
    let path = dir.join("mg.json");
    mg.block = 5;
    std::fs::write(&path, serde_json::to_vec(&mg).unwrap()).unwrap();
    let file = Directory::from_file(&path).unwrap();
    assert_eq!(run(file, 2).await, JobStatus::Answered);
    assert!(calls(&fleet) >= 2, "the file's miners were not asked");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sn1-axon-policy-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
