//! The worker's answer-quality settings ([`QualityConfig`]): hedged commit, stall detection,
//! failover by continuation, and the reliability scores `reliable` sampling ranks by. The
//! defaults are the ones measured by `benches/answer_quality.rs` (see README, "Answer quality").

use crate::fanout::{Failover, Quality};
use crate::reliability::Scoreboard;
use sn1_bittensor::dendrite::MinerTarget;
use std::time::Duration;

/// Answer-quality settings of a worker, and its scoreboard.
#[derive(Clone, Debug)]
pub struct QualityConfig {
    /// Commit a miner once it has sent this many usable characters (0: at its first usable
    /// text, the behaviour before hedging).
    pub hedge_chars: usize,
    /// Commit the best usable miner after this long even below `hedge_chars`.
    pub hedge_wait: Duration,
    /// A committed miner silent this long has stalled (`None`: the answer waits for the
    /// deadline, the behaviour before stall detection).
    pub stall_after: Option<Duration>,
    /// Continuations of a stalled answer allowed per request (0: a stall ends the answer at
    /// once with an error).
    pub failover_attempts: usize,
    /// Spare miners asked at once for one continuation.
    pub failover_width: usize,
    /// A continuation must start within this long.
    pub failover_wait: Duration,
    /// Share of `reliable` picks given to exploring little-known miners.
    pub exploration: f64,
    /// The miners' reliability scores (shared by every job of this worker; refreshed from the
    /// store when there is one).
    pub scores: Scoreboard,
}

/// Half-life of reliability scores: 5 min keeps a recovered miner's past from weighing on it
/// for long, while ~100 replies a minute still give each of a few hundred miners a tally.
pub const SCORE_HALF_LIFE: Duration = Duration::from_secs(300);

impl Default for QualityConfig {
    /// Hedge 0 (off) and no stall detection: the fan-out as it was; see the README for the
    /// settings the command line uses by default.
    fn default() -> Self {
        QualityConfig {
            hedge_chars: 0,
            hedge_wait: Duration::from_millis(300),
            stall_after: None,
            failover_attempts: 0,
            failover_width: 2,
            failover_wait: Duration::from_secs(1),
            exploration: 0.1,
            scores: Scoreboard::new(SCORE_HALF_LIFE),
        }
    }
}

impl QualityConfig {
    /// The fan-out settings for a job whose spare miners are `spares` (best first).
    pub fn fanout(&self, spares: Vec<MinerTarget>) -> Quality {
        Quality {
            hedge_chars: self.hedge_chars,
            hedge_wait: self.hedge_wait,
            stall_after: self.stall_after,
            failover: Failover {
                spares,
                attempts: self.failover_attempts,
                width: self.failover_width,
                wait: self.failover_wait,
            },
        }
    }

    /// Spare miners a job keeps for failover: enough for every continuation attempt.
    pub fn spares_wanted(&self) -> usize {
        match self.stall_after {
            Some(_) => self.failover_attempts * self.failover_width.max(1),
            None => 0,
        }
    }
}
