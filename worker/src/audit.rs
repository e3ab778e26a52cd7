//! The worker's side of the audit log: turning a finished job into a [`CompletionRecord`]
//! (content policy applied here, before the record leaves the process; cut to fit the bus) and
//! the audit writer ([`run_writer`], in `audit/writer.rs`).

use crate::cleaning;
use crate::fanout::MinerRecord;
use crate::job::JobSummary;
use sn1_bittensor::reply::OutcomeKind;
use sn1_contracts::audit::{
    CompletionRecord, ContentPolicy, MinerQuality, MinerResponseRecord, QualityRecord, cap,
    kept_exclusions, storable,
};
use sn1_contracts::job::ChatJob;
use std::time::Duration;

mod writer;

pub use writer::{WriterConfig, run_writer};

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
            .zip(crate::reliability::verdicts(
                &summary.miners,
                job.params.messages.last().map(String::as_str).unwrap_or(""),
            ))
            .map(|(m, verdict)| {
                let mut row = miner_row(m, settings, per_miner);
                row.quality = MinerQuality {
                    axon: Some(format!("{}:{}", m.target.ip, m.target.port)),
                    verdict: Some(verdict.as_str().to_owned()),
                    continuation: m.continuation,
                };
                row
            })
            .collect(),
        traceparent: sn1_telemetry::trace::current_traceparent(),
        quality: quality_record(summary),
    };
    if record.fit(max_bytes) {
        metrics::counter!("sn1_worker_audit_records_cut_total").increment(1);
        tracing::warn!(request_id = %job.request_id, max_bytes, "audit record cut to fit the audit queue");
    }
    record
}

/// The answer-quality decisions of `summary`, as the audit log keeps them.
fn quality_record(summary: &JobSummary) -> QualityRecord {
    let json = |v: serde_json::Value| {
        if v == serde_json::json!([]) {
            serde_json::Value::Null
        } else {
            v
        }
    };
    QualityRecord {
        selection: json(serde_json::json!(summary.picks)),
        commit_uid: summary.commit.map(|c| c.uid),
        commit_chars: summary
            .commit
            .map(|c| c.chars.min(u32::MAX as usize) as u32),
        commit_ms: summary.commit.map(|c| millis(c.after)),
        failovers: json(serde_json::Value::Array(
            summary
                .failovers
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "from_uid": f.from_uid,
                        "to_uid": f.to_uid,
                        "reason": storable(cap(&f.reason, 300)),
                        "at_chars": f.at_chars,
                        "gap_ms": (millis(f.gap) * 10.0).round() / 10.0,
                    })
                })
                .collect(),
        )),
    }
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
        quality: MinerQuality::default(),
    }
}

/// ok / empty / refused / error / timeout / connect_failure / cancelled.
pub fn miner_outcome(m: &MinerRecord) -> &'static str {
    match (&m.outcome, m.rejected) {
        (None, Some(cleaning::REFUSAL)) => "refused",
        (None, Some(crate::reliability::CUT_OFF)) => "timeout",
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
