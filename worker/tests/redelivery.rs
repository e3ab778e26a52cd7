//! A job pulled after the api stopped waiting for it (a redelivery, or a backlog) is skipped:
//! no miner is asked and no event is sent. A fresh job runs; echo needs no miner.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use chrono::{Duration, Utc};
use sn1_bittensor::dendrite::{Dendrite, DendriteConfig, MinerProtocol};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::synapse::SynapseShape;
use sn1_contracts::job::{ChatJob, ChatParams, Endpoint, SamplingMode, Strategy};
use sn1_contracts::metagraph::{Metagraph, Neuron};
use sn1_worker::WorkerConfig;
use sn1_worker::directory::Directory;
use sn1_worker::job::{JobRunner, JobStatus};
use sn1_worker::selection::SelectionPolicy;
use tokio_util::sync::CancellationToken;

fn runner() -> JobRunner {
    let hotkey = Hotkey::from_seed_hex(&format!("0x{}", "11".repeat(32))).unwrap();
    JobRunner {
        dendrite: Dendrite::new(hotkey, DendriteConfig::default()).unwrap(),
        directory: Directory::fixed(Metagraph {
            netuid: 1,
            block: 0,
            neurons: vec![Neuron {
                uid: 0,
                hotkey: "5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7".into(),
                coldkey: String::new(),
                active: true,
                // Nothing listens here: had the job run, the miner row would say so.
                axon_ip: "127.0.0.1".into(),
                axon_port: 9,
                axon_ip_type: 4,
                stake_tao: 0.0,
                incentive: 0.0,
                validator_permit: false,
            }],
        }),
        config: WorkerConfig {
            instance_id: "test".into(),
            concurrency: 1,
            protocol: MinerProtocol::Synapse(SynapseShape::Classic),
            first_byte_timeout: std::time::Duration::from_secs(1),
            max_reply_bytes: 1024,
            selection: SelectionPolicy::default(),
            heartbeat_interval: std::time::Duration::from_secs(1),
            progress_interval: std::time::Duration::from_secs(5),
            drain_timeout: std::time::Duration::from_secs(1),
            quality: Default::default(),
        },
    }
}

fn job(accept_by: chrono::DateTime<Utc>, endpoint: Endpoint) -> ChatJob {
    ChatJob {
        request_id: uuid::Uuid::now_v7().to_string(),
        events_to: String::new(),
        endpoint,
        api_key_id: "test".into(),
        created_at: Utc::now() - Duration::seconds(30),
        accept_by,
        deadline: Utc::now() + Duration::seconds(5),
        attempt: 0,
        params: ChatParams {
            k: 1,
            exclude: vec![],
            roles: vec!["user".into()],
            messages: vec!["hello there".into()],
            strategy: Strategy::First,
            sampling_mode: SamplingMode::Random,
            sampling: Default::default(),
        },
    }
}

#[tokio::test]
async fn a_job_past_its_accept_time_is_skipped_without_events() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let expired = job(Utc::now() - Duration::seconds(1), Endpoint::Chat);
    let summary = runner()
        .process(&expired, CancellationToken::new(), tx)
        .await;
    assert_eq!(summary.status, JobStatus::Skipped);
    assert!(summary.miners.is_empty());
    assert!(rx.recv().await.is_none(), "no event for a skipped job");
}

#[tokio::test]
async fn a_fresh_job_runs_and_reports_the_failed_miner() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let fresh = job(Utc::now() + Duration::seconds(5), Endpoint::Chat);
    let summary = runner().process(&fresh, CancellationToken::new(), tx).await;
    assert_eq!(summary.status, JobStatus::NoAnswer);
    assert_eq!(summary.miners.len(), 1);
    assert_eq!(
        sn1_worker::audit::miner_outcome(&summary.miners[0]),
        "connect_failure"
    );
    let mut kinds = Vec::new();
    while let Ok(e) = rx.try_recv() {
        kinds.push(
            serde_json::to_value(&e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(kinds.first().map(String::as_str), Some("accepted"));
    assert_eq!(kinds.last().map(String::as_str), Some("error"));
}

#[tokio::test]
async fn echo_returns_the_words() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let echo = job(Utc::now() + Duration::seconds(5), Endpoint::Echo);
    let summary = runner().process(&echo, CancellationToken::new(), tx).await;
    assert_eq!(summary.status, JobStatus::Echo);
    assert_eq!(summary.completion, "hello there");
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4, "accepted, two chunks, done");
}
