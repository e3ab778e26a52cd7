//! What an api replica keeps in memory about managed keys: the keys it admitted recently (let
//! in while the store is unreachable) and the usage it served but has not yet added to the
//! store.

use super::{REMEMBER_FOR, USAGE_EVERY};
use chrono::{DateTime, Utc};
use sn1_contracts::store::Store;
use sn1_contracts::store::keys::KeyUsage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// A key admitted recently: its id, when, and when it expires.
type Seen = (String, Instant, Option<DateTime<Utc>>);

/// Managed keys this replica admitted recently (by hash), for when the store is unreachable.
#[derive(Debug, Default)]
pub struct RecentKeys {
    seen: Mutex<HashMap<String, Seen>>,
}

impl RecentKeys {
    pub(super) fn remember(&self, sha: &str, key_id: &str, expires_at: Option<DateTime<Utc>>) {
        if let Ok(mut seen) = self.seen.lock() {
            let entry = (key_id.to_string(), Instant::now(), expires_at);
            seen.insert(sha.to_string(), entry);
        }
    }

    pub(super) fn forget(&self, sha: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(sha);
        }
    }

    /// The id of key `sha` if it was admitted within [`REMEMBER_FOR`] and has not expired
    /// since (an expiry is known without the store; a revocation is not).
    pub(super) fn recall(&self, sha: &str) -> Option<String> {
        let seen = self.seen.lock().ok()?;
        let (id, at, expires_at) = seen.get(sha)?;
        let live = expires_at.is_none_or(|t| t > Utc::now());
        (at.elapsed() < REMEMBER_FOR && live).then(|| id.clone())
    }
}

/// Managed-key admissions waiting for the store. One key's admissions go to the store one at a
/// time per replica (they would queue on the key's row anyway, each holding a connection), at
/// most [`PendingAdmissions::IN_FLIGHT`] of all keys use it at once (the pool keeps room for
/// the rest), and at most [`PendingAdmissions::PER_KEY`] of one key wait: a flood of one key is
/// refused here, before it holds the store's connections.
#[derive(Debug)]
pub struct PendingAdmissions {
    per_key: Mutex<HashMap<String, (Arc<Semaphore>, usize)>>,
    in_flight: Arc<Semaphore>,
}

impl Default for PendingAdmissions {
    fn default() -> Self {
        PendingAdmissions {
            per_key: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(Self::IN_FLIGHT)),
        }
    }
}

impl PendingAdmissions {
    /// Admissions of one key that may wait at once on one replica.
    pub const PER_KEY: usize = 256;
    /// Admissions using the store at once (the api's pool has 16 connections).
    pub const IN_FLIGHT: usize = 12;

    /// A place in key `sha`'s queue, or `None` when it is full.
    pub(super) fn enter(self: &Arc<Self>, sha: &str) -> Option<Waiting> {
        let mut per_key = self.per_key.lock().ok()?;
        let (turn, waiting) = per_key
            .entry(sha.to_string())
            .or_insert_with(|| (Arc::new(Semaphore::new(1)), 0));
        if *waiting >= Self::PER_KEY {
            return None;
        }
        *waiting += 1;
        Some(Waiting {
            queue: self.clone(),
            sha: sha.to_string(),
            turn: turn.clone(),
        })
    }
}

/// A waiting admission; leaves the queue when dropped (after the store answered it: it moves
/// into the admission's task with its turn).
pub(super) struct Waiting {
    queue: Arc<PendingAdmissions>,
    sha: String,
    turn: Arc<Semaphore>,
}

/// This key's turn and a place at the store: held until the store has answered (even after
/// its client stopped waiting: the key's row would be locked anyway).
pub(super) type Turn = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Waiting {
    /// Waits for this key's turn and a free place at the store.
    pub(super) async fn turn(&self) -> Option<Turn> {
        let mine = self.turn.clone().acquire_owned().await.ok()?;
        let store = self.queue.in_flight.clone().acquire_owned().await.ok()?;
        Some((mine, store))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Ok(mut per_key) = self.queue.per_key.lock()
            && let Some((_, n)) = per_key.get_mut(&self.sha)
        {
            *n -= 1;
            if *n == 0 {
                per_key.remove(&self.sha);
            }
        }
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
        recent.remember("h", "key-1", None);
        assert_eq!(recent.recall("h").as_deref(), Some("key-1"));
        recent.forget("h");
        assert_eq!(recent.recall("h"), None);
        // An expiry passed since the admission is known without the store.
        recent.remember(
            "h",
            "key-1",
            Some(Utc::now() + chrono::Duration::milliseconds(50)),
        );
        assert_eq!(recent.recall("h").as_deref(), Some("key-1"));
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(recent.recall("h"), None);
    }

    #[tokio::test]
    async fn one_keys_admissions_take_turns_and_its_queue_is_capped() {
        let queue = Arc::new(PendingAdmissions::default());
        let first = queue.enter("a").expect("a place");
        let second = queue.enter("a").expect("a place");
        let turn = first.turn().await.expect("first turn");
        // The second waits for the first; another key does not.
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), second.turn())
            .await
            .is_err();
        assert!(blocked, "two admissions of one key at once");
        let other = queue.enter("b").expect("a place");
        assert!(other.turn().await.is_some());
        drop(turn);
        assert!(second.turn().await.is_some());
        let full: Vec<_> = (2..PendingAdmissions::PER_KEY)
            .map(|_| queue.enter("a").expect("a place"))
            .collect();
        assert!(queue.enter("a").is_none(), "one key past its cap");
        drop((first, second, full, other));
        assert!(queue.per_key.lock().unwrap().is_empty());
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
