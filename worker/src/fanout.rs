//! The fan-out: ask k miners at once and turn their streamed replies into one answer.
//!
//! * [`Strategy::First`]: every reply is watched as it streams; the first miner whose text is
//!   usable (see [`crate::cleaning`]) is committed and streamed on, the others are dropped at
//!   once (their connections close).
//! * [`Strategy::Longest`] / [`Strategy::Shortest`]: wait for every reply (or the deadline),
//!   drop unusable ones, stream the chosen answer.
//!
//! Miners are never asked one after another. Chunks go out on a bounded channel; the caller
//! relays them to wherever the answer goes (NATS, in-process).

use crate::cleaning::{self, PrefixVerdict};
use sn1_bittensor::dendrite::{Deadline, Dendrite, MinerProtocol, MinerTarget, Prompt};
use sn1_bittensor::reply::{Outcome, OutcomeKind, ReplyLimits};
use sn1_contracts::job::Strategy;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Everything one fan-out needs.
#[derive(Clone, Debug)]
pub struct FanoutRequest {
    /// The miners to ask.
    pub targets: Vec<MinerTarget>,
    /// What to ask them.
    pub prompt: Prompt,
    /// How to talk to them.
    pub protocol: MinerProtocol,
    /// Per-miner limits (first byte, bytes).
    pub limits: ReplyLimits,
    /// How the answer is chosen.
    pub strategy: Strategy,
}

/// A piece of the answer, as it should reach the client.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerChunk {
    /// The miner it came from.
    pub uid: u16,
    /// The text.
    pub delta: String,
}

/// What became of one miner's reply (one audit row).
#[derive(Clone, Debug)]
pub struct MinerRecord {
    /// The miner.
    pub target: MinerTarget,
    /// How its reply ended; `None` when it was dropped before it ended (another miner won,
    /// the job was cancelled or ran out of time).
    pub outcome: Option<Outcome>,
    /// Why its text was not used, if it was judged.
    pub rejected: Option<&'static str>,
    /// Whether its answer was streamed to the client.
    pub selected: bool,
    /// Its text so far (the dendrite caps it).
    pub text: String,
}

/// How the fan-out ended.
#[derive(Clone, Debug, PartialEq)]
pub enum FanoutEnd {
    /// The selected miner's answer was streamed completely.
    Answered {
        /// The miner.
        uid: u16,
    },
    /// The selected miner's stream broke off after part of the answer was sent.
    Broken {
        /// The miner.
        uid: u16,
        /// Why (timeout, reset, …), safe to show the client.
        reason: String,
    },
    /// The deadline passed with no answer.
    TimedOut,
    /// Every miner failed or gave unusable text.
    NoAnswer,
    /// Stopped by a cancel.
    Cancelled,
}

/// The result of one fan-out.
#[derive(Clone, Debug)]
pub struct FanoutReport {
    /// How it ended.
    pub end: FanoutEnd,
    /// One record per miner asked, in the order of the targets.
    pub miners: Vec<MinerRecord>,
    /// Time from start to the first chunk sent.
    pub time_to_first_chunk: Option<Duration>,
}

enum MinerMsg {
    Chunk(usize, String),
    Done(usize, Outcome),
}

struct MinerState {
    record: MinerRecord,
    chunks: Vec<String>,
    done: bool,
}

/// Runs one fan-out until it ends, the `deadline` passes or `cancel` fires. Chunks of the answer
/// are sent on `out`; if `out` is closed, the fan-out stops as if cancelled.
pub async fn run(
    dendrite: &Dendrite,
    request: FanoutRequest,
    deadline: tokio::time::Instant,
    cancel: CancellationToken,
    out: mpsc::Sender<AnswerChunk>,
) -> FanoutReport {
    let started = Instant::now();
    let prompt_text = request.prompt.messages.last().cloned().unwrap_or_default();
    let (tx, mut rx) = mpsc::channel::<MinerMsg>(64 * request.targets.len().max(1));
    let mut tasks = JoinSet::new();
    let mut handles = Vec::with_capacity(request.targets.len());
    let mut states: Vec<MinerState> = Vec::with_capacity(request.targets.len());
    for (i, target) in request.targets.iter().enumerate() {
        let mut reply = dendrite.query(
            target,
            &request.prompt,
            &request.protocol,
            request.limits,
            Deadline::at(deadline),
        );
        let tx = tx.clone();
        handles.push(tasks.spawn(async move {
            tracing::trace!(
                us = started.elapsed().as_micros() as u64,
                "miner task running"
            );
            while let Some(text) = reply.next_chunk().await {
                tracing::trace!(us = started.elapsed().as_micros() as u64, "miner chunk");
                if tx.send(MinerMsg::Chunk(i, text)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(MinerMsg::Done(i, reply.outcome())).await;
        }));
        states.push(MinerState {
            record: MinerRecord {
                target: target.clone(),
                outcome: None,
                rejected: None,
                selected: false,
                text: String::new(),
            },
            chunks: Vec::new(),
            done: false,
        });
    }
    drop(tx);

    let mut winner: Option<usize> = None;
    let mut first_chunk: Option<Duration> = None;
    let wait_for_all = request.strategy != Strategy::First;

    let end = loop {
        let msg = tokio::select! {
            biased;
            _ = cancel.cancelled() => break FanoutEnd::Cancelled,
            _ = tokio::time::sleep_until(deadline) => {
                if wait_for_all && winner.is_none() {
                    // Choose among what has arrived by now.
                    winner = choose(&mut states, request.strategy, &prompt_text);
                    if let Some(w) = winner {
                        if !send_all(&out, &mut states[w], &mut first_chunk, started).await {
                            break FanoutEnd::Cancelled;
                        }
                        break FanoutEnd::Answered { uid: states[w].record.target.uid };
                    }
                }
                break match winner {
                    Some(w) => FanoutEnd::Broken {
                        uid: states[w].record.target.uid,
                        reason: "the answer did not complete within the timeout".into(),
                    },
                    None => FanoutEnd::TimedOut,
                };
            }
            msg = rx.recv() => msg,
        };
        let Some(msg) = msg else {
            // Every miner task has ended.
            if wait_for_all {
                winner = choose(&mut states, request.strategy, &prompt_text);
                if let Some(w) = winner {
                    if !send_all(&out, &mut states[w], &mut first_chunk, started).await {
                        break FanoutEnd::Cancelled;
                    }
                    break FanoutEnd::Answered {
                        uid: states[w].record.target.uid,
                    };
                }
            }
            break FanoutEnd::NoAnswer;
        };
        match msg {
            MinerMsg::Chunk(i, text) => {
                let state = &mut states[i];
                state.record.text.push_str(&text);
                if winner == Some(i) {
                    if !send(&out, state, text, &mut first_chunk, started).await {
                        break FanoutEnd::Cancelled;
                    }
                    continue;
                }
                state.chunks.push(text);
                if wait_for_all || winner.is_some() || state.record.rejected.is_some() {
                    continue;
                }
                match cleaning::on_prefix(&state.record.text, &prompt_text) {
                    PrefixVerdict::Wait => {}
                    PrefixVerdict::Reject(reason) => {
                        state.record.rejected = Some(reason);
                        handles[i].abort();
                    }
                    PrefixVerdict::Commit => {
                        winner = Some(i);
                        abort_others(&handles, i);
                        if !send_all(&out, state, &mut first_chunk, started).await {
                            break FanoutEnd::Cancelled;
                        }
                    }
                }
            }
            MinerMsg::Done(i, outcome) => {
                let state = &mut states[i];
                state.done = true;
                let kind = outcome.kind.clone();
                state.record.text = outcome.text.clone();
                state.record.outcome = Some(outcome);
                if winner == Some(i) {
                    break match kind {
                        OutcomeKind::Ok | OutcomeKind::Oversize => FanoutEnd::Answered {
                            uid: state.record.target.uid,
                        },
                        other => FanoutEnd::Broken {
                            uid: state.record.target.uid,
                            reason: format!("the miner's stream broke off: {}", describe(&other)),
                        },
                    };
                }
                if wait_for_all || winner.is_some() || state.record.rejected.is_some() {
                    continue;
                }
                if judge_final(state, &prompt_text) {
                    winner = Some(i);
                    abort_others(&handles, i);
                    if !send_all(&out, state, &mut first_chunk, started).await {
                        break FanoutEnd::Cancelled;
                    }
                    break FanoutEnd::Answered {
                        uid: state.record.target.uid,
                    };
                }
            }
        }
    };
    tasks.abort_all();
    if let Some(w) = winner {
        states[w].record.selected = true;
    }
    FanoutReport {
        end,
        miners: states.into_iter().map(|s| s.record).collect(),
        time_to_first_chunk: first_chunk,
    }
}

/// Whether a finished reply is usable; records the reason when it is not.
fn judge_final(state: &mut MinerState, prompt: &str) -> bool {
    let Some(outcome) = &state.record.outcome else {
        return false;
    };
    let ok = matches!(outcome.kind, OutcomeKind::Ok | OutcomeKind::Oversize);
    if !ok {
        state.record.rejected = Some("miner error");
        return false;
    }
    match cleaning::on_final(&state.record.text, prompt) {
        Some(reason) => {
            state.record.rejected = Some(reason);
            false
        }
        None => true,
    }
}

fn choose(states: &mut [MinerState], strategy: Strategy, prompt: &str) -> Option<usize> {
    let mut usable = Vec::new();
    for (i, state) in states.iter_mut().enumerate() {
        if state.done && judge_final(state, prompt) {
            usable.push(i);
        }
    }
    let len = |i: &usize| states[*i].record.text.trim().chars().count();
    match strategy {
        Strategy::Shortest => usable.into_iter().min_by_key(len),
        Strategy::Longest | Strategy::First => usable.into_iter().max_by_key(len),
    }
}

fn abort_others(handles: &[tokio::task::AbortHandle], keep: usize) {
    for (i, h) in handles.iter().enumerate() {
        if i != keep {
            h.abort();
        }
    }
}

async fn send_all(
    out: &mpsc::Sender<AnswerChunk>,
    state: &mut MinerState,
    first: &mut Option<Duration>,
    started: Instant,
) -> bool {
    for text in std::mem::take(&mut state.chunks) {
        if !send(out, state, text, first, started).await {
            return false;
        }
    }
    true
}

async fn send(
    out: &mpsc::Sender<AnswerChunk>,
    state: &MinerState,
    delta: String,
    first: &mut Option<Duration>,
    started: Instant,
) -> bool {
    if delta.is_empty() {
        return true;
    }
    first.get_or_insert_with(|| started.elapsed());
    out.send(AnswerChunk {
        uid: state.record.target.uid,
        delta,
    })
    .await
    .is_ok()
}

/// A short, client-safe description of how a reply ended.
pub fn describe(kind: &OutcomeKind) -> String {
    match kind {
        OutcomeKind::Ok => "ok".into(),
        OutcomeKind::AxonError { status, .. } => format!("axon error {status}"),
        OutcomeKind::Timeout { before_first_byte } => {
            if *before_first_byte {
                "timeout before the first byte".into()
            } else {
                "timeout".into()
            }
        }
        OutcomeKind::ConnectFailure { .. } => "connect failure".into(),
        OutcomeKind::Malformed { .. } => "malformed reply".into(),
        OutcomeKind::Oversize => "reply too large".into(),
    }
}
