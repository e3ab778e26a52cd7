//! Reliability scores of miners, learned from what fan-outs see, for the `reliable` sampling
//! mode ([`crate::selection::rank`]).
//!
//! Every miner reply ends in a [`Verdict`] (usable, unusable, stalled, failed, or unknown when
//! it was dropped before it could be judged). A [`Scoreboard`] keeps, per miner key (hotkey
//! *and* axon, so a miner that changes either starts fresh), exponentially decayed tallies
//! (half-life [`Scoreboard::half_life`]): replies judged, usable, stalled, and time to first
//! byte. Each worker adds its own observations at once; with a store, every worker also
//! replaces its board every few seconds with the same aggregate of the audit log
//! (`reliability/shared.rs`), so all workers converge on one view without new shared state.

pub mod shared;

use crate::cleaning;
use crate::fanout::MinerRecord;
use sn1_bittensor::reply::OutcomeKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which miner a score belongs to: a hotkey at an axon.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MinerKey {
    /// SS58 hotkey.
    pub hotkey: String,
    /// `ip:port`.
    pub axon: String,
}

impl MinerKey {
    /// The key of a miner at `ip`:`port`.
    pub fn new(hotkey: &str, ip: &str, port: u16) -> MinerKey {
        MinerKey {
            hotkey: hotkey.to_owned(),
            axon: format!("{ip}:{port}"),
        }
    }
}

/// How one reply counts for its miner's score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A complete, usable answer (or usable text when the fan-out ended it).
    Usable,
    /// Text nobody can use: empty, refusal, echo, error body, whitespace.
    Unusable,
    /// Committed, then silent before finishing.
    Stalled,
    /// An HTTP error, a reset, a timeout, a connect failure.
    Failed,
    /// Dropped before it could be judged (another miner won): not counted.
    Unknown,
}

impl Verdict {
    /// The name in the audit log (`miner_responses.verdict`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Usable => "usable",
            Verdict::Unusable => "unusable",
            Verdict::Stalled => "stalled",
            Verdict::Failed => "failed",
            Verdict::Unknown => "unknown",
        }
    }

    /// The verdict named `name` (unknown names are [`Verdict::Unknown`]).
    pub fn parse(name: &str) -> Verdict {
        match name {
            "usable" => Verdict::Usable,
            "unusable" => Verdict::Unusable,
            "stalled" => Verdict::Stalled,
            "failed" => Verdict::Failed,
            _ => Verdict::Unknown,
        }
    }

    /// The verdict on `record`, a reply to `prompt` (the request's last message).
    pub fn of(record: &MinerRecord, prompt: &str) -> Verdict {
        if record.rejected == Some(crate::fanout::STALLED) {
            return Verdict::Stalled;
        }
        match (&record.outcome, record.rejected) {
            (Some(o), _) if !matches!(o.kind, OutcomeKind::Ok | OutcomeKind::Oversize) => {
                Verdict::Failed
            }
            (_, Some(r)) if r == crate::fanout::OVER_BUDGET => Verdict::Unknown,
            (_, Some(_)) => Verdict::Unusable,
            (Some(_), None) if record.selected => Verdict::Usable,
            (Some(_), None) => match cleaning::on_final(&record.text, prompt) {
                None => Verdict::Usable,
                Some(_) => Verdict::Unusable,
            },
            (None, None) => Verdict::Unknown,
        }
    }
}

/// Decayed counts of one miner's judged replies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// Replies judged (usable, unusable, stalled or failed).
    pub judged: f64,
    /// Usable ones.
    pub usable: f64,
    /// Stalled ones.
    pub stalled: f64,
    /// Sum of times to first byte, ms, over `ttfb_n` replies.
    pub ttfb_ms: f64,
    /// Replies with a time to first byte.
    pub ttfb_n: f64,
}

/// Judged replies below which a miner counts as little known (exploration picks among them).
pub const LITTLE_DATA: f64 = 3.0;

impl Tally {
    /// Adds one reply with weight `w`.
    pub fn add(&mut self, verdict: Verdict, ttfb: Option<Duration>, w: f64) {
        if verdict != Verdict::Unknown {
            self.judged += w;
        }
        match verdict {
            Verdict::Usable => self.usable += w,
            Verdict::Stalled => self.stalled += w,
            _ => {}
        }
        if let Some(t) = ttfb {
            self.ttfb_ms += t.as_secs_f64() * 1e3 * w;
            self.ttfb_n += w;
        }
    }

    fn scale(&mut self, f: f64) {
        self.judged *= f;
        self.usable *= f;
        self.stalled *= f;
        self.ttfb_ms *= f;
        self.ttfb_n *= f;
    }

    /// The score `reliable` ranks by: the usable share (prior 1 of 2, so an unknown miner is
    /// 0.5), minus the stall share (a stall costs the client more than an unusable reply the
    /// fan-out skips), minus 0.1 per second of mean time to first byte (1 s when unknown;
    /// at most 5 s).
    pub fn score(&self) -> f64 {
        let usable = (self.usable + 1.0) / (self.judged + 2.0);
        let stalled = self.stalled / (self.judged + 2.0);
        let ttfb_s = if self.ttfb_n > 0.1 {
            self.ttfb_ms / self.ttfb_n / 1e3
        } else {
            1.0
        };
        usable - stalled - 0.1 * ttfb_s.min(5.0)
    }
}

/// The shared, decaying scores of one worker (cheap to clone).
#[derive(Clone, Debug)]
pub struct Scoreboard {
    inner: Arc<Mutex<Board>>,
    half_life: Duration,
}

#[derive(Debug)]
struct Board {
    tallies: HashMap<MinerKey, Tally>,
    /// The instant every tally is decayed to.
    at: Instant,
}

impl Scoreboard {
    /// An empty board whose tallies halve every `half_life`.
    pub fn new(half_life: Duration) -> Scoreboard {
        Scoreboard {
            inner: Arc::new(Mutex::new(Board {
                tallies: HashMap::new(),
                at: Instant::now(),
            })),
            half_life,
        }
    }

    /// The half-life of the tallies.
    pub fn half_life(&self) -> Duration {
        self.half_life
    }

    /// The weight now of an observation `age` old.
    pub fn weight(&self, age: Duration) -> f64 {
        0.5f64.powf(age.as_secs_f64() / self.half_life.as_secs_f64().max(1e-3))
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        let mut board = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Decay at most every 100 ms: one pass over ~1000 miners, not one per reply.
        let age = now.duration_since(board.at);
        if age > Duration::from_millis(100) {
            let f = self.weight(age);
            board.tallies.values_mut().for_each(|t| t.scale(f));
            board.at = now;
        }
        board
    }

    /// Adds the replies of one fan-out (to `prompt`) to the board.
    pub fn observe(&self, records: &[MinerRecord], prompt: &str) {
        let mut board = self.board();
        for r in records {
            let verdict = Verdict::of(r, prompt);
            let ttfb = r.outcome.as_ref().and_then(|o| o.time_to_first_byte);
            let key = MinerKey::new(&r.target.hotkey, &r.target.ip, r.target.port);
            board
                .tallies
                .entry(key)
                .or_default()
                .add(verdict, ttfb, 1.0);
        }
    }

    /// Replaces every tally with `tallies` (decayed to now), as read from the shared store.
    pub fn replace(&self, tallies: HashMap<MinerKey, Tally>) {
        let mut board = self.board();
        board.tallies = tallies;
        board.at = Instant::now();
    }

    /// The tally of `key`, if it was ever seen.
    pub fn tally(&self, key: &MinerKey) -> Option<Tally> {
        self.board().tallies.get(key).copied()
    }

    /// Every tally (for tests and metrics).
    pub fn snapshot(&self) -> HashMap<MinerKey, Tally> {
        self.board().tallies.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_fast_miners_outrank_unknown_slow_and_stalling_ones() {
        let mut good = Tally::default();
        let mut slow = Tally::default();
        let mut staller = Tally::default();
        for _ in 0..10 {
            good.add(Verdict::Usable, Some(Duration::from_millis(50)), 1.0);
            slow.add(Verdict::Usable, Some(Duration::from_millis(2000)), 1.0);
            staller.add(Verdict::Stalled, Some(Duration::from_millis(30)), 1.0);
        }
        let unknown = Tally::default();
        assert!(good.score() > slow.score());
        assert!(slow.score() > unknown.score());
        assert!(unknown.score() > staller.score());
    }

    #[test]
    fn tallies_decay_with_the_half_life() {
        let board = Scoreboard::new(Duration::from_secs(10));
        assert!((board.weight(Duration::from_secs(10)) - 0.5).abs() < 1e-9);
        assert!((board.weight(Duration::ZERO) - 1.0).abs() < 1e-9);
    }
}
