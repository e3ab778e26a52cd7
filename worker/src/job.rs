//! One job, from pull to last event, independent of the bus: [`JobRunner::process`] takes a job
//! and a channel for its events, so the NATS worker loop, standalone mode and tests all drive
//! the same unit of work.
//!
//! A chat job picks its miners, runs the fan-out ([`crate::fanout`]) with the job's deadline as
//! the one time budget, and ends the way [`Ending::of_fanout`] says: that mapping from
//! [`FanoutEnd`] to the job's status and the client's last event is the only one.

mod outbox;

use crate::directory::Directory;
use crate::fanout::{self, CommitPoint, FailoverRecord, FanoutEnd, FanoutRequest, MinerRecord};
use crate::selection::{self, Pick};
use crate::{WorkerConfig, echo};
use chrono::Utc;
use outbox::Outbox;
use sn1_bittensor::dendrite::{Deadline, Dendrite, MinerTarget, Prompt, Sampling};
use sn1_bittensor::reply::ReplyLimits;
use sn1_contracts::event::{ErrorKind, WorkerEvent};
use sn1_contracts::job::{ChatJob, Endpoint};
use std::time::{Duration, Instant};
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
    pub time_to_first_chunk: Option<Duration>,
    /// One record per miner asked (continuations of a stalled answer last).
    pub miners: Vec<MinerRecord>,
    /// How the miners were picked (`reliable` sampling only).
    pub picks: Vec<Pick>,
    /// Where the answer was committed.
    pub commit: Option<CommitPoint>,
    /// Stalls of the committed miner and their failovers.
    pub failovers: Vec<FailoverRecord>,
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
            picks: Vec::new(),
            commit: None,
            failovers: Vec::new(),
        }
    }
}

/// How a job ends, for the audit log and for the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    /// The job's status.
    pub status: JobStatus,
    /// The miner whose answer was sent, if one was.
    pub selected_uid: Option<i32>,
    /// The last event for the client: `Done` or `Error`; none after a cancel (nobody listens).
    pub event: Option<WorkerEvent>,
}

impl Ending {
    /// How a fan-out that ended with `end` ends its job: the one mapping from [`FanoutEnd`].
    /// `worker` signs the event; `budget` (the client's timeout) and `asked` (miners asked) go
    /// into the messages.
    pub fn of_fanout(end: &FanoutEnd, worker: &str, budget: Duration, asked: usize) -> Ending {
        let failed = |status, kind, message| Ending::failed(status, worker, kind, message);
        match end {
            FanoutEnd::Answered { uid } => {
                let uid = i32::from(*uid);
                Ending {
                    status: JobStatus::Answered,
                    selected_uid: Some(uid),
                    event: Some(WorkerEvent::Done {
                        worker: worker.to_owned(),
                        uid,
                    }),
                }
            }
            FanoutEnd::Broken { uid, reason } => Ending {
                selected_uid: Some(i32::from(*uid)),
                ..failed(JobStatus::Broken, ErrorKind::Timeout, reason.clone())
            },
            FanoutEnd::TimedOut => {
                let secs = budget.as_secs_f64();
                let message = format!("no miner answered within {secs:.1} s");
                failed(JobStatus::Timeout, ErrorKind::Timeout, message)
            }
            FanoutEnd::NoAnswer => {
                let message = format!("none of the {asked} miners asked gave a usable answer");
                failed(JobStatus::NoAnswer, ErrorKind::NoAnswer, message)
            }
            FanoutEnd::Cancelled => Ending {
                status: JobStatus::Cancelled,
                selected_uid: None,
                event: None,
            },
        }
    }

    /// No miner could be asked. None in the metagraph at all (`any_serving` false) is a worker
    /// that is not ready (503, retry); none left after `exclude` is the request's doing (422).
    pub fn no_candidates(worker: &str, any_serving: bool) -> Ending {
        let (kind, message) = if any_serving {
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
        Ending::failed(JobStatus::NoCandidates, worker, kind, message.into())
    }

    /// A job ending in an error event, no miner selected.
    fn failed(status: JobStatus, worker: &str, kind: ErrorKind, message: String) -> Ending {
        let worker = worker.to_owned();
        Ending {
            status,
            selected_uid: None,
            event: Some(WorkerEvent::Error {
                worker,
                kind,
                message,
            }),
        }
    }

    /// The error message the client is sent, if any.
    pub fn error(&self) -> Option<String> {
        match &self.event {
            Some(WorkerEvent::Error { message, .. }) => Some(message.clone()),
            _ => None,
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
        if Utc::now() > job.accept_by {
            return JobSummary::new(JobStatus::Skipped);
        }
        let started = Instant::now();
        let mut out = Outbox::new(self.config.instance_id.clone(), events);
        let mut summary = match job.endpoint {
            Endpoint::Echo => echo_words(job, &mut out, started).await,
            Endpoint::Chat => self.chat(job, cancel, &mut out).await,
        };
        summary.completion = out.into_completion();
        summary
    }

    /// Asks miners and streams the chosen answer.
    async fn chat(&self, job: &ChatJob, cancel: CancellationToken, out: &mut Outbox) -> JobSummary {
        let (targets, spares, picks) = self.pick_targets(job);
        if targets.is_empty() {
            let metagraph = self.directory.snapshot();
            let any = !selection::eligible(&metagraph, &[], &self.config.selection).is_empty();
            return end(out, Ending::no_candidates(out.worker(), any)).await;
        }
        out.accepted().await;
        let mut request = self.fanout_request(job, targets);
        request.quality = self.config.quality.fanout(spares);
        let (tx, rx) = mpsc::channel(256);
        let fan = fanout::run(&self.dendrite, request, cancel.clone(), tx);
        let heartbeat = self.config.heartbeat_interval;
        let report = out.relay(fan, rx, heartbeat, &cancel).await;
        let prompt = job.params.messages.last().map(String::as_str).unwrap_or("");
        self.config.quality.scores.observe(&report.miners, prompt);
        let asked = report.miners.len();
        let ending = Ending::of_fanout(&report.end, out.worker(), job.budget(), asked);
        JobSummary {
            time_to_first_chunk: report.time_to_first_chunk,
            miners: report.miners,
            picks,
            commit: report.commit,
            failovers: report.failovers,
            ..end(out, ending).await
        }
    }

    /// The fan-out of `job` over `targets`, until the job's deadline.
    fn fanout_request(&self, job: &ChatJob, targets: Vec<MinerTarget>) -> FanoutRequest {
        FanoutRequest {
            targets,
            prompt: Prompt {
                roles: job.params.roles.clone(),
                messages: job.params.messages.clone(),
                seed: job.params.sampling.seed,
                sampling: Sampling {
                    temperature: job.params.sampling.temperature,
                    top_p: job.params.sampling.top_p,
                    max_tokens: job.params.sampling.max_tokens,
                    stop: job.params.sampling.stop.clone(),
                },
            },
            protocol: self.config.protocol.clone(),
            limits: ReplyLimits {
                first_byte_timeout: self.config.first_byte_timeout,
                max_bytes: self.config.max_reply_bytes,
            },
            strategy: job.params.strategy,
            deadline: Deadline::at(sn1_contracts::job::local_instant(job.deadline)),
            quality: fanout::Quality::default(),
        }
    }

    /// The k miners to ask, the spares a stalled answer fails over to, and how they were
    /// picked.
    fn pick_targets(&self, job: &ChatJob) -> (Vec<MinerTarget>, Vec<MinerTarget>, Vec<Pick>) {
        let metagraph = self.directory.snapshot();
        let candidates =
            selection::eligible(&metagraph, &job.params.exclude, &self.config.selection);
        let k = usize::from(job.params.k);
        let quality = &self.config.quality;
        let (ranked, picks) = selection::rank(
            candidates,
            k,
            job.params.sampling_mode,
            &self.config.selection,
            &quality.scores,
            quality.exploration,
            &mut rand::rng(),
        );
        let mut targets: Vec<MinerTarget> = ranked
            .into_iter()
            .take(k + quality.spares_wanted())
            .map(|n| MinerTarget {
                uid: n.uid,
                ip: n.axon_ip.clone(),
                port: n.axon_port,
                hotkey: n.hotkey.clone(),
            })
            .collect();
        let spares = targets.split_off(k.min(targets.len()));
        (targets, spares, picks)
    }
}

/// Sends the last event of `ending`; the summary it makes.
async fn end(out: &Outbox, ending: Ending) -> JobSummary {
    let error = ending.error();
    if let Some(event) = ending.event {
        out.send(event).await;
    }
    JobSummary {
        selected_uid: ending.selected_uid,
        error,
        ..JobSummary::new(ending.status)
    }
}

/// `/echo`: the words of the last message come back as chunks of uid -1.
async fn echo_words(job: &ChatJob, out: &mut Outbox, started: Instant) -> JobSummary {
    let mut summary = JobSummary {
        selected_uid: Some(-1),
        ..JobSummary::new(JobStatus::Echo)
    };
    out.accepted().await;
    let last = job.params.messages.last().map(String::as_str).unwrap_or("");
    for delta in echo::chunks(last) {
        summary.time_to_first_chunk.get_or_insert(started.elapsed());
        if !out.chunk(-1, delta).await {
            summary.status = JobStatus::Cancelled;
            return summary;
        }
    }
    let worker = out.worker().to_owned();
    out.send(WorkerEvent::Done { worker, uid: -1 }).await;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(end: FanoutEnd) -> Ending {
        Ending::of_fanout(&end, "w1", Duration::from_millis(1500), 3)
    }

    fn error(kind: ErrorKind, message: &str) -> Option<WorkerEvent> {
        Some(WorkerEvent::Error {
            worker: "w1".into(),
            kind,
            message: message.into(),
        })
    }

    #[test]
    fn an_answer_is_done_with_the_chosen_miner() {
        let e = ending(FanoutEnd::Answered { uid: 7 });
        assert_eq!(e.status, JobStatus::Answered);
        assert_eq!(e.selected_uid, Some(7));
        assert_eq!(
            e.event,
            Some(WorkerEvent::Done {
                worker: "w1".into(),
                uid: 7
            })
        );
        assert_eq!(e.error(), None);
    }

    #[test]
    fn a_broken_answer_keeps_its_miner_and_tells_the_reason() {
        let e = ending(FanoutEnd::Broken {
            uid: 4,
            reason: "the miner's stream broke off: timeout".into(),
        });
        assert_eq!(e.status, JobStatus::Broken);
        assert_eq!(e.selected_uid, Some(4));
        assert_eq!(
            e.event,
            error(ErrorKind::Timeout, "the miner's stream broke off: timeout")
        );
        assert_eq!(
            e.error().as_deref(),
            Some("the miner's stream broke off: timeout")
        );
    }

    #[test]
    fn a_timeout_names_the_clients_budget_and_no_answer_the_miners_asked() {
        let e = ending(FanoutEnd::TimedOut);
        assert_eq!((e.status, e.selected_uid), (JobStatus::Timeout, None));
        assert_eq!(
            e.event,
            error(ErrorKind::Timeout, "no miner answered within 1.5 s")
        );
        let e = ending(FanoutEnd::NoAnswer);
        assert_eq!((e.status, e.selected_uid), (JobStatus::NoAnswer, None));
        assert_eq!(
            e.event,
            error(
                ErrorKind::NoAnswer,
                "none of the 3 miners asked gave a usable answer"
            )
        );
    }

    #[test]
    fn a_cancel_sends_nothing() {
        let e = ending(FanoutEnd::Cancelled);
        assert_eq!(e.status, JobStatus::Cancelled);
        assert_eq!((e.selected_uid, e.event), (None, None));
    }

    #[test]
    fn no_candidates_tells_a_worker_not_ready_from_a_request_that_excluded_everyone() {
        let e = Ending::no_candidates("w1", true);
        assert_eq!(e.status, JobStatus::NoCandidates);
        assert!(matches!(
            e.event,
            Some(WorkerEvent::Error {
                kind: ErrorKind::NoCandidates,
                ..
            })
        ));
        let e = Ending::no_candidates("w1", false);
        assert!(matches!(
            e.event,
            Some(WorkerEvent::Error {
                kind: ErrorKind::Unavailable,
                ..
            })
        ));
        assert!(e.error().is_some_and(|m| m.contains("retry")));
    }
}
