//! Whether the key store can be reached at all, told apart from "busy": an admission that got
//! no verdict (or an error) asks, and the answer decides between failing open (unreachable:
//! keys admitted recently get in) and closed (busy: 503). Probes open a new connection of their
//! own — the pool's may all be taken, and a pool only says that it timed out, not why — one at
//! a time per replica (in a task of its own, so a caller that goes away does not cut it short),
//! each answer reused for [`REUSE`]. While the last probe said unreachable, admissions probe
//! first instead of waiting on the store, so an outage costs a request at most one probe, not
//! the admission timeout.

use sn1_contracts::store::Store;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a probe's answer is reused.
pub const REUSE: Duration = Duration::from_secs(1);

/// The longest a probe waits for a new connection: a server that takes longer to let a client
/// in is not serving (a new backend normally starts in milliseconds).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The last probe's answer, and one probe at a time.
#[derive(Debug, Default)]
pub struct StoreReach {
    last: Mutex<Option<(Instant, bool)>>,
    probing: tokio::sync::Mutex<()>,
}

impl StoreReach {
    /// Whether the last probe found the store unreachable (however long ago).
    pub fn was_down(&self) -> bool {
        self.last
            .lock()
            .map(|last| matches!(*last, Some((_, false))))
            .unwrap_or(false)
    }

    /// Whether `store` can be reached: the last probe's answer while under [`REUSE`] old,
    /// else a new probe (concurrent callers share it).
    pub async fn reachable(self: &Arc<Self>, store: &Store) -> bool {
        if let Some(up) = self.recent() {
            return up;
        }
        let _one_at_a_time = self.probing.lock().await;
        if let Some(up) = self.recent() {
            return up;
        }
        let (me, store) = (self.clone(), store.clone());
        let probe = tokio::spawn(async move {
            let up = store.reachable(PROBE_TIMEOUT).await;
            me.set(up);
            up
        });
        probe.await.unwrap_or(false)
    }

    fn recent(&self) -> Option<bool> {
        let last = self.last.lock().ok()?;
        last.filter(|(at, _)| at.elapsed() < REUSE)
            .map(|(_, up)| up)
    }

    fn set(&self, up: bool) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), up));
        }
        metrics::gauge!("sn1_api_key_store_reachable").set(if up { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_is_reused_for_a_second_and_down_is_remembered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::sqlite(&dir.path().join("s.sqlite3"))
            .await
            .expect("sqlite");
        let reach = Arc::new(StoreReach::default());
        assert!(!reach.was_down());
        reach.set(false);
        assert!(reach.was_down());
        // Reused: the store (SQLite, always reachable) is not asked yet.
        assert!(!reach.reachable(&store).await);
        *reach.last.lock().expect("lock") = Some((Instant::now() - REUSE, false));
        assert!(reach.reachable(&store).await);
        assert!(!reach.was_down());
    }
}
