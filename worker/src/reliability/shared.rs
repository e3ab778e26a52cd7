//! Sharing scores between workers through the store: every worker reads the same aggregate of
//! the audit log ([`Store::verdict_buckets`]) every [`RefreshConfig::every`] and replaces its
//! board with it, decayed by age. Workers thus agree within one refresh (plus the audit
//! writer's batch delay) without writing anything new: the audit rows are the shared state.

use super::{MinerKey, Scoreboard, Tally, Verdict};
use chrono::Utc;
use sn1_contracts::store::Store;
use sn1_contracts::store::scores::VerdictBucket;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often, and how far back, the store is read.
#[derive(Clone, Debug)]
pub struct RefreshConfig {
    /// Pause after each read (5 s). Measured on Postgres with 1,000 miners and ~425k judged
    /// replies in the window (`scripts/verdict-buckets-cost.sh`), the read costs ~0.45–0.7 s
    /// (index-only scan of the covering index, then ~130k groups), so every 2 s per worker
    /// would keep the store busy; 5 s still agrees "within seconds" (each worker also counts
    /// its own replies at once).
    pub every: Duration,
    /// How far back (6 half-lives: older replies weigh under 2%).
    pub window: Duration,
}

impl RefreshConfig {
    /// Every 5 s, 6 of `board`'s half-lives back: what every worker runs.
    pub fn for_board(board: &Scoreboard) -> Self {
        RefreshConfig {
            every: Duration::from_secs(5),
            window: board.half_life() * 6,
        }
    }
}

/// The tallies `buckets` make, each weighted by its age on `board`'s half-life.
pub fn tallies(board: &Scoreboard, buckets: &[VerdictBucket]) -> HashMap<MinerKey, Tally> {
    let now = Utc::now();
    let mut out: HashMap<MinerKey, Tally> = HashMap::new();
    for b in buckets {
        // The bucket's middle, so a reply's age is off by 30 s at most.
        let age = (now - b.minute).to_std().unwrap_or_default();
        let w = board.weight(age.saturating_sub(Duration::from_secs(30)));
        let key = MinerKey {
            hotkey: b.hotkey.clone(),
            axon: b.axon.clone(),
        };
        let t = out.entry(key).or_default();
        let replies = b.replies as f64 * w;
        t.add(Verdict::parse(&b.verdict), None, replies);
        t.ttfb_ms += b.ttfb_ms_sum * w;
        t.ttfb_n += b.ttfb_n as f64 * w;
    }
    out
}

/// Reads the store once and replaces `board`'s tallies; the number of miners read.
pub async fn refresh(
    store: &Store,
    board: &Scoreboard,
    window: Duration,
) -> Result<usize, sn1_contracts::store::StoreError> {
    let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
    let buckets = store.verdict_buckets(since).await?;
    let tallies = tallies(board, &buckets);
    let miners = tallies.len();
    board.replace(tallies);
    Ok(miners)
}

/// Refreshes `board` from `store` until `cancel` fires (a failed read is logged and retried at
/// the next interval; the board keeps its own observations meanwhile). The interval is a pause
/// *after* each read, not a tick: a read slower than the interval (a loaded store) is followed
/// by a full pause rather than the next read at once, so a slow store is never hammered.
pub async fn run(
    store: Store,
    board: Scoreboard,
    config: RefreshConfig,
    cancel: CancellationToken,
) {
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            read = refresh(&store, &board, config.window) => read,
        };
        match read {
            Ok(miners) => {
                metrics::gauge!("sn1_worker_scored_miners").set(miners as f64);
            }
            Err(e) => tracing::warn!(error = %e, "could not read miner scores from the store"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(config.every) => {}
        }
    }
}
