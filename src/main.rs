//! `sn1-gateway`: one binary, one subcommand per role, so one container image carries them all.
//! With no arguments it runs `standalone --simnet`.

mod cmd;
mod dendrite_cmd;
mod wallet_args;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than the system allocator: under load the gateway allocates per request and
/// per chunk on many threads, where glibc's malloc spent ~10% of the worker's and api's CPU
/// (perf, 64 streams).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Rust gateway in front of Bittensor subnet 1.
#[derive(Parser, Debug)]
#[command(name = "sn1-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The HTTP edge: auth, validation, publish jobs, stream answers.
    Api(cmd::api::ApiArgs),
    /// Pulls jobs, fans out to miners, streams answers back.
    Worker(cmd::worker::WorkerArgs),
    /// Reads the metagraph from Subtensor into Postgres.
    MetagraphSyncer(cmd::syncer::SyncerArgs),
    /// Managed API keys: create, list, revoke, set-limits.
    Keys(cmd::keys::KeysArgs),
    /// Applies the database migrations.
    Migrate(cmd::migrate::MigrateArgs),
    /// Everything in one process (in-process queue, SQLite); `--simnet` adds a simulated subnet.
    Standalone(cmd::standalone::StandaloneArgs),
    /// A simulated subnet: N simulated miners on loopback and the metagraph file listing them.
    Simnet(cmd::simnet::SimnetArgs),
    /// Query one axon directly and print its streamed answer (for debugging a miner).
    Dendrite(dendrite_cmd::DendriteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Api(args)) => cmd::api::run(args).await,
            Some(Command::Worker(args)) => cmd::worker::run(args).await,
            Some(Command::Simnet(args)) => cmd::simnet::run(args).await,
            Some(Command::Dendrite(args)) => dendrite_cmd::run(args).await,
            Some(Command::MetagraphSyncer(args)) => cmd::syncer::run(args).await,
            Some(Command::Migrate(args)) => cmd::migrate::run(args).await,
            Some(Command::Keys(args)) => cmd::keys::run(args).await,
            Some(Command::Standalone(args)) => cmd::standalone::run(args).await,
            None => {
                let Cli {
                    command: Some(Command::Standalone(args)),
                } = Cli::parse_from(["sn1-gateway", "standalone", "--simnet"])
                else {
                    unreachable!("parsing a fixed command line")
                };
                cmd::standalone::run(args).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
