//! One client connection within the cap: HTTP/1.1 with keep-alive, closed by its header-read or
//! idle timeout ([`super::activity`]), drained on shutdown (open responses finish, then close).

use super::ConnectionLimits;
use super::activity::{Activity, Timeout, Tracked, Watched};
use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The client or the protocol closed it (or shutdown drained it).
    Closed,
    /// A timeout closed it.
    TimedOut(Timeout),
}

/// Serves `app` on `io`, accepted at `accepted_at`, until the client leaves, a timeout closes
/// it, or `shutdown` drains it.
pub async fn serve<I>(
    io: I,
    accepted_at: tokio::time::Instant,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(accepted_at);
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = watched.request_started();
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Tracked::new(body, guard)))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(Watched::new(io, activity.clone())), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(limits.header_read_timeout, limits.idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                return Ended::Closed;
            }
            () = activity.changed() => {}
            () = sleep_until(deadline.map(|(at, _)| at)), if deadline.is_some() => {
                // Re-read: the phase may have moved on since the sleep was armed.
                if let Some((at, timeout)) =
                    activity.deadline(limits.header_read_timeout, limits.idle_timeout)
                    && at <= tokio::time::Instant::now()
                {
                    // Nothing is being answered: dropping the connection closes the socket.
                    return Ended::TimedOut(timeout);
                }
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        }
    }

    fn app() -> Router {
        Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(300)).await;
                "done"
            }),
        )
    }

    /// Drives one connection over an in-memory pipe; returns the client end and the server task.
    fn start() -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<(Ended, tokio::time::Instant)>,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move {
            let ended = serve(
                server,
                tokio::time::Instant::now(),
                app(),
                limits(),
                CancellationToken::new(),
            )
            .await;
            (ended, tokio::time::Instant::now())
        });
        (client, task)
    }

    /// Reads one response with a `content-length` body.
    async fn read_response(client: &mut tokio::io::DuplexStream) -> String {
        let mut buf = Vec::new();
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return text;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-response: {text}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
        let t0 = tokio::time::Instant::now();
        let (_client, task) = start();
        let (ended, at) = task.await.unwrap();
        assert_eq!(ended, Ended::TimedOut(Timeout::Header));
        assert_eq!(at - t0, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_is_closed_after_the_header_read_timeout_however_it_trickles() {
        let t0 = tokio::time::Instant::now();
        let (mut client, task) = start();
        client.write_all(b"GET /slow HTTP/1.1\r\n").await.unwrap();
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if client.write_all(b"x-trickle: 1\r\n").await.is_err() {
                break;
            }
        }
        let (ended, at) = task.await.unwrap();
        assert_eq!(ended, Ended::TimedOut(Timeout::Header));
        assert_eq!(at - t0, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_waits_idle_timeout_then_the_next_head_gets_the_header_timeout() {
        let (mut client, task) = start();
        client
            .write_all(b"GET /missing HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
        let answered = tokio::time::Instant::now();
        // Idle past the header timeout: still open (idle_timeout is 60 s).
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(!task.is_finished());
        // The next request's first byte starts its header timeout.
        client.write_all(b"GET").await.unwrap();
        let (ended, at) = task.await.unwrap();
        assert_eq!(ended, Ended::TimedOut(Timeout::Header));
        assert_eq!(at - answered, Duration::from_secs(59 + 10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let (mut client, task) = start();
        client
            .write_all(b"GET /missing HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut client).await;
        let answered = tokio::time::Instant::now();
        let (ended, at) = task.await.unwrap();
        assert_eq!(ended, Ended::TimedOut(Timeout::Idle));
        assert_eq!(at - answered, Duration::from_secs(60));
        assert_eq!(client.read(&mut [0u8; 16]).await.unwrap(), 0, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_in_progress_has_no_timeout() {
        let (mut client, task) = start();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        // The handler takes 300 s, far past both timeouts; the connection waits for it.
        let response = read_response(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        let (ended, _) = task.await.unwrap();
        assert_eq!(ended, Ended::TimedOut(Timeout::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_the_open_response_finish() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            server,
            tokio::time::Instant::now(),
            app(),
            limits(),
            shutdown.clone(),
        ));
        client
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        let response = read_response(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        assert_eq!(task.await.unwrap(), Ended::Closed);
    }
}
