//! `POST /chat` and `POST /echo` (with and without the trailing slash): auth, validation,
//! publish, then relay as NDJSON, SSE or one JSON body.

use crate::AppState;
use crate::dispatch::Dispatch;
use crate::error::ApiError;
use crate::events::{ChatCompletion, Framing, StreamChunk, StreamError};
use crate::relay::{Relay, Relayed};
use crate::request::{self, ChatRequest};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sn1_contracts::event::{ErrorKind, Numbered, WorkerEvent};
use sn1_contracts::job::{ChatJob, Endpoint};
use std::time::Instant;

/// Ask k miners; the answer streams back as `StreamChunk` events.
#[utoipa::path(post, path = "/chat", request_body = ChatRequest,
    params(("api_key" = String, Header, description = "API key (also `api-key` or `Authorization: Bearer`)")),
    responses(
        (status = 200, description = "NDJSON (or SSE with `Accept: text/event-stream`) of StreamChunk, ending in a finished StreamChunk or a StreamError; with `stream: false`, one ChatCompletion", body = StreamChunk, content_type = "application/x-ndjson"),
        (status = 400, description = "Malformed JSON or invalid field (named in the message)"),
        (status = 401, description = "Missing or wrong API key"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not application/json"),
        (status = 422, description = "No miner left to ask"),
        (status = 503, description = "Overloaded or queue unavailable (Retry-After)"),
        (status = 504, description = "No worker took the request in time"),
    ))]
pub async fn chat(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    handle(state, request, Endpoint::Chat).await
}

/// The words of the last message come back as `StreamChunk`s through the queue and a worker
/// (no miners): proves the pipe end to end.
#[utoipa::path(post, path = "/echo", request_body = ChatRequest,
    params(("api_key" = String, Header, description = "API key")),
    responses((status = 200, description = "NDJSON of StreamChunk (selected_uid -1)", body = StreamChunk, content_type = "application/x-ndjson")))]
pub async fn echo(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    handle(state, request, Endpoint::Echo).await
}

async fn handle(
    state: AppState,
    request: Request,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let api_key_id = state
        .auth
        .check(&parts.headers)
        .ok_or(ApiError::Unauthorized)?;
    let body: Bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(state.config.max_body_bytes))?;
    let now = Utc::now();
    let parsed = request::parse(&body, &state.config.limits, now)
        .map_err(|e| ApiError::BadRequest(e.message))?;
    let framing = if accepts_sse(&parts.headers) {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    let permit = state
        .inflight
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)?;

    let inbox = state
        .inbox()
        .await
        .map_err(|e| ApiError::QueueUnavailable(e.to_string()))?;
    let job = ChatJob {
        request_id: uuid::Uuid::now_v7().to_string(),
        events_to: inbox.address().to_string(),
        endpoint,
        api_key_id,
        created_at: now,
        accept_by: now + state.config.accept_timeout,
        deadline: parsed.deadline,
        attempt: 0,
        params: parsed.params,
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
            event:
                WorkerEvent::Error {
                    kind: ErrorKind::Unavailable,
                    message,
                    ..
                },
            ..
        })) => {
            return Err(ApiError::QueueUnavailable(message));
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
        permit,
    );
    metrics::counter!("sn1_api_requests_total", "endpoint" => endpoint_name(endpoint)).increment(1);
    if parsed.stream {
        Ok(stream_response(relay, framing, &request_id))
    } else {
        collect_response(relay).await
    }
}

fn endpoint_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Echo => "echo",
    }
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

fn stream_response(relay: Relay, framing: Framing, request_id: &str) -> Response {
    let stream = futures::stream::unfold(relay, move |mut relay| async move {
        let line = match relay.next().await? {
            Relayed::Chunk(c) | Relayed::Finished(c) => framing.event(&c),
            Relayed::Failed { error, .. } => framing.event(&error),
            Relayed::Idle => Bytes::from_static(framing.keep_alive().as_bytes()),
        };
        Some((Ok::<_, std::convert::Infallible>(line), relay))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    response
}

async fn collect_response(mut relay: Relay) -> Result<Response, ApiError> {
    let mut failure: Option<(StreamError, bool)> = None;
    while let Some(item) = relay.next().await {
        match item {
            Relayed::Chunk(_) | Relayed::Idle => {}
            Relayed::Finished(_) => break,
            Relayed::Failed { error, timed_out } => {
                failure = Some((error, timed_out));
                break;
            }
        }
    }
    let (chunks, timings, uid) = relay.answer();
    // A partial answer is still returned (as the seed did); no answer at all is an error.
    match failure {
        Some((e, true)) if chunks.is_empty() => return Err(ApiError::UpstreamTimeout(e.error)),
        Some((e, false)) if chunks.is_empty() => return Err(ApiError::NoAnswer(e.error)),
        _ => {}
    }
    let body = ChatCompletion {
        streamed_chunks: chunks.to_vec(),
        streamed_chunks_timings: timings.to_vec(),
        uid,
        completion: chunks.concat(),
        timing: relay.elapsed(),
    };
    Ok(axum::Json(body).into_response())
}
