//! Dendrite nonces: `time.time_ns()` made strictly increasing (docs/protocol.md §5).
//!
//! An axon stores the last nonce per `"{hotkey}:{uuid}"` and rejects any nonce `<=` it, and
//! the dendrite uses one uuid per process, so two requests sent in the same nanosecond (or
//! after a wall-clock step backwards) must still get distinct, increasing nonces.
//! [`NonceClock::next`] returns `max(now_ns, last + 1)` with a lock-free compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Process-wide nonce source: wall-clock nanoseconds, strictly increasing under concurrency.
#[derive(Debug, Default)]
pub struct NonceClock {
    /// The last nonce handed out (0 before the first call).
    last: AtomicU64,
}

/// Current wall-clock time in nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl NonceClock {
    /// A clock that has handed out no nonce yet.
    pub fn new() -> Self {
        NonceClock {
            last: AtomicU64::new(0),
        }
    }

    /// The next nonce: the current `time_ns`, or the previous nonce + 1 if the clock has not
    /// moved past it. Never returns the same value twice, from any number of threads.
    pub fn next(&self) -> u64 {
        let now = now_ns();
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(prev.saturating_add(1));
            match self.last.compare_exchange_weak(
                prev,
                candidate,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return candidate,
                Err(actual) => prev = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increasing_and_close_to_wall_clock() {
        let clock = NonceClock::new();
        let a = clock.next();
        let b = clock.next();
        assert!(b > a);
        let now = now_ns();
        assert!(now >= a && now - a < 5_000_000_000, "nonce is time_ns");
    }
}
