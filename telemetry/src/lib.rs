//! Telemetry shared by every role: logging and tracing set-up ([`init`]: a `RUST_LOG` filter,
//! default `info`; human-readable or JSON lines, `LOG_FORMAT=json` in production; an
//! OpenTelemetry layer so spans carry W3C trace ids), the trace context that travels in message
//! headers ([`trace`]), the Prometheus recorder ([`metrics_handle`]) and the `/livez` `/readyz`
//! `/metrics` endpoints ([`ops`]), OTLP export configured by the `OTEL_*` variables ([`otel`]).
//!
//! No prompt, key or secret is ever logged: fields are request ids, uids, timings and outcomes.

mod json_log;
pub mod ops;
pub mod otel;
mod redact;
pub mod trace;

pub use otel::OtelArgs;
pub use redact::redact_url;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the tracer provider alive; [`TelemetryGuard::shutdown`] flushes it last at exit.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes pending spans (bounded: a dead collector delays the exit by a few seconds at
    /// most).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = provider.shutdown_with_timeout(std::time::Duration::from_secs(5));
        }
    }
}

static CONTENT_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// At most this many bytes of prompt or answer text may go into a span (`TRACE_CONTENT_BYTES`;
/// 0, the default: none).
pub fn content_bytes() -> usize {
    CONTENT_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// `text` cut to [`content_bytes`] (on a character boundary); `None` when content is off.
pub fn span_content(text: &str) -> Option<&str> {
    let cap = content_bytes();
    if cap == 0 {
        return None;
    }
    let mut end = text.len().min(cap);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(&text[..end])
}

/// Installs the global subscriber for the role `service` (its default OpenTelemetry service
/// name). Call once, first thing in `main`.
pub fn init(service: &'static str, format: LogFormat, otel: &OtelArgs) -> TelemetryGuard {
    CONTENT_BYTES.store(
        usize::from(otel.content_bytes),
        std::sync::atomic::Ordering::Relaxed,
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (json, slot) = json_log::json_with_trace();
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(json)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (provider, export) = if otel.sdk_disabled {
        (None, Ok(None))
    } else {
        otel::provider(service, otel)
    };
    // `RUST_LOG` filters the log lines only; traces keep every span of our own crates at info
    // (a `RUST_LOG=warn` in production must not switch tracing off).
    // Every crate of this workspace is named `sn1_*` (a target matches by prefix).
    let traced =
        tracing_subscriber::filter::Targets::new().with_target("sn1_", tracing::Level::INFO);
    let layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(traced)
    });
    // Every layer has its own filter: an unfiltered one would enable every span and event of
    // every crate. The slot only needs the dispatch, so it is interested in nothing.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(slot.with_filter(tracing_subscriber::filter::Targets::new()))
        .with(layer)
        .try_init();
    match export {
        Ok(Some(url)) => {
            tracing::info!(endpoint = %redact_url(&url), service = %otel.service_name(service), "exporting traces over OTLP")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "OTLP exporter could not be built; traces are not exported")
        }
    }
    TelemetryGuard { provider }
}

static METRICS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use), whose `render()` is the
/// `/metrics` body.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
