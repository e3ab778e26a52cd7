//! OpenTelemetry end to end, across real processes: `sn1-gateway api` and `worker` (over the
//! real NATS JetStream) export to an OTLP/HTTP receiver in this test (the `opentelemetry-proto`
//! types, decoded with prost behind an axum route on a port the test owns). One `/chat` with
//! k = 3 must arrive as one trace: the api's server span, the publish span, the worker's job
//! span beneath them, and one span per miner with its uid; service names as configured; JSON
//! logs carry the trace id; the audit insert links to the job's span. With a collector that accepts connections and never answers,
//! requests still succeed, as fast.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use axum::body::Bytes;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received span, flattened.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
    error: bool,
    /// Linked spans, as (trace id, span id).
    links: Vec<(String, String)>,
}

/// An OTLP/HTTP receiver on a port of its own; stops with the test's runtime.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let sink = sink.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    sink.lock().unwrap().extend(flatten(request));
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, spans }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received (export is batched).
    async fn wait_for(&self, within: Duration, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) || start.elapsed() > within {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<Got> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let resource = attributes(&rs.resource.map(|r| r.attributes).unwrap_or_default());
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                out.push(Got {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    error: span.status.is_some_and(|s| s.code == 2),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
    out
}

fn otel_env(endpoint: &str, service: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_string()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("OTEL_SERVICE_NAME", service.into()),
        // Export every 200 ms instead of 5 s, so the test need not wait long.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ("LOG_FORMAT", "json".into()),
    ]
}

fn chat_k3() -> serde_json::Value {
    json!({"k": 3, "timeout": 15, "roles": ["user"], "messages": ["Tell me a story"]})
}

/// Whether `ancestor` is `span` or above it, following parents through `all`.
fn descends(all: &[Got], span: &Got, ancestor: &Got) -> bool {
    let by_id: HashMap<&str, &Got> = all.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut at = Some(span);
    for _ in 0..16 {
        match at {
            Some(s) if s.span_id == ancestor.span_id => return true,
            Some(s) => at = by_id.get(s.parent.as_str()).copied(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_is_one_trace_from_the_api_to_every_miner() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_fleet, mg) = simple_fleet(3, dir.path()).await;
    let db = migrated_database("otlp").await;
    let mut worker_env = otel_env(&receiver.url, "test-worker");
    worker_env.push(("DATABASE_URL", db));
    let stack = Stack::start_with(
        "otlp",
        &mg,
        1,
        1,
        &worker_env,
        &otel_env(&receiver.url, "test-api"),
    )
    .await;
    let answer = post_ndjson(&stack.api(0, "/chat/"), &stack.key, &chat_k3()).await;
    assert_eq!(answer.status, 200, "{}", stack.logs());
    check_stream_events(&answer.events);

    let spans = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            spans.iter().filter(|s| s.name == "chat miner").count() >= 3
                && spans.iter().any(|s| s.name == "POST /chat/")
                && spans.iter().any(|s| s.name == "INSERT audit")
        })
        .await;
    let names: Vec<_> = spans.iter().map(|s| (&s.service, &s.name)).collect();
    let server = spans
        .iter()
        .find(|s| s.name == "POST /chat/")
        .unwrap_or_else(|| panic!("no api server span in {names:?}\n{}", stack.logs()));
    assert_eq!(server.service, "test-api");
    assert_eq!(server.attributes["http.route"], "/chat/");
    assert_eq!(server.attributes["http.response.status_code"], "200");
    // The caller's key id, never the key.
    let key_id = &server.attributes["sn1.api_key_id"];
    assert!(key_id.starts_with("kid-"), "{key_id}");
    assert!(
        spans
            .iter()
            .all(|s| s.attributes.values().all(|v| !v.contains(&stack.key)))
    );
    assert!(!server.error);
    let trace: Vec<&Got> = spans
        .iter()
        .filter(|s| s.trace_id == server.trace_id)
        .collect();
    let publish = trace
        .iter()
        .find(|s| s.name.starts_with("publish "))
        .expect("a publish span in the trace");
    assert_eq!(publish.service, "test-api");
    assert_eq!(publish.attributes["messaging.system"], "nats");
    assert!(descends(&spans, publish, server));
    let job = trace
        .iter()
        .find(|s| s.name == "process chat")
        .unwrap_or_else(|| panic!("no worker job span in the api's trace: {names:?}"));
    assert_eq!(job.service, "test-worker");
    assert!(
        descends(&spans, job, server),
        "job span not under the api span"
    );
    assert_eq!(job.attributes["gen_ai.operation.name"], "chat");
    assert_eq!(job.attributes["sn1.job.status"], "answered");
    assert!(!job.error);
    // The audit insert is a trace of its own, linked to the job's span.
    let insert = spans
        .iter()
        .find(|s| s.name == "INSERT audit")
        .unwrap_or_else(|| panic!("no audit insert span: {names:?}"));
    assert_ne!(insert.trace_id, job.trace_id);
    assert!(
        insert
            .links
            .contains(&(job.trace_id.clone(), job.span_id.clone())),
        "{insert:?}"
    );
    let miners: Vec<&&Got> = trace.iter().filter(|s| s.name == "chat miner").collect();
    assert_eq!(miners.len(), 3, "{names:?}");
    let mut uids: Vec<String> = miners
        .iter()
        .map(|m| m.attributes["sn1.miner.uid"].clone())
        .collect();
    uids.sort();
    assert_eq!(uids, ["0", "1", "2"]);
    for m in &miners {
        assert_eq!(m.parent, job.span_id);
        assert_eq!(m.service, "test-worker");
        assert_eq!(m.attributes["server.address"], "127.0.0.1");
        assert!(m.attributes.contains_key("sn1.miner.hotkey"));
        assert!(m.attributes.contains_key("sn1.miner.outcome"));
    }
    assert_eq!(
        miners
            .iter()
            .filter(|m| m.attributes["sn1.miner.selected"] == "true")
            .count(),
        1
    );
    // No prompt text in any span (TRACE_CONTENT_BYTES is off).
    assert!(spans.iter().all(|s| {
        s.attributes
            .values()
            .all(|v| !v.contains("Tell me a story"))
    }));
    // The worker's JSON log lines of this job name its trace.
    let worker_log = stack.procs[0].log_text();
    assert!(
        worker_log
            .lines()
            .any(|l| l.contains("job done") && l.contains(&server.trace_id)),
        "no JSON log line with trace_id {}:\n{worker_log}",
        server.trace_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_slows_nothing() {
    // Accepts connections and never reads or answers: the worst collector there is.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = black_hole.accept().await {
            held.push(sock);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (_fleet, mg) = simple_fleet(3, dir.path()).await;
    let stack = Stack::start_with(
        "otlpdead",
        &mg,
        1,
        1,
        &otel_env(&url, "test-worker"),
        &otel_env(&url, "test-api"),
    )
    .await;
    let mut ttfc = Vec::new();
    for _ in 0..10 {
        let answer = post_ndjson(&stack.api(0, "/chat/"), &stack.key, &chat_k3()).await;
        assert_eq!(answer.status, 200, "{}", stack.logs());
        check_stream_events(&answer.events);
        ttfc.push(answer.first_event_at.unwrap());
    }
    ttfc.sort();
    // Simulated miners answer within ~100 ms; a blocked exporter would add its 5 s timeout.
    assert!(ttfc[5] < Duration::from_secs(1), "p50 TTFC {:?}", ttfc[5]);
}
