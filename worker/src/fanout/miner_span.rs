//! One span per miner query (a client span under the job's): who was asked (`sn1.miner.uid`,
//! `sn1.miner.hotkey`, `server.address`, `server.port`), GenAI attributes, and, once the
//! fan-out is over, how the reply went: outcome class, HTTP status, time to first byte, bytes,
//! chunks, whether it was selected. A failed reply sets an error status; a miner dropped
//! because another won does not. No reply text unless `TRACE_CONTENT_BYTES` opts in.

use super::MinerRecord;
use sn1_bittensor::dendrite::{MinerProtocol, MinerTarget};
use tracing::Span;
use tracing::field::Empty;

/// Opens the span of the query to `target` (under the current span: the job's).
pub(super) fn start(target: &MinerTarget, protocol: &MinerProtocol) -> Span {
    tracing::info_span!(
        "miner query",
        otel.name = "chat miner",
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.system = "bittensor.sn1",
        gen_ai.completion = Empty,
        sn1.miner.uid = target.uid,
        sn1.miner.hotkey = %target.hotkey,
        sn1.miner.protocol = ?protocol,
        server.address = %target.ip,
        server.port = target.port,
        sn1.miner.outcome = Empty,
        sn1.miner.rejected = Empty,
        sn1.miner.selected = Empty,
        sn1.miner.ttfb_ms = Empty,
        sn1.miner.total_ms = Empty,
        sn1.miner.bytes = Empty,
        sn1.miner.chunks = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Records how the query of `record` went on its `span`.
pub(super) fn finish(span: &Span, record: &MinerRecord) {
    let outcome = crate::audit::miner_outcome(record);
    span.record("sn1.miner.outcome", outcome);
    span.record("sn1.miner.selected", record.selected);
    if let Some(reason) = record.rejected {
        span.record("sn1.miner.rejected", reason);
    }
    if let Some(o) = &record.outcome {
        if let Some(status) = o.http_status {
            span.record("http.response.status_code", status);
        }
        if let Some(ttfb) = o.time_to_first_byte {
            span.record("sn1.miner.ttfb_ms", ttfb.as_secs_f64() * 1e3);
        }
        span.record("sn1.miner.total_ms", o.total_time.as_secs_f64() * 1e3);
        span.record("sn1.miner.bytes", o.bytes);
        span.record("sn1.miner.chunks", o.chunks);
    }
    if matches!(outcome, "error" | "timeout" | "connect_failure") {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", outcome);
    }
    if let Some(text) = sn1_telemetry::span_content(&record.text) {
        span.record("gen_ai.completion", text);
    }
}
