//! A consumer's intake from a shared durable consumer (a worker's jobs, one at a time; an audit
//! writer's records, a batch at a time): pull requests of its own, answered on its own inbox.
//!
//! Why not the client library's pull stream: that stream re-sends its pull request after a
//! reconnect only when the consumer-wide count of waiting pulls is zero, so with several workers
//! on one consumer, one worker's pending pull hid another's loss and intake stalled until the
//! pull expired (~35 s seen). Here each worker owns its pull state: a pull is issued when the
//! consumer asks for a message, lives at most [`PULL_EXPIRES`], and is re-issued at once after every
//! reconnect or when the server says it ended — so a lost pull costs at most a couple of seconds.
//!
//! A pull this consumer gives up on (re-issued after a reconnect while the server may still hold
//! the old one) keeps its own subscription (`<inbox>.<n>`) until it expires, and a job that still
//! arrives there is handed back at once rather than held while the worker is busy; a pull the
//! server ended hands its subscription on to the next pull.

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
    client: async_nats::Client,
    js: jetstream::Context,
    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
    next_subject: String,
    inbox: String,
    /// Messages asked for per pull.
    batch: usize,
    /// Messages received for the outstanding pull.
    received: usize,
    /// Number of the latest pull (its reply subject is `<inbox>.<n>`).
    pulls: u64,
    /// The outstanding pull: its subscription, reply subject and when it expires.
    pending: Option<(Subscriber, String, Instant)>,
    /// A subscription whose pull the server ended (nothing more can arrive on it), ready for
    /// the next pull: one SUB per pull would cost a round of protocol per job.
    spare: Option<(Subscriber, String)>,
    /// Bumped on every (re)connect of the client.
    connects: watch::Receiver<u64>,
}

/// What arrived on the inbox.
pub(crate) enum Delivery {
    /// A message of the queue (a job, an audit record).
    Message(Box<jetstream::Message>),
    /// Nothing arrives: the connection is gone for good.
    Closed,
}

/// Why the outstanding pull is given up.
enum Ended {
    /// The server ended it (or it delivered all it was asked for): nothing more can arrive.
    ByServer,
    /// We stopped waiting (reconnect, no answer in time): the server may still answer it.
    ByUs,
}

impl Intake {
    pub(crate) async fn open(
        client: &async_nats::Client,
        js: jetstream::Context,
        stream: &str,
        consumer: &str,
        batch: usize,
        connects: watch::Receiver<u64>,
    ) -> Result<Intake, BusError> {
        let mut connects = connects;
        // The connection made so far is the one the first pull goes out on.
        connects.borrow_and_update();
        Ok(Intake {
            client: client.clone(),
            js,
            next_subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox: client.new_inbox(),
            batch: batch.max(1),
            received: 0,
            pulls: 0,
            pending: None,
            spare: None,
            connects,
        })
    }

    /// The next message: issues a pull when none is outstanding and waits, re-pulling whenever
    /// the pull ends (used up, expired, lost with a reconnect).
    pub(crate) async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if self.pending.is_none() {
                self.pull().await?;
            }
            let Some((sub, _, expires)) = self.pending.as_mut() else {
                continue;
            };
            let lost_at = *expires + PULL_SLACK;
            tokio::select! {
                msg = sub.next() => {
                    let Some(msg) = msg else {
                        self.pending = None;
                        return Ok(Delivery::Closed);
                    };
                    match msg.status {
                        None | Some(StatusCode::OK) => {
                            self.received += 1;
                            if self.received == self.batch {
                                // The pull is used up.
                                self.end(Ended::ByServer);
                            }
                            let context = self.js.clone();
                            return Ok(Delivery::Message(Box::new(jetstream::Message { message: msg, context })));
                        }
                        Some(StatusCode::IDLE_HEARTBEAT) => {}
                        // Expired (408), ended by the server (409: e.g. the consumer changed),
                        // or anything else: this pull is over.
                        Some(status) => {
                            tracing::debug!(%status, "pull ended");
                            self.end(Ended::ByServer);
                        }
                    }
                }
                _ = tokio::time::sleep_until(lost_at) => {
                    metrics::counter!("sn1_bus_pulls_lost_total").increment(1);
                    self.end(Ended::ByUs);
                }
                changed = self.connects.changed() => {
                    if changed.is_err() {
                        return Ok(Delivery::Closed);
                    }
                    // A new connection: whatever the old one had outstanding may be gone.
                    self.end(Ended::ByUs);
                }
            }
        }
    }

    /// Stops taking messages: the outstanding pull is let go and every one that still arrives for
    /// it is handed back at once, for another worker.
    pub(crate) async fn release(mut self) {
        if let Some((sub, _, expires)) = self.pending.take() {
            hand_back_until(sub, self.js.clone(), expires + PULL_SLACK).await;
        }
    }

    /// Gives up the outstanding pull. One the server may still answer keeps its subscription
    /// until it expires, handing back whatever arrives.
    fn end(&mut self, how: Ended) {
        let Some((sub, reply, expires)) = self.pending.take() else {
            return;
        };
        match how {
            Ended::ByServer => self.spare = Some((sub, reply)),
            Ended::ByUs => {
                tokio::spawn(hand_back_until(sub, self.js.clone(), expires + PULL_SLACK));
            }
        }
    }

    /// Asks the server for a batch, answered on a subject of this pull's own.
    async fn pull(&mut self) -> Result<(), BusError> {
        let (sub, reply) = match self.spare.take() {
            Some(spare) => spare,
            None => {
                self.pulls += 1;
                let reply = format!("{}.{}", self.inbox, self.pulls);
                let sub = self
                    .client
                    .subscribe(reply.clone())
                    .await
                    .map_err(unavailable)?;
                (sub, reply)
            }
        };
        let request = serde_json::json!({
            "batch": self.batch,
            "expires": PULL_EXPIRES.as_nanos() as u64,
        });
        self.client
            .publish_with_reply(
                self.next_subject.clone(),
                reply.clone(),
                request.to_string().into(),
            )
            .await
            .map_err(unavailable)?;
        self.pending = Some((sub, reply, Instant::now() + PULL_EXPIRES));
        self.received = 0;
        Ok(())
    }
}

/// Hands back (naks, for immediate redelivery) every message that arrives on `sub` until the pull
/// ends or `until`, then unsubscribes.
async fn hand_back_until(mut sub: Subscriber, js: jetstream::Context, until: Instant) {
    loop {
        let msg = tokio::select! {
            msg = sub.next() => msg,
            _ = tokio::time::sleep_until(until) => break,
        };
        let Some(msg) = msg else { break };
        match msg.status {
            None | Some(StatusCode::OK) => {
                metrics::counter!("sn1_bus_messages_handed_back_total").increment(1);
                let job = jetstream::Message {
                    message: msg,
                    context: js.clone(),
                };
                if let Err(e) = job.ack_with(jetstream::AckKind::Nak(None)).await {
                    tracing::warn!(error = %e, "could not hand a message back to the queue");
                }
            }
            Some(StatusCode::IDLE_HEARTBEAT) => {}
            Some(_) => break,
        }
    }
    let _ = sub.unsubscribe().await;
}
