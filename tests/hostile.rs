//! Hostile miners against a real worker process (README "Security"): the memory a job may hold
//! is bounded however much the miners send. Before the one-copy-per-reply budget, four
//! concurrent k=256 requests against miners sending 256 KiB each took a worker from 14 MB to
//! 646 MB RSS.

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
use std::time::Duration;

/// Miners in the fleet, and asked by each request.
const MINERS: u16 = 64;
/// Requests at once.
const REQUESTS: usize = 4;
/// What each miner sends: the worker's reply cap.
const REPLY_BYTES: usize = 256 * 1024;
/// The worker's RSS may grow by this much at most: four jobs, each holding at most its 8 MiB
/// text budget (plus the dendrite's copy of the replies in flight, so about twice that), and
/// room for the allocator and the connections (the code before the budget held each reply
/// three times over: about 190 MiB here).
const RSS_GROWTH_CAP_MIB: u64 = 96;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_sending_the_most_they_may_leave_a_worker_within_its_memory_budget() {
    let configs = (0..MINERS)
        .map(|uid| {
            let mut c = SimMinerConfig::new(uid, sim_hotkey(uid).unwrap());
            c.misbehaviour = Some(Misbehaviour::Oversize(REPLY_BYTES));
            c.reply.chunk_delay = Duration::from_millis(2);
            c
        })
        .collect();
    let fleet = Fleet::start_with(configs).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let stack = OwnedStack::start("hostile-rss", &mg, 1, 1, &[], &[]).await;
    let pid = stack.workers[0].pid().unwrap();
    // Warm up (connections, pools), then take the baseline.
    let small = json!({"k": 1, "timeout": 30, "roles": ["user"], "messages": ["warm up"]});
    post_ndjson(&stack.apis[0].url("/chat"), &stack.key, &small).await;
    let idle = rss_kib(pid).unwrap();

    let body = json!({
        "k": MINERS, "timeout": 60, "strategy": "longest",
        "roles": ["user"], "messages": ["send me everything"]
    });
    let url = stack.apis[0].url("/chat");
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (url, key, body) = (url.clone(), stack.key.clone(), body.clone());
            tokio::spawn(async move { post_ndjson(&url, &key, &body).await })
        })
        .collect();
    let mut peak = idle;
    while !requests.iter().all(|r| r.is_finished()) {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in requests {
        let out = r.await.unwrap();
        assert_eq!(out.status, 200);
        let (text, _) = check_stream_events(&out.events);
        assert!(
            text.len() >= REPLY_BYTES / 2,
            "an answer of {} bytes",
            text.len()
        );
    }
    let growth_mib = peak.saturating_sub(idle) / 1024;
    eprintln!("worker RSS: {idle} KiB idle, {peak} KiB peak (+{growth_mib} MiB)");
    assert!(
        growth_mib <= RSS_GROWTH_CAP_MIB,
        "{REQUESTS} requests of k={MINERS} x {REPLY_BYTES} bytes grew the worker by {growth_mib} MiB (cap {RSS_GROWTH_CAP_MIB})"
    );
}
