//! A job's outgoing events: each carries the worker's id, and the chunk events add up to the
//! completion (what the client was sent). [`Outbox::relay`] drives a fan-out to its end while
//! passing its chunks on, coalesced, with heartbeats in between.

use crate::fanout::{AnswerChunk, FanoutReport};
use sn1_contracts::event::WorkerEvent;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bytes of queued chunks merged into one event at most.
const COALESCE_MAX_BYTES: usize = 16 * 1024;

/// Where one job's events go.
pub(super) struct Outbox {
    worker: String,
    events: mpsc::Sender<WorkerEvent>,
    completion: String,
}

impl Outbox {
    /// Events of worker `worker`, sent on `events`.
    pub fn new(worker: String, events: mpsc::Sender<WorkerEvent>) -> Outbox {
        Outbox {
            worker,
            events,
            completion: String::new(),
        }
    }

    /// The worker's id.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Every delta sent so far.
    pub fn into_completion(self) -> String {
        self.completion
    }

    /// Sends `event`; a receiver that has gone away is noticed on the next chunk.
    pub async fn send(&self, event: WorkerEvent) {
        let _ = self.events.send(event).await;
    }

    /// Tells the api this worker has taken the job.
    pub async fn accepted(&self) {
        let worker = self.worker.clone();
        self.send(WorkerEvent::Accepted { worker }).await;
    }

    /// Sends a piece of the answer; false when the receiver is gone.
    pub async fn chunk(&mut self, uid: i32, delta: String) -> bool {
        self.completion.push_str(&delta);
        let worker = self.worker.clone();
        let event = WorkerEvent::Chunk { worker, delta, uid };
        self.events.send(event).await.is_ok()
    }

    /// Runs `fan` to its end, passing the chunks it sends on `rx` on as events, and a heartbeat
    /// every `heartbeat` meanwhile. When the receiver goes away, `cancel` fires (the fan-out
    /// then stops).
    pub async fn relay(
        &mut self,
        fan: impl Future<Output = FanoutReport>,
        mut rx: mpsc::Receiver<AnswerChunk>,
        heartbeat: Duration,
        cancel: &CancellationToken,
    ) -> FanoutReport {
        tokio::pin!(fan);
        // Not `interval(..)` + a first `tick().await`: that first tick waits for the timer
        // wheel (up to 1 ms) on the critical path before the fan-out starts.
        let start = tokio::time::Instant::now() + heartbeat;
        let mut ticks = tokio::time::interval_at(start, heartbeat);
        let report = loop {
            tokio::select! {
                report = &mut fan => break report,
                Some(chunk) = rx.recv() => {
                    if !self.forward(chunk, &mut rx).await {
                        cancel.cancel();
                    }
                }
                _ = ticks.tick() => {
                    self.send(WorkerEvent::Heartbeat { worker: self.worker.clone() }).await;
                }
            }
        };
        // Chunks sent just before the fan-out ended.
        while let Ok(chunk) = rx.try_recv() {
            self.chunk(i32::from(chunk.uid), chunk.delta).await;
        }
        report
    }

    /// Sends `chunk`, merged with the chunks of the same miner queued behind it: a miner that
    /// streams byte by byte cannot make the client's events (each carrying all chunks so far)
    /// grow with the square of its chunk count. False when the receiver is gone.
    async fn forward(
        &mut self,
        mut chunk: AnswerChunk,
        rx: &mut mpsc::Receiver<AnswerChunk>,
    ) -> bool {
        while chunk.delta.len() < COALESCE_MAX_BYTES {
            match rx.try_recv() {
                Ok(next) if next.uid == chunk.uid => chunk.delta.push_str(&next.delta),
                Ok(next) => {
                    let earlier = std::mem::replace(&mut chunk, next);
                    self.chunk(i32::from(earlier.uid), earlier.delta).await;
                }
                Err(_) => break,
            }
        }
        self.chunk(i32::from(chunk.uid), chunk.delta).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::FanoutEnd;

    fn chunk(uid: u16, delta: &str) -> AnswerChunk {
        AnswerChunk {
            uid,
            delta: delta.into(),
        }
    }

    #[tokio::test]
    async fn queued_chunks_of_one_miner_go_out_as_one_event() {
        let (events_tx, mut events) = mpsc::channel(16);
        let mut outbox = Outbox::new("w".into(), events_tx);
        let (tx, rx) = mpsc::channel(16);
        for piece in ["Once", " upon", " a time"] {
            tx.send(chunk(3, piece)).await.unwrap();
        }
        drop(tx);
        let fan = async {
            // Let the relay take the queued chunks before the fan-out ends.
            tokio::time::sleep(Duration::from_millis(50)).await;
            FanoutReport {
                end: FanoutEnd::Answered { uid: 3 },
                miners: vec![],
                time_to_first_chunk: None,
                text_held: Default::default(),
                commit: None,
                failovers: Vec::new(),
            }
        };
        let cancel = CancellationToken::new();
        let report = outbox
            .relay(fan, rx, Duration::from_secs(60), &cancel)
            .await;
        assert_eq!(report.end, FanoutEnd::Answered { uid: 3 });
        assert_eq!(
            events.recv().await,
            Some(WorkerEvent::Chunk {
                worker: "w".into(),
                delta: "Once upon a time".into(),
                uid: 3
            })
        );
        assert!(events.try_recv().is_err());
        assert!(!cancel.is_cancelled());
        assert_eq!(outbox.into_completion(), "Once upon a time");
    }

    #[tokio::test]
    async fn a_receiver_gone_cancels_the_fan_out() {
        let (events_tx, events) = mpsc::channel(16);
        drop(events);
        let mut outbox = Outbox::new("w".into(), events_tx);
        let (tx, rx) = mpsc::channel(16);
        tx.send(chunk(1, "x")).await.unwrap();
        let cancel = CancellationToken::new();
        let watched = cancel.clone();
        let fan = async move {
            watched.cancelled().await;
            FanoutReport {
                end: FanoutEnd::Cancelled,
                miners: vec![],
                time_to_first_chunk: None,
                text_held: Default::default(),
                commit: None,
                failovers: Vec::new(),
            }
        };
        let report = outbox
            .relay(fan, rx, Duration::from_secs(60), &cancel)
            .await;
        assert_eq!(report.end, FanoutEnd::Cancelled);
    }
}
