//! The syncer's readiness for the shared operations endpoints ([`sn1_telemetry::ops`]): ready
//! while the newest snapshot of the netuid is younger than `stale_after` (on every replica,
//! leader or standby); `sn1_metagraph_snapshot_age_seconds` is read from the store at scrape.

use crate::status::SyncStatus;
use serde_json::json;
use sn1_contracts::store::Store;
use sn1_telemetry::ops::Probe;
use std::sync::Arc;
use std::time::Duration;

/// What `/readyz` of a syncer checks.
#[derive(Clone)]
pub struct SyncerProbe {
    /// Where snapshots are.
    pub store: Store,
    /// The syncer's status.
    pub status: Arc<SyncStatus>,
    /// Older than this, the newest snapshot is stale (not ready).
    pub stale_after: Duration,
}

impl SyncerProbe {
    /// The newest snapshot's age, or why it is unknown.
    async fn age(&self) -> Result<Option<Duration>, String> {
        let netuid = self.status.view().netuid;
        match tokio::time::timeout(Duration::from_secs(2), self.store.snapshot_age(netuid)).await {
            Ok(Ok(age)) => Ok(age),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("database did not answer within 2s".into()),
        }
    }
}

impl Probe for SyncerProbe {
    async fn readiness(&self) -> (bool, serde_json::Value) {
        let view = self.status.view();
        let age = self.age().await;
        let fresh = matches!(&age, Ok(Some(a)) if *a <= self.stale_after);
        let (age_secs, db_error) = match age {
            Ok(a) => (a.map(|a| a.as_secs_f64()), None),
            Err(e) => (None, Some(e)),
        };
        let details = json!({
            "netuid": view.netuid,
            "leader": view.leader,
            "snapshot_age_seconds": age_secs,
            "stale_after_seconds": self.stale_after.as_secs_f64(),
            "last_block": view.last_block,
            "last_snapshot_id": view.last_snapshot_id,
            "last_error": view.last_error,
            "consecutive_failures": view.consecutive_failures,
            "database_error": db_error,
        });
        (fresh, details)
    }

    async fn before_scrape(&self) {
        if let Ok(age) = self.age().await {
            self.status.set_snapshot_age(age);
        }
    }
}
