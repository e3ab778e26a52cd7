//! `POST /chat` and `POST /echo` (with and without the trailing slash): auth, validation,
//! publish, then relay as NDJSON, SSE or one JSON body.

use crate::AppState;
use crate::error::ApiError;
use crate::events::{ChatCompletion, Framing, StreamChunk, StreamError};
use crate::relay::{Relay, Relayed};
use crate::request::{self, ChatRequest};
use crate::submit::{self, Submission, Submitted};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sn1_contracts::job::Endpoint;

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
    let admitted = submit::admit(&state, request).await?;
    let parsed = request::parse(&admitted.body, &state.config.limits, admitted.received_at)
        .map_err(|e| ApiError::BadRequest(e.message))?;
    let framing = if accepts_sse(&admitted.headers) {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    let submission = Submission {
        endpoint,
        label: endpoint_name(endpoint),
        params: parsed.params,
        deadline: parsed.deadline,
        stream: parsed.stream,
    };
    let Submitted { relay, request_id } = submit::submit(&state, admitted, submission).await?;
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
