//! What a worker tells the api about one job, on the core NATS subject
//! `<prefix>.events.<request_id>`. Internal: the api turns these into the public
//! `StreamChunk` / `StreamError` objects and never forwards them as they are.

use serde::{Deserialize, Serialize};

/// Why a job ended without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The deadline passed before an answer was complete.
    Timeout,
    /// Every miner asked failed or gave no usable text.
    NoAnswer,
    /// No miner is left to ask (empty metagraph, or `exclude` removed them all). Sent instead of
    /// `Accepted`, so the api can answer 422 before streaming.
    NoCandidates,
    /// The worker cannot serve now (e.g. no metagraph loaded yet); retry later. Sent instead of
    /// `Accepted`, so the api can answer 503 before streaming.
    Unavailable,
    /// The worker failed.
    Internal,
}

/// One event of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// A worker took the job. Events of other workers (a redelivery) are ignored once chunks
    /// from this one were relayed.
    Accepted {
        /// The worker's instance id.
        worker: String,
    },
    /// A piece of the answer.
    Chunk {
        /// The worker's instance id.
        worker: String,
        /// The text.
        delta: String,
        /// The miner it came from (-1 for `/echo`).
        uid: i32,
    },
    /// The job is still being worked on.
    Heartbeat {
        /// The worker's instance id.
        worker: String,
    },
    /// The answer is complete.
    Done {
        /// The worker's instance id.
        worker: String,
        /// The miner whose answer was streamed (-1 for `/echo`).
        uid: i32,
    },
    /// The job ended without a complete answer.
    Error {
        /// The worker's instance id.
        worker: String,
        /// The category.
        kind: ErrorKind,
        /// A message safe to show the client.
        message: String,
    },
}

/// An event as it travels on the bus: numbered from 1 by the worker that sent it, per job, so
/// the api knows when it missed one (a reconnect, a full buffer) and never presents a partial
/// answer as complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Numbered {
    /// 1 for the worker's first event of the job, then one more per event.
    pub seq: u64,
    /// The event.
    pub event: WorkerEvent,
}

/// [`Numbered`] by reference, for publishing without a copy.
#[derive(Serialize)]
pub struct NumberedRef<'a> {
    /// See [`Numbered::seq`].
    pub seq: u64,
    /// The event.
    pub event: &'a WorkerEvent,
}

impl WorkerEvent {
    /// The id of the worker that sent it.
    pub fn worker(&self) -> &str {
        match self {
            WorkerEvent::Accepted { worker }
            | WorkerEvent::Chunk { worker, .. }
            | WorkerEvent::Heartbeat { worker }
            | WorkerEvent::Done { worker, .. }
            | WorkerEvent::Error { worker, .. } => worker,
        }
    }
}
