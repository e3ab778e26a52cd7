//! The worker's readiness for the shared operations endpoints ([`sn1_telemetry::ops`]): ready
//! while the bus is connected and a non-empty metagraph is loaded. At each scrape it also says
//! how long the worker has gone without taking a job while jobs wait in the queue
//! (`sn1_worker_seconds_without_job_while_waiting`: a stalled intake shows as a growing value)
//! and how long the oldest waiting job has waited (`sn1_queue_oldest_job_waiting_seconds`).
//! [`record_miner`] counts miner outcomes per uid, with bounded labels.

use crate::directory::Directory;
use serde_json::json;
use sn1_contracts::bus::Bus;
use sn1_telemetry::ops::Probe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// When the worker last took a job (Unix milliseconds; its start until it takes one).
#[derive(Clone, Debug)]
pub struct Intake(Arc<AtomicI64>);

impl Default for Intake {
    fn default() -> Self {
        Intake(Arc::new(AtomicI64::new(now_ms())))
    }
}

impl Intake {
    /// Records that a job was taken now.
    pub fn took_a_job(&self) {
        let now = now_ms();
        self.0.store(now, Ordering::Relaxed);
        metrics::gauge!("sn1_worker_last_job_taken_timestamp_seconds").set(now as f64 / 1e3);
    }

    /// Seconds since the last job was taken.
    pub fn idle_seconds(&self) -> f64 {
        (now_ms() - self.0.load(Ordering::Relaxed)).max(0) as f64 / 1e3
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What `/readyz` of a worker checks.
#[derive(Clone)]
pub struct WorkerProbe {
    /// The worker's bus.
    pub bus: Bus,
    /// The worker's metagraph.
    pub directory: Directory,
    /// The worker's intake.
    pub intake: Intake,
}

impl Probe for WorkerProbe {
    async fn readiness(&self) -> (bool, serde_json::Value) {
        let neurons = self.directory.snapshot().neurons.len();
        let nats = self.bus.is_connected();
        (
            nats && neurons > 0,
            json!({"nats": nats, "neurons": neurons, "seconds_since_last_job": self.intake.idle_seconds()}),
        )
    }

    async fn before_scrape(&self) {
        let Ok(waiting) = self.bus.jobs_waiting().await else {
            return;
        };
        metrics::gauge!("sn1_queue_jobs_waiting").set(waiting as f64);
        let stalled = if waiting > 0 {
            self.intake.idle_seconds()
        } else {
            0.0
        };
        metrics::gauge!("sn1_worker_seconds_without_job_while_waiting").set(stalled);
        // 0 when nothing waits (or, in-process, when it is not known).
        let oldest = match self.bus.oldest_job_waiting().await {
            Ok(Some(created)) => {
                (chrono::Utc::now() - created).num_milliseconds().max(0) as f64 / 1e3
            }
            Ok(None) => 0.0,
            Err(_) => return,
        };
        metrics::gauge!("sn1_queue_oldest_job_waiting_seconds").set(oldest);
    }
}

/// Miner uids that get a label of their own in `sn1_worker_miner_outcomes_total`; a uid at or
/// above it is counted as `other`. A subnet has at most `max_allowed_uids` neurons (256 on
/// SN1 today), so the series stay below 1024 uids x 7 outcomes per worker however the
/// metagraph churns; hotkeys and IPs, which are unbounded over time, are never labels.
pub const MINER_UID_LABELS: u16 = 1024;

/// Counts one miner's reply by uid and outcome class (see [`MINER_UID_LABELS`]), and its time
/// to first byte (no uid label: one histogram for all).
pub fn record_miner(record: &crate::fanout::MinerRecord, outcome: &'static str) {
    let uid = if record.target.uid < MINER_UID_LABELS {
        record.target.uid.to_string()
    } else {
        "other".to_string()
    };
    metrics::counter!("sn1_worker_miner_outcomes_total", "uid" => uid, "outcome" => outcome)
        .increment(1);
    if let Some(ttfb) = record.outcome.as_ref().and_then(|o| o.time_to_first_byte) {
        metrics::histogram!("sn1_worker_miner_ttfb_seconds").record(ttfb.as_secs_f64());
    }
}
