//! The fan-out's state, apart from its sockets and timers: what each miner has said, which miners
//! are still in the race, which one was chosen.
//!
//! Each event is one method: [`Fanout::on_chunk`], [`Fanout::on_done`], [`Fanout::on_all_done`]
//! (every reply has ended) and [`Fanout::on_deadline`]. Each updates the state and returns a
//! [`Step`]: the chunks to pass on, the miners to drop, and whether the fan-out is over.
//! [`super::run`] feeds it from one select loop; the tests feed it synthetic events. Hedged
//! commit and stall detection are in `state/quality.rs`; continuations that start the answer
//! over are judged in `state/overlap.rs`.

mod overlap;
mod quality;

pub(crate) use quality::STALLED;
use quality::chosen_ended;

use super::{AnswerChunk, FanoutEnd, MinerRecord};
use crate::cleaning::{self, PrefixJudge, PrefixVerdict};
use crate::reliability::CUT_OFF;
use sn1_bittensor::dendrite::MinerTarget;
use sn1_bittensor::reply::{Outcome, OutcomeKind};
use sn1_contracts::job::Strategy;

/// What the driver does after one event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Step {
    /// Chunks to pass on to the client, in order (never empty ones).
    pub send: Vec<AnswerChunk>,
    /// Miners (by index) to stop reading: their connections close.
    pub drop: Vec<usize>,
    /// Set when the fan-out is over.
    pub end: Option<FanoutEnd>,
}

impl Step {
    /// Nothing to do: wait for the next event.
    fn wait() -> Step {
        Step::default()
    }

    /// The fan-out is over.
    pub fn end(end: FanoutEnd) -> Step {
        Step {
            end: Some(end),
            ..Step::default()
        }
    }
}

/// What the client is told when the chosen answer was still streaming at the deadline.
pub(crate) const UNFINISHED: &str = "the answer did not complete within the timeout";

/// Reply text one job may hold, all miners together. With `longest` / `shortest` every reply
/// is held until all have ended, so k = 256 miners at the dendrite's 1 MiB cap could pin
/// 256 MiB per job; 8 MiB holds 32 full 256 KiB answers, far more than one answer needs to be
/// chosen well. A miner whose text would pass it is dropped (its connection closes, which also
/// frees the dendrite's copy) and counted; the chosen miner keeps streaming to the client, only
/// its audit copy stops growing.
pub(crate) const JOB_TEXT_BUDGET: usize = 8 << 20;

/// Reason recorded for a miner dropped because its text would pass [`JOB_TEXT_BUDGET`].
pub(crate) const OVER_BUDGET: &str = "over the job's memory budget";

/// One miner's reply as the fan-out sees it. Its text is held once, in `record.text`.
struct Miner {
    record: MinerRecord,
    /// Where each chunk received and not passed on ends in `record.text` (all of them, until
    /// the miner is chosen).
    held: Vec<usize>,
    /// The streaming verdict, fed chunk by chunk.
    judge: PrefixJudge,
    /// Its reply has ended (`record.outcome` is set).
    done: bool,
    /// Its text so far is usable (held back only by the hedge threshold).
    ready: bool,
    /// Characters of its text so far.
    chars: usize,
    /// Non-whitespace characters of its text so far (what the hedge threshold counts).
    solid: usize,
    /// Whether its text continues the answer or starts it over (when continuing).
    overlap: overlap::Judge,
}

/// The state of one fan-out.
pub(crate) struct Fanout {
    strategy: Strategy,
    /// The last message of the request (for the echo check of [`crate::cleaning`]).
    prompt: String,
    miners: Vec<Miner>,
    /// The miner whose answer goes to the client.
    chosen: Option<usize>,
    /// Bytes of reply text held now (the sum of every `record.text`).
    held_bytes: usize,
    /// The most `held_bytes` has been.
    peak_bytes: usize,
    /// Miners dropped, or audit copies cut short, by [`JOB_TEXT_BUDGET`].
    over_budget: usize,
    /// Hedged commit: a usable miner is committed once it has this many characters (0: at
    /// its first usable prefix).
    hedge_chars: usize,
    /// Characters the chosen miner had sent when it was committed.
    commit_chars: Option<usize>,
    /// The chosen miner, once it was found stalled.
    stalled: Option<usize>,
    /// The chosen miner and why, once its reply broke off mid-answer (reset, error).
    broken: Option<(usize, String)>,
    /// When continuing an answer: the text the client already has.
    sent: Option<String>,
}

/// How much reply text one fan-out held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextHeld {
    /// The most bytes of reply text held at once (never above [`JOB_TEXT_BUDGET`]).
    pub peak_bytes: usize,
    /// Miners dropped, or audit copies cut short, to stay within the budget.
    pub over_budget: usize,
}

impl Fanout {
    /// A fan-out over `targets` (indices follow their order), choosing by `strategy`.
    pub fn new(targets: &[MinerTarget], strategy: Strategy, prompt: String) -> Fanout {
        let miners = targets
            .iter()
            .map(|target| Miner {
                record: MinerRecord {
                    target: target.clone(),
                    outcome: None,
                    rejected: None,
                    selected: false,
                    continuation: false,
                    text: String::new(),
                },
                held: Vec::new(),
                judge: PrefixJudge::new(&prompt),
                done: false,
                ready: false,
                chars: 0,
                solid: 0,
                overlap: overlap::Judge::default(),
            })
            .collect();
        Fanout {
            strategy,
            prompt,
            miners,
            chosen: None,
            held_bytes: 0,
            peak_bytes: 0,
            over_budget: 0,
            hedge_chars: 0,
            commit_chars: None,
            stalled: None,
            broken: None,
            sent: None,
        }
    }

    /// A piece of text from miner `i`. The chosen miner's text goes straight on; with
    /// [`Strategy::First`] and nobody chosen yet, the text so far is judged: usable commits the
    /// miner (its text is sent, the others dropped), unusable drops it.
    pub fn on_chunk(&mut self, i: usize, text: String) -> Step {
        let racing = self.racing();
        if i >= self.miners.len() || self.miners[i].record.rejected == Some(OVER_BUDGET) {
            return Step::wait();
        }
        let kept = self.hold(i, &text);
        let miner = &mut self.miners[i];
        if self.chosen == Some(i) {
            return Step {
                send: chunks(miner.record.target.uid, vec![text]),
                ..Step::wait()
            };
        }
        if !kept {
            miner.record.rejected = Some(OVER_BUDGET);
            return Step {
                drop: vec![i],
                ..Step::wait()
            };
        }
        miner.held.push(miner.record.text.len());
        miner.chars += text.chars().count();
        miner.solid += text.chars().filter(|c| !c.is_whitespace()).count();
        if !racing || miner.record.rejected.is_some() {
            return Step::wait();
        }
        if miner.ready {
            return self.ready(i);
        }
        let verdict = miner.judge.feed(&text, &self.prompt);
        match self.past_overlap(i, &text, verdict) {
            PrefixVerdict::Wait => Step::wait(),
            PrefixVerdict::Reject(reason) => {
                self.miners[i].record.rejected = Some(reason);
                Step {
                    drop: vec![i],
                    ..Step::wait()
                }
            }
            PrefixVerdict::Commit => self.ready(i),
        }
    }

    /// Miner `i`'s reply ended. The chosen miner ending ends the fan-out (answered, or broken
    /// off); with [`Strategy::First`] and nobody chosen yet, a usable whole text is chosen.
    pub fn on_done(&mut self, i: usize, mut outcome: Outcome) -> Step {
        let racing = self.racing();
        if i >= self.miners.len() || self.miners[i].record.rejected == Some(OVER_BUDGET) {
            return Step::wait();
        }
        // The dendrite's copy of the text: only what the chunks did not bring is kept.
        let whole = std::mem::take(&mut outcome.text);
        let seen = self.miners[i].record.text.len();
        if let Some(rest) = whole.get(seen..).filter(|r| !r.is_empty())
            && whole.starts_with(self.miners[i].record.text.as_str())
            && self.chosen != Some(i)
        {
            if self.hold(i, rest) {
                let end = self.miners[i].record.text.len();
                self.miners[i].held.push(end);
            } else {
                self.miners[i].record.rejected = Some(OVER_BUDGET);
            }
        }
        drop(whole);
        let miner = &mut self.miners[i];
        let uid = miner.record.target.uid;
        let chosen_end = (self.chosen == Some(i)).then(|| chosen_ended(uid, &outcome.kind));
        miner.done = true;
        miner.record.outcome = Some(outcome);
        if let Some(end) = chosen_end {
            if let FanoutEnd::Broken { reason, .. } = &end {
                // Broke off mid-answer: the driver may have another miner continue it.
                self.broken = Some((i, reason.clone()));
            }
            return Step::end(end);
        }
        if !racing || miner.record.rejected.is_some() || !self.judge_final(i) {
            return Step::wait();
        }
        Step {
            end: Some(FanoutEnd::Answered { uid }),
            ..self.choose(i)
        }
    }

    /// Every reply has ended (or was dropped). `longest` / `shortest` choose now; otherwise
    /// nobody gave a usable answer.
    pub fn on_all_done(&mut self) -> Step {
        self.pick().unwrap_or(Step::end(FanoutEnd::NoAnswer))
    }

    /// The deadline passed. `longest` / `shortest` choose among the replies that have ended; a
    /// chosen answer still streaming is broken off, and its miner judged for it
    /// ([`crate::reliability::CUT_OFF`]); otherwise the fan-out timed out. Miners dropped
    /// because another won stay unjudged.
    pub fn on_deadline(&mut self) -> Step {
        if let Some(step) = self.pick() {
            return step;
        }
        Step::end(match self.chosen {
            Some(w) => {
                // Still streaming: a chosen reply that ended has ended the fan-out already.
                self.miners[w].record.rejected = Some(CUT_OFF);
                FanoutEnd::Broken {
                    uid: self.miners[w].record.target.uid,
                    reason: UNFINISHED.into(),
                }
            }
            None => FanoutEnd::TimedOut,
        })
    }

    /// One record per miner, in the order of the targets, the chosen one marked.
    pub fn finish(self) -> Vec<MinerRecord> {
        let chosen = self.chosen;
        self.miners
            .into_iter()
            .enumerate()
            .map(|(i, miner)| MinerRecord {
                selected: chosen == Some(i),
                ..miner.record
            })
            .collect()
    }

    /// What the fan-out held, for the report.
    pub fn text_held(&self) -> TextHeld {
        TextHeld {
            peak_bytes: self.peak_bytes,
            over_budget: self.over_budget,
        }
    }

    /// Appends `text` to miner `i`'s held text when the job's budget allows; otherwise counts
    /// it and, unless `i` is the chosen miner (whose text is only cut short), frees its text.
    fn hold(&mut self, i: usize, text: &str) -> bool {
        if self.held_bytes + text.len() > JOB_TEXT_BUDGET {
            self.over_budget += 1;
            if self.chosen != Some(i) {
                let record = &mut self.miners[i].record;
                self.held_bytes -= record.text.len();
                record.text = String::new();
                self.miners[i].held = Vec::new();
            }
            return false;
        }
        self.held_bytes += text.len();
        self.peak_bytes = self.peak_bytes.max(self.held_bytes);
        self.miners[i].record.text.push_str(text);
        true
    }

    /// Whether the first usable reply is still being waited for.
    fn racing(&self) -> bool {
        self.strategy == Strategy::First && self.chosen.is_none()
    }

    /// Chooses miner `i`: its held text goes out (less what repeats the answer so far, when
    /// continuing), every other miner is dropped.
    fn choose(&mut self, i: usize) -> Step {
        self.chosen = Some(i);
        let miner = &mut self.miners[i];
        let text = miner.record.text.as_str();
        let mut start = miner.overlap.skip();
        let repeated = text.get(..start).map_or(0, |t| t.chars().count());
        self.commit_chars = Some(miner.chars.saturating_sub(repeated));
        let held = std::mem::take(&mut miner.held)
            .into_iter()
            .map(|end| {
                let from = start;
                start = start.max(end);
                text.get(from..start).unwrap_or_default().to_owned()
            })
            .collect();
        Step {
            send: chunks(miner.record.target.uid, held),
            drop: (0..self.miners.len()).filter(|&j| j != i).collect(),
            end: None,
        }
    }

    /// With `longest` / `shortest` and nobody chosen: judges every reply that has ended and
    /// chooses by length. `None` when there is nothing to choose (or nothing to choose from).
    fn pick(&mut self) -> Option<Step> {
        if self.strategy == Strategy::First || self.chosen.is_some() {
            return None;
        }
        let usable: Vec<usize> = (0..self.miners.len())
            .filter(|&i| self.miners[i].done && self.judge_final(i))
            .collect();
        let len = |i: &usize| self.miners[*i].record.text.trim().chars().count();
        let w = match self.strategy {
            Strategy::Shortest => usable.into_iter().min_by_key(len),
            Strategy::Longest | Strategy::First => usable.into_iter().max_by_key(len),
        }?;
        let uid = self.miners[w].record.target.uid;
        Some(Step {
            end: Some(FanoutEnd::Answered { uid }),
            ..self.choose(w)
        })
    }

    /// Whether miner `i`'s finished reply is usable; records the reason when it is not.
    fn judge_final(&mut self, i: usize) -> bool {
        let record = &mut self.miners[i].record;
        let Some(outcome) = &record.outcome else {
            return false;
        };
        if !matches!(outcome.kind, OutcomeKind::Ok | OutcomeKind::Oversize) {
            record.rejected = Some("miner error");
            return false;
        }
        let rejected = cleaning::on_final(&record.text, &self.prompt);
        let rejected = rejected.or_else(|| self.overlap_final(i));
        self.miners[i].record.rejected = rejected;
        rejected.is_none()
    }
}

/// `texts` as chunks from `uid`, empty ones left out.
fn chunks(uid: u16, texts: Vec<String>) -> Vec<AnswerChunk> {
    texts
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|delta| AnswerChunk { uid, delta })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PROMPT: &str = "Tell me a story";

    pub(super) fn fanout(k: u16, strategy: Strategy) -> Fanout {
        let targets: Vec<MinerTarget> = (0..k)
            .map(|i| MinerTarget {
                uid: 100 + i,
                ip: "127.0.0.1".into(),
                port: 1,
                hotkey: format!("hotkey-{i}"),
            })
            .collect();
        Fanout::new(&targets, strategy, PROMPT.into())
    }

    fn outcome(kind: OutcomeKind, text: &str) -> Outcome {
        Outcome {
            kind,
            http_status: Some(200),
            time_to_first_byte: Some(Duration::from_millis(5)),
            total_time: Duration::from_millis(50),
            bytes: text.len(),
            chunks: 1,
            text: text.into(),
        }
    }

    pub(super) fn ok(text: &str) -> Outcome {
        outcome(OutcomeKind::Ok, text)
    }

    fn sent(step: &Step) -> Vec<(u16, &str)> {
        step.send
            .iter()
            .map(|c| (c.uid, c.delta.as_str()))
            .collect()
    }

    #[test]
    fn first_streams_the_first_usable_miner_and_drops_the_others() {
        let mut f = fanout(3, Strategy::First);
        // Miner 0 only repeats the prompt so far: nothing goes out.
        assert_eq!(f.on_chunk(0, "Tell me".into()), Step::wait());
        // Miner 2's text is usable: committed, the others dropped at once.
        let step = f.on_chunk(2, "Once upon".into());
        assert_eq!(sent(&step), vec![(102, "Once upon")]);
        assert_eq!(step.drop, vec![0, 1]);
        assert_eq!(step.end, None);
        // Its next chunk goes straight on; a late chunk of a dropped miner does not.
        assert_eq!(
            sent(&f.on_chunk(2, " a time".into())),
            vec![(102, " a time")]
        );
        assert_eq!(f.on_chunk(0, " a story".into()), Step::wait());
        let step = f.on_done(2, ok("Once upon a time"));
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 102 }));
        assert!(step.send.is_empty());
        let records = f.finish();
        let selected: Vec<bool> = records.iter().map(|r| r.selected).collect();
        assert_eq!(selected, vec![false, false, true]);
        assert!(records[0].outcome.is_none(), "dropped before it ended");
        assert_eq!(records[2].text, "Once upon a time");
    }

    #[test]
    fn first_rejects_a_refusal_on_its_prefix_and_takes_the_next_miner() {
        let mut f = fanout(2, Strategy::First);
        let step = f.on_chunk(0, "I'm sorry, but I can't".into());
        assert_eq!(step.drop, vec![0]);
        assert!(step.send.is_empty());
        let step = f.on_chunk(1, "Sure: ".into());
        assert_eq!(sent(&step), vec![(101, "Sure: ")]);
        // The refusing miner's end changes nothing.
        assert_eq!(f.on_done(0, ok("I'm sorry, but I can't")), Step::wait());
        let records = f.finish();
        assert_eq!(records[0].rejected, Some(cleaning::REFUSAL));
        assert!(records[1].selected);
    }

    #[test]
    fn first_judges_a_prefix_that_kept_it_waiting_once_the_reply_ends() {
        let mut f = fanout(2, Strategy::First);
        // "I" could still become a refusal: held back.
        assert_eq!(f.on_chunk(1, "I".into()), Step::wait());
        let step = f.on_done(1, ok("I"));
        assert_eq!(sent(&step), vec![(101, "I")]);
        assert_eq!(step.drop, vec![0]);
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 101 }));
    }

    #[test]
    fn first_with_only_failures_and_unusable_text_is_no_answer() {
        let mut f = fanout(3, Strategy::First);
        let refused = outcome(
            OutcomeKind::ConnectFailure {
                message: "refused".into(),
            },
            "",
        );
        assert_eq!(f.on_done(0, refused), Step::wait());
        assert_eq!(f.on_chunk(1, "  ".into()), Step::wait());
        assert_eq!(f.on_done(1, ok("  ")), Step::wait());
        assert_eq!(f.on_done(2, ok(PROMPT)), Step::wait());
        assert_eq!(f.on_all_done(), Step::end(FanoutEnd::NoAnswer));
        let rejected: Vec<_> = f.finish().into_iter().map(|r| r.rejected).collect();
        assert_eq!(
            rejected,
            vec![
                Some("miner error"),
                Some(cleaning::EMPTY),
                Some(cleaning::ECHO)
            ]
        );
    }

    #[test]
    fn a_chosen_stream_that_breaks_off_is_broken_with_the_reason() {
        let mut f = fanout(2, Strategy::First);
        assert_eq!(f.on_chunk(0, "Once".into()).drop, vec![1]);
        let reset = outcome(
            OutcomeKind::Malformed {
                message: "reset".into(),
            },
            "Once",
        );
        let step = f.on_done(0, reset);
        assert_eq!(
            step.end,
            Some(FanoutEnd::Broken {
                uid: 100,
                reason: "the miner's stream broke off: malformed reply".into()
            })
        );
        // Oversize is a complete (capped) answer, not a broken one.
        let mut f = fanout(1, Strategy::First);
        f.on_chunk(0, "Once".into());
        let step = f.on_done(0, outcome(OutcomeKind::Oversize, "Once"));
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 100 }));
    }

    #[test]
    fn the_deadline_times_out_or_breaks_off_the_chosen_answer() {
        let mut f = fanout(2, Strategy::First);
        f.on_chunk(0, "Tell".into());
        assert_eq!(f.on_deadline(), Step::end(FanoutEnd::TimedOut));
        assert!(f.finish().iter().all(|r| !r.selected));

        let mut f = fanout(2, Strategy::First);
        f.on_chunk(1, "Once upon".into());
        let step = f.on_deadline();
        assert!(step.send.is_empty());
        assert_eq!(
            step.end,
            Some(FanoutEnd::Broken {
                uid: 101,
                reason: UNFINISHED.into()
            })
        );
        assert!(f.finish()[1].selected);
    }

    #[test]
    fn the_deadline_judges_the_committed_miner_still_streaming_and_no_other() {
        use crate::reliability::{Verdict, verdicts};
        // Miner 1 wins with a usable opening, then drips: the deadline cuts it off.
        let mut f = fanout(3, Strategy::First);
        f.on_chunk(0, "Tell".into());
        assert_eq!(f.on_chunk(1, "Once upon".into()).drop, vec![0, 2]);
        f.on_chunk(1, " a".into());
        let step = f.on_deadline();
        assert!(matches!(step.end, Some(FanoutEnd::Broken { uid: 101, .. })));
        let records = f.finish();
        // Before: no outcome, no reason, verdict unknown: never counted against it.
        assert_eq!(records[1].rejected, Some(CUT_OFF));
        assert!(records[1].selected && records[1].outcome.is_none());
        assert_eq!(crate::audit::miner_outcome(&records[1]), "timeout");
        // The miners dropped because it won were never judged.
        assert_eq!(records[0].rejected, None);
        assert_eq!(
            verdicts(&records, PROMPT),
            vec![Verdict::Unknown, Verdict::Failed, Verdict::Unknown]
        );
        // Nobody committed: nobody is judged.
        let mut f = fanout(2, Strategy::First);
        f.on_chunk(0, "Tell".into());
        f.on_deadline();
        assert!(f.finish().iter().all(|r| r.rejected.is_none()));
    }

    #[test]
    fn longest_holds_everything_back_then_streams_the_longest_usable_answer() {
        let mut f = fanout(4, Strategy::Longest);
        for (i, text) in [
            "A short one.",
            "I'm sorry, but I can't help with that at all, not at all.",
            "A rather longer answer.",
            "",
        ]
        .into_iter()
        .enumerate()
        {
            // Usable or not, nothing goes out and nobody is dropped while replies come in.
            assert_eq!(f.on_chunk(i, text.into()), Step::wait());
            assert_eq!(f.on_done(i, ok(text)), Step::wait());
        }
        let step = f.on_all_done();
        assert_eq!(sent(&step), vec![(102, "A rather longer answer.")]);
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 102 }));
        let records = f.finish();
        assert!(records[2].selected);
        assert_eq!(records[1].rejected, Some(cleaning::REFUSAL));
        assert_eq!(records[3].rejected, Some(cleaning::EMPTY));
    }

    #[test]
    fn shortest_streams_the_shortest_usable_answer_with_its_chunks() {
        let mut f = fanout(3, Strategy::Shortest);
        f.on_chunk(0, "Quite a long".into());
        f.on_chunk(0, " answer.".into());
        f.on_done(0, ok("Quite a long answer."));
        f.on_chunk(1, "Brief".into());
        f.on_chunk(1, " one.".into());
        f.on_done(1, ok("Brief one."));
        f.on_done(2, ok(" "));
        let step = f.on_all_done();
        assert_eq!(sent(&step), vec![(101, "Brief"), (101, " one.")]);
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 101 }));
    }

    #[test]
    fn longest_at_the_deadline_chooses_among_the_replies_that_ended() {
        let mut f = fanout(3, Strategy::Longest);
        f.on_chunk(0, "Done and usable.".into());
        f.on_done(0, ok("Done and usable."));
        // Miner 1 is longer but still streaming: not a candidate.
        f.on_chunk(1, "Still streaming a much longer answer".into());
        let step = f.on_deadline();
        assert_eq!(sent(&step), vec![(100, "Done and usable.")]);
        assert_eq!(step.drop, vec![1, 2]);
        assert_eq!(step.end, Some(FanoutEnd::Answered { uid: 100 }));
        let records = f.finish();
        assert!(records[0].selected && !records[1].selected);
        assert!(records[1].outcome.is_none());

        let mut f = fanout(2, Strategy::Longest);
        f.on_chunk(0, "Still going".into());
        assert_eq!(f.on_deadline(), Step::end(FanoutEnd::TimedOut));
        let mut f = fanout(2, Strategy::Shortest);
        f.on_done(0, ok(""));
        f.on_done(1, ok(PROMPT));
        assert_eq!(f.on_all_done(), Step::end(FanoutEnd::NoAnswer));
    }

    #[test]
    fn events_for_unknown_miners_are_ignored() {
        let mut f = fanout(1, Strategy::First);
        assert_eq!(f.on_chunk(5, "Once".into()), Step::wait());
        assert_eq!(f.on_done(5, ok("Once")), Step::wait());
        assert_eq!(f.finish().len(), 1);
    }

    #[test]
    fn longest_over_64_miners_of_256_kib_holds_one_copy_within_the_budget() {
        const REPLY: usize = 256 << 10;
        const CHUNK: usize = 16 << 10;
        let mut f = fanout(64, Strategy::Longest);
        let mut dropped = Vec::new();
        for i in 0..64 {
            // Miner i's reply is a little longer than miner i - 1's.
            let text = format!("{}{}", "a".repeat(REPLY), "b".repeat(i));
            for piece in text.as_bytes().chunks(CHUNK) {
                let step = f.on_chunk(i, String::from_utf8(piece.to_vec()).unwrap());
                assert!(step.send.is_empty());
                dropped.extend(step.drop);
            }
            f.on_done(i, ok(&text));
        }
        let held = f.text_held();
        // Before: text, record copy and held chunks, about 3 × 16 MiB for this job.
        assert!(held.peak_bytes <= JOB_TEXT_BUDGET, "{held:?}");
        assert!(held.peak_bytes > JOB_TEXT_BUDGET / 2, "{held:?}");
        assert_eq!(held.over_budget, dropped.len());
        assert!(dropped.len() >= 30 && dropped.len() < 64, "{dropped:?}");
        // The longest reply that fitted is chosen and streamed whole, in its chunks.
        let fitted = (0..64).filter(|i| !dropped.contains(i)).max().unwrap();
        let step = f.on_all_done();
        assert_eq!(
            step.end,
            Some(FanoutEnd::Answered {
                uid: 100 + fitted as u16
            })
        );
        let sent: usize = step.send.iter().map(|c| c.delta.len()).sum();
        assert_eq!(sent, REPLY + fitted);
        let records = f.finish();
        assert_eq!(records[dropped[0]].rejected, Some(OVER_BUDGET));
        assert!(records[dropped[0]].text.is_empty());
        assert!(
            records
                .iter()
                .all(|r| r.outcome.as_ref().is_none_or(|o| o.text.is_empty()))
        );
    }

    #[test]
    fn a_whitespace_flood_costs_little_and_does_not_delay_a_good_miner() {
        let mut f = fanout(2, Strategy::First);
        let started = std::time::Instant::now();
        let mut rejected_at = None;
        for n in 0..100_000 {
            let step = f.on_chunk(0, " ".into());
            if !step.drop.is_empty() && rejected_at.is_none() {
                rejected_at = Some(n);
            }
        }
        let step = f.on_chunk(1, "Once upon".into());
        let took = started.elapsed();
        // Before: 9 s of CPU for the flood, the good miner's first chunk 8.8 s late.
        assert!(
            took < std::time::Duration::from_millis(200),
            "took {took:?}"
        );
        assert_eq!(rejected_at, Some(cleaning::WAIT_CAP - 1));
        assert_eq!(sent(&step), vec![(101, "Once upon")]);
        let records = f.finish();
        assert_eq!(records[0].rejected, Some(cleaning::STALLING));
    }
}
