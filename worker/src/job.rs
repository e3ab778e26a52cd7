//! One job, from pull to last event, independent of the bus: [`JobRunner::process`] takes a job
//! and a channel for its events, so the NATS worker loop, standalone mode and tests all drive
//! the same unit of work.

use crate::directory::Directory;
use crate::fanout::{self, AnswerChunk, FanoutEnd, FanoutRequest, MinerRecord};
use crate::selection;
use crate::{WorkerConfig, echo};
use chrono::Utc;
use sn1_bittensor::dendrite::{Deadline, Dendrite, MinerTarget, Prompt};
use sn1_bittensor::reply::ReplyLimits;
use sn1_contracts::event::{ErrorKind, WorkerEvent};
use sn1_contracts::job::{ChatJob, Endpoint};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Pulled after the api stopped waiting (`accept_by` passed): nothing was done.
    Skipped,
    /// No miner could be asked.
    NoCandidates,
    /// An echo was sent.
    Echo,
    /// A miner's answer was streamed completely.
    Answered,
    /// The selected miner's stream broke off after part of the answer.
    Broken,
    /// No answer before the deadline.
    Timeout,
    /// Every miner failed or gave unusable text.
    NoAnswer,
    /// Cancelled (the client went away).
    Cancelled,
}

impl JobStatus {
    /// The name used in metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Skipped => "skipped",
            JobStatus::NoCandidates => "no_candidates",
            JobStatus::Echo => "echo",
            JobStatus::Answered => "answered",
            JobStatus::Broken => "broken",
            JobStatus::Timeout => "timeout",
            JobStatus::NoAnswer => "no_answer",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// What a job did: for logs, metrics and the audit record.
#[derive(Clone, Debug)]
pub struct JobSummary {
    /// How it ended.
    pub status: JobStatus,
    /// The text sent to the client.
    pub completion: String,
    /// The miner whose answer was sent (-1 for echo).
    pub selected_uid: Option<i32>,
    /// The error sent to the client, if any.
    pub error: Option<String>,
    /// From the start of the job to the first chunk sent.
    pub time_to_first_chunk: Option<std::time::Duration>,
    /// One record per miner asked.
    pub miners: Vec<MinerRecord>,
}

impl JobSummary {
    fn new(status: JobStatus) -> Self {
        JobSummary {
            status,
            completion: String::new(),
            selected_uid: None,
            error: None,
            time_to_first_chunk: None,
            miners: Vec::new(),
        }
    }
}

/// Runs jobs: holds the dendrite, the metagraph and the settings.
#[derive(Clone)]
pub struct JobRunner {
    /// Signs and sends miner requests.
    pub dendrite: Dendrite,
    /// Where miners are picked from.
    pub directory: Directory,
    /// Settings.
    pub config: WorkerConfig,
}

impl JobRunner {
    /// Handles one job, sending its events on `events` (heartbeats included) until the job
    /// ends, `cancel` fires, or the receiver goes away.
    pub async fn process(
        &self,
        job: &ChatJob,
        cancel: CancellationToken,
        events: mpsc::Sender<WorkerEvent>,
    ) -> JobSummary {
        let worker = self.config.instance_id.clone();
        if Utc::now() > job.accept_by {
            return JobSummary::new(JobStatus::Skipped);
        }
        let started = std::time::Instant::now();
        if job.endpoint == Endpoint::Echo {
            let mut summary = JobSummary::new(JobStatus::Echo);
            summary.selected_uid = Some(-1);
            let _ = events
                .send(WorkerEvent::Accepted {
                    worker: worker.clone(),
                })
                .await;
            let last = job.params.messages.last().map(String::as_str).unwrap_or("");
            for delta in echo::chunks(last) {
                summary.time_to_first_chunk.get_or_insert(started.elapsed());
                summary.completion.push_str(&delta);
                let chunk = WorkerEvent::Chunk {
                    worker: worker.clone(),
                    delta,
                    uid: -1,
                };
                if events.send(chunk).await.is_err() {
                    summary.status = JobStatus::Cancelled;
                    return summary;
                }
            }
            let _ = events.send(WorkerEvent::Done { worker, uid: -1 }).await;
            return summary;
        }

        let targets = self.pick_targets(job);
        if targets.is_empty() {
            // No miner at all is a worker that is not ready (503, retry); no miner left after
            // `exclude` is the request's doing (422).
            let metagraph = self.directory.snapshot();
            let any = !selection::candidates(&metagraph, &[], &self.config.selection).is_empty();
            let (kind, message) = if any {
                (
                    ErrorKind::NoCandidates,
                    "no miner is left to ask: the metagraph has no serving miner outside `exclude`",
                )
            } else {
                (
                    ErrorKind::Unavailable,
                    "the worker has no serving miner in its metagraph yet; retry shortly",
                )
            };
            let _ = events
                .send(WorkerEvent::Error {
                    worker,
                    kind,
                    message: message.into(),
                })
                .await;
            let mut summary = JobSummary::new(JobStatus::NoCandidates);
            summary.error = Some(message.into());
            return summary;
        }
        let _ = events
            .send(WorkerEvent::Accepted {
                worker: worker.clone(),
            })
            .await;

        let request = FanoutRequest {
            targets,
            prompt: Prompt {
                roles: job.params.roles.clone(),
                messages: job.params.messages.clone(),
                seed: None,
            },
            protocol: self.config.protocol.clone(),
            limits: ReplyLimits {
                first_byte_timeout: self.config.first_byte_timeout,
                max_bytes: self.config.max_reply_bytes,
            },
            strategy: job.params.strategy,
            deadline: Deadline::at(sn1_contracts::job::local_instant(job.deadline)),
        };
        let (tx, mut rx) = mpsc::channel::<AnswerChunk>(256);
        let fan = fanout::run(&self.dendrite, request, cancel.clone(), tx);
        tokio::pin!(fan);
        // Not `interval(..)` + a first `tick().await`: that first tick waits for the timer
        // wheel (up to 1 ms) on the critical path before the fan-out starts.
        let period = self.config.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut completion = String::new();
        let report = loop {
            tokio::select! {
                report = &mut fan => break report,
                Some(mut chunk) = rx.recv() => {
                    // Chunks that queued up while the last event was on its way go out as one:
                    // a miner that streams byte by byte cannot make the client's events (each
                    // carrying all chunks so far) grow with the square of its chunk count.
                    while chunk.delta.len() < COALESCE_MAX_BYTES {
                        match rx.try_recv() {
                            Ok(next) if next.uid == chunk.uid => chunk.delta.push_str(&next.delta),
                            Ok(next) => {
                                completion.push_str(&chunk.delta);
                                let event = WorkerEvent::Chunk { worker: worker.clone(), delta: std::mem::take(&mut chunk.delta), uid: i32::from(chunk.uid) };
                                let _ = events.send(event).await;
                                chunk = next;
                            }
                            Err(_) => break,
                        }
                    }
                    completion.push_str(&chunk.delta);
                    let event = WorkerEvent::Chunk { worker: worker.clone(), delta: chunk.delta, uid: i32::from(chunk.uid) };
                    if events.send(event).await.is_err() {
                        cancel.cancel();
                    }
                }
                _ = heartbeat.tick() => {
                    let _ = events.send(WorkerEvent::Heartbeat { worker: worker.clone() }).await;
                }
            }
        };
        // Chunks sent just before the fan-out ended.
        while let Ok(chunk) = rx.try_recv() {
            completion.push_str(&chunk.delta);
            let event = WorkerEvent::Chunk {
                worker: worker.clone(),
                delta: chunk.delta,
                uid: i32::from(chunk.uid),
            };
            let _ = events.send(event).await;
        }
        let last = match &report.end {
            FanoutEnd::Answered { uid } => Some(WorkerEvent::Done {
                worker,
                uid: i32::from(*uid),
            }),
            FanoutEnd::Broken { reason, .. } => Some(WorkerEvent::Error {
                worker,
                kind: ErrorKind::Timeout,
                message: reason.clone(),
            }),
            FanoutEnd::TimedOut => Some(WorkerEvent::Error {
                worker,
                kind: ErrorKind::Timeout,
                message: format!(
                    "no miner answered within {:.1} s",
                    job.budget().as_secs_f64()
                ),
            }),
            FanoutEnd::NoAnswer => Some(WorkerEvent::Error {
                worker,
                kind: ErrorKind::NoAnswer,
                message: format!(
                    "none of the {} miners asked gave a usable answer",
                    report.miners.len()
                ),
            }),
            FanoutEnd::Cancelled => None,
        };
        let (status, selected_uid) = match &report.end {
            FanoutEnd::Answered { uid } => (JobStatus::Answered, Some(i32::from(*uid))),
            FanoutEnd::Broken { uid, .. } => (JobStatus::Broken, Some(i32::from(*uid))),
            FanoutEnd::TimedOut => (JobStatus::Timeout, None),
            FanoutEnd::NoAnswer => (JobStatus::NoAnswer, None),
            FanoutEnd::Cancelled => (JobStatus::Cancelled, None),
        };
        let error = match &last {
            Some(WorkerEvent::Error { message, .. }) => Some(message.clone()),
            _ => None,
        };
        if let Some(event) = last {
            let _ = events.send(event).await;
        }
        JobSummary {
            status,
            completion,
            selected_uid,
            error,
            time_to_first_chunk: report.time_to_first_chunk,
            miners: report.miners,
        }
    }

    fn pick_targets(&self, job: &ChatJob) -> Vec<MinerTarget> {
        let metagraph = self.directory.snapshot();
        let candidates =
            selection::candidates(&metagraph, &job.params.exclude, &self.config.selection);
        let chosen = selection::sample(
            candidates,
            usize::from(job.params.k),
            job.params.sampling_mode,
            &mut rand::rng(),
        );
        chosen
            .into_iter()
            .map(|n| MinerTarget {
                uid: n.uid,
                ip: n.axon_ip.clone(),
                port: n.axon_port,
                hotkey: n.hotkey.clone(),
            })
            .collect()
    }
}

/// Bytes of queued chunks merged into one event at most.
const COALESCE_MAX_BYTES: usize = 16 * 1024;
