//! Flags shared by the roles that ask miners (`worker`, `standalone`): how to talk to miners,
//! how many jobs at once, per-miner limits, and who counts as a candidate (including which
//! non-public axon addresses from the chain may be asked, `--axon-allow`).

use super::common::parse_duration;
use sn1_bittensor::dendrite::MinerProtocol;
use sn1_bittensor::synapse::SynapseShape;
use sn1_worker::WorkerConfig;
use sn1_worker::axon_policy::{AxonPolicy, Cidr};
use sn1_worker::quality::QualityConfig;
use sn1_worker::selection::SelectionPolicy;
use std::time::Duration;

/// The miner protocol a deployment speaks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolArg {
    /// StreamPromptingSynapse, classic shape (roles, messages).
    Classic,
    /// StreamPromptingSynapse, prompting v2.8–v2.12 shape (with task_name).
    #[value(name = "v2.12")]
    V212,
    /// Epistula-signed OpenAI chat completions (SN1 since late 2024).
    Epistula,
    /// Plain OpenAI-compatible chat completions.
    Openai,
}

impl ProtocolArg {
    /// The protocol, with `task_name` for the v2.12 shape.
    pub fn protocol(self, task_name: &str) -> MinerProtocol {
        match self {
            ProtocolArg::Classic => MinerProtocol::Synapse(SynapseShape::Classic),
            ProtocolArg::V212 => MinerProtocol::Synapse(SynapseShape::V212 {
                task_name: task_name.to_string(),
                target_model: None,
                seed: None,
            }),
            ProtocolArg::Epistula => MinerProtocol::Epistula,
            ProtocolArg::Openai => MinerProtocol::OpenAi,
        }
    }
}

/// Answer-quality flags (README, "Answer quality"; defaults measured by
/// `benches/answer_quality.rs`).
#[derive(clap::Args, Debug, Clone)]
pub struct QualityArgs {
    /// Commit a miner once it has sent this many usable characters (0: at its first usable
    /// text); the others stay warm until then.
    #[arg(long = "hedge-chars", env = "HEDGE_CHARS", default_value_t = 0)]
    pub hedge_chars: usize,
    /// Commit the best usable miner after this long even below `--hedge-chars`.
    #[arg(long = "hedge-wait", env = "HEDGE_WAIT", default_value = "300ms", value_parser = parse_duration)]
    pub hedge_wait: Duration,
    /// A committed miner silent this long has stalled (0: no stall detection; the answer
    /// waits for the deadline).
    #[arg(long = "stall-after", env = "STALL_AFTER", default_value = "1500ms", value_parser = parse_duration)]
    pub stall_after: Duration,
    /// Continuations of a stalled answer allowed per request (0: a stall ends it at once with
    /// an error).
    #[arg(
        long = "failover-attempts",
        env = "FAILOVER_ATTEMPTS",
        default_value_t = 2
    )]
    pub failover_attempts: usize,
    /// Spare miners asked at once for one continuation.
    #[arg(long = "failover-width", env = "FAILOVER_WIDTH", default_value_t = 2)]
    pub failover_width: usize,
    /// A continuation must start within this long.
    #[arg(long = "failover-wait", env = "FAILOVER_WAIT", default_value = "1s", value_parser = parse_duration)]
    pub failover_wait: Duration,
    /// Share (0–1) of `reliable` picks spent exploring little-known miners.
    #[arg(long, env = "EXPLORATION", default_value_t = 0.1)]
    pub exploration: f64,
}

impl QualityArgs {
    /// The worker's quality settings (a fresh scoreboard).
    pub fn config(&self) -> QualityConfig {
        QualityConfig {
            hedge_chars: self.hedge_chars,
            hedge_wait: self.hedge_wait,
            stall_after: (!self.stall_after.is_zero()).then_some(self.stall_after),
            failover_attempts: self.failover_attempts,
            failover_width: self.failover_width.max(1),
            failover_wait: self.failover_wait,
            exploration: self.exploration.clamp(0.0, 1.0),
            ..QualityConfig::default()
        }
    }
}

/// How a process asks miners.
#[derive(clap::Args, Debug, Clone)]
pub struct MinerArgs {
    /// Jobs handled at once.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// How to talk to miners.
    #[arg(
        long = "miner-protocol",
        env = "MINER_PROTOCOL",
        value_enum,
        default_value = "classic"
    )]
    pub miner_protocol: ProtocolArg,
    /// `task_name` sent with the v2.12 synapse shape.
    #[arg(
        long = "task-name",
        env = "TASK_NAME",
        default_value = "QuestionAnsweringTask"
    )]
    pub task_name: String,
    /// A miner silent this long is given up on.
    #[arg(long = "first-byte-timeout", env = "FIRST_BYTE_TIMEOUT", default_value = "8s", value_parser = parse_duration)]
    pub first_byte_timeout: Duration,
    /// Bytes kept per miner reply.
    #[arg(long = "max-reply-bytes", env = "MAX_REPLY_BYTES", default_value_t = 256 * 1024)]
    pub max_reply_bytes: usize,
    /// Stake (τ) from which a neuron with a validator permit counts as a validator.
    #[arg(
        long = "validator-stake-threshold",
        env = "VALIDATOR_STAKE_THRESHOLD",
        default_value_t = 4096.0
    )]
    pub validator_stake_threshold: f64,
    /// Ask at most one miner per coldkey.
    #[arg(long = "one-per-coldkey", env = "ONE_PER_COLDKEY")]
    pub one_per_coldkey: bool,
    /// Ask at most one miner per IP.
    #[arg(long = "one-per-ip", env = "ONE_PER_IP")]
    pub one_per_ip: bool,
    /// Answer quality: hedged commit, stall failover, reliability scores.
    #[command(flatten)]
    pub quality: QualityArgs,
    /// Address blocks (CIDR, comma-separated, e.g. `10.20.0.0/16,fd00::/8`) whose axons may be
    /// asked although not public. Applies to metagraphs from the chain (Postgres / the synced
    /// SQLite snapshots); loopback, private, link-local, CGNAT, multicast, broadcast,
    /// documentation and reserved axons are otherwise refused. A --metagraph-file is trusted.
    #[arg(long = "axon-allow", env = "AXON_ALLOW", value_delimiter = ',')]
    pub axon_allow: Vec<String>,
}

impl MinerArgs {
    /// Problems with these settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.concurrency == 0 {
            out.push("WORKER_CONCURRENCY must be at least 1".into());
        }
        if self.max_reply_bytes == 0 {
            out.push("MAX_REPLY_BYTES must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.quality.exploration) {
            out.push("EXPLORATION must be between 0 and 1".into());
        }
        if self.first_byte_timeout.is_zero() {
            out.push("FIRST_BYTE_TIMEOUT must be positive".into());
        }
        for block in self.axon_allow.iter().filter(|b| !b.trim().is_empty()) {
            if let Err(e) = block.parse::<Cidr>() {
                out.push(format!("AXON_ALLOW / --axon-allow: {e}"));
            }
        }
        out
    }

    /// The rule for chain-sourced axons: `--axon-allow` plus `extra` (what a simulated subnet
    /// needs for its own miners). Blocks that do not parse were reported by `problems()`.
    pub fn axon_policy(&self, extra: &[Cidr]) -> AxonPolicy {
        let mut allow: Vec<Cidr> = self
            .axon_allow
            .iter()
            .filter_map(|b| b.parse().ok())
            .collect();
        allow.extend_from_slice(extra);
        AxonPolicy { allow }
    }

    /// The worker settings these flags describe.
    pub fn worker_config(
        &self,
        instance_id: String,
        progress_interval: Duration,
        drain_timeout: Duration,
    ) -> WorkerConfig {
        WorkerConfig {
            instance_id,
            concurrency: self.concurrency,
            protocol: self.miner_protocol.protocol(&self.task_name),
            first_byte_timeout: self.first_byte_timeout,
            max_reply_bytes: self.max_reply_bytes,
            selection: SelectionPolicy {
                validator_stake_threshold: self.validator_stake_threshold,
                one_per_coldkey: self.one_per_coldkey,
                one_per_ip: self.one_per_ip,
            },
            heartbeat_interval: Duration::from_secs(1),
            progress_interval,
            drain_timeout,
            quality: self.quality.config(),
        }
    }
}
