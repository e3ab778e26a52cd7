//! One job, from pull to last event, independent of the bus: [`JobRunner::process`] takes a job
//! and a channel for its events, so the NATS worker loop, standalone mode and tests all drive
//! the same unit of work.

use crate::directory::Directory;
use crate::fanout::{self, AnswerChunk, FanoutEnd, FanoutReport, FanoutRequest};
use crate::selection;
use crate::{WorkerConfig, echo};
use chrono::Utc;
use sn1_bittensor::dendrite::{Dendrite, MinerTarget, Prompt};
use sn1_bittensor::reply::ReplyLimits;
use sn1_contracts::event::{ErrorKind, WorkerEvent};
use sn1_contracts::job::{ChatJob, Endpoint};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a job ended, for logs, metrics and (later) the audit record.
#[derive(Debug)]
pub enum JobSummary {
    /// Pulled after the api stopped waiting (`accept_by` passed): nothing was done.
    Skipped,
    /// No miner could be asked.
    NoCandidates,
    /// An echo was sent.
    Echoed,
    /// A fan-out ran.
    FannedOut(FanoutReport),
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
            return JobSummary::Skipped;
        }
        if job.endpoint == Endpoint::Echo {
            let _ = events
                .send(WorkerEvent::Accepted {
                    worker: worker.clone(),
                })
                .await;
            let last = job.params.messages.last().map(String::as_str).unwrap_or("");
            for delta in echo::chunks(last) {
                let chunk = WorkerEvent::Chunk {
                    worker: worker.clone(),
                    delta,
                    uid: -1,
                };
                if events.send(chunk).await.is_err() {
                    return JobSummary::Echoed;
                }
            }
            let _ = events.send(WorkerEvent::Done { worker, uid: -1 }).await;
            return JobSummary::Echoed;
        }

        let targets = self.pick_targets(job);
        if targets.is_empty() {
            let message =
                "no miner is left to ask: the metagraph has no serving miner outside `exclude`";
            let _ = events
                .send(WorkerEvent::Error {
                    worker,
                    kind: ErrorKind::NoCandidates,
                    message: message.into(),
                })
                .await;
            return JobSummary::NoCandidates;
        }
        let _ = events
            .send(WorkerEvent::Accepted {
                worker: worker.clone(),
            })
            .await;

        let remaining = job.remaining(Utc::now());
        let deadline = tokio::time::Instant::now() + remaining;
        let request = FanoutRequest {
            targets,
            prompt: Prompt {
                roles: job.params.roles.clone(),
                messages: job.params.messages.clone(),
                timeout: remaining,
                seed: None,
            },
            protocol: self.config.protocol.clone(),
            limits: ReplyLimits {
                first_byte_timeout: self.config.first_byte_timeout.min(remaining),
                total_timeout: remaining,
                max_bytes: self.config.max_reply_bytes,
            },
            strategy: job.params.strategy,
        };
        let (tx, mut rx) = mpsc::channel::<AnswerChunk>(256);
        let fan = fanout::run(&self.dendrite, request, deadline, cancel.clone(), tx);
        tokio::pin!(fan);
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.tick().await;
        let report = loop {
            tokio::select! {
                report = &mut fan => break report,
                Some(chunk) = rx.recv() => {
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
                message: format!("no miner answered within {:.1} s", job.params.timeout_secs),
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
        if let Some(event) = last {
            let _ = events.send(event).await;
        }
        JobSummary::FannedOut(report)
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

/// Default per-miner time to first byte: a miner silent this long is given up on.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(8);
