//! The mock OpenAI backend of the peer benchmark: `POST /v1/chat/completions` answers SSE
//! `chat.completion.chunk` events, the first after `first`, then one every `gap`, then the
//! `finish_reason: "stop"` chunk and `data: [DONE]`. The chunk count can change between rounds.
//!
//! It listens on several ports (one per mock miner of the metagraph) and runs on a runtime of
//! its own (one thread), so the load client's tasks do not delay its chunks.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// What one answer of `chunks` chunks says, all chunks' text together.
pub fn expected_text(chunks: usize) -> String {
    (0..chunks).map(chunk_text).collect()
}

fn chunk_text(i: usize) -> String {
    format!("w{i} ")
}

struct Script {
    first: Duration,
    gap: Duration,
    /// The chunk events, then the final events.
    events: RwLock<Arc<Vec<Bytes>>>,
}

impl Script {
    fn events_for(chunks: usize) -> Arc<Vec<Bytes>> {
        let id = "chatcmpl-mock";
        let mut events: Vec<Bytes> = (0..chunks)
            .map(|i| sn1_bittensor::sse::chunk_event(id, 0, "mock", &chunk_text(i)).into())
            .collect();
        events.push(sn1_bittensor::sse::final_events(id, 0, "mock").into());
        Arc::new(events)
    }
}

/// The running mock; its runtime thread lives as long as the process.
pub struct Mock {
    /// One port per mock miner; the first is the one called directly.
    pub ports: Vec<u16>,
    script: Arc<Script>,
}

impl Mock {
    /// Listens on `ports` fresh loopback ports.
    pub fn start(ports: usize, first: Duration, gap: Duration, chunks: usize) -> Mock {
        let script = Arc::new(Script {
            first,
            gap,
            events: RwLock::new(Script::events_for(chunks)),
        });
        let listeners: Vec<std::net::TcpListener> = (0..ports)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("mock port"))
            .collect();
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state(script.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("mock runtime");
            runtime.block_on(async move {
                let servers = listeners.into_iter().map(|l| {
                    l.set_nonblocking(true).expect("nonblocking");
                    let l = tokio::net::TcpListener::from_std(l).expect("listener");
                    axum::serve(l, app.clone()).into_future()
                });
                futures::future::join_all(servers).await;
            });
        });
        Mock { ports, script }
    }

    /// `http://127.0.0.1:<first port>/v1` (an OpenAI `api_base`).
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.ports[0])
    }

    /// From now on, answers have `chunks` chunks.
    pub fn set_chunks(&self, chunks: usize) {
        *self.script.events.write().expect("lock") = Script::events_for(chunks);
    }
}

async fn completions(State(script): State<Arc<Script>>, body: Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !request["messages"].is_array() || request["stream"] != true {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::from("expected a streamed chat completion request"))
            .expect("response");
    }
    let events = script.events.read().expect("lock").clone();
    let (first, gap) = (script.first, script.gap);
    let start = Instant::now();
    let stream = futures::stream::unfold(0usize, move |i| {
        let events = events.clone();
        async move {
            let event = events.get(i)?.clone();
            // The final events follow the last chunk at once.
            if i + 1 < events.len() {
                tokio::time::sleep_until(start + first + gap * i as u32).await;
            }
            Some((Ok::<_, std::convert::Infallible>(event), i + 1))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("response")
}
