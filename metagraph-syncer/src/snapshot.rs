//! One metagraph read from the chain: the two runtime-API calls at the finalized head
//! (docs/protocol.md §10), decoded with `sn1_bittensor::metagraph` into the SDK's rows and checked;
//! the store keeps those rows as they are.

use crate::rpc::{ChainClient, RpcError};
use sn1_bittensor::metagraph::{
    DecodeError, NeuronRow, decode_neurons_lite_any, decode_subnet_state, neuron_rows,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// `NeuronInfoRuntimeApi_get_neurons_lite(netuid)`.
pub const NEURONS_LITE: &str = "NeuronInfoRuntimeApi_get_neurons_lite";
/// `SubnetInfoRuntimeApi_get_subnet_state(netuid)`.
pub const SUBNET_STATE: &str = "SubnetInfoRuntimeApi_get_subnet_state";

/// Why the chain's answer is not a usable snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// An answer did not decode.
    #[error("cannot decode {what} at block {block}: {source}")]
    Decode {
        /// Which answer.
        what: &'static str,
        /// The block.
        block: u64,
        /// The decoder's error.
        source: DecodeError,
    },
    /// The answer decodes but cannot be the subnet asked for.
    #[error("netuid {netuid} at block {block}: {message}")]
    Invalid {
        /// The subnet.
        netuid: u16,
        /// The block.
        block: u64,
        /// What is wrong.
        message: String,
    },
}

/// A decoded metagraph at one block.
#[derive(Clone, Debug)]
pub struct ChainSnapshot {
    /// Subnet.
    pub netuid: u16,
    /// Finalized block number.
    pub block: u64,
    /// Its hash.
    pub block_hash: String,
    /// The neurons, as the SDK reports them.
    pub rows: Vec<NeuronRow>,
    /// Size of the `get_neurons_lite` answer in bytes.
    pub neurons_bytes: usize,
    /// Whether `get_subnet_state` answered (otherwise stake is the lite stake).
    pub has_subnet_state: bool,
    /// Time spent in the RPC calls.
    pub fetch_time: Duration,
    /// Time spent decoding.
    pub decode_time: Duration,
}

/// Decodes the two answers (the neurons in the current or the legacy `Vec<u8>` form) and checks
/// that they describe `netuid`: at least one neuron, every neuron of that netuid, uids unique.
pub fn decode_snapshot(
    netuid: u16,
    block: u64,
    block_hash: &str,
    neurons_bytes: &[u8],
    state_bytes: &[u8],
) -> Result<ChainSnapshot, SnapshotError> {
    let started = Instant::now();
    let neurons =
        decode_neurons_lite_any(neurons_bytes).map_err(|source| SnapshotError::Decode {
            what: NEURONS_LITE,
            block,
            source,
        })?;
    let state = decode_subnet_state(state_bytes).map_err(|source| SnapshotError::Decode {
        what: SUBNET_STATE,
        block,
        source,
    })?;
    let invalid = |message: String| SnapshotError::Invalid {
        netuid,
        block,
        message,
    };
    if neurons.is_empty() {
        return Err(invalid(
            "the chain lists no neurons (does the subnet exist?)".into(),
        ));
    }
    if let Some(n) = neurons.iter().find(|n| n.netuid != netuid) {
        return Err(invalid(format!(
            "neuron uid {} belongs to netuid {}",
            n.uid, n.netuid
        )));
    }
    let mut seen = HashSet::with_capacity(neurons.len());
    if let Some(n) = neurons.iter().find(|n| !seen.insert(n.uid)) {
        return Err(invalid(format!("uid {} appears twice", n.uid)));
    }
    if let Some(s) = &state
        && s.netuid != netuid
    {
        return Err(invalid(format!("subnet state is for netuid {}", s.netuid)));
    }
    if state.is_none() {
        tracing::warn!(
            netuid,
            block,
            "no subnet state: stake is the neurons' own (lite) stake"
        );
    }
    let rows = neuron_rows(&neurons, state.as_ref());
    Ok(ChainSnapshot {
        netuid,
        block,
        block_hash: block_hash.to_string(),
        rows,
        neurons_bytes: neurons_bytes.len(),
        has_subnet_state: state.is_some(),
        fetch_time: Duration::ZERO,
        decode_time: started.elapsed(),
    })
}

/// Reads `netuid` at the chain's finalized head.
pub async fn read_snapshot(
    chain: &ChainClient,
    netuid: u16,
) -> Result<ChainSnapshot, SnapshotError> {
    let started = Instant::now();
    let head = chain.finalized_head().await?;
    let params = netuid.to_le_bytes();
    let (neurons, state) = tokio::try_join!(
        chain.state_call(NEURONS_LITE, &params, &head.hash),
        chain.state_call(SUBNET_STATE, &params, &head.hash),
    )?;
    let fetch_time = started.elapsed();
    let mut snapshot = decode_snapshot(netuid, head.number, &head.hash, &neurons, &state)?;
    snapshot.fetch_time = fetch_time;
    Ok(snapshot)
}
