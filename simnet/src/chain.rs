//! A fake Subtensor node: JSON-RPC over WebSocket and HTTP POST (same address, path `/`)
//! answering exactly what the metagraph syncer asks — `chain_getFinalizedHead`,
//! `chain_getHeader`, `chain_getBlockHash` and `state_call` of
//! `NeuronInfoRuntimeApi_get_neurons_lite` / `SubnetInfoRuntimeApi_get_subnet_state` — with real
//! recorded bytes ([`FakeChain::from_fixture_dir`]) or bytes encoded from a simulated fleet's
//! metagraph ([`encode_metagraph`]). `state_call` params are accepted with or without `0x`, as
//! real nodes do. Other methods answer JSON-RPC "method not found".

use serde_json::{Value, json};
use sn1_bittensor::metagraph::hex_result;
use sn1_contracts::metagraph::Metagraph;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod encode;
mod server;

pub use encode::encode_metagraph;
pub use server::FakeChainServer;

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

/// The `get_neurons_lite` and `get_subnet_state` answers of one subnet.
type Answers = (Vec<u8>, Vec<u8>);

struct Inner {
    head: RwLock<Head>,
    subnets: RwLock<HashMap<u16, Answers>>,
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

#[cfg(test)]
mod tests;
