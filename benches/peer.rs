//! The peer benchmark (issue 12): a mock OpenAI backend asked directly, through our gateway
//! (api + worker as processes, `--miner-protocol openai`, over a nats-server of their own) and
//! through TensorZero's gateway (from the PyPI wheel), side by side in one run: added time to
//! first chunk, throughput, errors, CPU per request and RSS of each gateway's process tree.
//!
//! Run: `scripts/peer-bench.sh` (builds, makes the TensorZero venv, runs `cargo bench --bench
//! peer`; `-- --quick` for short rounds). Options after `--`: `--quick` (3 s rounds), `--secs
//! N` (round length), `--reps N` (interleaved repetitions, at least 2), `--streams 1,16,64,256`.
//! `SN1_BASELINE_BIN=/path/to/old/sn1-gateway` adds that build as another column (its own
//! nats-server). Under `cargo test` it runs one smoke round (direct and ours, one stream, three
//! requests, TensorZero skipped) and checks every answer arrived whole.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly where it cannot go on"
)]

#[path = "support/load.rs"]
mod load;
#[path = "support/mock.rs"]
mod mock;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/report.rs"]
mod report;
mod support;

use load::{Until, ask, round};
use peers::{Kind, Target};
use report::{Measure, Memory, Results};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::tree_rss_kib;

const FIRST_CHUNK: Duration = Duration::from_millis(50);
const CHUNK_GAP: Duration = Duration::from_millis(10);
const CHUNKS: usize = 20;
const LONG_CHUNKS: usize = 200;
/// Mock miners in the metagraph (k = 5 asks all of them).
const MINERS: usize = 5;

struct Opts {
    smoke: bool,
    secs: f64,
    reps: usize,
    levels: Vec<usize>,
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .map(String::as_str)
        };
        let quick = args.iter().any(|a| a == "--quick");
        Opts {
            smoke: !args.iter().any(|a| a == "--bench"),
            secs: value("--secs").map_or(if quick { 3.0 } else { 10.0 }, |v| {
                v.parse().expect("--secs N")
            }),
            reps: value("--reps").map_or(2, |v| v.parse().expect("--reps N")),
            levels: value("--streams").map_or(vec![1, 16, 64, 256], |v| {
                v.split(',')
                    .map(|n| n.parse().expect("--streams 1,16,64"))
                    .collect()
            }),
        }
    }

    /// The worker's concurrency: room for every stream twice over.
    fn concurrency(&self) -> usize {
        (2 * self.levels.iter().copied().max().unwrap_or(1)).max(64)
    }
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    raise_open_files();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    // Returning drops every target, which kills its processes.
    tokio::select! {
        () = run(opts) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: stopping every process"),
        _ = term.recv() => eprintln!("terminated: stopping every process"),
    }
}

async fn run(opts: Opts) {
    let out = peers::out_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    // The smoke round's logs go away with it; a benchmark's stay in target/peer-bench/logs.
    let logs = if opts.smoke {
        tmp.path().to_owned()
    } else {
        out.join("logs")
    };
    std::fs::create_dir_all(&logs).expect("logs dir");
    let mock = mock::Mock::start(MINERS, FIRST_CHUNK, CHUNK_GAP, CHUNKS);
    let mg = logs.join("metagraph.json");
    write_metagraph(&mg, &mock.ports);
    let max_streams = opts.levels.iter().copied().max().unwrap_or(1);
    let concurrency = opts.concurrency();
    let mut targets = vec![Target::direct(&mock.api_base())];
    let bin = Path::new(env!("CARGO_BIN_EXE_sn1-gateway"));
    targets.push(Target::ours("ours", bin, &mg, &logs, concurrency).await);
    if let Ok(baseline) = std::env::var("SN1_BASELINE_BIN") {
        let bin = PathBuf::from(baseline);
        targets.push(Target::ours("baseline", &bin, &mg, &logs, concurrency).await);
    }
    let mut notes = Vec::new();
    if opts.smoke {
        notes.push("TensorZero skipped in the smoke round".to_owned());
    } else {
        match Target::tensorzero(&mock.api_base(), &logs).await {
            Ok((t, version)) => {
                notes.push(format!(
                    "TensorZero {version} (PyPI wheel), observability off"
                ));
                targets.push(t);
            }
            Err(e) => {
                eprintln!("TensorZero skipped: {e}");
                notes.push(format!("TensorZero skipped: {e}"));
            }
        }
    }
    let expected = mock::expected_text(CHUNKS);
    for t in &targets {
        for _ in 0..3 {
            if let Err(e) = ask(&t.client, &t.api, &expected).await {
                panic!("{} did not answer whole: {e}", t.label);
            }
        }
    }
    let mut results = Results {
        labels: targets.iter().map(|t| (t.label.clone(), t.kind)).collect(),
        ..Results::default()
    };
    if opts.smoke {
        for t in &mut targets {
            let m = measure(t, 0, 1, CHUNKS, 1, Until::Count(3), &expected).await;
            assert_eq!(m.round.errors, 0, "{}: {:?}", t.label, m.round.first_error);
            assert_eq!(m.round.samples.len(), 3, "{}", t.label);
            results.measures.push(m);
        }
        print!("{}", results.render(None));
        return;
    }
    let idle: Vec<u64> = targets.iter().map(|t| tree_rss_kib(&t.pids)).collect();
    // Open every connection the largest round needs (not measured).
    for t in &targets {
        round(&t.client, &t.api, max_streams, Until::Count(1), &expected).await;
    }
    let until = Until::Elapsed(Duration::from_secs_f64(opts.secs));
    let extras = if opts.levels.contains(&64) {
        64
    } else {
        max_streams
    };
    let long = mock::expected_text(LONG_CHUNKS);
    let mut peaks = vec![0u64; targets.len()];
    for rep in 0..opts.reps {
        // Interleaved: each repetition walks the targets the other way round.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for &streams in &opts.levels {
            for &i in &order {
                let t = &mut targets[i];
                let rss = (streams == max_streams).then(|| t.sample_rss());
                let m = measure(t, rep, streams, CHUNKS, 1, until, &expected).await;
                if let Some(rss) = rss {
                    peaks[i] = peaks[i].max(rss.stop().await);
                }
                results.measures.push(m);
            }
        }
        for &i in &order {
            let t = &mut targets[i];
            if t.kind == Kind::Ours {
                let m = measure(t, rep, extras, CHUNKS, MINERS, until, &expected).await;
                results.measures.push(m);
            }
        }
        mock.set_chunks(LONG_CHUNKS);
        for &i in &order {
            let m = measure(&mut targets[i], rep, extras, LONG_CHUNKS, 1, until, &long).await;
            results.measures.push(m);
        }
        mock.set_chunks(CHUNKS);
    }
    for (i, t) in targets.iter().enumerate() {
        if t.kind != Kind::Direct {
            results.memory.push(Memory {
                label: t.label.clone(),
                idle: idle[i],
                peak: peaks[i],
                streams: max_streams,
            });
        }
    }
    let report = format!("{}{}", header(&opts, &notes), results.render(Some(extras)));
    print!("{report}");
    std::fs::write(out.join("results.md"), &report).expect("results.md");
    eprintln!("written to {}", out.join("results.md").display());
}

/// One round of `t`, with the CPU its process tree used meanwhile.
async fn measure(
    t: &mut Target,
    rep: usize,
    streams: usize,
    chunks: usize,
    k: usize,
    until: Until,
    expected: &str,
) -> Measure {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = t.cpu_seconds();
    let round = round(&t.client, &t.api_k(k), streams, until, expected).await;
    let cpu = t.cpu_seconds() - cpu;
    assert!(t.alive(), "a process of {} has exited", t.label);
    if round.errors > 0 {
        eprintln!(
            "{} at {streams} streams ({chunks} chunks, k={k}): {} errors, first: {}",
            t.label,
            round.errors,
            round.first_error.as_deref().unwrap_or("")
        );
    }
    Measure {
        rep,
        streams,
        label: t.label.clone(),
        kind: t.kind,
        chunks,
        k,
        round,
        cpu,
    }
}

/// Every stream holds a few sockets in this process (client and mock sides): the soft limit
/// on open files goes up to the hard one.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// A metagraph file listing the mock's ports as miners (uids 0..).
fn write_metagraph(path: &Path, ports: &[u16]) {
    let neurons: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(uid, port)| {
            let hotkey = sn1_simnet::miner::sim_hotkey(uid as u16).expect("hotkey");
            json!({"uid": uid, "hotkey": hotkey.ss58(), "axon_ip": "127.0.0.1",
                "axon_port": port, "stake_tao": 0.0, "incentive": 0.1, "validator_permit": false})
        })
        .collect();
    let mg = json!({"netuid": 1, "neurons": neurons});
    std::fs::write(path, serde_json::to_vec_pretty(&mg).expect("json")).expect("metagraph");
}

/// Date, machine, build and load of the run.
fn header(opts: &Opts, notes: &[String]) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let git = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut h = format!(
        "## Peer benchmark, {}\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    h += &format!("* machine: {cores} cores (nproc), {model}\n");
    h += &format!(
        "* ours: `sn1-gateway` {git}, api + worker (`--miner-protocol openai`, k = 1, WORKER_CONCURRENCY {}) + their own nats-server, audit off (no DATABASE_URL)\n",
        opts.concurrency()
    );
    for n in notes {
        h += &format!("* {n}\n");
    }
    h += &format!(
        "* load: mock OpenAI backend in the bench process (first chunk after {} ms, then chunks {} ms apart, {CHUNKS} chunks unless said), {MINERS} mock miners in the metagraph; N streams each asking again and again for {} s per round; {} interleaved repetitions, medians shown; CPU = utime + stime of the gateway's process tree (ours: api + worker + nats-server) during the round, per request; added = minus direct in the same repetition\n",
        FIRST_CHUNK.as_millis(),
        CHUNK_GAP.as_millis(),
        opts.secs,
        opts.reps
    );
    h
}
