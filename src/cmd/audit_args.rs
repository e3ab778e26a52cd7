//! The audit-log flags shared by the roles that run jobs (`worker`, `standalone`); their
//! defaults are the library's own ([`AuditSettings`], [`WriterConfig`]).

use super::common::parse_duration;
use sn1_contracts::audit::ContentPolicy;
use sn1_worker::audit::{AuditSettings, WriterConfig};
use std::time::Duration;

/// What the audit log keeps, and how it is written.
#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// What the audit log keeps of prompts and texts: `full`, `hash` (SHA-256 only) or `none`.
    #[arg(
        long = "audit-content",
        env = "AUDIT_CONTENT",
        value_enum,
        default_value_t = AuditSettings::default().content
    )]
    pub content: ContentPolicy,
    /// Prompts and texts older than this are pruned to their hashes (e.g. 30d; unset: kept).
    #[arg(long = "audit-retention", env = "AUDIT_RETENTION", value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// Bytes of each miner's text the audit log keeps.
    #[arg(
        long = "audit-max-text-bytes",
        env = "AUDIT_MAX_TEXT_BYTES",
        default_value_t = AuditSettings::default().max_text_bytes
    )]
    pub max_text_bytes: usize,
    /// Records per audit insert at most.
    #[arg(
        long = "audit-batch",
        env = "AUDIT_BATCH",
        default_value_t = WriterConfig::default().batch
    )]
    pub batch: usize,
}

impl AuditArgs {
    /// How records of `netuid` are built.
    pub fn settings(&self, netuid: u16) -> AuditSettings {
        AuditSettings {
            content: self.content,
            max_text_bytes: self.max_text_bytes,
            netuid,
            ..AuditSettings::default()
        }
    }

    /// How the writer batches and prunes.
    pub fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            batch: self.batch.max(1),
            retention: self.retention,
            ..WriterConfig::default()
        }
    }
}
