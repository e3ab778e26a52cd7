//! The SDK's normalised per-neuron view ([`NeuronRow`]), built by [`neuron_rows`] from the two
//! runtime-API answers the way bittensor 10.x `Metagraph.sync(lite=True)` combines them
//! (docs/protocol.md §10): floats are `u16 / 65535` and `rao / 1e9`, and the stake `S` comes from
//! `SubnetState.total_stake`, not from the stake inside `NeuronInfoLite`.

use super::types::{NeuronLite, SubnetState};
use crate::ss58;

/// Rao per TAO (and per alpha).
const RAO_PER_TAO: f64 = 1e9;

/// The stake (the SDK's `S`, in τ) a neuron with a validator permit needs to count as a
/// validator: the rule, which gives 12 validators on the finney netuid-1 fixture.
pub const VALIDATOR_MIN_STAKE_TAO: f64 = 4096.0;

/// One neuron as the SDK reports it (what the gateway stores).
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronRow {
    /// Position in the subnet.
    pub uid: u16,
    /// SS58 hotkey.
    pub hotkey: String,
    /// SS58 coldkey.
    pub coldkey: String,
    /// Chain `Active`.
    pub active: bool,
    /// Axon address as the SDK prints it (see [`super::AxonInfo::ip_string`]).
    pub axon_ip: String,
    /// Axon port.
    pub axon_port: u16,
    /// Declared IP type (4/6).
    pub axon_ip_type: u8,
    /// Axon protocol tag.
    pub axon_protocol: u8,
    /// The miner's bittensor version.
    pub axon_version: u32,
    /// The SDK's `S`: `SubnetState.total_stake / 1e9` (or the lite stake without a state).
    pub stake_tao: f64,
    /// Incentive `I` = u16 / 65535.
    pub incentive: f64,
    /// Consensus `C` = u16 / 65535.
    pub consensus: f64,
    /// Dividends `D` = u16 / 65535.
    pub dividends: f64,
    /// Validator trust `Tv` = u16 / 65535.
    pub validator_trust: f64,
    /// Emission `E` in τ (rao / 1e9).
    pub emission_tao: f64,
    /// Chain `ValidatorPermit`.
    pub validator_permit: bool,
    /// Block of the last weight update.
    pub last_update: u64,
}

impl NeuronRow {
    /// Whether the axon is reachable at all: an address other than `0.0.0.0` and a non-zero
    /// port (827 of the 1024 finney netuid-1 neurons; every ip-0 axon there also has port 0).
    pub fn is_serving(&self) -> bool {
        self.axon_ip != "0.0.0.0" && self.axon_port != 0
    }

    /// Whether the neuron is a validator: a validator permit and `S >=`
    /// [`VALIDATOR_MIN_STAKE_TAO`].
    pub fn is_validator(&self) -> bool {
        self.validator_permit && self.stake_tao >= VALIDATOR_MIN_STAKE_TAO
    }
}

fn unit(v: u16) -> f64 {
    f64::from(v) / f64::from(u16::MAX)
}

fn tao(rao: u64) -> f64 {
    rao as f64 / RAO_PER_TAO
}

/// The SDK's rows for `neurons`. With `state`, `stake_tao` is `state.total_stake[uid] / 1e9`
/// when `state.hotkeys[uid]` is the neuron's hotkey (the vectors are indexed by uid); a neuron
/// whose uid is out of range or whose hotkey differs (the two answers came from different
/// blocks) falls back to the sum of its lite stake, and the count of such neurons is logged.
pub fn neuron_rows(neurons: &[NeuronLite], state: Option<&SubnetState>) -> Vec<NeuronRow> {
    let mut mismatched = 0usize;
    let rows = neurons
        .iter()
        .map(|n| {
            let uid = usize::from(n.uid);
            let from_state = state.and_then(|s| {
                let same = s.hotkeys.get(uid) == Some(&n.hotkey);
                let stake = s.total_stake.get(uid).copied().filter(|_| same);
                if stake.is_none() {
                    mismatched += 1;
                }
                stake
            });
            let stake_rao = from_state.unwrap_or_else(|| n.lite_stake_rao());
            NeuronRow {
                uid: n.uid,
                hotkey: ss58::encode(&n.hotkey),
                coldkey: ss58::encode(&n.coldkey),
                active: n.active,
                axon_ip: n.axon.ip_string(),
                axon_port: n.axon.port,
                axon_ip_type: n.axon.ip_type,
                axon_protocol: n.axon.protocol,
                axon_version: n.axon.version,
                stake_tao: tao(stake_rao),
                incentive: unit(n.incentive),
                consensus: unit(n.consensus),
                dividends: unit(n.dividends),
                validator_trust: unit(n.validator_trust),
                emission_tao: tao(n.emission_rao),
                validator_permit: n.validator_permit,
                last_update: n.last_update,
            }
        })
        .collect();
    if mismatched > 0 {
        tracing::warn!(
            neurons.mismatched = mismatched,
            "subnet state does not match the neurons by uid/hotkey; using their lite stake"
        );
    }
    rows
}
