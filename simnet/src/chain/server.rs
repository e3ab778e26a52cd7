//! Serving the fake chain: JSON-RPC over HTTP POST and WebSocket on one address (path `/`),
//! and the handle that stops it, closing every open session (the chain "goes away").

use super::FakeChain;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

impl FakeChain {
    /// The axum router: `GET /` upgrades to WebSocket, `POST /` answers one JSON-RPC body.
    pub fn router(&self, stop: CancellationToken) -> Router {
        Router::new()
            .route("/", get(ws_upgrade).post(http_call))
            .with_state((self.clone(), stop))
    }

    /// Listens on `addr` (port 0: chosen by the OS) and serves until the handle is stopped or
    /// dropped.
    pub async fn start(&self, addr: SocketAddr) -> std::io::Result<FakeChainServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let app = self.router(stop.clone());
        let until = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "fake chain stopped");
            }
        });
        Ok(FakeChainServer {
            addr,
            stop,
            chain: self.clone(),
        })
    }
}

async fn http_call(
    State((chain, _)): State<(FakeChain, CancellationToken)>,
    body: String,
) -> String {
    chain.handle_text(&body).unwrap_or_default()
}

async fn ws_upgrade(
    State((chain, stop)): State<(FakeChain, CancellationToken)>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.max_message_size(1 << 20)
        .on_upgrade(move |socket| ws_session(socket, chain, stop))
}

async fn ws_session(mut socket: WebSocket, chain: FakeChain, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            m = socket.recv() => m,
        };
        let text = match message {
            Some(Ok(Message::Text(t))) => t.as_str().to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
        };
        if let Some(reply) = chain.handle_text(&text)
            && socket.send(Message::Text(reply.into())).await.is_err()
        {
            break;
        }
    }
}

/// A running fake chain; stops (closing every connection) when stopped or dropped.
pub struct FakeChainServer {
    addr: SocketAddr,
    stop: CancellationToken,
    chain: FakeChain,
}

impl FakeChainServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://host:port`, what the syncer's `--subtensor.network` takes.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://host:port` for JSON-RPC over HTTP POST.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The chain it serves (change answers, head, failures while it runs).
    pub fn chain(&self) -> &FakeChain {
        &self.chain
    }

    /// Stops listening and closes the open WebSocket sessions (the chain "goes away").
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for FakeChainServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
