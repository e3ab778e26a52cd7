//! The worker's side of the audit log: turning a finished job into a [`CompletionRecord`]
//! (content policy applied here, before the record leaves the process) and the audit writer,
//! which takes records from the bus's audit queue in batches, inserts them into the store and
//! acks only after the commit. One writer for both modes: JetStream → Postgres, or the
//! in-process queue → SQLite.

use crate::cleaning;
use crate::fanout::MinerRecord;
use crate::job::JobSummary;
use sn1_bittensor::reply::OutcomeKind;
use sn1_contracts::audit::{
    CompletionRecord, ContentPolicy, MinerResponseRecord, cap, kept_exclusions, storable,
};
use sn1_contracts::bus::{AuditDelivery, Bus};
use sn1_contracts::job::ChatJob;
use sn1_contracts::retry::{Backoff, sleep_or_stop};
use sn1_contracts::store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How records are built.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    /// What is kept of prompts and texts.
    pub content: ContentPolicy,
    /// Bytes of each miner's text kept (cut on a character boundary).
    pub max_text_bytes: usize,
    /// The subnet, recorded with each request.
    pub netuid: u16,
    /// A record's serialized size at most; a larger one has its texts cut (marked) until it
    /// fits. The worker lowers it further to the bus's own message limit.
    pub max_record_bytes: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            content: ContentPolicy::Full,
            max_text_bytes: 16 * 1024,
            netuid: 1,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// NATS's default `max_payload` (1 MiB) less room for the message's headers and subject.
const DEFAULT_MAX_RECORD_BYTES: usize = (1 << 20) - RECORD_HEADROOM;

/// Bytes of a bus message that are not the record (headers, message id, subject).
const RECORD_HEADROOM: usize = 4 * 1024;

impl AuditSettings {
    /// The record size limit on a bus that carries at most `bus_max` bytes per message.
    pub fn record_limit(&self, bus_max: Option<usize>) -> usize {
        bus_max.map_or(self.max_record_bytes, |m| {
            self.max_record_bytes.min(m.saturating_sub(RECORD_HEADROOM))
        })
    }
}

/// The audit record of one finished job, cut to at most `max_bytes` serialized (texts cut
/// and marked, never the record dropped).
pub fn build_record(
    job: &ChatJob,
    summary: &JobSummary,
    total: Duration,
    settings: &AuditSettings,
    max_bytes: usize,
) -> CompletionRecord {
    let (messages, messages_sha256) = settings
        .content
        .keep_all_capped(&job.params.messages, MESSAGES_BUDGET);
    // Miner texts share a budget, so a record stays far below NATS's 1 MB message limit
    // whatever k is.
    let per_miner = settings
        .max_text_bytes
        .min(MINER_TEXTS_BUDGET / summary.miners.len().max(1));
    let text_of = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut record = CompletionRecord {
        request_id: job.request_id.clone(),
        created_at: job.created_at,
        api_key_id: job.api_key_id.clone(),
        endpoint: text_of(serde_json::json!(job.endpoint)),
        netuid: settings.netuid,
        k: job.params.k,
        timeout_s: job.budget().as_secs_f64(),
        strategy: text_of(serde_json::json!(job.params.strategy)),
        sampling_mode: text_of(serde_json::json!(job.params.sampling_mode)),
        exclude: kept_exclusions(
            job.params
                .exclude
                .iter()
                .map(|e| match e {
                    sn1_contracts::job::Exclusion::Uid(u) => serde_json::json!(u),
                    sn1_contracts::job::Exclusion::Hotkey(h) => {
                        serde_json::json!(storable(cap(h, 128)))
                    }
                })
                .collect(),
        ),
        roles: job.params.roles.clone(),
        messages,
        messages_sha256,
        selected_uid: summary.selected_uid,
        completion: settings
            .content
            .keep_capped(&summary.completion, COMPLETION_BUDGET),
        status: summary.status.as_str().to_string(),
        error: summary.error.as_deref().map(storable),
        time_to_first_chunk_ms: summary.time_to_first_chunk.map(millis),
        total_ms: millis(total),
        miners: summary
            .miners
            .iter()
            .map(|m| miner_row(m, settings, per_miner))
            .collect(),
    };
    if record.fit(max_bytes) {
        metrics::counter!("sn1_worker_audit_records_cut_total").increment(1);
        tracing::warn!(request_id = %job.request_id, max_bytes, "audit record cut to fit the audit queue");
    }
    record
}

/// Bytes of prompt kept per record (all messages together).
const MESSAGES_BUDGET: usize = 256 * 1024;
/// Bytes of the answer kept per record.
const COMPLETION_BUDGET: usize = 128 * 1024;
/// Bytes of miner texts kept per record (all miners together).
const MINER_TEXTS_BUDGET: usize = 256 * 1024;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One miner's row, keeping at most `max_text` bytes of its text.
pub fn miner_row(
    m: &MinerRecord,
    settings: &AuditSettings,
    max_text: usize,
) -> MinerResponseRecord {
    let outcome = m.outcome.as_ref();
    MinerResponseRecord {
        uid: m.target.uid,
        hotkey: storable(&m.target.hotkey),
        outcome: miner_outcome(m).to_string(),
        status_code: outcome.and_then(|o| o.http_status),
        time_to_first_byte_ms: outcome.and_then(|o| o.time_to_first_byte).map(millis),
        total_ms: outcome.map(|o| millis(o.total_time)),
        chunks: outcome.map(|o| o.chunks as u32).unwrap_or(0),
        bytes: outcome
            .map(|o| o.bytes as u64)
            .unwrap_or(m.text.len() as u64),
        text: settings.content.keep_capped(&m.text, max_text),
        clean_reason: clean_reason(m),
        selected: m.selected,
    }
}

/// ok / empty / refused / error / timeout / connect_failure / cancelled.
pub fn miner_outcome(m: &MinerRecord) -> &'static str {
    match (&m.outcome, m.rejected) {
        (None, Some(cleaning::REFUSAL)) => "refused",
        (None, _) => "cancelled",
        (Some(o), rejected) => match &o.kind {
            OutcomeKind::Ok | OutcomeKind::Oversize => match rejected {
                Some(cleaning::EMPTY) => "empty",
                Some(cleaning::REFUSAL) => "refused",
                _ => "ok",
            },
            OutcomeKind::AxonError { .. } | OutcomeKind::Malformed { .. } => "error",
            OutcomeKind::Timeout { .. } => "timeout",
            OutcomeKind::ConnectFailure { .. } => "connect_failure",
        },
    }
}

fn clean_reason(m: &MinerRecord) -> Option<String> {
    let detail = m.outcome.as_ref().and_then(|o| match &o.kind {
        OutcomeKind::AxonError { status, message } => Some(format!("axon {status}: {message}")),
        OutcomeKind::Malformed { message } => Some(format!("malformed: {message}")),
        OutcomeKind::ConnectFailure { message } => Some(message.clone()),
        OutcomeKind::Oversize => Some("reply too large, truncated".into()),
        OutcomeKind::Timeout {
            before_first_byte: true,
        } => Some("no first byte in time".into()),
        OutcomeKind::Timeout { .. } | OutcomeKind::Ok => None,
    });
    let reason = match (m.rejected, detail) {
        (Some(r), Some(d)) if r != "miner error" => Some(format!("{r}; {d}")),
        (_, Some(d)) => Some(d),
        (Some(r), None) => Some(r.to_string()),
        (None, None) => None,
    };
    reason.map(|r| storable(cap(&r, 500)))
}

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
        match store.insert_audit(&records).await {
            Ok(new) => {
                metrics::histogram!("sn1_audit_insert_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("sn1_audit_records_written_total").increment(new);
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
