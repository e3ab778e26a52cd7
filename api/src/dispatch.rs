//! Putting a job on the queue — and again, for another worker, when its worker died before any
//! of the answer reached the client.

use chrono::Utc;
use sn1_contracts::bus::{Bus, BusError, Headers};
use sn1_contracts::job::{ChatJob, local_instant};
use tracing::Instrument;

/// The `error.type` of a failed publish (a low-cardinality class, never the message).
fn error_type(e: &BusError) -> &'static str {
    match e {
        BusError::Unavailable(_) => "unavailable",
        BusError::Full(_) => "queue_full",
        BusError::Codec(_) => "codec",
    }
}

/// How many times a job is queued again at most (so three workers may try it in all).
pub const MAX_REQUEUES: u32 = 2;

/// A job, where it is queued, and the headers it travels with (trace context).
pub struct Dispatch {
    /// The queue.
    pub bus: Bus,
    /// The job, as last queued.
    pub job: ChatJob,
    /// Its message headers.
    pub headers: Headers,
}

impl Dispatch {
    /// Queues the job; returns once the queue has taken it. Traced as a producer span
    /// (messaging conventions) under the request's span; the job travels with the context of
    /// this span, so the worker's span descends from it.
    pub async fn publish(&self) -> Result<(), BusError> {
        let (system, destination) = match &self.bus {
            Bus::Nats(b) => ("nats", b.subjects().jobs()),
            Bus::Memory(_) => ("in-process", "jobs".to_string()),
        };
        let span = tracing::info_span!(
            "publish",
            otel.name = %format_args!("publish {destination}"),
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            messaging.system = system,
            messaging.operation.type = "send",
            messaging.destination.name = %destination,
            messaging.message.id = %self.job.request_id,
            sn1.request_id = %self.job.request_id,
            sn1.attempt = self.job.attempt,
            error.type = tracing::field::Empty,
        );
        sn1_telemetry::trace::attach_parent(&span, &self.headers);
        let mut headers = self.headers.clone();
        sn1_telemetry::trace::inject(&span, &mut headers);
        let result = self
            .bus
            .publish_job(&self.job, &headers)
            .instrument(span.clone())
            .await;
        if let Err(e) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error_type(e));
        }
        result
    }

    /// Whether the job may be queued again.
    pub fn can_requeue(&self) -> bool {
        self.job.attempt < MAX_REQUEUES && Utc::now() < self.job.deadline
    }

    /// Queues the job again as its next attempt, with a fresh acceptance window as long as the
    /// first; returns when a worker must have taken it.
    pub async fn requeue(&mut self) -> Result<tokio::time::Instant, BusError> {
        let window = self.job.accept_by - self.job.created_at;
        self.job.attempt += 1;
        self.job.accept_by = (Utc::now() + window).min(self.job.deadline);
        self.publish().await?;
        metrics::counter!("sn1_api_jobs_requeued_total").increment(1);
        Ok(local_instant(self.job.accept_by))
    }

    /// Asks the job's worker to stop (without waiting).
    pub fn cancel(&self) {
        let bus = self.bus.clone();
        let id = self.job.request_id.clone();
        tokio::spawn(async move {
            if let Err(e) = bus.publish_cancel(&id).await {
                tracing::warn!(request_id = %id, error = %e, "could not publish a cancel");
            }
        });
    }
}
