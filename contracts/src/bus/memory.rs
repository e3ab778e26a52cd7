//! The in-process bus of standalone mode: a bounded job channel, per-request event channels and
//! a cancel broadcast, with the same semantics the NATS bus gives the api and the worker (a
//! full queue is refused, events of a request nobody waits for are dropped). Nothing survives
//! the process, which standalone mode accepts: api and worker die together.

use super::{BusError, DeliveryHandle, JobDelivery};
use crate::event::WorkerEvent;
use crate::job::ChatJob;
use async_nats::HeaderMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Events buffered per request before the worker waits for the api to catch up.
const EVENT_BUFFER: usize = 1024;

/// The in-process bus. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBus {
    jobs_tx: mpsc::Sender<(ChatJob, HeaderMap)>,
    jobs_rx: Arc<tokio::sync::Mutex<mpsc::Receiver<(ChatJob, HeaderMap)>>>,
    events: Arc<Mutex<HashMap<String, mpsc::Sender<WorkerEvent>>>>,
    cancels: broadcast::Sender<String>,
}

impl MemoryBus {
    /// A bus holding at most `max_jobs` jobs not yet taken by a worker.
    pub fn new(max_jobs: usize) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel(max_jobs.max(1));
        let (cancels, _) = broadcast::channel(1024);
        MemoryBus {
            jobs_tx,
            jobs_rx: Arc::new(tokio::sync::Mutex::new(jobs_rx)),
            events: Arc::default(),
            cancels,
        }
    }

    pub(super) fn publish_job(&self, job: &ChatJob, headers: HeaderMap) -> Result<(), BusError> {
        self.jobs_tx
            .try_send((job.clone(), headers))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => BusError::Full("job queue full".into()),
                mpsc::error::TrySendError::Closed(_) => {
                    BusError::Unavailable("job queue closed".into())
                }
            })
    }

    pub(super) fn subscribe_events(&self, request_id: &str) -> EventStream {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        self.lock_events().insert(request_id.to_string(), tx);
        EventStream {
            rx,
            request_id: request_id.to_string(),
            events: self.events.clone(),
        }
    }

    pub(super) async fn publish_event(&self, request_id: &str, event: &WorkerEvent) {
        let tx = self.lock_events().get(request_id).cloned();
        if let Some(tx) = tx {
            // Like core NATS: a gone or hopelessly slow reader (buffer full) loses the event
            // rather than stalling the worker that holds the job.
            if tx.try_send(event.clone()).is_err() {
                metrics::counter!("sn1_bus_events_dropped_total").increment(1);
            }
        }
    }

    pub(super) fn publish_cancel(&self, request_id: &str) {
        let _ = self.cancels.send(request_id.to_string());
    }

    pub(super) fn subscribe_cancels(&self) -> broadcast::Receiver<String> {
        self.cancels.subscribe()
    }

    pub(super) async fn next_job(&self) -> Option<JobDelivery> {
        let (job, headers) = self.jobs_rx.lock().await.recv().await?;
        Some(JobDelivery {
            job,
            delivered: 1,
            handle: DeliveryHandle::Memory(Box::new(headers)),
        })
    }

    fn lock_events(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<WorkerEvent>>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request's events; unregisters itself when dropped.
pub struct EventStream {
    rx: mpsc::Receiver<WorkerEvent>,
    request_id: String,
    events: Arc<Mutex<HashMap<String, mpsc::Sender<WorkerEvent>>>>,
}

impl EventStream {
    pub(super) async fn next(&mut self) -> Option<WorkerEvent> {
        self.rx.recv().await
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.request_id);
    }
}
