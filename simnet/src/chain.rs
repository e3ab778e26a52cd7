//! A fake Subtensor node: JSON-RPC over WebSocket and HTTP POST (same address, path `/`)
//! answering exactly what the metagraph syncer asks — `chain_getFinalizedHead`,
//! `chain_getHeader`, `chain_getBlockHash` and `state_call` of
//! `NeuronInfoRuntimeApi_get_neurons_lite` / `SubnetInfoRuntimeApi_get_subnet_state` — with real
//! recorded bytes ([`FakeChain::from_fixture_dir`]) or bytes encoded from a simulated fleet's
//! metagraph ([`encode_metagraph`]). `state_call` params are accepted with or without `0x`, as
//! real nodes do. Other methods answer JSON-RPC "method not found".

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use serde_json::{Value, json};
use sn1_bittensor::metagraph::{
    AxonInfo, NeuronLite, SubnetState, encode_neurons_lite, encode_subnet_state, hex_result,
};
use sn1_bittensor::ss58;
use sn1_contracts::metagraph::{Metagraph, Neuron};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// `get_neurons_lite` runtime-API name.
pub const NEURONS_LITE: &str = "NeuronInfoRuntimeApi_get_neurons_lite";
/// `get_subnet_state` runtime-API name.
pub const SUBNET_STATE: &str = "SubnetInfoRuntimeApi_get_subnet_state";
/// Calls remembered by [`FakeChain::calls`] at most.
const MAX_CALL_LOG: usize = 1000;

/// Why the fake chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A neuron cannot be put on the fake chain.
    #[error("neuron uid {uid}: {message}")]
    Neuron {
        /// The neuron.
        uid: u16,
        /// What is wrong.
        message: String,
    },
    /// A fixture file is missing or malformed.
    #[error("fixture {path}: {message}")]
    Fixture {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// How the finalized head moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// Always this block (the recorded fixture block).
    Fixed {
        /// Block number.
        number: u64,
        /// Block hash, `0x`-hex.
        hash: String,
    },
    /// One block every `block_time`, numbered from the Unix epoch (so a restarted fake chain
    /// never goes back); hashes carry `salt`, so two runs give different hashes.
    Clock {
        /// Time per block.
        block_time: Duration,
        /// Distinguishes this run's hashes.
        salt: u64,
    },
}

impl Head {
    /// A clock head with a random salt.
    pub fn clock(block_time: Duration) -> Head {
        Head::Clock {
            block_time: block_time.max(Duration::from_millis(1)),
            salt: rand::random(),
        }
    }

    fn current(&self) -> (u64, String) {
        match self {
            Head::Fixed { number, hash } => (*number, hash.clone()),
            Head::Clock { block_time, salt } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let number = (now.as_millis() / block_time.as_millis().max(1)) as u64;
                (number, clock_hash(*salt, number))
            }
        }
    }

    /// The number of the block with `hash`, if it is the head or (clock) an earlier block.
    fn number_of(&self, hash: &str) -> Option<u64> {
        let (head, head_hash) = self.current();
        match self {
            Head::Fixed { .. } => (hash == head_hash).then_some(head),
            Head::Clock { salt, .. } => {
                let number = u64::from_str_radix(hash.get(50..66)?, 16).ok()?;
                (number <= head && clock_hash(*salt, number) == hash).then_some(number)
            }
        }
    }

    fn hash_of(&self, number: u64) -> Option<String> {
        let (head, head_hash) = self.current();
        match self {
            Head::Fixed { .. } => (number == head).then_some(head_hash),
            Head::Clock { salt, .. } => (number <= head).then(|| clock_hash(*salt, number)),
        }
    }
}

fn clock_hash(salt: u64, number: u64) -> String {
    format!("0x{salt:016x}{:032x}{number:016x}", 0x51u8)
}

/// One JSON-RPC call the fake chain received.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcCall {
    /// The method.
    pub method: String,
    /// Its params.
    pub params: Value,
}

struct Inner {
    head: RwLock<Head>,
    /// netuid → (get_neurons_lite bytes, get_subnet_state bytes).
    subnets: RwLock<HashMap<u16, (Vec<u8>, Vec<u8>)>>,
    calls: Mutex<Vec<RpcCall>>,
    failing: std::sync::atomic::AtomicBool,
}

/// The fake node's state; cheap to clone (shared).
#[derive(Clone)]
pub struct FakeChain {
    inner: Arc<Inner>,
}

impl FakeChain {
    /// An empty chain (every netuid has no neurons) with `head`.
    pub fn new(head: Head) -> FakeChain {
        FakeChain {
            inner: Arc::new(Inner {
                head: RwLock::new(head),
                subnets: RwLock::default(),
                calls: Mutex::default(),
                failing: Default::default(),
            }),
        }
    }

    /// A chain serving `metagraph` (encoded with [`encode_metagraph`]) under its netuid.
    pub fn from_metagraph(metagraph: &Metagraph, head: Head) -> Result<FakeChain, ChainError> {
        let chain = FakeChain::new(head);
        let (neurons, state) = encode_metagraph(metagraph)?;
        chain.set_subnet(metagraph.netuid, neurons, state);
        Ok(chain)
    }

    /// The recorded finney answers in `dir` (`shared/protocol/fixtures`): block 6852690 with
    /// netuid 1 (1024 neurons and its subnet state) and the legacy netuid-23 answer (no state).
    pub fn from_fixture_dir(dir: &Path) -> Result<FakeChain, ChainError> {
        let requests: Value =
            serde_json::from_str(&read_fixture(dir, "finney_b6852690_requests.json")?)
                .map_err(|e| fixture_error(dir, "finney_b6852690_requests.json", e))?;
        let number = requests["block_number"].as_u64();
        let hash = requests["block_hash"].as_str();
        let (Some(number), Some(hash)) = (number, hash) else {
            return Err(fixture_error(
                dir,
                "finney_b6852690_requests.json",
                "no block_number / block_hash",
            ));
        };
        let chain = FakeChain::new(Head::Fixed {
            number,
            hash: hash.to_string(),
        });
        let bytes = |name: &str| {
            hex_result(&read_fixture(dir, name)?).map_err(|e| fixture_error(dir, name, e))
        };
        chain.set_subnet(
            1,
            bytes("finney_b6852690_netuid1_NeuronInfoRuntimeApi_get_neurons_lite.hex")?,
            bytes("finney_b6852690_netuid1_SubnetInfoRuntimeApi_get_subnet_state.hex.gz")?,
        );
        chain.set_subnet(
            23,
            bytes("finney_spec208_netuid23_NeuronInfoRuntimeApi_get_neurons_lite.hex")?,
            vec![0],
        );
        Ok(chain)
    }

    /// Serves these answers for `netuid` from now on.
    pub fn set_subnet(&self, netuid: u16, neurons_lite: Vec<u8>, subnet_state: Vec<u8>) {
        let mut subnets = self
            .inner
            .subnets
            .write()
            .unwrap_or_else(|e| e.into_inner());
        subnets.insert(netuid, (neurons_lite, subnet_state));
    }

    /// Serves `metagraph` from now on.
    pub fn set_metagraph(&self, metagraph: &Metagraph) -> Result<(), ChainError> {
        let (neurons, state) = encode_metagraph(metagraph)?;
        self.set_subnet(metagraph.netuid, neurons, state);
        Ok(())
    }

    /// Moves the head.
    pub fn set_head(&self, head: Head) {
        *self.inner.head.write().unwrap_or_else(|e| e.into_inner()) = head;
    }

    /// The finalized head now: (number, hash).
    pub fn head(&self) -> (u64, String) {
        self.inner
            .head
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current()
    }

    /// When on, every call answers a JSON-RPC error (a node that is up but broken).
    pub fn set_failing(&self, failing: bool) {
        self.inner
            .failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// The calls received so far (the last [`MAX_CALL_LOG`]).
    pub fn calls(&self) -> Vec<RpcCall> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Answers one JSON-RPC message (a request or a batch); `None` for notifications only.
    pub fn handle_text(&self, text: &str) -> Option<String> {
        let reply = match serde_json::from_str::<Value>(text) {
            Err(_) => Some(error_reply(Value::Null, -32700, "Parse error")),
            Ok(Value::Array(batch)) => {
                let replies: Vec<Value> = batch.iter().filter_map(|r| self.handle(r)).collect();
                (!replies.is_empty()).then_some(Value::Array(replies))
            }
            Ok(request) => self.handle(&request),
        };
        reply.map(|r| r.to_string())
    }

    fn handle(&self, request: &Value) -> Option<Value> {
        let id = request.get("id").cloned();
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            return Some(error_reply(
                id.unwrap_or(Value::Null),
                -32600,
                "Invalid request",
            ));
        };
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        {
            let mut calls = self.inner.calls.lock().unwrap_or_else(|e| e.into_inner());
            if calls.len() >= MAX_CALL_LOG {
                calls.remove(0);
            }
            calls.push(RpcCall {
                method: method.to_string(),
                params: params.clone(),
            });
        }
        let id = id?;
        let result = if self.inner.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err((-32000, "simulated outage".to_string()))
        } else {
            self.answer(method, &params)
        };
        Some(match result {
            Ok(value) => json!({"jsonrpc": "2.0", "id": id, "result": value}),
            Err((code, message)) => error_reply(id, code, &message),
        })
    }

    fn answer(&self, method: &str, params: &Value) -> Result<Value, (i64, String)> {
        let head = self
            .inner
            .head
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let param = |i: usize| params.get(i).filter(|v| !v.is_null());
        match method {
            "chain_getFinalizedHead" => Ok(json!(head.current().1)),
            "chain_getBlockHash" => {
                let number = match param(0) {
                    None => Some(head.current().0),
                    Some(v) => v.as_u64(),
                };
                Ok(json!(number.and_then(|n| head.hash_of(n))))
            }
            "chain_getHeader" => {
                let hash = match param(0) {
                    None => head.current().1,
                    Some(v) => v.as_str().unwrap_or_default().to_string(),
                };
                Ok(head
                    .number_of(&hash)
                    .map_or(Value::Null, |n| header(&head, n)))
            }
            "state_call" => self.state_call(&head, params),
            _ => Err((-32601, "Method not found".into())),
        }
    }

    fn state_call(&self, head: &Head, params: &Value) -> Result<Value, (i64, String)> {
        let name = params.get(0).and_then(Value::as_str).unwrap_or_default();
        let data = params.get(1).and_then(Value::as_str).unwrap_or_default();
        if let Some(at) = params.get(2).and_then(Value::as_str)
            && head.number_of(at).is_none()
        {
            return Err((4003, format!("Client error: UnknownBlock: {at}")));
        }
        let digits = data.strip_prefix("0x").unwrap_or(data);
        let bytes = hex::decode(digits).map_err(|_| (-32602, "params are not hex".into()))?;
        let netuid = match bytes.as_slice() {
            [a, b, ..] => u16::from_le_bytes([*a, *b]),
            _ => return Err((-32602, "params too short for a netuid".into())),
        };
        let subnets = self.inner.subnets.read().unwrap_or_else(|e| e.into_inner());
        let answer = subnets.get(&netuid);
        let bytes = match name {
            NEURONS_LITE => answer.map_or(&[0u8][..], |(n, _)| n.as_slice()),
            SUBNET_STATE => answer.map_or(&[0u8][..], |(_, s)| s.as_slice()),
            _ => {
                return Err((
                    -32000,
                    format!("Execution failed: Other: Exported method {name} is not found"),
                ));
            }
        };
        Ok(json!(format!("0x{}", hex::encode(bytes))))
    }

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

fn header(head: &Head, number: u64) -> Value {
    let parent = number
        .checked_sub(1)
        .and_then(|p| head.hash_of(p))
        .unwrap_or_else(|| format!("0x{}", "0".repeat(64)));
    json!({
        "parentHash": parent,
        "number": format!("0x{number:x}"),
        "stateRoot": format!("0x{}", "1".repeat(64)),
        "extrinsicsRoot": format!("0x{}", "2".repeat(64)),
        "digest": {"logs": []},
    })
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
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

fn fixture_error(dir: &Path, name: &str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Fixture {
        path: dir.join(name).display().to_string(),
        message: e.to_string(),
    }
}

fn read_fixture(dir: &Path, name: &str) -> Result<String, ChainError> {
    let raw = std::fs::read(dir.join(name)).map_err(|e| fixture_error(dir, name, e))?;
    if name.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .map_err(|e| fixture_error(dir, name, e))?;
        Ok(text)
    } else {
        String::from_utf8(raw).map_err(|e| fixture_error(dir, name, e))
    }
}

/// A stable 32-byte account for a coldkey name that is not SS58 (simnet's `sim-coldkey-N`):
/// equal names give equal accounts, so one-per-coldkey groups the same way.
fn pseudo_account(name: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        // FNV-1a 64 over (lane, name).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::iter::once(i as u8).chain(name.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    out
}

fn rao(tao: f64) -> u64 {
    (tao.max(0.0) * 1e9).round() as u64
}

fn unit(v: f64) -> u16 {
    (v.clamp(0.0, 1.0) * f64::from(u16::MAX)).round() as u16
}

fn neuron_lite(n: &Neuron, netuid: u16) -> Result<NeuronLite, ChainError> {
    let bad = |message: String| ChainError::Neuron {
        uid: n.uid,
        message,
    };
    let hotkey = ss58::decode(&n.hotkey)
        .map_err(|e| bad(format!("hotkey {:?} is not SS58: {e}", n.hotkey)))?;
    let coldkey = ss58::decode(&n.coldkey).unwrap_or_else(|_| pseudo_account(&n.coldkey));
    let ip: IpAddr = n
        .axon_ip
        .parse()
        .map_err(|_| bad(format!("axon_ip {:?} is not an IP address", n.axon_ip)))?;
    let ip = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let stake = rao(n.stake_tao);
    Ok(NeuronLite {
        hotkey,
        coldkey,
        uid: n.uid,
        netuid,
        active: n.active,
        axon: AxonInfo {
            block: 1,
            version: 9_012_002,
            ip,
            port: n.axon_port,
            ip_type: n.axon_ip_type,
            protocol: 4,
            placeholder1: 0,
            placeholder2: 0,
        },
        stake: vec![(coldkey, stake)],
        incentive: unit(n.incentive),
        validator_permit: n.validator_permit,
        pruning_score: u16::MAX,
        ..NeuronLite::default()
    })
}

/// Encodes `metagraph` as the two runtime-API answers (`get_neurons_lite`, `get_subnet_state`)
/// a Subtensor node would give for it. Hotkeys must be SS58; coldkeys that are not become
/// stable pseudo accounts; stake goes into both answers (the SDK's `S` = total_stake).
pub fn encode_metagraph(metagraph: &Metagraph) -> Result<(Vec<u8>, Vec<u8>), ChainError> {
    let netuid = metagraph.netuid;
    let mut neurons = metagraph
        .neurons
        .iter()
        .map(|n| neuron_lite(n, netuid))
        .collect::<Result<Vec<_>, _>>()?;
    neurons.sort_by_key(|n| n.uid);
    let slots = neurons.last().map_or(0, |n| usize::from(n.uid) + 1);
    let mut state = SubnetState {
        netuid,
        hotkeys: vec![[0; 32]; slots],
        coldkeys: vec![[0; 32]; slots],
        active: vec![false; slots],
        validator_permit: vec![false; slots],
        pruning_score: vec![u16::MAX; slots],
        last_update: vec![0; slots],
        emission: vec![0; slots],
        dividends: vec![0; slots],
        incentives: vec![0; slots],
        consensus: vec![0; slots],
        trust: vec![0; slots],
        rank: vec![0; slots],
        block_at_registration: vec![0; slots],
        alpha_stake: vec![0; slots],
        tao_stake: vec![0; slots],
        total_stake: vec![0; slots],
        emission_history: Vec::new(),
    };
    for n in &neurons {
        let i = usize::from(n.uid);
        state.hotkeys[i] = n.hotkey;
        state.coldkeys[i] = n.coldkey;
        state.active[i] = n.active;
        state.validator_permit[i] = n.validator_permit;
        state.incentives[i] = n.incentive;
        state.alpha_stake[i] = n.lite_stake_rao();
        state.total_stake[i] = n.lite_stake_rao();
    }
    Ok((encode_neurons_lite(&neurons), encode_subnet_state(&state)))
}
