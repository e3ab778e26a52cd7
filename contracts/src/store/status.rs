//! What the status page shows, read from the newest snapshot and the audit log (issue #15).
//!
//! Entry point: [`Store::subnet_status`], one [`SubnetStatus`]: the newest metagraph snapshot
//! (netuid, block, age, neuron counts, one [`MinerStatus`] per serving miner) and, from the
//! audit log over the window before `now`, each miner's health ([`MinerHealth`]), a histogram
//! of times to first byte ([`TtfbBucket`]) and requests and errors per minute
//! ([`MinuteStats`]).
//!
//! Both backends answer the same: their queries (`postgres/status.rs`, `sqlite/status.rs`)
//! return the same raw rows ([`AuditWindow`]) and everything else — percentiles interpolated
//! as Postgres's `percentile_cont`, empty minutes filled, rates — is computed here, once.
//!
//! Also one request's fan-out ([`fan_out`], [`Store::request_fan_out`]), which the
//! playground links to. The api serves both as they are ([`report`]).

mod fan_out;
mod report;

pub use fan_out::{MinerReply, RequestFanOut};
pub use report::{
    MinerHealth, MinerStatus, MinuteStats, NeuronCounts, SubnetStatus, TtfbBucket, rfc3339_millis,
    rfc3339_millis_opt,
};

use super::{SnapshotInfo, Store, StoreError, postgres, sqlite};
use crate::metagraph::{Metagraph, Neuron};
use chrono::{DateTime, Duration, DurationRound, Utc};
use sn1_bittensor::metagraph::VALIDATOR_MIN_STAKE_TAO;
use std::collections::HashMap;

/// Upper edges (ms, exclusive) of the TTFB histogram's buckets; a last bucket holds the rest.
/// Spaced roughly ×2 so one chart shows both a 30 ms miner and an 8 s one (the worker's
/// `FIRST_BYTE_TIMEOUT` default).
pub const TTFB_BUCKETS_MS: [f64; 9] = [
    25.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0,
];

/// The `completions.status` values counted as errors: the gateway could not give an answer.
/// (`cancelled` is the client leaving; `answered` and `echo` are answers.)
pub const ERROR_STATUSES: [&str; 4] = ["broken", "timeout", "no_answer", "no_candidates"];

/// The `miner_responses.verdict` values of a reply that did not succeed whatever its `outcome`:
/// a committed miner that stalled is stored with outcome `cancelled` (the worker stopped
/// reading it) but it did reply, and badly — counted as a reply, never as ok. Both backends'
/// health queries use this SQL condition (true for every other verdict, and for none).
pub(crate) const FAILED_VERDICT: &str = "(coalesce(m.verdict, '') IN ('stalled', 'failed'))";

/// Per (uid, hotkey) counts of the window, as both backends return them.
#[derive(Clone, Debug)]
pub(crate) struct HealthRow {
    pub uid: i64,
    pub hotkey: String,
    pub asked: i64,
    pub cancelled: i64,
    pub ok: i64,
    pub empty: i64,
    pub last_seen: DateTime<Utc>,
}

/// One (uid, hotkey)'s TTFB at 0-based `index` of its `count` sorted values — only the
/// indices [`percentile_indices`] names.
#[derive(Clone, Debug)]
pub(crate) struct OrderStat {
    pub uid: i64,
    pub hotkey: String,
    pub index: i64,
    pub count: i64,
    pub ttfb_ms: f64,
}

/// The raw rows of the audit window.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditWindow {
    pub health: Vec<HealthRow>,
    pub order_stats: Vec<OrderStat>,
    /// (bucket index into [`TTFB_BUCKETS_MS`], `len()` for the last; count).
    pub histogram: Vec<(i64, i64)>,
    /// (minute start, requests, errors).
    pub minutes: Vec<(DateTime<Utc>, i64, i64)>,
}

/// The 0-based indices `percentile_cont(p)` interpolates between for `n` sorted values, as
/// integer arithmetic both backends do in SQL: `floor(p·(n−1))` and `ceil(p·(n−1))` with `p` in
/// hundredths (50 and 95).
pub(crate) fn percentile_indices(hundredths: i64, n: i64) -> (i64, i64) {
    let scaled = hundredths * (n - 1);
    (scaled / 100, (scaled + 99) / 100)
}

/// `percentile_cont(hundredths / 100)` of the values at the indices of
/// [`percentile_indices`]; `None` when one of them is missing.
fn percentile(hundredths: i64, n: i64, at: &HashMap<i64, f64>) -> Option<f64> {
    if n <= 0 {
        return None;
    }
    let (lo, hi) = percentile_indices(hundredths, n);
    let (low, high) = (*at.get(&lo)?, *at.get(&hi)?);
    let position = hundredths as f64 / 100.0 * (n - 1) as f64;
    Some(low + (high - low) * (position - lo as f64))
}

/// How many values a (uid, hotkey) has, and the ones read back, by 0-based index.
type Sorted = (i64, HashMap<i64, f64>);

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn axon(n: &Neuron) -> String {
    if n.axon_ip.contains(':') {
        format!("[{}]:{}", n.axon_ip, n.axon_port)
    } else {
        format!("{}:{}", n.axon_ip, n.axon_port)
    }
}

impl Store {
    /// The status of `netuid` (default: the netuid of the newest snapshot of any) at `now`, with
    /// the audit log's last `window` (one hour on the page). Only the audit rows of that
    /// netuid's requests count.
    ///
    /// A netuid that has no snapshot gets an empty status (`snapshot: None`, no miners, zero
    /// counts) without the audit log being read; with no netuid and no snapshot at all, the
    /// audit figures are those of every netuid.
    pub async fn subnet_status(
        &self,
        netuid: Option<u16>,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<SubnetStatus, StoreError> {
        let netuid = match netuid {
            Some(n) => Some(n),
            None => self.newest_netuid().await?,
        };
        let latest = match netuid {
            Some(n) => self.latest_metagraph(n).await?,
            None => None,
        };
        let since = now - window;
        let raw = match self {
            // A netuid without any snapshot (asked for by number: anyone may ask for any of
            // 65,536) has no miners to show: answered at once, without scanning the audit log.
            _ if netuid.is_some() && latest.is_none() => AuditWindow::default(),
            Store::Postgres(pool) => postgres::status::audit_window(pool, netuid, since).await?,
            Store::Sqlite(pool) => sqlite::status::audit_window(pool, netuid, since).await?,
        };
        let (snapshot, metagraph) = latest.unzip();
        Ok(assemble(snapshot, metagraph, raw, now, window))
    }

    /// The netuid of the snapshot stored last, if any.
    async fn newest_netuid(&self) -> Result<Option<u16>, StoreError> {
        let netuid = match self {
            Store::Postgres(pool) => postgres::status::newest_netuid(pool).await?.map(i64::from),
            Store::Sqlite(pool) => sqlite::status::newest_netuid(pool).await?,
        };
        netuid
            .map(|n| u16::try_from(n).map_err(|_| StoreError::Invalid(format!("netuid {n}"))))
            .transpose()
    }
}

fn assemble(
    snapshot: Option<SnapshotInfo>,
    metagraph: Option<Metagraph>,
    raw: AuditWindow,
    now: DateTime<Utc>,
    window: Duration,
) -> SubnetStatus {
    let neurons = metagraph.map(|m| m.neurons).unwrap_or_default();
    let mut counts = NeuronCounts {
        neurons: neurons.len() as u32,
        ..NeuronCounts::default()
    };
    let mut health: HashMap<(i64, &str), MinerHealth> = raw
        .health
        .iter()
        .map(|h| {
            let replies = h.asked - h.cancelled;
            let rate = |part: i64| (replies > 0).then(|| part as f64 / replies as f64);
            let health = MinerHealth {
                asked: count(h.asked),
                replies: count(replies),
                success_rate: rate(h.ok),
                empty_rate: rate(h.empty),
                ttfb_p50_ms: None,
                ttfb_p95_ms: None,
                last_seen: Some(h.last_seen),
            };
            ((h.uid, h.hotkey.as_str()), health)
        })
        .collect();
    let mut values: HashMap<(i64, &str), Sorted> = HashMap::new();
    for s in &raw.order_stats {
        let entry = values.entry((s.uid, s.hotkey.as_str())).or_default();
        entry.0 = s.count;
        entry.1.insert(s.index, s.ttfb_ms);
    }
    for (key, (n, at)) in &values {
        if let Some(h) = health.get_mut(key) {
            h.ttfb_p50_ms = percentile(50, *n, at);
            h.ttfb_p95_ms = percentile(95, *n, at);
        }
    }
    let mut miners = Vec::new();
    for n in &neurons {
        let serving = n.is_serving();
        let validator = n.is_validator(VALIDATOR_MIN_STAKE_TAO);
        counts.serving += u32::from(serving);
        counts.validators += u32::from(validator);
        if serving && !validator {
            counts.candidates += 1;
            miners.push(MinerStatus {
                uid: n.uid,
                hotkey: n.hotkey.clone(),
                axon: axon(n),
                incentive: n.incentive,
                stake_tao: n.stake_tao,
                health: health
                    .remove(&(i64::from(n.uid), n.hotkey.as_str()))
                    .unwrap_or_default(),
            });
        }
    }
    miners.sort_by_key(|m| m.uid);
    SubnetStatus {
        snapshot,
        generated_at: now,
        window_seconds: window.num_seconds(),
        counts,
        miners,
        ttfb_histogram: histogram(&raw.histogram),
        per_minute: per_minute(&raw.minutes, now, window),
    }
}

fn histogram(raw: &[(i64, i64)]) -> Vec<TtfbBucket> {
    let edges = TTFB_BUCKETS_MS.iter().map(|e| Some(*e)).chain([None]);
    edges
        .enumerate()
        .map(|(i, below_ms)| TtfbBucket {
            below_ms,
            count: raw
                .iter()
                .filter(|(b, _)| *b == i as i64)
                .map(|(_, c)| count(*c))
                .sum(),
        })
        .collect()
}

/// One entry per minute from the one holding `now - window` to the one holding `now`.
fn per_minute(
    raw: &[(DateTime<Utc>, i64, i64)],
    now: DateTime<Utc>,
    window: Duration,
) -> Vec<MinuteStats> {
    let minute = Duration::minutes(1);
    let floor = |t: DateTime<Utc>| t.duration_trunc(minute).unwrap_or(t);
    let found: HashMap<DateTime<Utc>, (i64, i64)> =
        raw.iter().map(|(m, r, e)| (floor(*m), (*r, *e))).collect();
    let mut out = Vec::new();
    let mut at = floor(now - window);
    while at <= now {
        let (requests, errors) = found.get(&at).copied().unwrap_or_default();
        out.push(MinuteStats {
            minute: at,
            requests: count(requests),
            errors: count(errors),
        });
        at += minute;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Postgres: `SELECT percentile_cont(p) WITHIN GROUP (ORDER BY v) FROM unnest(...)`.
    #[test]
    fn percentiles_interpolate_as_percentile_cont() {
        let values = [10.0, 20.0, 30.0, 40.0];
        let at: HashMap<i64, f64> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, *v))
            .collect();
        assert_eq!(percentile(50, 4, &at), Some(25.0));
        // 0.95 · 3 = 2.85 → 30 + 0.85 · 10
        assert!((percentile(95, 4, &at).unwrap() - 38.5).abs() < 1e-9);
        let one = HashMap::from([(0, 7.0)]);
        assert_eq!(percentile(50, 1, &one), Some(7.0));
        assert_eq!(percentile(95, 1, &one), Some(7.0));
        assert_eq!(percentile(50, 0, &HashMap::new()), None);
        assert_eq!(percentile_indices(95, 21), (19, 19));
        assert_eq!(percentile_indices(50, 4), (1, 2));
    }

    #[test]
    fn every_minute_of_the_window_has_an_entry() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T05:30:20Z")
            .unwrap()
            .with_timezone(&Utc);
        let busy = now - Duration::minutes(2);
        let out = per_minute(&[(busy, 5, 1)], now, Duration::hours(1));
        assert_eq!(out.len(), 61);
        assert_eq!(out[0].minute.to_rfc3339(), "2026-12-02T04:30:00+00:00");
        assert_eq!(out[58].requests, 5);
        assert_eq!(out[58].errors, 1);
        assert_eq!(out.iter().map(|m| m.requests).sum::<u64>(), 5);
    }
}
