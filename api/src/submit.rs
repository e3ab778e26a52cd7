//! The one path every chat request takes, whatever its wire format (`/chat`, `/echo`,
//! `/v1/chat/completions`): [`admit`] (auth, then the body under its cap) and, once the route
//! has parsed the body, [`submit`] (a slot in flight, the job published, a worker's acceptance
//! awaited) which hands back the [`Relay`] of the job's events.

use crate::AppState;
use crate::dispatch::Dispatch;
use crate::error::ApiError;
use crate::keys::{self, Caller};
use crate::relay::Relay;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use sn1_contracts::event::{ErrorKind, Numbered, WorkerEvent};
use sn1_contracts::job::{ChatJob, ChatParams, Endpoint};
use std::time::Instant;

/// An authenticated request with its body read.
pub struct Admitted {
    /// The request headers.
    pub headers: HeaderMap,
    /// The request's id (UUID v7; the job's, `x-request-id`).
    pub request_id: uuid::Uuid,
    /// Who called (its key id, never the key, and a managed key's lease).
    pub caller: Caller,
    /// The body, at most `max_body_bytes`.
    pub body: Bytes,
    /// When the request arrived (timings).
    pub started: Instant,
    /// When the body was read: the deadline counts from then.
    pub received_at: DateTime<Utc>,
}

/// Checks the key (401 before anything else; 429 over a managed key's limits), then reads the
/// body under the cap (413) and its time limit (408).
pub async fn admit(state: &AppState, request: Request) -> Result<Admitted, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = uuid::Uuid::now_v7();
    let caller = keys::authenticate(state, &parts.headers, request_id).await?;
    let within = state.config.connections.body_read_timeout;
    let read = axum::body::to_bytes(body, state.config.max_body_bytes);
    let body: Bytes = tokio::time::timeout(within, read)
        .await
        .map_err(|_| ApiError::BodyTimeout(within))?
        .map_err(|_| ApiError::PayloadTooLarge(state.config.max_body_bytes))?;
    Ok(Admitted {
        headers: parts.headers,
        request_id,
        caller,
        body,
        started,
        received_at: Utc::now(),
    })
}

/// What to queue: the validated parameters and their deadline.
pub struct Submission {
    /// Which endpoint's job this is (what the worker does).
    pub endpoint: Endpoint,
    /// The `endpoint` label of `sn1_api_requests_total`.
    pub label: &'static str,
    /// The validated request.
    pub params: ChatParams,
    /// When the answer must be complete.
    pub deadline: DateTime<Utc>,
    /// Whether the answer is streamed (usage of a managed key).
    pub stream: bool,
}

impl Submission {
    /// Characters of the prompt (Unicode scalar values): what its token estimate counts.
    pub fn prompt_chars(&self) -> usize {
        self.params.messages.iter().map(|m| m.chars().count()).sum()
    }
}

/// A job a worker has taken: its events, and its id (`x-request-id`).
pub struct Submitted {
    /// The job's events, relayed.
    pub relay: Relay,
    /// The job's id.
    pub request_id: String,
}

/// Takes a slot in flight (503 when full), publishes the job (503 when the queue is down or
/// full) and waits for a worker to take it (504 when none does in time, 422 when no miner is
/// left to ask).
pub async fn submit(
    state: &AppState,
    admitted: Admitted,
    submission: Submission,
) -> Result<Submitted, ApiError> {
    let Admitted {
        request_id,
        mut caller,
        started,
        received_at: now,
        ..
    } = admitted;
    let endpoint = submission.endpoint;
    let permit = state
        .inflight
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)?;
    let inbox = state
        .inbox()
        .await
        .map_err(|e| ApiError::QueueUnavailable(e.to_string()))?;
    caller.asks(submission.stream, submission.prompt_chars());
    let job = ChatJob {
        request_id: request_id.to_string(),
        events_to: inbox.address().to_string(),
        endpoint,
        api_key_id: caller.key_id.clone(),
        created_at: now,
        accept_by: now + state.config.accept_timeout,
        deadline: submission.deadline,
        attempt: 0,
        params: submission.params,
    };
    let span = tracing::info_span!("request", request_id = %job.request_id, endpoint = ?endpoint);
    let _entered = span.enter();
    let mut events = inbox.subscribe(&job.request_id);
    let mut headers = sn1_contracts::bus::Headers::new();
    sn1_telemetry::trace::inject(&span, &mut headers);
    drop(_entered);
    let dispatch = Dispatch {
        bus: state.bus.clone(),
        job,
        headers,
    };
    dispatch.publish().await.map_err(|e| match e {
        sn1_contracts::bus::BusError::Full(m) => ApiError::QueueUnavailable(m),
        other => ApiError::QueueUnavailable(other.to_string()),
    })?;
    let job = &dispatch.job;

    tracing::debug!(
        published_us = started.elapsed().as_micros() as u64,
        "job queued"
    );
    // Hold the response until a worker takes the job, so "nobody took it" and "nobody to ask"
    // are real status codes, not a stream that ends at once.
    let first = tokio::time::timeout(state.config.accept_timeout, events.next()).await;
    let (worker, seq) = match first {
        Ok(Some(Numbered {
            seq,
            event: WorkerEvent::Accepted { worker },
        })) => (worker, seq),
        Ok(Some(Numbered {
            event:
                WorkerEvent::Error {
                    kind: ErrorKind::NoCandidates,
                    message,
                    ..
                },
            ..
        })) => {
            return Err(ApiError::Unprocessable(message));
        }
        Ok(Some(Numbered {
            event: WorkerEvent::Error { message, .. },
            ..
        })) => {
            return Err(ApiError::QueueUnavailable(message));
        }
        // Not the worker's first event: it went missing, and nothing can be streamed safely.
        Ok(Some(_)) => {
            return Err(ApiError::QueueUnavailable(
                "the worker's first events went missing".into(),
            ));
        }
        Ok(None) => {
            return Err(ApiError::QueueUnavailable(
                "event subscription closed".into(),
            ));
        }
        Err(_) => {
            let _ = state.bus.publish_cancel(&job.request_id).await;
            return Err(ApiError::NoWorker);
        }
    };
    tracing::debug!(
        request_id = %job.request_id,
        worker = %worker,
        accepted_us = started.elapsed().as_micros() as u64,
        "job accepted"
    );
    let request_id = job.request_id.clone();
    let relay = Relay::new(
        events,
        dispatch,
        (worker, seq),
        started,
        state.config.relay,
        (permit, caller),
    );
    metrics::counter!("sn1_api_requests_total", "endpoint" => submission.label).increment(1);
    Ok(Submitted { relay, request_id })
}
