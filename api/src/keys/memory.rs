//! What an api replica keeps in memory about managed keys: the keys it admitted recently (let
//! in while the store is unreachable) and the usage it served but has not yet added to the
//! store.

use super::{REMEMBER_FOR, USAGE_EVERY};
use sn1_contracts::store::Store;
use sn1_contracts::store::keys::KeyUsage;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Managed keys this replica admitted recently (by hash), for when the store is unreachable.
#[derive(Debug, Default)]
pub struct RecentKeys {
    seen: Mutex<HashMap<String, (String, Instant)>>,
}

impl RecentKeys {
    pub(super) fn remember(&self, sha: &str, key_id: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(sha.to_string(), (key_id.to_string(), Instant::now()));
        }
    }

    pub(super) fn forget(&self, sha: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(sha);
        }
    }

    pub(super) fn recall(&self, sha: &str) -> Option<String> {
        let seen = self.seen.lock().ok()?;
        let (id, at) = seen.get(sha)?;
        (at.elapsed() < REMEMBER_FOR).then(|| id.clone())
    }
}

/// Usage of managed keys served by this replica and not yet in the store, per key id.
#[derive(Debug, Default)]
pub struct UsageTally {
    sums: Mutex<HashMap<String, KeyUsage>>,
}

impl UsageTally {
    pub(super) fn add(&self, key_id: &str, usage: KeyUsage) {
        if let Ok(mut sums) = self.sums.lock() {
            sums.entry(key_id.to_string()).or_default().add(usage);
        }
    }

    fn take(&self) -> Vec<(String, KeyUsage)> {
        self.sums
            .lock()
            .map(|mut sums| sums.drain().collect())
            .unwrap_or_default()
    }

    /// Adds what was tallied to the store in one statement; kept for the next time if the
    /// store refuses.
    pub async fn flush(&self, store: &Store) {
        let sums = self.take();
        if let Err(e) = store.add_key_usage(&sums).await {
            tracing::warn!(error = %e, keys = sums.len(), "key usage not written yet; kept for the next try");
            for (key_id, usage) in sums {
                self.add(&key_id, usage);
            }
        }
    }

    /// Flushes every [`USAGE_EVERY`] until `stop`, then once more.
    pub async fn run(&self, store: Store, stop: CancellationToken) {
        let mut every = tokio::time::interval(USAGE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.is_cancelled() {
            tokio::select! {
                _ = every.tick() => self.flush(&store).await,
                _ = stop.cancelled() => {}
            }
        }
        self.flush(&store).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_key_is_recalled_and_a_forgotten_one_is_not() {
        let recent = RecentKeys::default();
        assert_eq!(recent.recall("h"), None);
        recent.remember("h", "key-1");
        assert_eq!(recent.recall("h").as_deref(), Some("key-1"));
        recent.forget("h");
        assert_eq!(recent.recall("h"), None);
    }

    #[test]
    fn usage_is_summed_per_key_and_taken_once() {
        let tally = UsageTally::default();
        let one = KeyUsage {
            requests: 1,
            streams: 1,
            est_tokens: 10,
        };
        tally.add("a", one);
        tally.add("a", one);
        tally.add("b", one);
        let mut taken = tally.take();
        taken.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(taken[0].1.requests, 2);
        assert_eq!(taken[0].1.est_tokens, 20);
        assert_eq!(taken[1].0, "b");
        assert!(tally.take().is_empty());
    }
}
