//! The fan-out: ask k miners at once and turn their streamed replies into one answer.
//!
//! * [`Strategy::First`]: every reply is watched as it streams; the first miner whose text is
//!   usable (see [`crate::cleaning`]) is committed and streamed on, the others are dropped at
//!   once (their connections close).
//! * [`Strategy::Longest`] / [`Strategy::Shortest`]: wait for every reply (or the deadline),
//!   drop unusable ones, stream the chosen answer.
//!
//! Miners are never asked one after another. [`run`] is the I/O: one task per miner reads its
//! reply into a channel, and one select loop feeds the events (chunk, miner done, all done,
//! deadline, cancel) to the state machine in `fanout/state.rs`, then does what it says (pass
//! chunks on, drop miners, stop). Chunks go out on a bounded channel; the caller relays them to
//! wherever the answer goes (NATS, in-process).
//!
//! Answer quality ([`Quality`]): with `hedge_chars` the first miner is committed only once it
//! has sent that much usable text (the others stay warm until then); with `stall_after` a
//! committed miner silent that long is dropped as stalled, and `fanout/failover.rs` asks spare
//! miners to continue the answer (the conversation plus the text sent so far as a partial
//! assistant turn) or ends the answer at once with a clear error. A spare that starts the answer
//! over instead is trimmed to what it adds, or rejected (`fanout/state/overlap.rs`).

mod failover;
mod miner_span;
mod readers;
mod state;

pub use failover::{CommitPoint, Failover, FailoverRecord, Quality};
use readers::Readers;
use sn1_bittensor::dendrite::{Deadline, Dendrite, MinerProtocol, MinerTarget, Prompt};
use sn1_bittensor::reply::{Outcome, OutcomeKind, ReplyLimits};
use sn1_contracts::job::Strategy;
pub use state::TextHeld;
use state::{Fanout, Step};
pub(crate) use state::{OVER_BUDGET, STALLED};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
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
    /// When the fan-out (and every miner's reply) must be over.
    pub deadline: Deadline,
    /// Hedged commit, stall detection and failover.
    pub quality: Quality,
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
    /// It was asked to continue another miner's stalled answer.
    pub continuation: bool,
}

#[cfg(test)]
impl MinerRecord {
    /// A reply of `target` that ended as `kind` with `text`, its first byte after `ttfb_ms`
    /// (what scoring and selection tests feed the scoreboard).
    pub(crate) fn ended(target: MinerTarget, kind: OutcomeKind, text: &str, ttfb_ms: u64) -> Self {
        MinerRecord {
            target,
            outcome: Some(Outcome {
                kind,
                http_status: Some(200),
                time_to_first_byte: Some(Duration::from_millis(ttfb_ms)),
                total_time: Duration::from_millis(ttfb_ms + 10),
                bytes: text.len(),
                chunks: 1,
                text: String::new(),
            }),
            rejected: None,
            selected: false,
            text: text.into(),
            continuation: false,
        }
    }
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
    /// How much reply text the fan-out held (bounded by its memory budget).
    pub text_held: TextHeld,
    /// Which miner was committed, and when.
    pub commit: Option<CommitPoint>,
    /// Stalls of the committed miner and how each was handled, in order.
    pub failovers: Vec<FailoverRecord>,
}

/// What a miner's reader task reports, tagged with the miner's index.
pub(crate) enum MinerMsg {
    Chunk(usize, String),
    Done(usize, Outcome),
}

/// Runs one fan-out until it ends, its deadline passes or `cancel` fires. Chunks of the answer
/// are sent on `out`; if `out` is closed, the fan-out stops as if cancelled.
pub async fn run(
    dendrite: &Dendrite,
    request: FanoutRequest,
    cancel: CancellationToken,
    out: mpsc::Sender<AnswerChunk>,
) -> FanoutReport {
    run_after(dendrite, request, cancel, out, String::new(), None).await
}

/// [`run`], continuing after `prior` (the text the client already has; empty for a new
/// answer). `first_chunk_by`: with nothing committed by then, the fan-out ends timed out.
async fn run_after(
    dendrite: &Dendrite,
    request: FanoutRequest,
    cancel: CancellationToken,
    out: mpsc::Sender<AnswerChunk>,
    prior: String,
    first_chunk_by: Option<tokio::time::Instant>,
) -> FanoutReport {
    let started = Instant::now();
    let prompt = request.prompt.messages.last().cloned().unwrap_or_default();
    let mut fanout = Fanout::new(&request.targets, request.strategy, prompt)
        .with_hedge(request.quality.hedge_chars);
    if !prior.is_empty() {
        // A continuation that starts the answer over is trimmed or rejected, never appended.
        fanout = fanout.continuing(prior.clone());
    }
    let (mut readers, mut rx) = Readers::start(dendrite, &request, started);
    let continuing = !prior.is_empty();
    let mut sent = prior;
    let mut first_chunk = None;
    let mut committed_at = None;
    let (mut stall_at, mut hedge_at) = (None, None);
    // When each miner last sent text: a stall is silence since then, even if it began before
    // the commit (a hedged commit can pick a miner that already went quiet).
    let mut last_text = vec![tokio::time::Instant::now(); request.targets.len()];
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
    let deadline = tokio::time::sleep_until(request.deadline.instant());
    tokio::pin!(deadline);
    let end = loop {
        let mut touched = None;
        let streaming_before = fanout.streaming();
        let step = tokio::select! {
            biased;
            _ = cancel.cancelled() => Step::end(FanoutEnd::Cancelled),
            _ = &mut deadline => fanout.on_deadline(),
            _ = tokio::time::sleep_until(stall_at.unwrap_or(far)), if stall_at.is_some() => {
                // Text already queued is not silence: this loop may have been held up passing
                // chunks to a slow client (or not polled on a busy machine) while the miner
                // went on sending. The timer fires again until the queue is empty.
                match rx.try_recv() {
                    Ok(msg) => receive(Some(msg), &mut fanout, &mut last_text, &mut touched),
                    Err(_) => {
                        stall_at = None;
                        fanout.on_stall()
                    }
                }
            }
            _ = tokio::time::sleep_until(hedge_at.unwrap_or(far)), if hedge_at.is_some() => {
                hedge_at = None;
                fanout.on_hedge_timeout()
            }
            _ = tokio::time::sleep_until(first_chunk_by.unwrap_or(far)),
                if first_chunk_by.is_some() && committed_at.is_none() => Step::end(FanoutEnd::TimedOut),
            msg = rx.recv() => receive(msg, &mut fanout, &mut last_text, &mut touched),
        };
        readers.stop(&step.drop);
        if committed_at.is_none() && fanout.commit_point().is_some() {
            committed_at = Some(started.elapsed());
        }
        // What the client has: a continuation needs it, and a stall's record says how much.
        sent.extend(step.send.iter().map(|c| c.delta.as_str()));
        if !pass_on(&out, step.send, &mut first_chunk, started).await {
            break FanoutEnd::Cancelled;
        }
        if let Some(end) = step.end {
            break end;
        }
        let now = tokio::time::Instant::now();
        stall_at = match (fanout.streaming(), request.quality.stall_after) {
            (Some(i), Some(after)) if touched == Some(i) || streaming_before != Some(i) => {
                Some(last_text.get(i).copied().unwrap_or(now) + after)
            }
            (Some(_), Some(_)) => stall_at,
            _ => None,
        };
        hedge_at = match fanout.hedging() {
            true => hedge_at.or(Some(now + request.quality.hedge_wait)),
            false => None,
        };
    };
    readers.stop_all();
    let text_held = fanout.text_held();
    let commit = fanout
        .commit_point()
        .zip(committed_at)
        .map(|((uid, chars), after)| CommitPoint { uid, chars, after });
    let interrupted = fanout.interrupted();
    let miners = fanout.finish();
    for (span, record) in readers.spans.iter().zip(&miners) {
        miner_span::finish(span, record);
    }
    let report = FanoutReport {
        end,
        text_held,
        miners,
        time_to_first_chunk: first_chunk,
        commit,
        failovers: Vec::new(),
    };
    match interrupted {
        Some((uid, why)) => {
            let stall = failover::Stall {
                uid,
                why,
                sent,
                started,
                continuing,
            };
            failover::continue_answer(dendrite, &request, report, stall, cancel, out).await
        }
        None => report,
    }
}

/// Hands one reader message to `fanout`; a chunk marks its miner as `touched` and as having
/// sent text now.
fn receive(
    msg: Option<MinerMsg>,
    fanout: &mut Fanout,
    last_text: &mut [tokio::time::Instant],
    touched: &mut Option<usize>,
) -> Step {
    match msg {
        Some(MinerMsg::Chunk(i, text)) => {
            *touched = Some(i);
            if let Some(at) = last_text.get_mut(i) {
                *at = tokio::time::Instant::now();
            }
            fanout.on_chunk(i, text)
        }
        Some(MinerMsg::Done(i, outcome)) => fanout.on_done(i, outcome),
        None => fanout.on_all_done(),
    }
}

/// Sends `chunks` on `out`, noting when the first one went; false when `out` is closed.
async fn pass_on(
    out: &mpsc::Sender<AnswerChunk>,
    chunks: Vec<AnswerChunk>,
    first_chunk: &mut Option<Duration>,
    started: Instant,
) -> bool {
    for chunk in chunks {
        first_chunk.get_or_insert_with(|| started.elapsed());
        if out.send(chunk).await.is_err() {
            return false;
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use sn1_bittensor::dendrite::DendriteConfig;
    use sn1_bittensor::keys::Hotkey;
    use sn1_bittensor::synapse::SynapseShape;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Reads one request (head and `content-length` body).
    async fn read_request(sock: &mut TcpStream) {
        let mut buf = Vec::new();
        let mut piece = [0u8; 4096];
        loop {
            let n = sock.read(&mut piece).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&piece[..n]);
            let text = String::from_utf8_lossy(&buf).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }

    /// A miner that answers every request with `chunks` (raw synapse text), or never answers.
    async fn miner(chunks: Option<&'static [&'static str]>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    read_request(&mut sock).await;
                    let Some(chunks) = chunks else {
                        // Hold the connection open, silent.
                        let _ = sock.read(&mut [0u8; 1]).await;
                        return;
                    };
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                                transfer-encoding: chunked\r\n\r\n";
                    let _ = sock.write_all(head.as_bytes()).await;
                    for chunk in chunks {
                        let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                        let _ = sock.write_all(frame.as_bytes()).await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        port
    }

    fn request(ports: &[u16], budget: Duration) -> FanoutRequest {
        FanoutRequest {
            targets: ports
                .iter()
                .enumerate()
                .map(|(i, port)| MinerTarget {
                    uid: 10 + i as u16,
                    ip: "127.0.0.1".into(),
                    port: *port,
                    hotkey: "5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7".into(),
                })
                .collect(),
            prompt: Prompt {
                roles: vec!["user".into()],
                messages: vec!["Tell me a story".into()],
                seed: None,
                sampling: Default::default(),
            },
            protocol: MinerProtocol::Synapse(SynapseShape::Classic),
            limits: ReplyLimits::default(),
            strategy: Strategy::First,
            deadline: Deadline::after(budget),
            quality: Quality::default(),
        }
    }

    fn dendrite() -> Dendrite {
        let hotkey = Hotkey::from_seed_hex(&format!("0x{}", "11".repeat(32))).unwrap();
        Dendrite::new(hotkey, DendriteConfig::default()).unwrap()
    }

    async fn collect(mut rx: mpsc::Receiver<AnswerChunk>) -> Vec<AnswerChunk> {
        let mut chunks = Vec::new();
        while let Some(chunk) = rx.recv().await {
            chunks.push(chunk);
        }
        chunks
    }

    #[tokio::test]
    async fn the_first_usable_miner_is_streamed_and_a_silent_one_dropped() {
        let silent = miner(None).await;
        let good = miner(Some(&["Once upon", " a time."])).await;
        let (tx, rx) = mpsc::channel(16);
        let request = request(&[silent, good], Duration::from_secs(10));
        let started = Instant::now();
        let report = run(&dendrite(), request, CancellationToken::new(), tx).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited for the silent miner"
        );
        assert_eq!(report.end, FanoutEnd::Answered { uid: 11 });
        let chunks = collect(rx).await;
        assert!(chunks.iter().all(|c| c.uid == 11));
        let text: String = chunks.into_iter().map(|c| c.delta).collect();
        assert_eq!(text, "Once upon a time.");
        assert!(report.time_to_first_chunk.is_some());
        assert!(!report.miners[0].selected && report.miners[0].outcome.is_none());
        assert!(report.miners[1].selected);
    }

    #[tokio::test]
    async fn silent_miners_time_out_at_the_deadline() {
        let silent = miner(None).await;
        let (tx, rx) = mpsc::channel(16);
        let started = Instant::now();
        let report = run(
            &dendrite(),
            request(&[silent, silent], Duration::from_millis(300)),
            CancellationToken::new(),
            tx,
        )
        .await;
        let took = started.elapsed();
        assert_eq!(report.end, FanoutEnd::TimedOut);
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3));
        assert!(collect(rx).await.is_empty());
        assert_eq!(report.miners.len(), 2);
        assert_eq!(report.time_to_first_chunk, None);
    }

    #[tokio::test]
    async fn a_cancel_stops_the_fan_out_at_once() {
        let silent = miner(None).await;
        let (tx, _rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            later.cancel();
        });
        let started = Instant::now();
        let report = run(
            &dendrite(),
            request(&[silent], Duration::from_secs(10)),
            cancel,
            tx,
        )
        .await;
        assert_eq!(report.end, FanoutEnd::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
