//! Who is calling: the static key (`EXPECTED_ACCESS_KEY`, checked in memory), a managed key
//! (admitted against the store, so its limits hold for the whole fleet), or nobody (401).
//!
//! A managed key (`sn1-…`) is admitted with one store call per request ([`Store::admit_key`]):
//! unknown, revoked and expired keys get 401, a key over its requests per minute or answers in
//! flight gets 429 with `Retry-After`. For a key with `max_streams` the admission takes a lease
//! that the [`Caller`] gives back when it is dropped (the answer ended, or the request failed
//! before one started); the request's usage is tallied in memory then, and added to the store
//! once a second ([`UsageTally`]), so a busy key's requests do not queue on its usage row. Revocation and limit changes are read by that same call, so they hold
//! on every replica from the next request on.
//!
//! **When the store cannot be reached** (an admission got an error or no verdict, and a probe
//! cannot open a new connection either: [`StoreReach`]) the api
//! fails open for keys it admitted in the last [`REMEMBER_FOR`] and that have not expired since
//! — served without limits, their usage still tallied, counted in
//! `sn1_api_key_admissions_total{verdict="store_unavailable"}` — and closed (503,
//! `Retry-After`) for any other key. While the store is down, admissions ask the probe (one per
//! replica per second) instead of waiting on the store. When it is reachable but **busy** (no
//! free connection, a lock wait over 250 ms, no verdict within [`ADMIT_TIMEOUT`] while a new
//! connection opens) every managed key gets 503: a flood must never switch limits off. One
//! key's admissions go to the store one at a time per replica, at most 12 of all keys at once,
//! and at most 256 of one key wait ([`PendingAdmissions`]); beyond, or after waiting
//! [`ADMIT_TIMEOUT`] for its turn, 429 without asking the store. An admission its client gave
//! up on still runs to its end, and the lease it took is given back then. Authentication
//! stays: a key nobody has seen valid is never let in. Limits do not hold during the outage:
//! they exist for fairness and cost, and a key-store outage should not stop paying clients'
//! traffic (the chat path itself needs no database). A key revoked during the outage keeps
//! working on the replicas that remember it until the store answers again.

use crate::AppState;
use crate::auth::presented_key;
use crate::error::ApiError;
use crate::openai::response::estimate_tokens;
use admission::InFlight;
use axum::http::HeaderMap;
use sn1_contracts::store::keys::{Admission, KEY_PREFIX, KeyUsage, key_sha256};
use sn1_contracts::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

mod admission;
mod memory;
mod reach;
pub use memory::{PendingAdmissions, RecentKeys, UsageTally};
pub use reach::StoreReach;

/// Longest wait for the store's verdict before it counts as unreachable.
pub const ADMIT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a key admitted once is let in while the store cannot be reached.
pub const REMEMBER_FOR: Duration = Duration::from_secs(15 * 60);

/// How often a replica adds the usage it tallied to the store.
pub const USAGE_EVERY: Duration = Duration::from_secs(1);

/// An authenticated caller of one request.
pub struct Caller {
    /// The key's id (never the key): `kid-…` for the static key, `key-…` for a managed one.
    pub key_id: String,
    lease: Option<Lease>,
}

/// A managed key's hold on one request: its usage is tallied and its lease (if the key has
/// `max_streams`) given back when the caller is dropped.
struct Lease {
    store: Store,
    tally: Arc<UsageTally>,
    request_id: uuid::Uuid,
    leased: bool,
    streamed: bool,
    prompt_chars: usize,
    answer_chars: usize,
}

impl Caller {
    fn unmetered(key_id: String) -> Self {
        Caller {
            key_id,
            lease: None,
        }
    }

    /// A managed key's caller: its usage is tallied, and its lease (`leased`) given back, when
    /// it is dropped.
    fn metered(
        state: &AppState,
        store: &Store,
        key_id: String,
        request_id: uuid::Uuid,
        leased: bool,
    ) -> Self {
        Caller {
            key_id,
            lease: Some(Lease {
                store: store.clone(),
                tally: state.usage.clone(),
                request_id,
                leased,
                streamed: false,
                prompt_chars: 0,
                answer_chars: 0,
            }),
        }
    }

    /// Records what the request asks for: whether it streams, and its prompt's size.
    pub fn asks(&mut self, streamed: bool, prompt_chars: usize) {
        if let Some(lease) = &mut self.lease {
            lease.streamed = streamed;
            lease.prompt_chars = prompt_chars;
        }
    }

    /// Records the size of the answer sent (counted only for a managed key's usage: a static
    /// key's request is not charged the walk over its answer).
    pub fn answered(&mut self, chunks: &[String]) {
        if let Some(lease) = &mut self.lease {
            lease.answer_chars = chunks.iter().map(|c| c.chars().count()).sum();
        }
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let usage = KeyUsage {
            requests: 1,
            streams: u64::from(lease.streamed),
            est_tokens: estimate_tokens(lease.prompt_chars) + estimate_tokens(lease.answer_chars),
        };
        lease.tally.add(&self.key_id, usage);
        if !lease.leased {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // shutting down: the lease expires by itself
        };
        runtime.spawn(async move {
            if let Err(e) = lease.store.release_lease(lease.request_id).await {
                tracing::warn!(error = %e, "key lease not given back (it expires by itself)");
            }
        });
    }
}

/// Authenticates request `request_id`: the static key in memory, else a managed key through
/// the store (which also applies its limits and takes its lease). Records the key id on the
/// request's span.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    request_id: uuid::Uuid,
) -> Result<Caller, ApiError> {
    let caller = match state.auth.check(headers) {
        Some(id) => Caller::unmetered(id),
        None => admit_managed(state, headers, request_id).await?,
    };
    tracing::Span::current().record("sn1.api_key_id", caller.key_id.as_str());
    Ok(caller)
}

async fn admit_managed(
    state: &AppState,
    headers: &HeaderMap,
    request_id: uuid::Uuid,
) -> Result<Caller, ApiError> {
    let key = presented_key(headers).ok_or(ApiError::Unauthorized)?;
    let store = match &state.store {
        Some(store) if key.starts_with(KEY_PREFIX) => store,
        _ => return Err(ApiError::Unauthorized),
    };
    let sha = key_sha256(key);
    let reach = &state.key_store;
    // During an outage a probe (shared, reused for a second) answers faster than the store.
    if reach.was_down() && !reach.reachable(store).await {
        return fail_open(state, store, &sha, request_id);
    }
    // A flood of one key (or of made-up keys) waits here, not on the store's connections.
    let Some(waiting) = state.pending_admissions.enter(&sha) else {
        count("too_many_waiting");
        return Err(too_many_at_once());
    };
    let Ok(Some(turn)) = tokio::time::timeout(ADMIT_TIMEOUT, waiting.turn()).await else {
        // This key's earlier admissions still hold the store: its own load — unless the store
        // cannot be reached (an admission stuck on a dead connection holds the turn too).
        if !reach.reachable(store).await {
            return fail_open(state, store, &sha, request_id);
        }
        count("too_many_waiting");
        return Err(too_many_at_once());
    };
    let recent = state.recent_keys.clone();
    let lease = lease_length(state);
    let mut call = InFlight::start(store, recent, &sha, request_id, lease, (waiting, turn));
    let admission = match call.answer(ADMIT_TIMEOUT).await {
        Some(Ok(admission)) => admission,
        Some(Err(e)) => return unavailable(state, store, &sha, request_id, &e).await,
        None => {
            let late = StoreError::Busy(format!("no verdict within {ADMIT_TIMEOUT:?}"));
            return unavailable(state, store, &sha, request_id, &late).await;
        }
    };
    count(verdict_name(&admission));
    match admission {
        Admission::Admitted {
            key_id,
            leased,
            expires_at,
        } => {
            state.recent_keys.remember(&sha, &key_id, expires_at);
            Ok(Caller::metered(state, store, key_id, request_id, leased))
        }
        Admission::Unknown => {
            state.recent_keys.forget(&sha);
            Err(ApiError::Unauthorized)
        }
        Admission::Revoked { .. } => {
            state.recent_keys.forget(&sha);
            Err(ApiError::KeyRefused("this API key was revoked"))
        }
        Admission::Expired { .. } => {
            state.recent_keys.forget(&sha);
            Err(ApiError::KeyRefused("this API key has expired"))
        }
        Admission::OverRpm { retry_after, .. } => Err(ApiError::RateLimited {
            retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            message: "this API key has used its requests per minute; retry after the time in Retry-After",
        }),
        Admission::OverStreams { .. } => Err(ApiError::RateLimited {
            retry_after_secs: 1,
            message: "this API key has as many answers in flight as it may; retry when one ends",
        }),
    }
}

fn too_many_at_once() -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: 1,
        message: "too many requests with this API key are waiting to be admitted; retry shortly",
    }
}

/// The store gave no verdict. Unreachable (a probe cannot open a connection): a key admitted
/// recently gets in, without limits (fail open). Busy (no free connection, a lock wait, no
/// answer in time, while a probe connects) — which a flood can cause — or any other error: 503
/// for every managed key (fail closed), so overloading the store never turns limits off.
async fn unavailable(
    state: &AppState,
    store: &Store,
    sha: &str,
    request_id: uuid::Uuid,
    cause: &StoreError,
) -> Result<Caller, ApiError> {
    // A reset or refused connection, a timeout, a server error: one connection's trouble or the
    // whole store's? The probe says (a server that is up answers it within milliseconds).
    let reachable = match cause {
        StoreError::Unreachable(_)
        | StoreError::Connect(_)
        | StoreError::Busy(_)
        | StoreError::Query(_) => state.key_store.reachable(store).await,
        _ => true,
    };
    tracing::warn!(cause = %cause, fail_open = !reachable, "no verdict from the key store");
    if reachable {
        count("store_busy");
        return Err(ApiError::KeyStoreUnavailable);
    }
    fail_open(state, store, sha, request_id)
}

/// The store cannot be reached: a key this replica admitted recently (and not expired since)
/// is served without limits, its usage still tallied; any other key gets 503.
fn fail_open(
    state: &AppState,
    store: &Store,
    sha: &str,
    request_id: uuid::Uuid,
) -> Result<Caller, ApiError> {
    count("store_unavailable");
    let key_id = state
        .recent_keys
        .recall(sha)
        .ok_or(ApiError::KeyStoreUnavailable)?;
    Ok(Caller::metered(state, store, key_id, request_id, false))
}

/// A lease outlives the longest request this api admits (its body's time limit, its timeout
/// cap, the wait for a worker and the relay's grace), so only a dead replica's leases ever
/// expire.
fn lease_length(state: &AppState) -> Duration {
    let config = &state.config;
    config.connections.body_read_timeout
        + Duration::from_secs_f64(config.limits.max_timeout_secs)
        + config.accept_timeout
        + config.relay.deadline_grace
        + Duration::from_secs(10)
}

fn verdict_name(admission: &Admission) -> &'static str {
    match admission {
        Admission::Admitted { .. } => "admitted",
        Admission::Unknown => "unknown",
        Admission::Revoked { .. } => "revoked",
        Admission::Expired { .. } => "expired",
        Admission::OverRpm { .. } => "over_rpm",
        Admission::OverStreams { .. } => "over_streams",
    }
}

fn count(verdict: &'static str) {
    metrics::counter!("sn1_api_key_admissions_total", "verdict" => verdict).increment(1);
}
