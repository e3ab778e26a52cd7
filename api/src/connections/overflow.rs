//! Connections accepted beyond `MAX_CONNECTIONS`. Each may send one request, without
//! keep-alive: `GET /livez` and `/readyz` are answered as usual (so probes still
//! see the truth while the api is full), anything else gets 503 with
//! `Retry-After` and `Connection: close`. A connection that sends no complete request head
//! within [`HEADER_READ_TIMEOUT`] is closed without an answer.

use crate::error::ApiError;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Room for connections beyond the cap that get answered (probes, or a 503); beyond these, a
/// new connection is closed at once. Probes and scrapes come a few per second, and each of
/// these lives for at most [`HEADER_READ_TIMEOUT`] plus one short answer.
pub const OVERFLOW_CONNECTIONS: usize = 64;

/// A connection beyond the cap must send its request head this fast (probes send theirs at
/// once); it also bounds how long a silent one holds an overflow slot.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Bound on one overflow connection's whole life (head, answer, close).
const LIFETIME: Duration = Duration::from_secs(10);

/// Answers one request on `tcp` (a probe, or the refusal), then closes it.
pub async fn serve(tcp: TcpStream, app: Router) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let app = app.clone();
        async move {
            let probe = request.method() == Method::GET
                && matches!(request.uri().path(), "/livez" | "/readyz");
            let mut response = if probe {
                app.oneshot(request.map(axum::body::Body::new)).await?
            } else {
                metrics::counter!(super::REFUSED, "reason" => "at_capacity").increment(1);
                ApiError::TooManyConnections.into_response()
            };
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service);
    match tokio::time::timeout(LIFETIME, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_timeout() => {
            metrics::counter!(super::TIMED_OUT, "phase" => "header").increment(1);
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "overflow connection ended with an error"),
        Err(_) => tracing::debug!("overflow connection outlived its bound; closed"),
    }
}
