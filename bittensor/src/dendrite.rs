//! The client side: sending one prompt to one miner and reading its streamed reply.
//!
//! Entry points: [`Dendrite::new`] (one per process: it holds the hotkey, the connection pool,
//! the per-process uuid and the nonce clock) and [`Dendrite::query`], which returns a
//! [`MinerReply`] at once; the request is sent when the reply is first polled. A query runs
//! until its [`Deadline`]; the miner is told the time left then as its timeout.
//!
//! Three miner protocols ([`MinerProtocol`]):
//! * `Synapse` — bittensor's `POST /StreamPromptingSynapse` with the signed `bt_header_*`
//!   headers of [`crate::synapse::build_request`]; the reply is raw UTF-8 text in HTTP chunks
//!   (docs/protocol.md §2, §8).
//! * `Epistula` — `POST /v1/chat/completions` (OpenAI body, `stream: true`) with the signed
//!   `Epistula-*` headers; the reply is SSE (§6.2, §6.3).
//! * `OpenAi` — the same request without the Epistula headers.
//!
//! Deviations from bittensor's dendrite, on purpose:
//! * an IPv6 axon address is put in brackets in the URL (bittensor pastes it in as is, which
//!   makes an invalid URL);
//! * the axon ip is used as is, even when it equals our external ip (bittensor then connects to
//!   `0.0.0.0`, i.e. its own host; behind NAT or in a pod that is not the miner's host);
//! * redirects are not followed and no proxy is used.

mod lanes;
mod miner_reply;
use miner_reply::SendError;
mod request;

pub use lanes::MAX_LANES;

use std::sync::Arc;
use std::time::Duration;

use crate::keys::Hotkey;
use crate::nonce::NonceClock;
use crate::synapse::SynapseShape;

pub use crate::deadline::Deadline;
pub use crate::reply::{Outcome, OutcomeKind, ReplyLimits};
pub use miner_reply::MinerReply;
pub use request::{CHAT_PATH, axon_url};

/// Which protocol a miner speaks.
#[derive(Clone, Debug, PartialEq)]
pub enum MinerProtocol {
    /// bittensor `StreamPromptingSynapse`, in one of SN1's shapes.
    Synapse(SynapseShape),
    /// SN1's Epistula-signed OpenAI chat completions (SSE).
    Epistula,
    /// A plain OpenAI-compatible chat completions endpoint (SSE), no signature.
    OpenAi,
}

/// The miner to query, as the metagraph lists it.
#[derive(Clone, Debug)]
pub struct MinerTarget {
    /// The miner's uid on the subnet (for the caller's bookkeeping; not sent).
    pub uid: u16,
    /// The axon ip (IPv4 or IPv6, no brackets).
    pub ip: String,
    /// The axon port.
    pub port: u16,
    /// The miner's hotkey, SS58 (signed into both protocols).
    pub hotkey: String,
}

/// What to ask. By when is the query's [`Deadline`], told to the miner as its timeout.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// One role per message (`user`, `system`, `assistant`); missing roles count as `user`.
    pub roles: Vec<String>,
    /// The messages, oldest first.
    pub messages: Vec<String>,
    /// Sampling seed forwarded to the miner (v2.12 synapse shape via its own `seed`, Epistula body).
    pub seed: Option<u64>,
    /// Sampling parameters, sent in OpenAI and Epistula bodies (the synapse shapes have no
    /// field for them). Empty: nothing is added to the body.
    pub sampling: Sampling,
}

/// Sampling parameters of an OpenAI chat completions body; absent ones are not sent.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Sampling {
    /// `temperature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `top_p`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// `max_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// `stop`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

/// How to build a [`Dendrite`].
#[derive(Clone, Debug)]
pub struct DendriteConfig {
    /// The ip sent as `bt_header_dendrite_ip`. Never looked up online; default `127.0.0.1`.
    pub external_ip: String,
    /// Longest wait for a TCP connection to an axon.
    pub connect_timeout: Duration,
}

impl Default for DendriteConfig {
    /// `127.0.0.1` and a 5 s connect timeout (what SN1's validator gave its miner clients).
    fn default() -> Self {
        DendriteConfig {
            external_ip: "127.0.0.1".to_owned(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Dendrite`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DendriteError {
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// Idle keep-alive connections kept per axon: a worker queries each miner a few times at once
/// at most; 1000 miners × 4 stays far below file-descriptor limits.
const POOL_IDLE_PER_HOST: usize = 4;
/// How long an idle connection to an axon is kept (uvicorn closes idle ones after 5 s anyway).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The client that queries miners. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Dendrite {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    hotkey: Hotkey,
    uuid: String,
    /// Shared by every `Inner` that carries the same uuid: nonces must rise per (hotkey, uuid).
    nonces: Arc<NonceClock>,
    /// Per-axon uuid lanes, so concurrent queries to one axon never race its replay check.
    lanes: Arc<lanes::Lanes>,
    external_ip: String,
    model: Option<String>,
}

impl std::fmt::Debug for Dendrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dendrite")
            .field("hotkey", &self.inner.hotkey.ss58())
            .field("uuid", &self.inner.uuid)
            .field("external_ip", &self.inner.external_ip)
            .finish()
    }
}

impl Dendrite {
    /// A dendrite signing with `hotkey`. Makes one uuid v1 for its lifetime (bittensor makes one
    /// per Dendrite object), with a random node id that has the multicast bit set (RFC 4122
    /// §4.5, as Python's `uuid.getnode()` fallback does).
    pub fn new(hotkey: Hotkey, config: DendriteConfig) -> Result<Dendrite, DendriteError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DendriteError::Client(e.to_string()))?;
        let mut node_id: [u8; 6] = rand::random();
        node_id[0] |= 0x01;
        let uuid = uuid::Uuid::now_v1(&node_id).to_string();
        let lanes = Arc::new(lanes::Lanes::new(uuid.clone(), &node_id));
        Ok(Dendrite {
            inner: Arc::new(Inner {
                client,
                hotkey,
                uuid,
                nonces: Arc::new(NonceClock::new()),
                lanes,
                external_ip: config.external_ip,
                model: None,
            }),
        })
    }

    /// Sets the `model` sent in OpenAI/Epistula bodies (default `null`, as SN1's validator
    /// sent). Call before cloning: clones made earlier keep the old value.
    pub fn with_model(mut self, model: Option<String>) -> Dendrite {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.model = model,
            None => {
                let inner = &self.inner;
                self.inner = Arc::new(Inner {
                    client: inner.client.clone(),
                    hotkey: inner.hotkey.clone(),
                    uuid: inner.uuid.clone(),
                    nonces: inner.nonces.clone(),
                    lanes: inner.lanes.clone(),
                    external_ip: inner.external_ip.clone(),
                    model,
                });
            }
        }
        self
    }

    /// The dendrite's hotkey, SS58.
    pub fn hotkey_ss58(&self) -> &str {
        self.inner.hotkey.ss58()
    }

    /// The uuid sent as `bt_header_dendrite_uuid` on synapse requests (the first lane's; see
    /// [`MAX_LANES`] for concurrent queries to one axon).
    pub fn uuid(&self) -> &str {
        &self.inner.uuid
    }

    /// Starts a query, sent when the returned [`MinerReply`] is first polled. The reply ends at
    /// `deadline` at the latest; the first-byte wait of `limits` runs from now. The miner is
    /// told the time left until `deadline` when its request is built. A synapse request is
    /// signed when it gets its lane (its nonce is taken then), so nonces reach each axon in
    /// order. Dropping the reply drops the connection.
    pub fn query(
        &self,
        target: &MinerTarget,
        prompt: &Prompt,
        protocol: &MinerProtocol,
        limits: ReplyLimits,
        deadline: Deadline,
    ) -> MinerReply {
        let built = match protocol {
            MinerProtocol::Synapse(shape) => {
                let this = self.clone();
                let (target, prompt, shape) = (target.clone(), prompt.clone(), shape.clone());
                let send = async move {
                    let axon = format!("{}:{}/{}", target.ip, target.port, target.hotkey);
                    let lane = this.inner.lanes.acquire(&axon).await;
                    let t = std::time::Instant::now();
                    let timeout = request::timeout_told(deadline);
                    let request = this
                        .synapse_request(&target, &prompt, &shape, lane.uuid(), timeout)
                        .map_err(SendError::Build)?;
                    tracing::trace!(
                        build_us = t.elapsed().as_micros() as u64,
                        "synapse request signed"
                    );
                    let response = this.inner.client.execute(request).await;
                    // The axon has checked the nonce once it answers: the lane is free again.
                    drop(lane);
                    response.map_err(SendError::Http)
                };
                return MinerReply::start(send, false, limits, deadline);
            }
            MinerProtocol::Epistula => {
                self.chat_request(target, prompt, true, request::timeout_told(deadline))
            }
            MinerProtocol::OpenAi => {
                self.chat_request(target, prompt, false, request::timeout_told(deadline))
            }
        };
        match built {
            Ok(request) => {
                let send = self.inner.client.execute(request);
                MinerReply::start(
                    async move { send.await.map_err(SendError::Http) },
                    true,
                    limits,
                    deadline,
                )
            }
            Err(message) => {
                MinerReply::failed(OutcomeKind::ConnectFailure { message }, limits, deadline)
            }
        }
    }
}
