//! Telemetry shared by every role: logging and tracing set-up ([`init`]: a `RUST_LOG` filter,
//! default `info`; human-readable or JSON lines, `LOG_FORMAT=json` in production; an
//! OpenTelemetry layer so spans carry W3C trace ids), the trace context that travels in message
//! headers ([`trace`]), the Prometheus recorder ([`metrics_handle`]) and the `/livez` `/readyz`
//! `/metrics` endpoints ([`ops`]).
//!
//! No prompt, key or secret is ever logged: fields are request ids, uids, timings and outcomes.

pub mod ops;
mod redact;
pub mod trace;

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
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Flushes pending spans.
    pub fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &'static str, format: LogFormat) -> TelemetryGuard {
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
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
