//! Syncer → Postgres → worker directory, with the real NATS on 127.0.0.1:4222 carrying
//! `<prefix>.metagraph.updated`: a worker started before any snapshot is empty, picks the first
//! one up on the notification (its periodic check is set far away), and every later one too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use sn1_contracts::bus::{Bus, NatsBus, QueueConfig, Subjects};
use sn1_contracts::metagraph::MetagraphUpdated;
use sn1_contracts::store::Store;
use sn1_metagraph_syncer::Syncer;
use sn1_simnet::chain::{FakeChain, Head};
use sn1_worker::axon_policy::{AxonPolicy, Cidr};
use sn1_worker::directory::Directory;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// `our_metagraph`'s axons are private and documentation addresses, which a chain-sourced
/// metagraph refuses unless allowed: this test is about reloading, so it allows them.
fn its_addresses() -> AxonPolicy {
    AxonPolicy {
        allow: ["10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|c| c.parse::<Cidr>().unwrap())
            .collect(),
    }
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_load_the_newest_snapshot_on_notification() {
    let prefix = format!("tmg{:08x}", rand::random::<u32>());
    let subjects = Subjects::new(prefix.clone());
    let mut mg = our_metagraph(1);
    let chain = FakeChain::from_metagraph(
        &mg,
        Head::Fixed {
            number: 10,
            hash: format!("0x{:064x}", 10),
        },
    )
    .unwrap();
    let server = chain.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (db, _pool) = migrated_db("reload").await;

    // A worker's directory before any snapshot: empty, not an error.
    let directory = Directory::from_store(db.clone(), 1, its_addresses())
        .await
        .unwrap();
    assert!(directory.snapshot().neurons.is_empty());
    assert_eq!(directory.snapshot_id(), None);
    let bus = Bus::Nats(
        NatsBus::connect(&nats_url(), subjects.clone(), QueueConfig::default())
            .await
            .unwrap(),
    );
    let updates = bus.subscribe_metagraph_updates().await.unwrap();
    // A plain NATS client, to see the notice as it is on the wire.
    let raw_client = async_nats::connect(nats_url()).await.unwrap();
    let mut raw = raw_client
        .subscribe(subjects.metagraph_updated())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let follower = tokio::spawn({
        let (d, s) = (directory.clone(), stop.clone());
        async move {
            d.follow_updates(updates, Duration::from_secs(3600), s)
                .await
        }
    });

    let syncer = Syncer::new(
        fast_config(&server.ws_url(), 1),
        db.clone(),
        Some(bus.clone()),
    )
    .await
    .unwrap();
    let report = syncer
        .run_once(&stop, Duration::from_secs(5), 1)
        .await
        .unwrap();
    wait_for(
        "the worker to load the snapshot",
        Duration::from_secs(10),
        || directory.snapshot().neurons.len() == 6,
    )
    .await;
    assert_eq!(directory.snapshot_id(), Some(report.snapshot.id));
    assert_eq!(directory.snapshot().block, 10);

    // The notification is the small JSON the issue asks for.
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let update: MetagraphUpdated = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(
        update,
        MetagraphUpdated {
            netuid: 1,
            block: 10,
            snapshot_id: report.snapshot.id
        }
    );

    // A miner moves; the next block's snapshot reaches the worker too.
    mg.neurons[1].axon_port = 9999;
    chain.set_metagraph(&mg).unwrap();
    chain.set_head(Head::Fixed {
        number: 11,
        hash: format!("0x{:064x}", 11),
    });
    syncer
        .run_once(&stop, Duration::from_secs(5), 1)
        .await
        .unwrap();
    wait_for(
        "the worker to load block 11",
        Duration::from_secs(10),
        || directory.snapshot().block == 11,
    )
    .await;
    assert_eq!(directory.snapshot().neurons[1].axon_port, 9999);

    // Notifications for another netuid and malformed ones are ignored; the follower goes on.
    for payload in [r#"{"netuid":2,"block":99,"snapshot_id":99}"#, "not json"] {
        raw_client
            .publish(subjects.metagraph_updated(), payload.into())
            .await
            .unwrap();
    }
    raw_client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!follower.is_finished());
    assert_eq!(directory.snapshot().block, 11);
    stop.cancel();
    follower.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_database_stops_the_worker_clearly() {
    let url = sn1_contracts::store::testing::fresh_database("wnomig")
        .await
        .expect("Postgres on 127.0.0.1:5432");
    let store = Store::postgres(&url, 2).await.unwrap();
    let err = Directory::from_store(store, 1, AxonPolicy::default())
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("sn1-gateway migrate"), "{err}");
}
