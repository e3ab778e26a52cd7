//! W3C trace context (`traceparent`, `tracestate`) carried in NATS message headers, so one trace
//! shows api → queue → worker → each miner call.
//!
//! [`inject`] writes the current span's context into headers; [`extract`] reads it back and
//! [`attach_parent`] makes it the parent of a span on the receiving side.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the context of `span` into `headers`.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// Reads a trace context from `headers` (an empty context when there is none).
pub fn extract(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(h) => TraceContextPropagator::new().extract(&HeaderExtractor(h)),
        None => opentelemetry::Context::new(),
    }
}

/// Makes the context found in `headers` the parent of `span`.
pub fn attach_parent(span: &tracing::Span, headers: Option<&HeaderMap>) {
    // Fails only when the span is disabled (no subscriber): nothing to link then.
    let _ = span.set_parent(extract(headers));
}

/// The `traceparent` value in `headers`, if any (for tests and logs).
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers.get("traceparent").map(|v| v.as_str().to_string())
}
