//! The in-process bus of standalone mode: a bounded job queue, per-request event channels,
//! broadcasts for cancels and metagraph notices, and a bounded audit queue — with the semantics
//! the NATS bus gives the api and the worker (a full queue is refused, events of a request
//! nobody waits for are dropped), except that a slow reader holds its worker back rather than
//! losing events. Nothing survives the process, which standalone mode accepts:
//! api and worker die together.

use super::BusError;
use super::delivery::{Acker, AuditDelivery, JobDelivery};
use super::headers::Headers;
use super::inbox::{EventInbox, Routed, Routes};
use super::streams::{AuditBatches, CancelStream, JobStream, Jobs, MetagraphUpdates};
use crate::audit::CompletionRecord;
use crate::event::{Numbered, WorkerEvent};
use crate::job::ChatJob;
use crate::metagraph::MetagraphUpdated;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// A reader this far behind is hopeless: its events are dropped, and the gap in their numbers
/// ends its answer with an error.
const EVENT_STALL: std::time::Duration = std::time::Duration::from_secs(5);
/// Cancels and metagraph notices buffered per subscriber (a lagging one skips the oldest).
const BROADCAST_BUFFER: usize = 1024;
/// Audit records held while the writer is behind (then publishing is refused and counted).
const AUDIT_BUFFER: usize = 10_000;

type Shared<T> = Arc<tokio::sync::Mutex<mpsc::Receiver<T>>>;

/// The in-process bus. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBus {
    jobs_tx: mpsc::Sender<(ChatJob, Headers)>,
    jobs_rx: Shared<(ChatJob, Headers)>,
    events: Arc<Routes>,
    cancels: broadcast::Sender<String>,
    audit_tx: mpsc::Sender<CompletionRecord>,
    audit_rx: Shared<CompletionRecord>,
    metagraph: broadcast::Sender<MetagraphUpdated>,
}

impl MemoryBus {
    /// A bus holding at most `max_jobs` jobs not yet taken by a worker.
    pub fn new(max_jobs: usize) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel(max_jobs.max(1));
        let (audit_tx, audit_rx) = mpsc::channel(AUDIT_BUFFER);
        MemoryBus {
            jobs_tx,
            jobs_rx: Arc::new(tokio::sync::Mutex::new(jobs_rx)),
            events: Arc::default(),
            cancels: broadcast::channel(BROADCAST_BUFFER).0,
            audit_tx,
            audit_rx: Arc::new(tokio::sync::Mutex::new(audit_rx)),
            metagraph: broadcast::channel(BROADCAST_BUFFER).0,
        }
    }

    pub(super) fn publish_job(&self, job: &ChatJob, headers: &Headers) -> Result<(), BusError> {
        try_send(&self.jobs_tx, (job.clone(), headers.clone()), "job queue")
    }

    pub(super) fn jobs_waiting(&self) -> u64 {
        (self.jobs_tx.max_capacity() - self.jobs_tx.capacity()) as u64
    }

    pub(super) fn job_stream(&self) -> JobStream {
        let jobs = receiver_stream(self.jobs_rx.clone()).map(|(job, headers)| {
            Ok(JobDelivery {
                job,
                delivered: 1,
                headers,
                acker: Acker::Memory,
            })
        });
        JobStream(Jobs::Memory(jobs.boxed()))
    }

    pub(super) fn event_inbox(&self) -> EventInbox {
        EventInbox::new(String::new(), self.events.clone(), None)
    }

    pub(super) async fn publish_event(&self, request_id: &str, seq: u64, event: &WorkerEvent) {
        let Some(tx) = self.events.sender(request_id) else {
            // Nobody waits for this request (any more): like core NATS, the event goes nowhere.
            return;
        };
        let event = Numbered {
            seq,
            event: event.clone(),
        };
        if tx
            .send_timeout(Routed::Event(event), EVENT_STALL)
            .await
            .is_err()
        {
            metrics::counter!("sn1_bus_events_dropped_total").increment(1);
        }
    }

    pub(super) fn publish_cancel(&self, request_id: &str) {
        let _ = self.cancels.send(request_id.to_string());
    }

    pub(super) fn subscribe_cancels(&self) -> CancelStream {
        CancelStream(broadcast_stream(self.cancels.subscribe()).boxed())
    }

    pub(super) fn publish_audit(&self, record: &CompletionRecord) -> Result<(), BusError> {
        try_send(&self.audit_tx, record.clone(), "audit queue")
    }

    pub(super) fn audit_batches(&self, batch: usize, max_bytes: usize) -> AuditBatches {
        let records = receiver_stream(self.audit_rx.clone()).map(|record| {
            Ok(AuditDelivery {
                size: record.size(),
                record: Some(record),
                acker: Acker::Memory,
            })
        });
        AuditBatches {
            records: records.boxed(),
            batch: batch.max(1),
            max_bytes,
        }
    }

    pub(super) fn publish_metagraph_updated(&self, update: &MetagraphUpdated) {
        let _ = self.metagraph.send(update.clone());
    }

    pub(super) fn subscribe_metagraph_updates(&self) -> MetagraphUpdates {
        MetagraphUpdates(broadcast_stream(self.metagraph.subscribe()).boxed())
    }
}

fn try_send<T>(tx: &mpsc::Sender<T>, item: T, what: &str) -> Result<(), BusError> {
    tx.try_send(item).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => BusError::Full(format!("{what} full")),
        mpsc::error::TrySendError::Closed(_) => BusError::Unavailable(format!("{what} closed")),
    })
}

/// A shared receiver as a stream: several consumers take turns, each item goes to one.
fn receiver_stream<T: Send + 'static>(rx: Shared<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |rx| async move {
        let item = rx.lock().await.recv().await?;
        Some((item, rx))
    })
}

/// A broadcast receiver as a stream; a lagging receiver skips what it missed.
fn broadcast_stream<T: Clone + Send + 'static>(
    rx: broadcast::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(item) => return Some((item, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
