//! `sn1-gateway worker`: pulls jobs, fans out to miners, streams answers back.

use super::audit_args::AuditArgs;
use super::common::{self, LogArgs, NatsArgs, parse_duration};
use super::miner_args::MinerArgs;
use crate::wallet_args::WalletArgs;
use sn1_bittensor::dendrite::{Dendrite, DendriteConfig};
use sn1_contracts::bus::{AuditQueueConfig, Bus, NatsBus};
use sn1_contracts::store::Store;
use sn1_worker::Worker;
use sn1_worker::audit::run_writer;
use sn1_worker::directory::Directory;
use sn1_worker::job::JobRunner;
use sn1_worker::ops::WorkerProbe;
use sn1_worker::reliability::shared::{self, RefreshConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Configuration of the worker role.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Subnet id.
    #[arg(long, env = "NETUID", default_value_t = 1)]
    pub netuid: u16,
    /// Static metagraph file (JSON) to pick miners from; overrides the Postgres snapshots.
    #[arg(long = "metagraph-file", env = "METAGRAPH_FILE")]
    pub metagraph_file: Option<PathBuf>,
    /// Postgres URL. When set, every request is audited (records go through the JetStream
    /// audit stream) and this worker also runs an audit writer into Postgres.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Bytes the JetStream audit stream buffers at most while Postgres is behind (reserved on
    /// the NATS server when the stream is created; records beyond are refused and counted).
    #[arg(
        long = "audit-stream-max-bytes",
        env = "AUDIT_STREAM_MAX_BYTES",
        default_value_t = AuditQueueConfig::default().max_bytes
    )]
    pub audit_stream_max_bytes: i64,
    #[command(flatten)]
    pub miners: MinerArgs,
    /// This worker's public IP as sent in the synapse headers (never looked up online).
    #[arg(long = "external-ip", env = "EXTERNAL_IP", default_value = "127.0.0.1")]
    pub external_ip: String,
    /// Port of the worker's /livez, /readyz and /metrics (0 = off).
    #[arg(long = "ops-port", env = "OPS_PORT", default_value_t = 9100)]
    pub ops_port: u16,
    /// On shutdown, in-flight jobs get this long to finish.
    #[arg(long = "drain-timeout", env = "DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub log: LogArgs,
}

impl WorkerArgs {
    fn problems(&self) -> Vec<String> {
        let mut out = self.nats.problems();
        match &self.metagraph_file {
            None if self.database_url.is_none() => out.push(
                "DATABASE_URL (metagraph snapshots written by the metagraph syncer) or \
                 METAGRAPH_FILE / --metagraph-file is required"
                    .into(),
            ),
            None => {}
            Some(p) if !p.is_file() => out.push(format!(
                "METAGRAPH_FILE ({}) does not exist or is not a file",
                p.display()
            )),
            Some(_) => {}
        }
        out.extend(self.miners.problems());
        out
    }
}

/// Runs the worker until SIGTERM / Ctrl-C.
pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    common::check(args.problems())?;
    let hotkey = args.wallet.load()?;
    let telemetry = sn1_telemetry::init("sn1-worker", args.log.log_format, &args.log.otel);
    if args.database_url.is_none() {
        tracing::warn!("DATABASE_URL not set: audit log off");
    }
    let store = match &args.database_url {
        Some(url) => Some(Store::postgres(url, 8).await?),
        None => None,
    };
    let directory = match (&args.metagraph_file, &store) {
        (Some(path), _) => Directory::from_file(path)?,
        (None, Some(store)) => {
            let axons = args.miners.axon_policy(&[]);
            Directory::from_store(store.clone(), args.netuid, axons).await?
        }
        (None, None) => Directory::default(),
    };
    tracing::info!(
        hotkey = %hotkey.ss58(),
        neurons = directory.snapshot().neurons.len(),
        netuid = args.netuid,
        "worker starting"
    );
    let dendrite = Dendrite::new(
        hotkey,
        DendriteConfig {
            external_ip: args.external_ip.clone(),
            connect_timeout: Duration::from_secs(3),
        },
    )?;
    let mut queue = args.nats.queue_config();
    queue.audit = AuditQueueConfig {
        max_bytes: args.audit_stream_max_bytes,
        ..AuditQueueConfig::default()
    };
    let progress_interval = queue.ack_wait / 3;
    let bus = Bus::Nats(NatsBus::connect(&args.nats.nats_url, args.nats.subjects(), queue).await?);
    let config = args.miners.worker_config(
        format!("worker-{}", &uuid_like()),
        progress_interval,
        args.drain_timeout,
    );
    let shutdown = common::shutdown_token();
    if args.metagraph_file.is_none() {
        // Snapshots from the store: reload on <prefix>.metagraph.updated and every 30 s.
        let (dir, stop) = (directory.clone(), shutdown.clone());
        let updates = bus.subscribe_metagraph_updates().await?;
        tokio::spawn(async move {
            dir.follow_updates(updates, Duration::from_secs(30), stop)
                .await
        });
    }
    if let Some(store) = &store {
        // Every worker reads the same scores from the audit log (README, "Answer quality").
        let refresh = RefreshConfig::for_board(&config.quality.scores);
        let (store, board, stop) = (
            store.clone(),
            config.quality.scores.clone(),
            shutdown.clone(),
        );
        tokio::spawn(shared::run(store, board, refresh, stop));
    }
    let runner = JobRunner {
        dendrite,
        directory,
        config,
    };
    let mut worker = Worker::new(bus.clone(), runner);
    if args.ops_port != 0 {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", args.ops_port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on OPS_PORT {}: {e}", args.ops_port))?;
        let probe = WorkerProbe {
            bus: bus.clone(),
            directory: worker.directory(),
            intake: worker.intake(),
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = sn1_telemetry::ops::serve(listener, probe, stop).await {
                tracing::warn!(error = %e, "ops server stopped");
            }
        });
    }
    let mut writer = None;
    if let Some(store) = store {
        store.check_migrations().await?;
        bus.ensure_audit_queue().await?;
        worker = worker.with_audit(args.audit.settings(args.netuid));
        let (config, stop) = (args.audit.writer_config(), shutdown.clone());
        writer = Some(tokio::spawn(run_writer(bus.clone(), store, config, stop)));
    }
    worker.run(shutdown).await?;
    if let Some(writer) = writer {
        // Flushes the batch in hand (shutdown ends the loop between batches).
        writer.await??;
    }
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn uuid_like() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}
