//! The runtime-API answer types (`NeuronInfoLite`, `AxonInfo`, `PrometheusInfo`, `SubnetState`)
//! and their SCALE layout, field by field as in subtensor's `pallets/subtensor/src/rpc_info/`
//! (`neuron_info.rs`, `show_subnet.rs`; docs/protocol.md §10).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::DecodeError;
use super::scale::{Reader, Writer};

/// Fewest bytes one `NeuronInfoLite` can take: two accounts, the 34-byte axon, the 31-byte
/// prometheus info, two bools and twelve one-byte compacts/lengths.
pub(crate) const MIN_NEURON_LEN: usize = 32 + 32 + 34 + 31 + 2 + 12;

/// Where a neuron serves (Subtensor `AxonInfo`, 34 bytes little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AxonInfo {
    /// Block of the last `serve_axon`.
    pub block: u64,
    /// The bittensor version of the miner (e.g. 9010001 for 9.10.1).
    pub version: u32,
    /// The address as an integer (IPv4 when it fits in 32 bits).
    pub ip: u128,
    /// TCP port; 0 when not serving.
    pub port: u16,
    /// 4 or 6 as the miner declared it (the SDK does not consult it).
    pub ip_type: u8,
    /// Protocol tag (4 or 0 on finney).
    pub protocol: u8,
    /// Unused.
    pub placeholder1: u8,
    /// Unused.
    pub placeholder2: u8,
}

impl AxonInfo {
    /// The address as the SDK prints it (`netaddr.IPAddress(int)`): IPv4 dotted when the value
    /// fits in 32 bits (so 0 is `"0.0.0.0"`), IPv6 otherwise; `ip_type` is not consulted.
    pub fn ip_string(&self) -> String {
        match u32::try_from(self.ip) {
            Ok(v4) => Ipv4Addr::from(v4).to_string(),
            Err(_) => Ipv6Addr::from(self.ip).to_string(),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block: r.u64("axon_info.block")?,
            version: r.u32("axon_info.version")?,
            ip: r.u128("axon_info.ip")?,
            port: r.u16("axon_info.port")?,
            ip_type: r.u8("axon_info.ip_type")?,
            protocol: r.u8("axon_info.protocol")?,
            placeholder1: r.u8("axon_info.placeholder1")?,
            placeholder2: r.u8("axon_info.placeholder2")?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.u64(self.block)
            .u32(self.version)
            .u128(self.ip)
            .u16(self.port);
        w.u8(self.ip_type)
            .u8(self.protocol)
            .u8(self.placeholder1)
            .u8(self.placeholder2);
    }
}

/// Where a neuron exports Prometheus metrics (Subtensor `PrometheusInfo`, 31 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrometheusInfo {
    /// Block of the last `serve_prometheus`.
    pub block: u64,
    /// Declared version.
    pub version: u32,
    /// The address as an integer.
    pub ip: u128,
    /// TCP port.
    pub port: u16,
    /// 4 or 6.
    pub ip_type: u8,
}

impl PrometheusInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block: r.u64("prometheus_info.block")?,
            version: r.u32("prometheus_info.version")?,
            ip: r.u128("prometheus_info.ip")?,
            port: r.u16("prometheus_info.port")?,
            ip_type: r.u8("prometheus_info.ip_type")?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.u64(self.block)
            .u32(self.version)
            .u128(self.ip)
            .u16(self.port)
            .u8(self.ip_type);
    }
}

/// One neuron as `NeuronInfoRuntimeApi_get_neurons_lite` returns it (`NeuronInfoLite`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NeuronLite {
    /// The neuron's hotkey (sr25519 public key).
    pub hotkey: [u8; 32],
    /// The coldkey owning the hotkey.
    pub coldkey: [u8; 32],
    /// Position in the subnet.
    pub uid: u16,
    /// The subnet.
    pub netuid: u16,
    /// Whether the neuron set weights recently enough (chain `Active`).
    pub active: bool,
    /// Where it serves.
    pub axon: AxonInfo,
    /// Where it exports metrics.
    pub prometheus: PrometheusInfo,
    /// `(coldkey, alpha stake in rao)`; today one entry. Not the SDK's `S` (see `SubnetState`).
    pub stake: Vec<([u8; 32], u64)>,
    /// Deprecated, 0 on current runtimes.
    pub rank: u16,
    /// Emission per tempo in rao.
    pub emission_rao: u64,
    /// Incentive, u16-normalised.
    pub incentive: u16,
    /// Consensus, u16-normalised.
    pub consensus: u16,
    /// Deprecated, 0 on current runtimes.
    pub trust: u16,
    /// Validator trust, u16-normalised.
    pub validator_trust: u16,
    /// Dividends, u16-normalised.
    pub dividends: u16,
    /// Block of the last weight update.
    pub last_update: u64,
    /// Whether the neuron may set weights.
    pub validator_permit: bool,
    /// Deprecated, `u16::MAX` on current runtimes.
    pub pruning_score: u16,
}

impl NeuronLite {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            hotkey: r.account("neuron.hotkey")?,
            coldkey: r.account("neuron.coldkey")?,
            uid: r.compact_u16("neuron.uid")?,
            netuid: r.compact_u16("neuron.netuid")?,
            active: r.bool("neuron.active")?,
            axon: AxonInfo::read(r)?,
            prometheus: PrometheusInfo::read(r)?,
            stake: r.vec("neuron.stake", 33, |r| {
                Ok((
                    r.account("neuron.stake.coldkey")?,
                    r.compact_u64("neuron.stake.amount")?,
                ))
            })?,
            rank: r.compact_u16("neuron.rank")?,
            emission_rao: r.compact_u64("neuron.emission")?,
            incentive: r.compact_u16("neuron.incentive")?,
            consensus: r.compact_u16("neuron.consensus")?,
            trust: r.compact_u16("neuron.trust")?,
            validator_trust: r.compact_u16("neuron.validator_trust")?,
            dividends: r.compact_u16("neuron.dividends")?,
            last_update: r.compact_u64("neuron.last_update")?,
            validator_permit: r.bool("neuron.validator_permit")?,
            pruning_score: r.compact_u16("neuron.pruning_score")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.bytes(&self.hotkey).bytes(&self.coldkey);
        w.compact(self.uid.into())
            .compact(self.netuid.into())
            .bool(self.active);
        self.axon.write(w);
        self.prometheus.write(w);
        w.vec(&self.stake, |w, (coldkey, amount)| {
            w.bytes(coldkey).compact(*amount);
        });
        for v in [self.rank.into(), self.emission_rao, self.incentive.into()] {
            w.compact(v);
        }
        for v in [
            self.consensus,
            self.trust,
            self.validator_trust,
            self.dividends,
        ] {
            w.compact(v.into());
        }
        w.compact(self.last_update).bool(self.validator_permit);
        w.compact(self.pruning_score.into());
    }

    /// The sum of the `stake` entries in rao (saturating).
    pub fn lite_stake_rao(&self) -> u64 {
        self.stake
            .iter()
            .fold(0u64, |sum, (_, s)| sum.saturating_add(*s))
    }
}

/// A subnet's parallel per-uid vectors (`SubnetInfoRuntimeApi_get_subnet_state`).
///
/// Each per-uid vector has one entry per uid; `emission_history` has one inner vector per
/// subnet (the last emission of each of this subnet's hotkeys on that subnet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubnetState {
    /// The subnet (`Compact<NetUid>`).
    pub netuid: u16,
    /// Hotkeys by uid.
    pub hotkeys: Vec<[u8; 32]>,
    /// Coldkeys by uid.
    pub coldkeys: Vec<[u8; 32]>,
    /// Chain `Active` by uid.
    pub active: Vec<bool>,
    /// Chain `ValidatorPermit` by uid.
    pub validator_permit: Vec<bool>,
    /// Deprecated pruning scores.
    pub pruning_score: Vec<u16>,
    /// Block of the last weight update.
    pub last_update: Vec<u64>,
    /// Emission in rao.
    pub emission: Vec<u64>,
    /// Dividends, u16-normalised.
    pub dividends: Vec<u16>,
    /// Incentive, u16-normalised.
    pub incentives: Vec<u16>,
    /// Consensus, u16-normalised.
    pub consensus: Vec<u16>,
    /// Deprecated trust.
    pub trust: Vec<u16>,
    /// Deprecated rank.
    pub rank: Vec<u16>,
    /// Registration block.
    pub block_at_registration: Vec<u64>,
    /// Alpha stake weight in rao.
    pub alpha_stake: Vec<u64>,
    /// TAO (root) stake weight in rao.
    pub tao_stake: Vec<u64>,
    /// Total stake weight in rao: the SDK's `S` × 1e9.
    pub total_stake: Vec<u64>,
    /// Per subnet, per hotkey: last emission in rao.
    pub emission_history: Vec<Vec<u64>>,
}

impl SubnetState {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let u16s = |r: &mut Reader<'_>, what: &'static str| r.vec(what, 1, |r| r.compact_u16(what));
        let u64s = |r: &mut Reader<'_>, what: &'static str| r.vec(what, 1, |r| r.compact_u64(what));
        let bools = |r: &mut Reader<'_>, what: &'static str| r.vec(what, 1, |r| r.bool(what));
        Ok(Self {
            netuid: r.compact_u16("subnet_state.netuid")?,
            hotkeys: r.vec("subnet_state.hotkeys", 32, |r| {
                r.account("subnet_state.hotkeys")
            })?,
            coldkeys: r.vec("subnet_state.coldkeys", 32, |r| {
                r.account("subnet_state.coldkeys")
            })?,
            active: bools(r, "subnet_state.active")?,
            validator_permit: bools(r, "subnet_state.validator_permit")?,
            pruning_score: u16s(r, "subnet_state.pruning_score")?,
            last_update: u64s(r, "subnet_state.last_update")?,
            emission: u64s(r, "subnet_state.emission")?,
            dividends: u16s(r, "subnet_state.dividends")?,
            incentives: u16s(r, "subnet_state.incentives")?,
            consensus: u16s(r, "subnet_state.consensus")?,
            trust: u16s(r, "subnet_state.trust")?,
            rank: u16s(r, "subnet_state.rank")?,
            block_at_registration: u64s(r, "subnet_state.block_at_registration")?,
            alpha_stake: u64s(r, "subnet_state.alpha_stake")?,
            tao_stake: u64s(r, "subnet_state.tao_stake")?,
            total_stake: u64s(r, "subnet_state.total_stake")?,
            emission_history: r.vec("subnet_state.emission_history", 1, |r| {
                u64s(r, "subnet_state.emission_history")
            })?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        let u16s = |w: &mut Writer, v: &[u16]| {
            w.vec(v, |w, x| {
                w.compact((*x).into());
            });
        };
        let u64s = |w: &mut Writer, v: &[u64]| {
            w.vec(v, |w, x| {
                w.compact(*x);
            });
        };
        let bools = |w: &mut Writer, v: &[bool]| {
            w.vec(v, |w, x| {
                w.bool(*x);
            });
        };
        w.compact(self.netuid.into());
        w.vec(&self.hotkeys, |w, k| {
            w.bytes(k);
        });
        w.vec(&self.coldkeys, |w, k| {
            w.bytes(k);
        });
        bools(w, &self.active);
        bools(w, &self.validator_permit);
        u16s(w, &self.pruning_score);
        u64s(w, &self.last_update);
        u64s(w, &self.emission);
        for v in [
            &self.dividends,
            &self.incentives,
            &self.consensus,
            &self.trust,
            &self.rank,
        ] {
            u16s(w, v);
        }
        for v in [
            &self.block_at_registration,
            &self.alpha_stake,
            &self.tao_stake,
        ] {
            u64s(w, v);
        }
        u64s(w, &self.total_stake);
        w.vec(&self.emission_history, |w, inner| u64s(w, inner));
    }
}
