//! Two processes that make the job queue at the same moment (an api and a worker starting
//! together on a fresh NATS) both succeed: NATS 2.9 answers the second creation of a stream
//! that appeared after its lookup with "subjects overlap", and the bus then takes the stream
//! that is there (300 rounds; without that, one of the first ~30 failed here). Runs against the machine's NATS (`NATS_URL`, default 127.0.0.1:4222), on
//! prefixes of its own that it deletes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use sn1_contracts::bus::{Bus, NatsBus, QueueConfig, Subjects};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[tokio::test]
async fn two_processes_making_the_job_queue_at_once_both_succeed() {
    let url = nats_url();
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    for round in 0..300 {
        let prefix = format!("trace{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let connect = || NatsBus::connect(&url, Subjects::new(&prefix), QueueConfig::default());
        let (a, b) = (
            Bus::Nats(connect().await.unwrap()),
            Bus::Nats(connect().await.unwrap()),
        );
        let (ra, rb) = tokio::join!(a.ensure_job_queue(), b.ensure_job_queue());
        let _ = js.delete_stream(Subjects::new(&prefix).jobs_stream()).await;
        assert!(ra.is_ok() && rb.is_ok(), "round {round}: {ra:?} {rb:?}");
    }
}
