//! A metagraph as the two runtime-API answers a Subtensor node gives for it
//! (`get_neurons_lite`, `get_subnet_state`), for the fake chain.

use super::ChainError;
use sn1_bittensor::metagraph::{
    AxonInfo, NeuronLite, SubnetState, encode_neurons_lite, encode_subnet_state,
};
use sn1_bittensor::ss58;
use sn1_contracts::metagraph::{Metagraph, Neuron};
use std::net::IpAddr;

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
