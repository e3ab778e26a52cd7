//! The chat job: what the api publishes to the job queue and a worker pulls.
//!
//! A job carries the validated request parameters (never the API key itself) and two deadlines:
//! `accept_by` (a worker that pulls the job later skips it: the api has already answered 504)
//! and `deadline` (when the answer must be complete). `deadline` is the request's one time
//! budget: the api sets it once when it validates the request; each process turns it into an
//! instant of its own monotonic clock once ([`local_instant`]); the client's `timeout` is
//! [`ChatJob::budget`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// The k candidates with the best reliability scores (usable answers, no stalls, fast
    /// first byte), learned from the outcomes every worker sees, with a share of picks left to
    /// exploring little-known miners.
    Reliable,
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
    /// How the answer is chosen.
    pub strategy: Strategy,
    /// How miners are chosen.
    pub sampling_mode: SamplingMode,
    /// Sampling parameters for the miners (`/v1` requests; empty for `/chat`). Absent in jobs
    /// queued by older api versions.
    #[serde(default)]
    pub sampling: Sampling,
}

/// Sampling parameters of an OpenAI-style request, passed to miners whose protocol carries
/// them. Every field is optional: absent means the miner's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Sampling temperature, 0 ..= 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 ..= 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Seed for reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop sequences (at most 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

/// One unit of work on the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatJob {
    /// Time-ordered id (UUID v7), also the NATS message id (publish de-duplication) and the
    /// suffix of the job's event subject.
    pub request_id: String,
    /// The inbox of the api process waiting for the job's events
    /// ([`crate::bus::EventInbox::address`]).
    #[serde(default)]
    pub events_to: String,
    /// Which endpoint made it.
    pub endpoint: Endpoint,
    /// Id of the API key that made it (never the key).
    pub api_key_id: String,
    /// When the api received the request.
    pub created_at: DateTime<Utc>,
    /// A worker that pulls the job after this skips it (the api has given up waiting).
    pub accept_by: DateTime<Utc>,
    /// The answer must be complete by then: `created_at` plus the client's `timeout`.
    pub deadline: DateTime<Utc>,
    /// 0 when first queued; the api queues the job again (1, 2, …) when its worker died before
    /// any of the answer reached the client.
    #[serde(default)]
    pub attempt: u32,
    /// The request.
    pub params: ChatParams,
}

impl ChatJob {
    /// The queue's message id of this attempt (the broker drops a second publish of one id).
    pub fn message_id(&self) -> String {
        format!("{}.{}", self.request_id, self.attempt)
    }

    /// The time budget the client asked for (its `timeout`): from `created_at` to `deadline`.
    pub fn budget(&self) -> Duration {
        (self.deadline - self.created_at)
            .to_std()
            .unwrap_or_default()
    }
}

/// `at` (a wall-clock time, as jobs carry it between processes) as an instant of this process's
/// monotonic clock: the one conversion a process makes of a job's deadline. A time already past
/// is now.
pub fn local_instant(at: DateTime<Utc>) -> tokio::time::Instant {
    let left = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(created_at: DateTime<Utc>, budget_ms: i64) -> ChatJob {
        ChatJob {
            request_id: "r".into(),
            events_to: String::new(),
            endpoint: Endpoint::Chat,
            api_key_id: "k".into(),
            created_at,
            accept_by: created_at,
            deadline: created_at + chrono::Duration::milliseconds(budget_ms),
            attempt: 0,
            params: ChatParams {
                k: 1,
                exclude: vec![],
                roles: vec!["user".into()],
                messages: vec!["hi".into()],
                strategy: Strategy::First,
                sampling_mode: SamplingMode::Random,
                sampling: Sampling::default(),
            },
        }
    }

    #[test]
    fn the_budget_is_the_clients_timeout() {
        let t0 = Utc::now();
        assert_eq!(job(t0, 1500).budget(), Duration::from_millis(1500));
        assert_eq!(job(t0, -5).budget(), Duration::ZERO);
    }

    #[test]
    fn a_deadline_becomes_a_local_instant_once() {
        let now = tokio::time::Instant::now();
        let ahead = local_instant(Utc::now() + chrono::Duration::seconds(60));
        assert!(ahead > now + Duration::from_secs(59));
        assert!(ahead <= tokio::time::Instant::now() + Duration::from_secs(60));
        let past = local_instant(Utc::now() - chrono::Duration::seconds(5));
        assert!(past >= now && past <= tokio::time::Instant::now());
    }

    #[test]
    fn a_job_with_the_old_timeout_field_still_parses() {
        let mut value = serde_json::to_value(job(Utc::now(), 1000)).unwrap();
        value["params"]["timeout_secs"] = serde_json::json!(1.0);
        let parsed: ChatJob = serde_json::from_value(value).unwrap();
        assert_eq!(parsed.budget(), Duration::from_secs(1));
    }
}
