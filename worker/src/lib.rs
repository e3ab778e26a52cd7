//! The worker role: pulls chat jobs from the shared JetStream consumer, picks miners from the
//! metagraph, fans out to them with the Bittensor protocol, and publishes the answer's events.
//!
//! Entry points: [`Worker::run`] (the pull loop, bounded concurrency, cancels, graceful drain)
//! and [`job::JobRunner::process`] (one job, bus-independent: what tests and standalone drive).

pub mod audit;
pub mod axon_policy;
pub mod cleaning;
pub mod directory;
pub mod echo;
pub mod fanout;
pub mod job;
mod job_span;
pub mod ops;
pub mod publisher;
pub mod quality;
pub mod reliability;
pub mod selection;

use job::{JobRunner, JobSummary};
use sn1_bittensor::dendrite::MinerProtocol;
use sn1_contracts::bus::{Bus, JobDelivery};
use sn1_contracts::event::WorkerEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Settings of a worker process.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This process's id, sent with every event (the api ignores a second worker's events).
    pub instance_id: String,
    /// Jobs handled at once; the worker pulls a job only when it has a free slot.
    pub concurrency: usize,
    /// How miners are spoken to.
    pub protocol: MinerProtocol,
    /// A miner silent this long is given up on.
    pub first_byte_timeout: Duration,
    /// Bytes kept per miner reply.
    pub max_reply_bytes: usize,
    /// Candidate rules.
    pub selection: selection::SelectionPolicy,
    /// Interval of heartbeat events while a job runs.
    pub heartbeat_interval: Duration,
    /// Interval of progress acks to the broker (below the consumer's ack wait).
    pub progress_interval: Duration,
    /// On shutdown, in-flight jobs get this long to finish before they are cancelled.
    pub drain_timeout: Duration,
    /// Hedged commit, stall failover and reliability scores.
    pub quality: quality::QualityConfig,
}

/// The NATS-connected worker.
pub struct Worker {
    bus: Bus,
    runner: JobRunner,
    inflight: Arc<Mutex<HashMap<String, CancellationToken>>>,
    audit: Option<audit::AuditSettings>,
    intake: ops::Intake,
}

impl Worker {
    /// A worker on `bus` running jobs with `runner`.
    pub fn new(bus: Bus, runner: JobRunner) -> Self {
        Worker {
            bus,
            runner,
            inflight: Arc::default(),
            audit: None,
            intake: ops::Intake::default(),
        }
    }

    /// The metagraph this worker picks miners from.
    pub fn directory(&self) -> directory::Directory {
        self.runner.directory.clone()
    }

    /// When this worker last took a job (for its `/readyz` and `/metrics`).
    pub fn intake(&self) -> ops::Intake {
        self.intake.clone()
    }

    /// Publishes one audit record per job on the bus's audit queue (for the audit writer).
    pub fn with_audit(mut self, settings: audit::AuditSettings) -> Self {
        self.audit = Some(settings);
        self
    }

    /// Pulls and handles jobs until `shutdown` fires, then stops pulling, lets in-flight jobs
    /// finish (up to the drain timeout, then cancels them) and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let config = self.runner.config.clone();
        let mut cancels = self.bus.subscribe_cancels().await?;
        let inflight = self.inflight.clone();
        let cancel_listener = tokio::spawn(async move {
            while let Some(id) = cancels.next().await {
                let token = inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .cloned();
                if let Some(token) = token {
                    tracing::info!(request_id = %id, "job cancelled by the api");
                    token.cancel();
                }
            }
        });
        let mut jobs = self.bus.job_stream().await?;
        tracing::info!(
            worker = %config.instance_id,
            concurrency = config.concurrency,
            "worker pulling jobs"
        );
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let tracker = TaskTracker::new();
        let jobs_cancel = CancellationToken::new();
        let this = Arc::new(self);
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit?,
            };
            // A worker with no metagraph yet leaves jobs to workers that have one.
            while this.runner.directory.snapshot().neurons.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = jobs.next() => next,
            };
            match delivery {
                None => {
                    tracing::warn!("job stream ended; reopening");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match this.bus.job_stream().await {
                        Ok(stream) => jobs = stream,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not reopen the job stream; retrying")
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "could not take a job");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(Ok(delivery)) => {
                    this.intake.took_a_job();
                    let this = this.clone();
                    let cancel = jobs_cancel.child_token();
                    let stopping = jobs_cancel.clone();
                    tracker.spawn(async move {
                        this.handle(delivery, cancel, &stopping).await;
                        drop(permit);
                    });
                }
            }
        }
        // Stop taking jobs first: a job that still arrives goes back to the queue at once.
        jobs.release().await;
        tracing::info!(in_flight = tracker.len(), "worker draining");
        tracker.close();
        if tokio::time::timeout(config.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            jobs_cancel.cancel();
            tracker.wait().await;
        }
        cancel_listener.abort();
        // The last events and acks must leave the process before it exits.
        if let Err(e) = this.bus.flush().await {
            tracing::warn!(error = %e, "could not flush the bus on shutdown");
        }
        Ok(())
    }

    /// Handles one delivered job: runs it, relays its events, keeps the broker informed, acks.
    /// `cancel` fires for this job (client gone) or for all (`stopping`: the worker shuts down
    /// after its drain timeout, and tells the client so).
    pub async fn handle(
        &self,
        delivery: JobDelivery,
        cancel: CancellationToken,
        stopping: &CancellationToken,
    ) {
        let job = delivery.job.clone();
        let span = job_span::start(&job, delivery.delivered);
        sn1_telemetry::trace::attach_parent(&span, &delivery.headers);
        async {
            {
                let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                if inflight.contains_key(&job.request_id) {
                    // Already running here (a redelivery raced a slow progress ack).
                    tracing::info!("duplicate delivery of a running job ignored");
                    return;
                }
                inflight.insert(job.request_id.clone(), cancel.clone());
            }
            metrics::gauge!("sn1_worker_jobs_in_flight").increment(1.0);
            let (tx, rx) = mpsc::channel::<WorkerEvent>(256);
            let events = publisher::JobEvents::new(self.bus.clone(), &job);
            let relay = tokio::spawn(events.relay(rx));
            let started = std::time::Instant::now();
            tracing::debug!(
                queued_us = (chrono::Utc::now() - job.created_at).num_microseconds(),
                "job pulled"
            );
            let work = self.runner.process(&job, cancel.clone(), tx);
            tokio::pin!(work);
            // First tick one period from now (an immediate first tick costs up to 1 ms of
            // timer wheel before the job starts).
            let period = self.runner.config.progress_interval;
            let mut progress =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            let summary = loop {
                tokio::select! {
                    summary = &mut work => break summary,
                    _ = progress.tick() => {
                        let _ = delivery.in_progress().await;
                    }
                }
            };
            let events = relay.await;
            if summary.status == job::JobStatus::Cancelled
                && stopping.is_cancelled()
                && let Ok(mut events) = events
            {
                // Not the client's doing: say why the answer ends here.
                let event = WorkerEvent::Error {
                    worker: self.runner.config.instance_id.clone(),
                    kind: sn1_contracts::event::ErrorKind::Internal,
                    message: "the worker handling this request shut down; retry".into(),
                };
                events.publish(&event).await;
            }
            let elapsed = started.elapsed();
            if let Some(settings) = &self.audit
                && summary.status != job::JobStatus::Skipped
            {
                let limit = settings.record_limit(self.bus.max_message_bytes());
                let record = audit::build_record(&job, &summary, elapsed, settings, limit);
                if let Err(e) = self.bus.publish_audit(&record).await {
                    metrics::counter!("sn1_worker_audit_publish_failures_total").increment(1);
                    tracing::warn!(error = %e, "audit record not published");
                }
            }
            self.inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&job.request_id);
            metrics::gauge!("sn1_worker_jobs_in_flight").decrement(1.0);
            job_span::finish(&tracing::Span::current(), &summary);
            if let Err(e) = delivery.ack().await {
                tracing::warn!(error = %e, "could not ack a finished job; it may be redelivered");
            }
            log_summary(&summary, elapsed);
        }
        .instrument(span)
        .await
    }
}

fn log_summary(summary: &JobSummary, elapsed: Duration) {
    let result = summary.status.as_str();
    metrics::histogram!("sn1_worker_job_seconds").record(elapsed.as_secs_f64());
    metrics::counter!("sn1_worker_jobs_total", "result" => result).increment(1);
    for m in &summary.miners {
        let outcome = audit::miner_outcome(m);
        metrics::counter!("sn1_worker_miner_replies_total", "outcome" => outcome).increment(1);
        ops::record_miner(m, outcome);
    }
    tracing::info!(
        result,
        miners = summary.miners.len(),
        selected_uid = summary.selected_uid,
        ttfc_ms = summary.time_to_first_chunk.map(|d| d.as_secs_f64() * 1e3),
        total_ms = elapsed.as_secs_f64() * 1e3,
        "job done"
    );
}
