//! A fleet of simulated miners on loopback, with varied latencies and a few misbehaving, and
//! the metagraph that lists them. Used by `sn1-gateway simnet`, tests and benchmarks.
//!
//! With a [`Profile`] the fleet is instead a reproducible mix of behaviours (see
//! [`crate::profile`]), the fleet answer quality is measured on.
//!
//! The metagraph file is written atomically and only once every miner listens.

use crate::miner::{Misbehaviour, SimMinerConfig, sim_hotkey};
use crate::miner::{SimMiner, SimMinerHandle};
use crate::profile::{Behaviour, Profile};
use sn1_contracts::metagraph::{Metagraph, Neuron};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What the fleet looks like.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Number of miners.
    pub miners: u16,
    /// Address the miners bind (ports chosen by the OS).
    pub host: IpAddr,
    /// How many of them misbehave (the last ones, cycling through [`MISBEHAVIOURS`]).
    pub misbehaving: u16,
    /// Latency of a well-behaved miner's first chunk, before the per-uid spread.
    pub base_first_byte: Duration,
    /// Gap between chunks of a well-behaved miner.
    pub chunk_gap: Duration,
    /// First-chunk latencies spread over `base_first_byte ..= base_first_byte + spread` by uid
    /// (0: every miner equally fast, as benchmarks want).
    pub latency_spread: Duration,
    /// A behaviour profile and its seed: when set, every miner behaves as the profile assigns
    /// (and `misbehaving` / the latencies above are not used).
    pub profile: Option<(Profile, u64)>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            miners: 8,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            misbehaving: 2,
            base_first_byte: Duration::from_millis(20),
            chunk_gap: Duration::from_millis(15),
            latency_spread: Duration::from_millis(180),
            profile: None,
        }
    }
}

/// The misbehaviours misbehaving miners take, in turn.
pub fn misbehaviours() -> Vec<Misbehaviour> {
    vec![
        Misbehaviour::StallAfter { chunks: 0 },
        Misbehaviour::Refusal,
        Misbehaviour::ErrorStatus(500),
        Misbehaviour::Empty,
        Misbehaviour::Reset { after_chunks: 1 },
        Misbehaviour::ErrorJsonAsText,
    ]
}

/// Running miners and their metagraph.
pub struct Fleet {
    miners: Vec<SimMinerHandle>,
    metagraph: Metagraph,
    behaviours: Vec<Behaviour>,
}

impl Fleet {
    /// Starts the miners described by `config`.
    pub async fn start(config: &FleetConfig) -> anyhow::Result<Fleet> {
        if let Some((profile, seed)) = &config.profile {
            let behaviours = profile.assign(config.miners, *seed);
            let mut configs = Vec::with_capacity(behaviours.len());
            for (uid, behaviour) in (0..config.miners).zip(&behaviours) {
                let mut c = SimMinerConfig::new(uid, sim_hotkey(uid)?);
                c.bind = SocketAddr::new(config.host, 0);
                c.reply.chunk_delay = config.chunk_gap;
                behaviour.configure(&mut c, u64::from(uid));
                configs.push(c);
            }
            let mut fleet = Self::start_with(configs).await?;
            fleet.behaviours = behaviours;
            return Ok(fleet);
        }
        let bad = misbehaviours();
        let first_bad = config.miners.saturating_sub(config.misbehaving);
        let mut configs = Vec::new();
        for uid in 0..config.miners {
            let mut c = SimMinerConfig::new(uid, sim_hotkey(uid)?);
            c.bind = SocketAddr::new(config.host, 0);
            // Spread latencies so the fan-out has a real race to win.
            let spread_ms = config.latency_spread.as_millis() as u64;
            let extra = if spread_ms == 0 {
                0
            } else {
                u64::from(uid) * 37 % (spread_ms + 1)
            };
            c.reply.first_byte_delay = config.base_first_byte + Duration::from_millis(extra);
            c.reply.chunk_delay = config.chunk_gap;
            if uid >= first_bad {
                c.misbehaviour = Some(bad[usize::from(uid - first_bad) % bad.len()].clone());
            }
            configs.push(c);
        }
        Self::start_with(configs).await
    }

    /// Starts one miner per config (tests pick behaviours per uid).
    pub async fn start_with(configs: Vec<SimMinerConfig>) -> anyhow::Result<Fleet> {
        let mut miners = Vec::with_capacity(configs.len());
        let mut neurons = Vec::with_capacity(configs.len());
        for config in configs {
            let uid = config.uid;
            let handle = SimMiner::spawn(config).await?;
            let addr = handle.addr();
            neurons.push(Neuron {
                uid,
                hotkey: handle.hotkey_ss58().to_string(),
                coldkey: format!("sim-coldkey-{}", uid / 2),
                active: true,
                axon_ip: addr.ip().to_string(),
                axon_port: addr.port(),
                axon_ip_type: if addr.is_ipv4() { 4 } else { 6 },
                stake_tao: 0.0,
                incentive: f64::from(uid % 10) / 10.0,
                validator_permit: false,
            });
            miners.push(handle);
        }
        Ok(Fleet {
            miners,
            metagraph: Metagraph {
                netuid: 1,
                block: 0,
                neurons,
            },
            behaviours: Vec::new(),
        })
    }

    /// The metagraph listing every miner.
    pub fn metagraph(&self) -> &Metagraph {
        &self.metagraph
    }

    /// Each miner's behaviour, by uid (empty unless started from a profile).
    pub fn behaviours(&self) -> &[Behaviour] {
        &self.behaviours
    }

    /// The miners, by uid.
    pub fn miners(&self) -> &[SimMinerHandle] {
        &self.miners
    }

    /// The miner with `uid`.
    pub fn miner(&self, uid: u16) -> Option<&SimMinerHandle> {
        self.metagraph
            .neurons
            .iter()
            .position(|n| n.uid == uid)
            .map(|i| &self.miners[i])
    }
}
