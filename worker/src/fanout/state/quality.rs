//! Answer quality in the fan-out's state: hedged commit (a usable miner is committed only once
//! it has sent `hedge_chars` characters, the others kept warm until then) and stall detection
//! (the committed miner went silent; the driver decides whether another miner continues).

use super::{Fanout, FanoutEnd, Step};
use crate::fanout::describe;
use sn1_bittensor::reply::OutcomeKind;

/// Why a miner's text was not used: it was committed, then went silent before finishing.
pub(crate) const STALLED: &str = "stalled";

impl Fanout {
    /// Hedged commit: commit a usable miner only once it has sent `chars` non-whitespace
    /// characters (or its
    /// reply ended, or the driver's hedge wait ran out); 0 commits at the first usable prefix.
    pub fn with_hedge(mut self, chars: usize) -> Fanout {
        self.hedge_chars = chars;
        self
    }

    /// Miner `i`'s text so far is usable: it is committed now, or held while it is shorter
    /// than the hedge threshold (the other miners keep streaming meanwhile).
    pub(super) fn ready(&mut self, i: usize) -> Step {
        let miner = &mut self.miners[i];
        miner.ready = true;
        // Whitespace does not count: "Sure! " and 500 spaces is no answer to commit to yet.
        if miner.solid >= self.hedge_chars {
            self.choose(i)
        } else {
            Step::wait()
        }
    }

    /// Whether a usable miner is being held back by the hedge threshold (the driver then runs
    /// its hedge timer).
    pub fn hedging(&self) -> bool {
        self.racing()
            && self
                .miners
                .iter()
                .any(|m| m.ready && !m.done && m.record.rejected.is_none())
    }

    /// The hedge wait ran out: the held-back usable miner with the most text is committed.
    pub fn on_hedge_timeout(&mut self) -> Step {
        if !self.racing() {
            return Step::wait();
        }
        let best = (0..self.miners.len())
            .filter(|&i| {
                let m = &self.miners[i];
                m.ready && !m.done && m.record.rejected.is_none()
            })
            .max_by_key(|&i| self.miners[i].solid);
        match best {
            Some(i) => self.choose(i),
            None => Step::wait(),
        }
    }

    /// The index of the chosen miner, while its reply is still streaming.
    pub fn streaming(&self) -> Option<usize> {
        self.chosen.filter(|&i| !self.miners[i].done)
    }

    /// The chosen miner has been silent for the stall threshold: it is dropped and marked
    /// [`STALLED`], and the fan-out ends broken (the driver may continue the answer elsewhere).
    pub fn on_stall(&mut self) -> Step {
        let Some(i) = self.streaming() else {
            return Step::wait();
        };
        self.stalled = Some(i);
        let miner = &mut self.miners[i];
        miner.record.rejected = Some(STALLED);
        Step {
            drop: vec![i],
            end: Some(FanoutEnd::Broken {
                uid: miner.record.target.uid,
                reason: STALLED.into(),
            }),
            ..Step::default()
        }
    }

    /// The uid of the chosen miner and what happened, if it stalled or its reply broke off
    /// before the answer was complete (either may be continued by another miner).
    pub fn interrupted(&self) -> Option<(u16, String)> {
        let uid = |i: usize| self.miners[i].record.target.uid;
        match (&self.stalled, &self.broken) {
            (Some(i), _) => Some((uid(*i), STALLED.to_owned())),
            (None, Some((i, reason))) => Some((uid(*i), reason.clone())),
            (None, None) => None,
        }
    }

    /// (uid, characters it had sent) of the committed miner, once there is one.
    pub fn commit_point(&self) -> Option<(u16, usize)> {
        Some((
            self.miners[self.chosen?].record.target.uid,
            self.commit_chars?,
        ))
    }
}

/// How the fan-out ends when the chosen miner's (`uid`) reply ended with `kind`.
pub(super) fn chosen_ended(uid: u16, kind: &OutcomeKind) -> FanoutEnd {
    match kind {
        OutcomeKind::Ok | OutcomeKind::Oversize => FanoutEnd::Answered { uid },
        other => FanoutEnd::Broken {
            uid,
            reason: format!("the miner's stream broke off: {}", describe(other)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fanout;
    use super::*;
    use sn1_contracts::job::Strategy;

    #[test]
    fn a_hedged_commit_waits_for_the_threshold_and_skips_a_miner_that_stalls_below_it() {
        let mut f = fanout(2, Strategy::First).with_hedge(20);
        // Miner 0 is usable but short: held, the other keeps streaming.
        assert_eq!(f.on_chunk(0, "Once upon".into()), Step::wait());
        assert!(f.hedging());
        assert_eq!(f.on_chunk(1, "Long ago, in a".into()), Step::wait());
        // Miner 1 passes the threshold first: committed with all it held.
        let step = f.on_chunk(1, " land far away".into());
        assert_eq!(step.send.len(), 2);
        assert_eq!(step.drop, vec![0]);
        assert_eq!(f.commit_point(), Some((101, 28)));
        assert!(!f.hedging());
    }

    #[test]
    fn a_hedged_commit_counts_no_whitespace() {
        let mut f = fanout(2, Strategy::First).with_hedge(20);
        // "Sure! " and 500 spaces: 5 characters that count, not 506. Held back.
        assert_eq!(f.on_chunk(0, "Sure! ".into()), Step::wait());
        assert_eq!(f.on_chunk(0, " ".repeat(500)), Step::wait());
        assert!(f.hedging());
        assert_eq!(f.commit_point(), None);
        // Miner 1 reaches 20 non-whitespace characters first and is committed.
        let step = f.on_chunk(1, "Once upon a time, in a land".into());
        assert_eq!(step.send[0].uid, 101);
        assert_eq!(step.drop, vec![0]);
        // The hedge wait, too, prefers text over whitespace.
        let mut f = fanout(2, Strategy::First).with_hedge(1000);
        f.on_chunk(0, format!("Sure!{}", " ".repeat(100)));
        f.on_chunk(1, "Once upon a time".into());
        assert_eq!(f.on_hedge_timeout().send[0].uid, 101);
    }

    #[test]
    fn the_hedge_wait_commits_the_longest_held_miner() {
        let mut f = fanout(3, Strategy::First).with_hedge(1000);
        f.on_chunk(0, "Once".into());
        f.on_chunk(2, "Once upon".into());
        let step = f.on_hedge_timeout();
        assert_eq!(step.send[0].uid, 102);
        assert_eq!(step.drop, vec![0, 1]);
    }

    #[test]
    fn a_stall_drops_the_chosen_miner_and_ends_broken() {
        let mut f = fanout(2, Strategy::First);
        assert_eq!(f.on_stall(), Step::wait(), "nobody chosen yet");
        f.on_chunk(1, "Once upon".into());
        assert_eq!(f.streaming(), Some(1));
        let step = f.on_stall();
        assert_eq!(step.drop, vec![1]);
        assert!(matches!(step.end, Some(FanoutEnd::Broken { uid: 101, .. })));
        assert_eq!(f.interrupted(), Some((101, STALLED.to_owned())));
        assert_eq!(f.finish()[1].rejected, Some(STALLED));
    }
}
