//! The api's HTTP server: our own accept loop over hyper's HTTP/1.1 connections, so that idle
//! and half-sent connections cannot pile up. Every connection has TCP_NODELAY on and:
//!
//! * a header-read timeout: a request head must be complete within `header_read_timeout` of
//!   the connection opening, or of the first byte of its next request;
//! * an idle timeout: a keep-alive connection with no request for `idle_timeout` is closed;
//! * a cap: at most `max_connections` are served at once. Connections beyond it go to
//!   [`overflow`]: `/livez` and `/readyz` are still answered there, every other
//!   request gets 503 with `Retry-After` and `Connection: close`; beyond
//!   [`overflow::OVERFLOW_CONNECTIONS`] more, a new connection is closed at once (counted).
//!
//! Why not hyper's `header_read_timeout` for the served connections: in hyper 1.x its timer
//! starts whenever the connection waits for a head — on accept and again as soon as a
//! keep-alive response ends (`proto/h1/conn.rs`, `State::idle` re-arms the read) — so it is
//! also the idle limit, and one value cannot be both a short header limit (slow-header
//! clients) and a keep-alive idle limit longer than the load balancer's. [`activity`] keeps the
//! two apart.
//!
//! Entry point: [`run`]. Metrics: `sn1_api_connections_open` (gauge),
//! `sn1_api_connections_refused_total{reason="at_capacity"|"overflow_full"}`,
//! `sn1_api_connections_timed_out_total{phase="header"|"idle"}`.

pub mod activity;
pub mod connection;
pub mod open_files;
pub mod overflow;

use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Gauge: client connections being served (within the cap).
pub const OPEN: &str = "sn1_api_connections_open";
/// Counter: connections refused, by `reason`.
pub const REFUSED: &str = "sn1_api_connections_refused_total";
/// Counter: connections closed by a timeout, by `phase`.
pub const TIMED_OUT: &str = "sn1_api_connections_timed_out_total";

/// Limits on client connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head must be complete this long after the connection opened or after the
    /// first byte of the next request.
    pub header_read_timeout: Duration,
    /// A request body must have arrived this long after its head was read (then 408): a body
    /// that trickles must not hold a slot, or a managed key's stream lease, for ever.
    pub body_read_timeout: Duration,
    /// A keep-alive connection without a request for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused (see the module docs).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            // Generous for any real client on a slow link, short for a slow-header attack.
            header_read_timeout: Duration::from_secs(10),
            // A 1 MiB body (the default cap) at ~35 KB/s.
            body_read_timeout: Duration::from_secs(30),
            // Longer than the 60 s idle timeout of common load balancers (AWS ALB, nginx
            // upstream keep-alive), so the balancer closes an idle pooled connection first: an
            // api closing first races the balancer's next request on it (a 502 for a client).
            idle_timeout: Duration::from_secs(75),
            // Ten times MAX_IN_FLIGHT: room for streams plus pooled idle connections of load
            // balancers; far below a container's usual 1,048,576 open files.
            max_connections: 10_000,
        }
    }
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`, 4096 on
/// current Linux): a burst of new clients waits there instead of having its handshakes dropped
/// (tokio's `bind` asks for 1024).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with the [`LISTEN_BACKLOG`].
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std and tokio do: a restarted api may bind while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts on `listener` and serves `app` until `shutdown` fires; then stops accepting, lets
/// open responses finish and returns when every connection is closed. `cap` is the number of
/// connections served at once (see [`open_files::connection_cap`]).
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    cap: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(cap));
    let overflow_slots = Arc::new(Semaphore::new(overflow::OVERFLOW_CONNECTIONS));
    let tasks = TaskTracker::new();
    let open = metrics::gauge!(OPEN);
    let overflow_full = metrics::counter!(REFUSED, "reason" => "overflow_full");
    loop {
        let tcp = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let accepted_at = tokio::time::Instant::now();
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            let (app, shutdown, open) = (app.clone(), shutdown.clone(), open.clone());
            tasks.spawn(async move {
                open.increment(1.0);
                let ended = serve_tcp(tcp, accepted_at, app, limits, shutdown).await;
                open.decrement(1.0);
                if let connection::Ended::TimedOut(timeout) = ended {
                    metrics::counter!(TIMED_OUT, "phase" => timeout.label()).increment(1);
                }
                drop(slot);
            });
        } else if let Ok(slot) = overflow_slots.clone().try_acquire_owned() {
            let app = app.clone();
            tasks.spawn(async move {
                overflow::serve(tcp, app).await;
                drop(slot);
            });
        } else {
            overflow_full.increment(1);
            drop(tcp);
        }
    }
    drop(listener);
    tasks.close();
    tracing::info!(
        open = tasks.len(),
        "api stopped accepting; open connections finish their responses"
    );
    tasks.wait().await;
    Ok(())
}

/// Serves one client connection. Until its first byte it is only a socket waiting to be
/// readable — no HTTP state, no buffers — so a flood of silent connections costs little.
async fn serve_tcp(
    tcp: TcpStream,
    accepted_at: tokio::time::Instant,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> connection::Ended {
    // Chunks are small and latency-critical: no Nagle delay on client connections.
    let _ = tcp.set_nodelay(true);
    // `peek`, not `readable`: a freshly accepted socket reports readable before any byte.
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tcp.peek(&mut first) => {
            if !matches!(peeked, Ok(n) if n > 0) {
                return connection::Ended::Closed;
            }
        }
        () = tokio::time::sleep_until(accepted_at + limits.header_read_timeout) => {
            return connection::Ended::TimedOut(activity::Timeout::Header);
        }
        () = shutdown.cancelled() => return connection::Ended::Closed,
    }
    // Boxed: the HTTP state is allocated only now, not in every waiting task.
    Box::pin(connection::serve(tcp, accepted_at, app, limits, shutdown)).await
}

/// After a failed accept: per-connection errors are skipped; running out of file descriptors
/// (or another resource) pauses accepting briefly instead of spinning on the same error.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing 50 ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
