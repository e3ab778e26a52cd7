//! The job queue / event bus seam: jobs go api → worker through a bounded work queue, events go
//! worker → api on a per-request channel, cancels go api → worker.
//!
//! Two implementations behind one [`Bus`]: [`nats::NatsBus`] (distributed: JetStream for jobs,
//! core NATS for events and cancels) and [`memory::MemoryBus`] (standalone mode, in-process).
//! An enum rather than a trait object: there are exactly two, and async methods stay plain.

pub mod audit;
pub mod memory;
pub mod nats;

pub use nats::{NatsBus, QueueConfig};

use crate::event::WorkerEvent;
use crate::job::ChatJob;
use async_nats::HeaderMap;
use async_nats::jetstream::AckKind;
use std::time::Duration;

/// Why the bus could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker is unreachable, did not acknowledge in time, or refused for a reason that a
    /// retry later may fix.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The job queue is at its configured bound.
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

/// The shape of both our JetStream streams (jobs, audit): a persisted work queue that refuses
/// new messages when full (so the publisher learns it at once) and de-duplicates by message id
/// (the request id) for two minutes.
pub(crate) fn work_queue_stream(
    name: String,
    subject: String,
    max_messages: i64,
    max_bytes: i64,
    replicas: usize,
) -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream;
    stream::Config {
        name,
        subjects: vec![subject],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        max_messages,
        max_bytes,
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The bus of a deployment.
// One per process, cloned once per request: the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Bus {
    /// NATS JetStream (distributed mode).
    Nats(NatsBus),
    /// In-process (standalone mode).
    Memory(memory::MemoryBus),
}

impl Bus {
    /// Whether the bus can take jobs now.
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::Nats(b) => b.is_connected(),
            Bus::Memory(_) => true,
        }
    }

    /// Queues a job; returns once the queue has taken it (JetStream: its ack).
    pub async fn publish_job(&self, job: &ChatJob, headers: HeaderMap) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_job(job, headers).await,
            Bus::Memory(b) => b.publish_job(job, headers),
        }
    }

    /// Subscribes to one job's events. Call before publishing the job.
    pub async fn subscribe_events(&self, request_id: &str) -> Result<EventStream, BusError> {
        Ok(match self {
            Bus::Nats(b) => EventStream::Nats(b.subscribe_events(request_id).await?),
            Bus::Memory(b) => EventStream::Memory(b.subscribe_events(request_id)),
        })
    }

    /// Publishes one event of a job.
    pub async fn publish_event(
        &self,
        request_id: &str,
        event: &WorkerEvent,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_event(request_id, event).await,
            Bus::Memory(b) => {
                b.publish_event(request_id, event).await;
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
        Ok(match self {
            Bus::Nats(b) => CancelStream::Nats(b.subscribe_cancels().await?),
            Bus::Memory(b) => CancelStream::Memory(b.subscribe_cancels()),
        })
    }

    /// Jobs for this worker, `prefetch` at a time.
    pub async fn job_stream(&self, prefetch: usize) -> Result<JobStream, BusError> {
        Ok(match self {
            Bus::Nats(b) => JobStream::Nats(b.job_stream(prefetch).await?),
            Bus::Memory(b) => JobStream::Memory(b.clone()),
        })
    }
}

/// One job's events as they arrive.
pub enum EventStream {
    /// From core NATS.
    Nats(nats::EventStream),
    /// In-process.
    Memory(memory::EventStream),
}

impl EventStream {
    /// The next event; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<WorkerEvent> {
        match self {
            EventStream::Nats(s) => s.next().await,
            EventStream::Memory(s) => s.next().await,
        }
    }
}

/// Cancelled request ids as they arrive.
pub enum CancelStream {
    /// From core NATS.
    Nats(nats::CancelStream),
    /// In-process.
    Memory(tokio::sync::broadcast::Receiver<String>),
}

impl CancelStream {
    /// The next cancelled request id; `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<String> {
        match self {
            CancelStream::Nats(s) => s.next().await,
            CancelStream::Memory(rx) => loop {
                match rx.recv().await {
                    Ok(id) => return Some(id),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            },
        }
    }
}

/// Jobs as the queue delivers them.
// One per worker process.
#[allow(clippy::large_enum_variant)]
pub enum JobStream {
    /// The shared JetStream consumer.
    Nats(nats::JobStream),
    /// The in-process queue.
    Memory(memory::MemoryBus),
}

impl JobStream {
    /// The next job.
    pub async fn next(&mut self) -> Option<Result<JobDelivery, BusError>> {
        match self {
            JobStream::Nats(s) => s.next().await,
            JobStream::Memory(b) => b.next_job().await.map(Ok),
        }
    }
}

/// A job handed to this worker, to be acked once handled.
pub struct JobDelivery {
    /// The job.
    pub job: ChatJob,
    /// 1 on first delivery, more on redelivery.
    pub delivered: i64,
    handle: DeliveryHandle,
}

enum DeliveryHandle {
    Nats(Box<async_nats::jetstream::Message>),
    Memory(Box<HeaderMap>),
}

impl JobDelivery {
    /// The message headers (trace context).
    pub fn headers(&self) -> Option<&HeaderMap> {
        match &self.handle {
            DeliveryHandle::Nats(msg) => msg.headers.as_ref(),
            DeliveryHandle::Memory(headers) => Some(headers),
        }
    }

    /// Done with the job: the queue forgets it.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.ack_with(AckKind::Ack).await
    }

    /// Still working: resets the broker's redelivery timer.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.ack_with(AckKind::Progress).await
    }

    /// Could not handle it now: redeliver (to any worker) after `delay`.
    pub async fn nak(&self, delay: Duration) -> Result<(), BusError> {
        self.ack_with(AckKind::Nak(Some(delay))).await
    }

    async fn ack_with(&self, kind: AckKind) -> Result<(), BusError> {
        match &self.handle {
            DeliveryHandle::Nats(msg) => nats::ack(msg, kind).await,
            // In-process jobs are handed over once; there is no broker to tell.
            DeliveryHandle::Memory(_) => Ok(()),
        }
    }
}
