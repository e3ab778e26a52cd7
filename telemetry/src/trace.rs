//! W3C trace context (`traceparent`, `tracestate`) carried in message headers (any carrier
//! that implements OpenTelemetry's `Injector` / `Extractor`, such as the bus's headers), so one
//! trace shows api → queue → worker → each miner call.
//!
//! [`inject`] writes the current span's context into headers; [`extract`] reads it back and
//! [`attach_parent`] makes it the parent of a span on the receiving side.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the context of `span` into `headers`.
pub fn inject(span: &tracing::Span, headers: &mut dyn Injector) {
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, headers);
}

/// Reads a trace context from `headers` (an empty context when there is none).
pub fn extract(headers: &dyn Extractor) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(headers)
}

/// Makes the context found in `headers` the parent of `span`.
pub fn attach_parent(span: &tracing::Span, headers: &dyn Extractor) {
    // Fails only when the span is disabled (no subscriber): nothing to link then.
    let _ = span.set_parent(extract(headers));
}

/// The `traceparent` of the current span (to store with a record that is processed later,
/// outside the request's trace).
pub fn current_traceparent() -> Option<String> {
    let mut headers = std::collections::HashMap::<String, String>::new();
    inject(&tracing::Span::current(), &mut headers);
    headers.remove("traceparent")
}

/// Links `span` to the span named by `traceparent` (a batch that serves many requests links
/// to each instead of having one parent).
pub fn add_link(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::TraceContextExt;
    let headers =
        std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = extract(&headers);
    let linked = cx.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// The `traceparent` value in `headers`, if any (for tests and logs).
pub fn traceparent(headers: &dyn Extractor) -> Option<String> {
    headers.get("traceparent").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use std::collections::HashMap;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn traceparent_travels_through_headers() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let api_span = tracing::info_span!("request");
            let mut headers: HashMap<String, String> = HashMap::new();
            inject(&api_span, &mut headers);
            let value = traceparent(&headers).expect("a traceparent header");
            let parts: Vec<&str> = value.split('-').collect();
            assert_eq!(parts.len(), 4, "{value}");
            assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16));
            let sent = api_span.context().span().span_context().trace_id();
            assert_eq!(parts[1], sent.to_string());

            // The worker's span continues the api's trace.
            let worker_span = tracing::info_span!("job");
            attach_parent(&worker_span, &headers);
            let received = worker_span.context().span().span_context().trace_id();
            assert_eq!(received, sent);
            // No headers: a new trace.
            let lonely = tracing::info_span!("job");
            attach_parent(&lonely, &HashMap::<String, String>::new());
            assert_ne!(lonely.context().span().span_context().trace_id(), sent);
        });
    }
}
