//! The job queue / event bus seam: jobs go api → worker through a persistent work queue, events
//! go worker → api on a per-request subject, cancels go api → worker.
//!
//! [`nats::NatsBus`] is the distributed implementation (JetStream for jobs, core NATS for events
//! and cancels).

pub mod audit;
pub mod nats;

pub use nats::{JobDelivery, JobStream, NatsBus, QueueConfig};

/// Why the bus could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker is unreachable, did not acknowledge in time, or refused for a reason that a
    /// retry later may fix.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The job queue is at its configured bound.
    #[error("queue full: {0}")]
    Full(String),
    /// A message could not be encoded or decoded.
    #[error("bad message: {0}")]
    Codec(String),
}
