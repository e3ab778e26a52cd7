//! Answer quality through the real worker path ([`JobRunner::process`] against simulated
//! miners speaking the signed synapse protocol): a committed miner that stalls is failed over
//! by continuation and the client gets the whole answer, word for word; with no continuation
//! possible the answer ends at once with an error, long before the deadline; two workers that
//! share a store converge on the same reliability scores.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use chrono::Utc;
use sn1_bittensor::dendrite::{Dendrite, DendriteConfig, MinerProtocol};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::synapse::SynapseShape;
use sn1_contracts::event::{ErrorKind, WorkerEvent};
use sn1_contracts::job::{ChatJob, ChatParams, Endpoint, SamplingMode, Strategy};
use sn1_contracts::store::Store;
use sn1_simnet::fleet::Fleet;
use sn1_simnet::miner::{Misbehaviour, SimMinerConfig, fleet_answer};
use sn1_worker::WorkerConfig;
use sn1_worker::audit::{AuditSettings, build_record};
use sn1_worker::directory::Directory;
use sn1_worker::job::{JobRunner, JobStatus, JobSummary};
use sn1_worker::quality::QualityConfig;
use sn1_worker::reliability::shared;
use sn1_worker::selection::SelectionPolicy;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const QUESTION: &str = "How do I keep a sourdough starter alive?";
const STALL_AFTER: Duration = Duration::from_millis(400);

/// Miners 0..n: the one with the highest uid (the highest incentive, so `top_incentive` asks it
/// first) stalls after 3 chunks when `staller` is set; the others answer. All answer the same
/// text, so any can continue another.
async fn fleet(n: u16, staller: bool) -> Fleet {
    let bad = staller.then_some(Misbehaviour::StallAfter { chunks: 3 });
    fleet_with(n, bad).await
}

/// Like [`fleet`], the highest uid misbehaving as `bad`.
async fn fleet_with(n: u16, bad: Option<Misbehaviour>) -> Fleet {
    fleet_of(n, |uid, c| {
        if uid == n - 1 {
            c.misbehaviour = bad.clone();
        }
    })
    .await
}

/// Miners 0..n answering the same text, each then set up by `setup`.
async fn fleet_of(n: u16, setup: impl Fn(u16, &mut SimMinerConfig)) -> Fleet {
    let configs = (0..n)
        .map(|uid| {
            let mut c = SimMinerConfig::for_uid(uid).unwrap();
            c.reply.same_for_all = true;
            c.reply.chunk_delay = Duration::from_millis(10);
            setup(uid, &mut c);
            c
        })
        .collect();
    Fleet::start_with(configs).await.unwrap()
}

/// A restart in other words: the answer's opening, then something else.
const OTHER_WORDS: &str = "You asked about sourdough. Feed it flour and water every day.";

fn runner(fleet: &Fleet, quality: QualityConfig) -> JobRunner {
    let hotkey = Hotkey::from_seed_hex(&format!("0x{}", "22".repeat(32))).unwrap();
    JobRunner {
        dendrite: Dendrite::new(hotkey, DendriteConfig::default()).unwrap(),
        directory: Directory::fixed(fleet.metagraph().clone()),
        config: WorkerConfig {
            instance_id: "quality-test".into(),
            concurrency: 4,
            protocol: MinerProtocol::Synapse(SynapseShape::Classic),
            first_byte_timeout: Duration::from_secs(5),
            max_reply_bytes: 1 << 20,
            selection: SelectionPolicy::default(),
            heartbeat_interval: Duration::from_secs(1),
            progress_interval: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(1),
            quality,
        },
    }
}

fn quality(attempts: usize) -> QualityConfig {
    QualityConfig {
        stall_after: Some(STALL_AFTER),
        failover_attempts: attempts,
        failover_width: 1,
        failover_wait: Duration::from_secs(1),
        ..QualityConfig::default()
    }
}

fn job(k: u16, sampling_mode: SamplingMode, budget_s: i64) -> ChatJob {
    ChatJob {
        request_id: uuid::Uuid::now_v7().to_string(),
        events_to: String::new(),
        endpoint: Endpoint::Chat,
        api_key_id: "test".into(),
        created_at: Utc::now(),
        accept_by: Utc::now() + chrono::Duration::seconds(5),
        deadline: Utc::now() + chrono::Duration::seconds(budget_s),
        attempt: 0,
        params: ChatParams {
            k,
            exclude: vec![],
            roles: vec!["user".into()],
            messages: vec![QUESTION.into()],
            strategy: Strategy::First,
            sampling_mode,
            sampling: Default::default(),
        },
    }
}

/// Runs `job`; its summary, the text the client got and its last event.
async fn run(runner: &JobRunner, job: &ChatJob) -> (JobSummary, String, Option<WorkerEvent>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let summary = runner.process(job, CancellationToken::new(), tx).await;
    let (mut text, mut last) = (String::new(), None);
    while let Some(event) = rx.recv().await {
        match &event {
            WorkerEvent::Chunk { delta, .. } => text.push_str(delta),
            WorkerEvent::Done { .. } | WorkerEvent::Error { .. } => last = Some(event),
            _ => {}
        }
    }
    (summary, text, last)
}

#[tokio::test]
async fn a_stalling_committed_miner_is_failed_over_and_the_client_gets_the_whole_answer() {
    let fleet = fleet(3, true).await;
    let runner = runner(&fleet, quality(2));
    let started = Instant::now();
    let (summary, text, last) = run(&runner, &job(1, SamplingMode::TopIncentive, 20)).await;
    let took = started.elapsed();
    assert_eq!(summary.status, JobStatus::Answered, "{:?}", summary.error);
    // One coherent answer: the staller's 3 chunks, then the continuation, word for word.
    assert_eq!(text, fleet_answer(QUESTION));
    assert!(
        matches!(last, Some(WorkerEvent::Done { uid: 1, .. })),
        "{last:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Recorded: the stall, who continued, where; the continuation miner's row.
    assert_eq!(summary.failovers.len(), 1);
    let f = &summary.failovers[0];
    assert_eq!((f.from_uid, f.to_uid), (2, Some(1)));
    assert_eq!(f.at_chars, 48, "3 chunks of 16 characters");
    assert!(f.gap < STALL_AFTER + Duration::from_secs(1), "{:?}", f.gap);
    assert_eq!(summary.commit.map(|c| c.uid), Some(2));
    let continued = summary.miners.iter().find(|m| m.target.uid == 1).unwrap();
    assert!(continued.continuation && continued.selected);
    // The continuation request carried the partial answer as an assistant turn.
    let call = fleet.miner(1).unwrap().calls().pop().unwrap();
    assert_eq!(call.roles, vec!["user", "assistant"]);
    assert_eq!(call.messages[1], fleet_answer(QUESTION)[..48]);
    // The audit record says so too.
    let record = build_record(
        &job(1, SamplingMode::TopIncentive, 20),
        &summary,
        took,
        &AuditSettings::default(),
        1 << 20,
    );
    assert_eq!(record.quality.commit_uid, Some(2));
    assert_eq!(record.quality.failovers[0]["to_uid"], 1);
    let verdicts: Vec<_> = record
        .miners
        .iter()
        .map(|m| m.quality.verdict.clone().unwrap())
        .collect();
    assert_eq!(verdicts, vec!["stalled", "usable"]);
}

#[tokio::test]
async fn a_committed_miner_whose_reply_breaks_off_is_continued_too() {
    let fleet = fleet_with(3, Some(Misbehaviour::Reset { after_chunks: 2 })).await;
    let runner = runner(&fleet, quality(2));
    let (summary, text, last) = run(&runner, &job(1, SamplingMode::TopIncentive, 20)).await;
    assert_eq!(summary.status, JobStatus::Answered, "{:?}", summary.error);
    assert_eq!(text, fleet_answer(QUESTION));
    assert!(
        matches!(last, Some(WorkerEvent::Done { uid: 1, .. })),
        "{last:?}"
    );
    let f = &summary.failovers[0];
    assert_eq!((f.from_uid, f.to_uid, f.at_chars), (2, Some(1), 32));
    assert!(f.reason.contains("broke off"), "{}", f.reason);
}

#[tokio::test]
async fn with_no_continuation_possible_a_stall_ends_at_once_with_an_error() {
    // Failover off, and failover on with no spare miner: both end right after the stall.
    for (miners, attempts) in [(3, 0), (1, 2)] {
        let fleet = fleet(miners, true).await;
        let runner = runner(&fleet, quality(attempts));
        let started = Instant::now();
        let (summary, text, last) = run(&runner, &job(1, SamplingMode::TopIncentive, 20)).await;
        let took = started.elapsed();
        assert_eq!(summary.status, JobStatus::Broken);
        assert_eq!(text, fleet_answer(QUESTION)[..48]);
        let Some(WorkerEvent::Error { kind, message, .. }) = last else {
            panic!("expected an error event, got {last:?}");
        };
        assert_eq!(kind, ErrorKind::Timeout);
        assert!(message.contains("stopped sending mid-answer"), "{message}");
        // Well before the 20 s deadline: the stall threshold plus the miner's start.
        assert!(took < STALL_AFTER + Duration::from_secs(1), "took {took:?}");
        let f = &summary.failovers[0];
        assert_eq!(
            (f.to_uid, f.at_chars),
            (None, 48),
            "3 chunks of 16 characters"
        );
    }
}

#[tokio::test]
async fn a_client_slower_than_its_miner_is_not_taken_for_a_stall() {
    // One-character chunks 1 ms apart: the ~450-chunk answer outruns the worker's 256-chunk
    // queue to a client that reads one chunk, then nothing for 3 × STALL_AFTER. The miner never
    // stops; the fan-out, held up passing chunks on, finds them queued when its stall timer
    // fires. With failover off, taking that for a stall would break the answer.
    let fleet = fleet_of(2, |_, c| {
        c.reply.chunk_chars = 1;
        c.reply.chunk_delay = Duration::from_millis(1);
    })
    .await;
    let runner = runner(&fleet, quality(0));
    let job = job(1, SamplingMode::TopIncentive, 20);
    let (tx, mut rx) = mpsc::channel(1);
    let client = tokio::spawn(async move {
        let (mut text, mut last) = (String::new(), None);
        while let Some(event) = rx.recv().await {
            match &event {
                WorkerEvent::Chunk { delta, .. } => {
                    if text.is_empty() {
                        tokio::time::sleep(STALL_AFTER * 3).await;
                    }
                    text.push_str(delta);
                }
                WorkerEvent::Done { .. } | WorkerEvent::Error { .. } => last = Some(event),
                _ => {}
            }
        }
        (text, last)
    });
    let summary = runner.process(&job, CancellationToken::new(), tx).await;
    let (text, last) = client.await.unwrap();
    assert_eq!(summary.status, JobStatus::Answered, "{:?}", summary.error);
    assert!(summary.failovers.is_empty(), "{:?}", summary.failovers);
    assert!(matches!(last, Some(WorkerEvent::Done { .. })), "{last:?}");
    assert_eq!(text, fleet_answer(QUESTION));
}

#[tokio::test]
async fn a_committed_miner_dripping_under_the_stall_threshold_is_judged_at_the_deadline() {
    // uid 1 wins the race with a usable opening, then sends a chunk every STALL_AFTER - 60 ms:
    // never a stall, and its ~450-character answer would take ~9.5 s; the deadline is 2 s.
    // uid 0 answers well but later, and is dropped when uid 1 wins.
    let fleet = fleet_of(2, |uid, c| match uid {
        1 => c.reply.chunk_delay = STALL_AFTER - Duration::from_millis(60),
        _ => c.reply.first_byte_delay = Duration::from_millis(300),
    })
    .await;
    let runner = runner(&fleet, quality(0));
    let job = job(2, SamplingMode::TopIncentive, 2);
    let started = Instant::now();
    let (summary, text, last) = run(&runner, &job).await;
    let took = started.elapsed();
    assert_eq!(summary.status, JobStatus::Broken, "{:?}", summary.error);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(summary.failovers.is_empty(), "never silent for STALL_AFTER");
    assert!(fleet_answer(QUESTION).starts_with(&text) && !text.is_empty());
    assert!(matches!(last, Some(WorkerEvent::Error { .. })), "{last:?}");
    assert_eq!(summary.commit.map(|c| c.uid), Some(1));
    // The audit record judges the dripping miner; the one dropped because it won, not.
    let record = build_record(&job, &summary, took, &AuditSettings::default(), 1 << 20);
    let row = |uid: u16| record.miners.iter().find(|m| m.uid == uid).unwrap();
    // Before: `unknown` (and outcome `cancelled`), never counted.
    assert_eq!(row(1).quality.verdict.as_deref(), Some("failed"));
    assert_eq!(row(1).outcome, "timeout");
    assert_eq!(
        row(1).clean_reason.as_deref(),
        Some(sn1_worker::reliability::CUT_OFF)
    );
    assert!(row(1).selected);
    assert_eq!(row(0).quality.verdict.as_deref(), Some("unknown"));
    // And the worker's scores count it against the miner.
    let tally = |uid: usize| {
        let n = &fleet.metagraph().neurons[uid];
        let key = sn1_worker::reliability::MinerKey::new(&n.hotkey, &n.axon_ip, n.axon_port);
        runner.config.quality.scores.tally(&key).unwrap_or_default()
    };
    let dripper = tally(1);
    assert!(dripper.judged > 0.9 && dripper.usable == 0.0, "{dripper:?}");
    assert!(dripper.score() < sn1_worker::reliability::Tally::default().score());
    assert!(tally(0).judged < 1e-9, "{:?}", tally(0));
}

#[tokio::test]
async fn two_workers_sharing_a_store_converge_on_the_same_scores() {
    let fleet = fleet(4, true).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::sqlite(&dir.path().join("audit.sqlite3"))
        .await
        .unwrap();
    // Worker A asks every miner a few times and its audit records reach the store.
    let a = runner(&fleet, quality(1));
    let mut records = Vec::new();
    for _ in 0..3 {
        let job = job(1, SamplingMode::TopIncentive, 10);
        let (summary, _, _) = run(&a, &job).await;
        records.push(build_record(
            &job,
            &summary,
            Duration::from_secs(1),
            &AuditSettings::default(),
            1 << 20,
        ));
    }
    let refs: Vec<_> = records.iter().collect();
    store.insert_audit(&refs).await.unwrap();
    // Worker B has seen nothing itself; after one refresh each, both boards are the same.
    let b = runner(&fleet, quality(1));
    assert!(b.config.quality.scores.snapshot().is_empty());
    let window = Duration::from_secs(600);
    shared::refresh(&store, &a.config.quality.scores, window)
        .await
        .unwrap();
    shared::refresh(&store, &b.config.quality.scores, window)
        .await
        .unwrap();
    let (sa, sb) = (
        a.config.quality.scores.snapshot(),
        b.config.quality.scores.snapshot(),
    );
    assert!(!sa.is_empty());
    assert_eq!(sa.len(), sb.len());
    for (key, ta) in &sa {
        let tb = sb[key];
        // The same rows; only the instant each worker decays them to differs (ms apart, on a
        // 5-minute half-life), so the scores agree to well within a thousandth.
        assert!(
            (ta.score() - tb.score()).abs() < 1e-3,
            "{key:?}: {ta:?} vs {tb:?}"
        );
    }
    // And B now ranks the staller (uid 3) last: its replies were judged stalled.
    let staller = fleet.metagraph().neurons[3].clone();
    let key = sn1_worker::reliability::MinerKey::new(
        &staller.hotkey,
        &staller.axon_ip,
        staller.axon_port,
    );
    let worst = sb
        .iter()
        .min_by(|x, y| x.1.score().total_cmp(&y.1.score()))
        .unwrap();
    assert_eq!(worst.0, &key);
}

#[tokio::test]
async fn a_spare_that_restarts_the_answer_is_trimmed_and_the_client_gets_it_once() {
    // uid 2 stalls after 48 characters; uid 1, asked to continue, answers from the start.
    let fleet = fleet_of(3, |uid, c| {
        c.misbehaviour = match uid {
            2 => Some(Misbehaviour::StallAfter { chunks: 3 }),
            1 => Some(Misbehaviour::Restart),
            _ => None,
        }
    })
    .await;
    let runner = runner(&fleet, quality(2));
    let (summary, text, last) = run(&runner, &job(1, SamplingMode::TopIncentive, 20)).await;
    assert_eq!(summary.status, JobStatus::Answered, "{:?}", summary.error);
    assert_eq!(text, fleet_answer(QUESTION));
    assert!(
        matches!(last, Some(WorkerEvent::Done { uid: 1, .. })),
        "{last:?}"
    );
    assert_eq!(summary.failovers.len(), 1);
    assert_eq!(summary.failovers[0].to_uid, Some(1));
    let spare = summary.miners.iter().find(|m| m.target.uid == 1).unwrap();
    assert!(spare.continuation && spare.selected);
    // Its audit copy is what it said: the whole answer, opening included.
    assert_eq!(spare.text, fleet_answer(QUESTION));
}

#[tokio::test]
async fn a_spare_that_restarts_in_other_words_is_rejected_and_the_next_one_continues() {
    // uid 3 stalls; uid 2 starts over in other words; uid 1 continues.
    let fleet = fleet_of(4, |uid, c| match uid {
        3 => c.misbehaviour = Some(Misbehaviour::StallAfter { chunks: 3 }),
        2 => c.reply.text = Some(OTHER_WORDS.into()),
        _ => {}
    })
    .await;
    let runner = runner(&fleet, quality(2));
    let (summary, text, last) = run(&runner, &job(1, SamplingMode::TopIncentive, 20)).await;
    assert_eq!(summary.status, JobStatus::Answered, "{:?}", summary.error);
    assert_eq!(text, fleet_answer(QUESTION));
    assert!(
        matches!(last, Some(WorkerEvent::Done { uid: 1, .. })),
        "{last:?}"
    );
    // Recorded: the try that came to nothing and why, then the one that continued.
    let tries: Vec<_> = summary
        .failovers
        .iter()
        .map(|f| (f.from_uid, f.to_uid, f.at_chars))
        .collect();
    assert_eq!(tries, vec![(3, None, 48), (3, Some(1), 48)]);
    let reason = &summary.failovers[0].reason;
    assert!(reason.contains("uid 2: restarted"), "{reason}");
    let restarted = summary.miners.iter().find(|m| m.target.uid == 2).unwrap();
    assert!(restarted.continuation && !restarted.selected);
    assert_eq!(restarted.rejected, Some("restarted"));
}

#[tokio::test]
async fn when_every_spare_restarts_in_other_words_the_answer_ends_with_an_error() {
    let fleet = fleet_of(3, |uid, c| match uid {
        2 => c.misbehaviour = Some(Misbehaviour::StallAfter { chunks: 3 }),
        _ => c.reply.text = Some(OTHER_WORDS.into()),
    })
    .await;
    let runner = runner(&fleet, quality(2));
    let started = Instant::now();
    let (summary, text, last) = run(&runner, &job(1, SamplingMode::TopIncentive, 20)).await;
    let took = started.elapsed();
    assert_eq!(summary.status, JobStatus::Broken);
    // Only the stalled miner's text, nothing of the restarts.
    assert_eq!(text, fleet_answer(QUESTION)[..48]);
    let Some(WorkerEvent::Error { message, .. }) = last else {
        panic!("expected an error event, got {last:?}");
    };
    assert!(message.contains("stopped sending mid-answer"), "{message}");
    assert!(took < STALL_AFTER + Duration::from_secs(2), "took {took:?}");
    assert_eq!(summary.failovers.len(), 2);
    assert!(summary.failovers.iter().all(|f| f.to_uid.is_none()));
    assert!(
        summary
            .failovers
            .iter()
            .all(|f| f.reason.contains("restarted"))
    );
}
