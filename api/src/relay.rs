//! Relays one job's worker events to its client: turns them into `StreamChunk` /
//! `StreamError` objects, keeps the connection alive while waiting, enforces the deadline, notices
//! a worker that went silent, and, when the client goes away first, sends a cancel so the
//! worker stops the fan-out.

use crate::events::{StreamChunk, StreamError, now_rfc3339};
use chrono::{DateTime, Utc};
use sn1_contracts::bus::{Bus, EventStream};
use sn1_contracts::event::{ErrorKind, WorkerEvent};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// What the relay produces next.
#[derive(Debug)]
pub enum Relayed {
    /// A piece of the answer.
    Chunk(StreamChunk),
    /// The answer is complete (a `StreamChunk` with `finish_reason: "finished"`).
    Finished(StreamChunk),
    /// The answer failed; `timed_out` tells a timeout from other failures.
    Failed {
        /// The event for the client.
        error: StreamError,
        /// Whether the failure was a timeout.
        timed_out: bool,
    },
    /// Nothing happened for a while: send a keep-alive.
    Idle,
}

/// Timings of a relay.
#[derive(Clone, Copy, Debug)]
pub struct RelayTimings {
    /// Send a keep-alive after this much silence.
    pub keep_alive: Duration,
    /// A worker silent this long (no event, not even a heartbeat) is taken for lost.
    pub worker_silence: Duration,
    /// Past the job's deadline, how long to wait for the worker's own timeout event.
    pub deadline_grace: Duration,
}

/// The state of one relay. Dropping it before the end (the client went away) sends a cancel.
pub struct Relay {
    events: EventStream,
    bus: Bus,
    request_id: String,
    started: Instant,
    deadline: tokio::time::Instant,
    timings: RelayTimings,
    worker: Option<String>,
    chunks: Vec<String>,
    timings_s: Vec<f64>,
    selected_uid: i32,
    sequence: u64,
    last_event: tokio::time::Instant,
    /// When something (event or keep-alive) was last handed to the client.
    last_sent: tokio::time::Instant,
    finished: bool,
    _permit: OwnedSemaphorePermit,
}

impl Relay {
    /// A relay for a job whose first event (`Accepted`, from `worker`) has arrived; the job
    /// must be answered by `deadline` (the relay waits `deadline_grace` longer).
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; each value is a distinct part of the relay"
    )]
    pub fn new(
        events: EventStream,
        bus: Bus,
        request_id: String,
        worker: String,
        started: Instant,
        deadline: DateTime<Utc>,
        timings: RelayTimings,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let now = tokio::time::Instant::now();
        Relay {
            events,
            bus,
            request_id,
            started,
            deadline: sn1_contracts::job::local_instant(deadline) + timings.deadline_grace,
            timings,
            worker: Some(worker),
            chunks: Vec::new(),
            timings_s: Vec::new(),
            selected_uid: -1,
            sequence: 0,
            last_event: now,
            last_sent: now,
            finished: false,
            _permit: permit,
        }
    }

    /// Every delta so far, with its timing, and the selected uid.
    pub fn answer(&self) -> (&[String], &[f64], i32) {
        (&self.chunks, &self.timings_s, self.selected_uid)
    }

    /// Seconds since the request arrived.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The next thing to send; `None` after the final event.
    pub async fn next(&mut self) -> Option<Relayed> {
        let next = self.next_inner().await;
        self.last_sent = tokio::time::Instant::now();
        next
    }

    async fn next_inner(&mut self) -> Option<Relayed> {
        if self.finished {
            return None;
        }
        loop {
            let silence_limit = self.last_event + self.timings.worker_silence;
            // From the last thing sent, not from the last worker event: heartbeats arrive every
            // second and are not sent on, so the client still needs keep-alives.
            let wake = self.last_sent + self.timings.keep_alive;
            let event = tokio::select! {
                event = self.events.next() => event,
                _ = tokio::time::sleep_until(self.deadline) => {
                    return Some(self.fail("the request timed out before the answer was complete".into(), true));
                }
                _ = tokio::time::sleep_until(silence_limit) => {
                    return Some(self.fail("the worker handling this request stopped responding".into(), false));
                }
                _ = tokio::time::sleep_until(wake) => return Some(Relayed::Idle),
            };
            let Some(event) = event else {
                return Some(self.fail("lost the connection to the job queue".into(), false));
            };
            if !self.is_from_current_worker(&event) {
                continue;
            }
            self.last_event = tokio::time::Instant::now();
            match event {
                WorkerEvent::Accepted { .. } | WorkerEvent::Heartbeat { .. } => continue,
                WorkerEvent::Chunk { delta, uid, .. } => {
                    self.selected_uid = uid;
                    self.chunks.push(delta.clone());
                    self.timings_s.push(self.elapsed());
                    metrics::counter!("sn1_api_chunks_total").increment(1);
                    if self.chunks.len() == 1 {
                        metrics::histogram!("sn1_api_time_to_first_chunk_seconds")
                            .record(self.elapsed());
                        tracing::debug!(
                            request_id = %self.request_id,
                            first_chunk_us = self.started.elapsed().as_micros() as u64,
                            "first chunk relayed"
                        );
                    }
                    return Some(Relayed::Chunk(self.chunk(delta, None)));
                }
                WorkerEvent::Done { uid, .. } => {
                    self.selected_uid = uid;
                    self.finished = true;
                    return Some(Relayed::Finished(
                        self.chunk(String::new(), Some("finished")),
                    ));
                }
                WorkerEvent::Error { message, kind, .. } => {
                    return Some(self.fail(message, kind == ErrorKind::Timeout));
                }
            }
        }
    }

    /// Events of another worker (a redelivered job) are followed only until a chunk was sent.
    fn is_from_current_worker(&mut self, event: &WorkerEvent) -> bool {
        let sender = event.worker();
        if self.worker.as_deref() == Some(sender) {
            return true;
        }
        if matches!(event, WorkerEvent::Accepted { .. }) && self.chunks.is_empty() {
            tracing::info!(request_id = %self.request_id, "job redelivered to another worker");
            self.worker = Some(sender.to_string());
            return true;
        }
        false
    }

    fn chunk(&mut self, delta: String, finish_reason: Option<&'static str>) -> StreamChunk {
        self.sequence += 1;
        StreamChunk {
            delta,
            finish_reason,
            accumulated_chunks: self.chunks.clone(),
            accumulated_chunks_timings: self.timings_s.clone(),
            timestamp: now_rfc3339(),
            sequence_number: self.sequence,
            selected_uid: self.selected_uid,
        }
    }

    fn fail(&mut self, error: String, timed_out: bool) -> Relayed {
        self.finished = true;
        self.sequence += 1;
        Relayed::Failed {
            error: StreamError {
                error,
                timestamp: now_rfc3339(),
                sequence_number: self.sequence,
                finish_reason: "error",
            },
            timed_out,
        }
    }

    /// Marks the relay complete without a cancel (the non-streamed path read it to the end).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The client went away mid-answer: tell the worker to stop asking miners.
        metrics::counter!("sn1_api_client_disconnects_total").increment(1);
        let bus = self.bus.clone();
        let id = std::mem::take(&mut self.request_id);
        tokio::spawn(async move {
            if let Err(e) = bus.publish_cancel(&id).await {
                tracing::warn!(request_id = %id, error = %e, "could not publish a cancel");
            }
        });
    }
}
