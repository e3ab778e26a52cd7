//! The server span of every API request (OpenTelemetry HTTP semantic conventions): named
//! `METHOD route`, with `http.request.method`, `http.route`, `url.path`,
//! `http.response.status_code`, `sn1.api_key_id` (the caller's key id, never the key), and an
//! error status for 5xx. The handler runs inside it, so the
//! request's own spans (publish, and through the job's headers the worker's) descend from it.
//! Probes (`/livez`, `/readyz`, `/metrics`) get no span: they would bury the traces.
//!
//! A client's own `traceparent` is not followed: the public edge starts the trace (a caller
//! could otherwise choose trace ids, or switch sampling off).

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::pin::Pin;
use std::task::{Context, Poll};
use tracing::Instrument;

/// The middleware (`axum::middleware::from_fn(http_span::trace)`).
pub async fn trace(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if matches!(path, "/livez" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let span = tracing::info_span!(
        "http request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        sn1.api_key_id = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    // The span ends with the body (a streamed answer), not with the response head.
    response.map(|body| Body::new(SpanBody { body, _span: span }))
}

/// A response body that holds its request's span open until the body is done or dropped.
struct SpanBody {
    body: Body,
    _span: tracing::Span,
}

impl http_body::Body for SpanBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
