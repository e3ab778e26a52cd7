//! `sn1-gateway metagraph-syncer`: reads the subnet's metagraph from Subtensor into Postgres
//! snapshots and notifies workers. Safe to run as several replicas (one writes at a time).

use super::common::{self, LogArgs, parse_duration};
use sn1_contracts::bus::{Bus, NatsBus, QueueConfig, Subjects};
use sn1_contracts::store::{Retention, Store};
use sn1_metagraph_syncer::network::resolve_network;
use sn1_metagraph_syncer::{Syncer, SyncerConfig, SyncerProbe};
use sn1_telemetry::redact_url;
use std::process::ExitCode;
use std::time::Duration;

/// Configuration of the metagraph syncer.
#[derive(clap::Args, Debug)]
pub struct SyncerArgs {
    /// `finney`, `test`, `local` (ws://127.0.0.1:9944), `archive`, or a ws:// / wss:// URL.
    #[arg(
        long = "subtensor.network",
        env = "SUBTENSOR_NETWORK",
        hide_env_values = true,
        default_value = "finney"
    )]
    pub network: String,
    /// Subnet to sync.
    #[arg(long, env = "NETUID", default_value_t = 1)]
    pub netuid: u16,
    /// Postgres URL (the schema must be migrated: `sn1-gateway migrate`).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Time between syncs.
    #[arg(long, env = "SYNC_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Sync once and exit (0 when a snapshot of the finalized head is stored).
    #[arg(long)]
    pub once: bool,
    /// Delete snapshots older than this (e.g. 7d, 12h; 0 keeps them all). The newest is kept.
    #[arg(long, env = "METAGRAPH_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub retention: Duration,
    /// Also keep at most this many snapshots per netuid.
    #[arg(long = "keep-snapshots", env = "METAGRAPH_KEEP_SNAPSHOTS")]
    pub keep_snapshots: Option<u32>,
    /// NATS server for the `<prefix>.metagraph.updated` notification (none: workers only poll).
    #[arg(long = "nats-url", env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Prefix of the NATS subjects.
    #[arg(long = "nats-prefix", env = "NATS_PREFIX", default_value = "sn1")]
    pub nats_prefix: String,
    /// Limit for connecting to the node and for each RPC call.
    #[arg(long = "rpc-timeout", env = "SUBTENSOR_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub rpc_timeout: Duration,
    /// Longest wait between retries after chain or database errors.
    #[arg(long = "max-backoff", env = "SYNC_MAX_BACKOFF", default_value = "60s", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// With --once: how long to wait for another syncer to release the lock.
    #[arg(long = "lock-wait", env = "SYNC_LOCK_WAIT", default_value = "120s", value_parser = parse_duration)]
    pub lock_wait: Duration,
    /// /readyz fails when the newest snapshot is older than this.
    #[arg(long = "stale-after", env = "METAGRAPH_STALE_AFTER", default_value = "10m", value_parser = parse_duration)]
    pub stale_after: Duration,
    /// Port of /livez, /readyz and /metrics (0 = off; not served with --once).
    #[arg(long = "ops-port", env = "OPS_PORT", default_value_t = 9101)]
    pub ops_port: u16,
    #[command(flatten)]
    pub log: LogArgs,
}

impl SyncerArgs {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.database_url.is_none() {
            out.push("DATABASE_URL / --database-url is required".into());
        }
        if let Err(e) = resolve_network(&self.network) {
            out.push(format!("SUBTENSOR_NETWORK / --subtensor.network: {e}"));
        }
        if let Err(e) = Subjects::validate_prefix(&self.nats_prefix) {
            out.push(format!("NATS_PREFIX ({:?}) {e}", self.nats_prefix));
        }
        if self.interval < Duration::from_millis(100) {
            out.push("SYNC_INTERVAL must be at least 100ms".into());
        }
        if self.rpc_timeout.is_zero() {
            out.push("SUBTENSOR_TIMEOUT must be positive".into());
        }
        if self.keep_snapshots == Some(0) {
            out.push("METAGRAPH_KEEP_SNAPSHOTS must be at least 1".into());
        }
        out
    }
}

/// Runs the syncer until SIGTERM / Ctrl-C (or one sync with `--once`).
pub async fn run(args: SyncerArgs) -> anyhow::Result<ExitCode> {
    common::check(args.problems())?;
    let telemetry =
        sn1_telemetry::init("sn1-metagraph-syncer", args.log.log_format, &args.log.otel);
    let chain_url = resolve_network(&args.network).map_err(anyhow::Error::msg)?;
    let database_url = args.database_url.clone().unwrap_or_default();
    let mut config = SyncerConfig::new(chain_url.clone(), args.netuid);
    config.interval = args.interval;
    config.retention = Retention {
        max_age: Some(args.retention).filter(|d| !d.is_zero()),
        keep_last: args.keep_snapshots,
    };
    config.rpc_timeout = args.rpc_timeout;
    config.max_backoff = args.max_backoff.max(Duration::from_secs(1));
    let bus = match &args.nats_url {
        Some(url) => {
            let subjects = Subjects::new(args.nats_prefix.clone());
            Some(Bus::Nats(
                NatsBus::connect(url, subjects, QueueConfig::default()).await?,
            ))
        }
        None => None,
    };
    let store = Store::postgres(&database_url, 4).await?;
    let syncer = Syncer::new(config, store, bus).await?;
    tracing::info!(
        chain = %redact_url(&chain_url),
        netuid = args.netuid,
        interval = ?args.interval,
        once = args.once,
        "metagraph syncer starting"
    );
    let shutdown = common::shutdown_token();
    if args.once {
        let report = syncer.run_once(&shutdown, args.lock_wait, 3).await?;
        eprintln!(
            "netuid {} block {}: snapshot {} {} ({} neurons, {} serving; fetch {:?}, decode {:?}, write {:?})",
            args.netuid,
            report.snapshot.block,
            report.snapshot.id,
            if report.stored {
                "stored"
            } else {
                "already stored"
            },
            report.neurons,
            report.serving,
            report.fetch_time,
            report.decode_time,
            report.write_time,
        );
        telemetry.shutdown();
        return Ok(ExitCode::SUCCESS);
    }
    if args.ops_port != 0 {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", args.ops_port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on OPS_PORT {}: {e}", args.ops_port))?;
        let probe = SyncerProbe {
            store: syncer.store().clone(),
            status: syncer.status(),
            stale_after: args.stale_after,
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = sn1_telemetry::ops::serve(listener, probe, stop).await {
                tracing::warn!(error = %e, "ops server stopped");
            }
        });
    }
    syncer.run(shutdown).await;
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}
