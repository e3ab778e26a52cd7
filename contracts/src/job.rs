//! The chat job: what the api publishes to the job queue and a worker pulls.
//!
//! A job carries the validated request parameters (never the API key itself) and two deadlines:
//! `accept_by` (a worker that pulls the job later skips it: the api has already answered 504)
//! and `deadline` (when the answer must be complete).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which public endpoint produced the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /chat`: fan out to miners.
    Chat,
    /// `POST /echo`: no miners; the worker echoes the last message word by word.
    Echo,
}

/// How the worker picks its k miners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplingMode {
    /// Uniformly at random among the candidates.
    #[default]
    Random,
    /// The k candidates with the highest incentive.
    TopIncentive,
}

/// How the worker chooses the answer among the miners it asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Stream the first miner that produces valid text (lowest time to first token).
    #[default]
    First,
    /// Wait for every miner, clean the answers, pick the longest.
    Longest,
    /// Wait for every miner, clean the answers, pick the shortest.
    Shortest,
}

/// A miner to leave out: by uid or by hotkey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Exclusion {
    /// A neuron uid.
    Uid(u16),
    /// A hotkey, SS58.
    Hotkey(String),
}

/// The validated request parameters of `/chat` and `/echo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatParams {
    /// Number of miners to query.
    pub k: u16,
    /// Miners never to query.
    pub exclude: Vec<Exclusion>,
    /// Role of each message (`user`, `assistant`, `system`), same length as `messages`.
    pub roles: Vec<String>,
    /// The conversation.
    pub messages: Vec<String>,
    /// Seconds the whole answer may take.
    pub timeout_secs: f64,
    /// How the answer is chosen.
    pub strategy: Strategy,
    /// How miners are chosen.
    pub sampling_mode: SamplingMode,
}

/// One unit of work on the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatJob {
    /// Time-ordered id (UUID v7), also the NATS message id (publish de-duplication) and the
    /// suffix of the job's event subject.
    pub request_id: String,
    /// Which endpoint made it.
    pub endpoint: Endpoint,
    /// Id of the API key that made it (never the key).
    pub api_key_id: String,
    /// When the api received the request.
    pub created_at: DateTime<Utc>,
    /// A worker that pulls the job after this skips it (the api has given up waiting).
    pub accept_by: DateTime<Utc>,
    /// The answer must be complete by then.
    pub deadline: DateTime<Utc>,
    /// The request.
    pub params: ChatParams,
}

impl ChatJob {
    /// Time left until the deadline, zero when it has passed.
    pub fn remaining(&self, now: DateTime<Utc>) -> std::time::Duration {
        (self.deadline - now).to_std().unwrap_or_default()
    }
}
