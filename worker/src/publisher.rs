//! A job's events on the bus, numbered from 1 in the order this worker sends them, so the api
//! can tell when one went missing (see `sn1_contracts::event::Numbered`).

use sn1_contracts::bus::Bus;
use sn1_contracts::event::WorkerEvent;
use sn1_contracts::job::ChatJob;
use tokio::sync::mpsc;

/// The numbered event stream of one job from this worker.
pub struct JobEvents {
    bus: Bus,
    to: String,
    request_id: String,
    seq: u64,
}

impl JobEvents {
    /// Events of `job`, none sent yet.
    pub fn new(bus: Bus, job: &ChatJob) -> Self {
        JobEvents {
            bus,
            to: job.events_to.clone(),
            request_id: job.request_id.clone(),
            seq: 0,
        }
    }

    /// Publishes the next event. A failure is logged and still uses its number: the api then
    /// sees a gap and tells its client, rather than a silently shorter answer.
    pub async fn publish(&mut self, event: &WorkerEvent) {
        self.seq += 1;
        if let Err(e) = self
            .bus
            .publish_event(&self.to, &self.request_id, self.seq, event)
            .await
        {
            metrics::counter!("sn1_worker_event_publish_failures_total").increment(1);
            tracing::warn!(error = %e, seq = self.seq, "could not publish an event");
        }
    }

    /// Publishes every event of `rx` until it closes, then hands itself back for later events.
    pub async fn relay(mut self, mut rx: mpsc::Receiver<WorkerEvent>) -> Self {
        while let Some(event) = rx.recv().await {
            self.publish(&event).await;
        }
        self
    }
}
