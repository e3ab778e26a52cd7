//! `sn1-gateway standalone`: api + worker + metagraph syncer + audit writer in one process, with
//! an in-process queue in place of JetStream and SQLite (a file in the data directory) in place
//! of Postgres — the same api, worker and chain-reading code above and below those two seams.
//! With `--simnet` a simulated subnet (fake chain + simulated miners) runs in-process too, so it
//! answers with no wallet and no network.

use super::api::{AdminArgs, AuthArgs, ConnectionArgs, ModelsArgs, OpsArgs};
use super::audit_args::AuditArgs;
use super::common::{self, LogArgs, parse_duration};
use super::miner_args::MinerArgs;
use crate::wallet_args::WalletArgs;
use secrecy::SecretString;
use sn1_api::auth::Auth;
use sn1_api::request::RequestLimits;
use sn1_api::{ApiConfig, AppState};
use sn1_bittensor::dendrite::{Dendrite, DendriteConfig};
use sn1_contracts::bus::{Bus, MemoryBus};
use sn1_contracts::store::{Retention, Store};
use sn1_metagraph_syncer::{Syncer, SyncerConfig};
use sn1_simnet::chain::{FakeChain, Head};
use sn1_simnet::fleet::{Fleet, FleetConfig};
use sn1_worker::Worker;
use sn1_worker::audit::run_writer;
use sn1_worker::axon_policy::Cidr;
use sn1_worker::directory::Directory;
use sn1_worker::job::JobRunner;
use sn1_worker::reliability::shared::{self, RefreshConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Configuration of standalone mode.
#[derive(clap::Args, Debug)]
pub struct StandaloneArgs {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 10000)]
    pub port: u16,
    /// Address to listen on (loopback by default: standalone is for one box).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The API key (`EXPECTED_ACCESS_KEY`); with `--simnet` and no key, one is made up and
    /// printed.
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Run a simulated subnet in-process (no wallet, no network needed).
    #[arg(long)]
    pub simnet: bool,
    /// Simulated miners.
    #[arg(long = "simnet-miners", env = "SIMNET_MINERS", default_value_t = 8)]
    pub simnet_miners: u16,
    /// How many simulated miners misbehave.
    #[arg(
        long = "simnet-misbehaving",
        env = "SIMNET_MISBEHAVING",
        default_value_t = 2
    )]
    pub simnet_misbehaving: u16,
    /// Milliseconds before a well-behaved simulated miner's first chunk (plus the spread).
    #[arg(long = "simnet-first-byte-ms", env = "SIMNET_FIRST_BYTE_MS", default_value_t = FleetConfig::default().base_first_byte.as_millis() as u64)]
    pub simnet_first_byte_ms: u64,
    /// Spread of first-chunk latencies across simulated miners, in milliseconds.
    #[arg(long = "simnet-latency-spread-ms", env = "SIMNET_LATENCY_SPREAD_MS", default_value_t = FleetConfig::default().latency_spread.as_millis() as u64)]
    pub simnet_latency_spread_ms: u64,
    /// Milliseconds between a simulated miner's chunks.
    #[arg(long = "simnet-chunk-gap-ms", env = "SIMNET_CHUNK_GAP_MS", default_value_t = FleetConfig::default().chunk_gap.as_millis() as u64)]
    pub simnet_chunk_gap_ms: u64,
    /// Directory of the SQLite audit database.
    #[arg(long = "data-dir", env = "DATA_DIR", default_value = "sn1-data")]
    pub data_dir: PathBuf,
    /// Static metagraph file (JSON) to pick miners from; overrides chain sync.
    #[arg(long = "metagraph-file", env = "METAGRAPH_FILE")]
    pub metagraph_file: Option<PathBuf>,
    /// Subtensor to sync the metagraph from: `finney`, `test`, `local` or a ws(s):// URL
    /// (without `--simnet`; `--simnet` serves its own fake chain).
    #[arg(
        long = "subtensor.network",
        env = "SUBTENSOR_NETWORK",
        hide_env_values = true
    )]
    pub subtensor_network: Option<String>,
    /// Subnet id.
    #[arg(long, env = "NETUID", default_value_t = 1)]
    pub netuid: u16,
    /// Time between metagraph syncs.
    #[arg(long = "sync-interval", env = "SYNC_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub sync_interval: Duration,
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub miners: MinerArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Requests relayed at once; more get 503.
    #[arg(long = "max-in-flight", env = "MAX_IN_FLIGHT", default_value_t = ApiConfig::default().max_in_flight)]
    pub max_in_flight: usize,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub models: ModelsArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl StandaloneArgs {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.metagraph_file
            && !p.is_file()
        {
            out.push(format!("METAGRAPH_FILE ({}) does not exist", p.display()));
        }
        if let Some(network) = &self.subtensor_network
            && let Err(e) = sn1_metagraph_syncer::network::resolve_network(network)
        {
            out.push(format!("SUBTENSOR_NETWORK: {e}"));
        }
        if !self.simnet && self.metagraph_file.is_none() && self.subtensor_network.is_none() {
            out.push(
                "without --simnet, set SUBTENSOR_NETWORK / --subtensor.network (chain sync) or METAGRAPH_FILE"
                    .into(),
            );
        }
        // A key is required unless --simnet (which makes one up).
        out.extend(self.auth.problems(!self.simnet));
        out.extend(self.auth.secret_problems(false));
        out.extend(self.admin.problems());
        if self.simnet && self.simnet_miners == 0 {
            out.push("SIMNET_MINERS must be at least 1".into());
        }
        out.extend(self.miners.problems());
        out.extend(self.connections.problems());
        out.extend(self.models.problems(RequestLimits::default().max_k));
        out
    }
}

/// Runs everything until SIGTERM / Ctrl-C.
pub async fn run(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    common::check(args.problems())?;
    let telemetry = sn1_telemetry::init("sn1-standalone", args.log.log_format, &args.log.otel);
    let shutdown = common::shutdown_token();

    // The subnet: simulated in-process, or a metagraph file.
    let fleet = if args.simnet {
        Some(
            Fleet::start(&FleetConfig {
                miners: args.simnet_miners,
                misbehaving: args
                    .simnet_misbehaving
                    .min(args.simnet_miners.saturating_sub(1)),
                base_first_byte: Duration::from_millis(args.simnet_first_byte_ms),
                latency_spread: Duration::from_millis(args.simnet_latency_spread_ms),
                chunk_gap: Duration::from_millis(args.simnet_chunk_gap_ms),
                ..FleetConfig::default()
            })
            .await?,
        )
    } else {
        None
    };
    // The simulated subnet's fake chain, read by the same syncer code as a real one.
    let chain = match &fleet {
        Some(fleet) => {
            let chain =
                FakeChain::from_metagraph(fleet.metagraph(), Head::clock(Duration::from_secs(12)))?;
            Some(
                chain
                    .start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await?,
            )
        }
        None => None,
    };
    let hotkey = match args.wallet.load() {
        Ok(key) => key,
        Err(e) if args.simnet => {
            tracing::info!(reason = %e, "no wallet: using a throwaway hotkey for the simulated subnet");
            WalletArgs {
                ephemeral: true,
                ..args.wallet.clone()
            }
            .load()?
        }
        Err(e) => return Err(e),
    };

    // The store: SQLite in the data directory.
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create DATA_DIR {}: {e}", args.data_dir.display()))?;
    let db_path = args.data_dir.join("sn1.sqlite3");
    let store = Store::sqlite(&db_path).await?;
    let bus = Bus::Memory(MemoryBus::new(10_000));
    // The writer stops after the worker (its last producer), so it writes every record.
    let writer_stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(run_writer(
        bus.clone(),
        store.clone(),
        args.audit.writer_config(),
        writer_stop.clone(),
    ));

    // The metagraph: a file overrides; otherwise sync from the (fake or real) chain now, then
    // every SYNC_INTERVAL in the background.
    let sync_url = match (&chain, &args.subtensor_network) {
        (Some(server), _) => Some(server.ws_url()),
        (None, Some(network)) => Some(
            sn1_metagraph_syncer::network::resolve_network(network).map_err(anyhow::Error::msg)?,
        ),
        (None, None) => None,
    };
    let directory = match (&args.metagraph_file, sync_url) {
        (Some(path), _) => Directory::from_file(path)?,
        (None, Some(url)) => {
            let mut config = SyncerConfig::new(url, args.netuid);
            config.interval = args.sync_interval;
            config.retention = Retention {
                max_age: None,
                keep_last: Some(10),
            };
            let syncer = Syncer::new(config, store.clone(), Some(bus.clone())).await?;
            // The first sync before serving, so the first request finds miners.
            if let Err(e) = syncer.run_once(&shutdown, Duration::ZERO, 1).await {
                if chain.is_some() {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, "first metagraph sync failed; retrying in the background (no miner until it works)");
            }
            // The simulated subnet's miners listen on loopback: admit them.
            let simnet_miners = args.simnet.then_some(Cidr::IPV4_LOOPBACK);
            let axons = args.miners.axon_policy(simnet_miners.as_slice());
            let directory = Directory::from_store(store.clone(), args.netuid, axons).await?;
            let updates = bus.subscribe_metagraph_updates().await?;
            let (dir, stop) = (directory.clone(), shutdown.clone());
            tokio::spawn(
                async move { dir.follow_updates(updates, args.sync_interval, stop).await },
            );
            let stop = shutdown.clone();
            tokio::spawn(async move { syncer.run(stop).await });
            directory
        }
        (None, None) => anyhow::bail!("no metagraph source (checked in problems())"),
    };
    let dendrite = Dendrite::new(
        hotkey,
        DendriteConfig {
            external_ip: "127.0.0.1".into(),
            connect_timeout: Duration::from_secs(3),
        },
    )?;
    let config = args.miners.worker_config(
        "standalone".into(),
        Duration::from_secs(5),
        Duration::from_secs(10),
    );
    // `reliable` scores come back from the audit log in SQLite, so they survive a restart.
    let refresh = RefreshConfig::for_board(&config.quality.scores);
    let board = config.quality.scores.clone();
    tokio::spawn(shared::run(store.clone(), board, refresh, shutdown.clone()));
    let runner = JobRunner {
        dendrite,
        directory,
        config,
    };
    let worker = Worker::new(bus.clone(), runner).with_audit(args.audit.settings(args.netuid));
    let worker = tokio::spawn(worker.run(shutdown.clone()));

    let id_secret = key_id_secret(&args)?;
    let (auth, made_up_key) = match args.auth.auth(&id_secret) {
        Some(auth) => (auth, None),
        None => {
            let key = format!("sn1-{}", hex::encode(rand::random::<[u8; 16]>()));
            (
                Auth::with_key(SecretString::from(key.clone()), &id_secret),
                Some(key),
            )
        }
    };
    let config = ApiConfig {
        max_in_flight: args.max_in_flight,
        connections: args.connections.limits(),
        models: args.models.models(RequestLimits::default().max_k),
        ..ApiConfig::default()
    };
    let state = args
        .admin
        .apply(AppState::new(bus, auth, config).with_store(store.clone()));
    let listener = sn1_api::listen(std::net::SocketAddr::new(args.host, args.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{} (PORT): {e}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    args.ops.spawn(args.host, &state, shutdown.clone())?;
    banner(addr, made_up_key.as_deref(), fleet.is_some(), &db_path);
    sn1_api::serve(listener, state, shutdown.clone()).await?;
    worker.await??;
    // The worker (the last producer) is gone: the writer writes what it holds and stops.
    writer_stop.cancel();
    writer.await??;
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// `KEY_ID_SECRET`, or (one process, so no replica to agree with) a secret made up once and
/// kept in the data directory, so key ids stay the same across restarts.
fn key_id_secret(args: &StandaloneArgs) -> anyhow::Result<SecretString> {
    if let Some(secret) = args.auth.key_id_secret() {
        return Ok(secret);
    }
    let path = args.data_dir.join("key-id-secret");
    let (secret, created) = sn1_api::auth::load_or_create_secret(&path).map_err(|e| {
        anyhow::anyhow!(
            "KEY_ID_SECRET is not set and {} cannot be used: {e}",
            path.display()
        )
    })?;
    if created {
        tracing::warn!(path = %path.display(), "KEY_ID_SECRET is not set: made up a key-id secret and stored it in the data directory (set KEY_ID_SECRET to choose your own)");
    }
    Ok(secret)
}

fn banner(addr: std::net::SocketAddr, key: Option<&str>, simnet: bool, db: &std::path::Path) {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let key_text = key.unwrap_or("$EXPECTED_ACCESS_KEY");
    let subnet = if simnet {
        "a simulated subnet"
    } else {
        "the metagraph file"
    };
    // The one place this binary prints to stdout: what a newcomer needs to paste.
    let text = format!(
        "\nsn1-gateway standalone is up on http://{host}:{port} ({subnet}; audit log in {db}).\n\
         API key: {key_text}\n\
         Try:\n  curl --no-buffer -X POST http://{host}:{port}/chat/ -H \"api_key: {key_text}\" \\\n    \
         -H \"Content-Type: application/json\" \\\n    \
         -d '{{\"k\": 5, \"timeout\": 15, \"roles\": [\"user\"], \"messages\": [\"Tell me a happy story about a rabbit and a turtle that meet on a budget cruise around Northern Ireland\"]}}'\n",
        port = addr.port(),
        db = db.display(),
    );
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
