//! Configuration shared by several subcommands (NATS, logging) and helpers to run a role until
//! a shutdown signal.

use anyhow::bail;
use sn1_contracts::bus::Subjects;
pub use sn1_contracts::duration::parse_duration;
use sn1_telemetry::LogFormat;
use tokio_util::sync::CancellationToken;

/// Where the job queue lives.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    /// NATS server URL (JetStream enabled).
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        hide_env_values = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Prefix of every stream and subject, so deployments can share a NATS server.
    #[arg(long = "nats-prefix", env = "NATS_PREFIX", default_value = "sn1")]
    pub nats_prefix: String,
    /// Jobs the queue holds at most (publishing beyond answers 503).
    #[arg(
        long = "queue-max-jobs",
        env = "QUEUE_MAX_JOBS",
        default_value_t = sn1_contracts::bus::QueueConfig::default().max_jobs
    )]
    pub queue_max_jobs: i64,
}

impl NatsArgs {
    /// Problems with these settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.queue_max_jobs <= 0 {
            out.push("QUEUE_MAX_JOBS must be at least 1".into());
        }
        if let Err(e) = Subjects::validate_prefix(&self.nats_prefix) {
            out.push(format!("NATS_PREFIX ({:?}) {e}", self.nats_prefix));
        }
        if !(self.nats_url.starts_with("nats://")
            || self.nats_url.starts_with("tls://")
            || self.nats_url.starts_with("ws://")
            || self.nats_url.starts_with("wss://")
            || !self.nats_url.contains("://"))
        {
            out.push(format!(
                "NATS_URL ({:?}) must be nats://host:port (or tls://, ws://, wss://)",
                sn1_telemetry::redact_url(&self.nats_url)
            ));
        }
        out
    }

    /// The job queue's settings (the same on every role that may create the stream).
    pub fn queue_config(&self) -> sn1_contracts::bus::QueueConfig {
        sn1_contracts::bus::QueueConfig {
            max_jobs: self.queue_max_jobs,
            ..sn1_contracts::bus::QueueConfig::default()
        }
    }

    /// The subjects for the configured prefix.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(self.nats_prefix.clone())
    }
}

/// Logging.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// `text` or `json` log lines (filter with RUST_LOG).
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// OpenTelemetry export (the standard `OTEL_*` variables).
    #[command(flatten)]
    pub otel: sn1_telemetry::OtelArgs,
}

/// Fails with one message naming every problem.
pub fn check(problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!("invalid configuration:\n  - {}", problems.join("\n  - "))
}

/// A token cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}
