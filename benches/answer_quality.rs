//! Answer quality on a simulated fleet (issue 16): random vs top_incentive vs reliable
//! sampling, each without and with stall failover and with hedged commit + failover, at k = 3
//! and 5, on the default behaviour profile (100 miners: 35% fast-good, 20% slow-good, 8% empty,
//! 8% refusing, 14% stalling, 8% erroring, 7% garbage; seed 1).
//!
//! In one process: the simulated miners (real signed synapse protocol over loopback) and the
//! worker's unit of work ([`JobRunner::process`], what the NATS worker and standalone mode run),
//! 50 requests in flight, a 10 s budget each, a fresh worker (and scoreboard: `reliable` learns
//! during the run) per row. Every request asks a different question; an answer is complete and
//! usable when the client's text is the fleet's whole answer to it, word for word.
//!
//! Run: `cargo bench --bench answer_quality` (1,000 requests per row; `-- --quick` 200); under
//! `cargo test` one small smoke round. Results also in `target/answer-quality/results.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark reports on stdout and fails loudly"
)]

use chrono::Utc;
use futures::StreamExt;
use sn1_bittensor::dendrite::{Dendrite, DendriteConfig, MinerProtocol};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::synapse::SynapseShape;
use sn1_contracts::event::WorkerEvent;
use sn1_contracts::job::{ChatJob, ChatParams, Endpoint, SamplingMode, Strategy};
use sn1_simnet::fleet::{Fleet, FleetConfig};
use sn1_simnet::miner::fleet_answer;
use sn1_simnet::profile::Profile;
use sn1_worker::WorkerConfig;
use sn1_worker::directory::Directory;
use sn1_worker::job::{JobRunner, JobStatus};
use sn1_worker::quality::QualityConfig;
use sn1_worker::selection::SelectionPolicy;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A silence in the client's stream longer than this counts as time lost to a stall (the
/// fleet's chunks are 15 ms apart; a slow-good miner's first byte is not after a chunk).
const STALL_GAP: Duration = Duration::from_millis(250);

/// One row's way of answering.
#[derive(Clone, Copy)]
struct Mode {
    sampling: SamplingMode,
    hedge: bool,
    failover: bool,
}

impl Mode {
    fn quality(self) -> QualityConfig {
        QualityConfig {
            hedge_chars: if self.hedge { 120 } else { 0 },
            hedge_wait: Duration::from_millis(300),
            stall_after: self.failover.then_some(Duration::from_millis(1500)),
            failover_attempts: if self.failover { 2 } else { 0 },
            failover_width: 2,
            failover_wait: Duration::from_secs(1),
            exploration: 0.1,
            ..QualityConfig::default()
        }
    }

    fn sampling_name(self) -> &'static str {
        match self.sampling {
            SamplingMode::Random => "random",
            SamplingMode::TopIncentive => "top_incentive",
            SamplingMode::Reliable => "reliable",
        }
    }
}

/// What one request got.
struct Sample {
    complete: bool,
    error: bool,
    ttfc: Option<Duration>,
    total: Duration,
    /// The longest silence after text began, when longer than [`STALL_GAP`].
    stall: Option<Duration>,
}

fn runner(fleet: &Fleet, mode: Mode) -> Arc<JobRunner> {
    let hotkey = Hotkey::from_seed_hex(&format!("0x{}", "33".repeat(32))).unwrap();
    Arc::new(JobRunner {
        dendrite: Dendrite::new(hotkey, DendriteConfig::default()).unwrap(),
        directory: Directory::fixed(fleet.metagraph().clone()),
        config: WorkerConfig {
            instance_id: "bench".into(),
            concurrency: 64,
            protocol: MinerProtocol::Synapse(SynapseShape::Classic),
            first_byte_timeout: Duration::from_secs(10),
            max_reply_bytes: 1 << 20,
            selection: SelectionPolicy::default(),
            heartbeat_interval: Duration::from_secs(1),
            progress_interval: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(1),
            quality: mode.quality(),
        },
    })
}

async fn one(runner: Arc<JobRunner>, i: usize, k: u16, mode: Mode, budget: Duration) -> Sample {
    let question = format!("Question {i}: how would you plan a budget cruise around Ireland?");
    let job = ChatJob {
        request_id: uuid::Uuid::now_v7().to_string(),
        events_to: String::new(),
        endpoint: Endpoint::Chat,
        api_key_id: "bench".into(),
        created_at: Utc::now(),
        accept_by: Utc::now() + chrono::Duration::seconds(5),
        deadline: Utc::now() + chrono::Duration::from_std(budget).unwrap(),
        attempt: 0,
        params: ChatParams {
            k,
            exclude: vec![],
            roles: vec!["user".into()],
            messages: vec![question.clone()],
            strategy: Strategy::First,
            sampling_mode: mode.sampling,
            sampling: Default::default(),
        },
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let client = tokio::spawn(async move {
        let (mut text, mut last, mut gap) = (String::new(), None::<Instant>, Duration::ZERO);
        while let Some(event) = rx.recv().await {
            let now = Instant::now();
            let silence = last.map(|l| now - l).unwrap_or_default();
            match event {
                WorkerEvent::Chunk { delta, .. } => {
                    gap = gap.max(silence);
                    last = Some(now);
                    text.push_str(&delta);
                }
                WorkerEvent::Done { .. } | WorkerEvent::Error { .. } => gap = gap.max(silence),
                _ => {}
            }
        }
        (text, gap)
    });
    let started = Instant::now();
    let summary = runner.process(&job, CancellationToken::new(), tx).await;
    let total = started.elapsed();
    let (text, gap) = client.await.unwrap();
    let answered = summary.status == JobStatus::Answered;
    Sample {
        complete: answered && text == fleet_answer(&question),
        error: !answered,
        ttfc: summary.time_to_first_chunk,
        total,
        stall: (gap > STALL_GAP).then_some(gap),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// One table row.
fn row(k: u16, mode: Mode, samples: &[Sample], wall: Duration) -> String {
    let n = samples.len() as f64;
    let share = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as f64 / n;
    let mut ttfc: Vec<Duration> = samples.iter().filter_map(|s| s.ttfc).collect();
    ttfc.sort();
    let mut total: Vec<Duration> = samples.iter().map(|s| s.total).collect();
    total.sort();
    let stalls: Vec<Duration> = samples.iter().filter_map(|s| s.stall).collect();
    let lost: Duration = stalls.iter().sum();
    let worst = stalls.iter().max().copied().unwrap_or_default();
    format!(
        "| {k} | {} | {} | {} | {:.1}% | {:.1}% | {:.0} / {:.0} | {:.0} | {} | {:.1} | {:.2} | {:.0} |",
        mode.sampling_name(),
        if mode.hedge { "120 chars" } else { "—" },
        if mode.failover { "yes" } else { "—" },
        share(&|s| s.complete) * 100.0,
        share(&|s| s.error) * 100.0,
        percentile(&ttfc, 0.5),
        percentile(&ttfc, 0.95),
        percentile(&total, 0.95),
        stalls.len(),
        lost.as_secs_f64(),
        worst.as_secs_f64(),
        wall.as_secs_f64(),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let (miners, requests, budget, in_flight) = match (benching, quick) {
        (true, false) => (100, 1000, Duration::from_secs(10), 50),
        (true, true) => (100, 200, Duration::from_secs(10), 50),
        (false, _) => (30, 12, Duration::from_secs(3), 12),
    };
    let fleet = Fleet::start(&FleetConfig {
        miners,
        profile: Some((Profile::default(), 1)),
        ..FleetConfig::default()
    })
    .await
    .expect("simulated fleet");
    let ks: &[u16] = if benching { &[3, 5] } else { &[3] };
    let mut table = String::from(
        "| k | sampling | hedged commit | failover | complete usable | errors | TTFC p50 / p95 ms | total p95 ms | stalls seen | time lost to stalls s | longest stall s | wall s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    println!(
        "{miners} miners (default profile, seed 1), {requests} requests per row, {in_flight} in flight, budget {budget:?}"
    );
    for &k in ks {
        for sampling in [
            SamplingMode::Random,
            SamplingMode::TopIncentive,
            SamplingMode::Reliable,
        ] {
            for (hedge, failover) in [(false, false), (false, true), (true, true)] {
                let mode = Mode {
                    sampling,
                    hedge,
                    failover,
                };
                let runner = runner(&fleet, mode);
                let started = Instant::now();
                let samples: Vec<Sample> = futures::stream::iter(0..requests)
                    .map(|i| one(runner.clone(), i, k, mode, budget))
                    .buffer_unordered(in_flight)
                    .collect()
                    .await;
                let line = row(k, mode, &samples, started.elapsed());
                println!("{line}");
                writeln!(table, "{line}").unwrap();
                if !benching && mode.sampling == SamplingMode::Reliable && failover {
                    // The smoke round checks the machinery, not the figures: answers arrive.
                    assert!(
                        samples.iter().any(|s| s.complete),
                        "no complete answer: {line}"
                    );
                }
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/answer-quality");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("results.md"), &table);
    }
    println!("\n{table}");
}
