//! `sn1-gateway simnet`: N simulated miners on loopback, with varied latencies and a few
//! misbehaving; a fake Subtensor node (JSON-RPC, WebSocket and HTTP) serving their metagraph to
//! the metagraph syncer; and, optionally, the metagraph file that lists them (written
//! atomically once all listen).

use super::common::{self, LogArgs};
use sn1_simnet::chain::{FakeChain, Head};
use sn1_simnet::fleet::{Fleet, FleetConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Port of the fake chain unless told otherwise (what `--subtensor.network local` uses).
const DEFAULT_CHAIN_PORT: u16 = 9944;

/// Configuration of the simulated subnet.
#[derive(clap::Args, Debug)]
pub struct SimnetArgs {
    /// Number of simulated miners.
    #[arg(long, env = "SIMNET_MINERS", default_value_t = 8)]
    pub miners: u16,
    /// How many of them misbehave (stall, refuse, error, empty, reset, error body as text).
    #[arg(long, env = "SIMNET_MISBEHAVING", default_value_t = 2)]
    pub misbehaving: u16,
    /// Where to write the metagraph file listing the miners (optional: workers can read the
    /// metagraph from Postgres, filled by the syncer from the fake chain).
    #[arg(long = "metagraph-out", env = "METAGRAPH_FILE")]
    pub metagraph_out: Option<PathBuf>,
    /// Port of the fake Subtensor node, ws://HOST:PORT (0 = chosen by the OS; printed). Without
    /// it: 9944 (the `local` network), or a free port when 9944 is taken.
    #[arg(long = "chain-port", env = "SIMNET_CHAIN_PORT")]
    pub chain_port: Option<u16>,
    /// Time per block of the fake chain (blocks are numbered from the Unix epoch).
    #[arg(long = "block-time", env = "SIMNET_BLOCK_TIME", default_value = "12s", value_parser = common::parse_duration)]
    pub block_time: Duration,
    /// Netuid the fake chain lists the miners under.
    #[arg(long, env = "NETUID", default_value_t = 1)]
    pub netuid: u16,
    /// Serve the recorded finney answers in this directory (shared/protocol/fixtures: block
    /// 6852690, netuids 1 and 23) instead of the simulated miners' metagraph.
    #[arg(long = "chain-fixtures", env = "SIMNET_CHAIN_FIXTURES")]
    pub chain_fixtures: Option<PathBuf>,
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
    /// A behaviour profile instead of `--misbehaving` and the latencies: `default` (35%
    /// fast_good, 20% slow_good, 8% empty, 8% refusing, 14% stalling, 8% erroring, 7% garbage)
    /// or weights such as `fast_good=50,stalling=50`. Every miner then answers the same text to
    /// the same prompt and continues a partial answer (see README, "Answer quality").
    #[arg(long, env = "SIMNET_PROFILE")]
    pub profile: Option<sn1_simnet::profile::Profile>,
    /// Seed of the profile's assignment of behaviours to uids (same seed, same fleet).
    #[arg(
        long = "profile-seed",
        env = "SIMNET_PROFILE_SEED",
        default_value_t = 1
    )]
    pub profile_seed: u64,
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
    let telemetry = sn1_telemetry::init("sn1-simnet", args.log.log_format, &args.log.otel);
    let fleet = Fleet::start(&FleetConfig {
        miners: args.miners,
        misbehaving: args.misbehaving,
        host: args.host,
        base_first_byte: Duration::from_millis(args.first_byte_ms),
        latency_spread: Duration::from_millis(args.latency_spread_ms),
        chunk_gap: Duration::from_millis(args.chunk_gap_ms),
        profile: args.profile.clone().map(|p| (p, args.profile_seed)),
    })
    .await?;
    let mut metagraph = fleet.metagraph().clone();
    metagraph.netuid = args.netuid;
    let chain = match &args.chain_fixtures {
        Some(dir) => FakeChain::from_fixture_dir(dir)?,
        None => FakeChain::from_metagraph(&metagraph, Head::clock(args.block_time))?,
    };
    let port = args.chain_port.unwrap_or(DEFAULT_CHAIN_PORT);
    let server = match chain.start(SocketAddr::new(args.host, port)).await {
        Ok(server) => server,
        Err(e) if args.chain_port.is_none() => {
            tracing::warn!(error = %e, "port {port} is taken; the fake chain takes a free port");
            chain.start(SocketAddr::new(args.host, 0)).await?
        }
        Err(e) => anyhow::bail!("cannot serve the fake chain on port {port}: {e}"),
    };
    if let Some(path) = &args.metagraph_out {
        metagraph.save_atomically(path)?;
    }
    tracing::info!(
        miners = args.miners,
        misbehaving = args.misbehaving,
        chain = %server.ws_url(),
        netuid = args.netuid,
        metagraph = ?args.metagraph_out,
        "simulated subnet up"
    );
    eprintln!(
        "fake chain: {} (sn1-gateway metagraph-syncer --subtensor.network {} --netuid {})",
        server.ws_url(),
        server.ws_url(),
        args.netuid
    );
    common::shutdown_token().cancelled().await;
    server.stop();
    drop(fleet);
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}
