//! A worker's job intake: its own pull requests on the shared durable consumer, one job at a
//! time, answered on its own inbox.
//!
//! Why not the client library's pull stream: that stream re-sends its pull request after a
//! reconnect only when the consumer-wide count of waiting pulls is zero, so with several workers
//! on one consumer, one worker's pending pull hid another's loss and intake stalled until the
//! pull expired (~35 s seen). Here each worker owns its pull state: a pull is issued when the
//! worker asks for a job, lives at most [`PULL_EXPIRES`], and is re-issued at once after every
//! reconnect or when the server says it ended — so a lost pull costs at most a couple of seconds.
//!
//! Each pull is answered on its own subject (`<inbox>.<n>`): a job that arrives for a pull this
//! worker already gave up on (it was re-issued after a reconnect while the server still held the
//! old one) is handed back at once rather than held while the worker is busy.

use crate::bus::BusError;
use crate::bus::unavailable;
use async_nats::jetstream;
use async_nats::{StatusCode, Subscriber};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long the server keeps one pull request. Short, so a pull lost with a connection or a
/// server restart is replaced quickly even if no reconnect is noticed, and so a draining worker
/// waits at most this long for the last pull to end.
pub(crate) const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// Past its expiry, a pull the server never ended is taken as lost.
const PULL_SLACK: Duration = Duration::from_millis(500);

/// The pull requests and inbox of one worker.
pub(crate) struct Intake {
    js: jetstream::Context,
    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
    next_subject: String,
    inbox: String,
    sub: Subscriber,
    /// Number of the current pull (its reply subject is `<inbox>.<n>`).
    current: u64,
    /// Bumped on every (re)connect of the client.
    connects: watch::Receiver<u64>,
    /// When the outstanding pull expires, if one is outstanding.
    pending: Option<Instant>,
}

/// What arrived on the inbox.
pub(crate) enum Delivery {
    /// A job message.
    Job(Box<jetstream::Message>),
    /// Nothing arrives: the connection is gone and the subscription ended.
    Closed,
}

impl Intake {
    pub(crate) async fn open(
        client: &async_nats::Client,
        js: jetstream::Context,
        stream: &str,
        consumer: &str,
        connects: watch::Receiver<u64>,
    ) -> Result<Intake, BusError> {
        let inbox = client.new_inbox();
        let sub = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(unavailable)?;
        let mut connects = connects;
        // The connection made so far is the one the first pull goes out on.
        connects.borrow_and_update();
        Ok(Intake {
            js,
            next_subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            sub,
            current: 0,
            connects,
            pending: None,
        })
    }

    /// The next job: issues a pull when none is outstanding and waits for a job, re-pulling
    /// whenever the pull ends without one (expired, lost with a reconnect).
    pub(crate) async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if self.pending.is_none() {
                self.pull().await?;
            }
            let lost_at = self.pending.map_or_else(Instant::now, |e| e + PULL_SLACK);
            tokio::select! {
                msg = self.sub.next() => {
                    let Some(msg) = msg else { return Ok(Delivery::Closed) };
                    if !self.is_current(&msg) {
                        self.hand_back(msg).await;
                        continue;
                    }
                    match msg.status {
                        None | Some(StatusCode::OK) => {
                            // Batches are of one: this job used the pull.
                            self.pending = None;
                            let context = self.js.clone();
                            return Ok(Delivery::Job(Box::new(jetstream::Message { message: msg, context })));
                        }
                        Some(StatusCode::IDLE_HEARTBEAT) => {}
                        // Expired (408), ended by the server (409: e.g. the consumer changed),
                        // or anything else: this pull is over.
                        Some(status) => {
                            tracing::debug!(%status, "pull ended without a job");
                            self.pending = None;
                        }
                    }
                }
                _ = tokio::time::sleep_until(lost_at) => {
                    metrics::counter!("sn1_worker_pulls_lost_total").increment(1);
                    self.pending = None;
                }
                changed = self.connects.changed() => {
                    if changed.is_err() {
                        return Ok(Delivery::Closed);
                    }
                    // A new connection: whatever the old one had outstanding may be gone.
                    self.pending = None;
                }
            }
        }
    }

    /// Stops taking jobs: waits for the outstanding pull to end (at most its expiry) and hands
    /// back at once, for another worker, every job that still arrives.
    pub(crate) async fn release(mut self) {
        let until = self.pending.map_or_else(Instant::now, |e| e + PULL_SLACK);
        loop {
            let msg = tokio::select! {
                msg = self.sub.next() => msg,
                _ = tokio::time::sleep_until(until) => break,
            };
            let Some(msg) = msg else { break };
            let current = self.is_current(&msg);
            match msg.status {
                Some(StatusCode::IDLE_HEARTBEAT) => {}
                // The current pull ended.
                Some(_) if current => break,
                _ => self.hand_back(msg).await,
            }
        }
        let _ = self.sub.unsubscribe().await;
    }

    /// Whether `msg` answers the current pull.
    fn is_current(&self, msg: &async_nats::Message) -> bool {
        msg.subject.as_str().rsplit('.').next() == Some(self.current.to_string().as_str())
    }

    /// Gives a job this worker will not run back to the queue at once (statuses are dropped).
    async fn hand_back(&self, msg: async_nats::Message) {
        if !matches!(msg.status, None | Some(StatusCode::OK)) {
            return;
        }
        metrics::counter!("sn1_worker_jobs_handed_back_total").increment(1);
        let job = jetstream::Message {
            message: msg,
            context: self.js.clone(),
        };
        if let Err(e) = job.ack_with(jetstream::AckKind::Nak(None)).await {
            tracing::warn!(error = %e, "could not hand a job back to the queue");
        }
    }

    /// Asks the server for one job on this worker's inbox.
    async fn pull(&mut self) -> Result<(), BusError> {
        let request = serde_json::json!({
            "batch": 1,
            "expires": PULL_EXPIRES.as_nanos() as u64,
        });
        self.current += 1;
        self.js
            .client()
            .publish_with_reply(
                self.next_subject.clone(),
                format!("{}.{}", self.inbox, self.current),
                request.to_string().into(),
            )
            .await
            .map_err(unavailable)?;
        self.pending = Some(Instant::now() + PULL_EXPIRES);
        Ok(())
    }
}
