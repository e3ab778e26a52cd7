//! `sn1-gateway migrate`: applies the Postgres migrations. Run it once per release (the Helm
//! chart runs it as a pre-install/pre-upgrade Job); the other roles only check the schema.

use super::common::{self, LogArgs};
use std::process::ExitCode;

/// Configuration of the migration run.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Postgres URL.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Applies every pending migration.
pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let Some(url) = args.database_url else {
        common::check(vec!["DATABASE_URL / --database-url is required".into()])?;
        return Ok(ExitCode::FAILURE);
    };
    let telemetry = sn1_telemetry::init("sn1-migrate", args.log.log_format, &args.log.otel);
    let store = sn1_contracts::store::Store::postgres(&url, 2).await?;
    let applied = store.migrate().await?;
    tracing::info!(migrations = applied, "database schema up to date");
    eprintln!("database schema up to date ({applied} migrations)");
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}
