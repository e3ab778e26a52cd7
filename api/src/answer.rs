//! The answer as the client receives it, and how often it may receive it.
//!
//! The seed's `StreamChunk` repeats every earlier delta (`accumulated_chunks`) and its timing, so
//! the bytes of a response grow with the square of its number of events: a miner that sends
//! 5,000 one-byte chunks would make its client download hundreds of megabytes. So text is not
//! sent per worker event but per *client* event, and client events are budgeted by bytes:
//!
//! * new text goes out at once while the response stays within [`AT_ONCE`] (16 × its text +
//!   512 KiB): an answer streamed token by token goes out delta by delta for its first ~180
//!   tokens, then in merged deltas as its length makes room;
//! * beyond, text is held back and merged into one delta: it goes out when more text makes room,
//!   or after [`MAX_HOLD`] (250 ms) while the response stays within [`HELD`] (64 × its text +
//!   2 MiB);
//! * the end of the answer always goes out, with any text still held.
//!
//! A response is therefore at most 64 × its text + 2 MiB plus its last event (linear in the
//! answer; at the worker's 256 KiB reply cap, under 20 MiB), and text waits at most 250 ms until
//! that bound is reached.

use std::time::Duration;
use tokio::time::Instant;

/// Bytes a response may take before new text is held back: `ratio` × the answer's text +
/// `allowance`.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Bytes per byte of text.
    pub ratio: usize,
    /// Bytes on top.
    pub allowance: usize,
}

impl Budget {
    fn allows(self, text: usize, wire: usize) -> bool {
        wire <= self
            .ratio
            .saturating_mul(text)
            .saturating_add(self.allowance)
    }
}

/// Text goes out at once within this budget.
pub const AT_ONCE: Budget = Budget {
    ratio: 16,
    allowance: 512 * 1024,
};
/// Held text goes out after [`MAX_HOLD`] within this budget.
pub const HELD: Budget = Budget {
    ratio: 64,
    allowance: 2 * 1024 * 1024,
};
/// How long text is held back at most while the response is within [`HELD`].
pub const MAX_HOLD: Duration = Duration::from_millis(250);

/// Bytes of a `StreamChunk` besides its texts and timings (field names, timestamp, numbers).
const EVENT_OVERHEAD: usize = 200;
/// Bytes of one timing in `accumulated_chunks_timings`, with its comma.
const TIMING_BYTES: usize = 20;

/// The deltas sent so far, with their timings, and the text not sent yet.
#[derive(Debug, Default)]
pub struct Answer {
    /// The deltas sent, as sent.
    pub chunks: Vec<String>,
    /// Seconds from the request's arrival to each delta.
    pub timings: Vec<f64>,
    /// The miner of the latest text (-1 for `/echo`).
    pub uid: i32,
    pending: String,
    held_since: Option<Instant>,
    /// Held text the [`HELD`] budget refused: it waits for more text or the end.
    stuck: bool,
    /// Bytes of text, sent and pending.
    text: usize,
    /// Bytes `accumulated_chunks` and its timings take as JSON.
    accumulated: usize,
    /// Bytes of the events sent.
    wire: usize,
}

impl Answer {
    /// Nothing yet, no miner selected.
    pub fn new() -> Self {
        Answer {
            uid: -1,
            ..Answer::default()
        }
    }

    /// Adds text from the worker, not sent yet.
    pub fn push(&mut self, uid: i32, delta: &str, now: Instant) {
        self.uid = uid;
        if delta.is_empty() {
            return;
        }
        self.text += delta.len();
        self.pending.push_str(delta);
        self.held_since.get_or_insert(now);
        self.stuck = false;
    }

    /// Whether the text held now may go out (at once, or after being held long enough).
    pub fn ready(&self, now: Instant) -> bool {
        let Some(since) = self.held_since else {
            return false;
        };
        let wire = self.wire + self.cost();
        AT_ONCE.allows(self.text, wire)
            || (!self.stuck && now >= since + MAX_HOLD && HELD.allows(self.text, wire))
    }

    /// When held text should be looked at again; `None` when nothing is held or it waits for
    /// more text.
    pub fn hold_deadline(&self) -> Option<Instant> {
        self.held_since
            .filter(|_| !self.stuck)
            .map(|since| since + MAX_HOLD)
    }

    /// After [`Answer::hold_deadline`]: sends nothing more until new text when the budget
    /// refused.
    pub fn hold_expired(&mut self, now: Instant) -> bool {
        let ready = self.ready(now);
        self.stuck = !ready;
        ready
    }

    /// Whether text is held.
    pub fn has_pending(&self) -> bool {
        self.held_since.is_some()
    }

    /// Moves the held text into the sent deltas (`elapsed`: seconds since the request arrived)
    /// and counts the event's bytes.
    pub fn release(&mut self, elapsed: f64) {
        if self.held_since.take().is_none() {
            return;
        }
        let delta = std::mem::take(&mut self.pending);
        self.accumulated += json_string_len(&delta) + 1 + TIMING_BYTES;
        self.wire += self.accumulated + json_string_len(&delta) + EVENT_OVERHEAD;
        self.chunks.push(delta);
        self.timings.push(elapsed);
        self.stuck = false;
    }

    /// Counts a last event with no text of its own.
    pub fn count_last(&mut self) {
        self.wire += self.accumulated + EVENT_OVERHEAD;
    }

    /// Bytes of the events sent so far (an estimate within a few bytes per event).
    pub fn wire_bytes(&self) -> usize {
        self.wire
    }

    /// The bytes of the event that would carry the held text.
    fn cost(&self) -> usize {
        let delta = json_string_len(&self.pending);
        self.accumulated + 2 * delta + 1 + TIMING_BYTES + EVENT_OVERHEAD
    }
}

/// Bytes of `s` as a JSON string (quotes and escapes included).
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` one-byte deltas 1 ms apart, sending whatever is ready; returns (events, bytes).
    fn flood(n: usize) -> (usize, usize) {
        let start = Instant::now();
        let mut answer = Answer::default();
        for i in 0..n {
            let now = start + Duration::from_millis(i as u64);
            answer.push(1, "x", now);
            let ready = answer.ready(now)
                || (answer.hold_deadline().is_some_and(|d| now >= d) && answer.hold_expired(now));
            if ready {
                answer.release(i as f64 / 1000.0);
            }
        }
        answer.release(n as f64 / 1000.0);
        answer.count_last();
        (answer.chunks.len() + 1, answer.wire_bytes())
    }

    #[test]
    fn an_ordinary_answer_streams_delta_by_delta() {
        let start = Instant::now();
        let mut answer = Answer::default();
        for i in 0..150 {
            answer.push(3, "word ", start);
            assert!(answer.ready(start), "delta {i} was held back");
            answer.release(0.1);
        }
        assert_eq!(answer.chunks.len(), 150);
    }

    #[test]
    fn a_byte_by_byte_flood_costs_bytes_linear_in_the_answer() {
        for n in [10_000, 100_000] {
            let (events, bytes) = flood(n);
            let bound = HELD.ratio * n + HELD.allowance + 2 * n + 64 * 1024;
            assert!(
                bytes <= bound,
                "{n} bytes of text: {bytes} on the wire > {bound}"
            );
            assert!(
                events < n / 10,
                "{n} one-byte deltas became {events} events"
            );
        }
    }

    #[test]
    fn held_text_waits_at_most_max_hold_while_the_budget_lasts() {
        let start = Instant::now();
        let mut answer = Answer::default();
        // Past the at-once budget: a long answer already sent.
        for _ in 0..1000 {
            answer.push(1, "abcdefghij", start);
            if answer.ready(start) {
                answer.release(0.0);
            }
        }
        answer.release(0.0);
        answer.push(1, "z", start);
        assert!(!answer.ready(start), "at-once budget should be spent");
        let deadline = answer.hold_deadline().expect("held");
        assert_eq!(deadline, start + MAX_HOLD);
        assert!(answer.hold_expired(deadline));
    }

    #[test]
    fn escapes_are_counted() {
        assert_eq!(json_string_len("ab"), 4);
        assert_eq!(json_string_len("\"\n"), 6);
        assert_eq!(json_string_len("\u{1}"), 8);
    }
}
