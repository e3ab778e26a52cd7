//! The NATS bus's stream and subject names. Everything lives under one prefix (`NATS_PREFIX`, default
//! `sn1`) so several deployments or test runs can share one NATS server without seeing each
//! other.

/// The names for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Names under `prefix` (letters, digits, `-` and `_`; see [`Subjects::validate_prefix`]).
    pub fn new(prefix: impl Into<String>) -> Self {
        Subjects {
            prefix: prefix.into(),
        }
    }

    /// Checks that a prefix can be used both in subjects and in stream names.
    pub fn validate_prefix(prefix: &str) -> Result<(), String> {
        if prefix.is_empty() || prefix.len() > 32 {
            return Err("must be 1 to 32 characters".into());
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err("may hold only letters, digits, '-' and '_'".into());
        }
        Ok(())
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// JetStream stream holding jobs (work-queue retention), e.g. `SN1_JOBS`.
    pub fn jobs_stream(&self) -> String {
        format!("{}_JOBS", self.stream_part())
    }

    /// Subject jobs are published on, e.g. `sn1.jobs`.
    pub fn jobs(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// Durable consumer shared by all workers.
    pub fn workers_consumer(&self) -> String {
        format!("{}_workers", self.stream_part().to_ascii_lowercase())
    }

    /// Core NATS subject of one job's events, sent to the inbox of the api process that
    /// dispatched it: `sn1.events.<inbox>.<request id>`. A job from an api older than inboxes
    /// names none: its events go where that api listens, `sn1.events.<request id>` (so workers
    /// can be upgraded before apis).
    pub fn events(&self, inbox: &str, request_id: &str) -> String {
        if inbox.is_empty() {
            return format!("{}.events.{request_id}", self.prefix);
        }
        format!("{}.events.{inbox}.{request_id}", self.prefix)
    }

    /// Wildcard an api process subscribes to once for the events of all its jobs.
    pub fn events_inbox(&self, inbox: &str) -> String {
        self.events(inbox, "*")
    }

    /// Core NATS subject the api publishes a cancel on, e.g. `sn1.cancel.<id>`.
    pub fn cancel(&self, request_id: &str) -> String {
        format!("{}.cancel.{request_id}", self.prefix)
    }

    /// Wildcard a worker subscribes to for every cancel.
    pub fn cancel_all(&self) -> String {
        format!("{}.cancel.*", self.prefix)
    }

    /// JetStream stream holding audit records until the writer has them in Postgres.
    pub fn audit_stream(&self) -> String {
        format!("{}_AUDIT", self.stream_part())
    }

    /// Subject audit records are published on, e.g. `sn1.audit`.
    pub fn audit(&self) -> String {
        format!("{}.audit", self.prefix)
    }

    /// Durable consumer of the audit writers.
    pub fn audit_consumer(&self) -> String {
        format!("{}_audit_writer", self.stream_part().to_ascii_lowercase())
    }

    /// Notification that a new metagraph snapshot is stored.
    pub fn metagraph_updated(&self) -> String {
        format!("{}.metagraph.updated", self.prefix)
    }

    fn stream_part(&self) -> String {
        self.prefix.to_ascii_uppercase().replace('-', "_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let s = Subjects::new("sn1");
        assert_eq!(s.jobs_stream(), "SN1_JOBS");
        assert_eq!(s.jobs(), "sn1.jobs");
        assert_eq!(s.events("api1", "abc"), "sn1.events.api1.abc");
        assert_eq!(s.events_inbox("api1"), "sn1.events.api1.*");
        assert_eq!(s.events("", "abc"), "sn1.events.abc", "an older api's job");
        assert_eq!(s.cancel_all(), "sn1.cancel.*");
        let t = Subjects::new("test-7");
        assert_eq!(t.jobs_stream(), "TEST_7_JOBS");
        assert_eq!(t.workers_consumer(), "test_7_workers");
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Subjects::validate_prefix("sn1").is_ok());
        assert!(Subjects::validate_prefix("a.b").is_err());
        assert!(Subjects::validate_prefix("").is_err());
        assert!(Subjects::validate_prefix("a*").is_err());
    }
}
