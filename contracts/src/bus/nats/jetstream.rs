//! The two JetStream work queues of a deployment — jobs (api → workers) and audit records
//! (workers → audit writers) — with one stream shape, one durable pull-consumer set-up and one
//! publish path. A record or job is acked by its consumer only after its side effects.

use super::intake::{Delivery, Intake};
use super::{NatsBus, from_nats, to_nats};
use crate::audit::CompletionRecord;
use crate::bus::delivery::{Ack, Acker, AuditDelivery, JobDelivery};
use crate::bus::headers::Headers;
use crate::bus::streams::{AuditBatches, JobStream, Jobs};
use crate::bus::{BusError, codec, unavailable};
use crate::job::ChatJob;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures::StreamExt;
use std::time::Duration;

/// A message delivered by a JetStream consumer.
pub(crate) type JetStreamMessage = jetstream::Message;

/// Bounds and timings of the job queue (and, in `audit`, of the audit queue).
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Jobs the stream holds at most; publishing beyond is refused (the api answers 503).
    pub max_jobs: i64,
    /// A job not pulled within this age is dropped by the broker.
    pub max_age: Duration,
    /// How long a worker may hold a job without acking or reporting progress before the broker
    /// redelivers it. Workers report progress every few seconds while they work.
    pub ack_wait: Duration,
    /// Deliveries of one job at most (first delivery plus redeliveries).
    pub max_deliver: i64,
    /// How long a publish waits for the broker's ack.
    pub publish_timeout: Duration,
    /// Replicas of the streams (1 on a single server, 3 on a cluster).
    pub replicas: usize,
    /// The audit queue.
    pub audit: AuditQueueConfig,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_jobs: 10_000,
            max_age: Duration::from_secs(600),
            ack_wait: Duration::from_secs(15),
            max_deliver: 3,
            publish_timeout: Duration::from_secs(2),
            replicas: 1,
            audit: AuditQueueConfig::default(),
        }
    }
}

/// Bounds of the audit queue.
#[derive(Clone, Debug)]
pub struct AuditQueueConfig {
    /// Records held at most while the writer is behind (publishing beyond fails and is counted).
    pub max_records: i64,
    /// Bytes held at most. JetStream reserves this much of its storage for the stream when it
    /// is created, so it is also what one deployment takes from the server's JetStream budget.
    pub max_bytes: i64,
    /// How long the writer may hold a batch before the broker redelivers it.
    pub ack_wait: Duration,
}

impl Default for AuditQueueConfig {
    fn default() -> Self {
        AuditQueueConfig {
            max_records: 5_000_000,
            max_bytes: 1 << 30,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// One of our work queues: a persisted stream that refuses new messages when full (so the
/// publisher learns it at once) and de-duplicates by message id (the request id) for two
/// minutes, drained by one durable pull consumer.
struct WorkQueue {
    stream: stream::Config,
    consumer: String,
    ack_wait: Duration,
    max_deliver: i64,
    max_ack_pending: i64,
}

impl WorkQueue {
    fn stream(name: String, subject: String, max_messages: i64, max_bytes: i64) -> stream::Config {
        stream::Config {
            name,
            subjects: vec![subject],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::New,
            max_messages,
            max_bytes,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }
}

impl NatsBus {
    fn jobs_queue(&self) -> WorkQueue {
        let c = &self.0.config;
        WorkQueue {
            stream: stream::Config {
                // No byte bound: JetStream would reserve it; the job count bounds the queue.
                max_age: c.max_age,
                num_replicas: c.replicas,
                ..WorkQueue::stream(
                    self.0.subjects.jobs_stream(),
                    self.0.subjects.jobs(),
                    c.max_jobs,
                    -1,
                )
            },
            consumer: self.0.subjects.workers_consumer(),
            ack_wait: c.ack_wait,
            max_deliver: c.max_deliver,
            max_ack_pending: 10_000,
        }
    }

    fn audit_queue(&self, batch: usize) -> WorkQueue {
        let c = &self.0.config.audit;
        WorkQueue {
            stream: stream::Config {
                num_replicas: self.0.config.replicas,
                ..WorkQueue::stream(
                    self.0.subjects.audit_stream(),
                    self.0.subjects.audit(),
                    c.max_records,
                    c.max_bytes,
                )
            },
            consumer: self.0.subjects.audit_consumer(),
            ack_wait: c.ack_wait,
            max_deliver: 0, // unlimited: a record is retried until stored
            max_ack_pending: (batch * 4) as i64,
        }
    }

    /// Creates the stream of `queue`, or brings an existing one (made by another role or an
    /// older release) to the configured message bound.
    async fn ensure_stream(&self, queue: &WorkQueue) -> Result<stream::Stream, BusError> {
        let config = queue.stream.clone();
        let js = &self.0.js;
        // Another process may create it between our lookup and our create (NATS 2.9 then says
        // the subjects overlap): it is there now.
        let mut stream = match js.get_or_create_stream(config.clone()).await {
            Ok(stream) => stream,
            Err(e) => js
                .get_stream(&config.name)
                .await
                .map_err(|_| unavailable(e))?,
        };
        let current = stream
            .info()
            .await
            .map_err(unavailable)?
            .config
            .max_messages;
        if current != config.max_messages {
            tracing::info!(stream = %config.name, from = current, to = config.max_messages, "updating the queue bound");
            js.update_stream(config).await.map_err(unavailable)?;
        }
        Ok(stream)
    }

    /// The durable consumer of `queue` (created, or checked, with its stream).
    async fn consumer(&self, queue: &WorkQueue) -> Result<consumer::PullConsumer, BusError> {
        let stream = self.ensure_stream(queue).await?;
        stream
            .get_or_create_consumer(
                &queue.consumer,
                consumer::pull::Config {
                    durable_name: Some(queue.consumer.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: queue.ack_wait,
                    max_deliver: queue.max_deliver,
                    max_ack_pending: queue.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)
    }

    /// This process's [`Intake`] on the durable consumer of `queue`, `batch` messages per pull.
    async fn intake(&self, queue: &WorkQueue, batch: usize) -> Result<Intake, BusError> {
        self.consumer(queue).await?;
        Intake::open(
            &self.0.client,
            self.0.js.clone(),
            &queue.stream.name,
            &queue.consumer,
            batch,
            self.0.connects.clone(),
        )
        .await
    }

    /// Publishes to a work queue and waits for the broker's ack. `id` is the message id, so a
    /// retried publish is stored once.
    async fn publish_queued(
        &self,
        subject: String,
        id: &str,
        payload: Vec<u8>,
        headers: Option<&Headers>,
    ) -> Result<(), BusError> {
        if !self.is_connected() {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(id);
        if let Some(headers) = headers.filter(|h| !h.is_empty()) {
            publish = publish.headers(to_nats(headers));
        }
        let ack = self
            .0
            .js
            .send_publish(subject, publish)
            .await
            .map_err(classify_publish)?;
        ack.await.map_err(classify_publish)?;
        Ok(())
    }

    /// Publishes a job and waits for the broker's ack.
    pub(crate) async fn publish_job(
        &self,
        job: &ChatJob,
        headers: &Headers,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(job).map_err(codec)?;
        self.publish_queued(
            self.0.subjects.jobs(),
            &job.message_id(),
            payload,
            Some(headers),
        )
        .await
    }

    /// This worker's intake on the shared job consumer (see [`super::intake`]).
    pub(crate) async fn job_stream(&self) -> Result<JobStream, BusError> {
        let intake = self.intake(&self.jobs_queue(), 1).await?;
        Ok(JobStream(Jobs::Nats(Box::new(NatsJobs { intake }))))
    }

    /// Jobs not yet delivered to any worker (the shared consumer's pending count).
    pub(crate) async fn jobs_waiting(&self) -> Result<u64, BusError> {
        let (consumer, _) = self.jobs_consumer().await?;
        Ok(consumer.cached_info().num_pending)
    }

    /// The workers' shared consumer of the job queue, and the queue's stream name.
    async fn jobs_consumer(&self) -> Result<(consumer::PullConsumer, String), BusError> {
        let queue = self.jobs_queue();
        let consumer = self
            .0
            .js
            .get_consumer_from_stream(&queue.consumer, &queue.stream.name)
            .await
            .map_err(unavailable)?;
        Ok((consumer, queue.stream.name))
    }

    /// When the oldest job that no worker has taken yet was created (`None`: none waiting):
    /// the job after the consumer's last delivered one, read back from the stream.
    pub(crate) async fn oldest_job_waiting(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, BusError> {
        let (consumer, stream) = self.jobs_consumer().await?;
        let info = consumer.cached_info();
        if info.num_pending == 0 {
            return Ok(None);
        }
        let stream = self
            .0
            .js
            .get_stream_no_info(&stream)
            .await
            .map_err(unavailable)?;
        let message = stream
            .get_raw_message(info.delivered.stream_sequence + 1)
            .await
            .map_err(unavailable)?;
        let job: ChatJob = serde_json::from_slice(&message.payload).map_err(codec)?;
        Ok(Some(job.created_at))
    }

    /// Creates the jobs stream, or brings it to the configured bound.
    pub(crate) async fn ensure_jobs_stream(&self) -> Result<(), BusError> {
        self.ensure_stream(&self.jobs_queue()).await.map(drop)
    }

    /// Creates the audit stream, or checks that it is there.
    pub(crate) async fn ensure_audit_stream(&self) -> Result<(), BusError> {
        self.ensure_stream(&self.audit_queue(1)).await.map(drop)
    }

    /// Publishes one audit record and waits for the broker's ack.
    pub(crate) async fn publish_audit(&self, record: &CompletionRecord) -> Result<(), BusError> {
        let payload = serde_json::to_vec(record).map_err(codec)?;
        self.publish_queued(self.0.subjects.audit(), &record.request_id, payload, None)
            .await
    }

    /// The audit writers' durable consumer, delivering up to `batch` records per pull.
    pub(crate) async fn audit_batches(
        &self,
        batch: usize,
        max_bytes: usize,
    ) -> Result<AuditBatches, BusError> {
        let batch = batch.max(1);
        let intake = self.intake(&self.audit_queue(batch), batch).await?;
        let records = futures::stream::unfold(intake, |mut intake| async move {
            let msg = match intake.next().await {
                Ok(Delivery::Message(msg)) => msg,
                Ok(Delivery::Closed) => return None,
                Err(e) => return Some((Err(e), intake)),
            };
            let record = match serde_json::from_slice::<CompletionRecord>(&msg.payload) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable audit record dropped");
                    None
                }
            };
            let delivery = AuditDelivery {
                record,
                size: msg.payload.len(),
                acker: Acker::Nats(msg),
            };
            Some((Ok(delivery), intake))
        });
        Ok(AuditBatches {
            records: records.boxed(),
            batch,
            max_bytes,
        })
    }
}

fn classify_publish(e: jetstream::context::PublishError) -> BusError {
    let text = e.to_string();
    if text.contains("maximum messages") || text.contains("maximum bytes") {
        BusError::Full(text)
    } else {
        BusError::Unavailable(text)
    }
}

/// Tells the broker what became of a delivered message.
pub(crate) async fn ack(msg: &JetStreamMessage, ack: Ack) -> Result<(), BusError> {
    let kind = match ack {
        Ack::Done => AckKind::Ack,
        Ack::Progress => AckKind::Progress,
        Ack::Retry(delay) => AckKind::Nak(Some(delay)),
        Ack::Drop => AckKind::Term,
    };
    msg.ack_with(kind).await.map_err(unavailable)
}

/// Jobs through this worker's [`Intake`], decoded.
pub(crate) struct NatsJobs {
    intake: Intake,
}

impl NatsJobs {
    /// The next job. A message that is not a valid job is dropped (never redelivered) and
    /// reported as an error.
    pub(crate) async fn next(&mut self) -> Option<Result<JobDelivery, BusError>> {
        let msg = match self.intake.next().await {
            Ok(Delivery::Message(msg)) => msg,
            Ok(Delivery::Closed) => return None,
            Err(e) => return Some(Err(e)),
        };
        Some(match serde_json::from_slice::<ChatJob>(&msg.payload) {
            Ok(job) => Ok(JobDelivery {
                job,
                delivered: msg.info().map(|i| i.delivered).unwrap_or(1),
                headers: from_nats(msg.headers.as_ref()),
                acker: Acker::Nats(msg),
            }),
            Err(e) => {
                let _ = ack(&msg, Ack::Drop).await;
                Err(BusError::Codec(format!("invalid job dropped: {e}")))
            }
        })
    }

    /// See [`JobStream::release`].
    pub(crate) async fn release(self) {
        self.intake.release().await;
    }
}
