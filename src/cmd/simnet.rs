//! `sn1-gateway simnet`: N simulated miners on loopback, with varied latencies and a few
//! misbehaving, and the metagraph file that lists them (written atomically once all listen).

use super::common::{self, LogArgs};
use sn1_simnet::fleet::{Fleet, FleetConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Configuration of the simulated subnet.
#[derive(clap::Args, Debug)]
pub struct SimnetArgs {
    /// Number of simulated miners.
    #[arg(long, env = "SIMNET_MINERS", default_value_t = 8)]
    pub miners: u16,
    /// How many of them misbehave (stall, refuse, error, empty, reset, error body as text).
    #[arg(long, env = "SIMNET_MISBEHAVING", default_value_t = 2)]
    pub misbehaving: u16,
    /// Where to write the metagraph file listing the miners.
    #[arg(long = "metagraph-out", env = "METAGRAPH_FILE")]
    pub metagraph_out: PathBuf,
    /// Address the miners listen on.
    #[arg(long, env = "SIMNET_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Milliseconds before a well-behaved miner's first chunk (plus the per-uid spread).
    #[arg(
        long = "first-byte-ms",
        env = "SIMNET_FIRST_BYTE_MS",
        default_value_t = 20
    )]
    pub first_byte_ms: u64,
    /// Spread of first-chunk latencies across miners, in milliseconds (0: all equal).
    #[arg(
        long = "latency-spread-ms",
        env = "SIMNET_LATENCY_SPREAD_MS",
        default_value_t = 180
    )]
    pub latency_spread_ms: u64,
    /// Milliseconds between chunks.
    #[arg(
        long = "chunk-gap-ms",
        env = "SIMNET_CHUNK_GAP_MS",
        default_value_t = 15
    )]
    pub chunk_gap_ms: u64,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Runs the simulated subnet until SIGTERM / Ctrl-C.
pub async fn run(args: SimnetArgs) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    if args.miners == 0 {
        problems.push("SIMNET_MINERS / --miners must be at least 1".to_string());
    }
    if args.misbehaving > args.miners {
        problems.push("SIMNET_MISBEHAVING / --misbehaving cannot exceed --miners".to_string());
    }
    common::check(problems)?;
    let telemetry = sn1_contracts::telemetry::init("sn1-simnet", args.log.log_format);
    let fleet = Fleet::start(&FleetConfig {
        miners: args.miners,
        misbehaving: args.misbehaving,
        host: args.host,
        base_first_byte: Duration::from_millis(args.first_byte_ms),
        latency_spread: Duration::from_millis(args.latency_spread_ms),
        chunk_gap: Duration::from_millis(args.chunk_gap_ms),
    })
    .await?;
    fleet.metagraph().save_atomically(&args.metagraph_out)?;
    tracing::info!(
        miners = args.miners,
        misbehaving = args.misbehaving,
        metagraph = %args.metagraph_out.display(),
        "simulated subnet up"
    );
    common::shutdown_token().cancelled().await;
    drop(fleet);
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}
