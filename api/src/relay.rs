//! Relays one job's worker events to its client: turns them into `StreamChunk` /
//! `StreamError` objects, keeps the connection alive while waiting, enforces the deadline,
//! notices a worker that went silent (and queues the job again for another worker when none of
//! the answer was sent yet) or an event that went missing (the answer then ends with an error,
//! never as "finished"), and, when the client goes away first, sends a cancel so the worker stops
//! the fan-out.

use crate::answer::Answer;
use crate::dispatch::Dispatch;
use crate::events::{StreamChunk, StreamError, now_rfc3339};
use crate::keys::Caller;
use sn1_contracts::bus::EventStream;
use sn1_contracts::event::{ErrorKind, Numbered, WorkerEvent};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Whether an event belongs to the answer being relayed.
enum Follow {
    Yes,
    No,
    /// The followed worker's events skipped one: `expected` never arrived.
    Gap {
        expected: u64,
    },
}

/// What the relay produces next.
#[derive(Debug)]
pub enum Relayed<'a> {
    /// A piece of the answer.
    Chunk(StreamChunk<'a>),
    /// The answer is complete (a `StreamChunk` with `finish_reason: "finished"`).
    Finished(StreamChunk<'a>),
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

/// What to send next, decided before the event is built (events are numbered as they go out).
#[derive(Debug)]
enum Step {
    /// The text released last.
    Text,
    Finished,
    Failed {
        error: String,
        timed_out: bool,
    },
    Idle,
}

/// Timings of a relay.
#[derive(Clone, Copy, Debug)]
pub struct RelayTimings {
    /// Send a keep-alive after this much silence.
    pub keep_alive: Duration,
    /// A worker silent this long (no event, not even a heartbeat; workers send one every
    /// second) is taken for lost.
    pub worker_silence: Duration,
    /// Past the job's deadline, how long to wait for the worker's own timeout event.
    pub deadline_grace: Duration,
}

/// The state of one relay. Dropping it before the end (the client went away) sends a cancel.
pub struct Relay {
    events: EventStream,
    dispatch: Dispatch,
    started: Instant,
    deadline: tokio::time::Instant,
    timings: RelayTimings,
    /// The worker followed; `None` while a re-queued job waits for one.
    worker: Option<String>,
    /// The number the followed worker's next event must carry.
    next_seq: u64,
    /// While no worker is followed: when one must have taken the re-queued job.
    accept_by: tokio::time::Instant,
    answer: Answer,
    /// The end, waiting behind the text released with it.
    deferred: Option<Step>,
    sequence: u64,
    last_event: tokio::time::Instant,
    /// When something (event or keep-alive) was last handed to the client.
    last_sent: tokio::time::Instant,
    finished: bool,
    /// The worker ended the job itself (done or error): nothing to cancel.
    worker_ended: bool,
    _permit: OwnedSemaphorePermit,
    /// Who asked: told the answer's size, then dropped (a managed key's lease given back).
    caller: Option<Caller>,
}

impl Relay {
    /// A relay for a dispatched job whose first event (`Accepted`, from `worker`, numbered
    /// `seq`) has arrived; the job must be answered by its deadline (the relay waits
    /// `deadline_grace` longer).
    pub fn new(
        events: EventStream,
        dispatch: Dispatch,
        (worker, seq): (String, u64),
        started: Instant,
        timings: RelayTimings,
        (permit, caller): (OwnedSemaphorePermit, Caller),
    ) -> Self {
        let now = tokio::time::Instant::now();
        let deadline = sn1_contracts::job::local_instant(dispatch.job.deadline);
        Relay {
            events,
            dispatch,
            started,
            deadline: deadline + timings.deadline_grace,
            timings,
            worker: Some(worker),
            next_seq: seq + 1,
            accept_by: now,
            answer: Answer::new(),
            deferred: None,
            sequence: 0,
            last_event: now,
            last_sent: now,
            finished: false,
            worker_ended: false,
            _permit: permit,
            caller: Some(caller),
        }
    }

    /// Every delta sent so far, with its timing, and the selected uid.
    pub fn answer(&self) -> (&[String], &[f64], i32) {
        (&self.answer.chunks, &self.answer.timings, self.answer.uid)
    }

    /// Seconds since the request arrived.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The next thing to send; `None` after the final event.
    pub async fn next(&mut self) -> Option<Relayed<'_>> {
        let step = match self.deferred.take() {
            Some(step) => step,
            None if self.finished => return None,
            None => self.next_step().await,
        };
        self.last_sent = tokio::time::Instant::now();
        Some(match step {
            Step::Text => Relayed::Chunk(self.chunk(None)),
            Step::Finished => {
                self.answer.count_last();
                metrics::histogram!("sn1_api_response_bytes")
                    .record(self.answer.wire_bytes() as f64);
                Relayed::Finished(self.chunk(Some("finished")))
            }
            Step::Failed { error, timed_out } => {
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
            Step::Idle => Relayed::Idle,
        })
    }

    async fn next_step(&mut self) -> Step {
        loop {
            let silence_limit = match self.worker {
                Some(_) => self.last_event + self.timings.worker_silence,
                None => self.accept_by,
            };
            // From the last thing sent, not from the last worker event: heartbeats arrive every
            // second and are not sent on, so the client still needs keep-alives.
            let wake = self.last_sent + self.timings.keep_alive;
            let hold = self.answer.hold_deadline();
            let event = tokio::select! {
                event = self.events.next() => event,
                _ = tokio::time::sleep_until(self.deadline) => {
                    return self.fail("the request timed out before the answer was complete".into(), true);
                }
                _ = tokio::time::sleep_until(silence_limit) => {
                    match self.worker_lost().await {
                        Some(failed) => return failed,
                        None => continue,
                    }
                }
                _ = tokio::time::sleep_until(hold.unwrap_or(wake)), if hold.is_some() => {
                    if self.answer.hold_expired(tokio::time::Instant::now()) {
                        return self.release();
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(wake) => return Step::Idle,
            };
            let Some(Numbered { seq, event }) = event else {
                return self.fail("lost the connection to the job queue".into(), false);
            };
            match self.follow(seq, &event) {
                Follow::Yes => {}
                Follow::No => continue,
                Follow::Gap { expected } => {
                    metrics::counter!("sn1_api_event_gaps_total").increment(1);
                    tracing::warn!(
                        request_id = %self.dispatch.job.request_id,
                        expected,
                        got = seq,
                        "worker events went missing; ending the answer with an error"
                    );
                    return self.fail(
                        "part of the answer was lost on the way from the worker; retry".into(),
                        false,
                    );
                }
            }
            let now = tokio::time::Instant::now();
            self.last_event = now;
            match event {
                WorkerEvent::Accepted { .. } | WorkerEvent::Heartbeat { .. } => continue,
                WorkerEvent::Chunk { delta, uid, .. } => {
                    metrics::counter!("sn1_api_chunks_total").increment(1);
                    self.answer.push(uid, &delta, now);
                    if self.answer.ready(now) {
                        return self.release();
                    }
                }
                WorkerEvent::Done { uid, .. } => {
                    self.worker_ended = true;
                    self.answer.uid = uid;
                    return self.end(Step::Finished);
                }
                WorkerEvent::Error { message, kind, .. } => {
                    self.worker_ended = true;
                    return self.fail(message, kind == ErrorKind::Timeout);
                }
            }
        }
    }

    /// Sends the text held.
    fn release(&mut self) -> Step {
        self.answer.release(self.elapsed());
        if self.answer.chunks.len() == 1 {
            metrics::histogram!("sn1_api_time_to_first_chunk_seconds").record(self.elapsed());
            tracing::debug!(
                request_id = %self.dispatch.job.request_id,
                first_chunk_us = self.started.elapsed().as_micros() as u64,
                "first chunk relayed"
            );
        }
        Step::Text
    }

    /// Ends the answer with `step`, after the text still held.
    fn end(&mut self, step: Step) -> Step {
        self.finished = true;
        if !self.answer.has_pending() {
            return step;
        }
        self.deferred = Some(step);
        self.release()
    }

    /// Whether `event` (numbered `seq`) belongs to the answer: the followed worker's events
    /// must come in order; another worker is followed instead only while nothing was sent
    /// (a redelivered or re-queued job), from its first event on.
    fn follow(&mut self, seq: u64, event: &WorkerEvent) -> Follow {
        let sender = event.worker();
        if self.worker.as_deref() == Some(sender) {
            if seq != self.next_seq {
                return Follow::Gap {
                    expected: self.next_seq,
                };
            }
            self.next_seq = seq + 1;
            return Follow::Yes;
        }
        let takes_over = match self.worker {
            None => seq == 1,
            Some(_) => matches!(event, WorkerEvent::Accepted { .. }),
        };
        if takes_over && !self.started_answer() {
            tracing::info!(request_id = %self.dispatch.job.request_id, worker = sender, "another worker took the job");
            self.worker = Some(sender.to_string());
            self.next_seq = seq + 1;
            return Follow::Yes;
        }
        Follow::No
    }

    /// The followed worker went silent (or no worker took the re-queued job): queue the job
    /// again when nothing of the answer was sent yet, otherwise fail.
    async fn worker_lost(&mut self) -> Option<Step> {
        let lost = if self.worker.is_some() {
            "the worker handling this request stopped responding"
        } else {
            "no worker took the request after its first worker stopped responding"
        };
        if self.started_answer() || !self.dispatch.can_requeue() {
            return Some(self.fail(lost.into(), false));
        }
        tracing::warn!(
            request_id = %self.dispatch.job.request_id,
            attempt = self.dispatch.job.attempt + 1,
            "{lost}; queuing the job again"
        );
        match self.dispatch.requeue().await {
            Ok(accept_by) => {
                self.worker = None;
                self.accept_by = accept_by;
                None
            }
            Err(e) => Some(self.fail(
                format!("{lost}, and the job queue is unavailable: {e}"),
                false,
            )),
        }
    }

    /// Whether any of the answer arrived (sent or held).
    fn started_answer(&self) -> bool {
        !self.answer.chunks.is_empty() || self.answer.has_pending()
    }

    /// The event carrying the text released last (or, finished, none).
    fn chunk(&mut self, finish_reason: Option<&'static str>) -> StreamChunk<'_> {
        self.sequence += 1;
        let delta = match finish_reason {
            None => self.answer.chunks.last().map_or("", String::as_str),
            Some(_) => "",
        };
        StreamChunk {
            delta,
            finish_reason,
            accumulated_chunks: &self.answer.chunks,
            accumulated_chunks_timings: &self.answer.timings,
            timestamp: now_rfc3339(),
            sequence_number: self.sequence,
            selected_uid: self.answer.uid,
        }
    }

    /// Ends the answer with an error, after the text still held.
    fn fail(&mut self, error: String, timed_out: bool) -> Step {
        self.end(Step::Failed { error, timed_out })
    }
}

impl Drop for Relay {
    /// Unless the worker ended the job itself, tells it to stop asking miners: the client went
    /// away mid-answer, or the api ended the answer (an event gap, the deadline, a silent
    /// worker) and nobody will read the rest.
    fn drop(&mut self) {
        if let Some(caller) = &mut self.caller {
            caller.answered(&self.answer.chunks);
        }
        if self.worker_ended {
            return;
        }
        if !self.finished {
            metrics::counter!("sn1_api_client_disconnects_total").increment(1);
        }
        self.dispatch.cancel();
    }
}
