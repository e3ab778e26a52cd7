//! The span of one job on the worker (a messaging consumer span whose parent is the api's, via
//! the job's headers): what was asked (GenAI request attributes, never the prompt unless
//! `TRACE_CONTENT_BYTES` opts in), and how it ended (status; an error status when the client
//! got no full answer), including the answer-quality decisions: commit point, failovers and
//! the scores the miners were picked by.

use crate::job::{JobStatus, JobSummary};
use sn1_contracts::job::{ChatJob, Endpoint};
use tracing::Span;
use tracing::field::Empty;

/// The span for `job`, delivered for the `delivered`-th time.
pub(crate) fn start(job: &ChatJob, delivered: i64) -> Span {
    let operation = match job.endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Echo => "echo",
    };
    let span = tracing::info_span!(
        "job",
        otel.name = %format_args!("process {operation}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.message.id = %job.request_id,
        request_id = %job.request_id,
        endpoint = operation,
        delivered,
        gen_ai.operation.name = operation,
        gen_ai.system = "bittensor.sn1",
        gen_ai.request.k = job.params.k,
        gen_ai.request.timeout_s = job.budget().as_secs_f64(),
        gen_ai.request.strategy = ?job.params.strategy,
        gen_ai.request.sampling_mode = ?job.params.sampling_mode,
        gen_ai.request.messages = job.params.messages.len(),
        gen_ai.prompt = Empty,
        sn1.job.status = Empty,
        sn1.selected_uid = Empty,
        sn1.ttfc_ms = Empty,
        sn1.miners = Empty,
        sn1.commit_uid = Empty,
        sn1.commit_chars = Empty,
        sn1.commit_ms = Empty,
        sn1.failovers = Empty,
        sn1.picks = Empty,
    );
    if let Some(prompt) = job
        .params
        .messages
        .last()
        .and_then(|m| sn1_telemetry::span_content(m))
    {
        span.record("gen_ai.prompt", prompt);
    }
    span
}

/// Records how the job ended on its span.
pub(crate) fn finish(span: &Span, summary: &JobSummary) {
    span.record("sn1.job.status", summary.status.as_str());
    span.record("sn1.miners", summary.miners.len());
    if let Some(uid) = summary.selected_uid {
        span.record("sn1.selected_uid", uid);
    }
    if let Some(ttfc) = summary.time_to_first_chunk {
        span.record("sn1.ttfc_ms", ttfc.as_secs_f64() * 1e3);
    }
    // Answer-quality decisions (README, "Answer quality"): the commit point, each stall and
    // what became of it, the scores the miners were picked by.
    if let Some(commit) = summary.commit {
        span.record("sn1.commit_uid", commit.uid);
        span.record("sn1.commit_chars", commit.chars);
        span.record("sn1.commit_ms", commit.after.as_secs_f64() * 1e3);
    }
    if !summary.failovers.is_empty() {
        let failovers: Vec<String> = summary
            .failovers
            .iter()
            .map(|f| match f.to_uid {
                Some(to) => format!("{} -> {to}: {}", f.from_uid, f.reason),
                None => format!("{} -> none: {}", f.from_uid, f.reason),
            })
            .collect();
        span.record("sn1.failovers", failovers.join("; "));
    }
    if !summary.picks.is_empty() {
        let picks: Vec<String> = summary
            .picks
            .iter()
            .map(|p| match (p.score, p.explored) {
                (_, true) => format!("{}:explore", p.uid),
                (Some(score), false) => format!("{}:{score:.3}", p.uid),
                (None, false) => format!("{}:new", p.uid),
            })
            .collect();
        span.record("sn1.picks", picks.join(","));
    }
    let failed = matches!(
        summary.status,
        JobStatus::NoCandidates | JobStatus::Broken | JobStatus::Timeout | JobStatus::NoAnswer
    );
    if failed {
        span.record("otel.status_code", "ERROR");
    }
}
