//! What the bus delivers, as streams the same for both implementations: each wraps a boxed
//! stream built by [`super::NatsBus`] or [`super::MemoryBus`].

use super::BusError;
use super::delivery::{AuditDelivery, JobDelivery};
use crate::event::Numbered;
use crate::metagraph::MetagraphUpdated;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::time::Duration;

/// One job's events as they arrive, numbered by their worker.
pub struct EventStream(pub(crate) BoxStream<'static, Numbered>);

impl EventStream {
    /// The next event; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<Numbered> {
        self.0.next().await
    }
}

/// Cancelled request ids as they arrive.
pub struct CancelStream(pub(crate) BoxStream<'static, String>);

impl CancelStream {
    /// The next cancelled request id; `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<String> {
        self.0.next().await
    }
}

/// Metagraph notifications as they arrive.
pub struct MetagraphUpdates(pub(crate) BoxStream<'static, MetagraphUpdated>);

impl MetagraphUpdates {
    /// The next notification; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<MetagraphUpdated> {
        self.0.next().await
    }

    /// A stream that never yields (where nothing can be subscribed to).
    pub fn none() -> Self {
        MetagraphUpdates(futures::stream::pending().boxed())
    }
}

/// Jobs as the queue delivers them, one per call: ask for the next job only with a free slot,
/// so a busy worker never sits on a job another could take.
pub struct JobStream(pub(crate) Jobs);

pub(crate) enum Jobs {
    Nats(Box<super::nats::NatsJobs>),
    Memory(BoxStream<'static, Result<JobDelivery, BusError>>),
}

impl JobStream {
    /// The next job; an error for a broken pull or a message that is not a job (dropped).
    /// `None` when the queue is gone.
    pub async fn next(&mut self) -> Option<Result<JobDelivery, BusError>> {
        match &mut self.0 {
            Jobs::Nats(jobs) => jobs.next().await,
            Jobs::Memory(jobs) => jobs.next().await,
        }
    }

    /// Stops taking jobs before a drain: an outstanding request for a job is let go, and a job
    /// that arrives anyway is handed back at once for another worker.
    pub async fn release(self) {
        if let Jobs::Nats(jobs) = self.0 {
            jobs.release().await;
        }
    }
}

/// Audit records as the writer takes them, in batches.
pub struct AuditBatches {
    pub(crate) records: BoxStream<'static, Result<AuditDelivery, BusError>>,
    pub(crate) batch: usize,
    pub(crate) max_bytes: usize,
}

impl AuditBatches {
    /// Waits for at least one record, then takes whatever else arrives within `linger`, up to
    /// the batch size or the batch's byte cap (whichever comes first; one record alone may be
    /// larger). `None` when the queue ended.
    pub async fn next_batch(
        &mut self,
        linger: Duration,
    ) -> Option<Result<Vec<AuditDelivery>, BusError>> {
        let first = match self.records.next().await? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let mut bytes = first.size;
        let mut out = vec![first];
        let until = tokio::time::Instant::now() + linger;
        while out.len() < self.batch && bytes < self.max_bytes {
            match tokio::time::timeout_at(until, self.records.next()).await {
                Ok(Some(Ok(d))) => {
                    bytes += d.size;
                    out.push(d);
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "audit queue hiccup");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        Some(Ok(out))
    }
}
