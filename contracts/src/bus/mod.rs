//! The bus seam: every message that crosses between roles goes through [`Bus`].
//!
//! | message | from → to | NATS | in-process |
//! |---|---|---|---|
//! | chat job | api → one worker | JetStream work queue (acked, redelivered) | bounded channel |
//! | worker event | worker → the api waiting | core subject per api process ([`EventInbox`]) | channel per request |
//! | cancel | api → every worker | core subject | broadcast |
//! | audit record | worker → audit writer | JetStream work queue | bounded channel |
//! | metagraph updated | syncer → every worker | core subject | broadcast |
//!
//! Two implementations: [`NatsBus`] (distributed) and [`MemoryBus`] (standalone mode). An enum
//! rather than a trait object: there are exactly two, and async methods stay plain. Nothing
//! outside this module names a NATS type; message headers travel as [`Headers`].

mod delivery;
mod headers;
mod inbox;
pub mod memory;
pub mod nats;
mod streams;

pub use delivery::{AuditDelivery, JobDelivery};
pub use headers::Headers;
pub use inbox::EventInbox;
pub use memory::MemoryBus;
pub use nats::{AuditQueueConfig, NatsBus, QueueConfig, Subjects};
pub use streams::{AuditBatches, CancelStream, EventStream, JobStream, MetagraphUpdates};

use crate::audit::CompletionRecord;
use crate::event::WorkerEvent;
use crate::job::ChatJob;
use crate::metagraph::MetagraphUpdated;

/// Why the bus could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker is unreachable, did not acknowledge in time, or refused for a reason that a
    /// retry later may fix.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The queue is at its configured bound.
    #[error("queue full: {0}")]
    Full(String),
    /// A message could not be encoded or decoded.
    #[error("bad message: {0}")]
    Codec(String),
}

/// A broker failure, as the bus reports it.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// An encoding failure, as the bus reports it.
pub(crate) fn codec(e: impl std::fmt::Display) -> BusError {
    BusError::Codec(e.to_string())
}

/// The bus of a deployment. Cheap to clone.
#[derive(Clone)]
pub enum Bus {
    /// NATS and JetStream (distributed mode).
    Nats(NatsBus),
    /// In-process (standalone mode).
    Memory(MemoryBus),
}

impl Bus {
    /// Whether the bus can carry messages now.
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::Nats(b) => b.is_connected(),
            Bus::Memory(_) => true,
        }
    }

    /// Sends everything published so far (before a process exits, so its last events and acks
    /// are not lost in a buffer). Bounded by a few seconds.
    pub async fn flush(&self) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.flush().await,
            Bus::Memory(_) => Ok(()),
        }
    }

    /// Queues a job; returns once the queue has taken it (JetStream: its ack).
    pub async fn publish_job(&self, job: &ChatJob, headers: &Headers) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_job(job, headers).await,
            Bus::Memory(b) => b.publish_job(job, headers),
        }
    }

    /// Makes sure the job queue exists with the configured bound (the api does this at start,
    /// so the first request does not pay for it).
    pub async fn ensure_job_queue(&self) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.ensure_jobs_stream().await,
            Bus::Memory(_) => Ok(()),
        }
    }

    /// Jobs queued and not yet taken by any worker.
    pub async fn jobs_waiting(&self) -> Result<u64, BusError> {
        match self {
            Bus::Nats(b) => b.jobs_waiting().await,
            Bus::Memory(b) => Ok(b.jobs_waiting()),
        }
    }

    /// When the oldest job still waiting for a worker was created (`None`: none waiting, or
    /// not known: the in-process queue does not track it).
    pub async fn oldest_job_waiting(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, BusError> {
        match self {
            Bus::Nats(b) => b.oldest_job_waiting().await,
            Bus::Memory(_) => Ok(None),
        }
    }

    /// Jobs for this worker, one per [`JobStream::next`].
    pub async fn job_stream(&self) -> Result<JobStream, BusError> {
        match self {
            Bus::Nats(b) => b.job_stream().await,
            Bus::Memory(b) => Ok(b.job_stream()),
        }
    }

    /// This process's inbox for the events of the jobs it dispatches (one per api process;
    /// each request then subscribes through it).
    pub async fn event_inbox(&self) -> Result<EventInbox, BusError> {
        match self {
            Bus::Nats(b) => b.event_inbox().await,
            Bus::Memory(b) => Ok(b.event_inbox()),
        }
    }

    /// Publishes one event of a job, the `seq`-th this worker sent for it, to the inbox the job
    /// names (`to`: its [`ChatJob::events_to`]).
    pub async fn publish_event(
        &self,
        to: &str,
        request_id: &str,
        seq: u64,
        event: &WorkerEvent,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_event(to, request_id, seq, event).await,
            Bus::Memory(b) => {
                b.publish_event(request_id, seq, event).await;
                Ok(())
            }
        }
    }

    /// Asks the worker of a job to stop (the client went away).
    pub async fn publish_cancel(&self, request_id: &str) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_cancel(request_id).await,
            Bus::Memory(b) => {
                b.publish_cancel(request_id);
                Ok(())
            }
        }
    }

    /// Every cancel, as request ids.
    pub async fn subscribe_cancels(&self) -> Result<CancelStream, BusError> {
        match self {
            Bus::Nats(b) => b.subscribe_cancels().await,
            Bus::Memory(b) => Ok(b.subscribe_cancels()),
        }
    }

    /// Makes sure the audit queue exists (call once before publishing records).
    pub async fn ensure_audit_queue(&self) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.ensure_audit_stream().await,
            Bus::Memory(_) => Ok(()),
        }
    }

    /// Hands over one audit record; returns once the queue holds it.
    pub async fn publish_audit(&self, record: &CompletionRecord) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_audit(record).await,
            Bus::Memory(b) => b.publish_audit(record),
        }
    }

    /// The audit writers' queue, delivering up to `batch` records, or about `max_bytes`, at a
    /// time.
    pub async fn audit_batches(
        &self,
        batch: usize,
        max_bytes: usize,
    ) -> Result<AuditBatches, BusError> {
        match self {
            Bus::Nats(b) => b.audit_batches(batch, max_bytes).await,
            Bus::Memory(b) => Ok(b.audit_batches(batch, max_bytes)),
        }
    }

    /// The largest message the bus carries, bytes (NATS: the server's `max_payload`, known once
    /// connected; `None` before, and for the in-process bus, which has no limit).
    pub fn max_message_bytes(&self) -> Option<usize> {
        match self {
            Bus::Nats(b) => b.max_message_bytes(),
            Bus::Memory(_) => None,
        }
    }

    /// Tells every worker that a new metagraph snapshot is stored.
    pub async fn publish_metagraph_updated(
        &self,
        update: &MetagraphUpdated,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_metagraph_updated(update).await,
            Bus::Memory(b) => {
                b.publish_metagraph_updated(update);
                Ok(())
            }
        }
    }

    /// Metagraph notifications as they arrive.
    pub async fn subscribe_metagraph_updates(&self) -> Result<MetagraphUpdates, BusError> {
        match self {
            Bus::Nats(b) => b.subscribe_metagraph_updates().await,
            Bus::Memory(b) => Ok(b.subscribe_metagraph_updates()),
        }
    }
}
