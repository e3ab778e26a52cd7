//! [`Deadline`]: the moment a query's time budget runs out, on the process's monotonic clock.
//!
//! One value travels from the caller down to the reply reader: the reader stops there, and the
//! timeout told to the miner (synapse `timeout`, Epistula `timeout` / `X-Client-Timeout`) is
//! what is left of it when the request is built. Nothing converts a budget twice.

use std::time::Duration;
use tokio::time::Instant;

/// When a query (or a whole fan-out) must be over. Cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Deadline {
        Deadline(instant)
    }

    /// The deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline(Instant::now() + budget)
    }

    /// The instant itself (for `sleep_until`, `timeout_at`).
    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left, zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_down_to_zero() {
        let now = Instant::now();
        let ahead = Deadline::at(now + Duration::from_secs(60));
        assert!(ahead.remaining() > Duration::from_secs(59));
        assert!(ahead.remaining() <= Duration::from_secs(60));
        let behind = Deadline::at(now);
        assert_eq!(behind.remaining(), Duration::ZERO);
        assert!(behind < ahead);
    }
}
