//! A simulated SN1 miner: an axum HTTP server that speaks the real axon protocol over a real
//! socket, for tests, the simulated subnet and benchmarks.
//!
//! Entry point: [`SimMiner::spawn`] with a [`SimMinerConfig`], giving a [`SimMinerHandle`].
//! * `/StreamPromptingSynapse` (GET and POST, as the real axon registers both) is checked by
//!   [`sn1_bittensor::verify::AxonVerifier`] with the miner's own hotkey, its blacklist and its
//!   [`Clock`]; refusals carry the real status, `{"message": ...}` body and
//!   `bt_header_axon_status_*` headers. Accepted requests get 200, `text/event-stream`, the
//!   echoed synapse headers and the reply as raw chunked text.
//! * `/Synapse` (the axon's ping) answers its JSON; any other path gets the axon's 404.
//! * `/v1/chat/completions` is an Epistula miner (or a plain OpenAI server, or absent:
//!   [`ChatMode`]) answering SSE chat.completion.chunk events.
//!
//! The reply follows a [`ReplyScript`] unless a [`Misbehaviour`] is set. Every call is recorded
//! ([`CallRecord`]), including when its reply body ended or was dropped by the client.

mod chat;
mod config;
mod record;
mod routes;
mod script;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sn1_bittensor::dendrite::MinerTarget;
use sn1_bittensor::verify::AxonVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{
    Blacklist, BlacklistRule, ChatMode, Clock, Misbehaviour, REFUSAL_TEXT, ReplyScript,
    SimMinerConfig, WHITESPACE_TEXT, default_answer, fleet_answer, sim_hotkey,
};
pub use record::{CallLog, CallProtocol, CallRecord};
pub use script::{byte_flood, continuation};

/// A simulated miner could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimMinerError {
    /// The listening socket could not be opened.
    #[error("simulated miner could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Starts simulated miners.
#[derive(Debug)]
pub struct SimMiner;

/// How long [`SimMinerHandle::shutdown`] waits for the server to drain before aborting it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl SimMiner {
    /// Binds `config.bind` and serves until [`SimMinerHandle::shutdown`] (or the handle is
    /// dropped). Needs a running tokio runtime.
    pub async fn spawn(config: SimMinerConfig) -> Result<SimMinerHandle, SimMinerError> {
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| SimMinerError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimMinerError::Bind {
                addr: config.bind,
                source,
            })?;
        let hotkey_ss58 = config.hotkey.ss58().to_owned();
        let mut verifier = AxonVerifier::new(hotkey_ss58.clone());
        if config.require_task_name {
            verifier = verifier.requiring_task_name();
        }
        let cancel = CancellationToken::new();
        let shared = Arc::new(routes::Shared {
            uid: config.uid,
            hotkey_ss58: hotkey_ss58.clone(),
            verifier,
            reply: config.reply,
            blacklist: config.blacklist,
            chat: config.chat,
            misbehaviour: RwLock::new(config.misbehaviour),
            clock: RwLock::new(config.clock),
            log: Arc::new(CallLog::new(config.max_records)),
            cancel: cancel.clone(),
            axon_uuid: routes::uuid_v4_text(),
        });
        let router = axum::Router::new()
            .fallback(routes::handle)
            .with_state(shared.clone());
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            // Like uvicorn (asyncio sets TCP_NODELAY): chunks go out as they are written.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::warn!(error = %err, "simulated miner stopped with an error");
            }
        });
        tracing::debug!(uid = config.uid, %addr, hotkey = %hotkey_ss58, "simulated miner listening");
        Ok(SimMinerHandle {
            addr,
            uid: config.uid,
            hotkey_ss58,
            shared,
            task: Some(task),
        })
    }
}

/// A running simulated miner. Dropping it stops the server (without waiting).
#[derive(Debug)]
pub struct SimMinerHandle {
    addr: SocketAddr,
    uid: u16,
    hotkey_ss58: String,
    shared: Arc<routes::Shared>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for routes::Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl SimMinerHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its uid.
    pub fn uid(&self) -> u16 {
        self.uid
    }

    /// Its hotkey, SS58.
    pub fn hotkey_ss58(&self) -> &str {
        &self.hotkey_ss58
    }

    /// The [`MinerTarget`] a dendrite needs to query it.
    pub fn target(&self) -> MinerTarget {
        MinerTarget {
            uid: self.uid,
            ip: self.addr.ip().to_string(),
            port: self.addr.port(),
            hotkey: self.hotkey_ss58.clone(),
        }
    }

    /// A copy of the calls received (the last `max_records`), oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.log.snapshot()
    }

    /// Reply bodies currently being streamed.
    pub fn open_streams(&self) -> usize {
        self.shared.log.open_streams()
    }

    /// Changes the misbehaviour for the requests that come next.
    pub fn set_misbehaviour(&self, misbehaviour: Option<Misbehaviour>) {
        *self
            .shared
            .misbehaviour
            .write()
            .unwrap_or_else(|e| e.into_inner()) = misbehaviour;
    }

    /// Changes the clock for the requests that come next.
    pub fn set_clock(&self, clock: Clock) {
        *self.shared.clock.write().unwrap_or_else(|e| e.into_inner()) = clock;
    }

    /// Stops accepting, ends the open reply bodies (the clients see a broken stream) and waits
    /// for the server to finish (at most 5 s, then it is aborted).
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SimMinerHandle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
