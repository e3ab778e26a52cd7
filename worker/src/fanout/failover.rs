//! Stall failover by continuation: when the committed miner goes silent mid-answer (or its
//! reply breaks off: a reset, an error after some text), spare
//! miners are asked to continue it — the conversation plus the text already sent as a partial
//! `assistant` turn — and the first usable continuation is streamed on, so the client gets one
//! coherent answer. Every protocol the worker speaks carries roles (both synapse shapes send
//! `roles` + `messages`; Epistula and OpenAI send chat messages), so the request can always be
//! made; whether a miner continues rather than starts over is up to the miner.
//!
//! A continuation is itself a fan-out ([`super::run_after`]) over the next spares, with no
//! hedge and a short time to start ([`Failover::wait`]): it can stall and fail over again while
//! attempts are left. A spare that starts the answer over is trimmed to what it adds, or
//! rejected when it restarts in other words (`state/overlap.rs`); when every spare of a try gave
//! no usable continuation, the next spares are tried while attempts are left. With no attempt
//! or spare left, or no continuation in time, the answer ends at once with a `StreamError`
//! naming the stall — never at the deadline.

use super::{FanoutEnd, FanoutReport, FanoutRequest, run_after};
use crate::fanout::AnswerChunk;
use sn1_bittensor::dendrite::{Dendrite, MinerTarget, Prompt};
use sn1_contracts::job::Strategy;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the client is told when a stalled answer could not be continued.
pub(crate) const NOT_CONTINUED: &str =
    "the miner stopped sending mid-answer and no other miner could continue it";

/// Hedged commit, stall detection and failover settings of one fan-out. The default is the
/// behaviour before them: commit at the first usable text, no stall detection.
#[derive(Clone, Debug, Default)]
pub struct Quality {
    /// Commit a miner once it has sent this many usable characters (0: at once).
    pub hedge_chars: usize,
    /// Commit the best usable miner after this long even below `hedge_chars`.
    pub hedge_wait: Duration,
    /// A committed miner silent this long has stalled (`None`: wait for the deadline).
    pub stall_after: Option<Duration>,
    /// Who continues a stalled answer.
    pub failover: Failover,
}

/// Who continues a stalled answer, and how.
#[derive(Clone, Debug, Default)]
pub struct Failover {
    /// Miners not in the fan-out, best first, to ask for continuations.
    pub spares: Vec<MinerTarget>,
    /// Continuations allowed (0: a stall ends the answer with an error at once).
    pub attempts: usize,
    /// Spares asked at once for one continuation (the first usable one is streamed).
    pub width: usize,
    /// A continuation must start within this long, or the answer ends with an error.
    pub wait: Duration,
}

/// Where the fan-out committed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CommitPoint {
    /// The committed miner.
    pub uid: u16,
    /// Characters of usable text it had sent when committed.
    pub chars: usize,
    /// Time from the fan-out's start to the commit.
    pub after: Duration,
}

/// One stall of a committed miner and what was done about it.
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverRecord {
    /// The miner that stalled.
    pub from_uid: u16,
    /// The miner whose continuation was streamed (`None`: the answer ended with an error).
    pub to_uid: Option<u16>,
    /// Why the failover happened, and how it ended.
    pub reason: String,
    /// Characters the client had when the stall was detected.
    pub at_chars: usize,
    /// From the stall's detection to the continuation's first chunk (or to the error).
    pub gap: Duration,
}

/// A committed miner found stalled.
pub(super) struct Stall {
    /// The stalled miner.
    pub uid: u16,
    /// [`super::STALLED`], or why its reply broke off.
    pub why: String,
    /// Every character the client has so far.
    pub sent: String,
    /// When the stalled fan-out started.
    pub started: Instant,
    /// The stalled fan-out was itself a continuation (its last message is the partial answer).
    pub continuing: bool,
}

/// Continues `report`'s stalled answer (see the module doc); the report of the whole.
pub(super) async fn continue_answer(
    dendrite: &Dendrite,
    request: &FanoutRequest,
    mut report: FanoutReport,
    stall: Stall,
    cancel: CancellationToken,
    out: mpsc::Sender<AnswerChunk>,
) -> FanoutReport {
    let detected = Instant::now();
    let failover = &request.quality.failover;
    let at_chars = stall.sent.chars().count();
    let idle = request.quality.stall_after.unwrap_or_default().as_millis();
    let reason = match stall.why.as_str() {
        super::STALLED => format!("stalled: no text for {idle} ms after {at_chars} characters"),
        why => format!("{why} after {at_chars} characters"),
    };
    let not_continued = match stall.why.as_str() {
        super::STALLED => NOT_CONTINUED.to_owned(),
        why => format!("{why}; no other miner could continue it"),
    };
    let width = failover.width.clamp(1, failover.spares.len().max(1));
    if failover.attempts == 0 || failover.spares.is_empty() {
        report.end = FanoutEnd::Broken {
            uid: stall.uid,
            reason: not_continued.clone(),
        };
        report.failovers.push(FailoverRecord {
            from_uid: stall.uid,
            to_uid: None,
            reason: format!("{reason}; no spare miner or attempt left"),
            at_chars,
            gap: detected.elapsed(),
        });
        return report;
    }
    let prompt = continuation_prompt(request, &stall);
    let (mut spares, mut attempts) = (failover.spares.as_slice(), failover.attempts);
    loop {
        let (targets, rest) = spares.split_at(width.min(spares.len()));
        let next = FanoutRequest {
            targets: targets.to_vec(),
            prompt: prompt.clone(),
            protocol: request.protocol.clone(),
            limits: request.limits,
            strategy: Strategy::First,
            deadline: request.deadline,
            quality: super::Quality {
                hedge_chars: 0,
                failover: Failover {
                    spares: rest.to_vec(),
                    attempts: attempts - 1,
                    ..failover.clone()
                },
                ..request.quality.clone()
            },
        };
        let by = tokio::time::Instant::now() + failover.wait;
        tracing::info!(
            stalled_uid = stall.uid,
            at_chars,
            spares = ?targets.iter().map(|t| t.uid).collect::<Vec<_>>(),
            "committed miner stalled; asking for a continuation"
        );
        let (sent, tried) = (stall.sent.clone(), Instant::now());
        let inner = Box::pin(run_after(
            dendrite,
            next,
            cancel.clone(),
            out.clone(),
            sent,
            Some(by),
        ))
        .await;
        let to_uid = inner.commit.map(|c| c.uid);
        // Every spare of this try answered, none usably (restarted, refused, failed): the next
        // spares get their turn while attempts are left.
        let retry = to_uid.is_none()
            && inner.end == FanoutEnd::NoAnswer
            && attempts > 1
            && !rest.is_empty();
        report.failovers.push(FailoverRecord {
            from_uid: stall.uid,
            to_uid,
            reason: match (to_uid, &inner.end) {
                (Some(_), _) => reason.clone(),
                (None, FanoutEnd::NoAnswer) => {
                    format!("{reason}; no usable continuation ({})", unusable(&inner))
                }
                (None, _) => format!(
                    "{reason}; no continuation within {} ms",
                    failover.wait.as_millis()
                ),
            },
            at_chars,
            gap: inner
                .time_to_first_chunk
                .map_or_else(|| detected.elapsed(), |t| tried - detected + t),
        });
        report.failovers.extend(inner.failovers);
        report.miners.extend(inner.miners.into_iter().map(|mut m| {
            m.continuation = true;
            m
        }));
        report.text_held.peak_bytes = report.text_held.peak_bytes.max(inner.text_held.peak_bytes);
        report.text_held.over_budget += inner.text_held.over_budget;
        if retry {
            (spares, attempts) = (rest, attempts - 1);
            continue;
        }
        report.end = match inner.end {
            FanoutEnd::TimedOut | FanoutEnd::NoAnswer => FanoutEnd::Broken {
                uid: stall.uid,
                reason: not_continued.clone(),
            },
            other => other,
        };
        tracing::info!(
            stalled_uid = stall.uid,
            continued_by = to_uid,
            since_start_ms = stall.started.elapsed().as_millis() as u64,
            "failover over"
        );
        return report;
    }
}

/// The request's conversation with the text sent so far as a partial `assistant` turn.
fn continuation_prompt(request: &FanoutRequest, stall: &Stall) -> Prompt {
    let mut prompt = request.prompt.clone();
    if stall.continuing {
        // Already a continuation: the partial answer grows, it is not a second turn.
        prompt.messages.pop();
        prompt.roles.pop();
    }
    prompt.roles.resize(prompt.messages.len(), "user".into());
    prompt.roles.push("assistant".into());
    prompt.messages.push(stall.sent.clone());
    prompt
}

/// Why each miner of a continuation that came to nothing was not used, for the record.
fn unusable(inner: &FanoutReport) -> String {
    let why: Vec<String> = inner
        .miners
        .iter()
        .map(|m| {
            let why = match (m.rejected, &m.outcome) {
                (Some(r), _) => r.to_owned(),
                (None, Some(o)) => super::describe(&o.kind),
                (None, None) => "dropped".to_owned(),
            };
            format!("uid {}: {why}", m.target.uid)
        })
        .collect();
    why.join(", ")
}
