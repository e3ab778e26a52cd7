//! The audit writer: takes records from the bus's audit queue in batches, inserts them into the
//! store and acks only after the commit. One writer for both modes: JetStream → Postgres, or the
//! in-process queue → SQLite.

use sn1_contracts::audit::CompletionRecord;
use sn1_contracts::bus::{AuditDelivery, Bus};
use sn1_contracts::retry::{Backoff, sleep_or_stop};
use sn1_contracts::store::Store;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How the audit writer batches and prunes.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Records per insert at most.
    pub batch: usize,
    /// Bytes of records per insert at most (about: a batch stops once it is reached), so a
    /// batch of large records cannot take a writer's memory.
    pub max_batch_bytes: usize,
    /// After the first record of a batch, wait this long for more (latency vs. throughput).
    pub linger: Duration,
    /// Prompts and texts older than this are pruned to their hashes (`None`: kept).
    pub retention: Option<Duration>,
    /// How often the retention job runs.
    pub prune_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch: 1000,
            max_batch_bytes: 16 << 20,
            linger: Duration::from_millis(50),
            retention: None,
            prune_interval: Duration::from_secs(600),
        }
    }
}

/// Runs the audit writer until `shutdown`: takes batches from the audit queue, inserts each in
/// one transaction, acks after the commit. While the store is down it keeps the batch, retries
/// with backoff and tells the broker it is still working on it, so nothing is lost or
/// redelivered in a storm; the queue buffers the rest (bounded). On shutdown it writes what the
/// queue hands over at once (the in-process queue holds records nowhere else), then returns.
pub async fn run_writer(
    bus: Bus,
    store: Store,
    config: WriterConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut batches = bus
        .audit_batches(config.batch, config.max_batch_bytes)
        .await?;
    if let Some(retention) = config.retention {
        let (store, stop, every) = (store.clone(), shutdown.clone(), config.prune_interval);
        tokio::spawn(prune_loop(store, retention, every, stop));
    }
    tracing::info!(batch = config.batch, "audit writer running");
    let mut writes = tokio::task::JoinSet::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = batches.next_batch(config.linger) => next,
        };
        match next {
            None => {
                tracing::warn!("audit queue ended; reopening");
                if !sleep_or_stop(backoff.next_delay(), &shutdown).await {
                    break;
                }
                batches = bus
                    .audit_batches(config.batch, config.max_batch_bytes)
                    .await?;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "audit queue error");
                if !sleep_or_stop(backoff.next_delay(), &shutdown).await {
                    break;
                }
            }
            Some(Ok(deliveries)) => {
                backoff.reset();
                // The next batch is fetched while this one is inserted; at most
                // WRITES_IN_FLIGHT batches (so bounded memory) are held at once.
                while writes.len() >= WRITES_IN_FLIGHT {
                    writes.join_next().await;
                }
                let (store, stop) = (store.clone(), shutdown.clone());
                writes
                    .spawn(async move { write_until_committed(&store, &deliveries, &stop).await });
            }
        }
    }
    // Let the batches in hand commit, then write what is ready without waiting for more (one
    // try each: with the database down, JetStream keeps them and the in-process queue cannot).
    while writes.join_next().await.is_some() {}
    while let Ok(Some(Ok(deliveries))) =
        tokio::time::timeout(config.linger, batches.next_batch(config.linger)).await
    {
        if !write_until_committed(&store, &deliveries, &shutdown).await {
            break;
        }
    }
    Ok(())
}

/// Batches being inserted at once by one writer. Two keeps the database busy while the next
/// batch arrives; inserts of different batches never conflict (distinct request ids).
const WRITES_IN_FLIGHT: usize = 2;

/// First and longest wait between tries of an insert.
fn insert_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// Inserts a batch, retrying until it commits; `false` if shutdown came first (the batch is
/// then redelivered to a writer later).
async fn write_until_committed(
    store: &Store,
    deliveries: &[AuditDelivery],
    shutdown: &CancellationToken,
) -> bool {
    let records: Vec<_> = deliveries
        .iter()
        .filter_map(|d| d.record.as_ref())
        .collect();
    let mut backoff = insert_backoff();
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        let started = std::time::Instant::now();
        let span = insert_span(&records);
        match store.insert_audit(&records).instrument(span.clone()).await {
            Ok(new) => {
                metrics::histogram!("sn1_audit_insert_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("sn1_audit_records_written_total").increment(new);
                committed(&records);
                if let Some(since) = failing_since {
                    tracing::info!(
                        outage_s = since.elapsed().as_secs_f64(),
                        "audit writer reached the database again"
                    );
                }
                for d in deliveries {
                    if let Err(e) = d.ack().await {
                        // The insert is idempotent: a redelivery is harmless.
                        tracing::warn!(error = %e, "could not ack an audit record");
                    }
                }
                return true;
            }
            Err(e) if e.is_permanent() => {
                // One bad record must not hold the others (or the writer) forever.
                tracing::warn!(error = %e, records = records.len(), "the database refused the batch; inserting one by one");
                return write_one_by_one(store, deliveries, shutdown).await;
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                metrics::counter!("sn1_audit_insert_failures_total").increment(1);
                if failing_since.is_none() {
                    tracing::warn!(error = %e, records = records.len(), "audit insert failed; retrying");
                    failing_since = Some(std::time::Instant::now());
                }
                for d in deliveries {
                    let _ = d.in_progress().await;
                }
                if !sleep_or_stop(backoff.next_delay(), shutdown).await {
                    return false;
                }
            }
        }
    }
}

/// The span of one batch insert: its own trace (a batch serves many requests), linked to the
/// span of each record's job.
fn insert_span(records: &[&CompletionRecord]) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "audit insert",
        otel.name = "INSERT audit",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.operation.name = "INSERT",
        db.operation.batch.size = records.len(),
    );
    for traceparent in records.iter().filter_map(|r| r.traceparent.as_deref()) {
        sn1_telemetry::trace::add_link(&span, traceparent);
    }
    span
}

/// When the newest record committed so far was created (Unix ms; only ever grows, so a
/// redelivered old batch does not make the lag look larger).
static NEWEST_COMMITTED_MS: AtomicI64 = AtomicI64::new(0);

/// Notes a committed batch: `sn1_audit_newest_committed_timestamp_seconds` (the audit lag is
/// now minus it) and `sn1_audit_commit_lag_seconds` (how old the newest record was when its
/// batch committed).
fn committed(records: &[&CompletionRecord]) {
    let Some(newest) = records.iter().map(|r| r.created_at).max() else {
        return;
    };
    let ms = newest.timestamp_millis();
    let max = NEWEST_COMMITTED_MS.fetch_max(ms, Ordering::Relaxed).max(ms);
    metrics::gauge!("sn1_audit_newest_committed_timestamp_seconds").set(max as f64 / 1e3);
    let lag = (chrono::Utc::now() - newest).num_milliseconds().max(0) as f64 / 1e3;
    metrics::gauge!("sn1_audit_commit_lag_seconds").set(lag);
}

/// Inserts each record on its own; a record the database refuses is dropped for good (counted
/// and logged by request id), the others are kept and retried like a batch.
async fn write_one_by_one(
    store: &Store,
    deliveries: &[AuditDelivery],
    shutdown: &CancellationToken,
) -> bool {
    for d in deliveries {
        let Some(record) = &d.record else {
            let _ = d.ack().await;
            continue;
        };
        let mut backoff = insert_backoff();
        loop {
            match store.insert_audit(&[record]).await {
                Ok(new) => {
                    metrics::counter!("sn1_audit_records_written_total").increment(new);
                    let _ = d.ack().await;
                    break;
                }
                Err(e) if e.is_permanent() => {
                    metrics::counter!("sn1_audit_records_rejected_total").increment(1);
                    tracing::error!(request_id = %record.request_id, error = %e, "audit record refused by the database; dropped");
                    let _ = d.term().await;
                    break;
                }
                Err(_) => {
                    let _ = d.in_progress().await;
                    if !sleep_or_stop(backoff.next_delay(), shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
    true
}

async fn prune_loop(store: Store, retention: Duration, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = chrono::Utc::now() - retention;
        match store.prune_audit_content(before).await {
            Ok(n) if n > 0 => tracing::info!(pruned = n, "audit content past retention pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit retention job failed"),
        }
    }
}
