//! Reliability scores of miners, learned from what fan-outs see, for the `reliable` sampling
//! mode ([`crate::selection::rank`]).
//!
//! Every miner reply ends in a [`Verdict`] (usable, short, unusable, stalled, failed, or unknown
//! when it was dropped before it could be judged; [`verdicts`] judges a whole fan-out). A
//! [`Scoreboard`] keeps, per miner key (hotkey *and* axon, so a miner that changes either starts
//! fresh — unless its hotkey scored worse than an unseen miner at its old axon: a bad score
//! follows the hotkey, so moving to another port sheds nothing), exponentially decayed tallies
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
    /// A complete reply the cleaner passed but too short to be an answer: under [`SHORT_CHARS`]
    /// characters, or a tenth of what the other miners of the fan-out answered ([`verdicts`]).
    /// The client still gets it if it was picked; for the score it counts like
    /// [`Verdict::Unusable`], so a miner cannot rank first by answering "ok" in 10 ms.
    Short,
    /// Text nobody can use: empty, refusal, echo, error body, whitespace.
    Unusable,
    /// Committed, then silent before finishing.
    Stalled,
    /// An HTTP error, a reset, a timeout, a connect failure; or committed and still
    /// unfinished when the request's deadline cut it off ([`CUT_OFF`]).
    Failed,
    /// Dropped before it could be judged (another miner won): not counted.
    Unknown,
}

impl Verdict {
    /// The name in the audit log (`miner_responses.verdict`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Usable => "usable",
            Verdict::Short => "short",
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
            "short" => Verdict::Short,
            "unusable" => Verdict::Unusable,
            "stalled" => Verdict::Stalled,
            "failed" => Verdict::Failed,
            _ => Verdict::Unknown,
        }
    }

    /// The verdict on `record` alone, a reply to `prompt` (the request's last message), before
    /// the length check of [`verdicts`] (never [`Verdict::Short`]).
    pub fn of(record: &MinerRecord, prompt: &str) -> Verdict {
        match record.rejected {
            Some(crate::fanout::STALLED) => return Verdict::Stalled,
            Some(CUT_OFF) => return Verdict::Failed,
            _ => {}
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

/// Why the committed miner's text was not complete: the request's deadline cut it off while
/// it was still streaming. It counts as [`Verdict::Failed`], a timeout like any other: the
/// client's answer broke off because of this miner (without it, a miner dripping one character
/// just under the stall threshold would hold every client to the deadline and never be
/// counted). Not [`Verdict::Stalled`]: it was not silent, and an honest miner streaming a long
/// answer against a short deadline should lose no more than a miner that timed out.
pub const CUT_OFF: &str = "unfinished at the deadline";

/// Usable characters under which a complete reply is [`Verdict::Short`] whatever the other
/// miners answered. 24 is about the shortest sentence that answers a question ("The capital of
/// France is Paris." is 34); LLM miners answer in sentences, and a prompt whose honest answer
/// is shorter costs every miner that answers it alike, so the ranking between them holds. It
/// applies even when every reply of the fan-out is that short: otherwise one operator's junk
/// hotkeys, once they fill the k slots, would only be compared with each other.
pub const SHORT_CHARS: usize = 24;

/// Under this many characters, a complete reply is also [`Verdict::Short`] when it is under a
/// tenth of the (lower) median of the other usable replies of its fan-out. Bounded, so one
/// miner padding its replies cannot make the others' concise answers count as short, and
/// the median, so a single long reply does not decide it.
pub const SHORT_RELATIVE_MAX: usize = 200;

/// The verdicts on the replies of one fan-out to `prompt`, in `records` order:
/// [`Verdict::of`] each, then a usable complete reply (not a continuation, which finishes
/// someone else's text) that is too short becomes [`Verdict::Short`] (see [`SHORT_CHARS`] and
/// [`SHORT_RELATIVE_MAX`]).
pub fn verdicts(records: &[MinerRecord], prompt: &str) -> Vec<Verdict> {
    let mut out: Vec<Verdict> = records.iter().map(|r| Verdict::of(r, prompt)).collect();
    let length = |r: &MinerRecord| r.text.trim().chars().count();
    let checked = |r: &MinerRecord, v: Verdict| {
        v == Verdict::Usable
            && !r.continuation
            && r.outcome
                .as_ref()
                .is_some_and(|o| matches!(o.kind, OutcomeKind::Ok | OutcomeKind::Oversize))
    };
    let lengths: Vec<Option<usize>> = records
        .iter()
        .zip(&out)
        .map(|(r, &v)| checked(r, v).then(|| length(r)))
        .collect();
    for (i, v) in out.iter_mut().enumerate() {
        let Some(chars) = lengths[i] else { continue };
        let mut others: Vec<usize> = lengths
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .filter_map(|(_, l)| *l)
            .collect();
        others.sort_unstable();
        let median = others.get(others.len().saturating_sub(1) / 2).copied();
        let relative = median.is_some_and(|m| chars < SHORT_RELATIVE_MAX && chars * 10 < m);
        if chars < SHORT_CHARS || relative {
            *v = Verdict::Short;
        }
    }
    out
}

/// Decayed counts of one miner's judged replies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// Replies judged (usable, unusable, stalled or failed).
    pub judged: f64,
    /// Usable ones ([`Verdict::Short`] replies are judged, not usable).
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
    /// The axons each hotkey has a tally at.
    axons: HashMap<String, Vec<String>>,
    /// The instant every tally is decayed to.
    at: Instant,
}

impl Board {
    fn index(&mut self, key: &MinerKey) {
        let axons = self.axons.entry(key.hotkey.clone()).or_default();
        if !axons.contains(&key.axon) {
            axons.push(key.axon.clone());
        }
    }
}

impl Scoreboard {
    /// An empty board whose tallies halve every `half_life`.
    pub fn new(half_life: Duration) -> Scoreboard {
        Scoreboard {
            inner: Arc::new(Mutex::new(Board {
                tallies: HashMap::new(),
                axons: HashMap::new(),
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
        let verdicts = verdicts(records, prompt);
        let mut board = self.board();
        for (r, verdict) in records.iter().zip(verdicts) {
            let ttfb = r.outcome.as_ref().and_then(|o| o.time_to_first_byte);
            let key = MinerKey::new(&r.target.hotkey, &r.target.ip, r.target.port);
            board.index(&key);
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
        board.axons.clear();
        for key in tallies.keys() {
            board.index(key);
        }
        board.tallies = tallies;
        board.at = Instant::now();
    }

    /// The tally of `key`, if it was ever seen. A hotkey never seen at this axon gets its worst
    /// tally at another one when that scores below an unseen miner: a miner cannot shed a bad
    /// score by moving (a port costs nothing), while one that did well starts fresh.
    pub fn tally(&self, key: &MinerKey) -> Option<Tally> {
        let board = self.board();
        if let Some(tally) = board.tallies.get(key) {
            return Some(*tally);
        }
        let unseen = Tally::default().score();
        let elsewhere = board.axons.get(&key.hotkey)?.iter().filter_map(|axon| {
            let old = MinerKey {
                hotkey: key.hotkey.clone(),
                axon: axon.clone(),
            };
            board.tallies.get(&old)
        });
        elsewhere
            .filter(|t| t.score() < unseen)
            .min_by(|a, b| a.score().total_cmp(&b.score()))
            .copied()
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

    fn reply(uid: u16, text: &str, ttfb_ms: u64) -> MinerRecord {
        let target = sn1_bittensor::dendrite::MinerTarget {
            uid,
            ip: format!("10.0.0.{uid}"),
            port: 8091,
            hotkey: format!("hk{uid}"),
        };
        MinerRecord::ended(target, OutcomeKind::Ok, text, ttfb_ms)
    }

    const ANSWER: &str = "Rust's ownership rules let the compiler free memory at the end of \
        each owner's scope, so there is no garbage collector and no manual free; borrows are \
        checked at compile time so references never outlive what they point to.";

    #[test]
    fn short_complete_replies_do_not_count_as_usable() {
        let mut selected_junk = reply(1, "ok", 10);
        selected_junk.selected = true;
        let mut continuation = reply(6, "the end.", 10);
        continuation.continuation = true;
        let records = [
            selected_junk,
            reply(2, ".", 10),
            reply(3, ANSWER, 300),
            reply(4, &ANSWER[..60], 300),
            reply(5, "Ownership frees memory at scope end.", 300),
            continuation,
        ];
        assert_eq!(
            verdicts(&records, "q"),
            vec![
                Verdict::Short, // under 24 characters, although the client got it
                Verdict::Short,
                Verdict::Usable,
                Verdict::Usable, // 60 characters: not under a tenth of the others' median
                Verdict::Usable,
                Verdict::Usable, // a continuation finishes someone else's text
            ]
        );
        // Alone, the absolute floor; with long answers around, a tenth of their median.
        assert_eq!(verdicts(&[reply(1, "Sure.", 5)], "q"), vec![Verdict::Short]);
        let padded = "x".repeat(30);
        let long = "y".repeat(400);
        assert_eq!(
            verdicts(
                &[
                    reply(1, &padded, 5),
                    reply(2, &long, 300),
                    reply(3, &long, 300)
                ],
                "q"
            ),
            vec![Verdict::Short, Verdict::Usable, Verdict::Usable]
        );
        // One padded reply does not make the others short (the median, and a cap).
        let huge = "z".repeat(20_000);
        assert_eq!(
            verdicts(
                &[
                    reply(1, &huge, 5),
                    reply(2, &long, 300),
                    reply(3, ANSWER, 300)
                ],
                "q"
            ),
            vec![Verdict::Usable; 3]
        );
    }

    #[test]
    fn fast_junk_miners_do_not_outrank_good_ones() {
        let board = Scoreboard::new(Duration::from_secs(300));
        for _ in 0..20 {
            // Junk in 10 ms from miners 1 and 2, a real answer in 400 ms from 3 and 4.
            let records = [
                reply(1, "ok", 10),
                reply(2, "Sure!", 10),
                reply(3, ANSWER, 400),
                reply(4, ANSWER, 450),
            ];
            board.observe(&records, "Explain Rust's ownership.");
            // Junk among junk only (its operator filled every slot): still not usable.
            board.observe(&[reply(1, ".", 10), reply(2, "ok", 10)], "q");
        }
        let score = |uid: u16| {
            let key = MinerKey::new(&format!("hk{uid}"), &format!("10.0.0.{uid}"), 8091);
            board.tally(&key).unwrap().score()
        };
        assert!(
            score(3) > 0.8 && score(4) > 0.8,
            "{} {}",
            score(3),
            score(4)
        );
        assert!(
            score(1) < 0.1 && score(2) < 0.1,
            "{} {}",
            score(1),
            score(2)
        );
        // Below even a miner never seen (0.4).
        assert!(score(1) < Tally::default().score());
    }

    #[test]
    fn a_bad_score_follows_its_hotkey_to_another_axon_and_a_good_one_does_not() {
        let board = Scoreboard::new(Duration::from_secs(300));
        let good = "A real answer of a few sentences, long enough to be one and then some more.";
        for _ in 0..10 {
            board.observe(&[reply(1, "", 50), reply(2, good, 50)], "q");
        }
        let moved = |uid: u16| MinerKey::new(&format!("hk{uid}"), &format!("10.0.0.{uid}"), 9000);
        let junk = board.tally(&moved(1)).expect("the junk miner's old tally");
        assert!(junk.score() < Tally::default().score(), "{}", junk.score());
        assert_eq!(
            board.tally(&moved(2)),
            None,
            "a good miner that moved starts fresh"
        );
        assert_eq!(board.tally(&moved(3)), None, "never seen");
        // The same from the shared store's tallies.
        let shared = board.snapshot();
        let other = Scoreboard::new(Duration::from_secs(300));
        other.replace(shared);
        assert!(other.tally(&moved(1)).is_some());
        assert_eq!(other.tally(&moved(2)), None);
    }

    #[test]
    fn tallies_decay_with_the_half_life() {
        let board = Scoreboard::new(Duration::from_secs(10));
        assert!((board.weight(Duration::from_secs(10)) - 0.5).abs() < 1e-9);
        assert!((board.weight(Duration::ZERO) - 1.0).abs() < 1e-9);
    }
}
