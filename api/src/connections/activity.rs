//! What one client connection is doing, for its two timeouts. A connection is, at any time:
//!
//! * reading a request head: since it was accepted, or since the first byte of its next request
//!   arrived — closed when the head is not complete after `header_read_timeout`;
//! * busy: a request was handed to the app and its response is not fully sent — no timeout (a
//!   stream may run until its own deadline);
//! * idle: between a response and the next request's first byte — closed after `idle_timeout`.
//!
//! [`Watched`] reports bytes read, [`Activity::request_started`] the hand-over to the app, and
//! the [`Tracked`] response body the end of the response.

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Which timeout closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// The request head was not complete in time.
    Header,
    /// No request came in time after the last response.
    Idle,
}

impl Timeout {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Idle => "idle",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head { since: Instant },
    Busy,
    Idle { since: Instant },
}

/// The phase of one connection, shared by its IO, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    /// A connection accepted at `accepted_at`: it owes a request head.
    pub fn new(accepted_at: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Head { since: accepted_at }),
            changed: Notify::new(),
        })
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // The phase is plain data: a panic while it was held leaves it valid.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase() = phase;
        self.changed.notify_one();
    }

    /// Bytes came in: if the connection was idle, a request head has started.
    fn bytes_arrived(&self) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// A request head is complete and goes to the app; the connection is busy until the
    /// returned guard (carried by the response body) is dropped.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.set(Phase::Busy);
        RequestGuard(self.clone())
    }

    /// When the connection must be closed, and why; `None` while busy.
    pub fn deadline(
        &self,
        header_read_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<(Instant, Timeout)> {
        match *self.phase() {
            Phase::Head { since } => Some((since + header_read_timeout, Timeout::Header)),
            Phase::Busy => None,
            Phase::Idle { since } => Some((since + idle_timeout, Timeout::Idle)),
        }
    }

    /// Completes when the phase has changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// Held while a request is being answered; dropping it makes the connection idle.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.set(Phase::Idle {
            since: Instant::now(),
        });
    }
}

/// A response body that keeps the connection busy until it is sent (or dropped).
pub struct Tracked {
    body: Body,
    _guard: RequestGuard,
}

impl Tracked {
    /// `body`, holding `guard` until it is dropped.
    pub fn new(body: Body, guard: RequestGuard) -> Tracked {
        Tracked {
            body,
            _guard: guard,
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client connection's IO, reporting bytes read to its [`Activity`].
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// `io`, reporting to `activity`.
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
