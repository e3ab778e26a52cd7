//! One request as the audit log holds it, for the playground's request link
//! ([`Store::request_fan_out`]): how it ended and every miner asked — outcomes and timings only,
//! never the prompt, the texts or the key id.

use crate::store::{Store, StoreError, postgres, sqlite};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One request and its fan-out.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestFanOut {
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// When it arrived, RFC 3339.
    #[serde(serialize_with = "super::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    /// `chat`, `echo` or `v1`.
    pub endpoint: String,
    /// Subnet.
    pub netuid: i64,
    /// Miners asked for.
    pub k: i64,
    /// Miners actually asked.
    pub k_asked: i64,
    /// `first`, `longest`, `shortest`, …
    pub strategy: String,
    /// How it ended: `answered`, `echo`, `broken`, `timeout`, `no_answer`, `no_candidates`,
    /// `cancelled`.
    pub status: String,
    /// The error the client saw, if any.
    pub error: Option<String>,
    /// The miner whose answer was sent.
    pub selected_uid: Option<i64>,
    /// Time to the first chunk sent, ms.
    pub time_to_first_chunk_ms: Option<f64>,
    /// Time to the end, ms.
    pub total_ms: f64,
    /// Every miner asked, the selected one first, then by time to first byte.
    #[sqlx(skip)]
    pub miners: Vec<MinerReply>,
}

/// One miner's part in a request.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinerReply {
    /// Uid.
    pub uid: i64,
    /// Hotkey, SS58.
    pub hotkey: String,
    /// `ok`, `empty`, `refused`, `error`, `timeout`, `connect_failure`, `cancelled`.
    pub outcome: String,
    /// The axon's HTTP status.
    pub status_code: Option<i64>,
    /// Time to first byte, ms.
    pub time_to_first_byte_ms: Option<f64>,
    /// Time to the end of its reply, ms.
    pub total_ms: Option<f64>,
    /// Chunks received.
    pub chunks: i64,
    /// Bytes received.
    pub bytes: i64,
    /// Why its text was not usable, if it was not.
    pub clean_reason: Option<String>,
    /// Whether its answer went to the client.
    pub selected: bool,
}

impl Store {
    /// The request `request_id` (a UUID in its hyphenated lowercase form) and its miners, or
    /// `None` when the audit log has no such request (unknown, not written yet, or pruned).
    pub async fn request_fan_out(
        &self,
        request_id: &str,
    ) -> Result<Option<RequestFanOut>, StoreError> {
        match self {
            Store::Postgres(pool) => postgres::status::request_fan_out(pool, request_id).await,
            Store::Sqlite(pool) => sqlite::status::request_fan_out(pool, request_id).await,
        }
    }
}
