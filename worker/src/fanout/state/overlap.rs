//! Continuations that start over. A spare asked to continue an answer gets the text the client
//! already has (`sent`) as a partial assistant turn, but many backends (OpenAI, vLLM) start a
//! new turn instead of continuing the trailing one. One rule, on a continuation's text so far
//! `c` (leading whitespace of both ignored, characters not bytes):
//!
//! * `c` starts with `sent`: the miner restarted and reproduced it; once it says something new
//!   the overlap is dropped and only the rest is streamed.
//! * `sent` starts with `c`: it may still be reproducing: held (not committed) until it decides;
//!   a reply that ends there brought nothing new and is unusable ([`RESTARTED`]).
//! * they share at least `min(16, |sent|)` characters, then diverge: a restart in other words,
//!   rejected ([`RESTARTED`]), never appended.
//! * otherwise: a genuine continuation, streamed as it is.

use super::{Fanout, PrefixVerdict};
use crate::cleaning;

/// Why a continuation was not used: it started the answer over instead of continuing it.
pub(crate) const RESTARTED: &str = "restarted";

/// Characters a restart in other words shares with the answer's opening (fewer when the answer
/// so far is shorter).
const SHARED_OPENING: usize = 16;

/// What the rule says about a continuation's text so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Still a prefix of `sent` (or `sent` and blanks): wait.
    Hold,
    /// Reproduced `sent`, then went on: drop its first `skip` bytes, stream the rest.
    Reproduced {
        /// Bytes of the continuation's text that repeat `sent`.
        skip: usize,
    },
    /// Started over in other words.
    Restarted,
    /// Continues the answer.
    Continues,
}

/// The rule, fed one chunk at a time: work proportional to the chunk, whatever `sent`'s size.
#[derive(Clone, Debug, Default)]
pub(crate) struct Judge {
    /// Bytes of the continuation fed so far.
    seen: usize,
    /// Past the continuation's leading whitespace.
    started: bool,
    /// Bytes, and characters, of the trimmed `sent` it has matched.
    matched: usize,
    matched_chars: usize,
    /// Where in the continuation the reproduced `sent` ended.
    covered_at: Option<usize>,
    /// Once decided, final.
    decided: Option<Verdict>,
}

impl Judge {
    /// Feeds the next `chunk` of the continuation; the verdict on all of it so far. `sent` must
    /// be the same on every call.
    pub fn feed(&mut self, chunk: &str, sent: &str) -> Verdict {
        let base = self.seen;
        self.seen += chunk.len();
        if let Some(verdict) = self.decided {
            return verdict;
        }
        let s = sent.trim_start();
        let need = s.chars().take(SHARED_OPENING).count();
        for (at, ch) in chunk.char_indices() {
            if !self.started && ch.is_whitespace() {
                continue;
            }
            self.started = true;
            if let Some(skip) = self.covered_at {
                // Blanks after the reproduced text are kept for the join; new text decides.
                if !ch.is_whitespace() {
                    self.decided = Some(Verdict::Reproduced { skip });
                    break;
                }
                continue;
            }
            let next = s.get(self.matched..).and_then(|rest| rest.chars().next());
            match next {
                Some(expected) if expected == ch => {
                    self.matched += ch.len_utf8();
                    self.matched_chars += 1;
                    if self.matched == s.len() {
                        self.covered_at = Some(base + at + ch.len_utf8());
                    }
                }
                Some(_) if self.matched_chars >= need => {
                    self.decided = Some(Verdict::Restarted);
                    break;
                }
                _ => {
                    self.decided = Some(Verdict::Continues);
                    break;
                }
            }
        }
        self.decided.unwrap_or(Verdict::Hold)
    }

    /// Bytes at the start of the continuation to leave out (what repeats `sent`).
    pub fn skip(&self) -> usize {
        match self.decided {
            Some(Verdict::Reproduced { skip }) => skip,
            _ => 0,
        }
    }
}

impl Fanout {
    /// This fan-out continues an answer of which the client has `sent`: every reply is judged
    /// by the rule above, and its prefix checks no longer compare it with the partial answer.
    pub fn continuing(mut self, sent: String) -> Fanout {
        self.prompt = String::new();
        for miner in &mut self.miners {
            miner.judge = cleaning::PrefixJudge::new("");
        }
        self.sent = Some(sent);
        self
    }

    /// Miner `i`'s prefix `verdict` after its latest `chunk`, with the rule applied when
    /// continuing: held while it may be reproducing, rejected when it restarted.
    pub(super) fn past_overlap(
        &mut self,
        i: usize,
        chunk: &str,
        verdict: PrefixVerdict,
    ) -> PrefixVerdict {
        let Some(sent) = &self.sent else {
            return verdict;
        };
        match (verdict, self.miners[i].overlap.feed(chunk, sent)) {
            (PrefixVerdict::Reject(why), _) => PrefixVerdict::Reject(why),
            (_, Verdict::Restarted) => PrefixVerdict::Reject(RESTARTED),
            (_, Verdict::Hold) => PrefixVerdict::Wait,
            (verdict, Verdict::Reproduced { .. } | Verdict::Continues) => verdict,
        }
    }

    /// The rule on miner `i`'s whole text once its reply ended: why it is unusable (it
    /// restarted, or brought nothing new), if it is.
    pub(super) fn overlap_final(&mut self, i: usize) -> Option<&'static str> {
        let sent = self.sent.as_deref()?;
        let miner = &mut self.miners[i];
        let mut judge = Judge::default();
        match judge.feed(&miner.record.text, sent) {
            Verdict::Hold | Verdict::Restarted => Some(RESTARTED),
            Verdict::Reproduced { .. } | Verdict::Continues => {
                miner.overlap = judge;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fanout, ok};
    use super::super::{FanoutEnd, Step};
    use super::*;
    use sn1_contracts::job::Strategy;

    const SENT: &str = "Once upon a time there was a fox";

    /// The rule on a whole text `c`.
    fn judge(sent: &str, c: &str) -> Verdict {
        Judge::default().feed(c, sent)
    }

    #[test]
    fn the_rule() {
        // Reproduced, then new text: only the rest is kept.
        let c = "Once upon a time there was a fox who lived";
        assert_eq!(judge(SENT, c), Verdict::Reproduced { skip: SENT.len() });
        // Blanks before, and at the join, are handled.
        assert_eq!(
            judge(SENT, "\n Once upon a time there was a fox\n\nThe end"),
            Verdict::Reproduced {
                skip: 2 + SENT.len()
            }
        );
        // Still (or only) reproducing: hold.
        for c in [
            "",
            "  ",
            "Once",
            "Once upon a ti",
            SENT,
            "Once upon a time there was a fox  ",
        ] {
            assert_eq!(judge(SENT, c), Verdict::Hold, "{c:?}");
        }
        // The same opening, then other words: a restart.
        assert_eq!(
            judge(SENT, "Once upon a time, a fox lived"),
            Verdict::Restarted
        );
        // A genuine continuation, even one that begins like the answer for a while.
        assert_eq!(judge(SENT, " who lived in a den."), Verdict::Continues);
        assert_eq!(judge(SENT, "Once more, the fox"), Verdict::Continues);
        // A short answer so far: all of it must be shared to be a restart.
        assert_eq!(judge("Once", "Once upon"), Verdict::Reproduced { skip: 4 });
        assert_eq!(judge("Once", "Onward"), Verdict::Continues);
        // Characters, not bytes.
        assert_eq!(
            judge("Ünïcödé störy of a fox", "Ünïcödé störy of a wolf"),
            Verdict::Restarted
        );
        assert_eq!(
            judge("Ünï", "Ünïcödé"),
            Verdict::Reproduced {
                skip: "Ünï".len()
            }
        );
    }

    #[test]
    fn fed_in_chunks_it_decides_as_on_the_whole() {
        let c = "Once upon a time there was a fox, and then";
        for size in 1..8 {
            let mut j = Judge::default();
            let chars: Vec<char> = c.chars().collect();
            let mut last = Verdict::Hold;
            for piece in chars.chunks(size) {
                last = j.feed(&piece.iter().collect::<String>(), SENT);
            }
            assert_eq!(last, judge(SENT, c));
            assert_eq!(j.skip(), SENT.len());
        }
    }

    fn text(step: &Step) -> String {
        step.send.iter().map(|c| c.delta.as_str()).collect()
    }

    #[test]
    fn a_reproducing_miner_is_held_then_streams_only_what_is_new() {
        let mut f = fanout(2, Strategy::First).continuing(SENT.into());
        assert_eq!(f.on_chunk(0, "Once upon a ti".into()), Step::wait());
        assert_eq!(f.on_chunk(0, "me there was a fox".into()), Step::wait());
        let step = f.on_chunk(0, " who lived".into());
        assert_eq!(text(&step), " who lived");
        assert_eq!(step.drop, vec![1]);
        assert_eq!(f.commit_point(), Some((100, 10)));
        // Once chosen, its text goes straight on.
        assert_eq!(text(&f.on_chunk(0, " alone.".into())), " alone.");
    }

    #[test]
    fn a_restart_in_other_words_is_rejected_and_another_continuation_used() {
        let mut f = fanout(2, Strategy::First).continuing(SENT.into());
        assert_eq!(f.on_chunk(0, "Once upon a time".into()), Step::wait());
        let step = f.on_chunk(0, ", a fox lived".into());
        assert_eq!(step.drop, vec![0]);
        assert!(step.send.is_empty());
        let step = f.on_chunk(1, " who lived".into());
        assert_eq!(text(&step), " who lived");
        assert_eq!(f.finish()[0].rejected, Some(RESTARTED));
    }

    #[test]
    fn a_reply_that_only_repeats_the_answer_is_unusable() {
        let mut f = fanout(1, Strategy::First).continuing(SENT.into());
        f.on_chunk(0, SENT.into());
        assert_eq!(f.on_done(0, ok(SENT)), Step::wait());
        assert_eq!(f.on_all_done(), Step::end(FanoutEnd::NoAnswer));
        assert_eq!(f.finish()[0].rejected, Some(RESTARTED));
        // Text that only the end of the reply brings is judged too.
        let mut f = fanout(1, Strategy::First).continuing(SENT.into());
        f.on_chunk(0, "Once upon".into());
        let whole = format!("{SENT}, the end.");
        let step = f.on_done(0, ok(&whole));
        assert_eq!(text(&step), ", the end.");
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 100 }));
    }
}
