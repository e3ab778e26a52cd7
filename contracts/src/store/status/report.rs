//! The types of [`super`] as the api serves them (`GET /api/status`, `GET /api/requests/{id}`):
//! they serialize to that JSON — times as RFC 3339 with milliseconds ([`rfc3339_millis`]) — and
//! with the `openapi` feature their doc comments describe it in the OpenAPI document.

#[cfg(doc)]
use super::{ERROR_STATUSES, TTFB_BUCKETS_MS};
use crate::store::SnapshotInfo;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
#[cfg(doc)]
use sn1_bittensor::metagraph::VALIDATOR_MIN_STAKE_TAO;

/// The subnet as the status page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubnetStatus {
    /// The newest snapshot read (`None` before the syncer stored one). Not serialized: the api
    /// shows its netuid, block and age beside the rest.
    #[serde(skip)]
    pub snapshot: Option<SnapshotInfo>,
    /// When this was computed (the `now` the window ends at), RFC 3339.
    #[serde(serialize_with = "rfc3339_millis")]
    pub generated_at: DateTime<Utc>,
    /// The length of the audit window, seconds (3600 on the page).
    pub window_seconds: i64,
    /// Counts over the snapshot's neurons.
    pub counts: NeuronCounts,
    /// One per serving miner (serving, not a validator), in uid order.
    pub miners: Vec<MinerStatus>,
    /// Replies' times to first byte in the window, by bucket ([`TTFB_BUCKETS_MS`]).
    pub ttfb_histogram: Vec<TtfbBucket>,
    /// Requests and errors per minute of the window, oldest first, one entry per minute.
    pub per_minute: Vec<MinuteStats>,
}

/// How many neurons of the snapshot are what.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeuronCounts {
    /// All neurons.
    pub neurons: u32,
    /// Neurons serving an axon (IP not `0.0.0.0`, port not 0).
    pub serving: u32,
    /// Validators: a permit and at least [`VALIDATOR_MIN_STAKE_TAO`] of stake.
    pub validators: u32,
    /// Serving neurons that are not validators: the miners a job may ask (before the worker's
    /// own screens: axon address policy, `exclude`, one per coldkey / IP).
    pub candidates: u32,
}

/// One serving miner and its health over the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinerStatus {
    /// Uid.
    pub uid: u16,
    /// Hotkey, SS58.
    pub hotkey: String,
    /// `ip:port` (`[ip]:port` for IPv6).
    pub axon: String,
    /// Incentive, 0..=1.
    pub incentive: f64,
    /// Stake, τ.
    pub stake_tao: f64,
    /// Its health over the window (all zero / `None` when it was not asked); in JSON, its
    /// fields stand beside the miner's.
    #[serde(flatten)]
    pub health: MinerHealth,
}

/// A miner's health over the audit window (rows of this uid *and* hotkey).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinerHealth {
    /// Times it was asked.
    pub asked: u64,
    /// Replies that ended (asked minus `cancelled`: dropped because another miner answered
    /// first, which says nothing about this one).
    pub replies: u64,
    /// Share of `replies` that were usable (`ok`); null when there was no reply.
    pub success_rate: Option<f64>,
    /// Share of `replies` that were empty; null when there was no reply.
    pub empty_rate: Option<f64>,
    /// Median time to first byte, ms (as `percentile_cont(0.5)`).
    pub ttfb_p50_ms: Option<f64>,
    /// 95th percentile of time to first byte, ms (as `percentile_cont(0.95)`).
    pub ttfb_p95_ms: Option<f64>,
    /// When it was last asked, RFC 3339.
    #[serde(serialize_with = "rfc3339_millis_opt")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// One bar of the TTFB histogram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtfbBucket {
    /// Upper edge, ms, exclusive (`None`, null in JSON: the last bucket, everything above).
    pub below_ms: Option<f64>,
    /// Replies in it.
    pub count: u64,
}

/// One minute of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteStats {
    /// Its start, RFC 3339.
    #[serde(serialize_with = "rfc3339_millis")]
    pub minute: DateTime<Utc>,
    /// Requests that started in it.
    pub requests: u64,
    /// Of those, errors ([`ERROR_STATUSES`]).
    pub errors: u64,
}

/// Serializes `t` as the JSON of the status endpoints shows times: RFC 3339, UTC, milliseconds
/// (`2026-12-02T05:30:00.000Z`).
pub fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// [`rfc3339_millis`], or null.
pub fn rfc3339_millis_opt<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339_millis(t, serializer),
        None => serializer.serialize_none(),
    }
}
