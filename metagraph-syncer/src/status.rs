//! What the syncer reports about itself: whether this replica holds the lock, the last block
//! and error, as JSON on `/readyz` and as Prometheus metrics:
//!
//! * `sn1_metagraph_snapshot_age_seconds{netuid}` — age of the newest stored snapshot;
//! * `sn1_metagraph_syncs_total{netuid,outcome}` — `stored`, `unchanged` or `error`;
//! * `sn1_metagraph_sync_duration_seconds{netuid}` — one sync, RPC to commit;
//! * `sn1_metagraph_neurons{netuid}`, `sn1_metagraph_block{netuid}` — of the last sync;
//! * `sn1_metagraph_syncer_leader{netuid}` — 1 on the replica holding the lock.

use crate::syncer::{SyncError, SyncReport};
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;

/// A snapshot of the syncer's state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatusView {
    /// Subnet.
    pub netuid: u16,
    /// Whether this replica holds the lock (writes).
    pub leader: bool,
    /// Block of the last successful sync.
    pub last_block: Option<u64>,
    /// Snapshot id of the last successful sync.
    pub last_snapshot_id: Option<i64>,
    /// The last error, cleared by a success.
    pub last_error: Option<String>,
    /// Failed syncs since the last success.
    pub consecutive_failures: u32,
}

/// The syncer's shared state.
#[derive(Debug, Default)]
pub struct SyncStatus {
    view: Mutex<StatusView>,
}

impl SyncStatus {
    /// A fresh status for `netuid`.
    pub fn new(netuid: u16) -> Self {
        SyncStatus {
            view: Mutex::new(StatusView {
                netuid,
                ..StatusView::default()
            }),
        }
    }

    fn update(&self, f: impl FnOnce(&mut StatusView)) {
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut v);
    }

    /// The current state.
    pub fn view(&self) -> StatusView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn netuid(&self) -> String {
        self.view().netuid.to_string()
    }

    /// Records whether this replica holds the lock.
    pub fn set_leader(&self, leader: bool) {
        self.update(|v| v.leader = leader);
        metrics::gauge!("sn1_metagraph_syncer_leader", "netuid" => self.netuid()).set(if leader {
            1.0
        } else {
            0.0
        });
    }

    /// Records an error outside a sync (e.g. the lock query).
    pub fn record_error(&self, error: &str) {
        self.update(|v| {
            v.last_error = Some(error.to_string());
            v.consecutive_failures = v.consecutive_failures.saturating_add(1);
        });
    }

    /// Records the outcome of one sync.
    pub fn record(&self, result: &Result<SyncReport, SyncError>, took: Duration) {
        let netuid = self.netuid();
        match result {
            Ok(r) => {
                self.update(|v| {
                    v.last_block = Some(r.snapshot.block);
                    v.last_snapshot_id = Some(r.snapshot.id);
                    v.last_error = None;
                    v.consecutive_failures = 0;
                });
                let outcome = if r.stored { "stored" } else { "unchanged" };
                metrics::counter!("sn1_metagraph_syncs_total", "netuid" => netuid.clone(), "outcome" => outcome)
                    .increment(1);
                metrics::histogram!("sn1_metagraph_sync_duration_seconds", "netuid" => netuid.clone())
                    .record(took.as_secs_f64());
                metrics::gauge!("sn1_metagraph_neurons", "netuid" => netuid.clone())
                    .set(r.neurons as f64);
                metrics::gauge!("sn1_metagraph_block", "netuid" => netuid)
                    .set(r.snapshot.block as f64);
            }
            Err(SyncError::Cancelled) => {}
            Err(e) => {
                self.record_error(&e.to_string());
                metrics::counter!("sn1_metagraph_syncs_total", "netuid" => netuid, "outcome" => "error")
                    .increment(1);
            }
        }
    }

    /// Publishes the age of the newest snapshot.
    pub fn set_snapshot_age(&self, age: Option<Duration>) {
        let value = age.map_or(f64::NAN, |a| a.as_secs_f64());
        metrics::gauge!("sn1_metagraph_snapshot_age_seconds", "netuid" => self.netuid()).set(value);
    }
}
