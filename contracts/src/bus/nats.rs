//! NATS implementation of the bus: a JetStream work-queue stream for jobs (persisted, bounded,
//! one durable pull consumer shared by all workers), core NATS subjects for events and cancels
//! (low latency, no persistence: the api pod waiting for them is their only reader).
//!
//! Everything used here exists in NATS Server 2.9.

use super::{BusError, DeliveryHandle, JobDelivery, unavailable, work_queue_stream};
use crate::event::WorkerEvent;
use crate::job::ChatJob;
use crate::subjects::Subjects;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use std::time::Duration;

/// Bounds and timings of the job queue.
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
    /// Replicas of the jobs stream (1 on a single server, 3 on a cluster).
    pub replicas: usize,
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
        }
    }
}

/// A connection to NATS with the names of one deployment.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
    config: QueueConfig,
}

impl NatsBus {
    /// Connects (retrying in the background when the server is down at start, so the process
    /// comes up and reports not-ready) and makes sure the jobs stream exists.
    pub async fn connect(
        url: &str,
        subjects: Subjects,
        config: QueueConfig,
    ) -> Result<NatsBus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("sn1-gateway/{}", subjects.prefix()))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(unavailable)?;
        Self::with_client(client, subjects, config).await
    }

    /// Uses an existing client and makes sure the jobs stream exists.
    pub async fn with_client(
        client: async_nats::Client,
        subjects: Subjects,
        config: QueueConfig,
    ) -> Result<NatsBus, BusError> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.publish_timeout);
        let bus = NatsBus {
            client,
            js,
            subjects,
            config,
        };
        Ok(bus)
    }

    /// Creates the jobs stream, or checks that it is there.
    pub async fn ensure_jobs_stream(&self) -> Result<(), BusError> {
        let config = stream::Config {
            // No byte bound: JetStream would reserve it; the job count bounds the queue.
            max_age: self.config.max_age,
            ..work_queue_stream(
                self.subjects.jobs_stream(),
                self.subjects.jobs(),
                self.config.max_jobs,
                -1,
                self.config.replicas,
            )
        };
        let mut stream = self
            .js
            .get_or_create_stream(config.clone())
            .await
            .map_err(unavailable)?;
        // A stream made earlier (by another role or an older release) keeps its settings unless
        // told otherwise: the configured bound wins.
        let current = stream
            .info()
            .await
            .map_err(unavailable)?
            .config
            .max_messages;
        if current != config.max_messages {
            tracing::info!(
                from = current,
                to = config.max_messages,
                "updating the job queue bound"
            );
            self.js.update_stream(config).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// The names in use.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The underlying client (for subjects outside the bus, e.g. metagraph notifications).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Publishes a job and waits for the broker's ack. The request id is the message id, so a
    /// retried publish is stored once.
    pub async fn publish_job(&self, job: &ChatJob, headers: HeaderMap) -> Result<(), BusError> {
        if !self.is_connected() {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        let payload = serde_json::to_vec(job).map_err(|e| BusError::Codec(e.to_string()))?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(job.request_id.as_str())
            .headers(headers);
        let ack = self
            .js
            .send_publish(self.subjects.jobs(), publish)
            .await
            .map_err(classify_publish)?;
        ack.await.map_err(classify_publish)?;
        Ok(())
    }

    /// Subscribes to one job's events. Call before publishing the job.
    pub async fn subscribe_events(&self, request_id: &str) -> Result<EventStream, BusError> {
        let sub = self
            .client
            .subscribe(self.subjects.events(request_id))
            .await
            .map_err(unavailable)?;
        Ok(EventStream { sub })
    }

    /// Publishes one event of a job.
    pub async fn publish_event(
        &self,
        request_id: &str,
        event: &WorkerEvent,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(event).map_err(|e| BusError::Codec(e.to_string()))?;
        self.client
            .publish(self.subjects.events(request_id), payload.into())
            .await
            .map_err(unavailable)
    }

    /// Asks the worker of a job to stop (the client went away).
    pub async fn publish_cancel(&self, request_id: &str) -> Result<(), BusError> {
        self.client
            .publish(self.subjects.cancel(request_id), bytes::Bytes::new())
            .await
            .map_err(unavailable)?;
        self.client.flush().await.map_err(unavailable)
    }

    /// Every cancel of this deployment, as request ids.
    pub async fn subscribe_cancels(&self) -> Result<CancelStream, BusError> {
        let sub = self
            .client
            .subscribe(self.subjects.cancel_all())
            .await
            .map_err(unavailable)?;
        Ok(CancelStream {
            sub,
            prefix_len: self.subjects.cancel("").len(),
        })
    }

    /// The shared durable pull consumer, delivering `prefetch` jobs per pull so that a busy
    /// worker does not sit on jobs another worker could take.
    pub async fn job_stream(&self, prefetch: usize) -> Result<JobStream, BusError> {
        self.ensure_jobs_stream().await?;
        let stream = self
            .js
            .get_stream(self.subjects.jobs_stream())
            .await
            .map_err(unavailable)?;
        let name = self.subjects.workers_consumer();
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    max_deliver: self.config.max_deliver,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(prefetch.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(unavailable)?;
        Ok(JobStream { messages })
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

/// One job's events as they arrive.
pub struct EventStream {
    sub: async_nats::Subscriber,
}

impl EventStream {
    /// The next event; `None` when the subscription ended. Undecodable messages are skipped
    /// with a warning (a newer worker may send an event this api does not know).
    pub async fn next(&mut self) -> Option<WorkerEvent> {
        loop {
            let msg = self.sub.next().await?;
            match serde_json::from_slice(&msg.payload) {
                Ok(event) => return Some(event),
                Err(e) => tracing::warn!(error = %e, "skipping an undecodable worker event"),
            }
        }
    }
}

/// Cancelled request ids as they arrive.
pub struct CancelStream {
    sub: async_nats::Subscriber,
    prefix_len: usize,
}

impl CancelStream {
    /// The next cancelled request id.
    pub async fn next(&mut self) -> Option<String> {
        let msg = self.sub.next().await?;
        Some(msg.subject.as_str().get(self.prefix_len..)?.to_string())
    }
}

/// Jobs as the shared consumer delivers them.
pub struct JobStream {
    messages: consumer::pull::Stream,
}

impl JobStream {
    /// The next job. A message that is not a valid job is terminated (never redelivered) and
    /// reported as an error.
    pub async fn next(&mut self) -> Option<Result<JobDelivery, BusError>> {
        let msg = match self.messages.next().await? {
            Ok(msg) => msg,
            Err(e) => return Some(Err(unavailable(e))),
        };
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        match serde_json::from_slice::<ChatJob>(&msg.payload) {
            Ok(job) => Some(Ok(JobDelivery {
                job,
                delivered,
                handle: DeliveryHandle::Nats(Box::new(msg)),
            })),
            Err(e) => {
                let _ = msg.ack_with(jetstream::AckKind::Term).await;
                Some(Err(BusError::Codec(format!("invalid job dropped: {e}"))))
            }
        }
    }
}

/// Acks of a JetStream-delivered job.
pub(super) async fn ack(
    msg: &jetstream::Message,
    kind: jetstream::AckKind,
) -> Result<(), BusError> {
    msg.ack_with(kind).await.map_err(unavailable)
}
