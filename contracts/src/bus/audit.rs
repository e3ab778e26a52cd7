//! The durable path of audit records: a JetStream stream (file storage, bounded) between the
//! worker that publishes one record per request and the audit writer that inserts them into
//! Postgres and acks only after the commit. A Postgres outage delays the log and loses nothing.

use super::{BusError, unavailable, work_queue_stream};
use crate::audit::CompletionRecord;
use crate::subjects::Subjects;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use std::time::Duration;

/// Bounds of the audit stream.
#[derive(Clone, Debug)]
pub struct AuditQueueConfig {
    /// Records held at most while the writer is behind (publishing beyond fails and is counted).
    pub max_records: i64,
    /// Bytes held at most. JetStream reserves this much of its storage for the stream when it
    /// is created, so it is also what one deployment takes from the server's JetStream budget.
    pub max_bytes: i64,
    /// How long the writer may hold a batch before the broker redelivers it.
    pub ack_wait: Duration,
    /// Replicas of the stream (1 on a single server, 3 on a cluster).
    pub replicas: usize,
}

impl Default for AuditQueueConfig {
    fn default() -> Self {
        AuditQueueConfig {
            max_records: 5_000_000,
            max_bytes: 1 << 30,
            ack_wait: Duration::from_secs(30),
            replicas: 1,
        }
    }
}

/// The audit stream of one deployment.
#[derive(Clone)]
pub struct AuditQueue {
    js: jetstream::Context,
    subjects: Subjects,
    config: AuditQueueConfig,
}

impl AuditQueue {
    /// The audit stream on `client`'s server (created on first use).
    pub fn new(client: async_nats::Client, subjects: Subjects, config: AuditQueueConfig) -> Self {
        AuditQueue {
            js: jetstream::new(client),
            subjects,
            config,
        }
    }

    /// Creates the stream, or checks that it is there.
    pub async fn ensure_stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(work_queue_stream(
                self.subjects.audit_stream(),
                self.subjects.audit(),
                self.config.max_records,
                self.config.max_bytes,
                self.config.replicas,
            ))
            .await
            .map_err(unavailable)
    }

    /// Publishes one record and waits for the broker's ack. The request id is the message id:
    /// a retried publish is stored once.
    pub async fn publish(&self, record: &CompletionRecord) -> Result<(), BusError> {
        let payload = serde_json::to_vec(record).map_err(|e| BusError::Codec(e.to_string()))?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(record.request_id.as_str());
        let ack = self
            .js
            .send_publish(self.subjects.audit(), publish)
            .await
            .map_err(unavailable)?;
        ack.await.map_err(unavailable)?;
        Ok(())
    }

    /// The writers' durable consumer, delivering up to `batch` records per pull.
    pub async fn consumer(&self, batch: usize) -> Result<AuditBatches, BusError> {
        let stream = self.ensure_stream().await?;
        let name = self.subjects.audit_consumer();
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    max_ack_pending: (batch * 4) as i64,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(unavailable)?;
        Ok(AuditBatches { messages, batch })
    }
}

/// Audit records as the writer takes them, in batches.
pub struct AuditBatches {
    messages: consumer::pull::Stream,
    batch: usize,
}

/// One delivered record (or an undecodable message, which is terminated).
pub struct AuditDelivery {
    /// The record, `None` when the message was not a valid record.
    pub record: Option<CompletionRecord>,
    msg: jetstream::Message,
}

impl AuditDelivery {
    /// Acknowledges the record: it is in Postgres.
    pub async fn ack(&self) -> Result<(), BusError> {
        match self.record {
            Some(_) => self.msg.ack().await.map_err(unavailable),
            // Never redeliver garbage.
            None => self
                .msg
                .ack_with(jetstream::AckKind::Term)
                .await
                .map_err(unavailable),
        }
    }

    /// Gives up on the record for good (Postgres refuses it): never redelivered.
    pub async fn term(&self) -> Result<(), BusError> {
        self.msg
            .ack_with(jetstream::AckKind::Term)
            .await
            .map_err(unavailable)
    }

    /// Tells the broker the record is still being worked on (resets its redelivery timer).
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.msg
            .ack_with(jetstream::AckKind::Progress)
            .await
            .map_err(unavailable)
    }

    /// Asks for redelivery after `delay` (the insert failed).
    pub async fn nak(&self, delay: Duration) -> Result<(), BusError> {
        self.msg
            .ack_with(jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(unavailable)
    }
}

impl AuditBatches {
    /// Waits for at least one record, then takes whatever else arrives within `linger`, up to
    /// the batch size. `None` when the consumer ended.
    pub async fn next_batch(
        &mut self,
        linger: Duration,
    ) -> Option<Result<Vec<AuditDelivery>, BusError>> {
        let first = match self.messages.next().await? {
            Ok(m) => m,
            Err(e) => return Some(Err(unavailable(e))),
        };
        let mut out = vec![decode(first)];
        let until = tokio::time::Instant::now() + linger;
        while out.len() < self.batch {
            match tokio::time::timeout_at(until, self.messages.next()).await {
                Ok(Some(Ok(m))) => out.push(decode(m)),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "audit consumer hiccup");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        Some(Ok(out))
    }
}

fn decode(msg: jetstream::Message) -> AuditDelivery {
    let record = match serde_json::from_slice::<CompletionRecord>(&msg.payload) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable audit record dropped");
            None
        }
    };
    AuditDelivery { record, msg }
}
