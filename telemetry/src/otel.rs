//! OpenTelemetry export, configured by the standard `OTEL_*` variables only (each also a flag,
//! for tests and `--help`): [`OtelArgs`] is the typed configuration, [`provider`] builds the
//! tracer provider from it.
//!
//! No endpoint = no tracing: no provider and no OpenTelemetry layer, so no span ids, no
//! `traceparent` on jobs and no `trace_id` in logs (at 64 streams, spans made only to be dropped
//! cost about a fifth of the api's and worker's CPU). With an endpoint, finished spans go to a batch
//! processor with a bounded queue, exported over OTLP HTTP/protobuf from the processor's own
//! thread: a slow or dead collector costs dropped spans, never a slower request.

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use std::collections::HashMap;
use std::time::Duration;

/// Spans waiting for export at most; beyond, new spans are dropped (and counted by the SDK).
/// 2048 is the specification's default: about 100 requests' spans at k = 16.
pub const MAX_QUEUE: usize = 2048;

/// The most prompt or answer text a span may carry when `TRACE_CONTENT_BYTES` opts in.
pub const MAX_CONTENT_BYTES: u16 = 4096;

/// OpenTelemetry settings: the standard variables (see the README's "Operations").
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "OpenTelemetry (standard OTEL_* variables)")]
pub struct OtelArgs {
    /// `true` turns OpenTelemetry off: no spans, no trace context sent on.
    #[arg(long = "otel-sdk-disabled", env = "OTEL_SDK_DISABLED", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub sdk_disabled: bool,
    /// Collector base URL (`/v1/traces` is appended), e.g. http://otel-collector:4318.
    /// Unset (and no traces endpoint): nothing is exported.
    #[arg(long = "otel-exporter-otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT",
          hide_env_values = true, value_parser = parse_url)]
    pub endpoint: Option<String>,
    /// Full URL for traces (used as is; overrides the base URL).
    #[arg(long = "otel-exporter-otlp-traces-endpoint", env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
          hide_env_values = true, value_parser = parse_url)]
    pub traces_endpoint: Option<String>,
    /// `http/protobuf` (the only protocol built in; a collector's port 4318).
    #[arg(long = "otel-exporter-otlp-protocol", env = "OTEL_EXPORTER_OTLP_PROTOCOL",
          default_value = "http/protobuf", value_parser = parse_protocol)]
    pub protocol: String,
    /// Headers sent to the collector, `key=value,key2=value2` (e.g. an API key).
    #[arg(long = "otel-exporter-otlp-headers", env = "OTEL_EXPORTER_OTLP_HEADERS",
          hide_env_values = true, value_parser = parse_pairs)]
    pub headers: Option<Pairs>,
    /// Service name (default: the role's, `sn1-api`, `sn1-worker`, …).
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// Resource attributes, `key=value,…` (e.g. `deployment.environment=prod`).
    #[arg(long = "otel-resource-attributes", env = "OTEL_RESOURCE_ATTRIBUTES", value_parser = parse_pairs)]
    pub resource_attributes: Option<Pairs>,
    /// `parentbased_always_on` (default), `parentbased_traceidratio`, `parentbased_always_off`,
    /// `always_on`, `always_off`, `traceidratio`.
    #[arg(long = "otel-traces-sampler", env = "OTEL_TRACES_SAMPLER",
          default_value = "parentbased_always_on", value_parser = parse_sampler)]
    pub sampler: String,
    /// The ratio of the `*traceidratio` samplers, 0 to 1 (default 1).
    #[arg(long = "otel-traces-sampler-arg", env = "OTEL_TRACES_SAMPLER_ARG", value_parser = parse_ratio)]
    pub sampler_arg: Option<f64>,
    /// Bytes of prompt and answer text put in spans (0, the default: none; at most 4096).
    #[arg(long = "trace-content-bytes", env = "TRACE_CONTENT_BYTES", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=MAX_CONTENT_BYTES as i64))]
    pub content_bytes: u16,
}

/// `key=value` pairs (values percent-decoded); `Debug` shows the keys only (headers may hold
/// credentials).
#[derive(Clone, Default)]
pub struct Pairs(pub Vec<(String, String)>);

impl std::fmt::Debug for Pairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

fn parse_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("http://") {
        Ok(text.to_string())
    } else if text.starts_with("https://") {
        // The exporter's HTTP client is built without TLS (the default build stays lean).
        Err("https is not built in: export to a collector (or agent) over http://".into())
    } else {
        Err("must be an http:// URL".into())
    }
}

fn parse_protocol(text: &str) -> Result<String, String> {
    match text.trim() {
        "http/protobuf" => Ok("http/protobuf".into()),
        "grpc" | "http/json" => Err(format!(
            "{text} is not built in: use http/protobuf (the collector's port 4318)"
        )),
        _ => Err("must be http/protobuf".into()),
    }
}

fn parse_sampler(text: &str) -> Result<String, String> {
    const KNOWN: [&str; 6] = [
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ];
    let text = text.trim();
    KNOWN
        .contains(&text)
        .then(|| text.to_string())
        .ok_or_else(|| format!("must be one of {}", KNOWN.join(", ")))
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err("must be a number from 0 to 1".into()),
    }
}

fn parse_pairs(text: &str) -> Result<Pairs, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| "must be key=value pairs separated by commas".to_string())?;
        out.push((percent_decode(k.trim()), percent_decode(v.trim())));
    }
    Ok(Pairs(out))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl OtelArgs {
    /// Where traces go: the traces endpoint as is, or the base URL + `/v1/traces`; `None`
    /// when export is off.
    pub fn traces_url(&self) -> Option<String> {
        if self.sdk_disabled {
            return None;
        }
        self.traces_endpoint.clone().or_else(|| {
            self.endpoint
                .as_ref()
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
    }

    /// The service name: `OTEL_SERVICE_NAME`, else `service.name` in the resource attributes,
    /// else `default`.
    pub fn service_name(&self, default: &str) -> String {
        let from_attributes = self.resource_attributes.as_ref().and_then(|p| {
            p.0.iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        });
        self.service_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or(from_attributes)
            .unwrap_or_else(|| default.to_string())
    }

    fn sampler(&self) -> Sampler {
        let ratio = self.sampler_arg.unwrap_or(1.0);
        let root = match self.sampler.as_str() {
            "always_off" | "parentbased_always_off" => Sampler::AlwaysOff,
            "traceidratio" | "parentbased_traceidratio" => Sampler::TraceIdRatioBased(ratio),
            _ => Sampler::AlwaysOn,
        };
        if self.sampler.starts_with("parentbased_") {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }

    fn resource(&self, default_service: &str) -> Resource {
        let mut attributes: Vec<KeyValue> = self
            .resource_attributes
            .iter()
            .flat_map(|p| p.0.iter())
            .filter(|(k, _)| k != "service.name")
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        attributes.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        Resource::builder_empty()
            .with_service_name(self.service_name(default_service))
            .with_attributes(attributes)
            .build()
    }
}

/// The tracer provider for `service` (the role's default name): with a batch exporter when an
/// endpoint is set. An exporter that cannot be built is reported in the error and left out;
/// the provider is still returned.
pub fn provider(
    service: &str,
    args: &OtelArgs,
) -> (Option<SdkTracerProvider>, Result<Option<String>, String>) {
    // No endpoint, no tracing at all: spans would be built only to be dropped, and at 64
    // streams that cost a fifth of the api's and worker's CPU (measured).
    let Some(url) = args.traces_url() else {
        return (None, Ok(None));
    };
    let builder = SdkTracerProvider::builder()
        .with_sampler(args.sampler())
        .with_resource(args.resource(service));
    let headers: HashMap<String, String> = args
        .headers
        .iter()
        .flat_map(|p| p.0.iter().cloned())
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .with_headers(headers)
        .with_timeout(EXPORT_TIMEOUT)
        .build();
    match exporter {
        Ok(exporter) => {
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUE)
                .build();
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build();
            (
                Some(builder.with_span_processor(processor).build()),
                Ok(Some(url)),
            )
        }
        Err(e) => (None, Err(e.to_string())),
    }
}

/// One export call at most (a dead collector holds the exporter thread no longer; spans that
/// arrive meanwhile wait in the bounded queue or are dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        otel: OtelArgs,
    }

    fn parse(args: &[&str]) -> Result<OtelArgs, clap::Error> {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.otel)
    }

    #[test]
    fn endpoints_service_names_and_bad_values() {
        let none = parse(&[]).unwrap();
        assert_eq!(none.traces_url(), None);
        assert_eq!(none.service_name("sn1-api"), "sn1-api");
        let base = parse(&["--otel-exporter-otlp-endpoint", "http://c:4318/"]).unwrap();
        assert_eq!(
            base.traces_url().as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let full = parse(&[
            "--otel-exporter-otlp-endpoint",
            "http://c:4318",
            "--otel-exporter-otlp-traces-endpoint",
            "http://t:1/x",
            "--otel-resource-attributes",
            "service.name=from-attr,deployment.environment=prod%2C1",
        ])
        .unwrap();
        assert_eq!(full.traces_url().as_deref(), Some("http://t:1/x"));
        assert_eq!(full.service_name("sn1-api"), "from-attr");
        let pairs = full.resource_attributes.unwrap().0;
        assert_eq!(pairs[1].1, "prod,1");
        let off = parse(&[
            "--otel-exporter-otlp-endpoint",
            "http://c",
            "--otel-sdk-disabled",
            "TRUE",
        ])
        .unwrap();
        assert_eq!(off.traces_url(), None);
        for bad in [
            &["--otel-exporter-otlp-protocol", "grpc"][..],
            &["--otel-traces-sampler", "xray"],
            &["--otel-traces-sampler-arg", "1.5"],
            &["--otel-exporter-otlp-endpoint", "collector:4318"],
            &["--otel-exporter-otlp-endpoint", "https://collector:4318"],
            &["--trace-content-bytes", "5000"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let headers = parse(&["--otel-exporter-otlp-headers", "x-api-key=secret"]).unwrap();
        assert!(!format!("{headers:?}").contains("secret"));
    }
}
