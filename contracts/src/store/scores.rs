//! Miner reliability from the audit log: every worker reads the same per-minute aggregate of
//! judged replies (`miner_responses.verdict`, written by the audit writer) and turns it into
//! decayed scores, so all workers converge on one view with no state of their own to share.

use super::{Store, StoreError, postgres, sqlite};
use chrono::{DateTime, Utc};

/// Judged replies of one miner with one verdict in one minute.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictBucket {
    /// The miner's hotkey.
    pub hotkey: String,
    /// The axon asked, `ip:port`.
    pub axon: String,
    /// `usable`, `unusable`, `stalled` or `failed`.
    pub verdict: String,
    /// The minute (of the requests' creation).
    pub minute: DateTime<Utc>,
    /// Replies.
    pub replies: i64,
    /// Sum of their times to first byte, ms.
    pub ttfb_ms_sum: f64,
    /// Replies with a time to first byte.
    pub ttfb_n: i64,
}

/// One row of the grouped query: hotkey, axon, verdict, minute (`M`: a time, or SQLite's
/// text), replies, sum of times to first byte, replies with one.
pub(crate) type BucketRow<M> = (String, String, String, M, i64, f64, i64);

impl From<BucketRow<DateTime<Utc>>> for VerdictBucket {
    fn from(row: BucketRow<DateTime<Utc>>) -> Self {
        let (hotkey, axon, verdict, minute, replies, ttfb_ms_sum, ttfb_n) = row;
        VerdictBucket {
            hotkey,
            axon,
            verdict,
            minute,
            replies,
            ttfb_ms_sum,
            ttfb_n,
        }
    }
}

impl Store {
    /// Judged replies of requests created after `since`, per miner, verdict and minute.
    pub async fn verdict_buckets(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<VerdictBucket>, StoreError> {
        match self {
            Store::Postgres(pool) => postgres::audit::verdict_buckets(pool, since).await,
            Store::Sqlite(pool) => sqlite::audit::verdict_buckets(pool, since).await,
        }
    }
}
