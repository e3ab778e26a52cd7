//! The fault suite (README "Reliability"): the real `sn1-gateway` processes over a
//! `nats-server` the test owns (its own port and store directory), simulated miners in the test
//! process with replies known word for word, and faults injected for real — NATS killed and
//! restarted, a worker killed with SIGKILL, stopped with SIGTERM or frozen with SIGSTOP, the api
//! stopped with SIGTERM. Each test asserts what the clients see (never a partial answer
//! presented as finished: API.md "Completeness") and how fast the gateway recovers, with bounded
//! waits so it ends by itself. The tests run one at a time: they measure seconds on a 2-core
//! machine.
//!
//! The five-minute soak (200 concurrent streams, zero errors, memory back to its baseline) is
//! `#[ignore]`d: `cargo test --test faults -- --ignored soak` (`SOAK_SECS`, `SOAK_STREAMS`
//! change its length and load).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use sn1_simnet::fleet::Fleet;
use sn1_simnet::miner::{SimMinerConfig, default_answer, sim_hotkey};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The fault tests measure recovery in seconds on a 2-core machine: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long NATS stays down in a restart (a pod restart is at least this).
const NATS_DOWN: Duration = Duration::from_secs(1);

/// The worker gauge that proves a worker is pulling.
const LAST_TAKEN: &str = "sn1_worker_last_job_taken_timestamp_seconds";

/// `w000 w001 …`: a reply in which every truncation, gap or repeat shows.
fn numbered(words: usize) -> String {
    (0..words).map(|i| format!("w{i:03} ")).collect()
}

/// A miner replying [`numbered`]`(words)`, one word per chunk `gap_ms` apart, the first after
/// `first_byte_ms`.
fn scripted(uid: u16, words: usize, gap_ms: u64, first_byte_ms: u64) -> SimMinerConfig {
    let mut c = SimMinerConfig::new(uid, sim_hotkey(uid).unwrap());
    c.reply.text = Some(numbered(words));
    c.reply.chunk_chars = 5;
    c.reply.chunk_delay = Duration::from_millis(gap_ms);
    c.reply.first_byte_delay = Duration::from_millis(first_byte_ms);
    c
}

/// A request for miner `uid` alone: k = 1 and every other uid of the `miners` excluded.
fn to_miner(uid: u16, miners: u16, timeout_s: f64, message: &str) -> Value {
    let exclude: Vec<u16> = (0..miners).filter(|u| *u != uid).collect();
    json!({"k": 1, "timeout": timeout_s, "exclude": exclude, "roles": ["user"], "messages": [message]})
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn open_streams(fleet: &Fleet, uid: u16) -> usize {
    fleet.miner(uid).unwrap().open_streams()
}

/// The fewest chunks any open reply of miner `uid` has sent.
fn fewest_chunks_open(fleet: &Fleet, uid: u16) -> usize {
    fleet
        .miner(uid)
        .unwrap()
        .calls()
        .iter()
        .filter(|c| c.closed_at.is_none())
        .map(|c| c.chunks_sent)
        .min()
        .unwrap_or(0)
}

/// Polls `ready` every 20 ms; panics with `what` after `within`.
async fn wait_until(what: &str, within: Duration, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `body` to `url` in a task, observed like a client that tolerates a cut.
fn spawn_observe(
    url: String,
    key: &str,
    body: Value,
    give_up: Duration,
) -> tokio::task::JoinHandle<Observed> {
    let key = key.to_string();
    tokio::spawn(async move { observe_ndjson(&url, &key, &body, give_up).await })
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Observed>>) -> Vec<Observed> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// What one client got, judged against the complete reply.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the fields are read through Debug, in failure messages"
)]
enum Verdict {
    /// `finished`, with every word of the reply, in order, once.
    Complete,
    /// `finished` with another text than the reply (truncated, gapped, repeated): the one
    /// outcome the contract never allows.
    FinishedIncomplete { got: String },
    /// A `StreamError` (`finish_reason: "error"`) as the last event.
    Error { message: String, at: Instant },
    /// The connection ended without a terminal event.
    Cut { end: StreamEnd },
    /// Still open when the test gave up on it.
    Hung,
    /// Not 200, or no response at all.
    Refused { status: u16, body: String },
    /// Not what the contract allows (events after the terminal one, a bad sequence).
    Malformed(String),
}

impl Verdict {
    fn kind(&self) -> &'static str {
        match self {
            Verdict::Complete => "complete",
            Verdict::FinishedIncomplete { .. } => "FINISHED-INCOMPLETE",
            Verdict::Error { .. } => "stream-error",
            Verdict::Cut { .. } => "cut",
            Verdict::Hung => "HUNG",
            Verdict::Refused { .. } => "refused",
            Verdict::Malformed(_) => "MALFORMED",
        }
    }
}

fn judge(o: &Observed, full: &str) -> Verdict {
    if o.status == 0 {
        return match &o.end {
            StreamEnd::GaveUp => Verdict::Hung,
            end => Verdict::Refused {
                status: 0,
                body: format!("{end:?}"),
            },
        };
    }
    if o.status != 200 {
        return Verdict::Refused {
            status: o.status,
            body: o
                .events
                .first()
                .map(|(_, e)| e.to_string())
                .unwrap_or_default(),
        };
    }
    for (i, (_, e)) in o.events.iter().enumerate() {
        if e["sequence_number"].as_u64() != Some(i as u64 + 1) {
            return Verdict::Malformed(format!("event {} out of sequence: {e}", i + 1));
        }
    }
    let terminal = o
        .events
        .iter()
        .position(|(_, e)| !e["finish_reason"].is_null());
    let Some(end) = terminal else {
        return match &o.end {
            StreamEnd::GaveUp => Verdict::Hung,
            end => Verdict::Cut { end: end.clone() },
        };
    };
    if end + 1 != o.events.len() {
        return Verdict::Malformed(format!(
            "{} events after the terminal one",
            o.events.len() - end - 1
        ));
    }
    let (at, last) = &o.events[end];
    match last["finish_reason"].as_str() {
        Some("error") => Verdict::Error {
            message: last["error"].as_str().unwrap_or("").to_string(),
            at: *at,
        },
        Some("finished") => {
            let deltas = o.text();
            let accumulated: String = last["accumulated_chunks"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if deltas == full && accumulated == full {
                Verdict::Complete
            } else {
                Verdict::FinishedIncomplete {
                    got: format!("deltas {deltas:?}, accumulated_chunks {accumulated:?}"),
                }
            }
        }
        _ => Verdict::Malformed(format!("terminal event {last}")),
    }
}

/// `complete: 12, stream-error: 8`.
fn tally(verdicts: &[Verdict]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for v in verdicts {
        *counts.entry(v.kind()).or_insert(0) += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Sends requests until one is answered completely (at most `within`); returns how long
/// that took.
async fn wait_for_an_answer(stack: &OwnedStack, body: &Value, full: &str, within: Duration) {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = within.saturating_sub(start.elapsed());
        assert!(
            !left.is_zero(),
            "no complete answer within {within:?}: {seen:?}\n{}",
            stack.logs_tail(40)
        );
        let o = observe_ndjson(&stack.api(0, "/chat"), &stack.key, body, left).await;
        match judge(&o, full) {
            Verdict::Complete => return,
            v => seen.push(format!("{v:?}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Case 1. NATS restarts while nothing runs: within 5 s of the new server answering, a request
/// is answered again and every worker has taken a job (each worker takes one job at a time and
/// the probe keeps two 1-s jobs in flight, so one worker alone cannot keep up; the proof is each
/// worker's `sn1_worker_last_job_taken_timestamp_seconds`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_while_idle_requests_and_every_worker_recover_within_5s() {
    let _serial = SERIAL.lock().await;
    let fleet = Fleet::start_with(vec![scripted(0, 10, 100, 0)])
        .await
        .unwrap();
    let full = numbered(10);
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let mut stack = OwnedStack::start(
        "idle",
        &mg,
        1,
        2,
        &[("WORKER_CONCURRENCY", "1".into())],
        &[],
    )
    .await;
    let body = |tag: String| to_miner(0, 1, 10.0, &tag);
    wait_for_an_answer(&stack, &body("warm".into()), &full, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed_at = stack.nats.kill();
    tokio::time::sleep(NATS_DOWN).await;
    let restarted = stack.nats.start_again().await;
    let restarted_wall = unix_now();
    eprintln!(
        "FAULT idle-restart: NATS down for {}",
        secs(restarted - killed_at)
    );

    let mut probes = tokio::task::JoinSet::new();
    let mut first_answer: Option<Duration> = None;
    let mut failures: Vec<String> = Vec::new();
    let mut took: Vec<Option<f64>> = vec![None; stack.workers.len()];
    let give_up = restarted + Duration::from_secs(15);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0;
    while Instant::now() < give_up && !(first_answer.is_some() && took.iter().all(Option::is_some))
    {
        while probes.len() < 2 {
            let (url, key, body) = (
                stack.api(0, "/chat"),
                stack.key.clone(),
                body(format!("p{n}")),
            );
            n += 1;
            probes.spawn(async move {
                let o = observe_ndjson(&url, &key, &body, Duration::from_secs(12)).await;
                if o.status != 200 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                o
            });
        }
        tokio::select! {
            Some(done) = probes.join_next() => {
                let o = done.unwrap();
                match judge(&o, &full) {
                    Verdict::Complete => {
                        first_answer.get_or_insert(o.ended_at - restarted);
                    }
                    v => failures.push(format!(
                        "{} after {}: {v:?}",
                        v.kind(),
                        secs(o.ended_at - restarted)
                    )),
                }
            }
            _ = tick.tick() => {
                for (i, w) in stack.workers.iter().enumerate() {
                    if took[i].is_none()
                        && let Some(t) = metric(&w.url("/metrics"), LAST_TAKEN, "").await
                        && t > restarted_wall
                    {
                        took[i] = Some(t - restarted_wall);
                    }
                }
            }
        }
    }
    probes.abort_all();
    eprintln!(
        "FAULT idle-restart: first complete answer {} after NATS was back; workers' first job \
         after it (s): {took:?}; failed probes meanwhile: {failures:#?}",
        first_answer.map(secs).unwrap_or_else(|| "never".into())
    );
    let answered = first_answer.unwrap_or_else(|| {
        panic!(
            "no request answered within 15 s of the NATS restart: {failures:#?}\n{}",
            stack.logs_tail(40)
        )
    });
    assert!(
        answered <= Duration::from_secs(5),
        "first complete answer {} after the restart (limit 5 s)",
        secs(answered)
    );
    for (i, t) in took.iter().enumerate() {
        let t = t.unwrap_or_else(|| {
            panic!(
                "worker {i} took no job within 15 s of the NATS restart (no {LAST_TAKEN} after \
                 it)\n{}",
                stack.logs_tail(40)
            )
        });
        assert!(
            t <= 5.0,
            "worker {i} pulled again only {t:.2} s after the restart (limit 5 s)"
        );
    }
}

/// Case 2. NATS restarts while 20 answers stream, three times: no client gets `finished`
/// with less than the whole reply — each answer is complete or ends with a `StreamError`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_stream_never_passes_a_partial_answer_as_finished() {
    let _serial = SERIAL.lock().await;
    const WORDS: usize = 40;
    let fleet = Fleet::start_with(vec![scripted(0, WORDS, 100, 0), scripted(1, WORDS, 100, 0)])
        .await
        .unwrap();
    let full = numbered(WORDS);
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let mut stack = OwnedStack::start("midnats", &mg, 1, 2, &[], &[]).await;
    let probe = json!({"k": 1, "timeout": 10, "roles": ["user"], "messages": ["probe"]});
    wait_for_an_answer(&stack, &probe, &full, Duration::from_secs(15)).await;

    for round in 0..3 {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let body = json!({"k": 1, "timeout": 20, "roles": ["user"], "messages": [format!("r{round} q{i}")]});
                spawn_observe(stack.api(0, "/chat"), &stack.key, body, Duration::from_secs(40))
            })
            .collect();
        wait_until(
            &format!("round {round}: 20 replies streaming"),
            Duration::from_secs(10),
            || open_streams(&fleet, 0) + open_streams(&fleet, 1) >= 20,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let killed_at = stack.nats.kill();
        tokio::time::sleep(NATS_DOWN).await;
        let restarted = stack.nats.start_again().await;
        let observed = join_all(tasks).await;
        let verdicts: Vec<Verdict> = observed.iter().map(|o| judge(o, &full)).collect();
        let error_after_kill: Vec<f64> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Error { at, .. } => Some((*at - killed_at).as_secs_f64()),
                _ => None,
            })
            .collect();
        let last_end = observed
            .iter()
            .map(|o| o.ended_at)
            .max()
            .unwrap()
            .duration_since(killed_at);
        eprintln!(
            "FAULT mid-stream-restart round {round}: {} (NATS down {}); errors arrived {:?} s \
             after the kill; every stream over {} after it",
            tally(&verdicts),
            secs(restarted - killed_at),
            error_after_kill,
            secs(last_end)
        );
        let bad: Vec<(usize, &Verdict)> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Verdict::Complete | Verdict::Error { .. }))
            .collect();
        assert!(
            bad.is_empty(),
            "round {round}: {} — not complete and not a StreamError: {bad:#?}\n{}",
            tally(&verdicts),
            stack.logs_tail(30)
        );
        // Ready for the next round: an answer goes through again.
        wait_until(
            "the miners' replies closed",
            Duration::from_secs(20),
            || open_streams(&fleet, 0) + open_streams(&fleet, 1) == 0,
        )
        .await;
        wait_for_an_answer(&stack, &probe, &full, Duration::from_secs(15)).await;
    }
}

/// Jobs on worker 0 only: `streaming` answers already streaming from miner 0 (80 words, 100 ms
/// apart) and `late` ones waiting for miner 1's first byte (4 s); then a second worker, which
/// took none of them, is started. Returns the client tasks (streaming first).
async fn jobs_on_worker_0_then_a_second_worker(
    stack: &mut OwnedStack,
    fleet: &Fleet,
    miners: u16,
    streaming: usize,
    late: usize,
) -> (
    Vec<tokio::task::JoinHandle<Observed>>,
    Vec<tokio::task::JoinHandle<Observed>>,
) {
    let give_up = Duration::from_secs(40);
    let s: Vec<_> = (0..streaming)
        .map(|i| {
            let body = to_miner(0, miners, 20.0, &format!("streaming {i}"));
            spawn_observe(stack.api(0, "/chat"), &stack.key, body, give_up)
        })
        .collect();
    let l: Vec<_> = (0..late)
        .map(|i| {
            let body = to_miner(1, miners, 20.0, &format!("late {i}"));
            spawn_observe(stack.api(0, "/chat"), &stack.key, body, give_up)
        })
        .collect();
    wait_until("worker 0 took every job", Duration::from_secs(10), || {
        open_streams(fleet, 0) == streaming && open_streams(fleet, 1) == late
    })
    .await;
    let started = Instant::now();
    stack.add_worker().await;
    eprintln!("(second worker ready in {})", secs(started.elapsed()));
    wait_until(
        "the streaming answers are under way",
        Duration::from_secs(5),
        || fewest_chunks_open(fleet, 0) >= 5,
    )
    .await;
    (s, l)
}

/// The late miner must not have sent a byte yet, or the test is not testing what it says.
fn assert_nothing_streamed_yet(fleet: &Fleet, late: usize) {
    let calls = fleet.miner(1).unwrap().calls();
    let waiting = calls
        .iter()
        .filter(|c| c.closed_at.is_none() && c.chunks_sent == 0)
        .count();
    assert_eq!(
        waiting, late,
        "setup too slow: the late miner had already answered at the fault: {calls:#?}"
    );
}

/// Case 3. A worker is SIGKILLed mid-stream (two workers): clients whose answer had started
/// get a `StreamError` within 3 s; jobs not streamed yet are answered completely by the other
/// worker within their deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_mid_stream() {
    let _serial = SERIAL.lock().await;
    let fleet = Fleet::start_with(vec![scripted(0, 80, 100, 0), scripted(1, 10, 50, 4000)])
        .await
        .unwrap();
    let (streamed_text, late_text) = (numbered(80), numbered(10));
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let mut stack = OwnedStack::start("kill9", &mg, 1, 1, &[], &[]).await;
    let (streaming, late) =
        jobs_on_worker_0_then_a_second_worker(&mut stack, &fleet, 2, 4, 4).await;
    assert_nothing_streamed_yet(&fleet, 4);
    let killed_at = Instant::now();
    stack.workers[0].signal("KILL");
    let streaming = join_all(streaming).await;
    let late = join_all(late).await;

    let mut problems = Vec::new();
    let mut error_after = Vec::new();
    for (i, o) in streaming.iter().enumerate() {
        match judge(o, &streamed_text) {
            Verdict::Error { at, .. } if at - killed_at <= Duration::from_secs(3) => {
                error_after.push((at - killed_at).as_secs_f64());
            }
            v => problems.push(format!(
                "streaming {i}: wanted a StreamError within 3 s of the kill, got {} after {}: \
                 {v:?}",
                v.kind(),
                secs(o.ended_at.saturating_duration_since(killed_at))
            )),
        }
    }
    let mut answered_after = Vec::new();
    for (i, o) in late.iter().enumerate() {
        match judge(o, &late_text) {
            Verdict::Complete if o.ended_at - o.sent_at <= Duration::from_secs(20) => {
                answered_after.push((o.ended_at - killed_at).as_secs_f64());
            }
            v => problems.push(format!(
                "late {i}: wanted the whole answer from the other worker within the 20 s \
                 deadline, got {} after {}: {v:?}",
                v.kind(),
                secs(o.ended_at - o.sent_at)
            )),
        }
    }
    eprintln!(
        "FAULT kill -9 worker: streaming clients' StreamError {error_after:?} s after the kill; \
         late jobs answered by the other worker {answered_after:?} s after it (their miner takes \
         4 s to first byte)"
    );
    assert!(
        problems.is_empty(),
        "{problems:#?}\n{}",
        stack.logs_tail(40)
    );
}

/// Case 4. SIGTERM to a worker mid-stream (two workers): its in-flight answers complete, it
/// exits, and 5 requests sent 1 s after the SIGTERM are all answered by the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_a_worker_drains_and_new_requests_go_to_the_other() {
    let _serial = SERIAL.lock().await;
    let fleet = Fleet::start_with(vec![scripted(0, 40, 100, 0), scripted(1, 10, 50, 4000)])
        .await
        .unwrap();
    let full = numbered(40);
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let mut stack = OwnedStack::start("term", &mg, 1, 1, &[], &[]).await;
    let (in_flight, _) = jobs_on_worker_0_then_a_second_worker(&mut stack, &fleet, 2, 4, 0).await;
    let term_at = Instant::now();
    stack.workers[0].signal("TERM");
    tokio::time::sleep_until((term_at + Duration::from_secs(1)).into()).await;
    let new: Vec<_> = (0..5)
        .map(|i| {
            let body = to_miner(0, 2, 20.0, &format!("after the sigterm {i}"));
            spawn_observe(
                stack.api(0, "/chat"),
                &stack.key,
                body,
                Duration::from_secs(30),
            )
        })
        .collect();
    let exit = stack.workers[0].wait_exit(Duration::from_secs(15)).await;
    let exited_after = term_at.elapsed();
    let in_flight = join_all(in_flight).await;
    let new = join_all(new).await;

    let mut problems = Vec::new();
    for (name, list) in [("in-flight", &in_flight), ("new", &new)] {
        for (i, o) in list.iter().enumerate() {
            let v = judge(o, &full);
            if !matches!(v, Verdict::Complete) {
                problems.push(format!("{name} {i}: {} {v:?}", v.kind()));
            }
        }
    }
    let answered_by_survivor = metric(
        &stack.workers[1].url("/metrics"),
        "sn1_worker_jobs_total",
        "answered",
    )
    .await
    .unwrap_or(0.0);
    let in_flight_done = in_flight.iter().map(|o| o.ended_at).max().unwrap() - term_at;
    let new_first: Vec<f64> = new
        .iter()
        .filter_map(|o| Some((o.first_chunk_at()? - o.sent_at).as_secs_f64()))
        .collect();
    eprintln!(
        "FAULT sigterm worker: in-flight {} (last done {} after the SIGTERM); worker exited \
         {exit:?} {} after it; new requests {}, first chunk after {new_first:?} s; the other \
         worker answered {answered_by_survivor}",
        tally(
            &in_flight
                .iter()
                .map(|o| judge(o, &full))
                .collect::<Vec<_>>()
        ),
        secs(in_flight_done),
        secs(exited_after),
        tally(&new.iter().map(|o| judge(o, &full)).collect::<Vec<_>>()),
    );
    assert!(
        problems.is_empty(),
        "{problems:#?}\n{}",
        stack.logs_tail(40)
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "the SIGTERMed worker did not exit cleanly within 15 s: {exit:?}\n{}",
        stack.logs_tail(40)
    );
    assert_eq!(
        answered_by_survivor, 5.0,
        "the 5 new requests were not all answered by the other worker"
    );
}

/// Case 5. SIGTERM to the api mid-stream: each open stream finishes completely, ends with a
/// `StreamError`, or its connection ends — never `finished` with part of the answer; nothing
/// hangs, and the api exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_the_api_mid_stream_never_truncates_a_finished_answer() {
    let _serial = SERIAL.lock().await;
    let fleet = Fleet::start_with(vec![scripted(0, 30, 100, 0)])
        .await
        .unwrap();
    let full = numbered(30);
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let mut stack = OwnedStack::start("apiterm", &mg, 1, 1, &[], &[]).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let body = to_miner(0, 1, 20.0, &format!("q{i}"));
            spawn_observe(
                stack.api(0, "/chat"),
                &stack.key,
                body,
                Duration::from_secs(30),
            )
        })
        .collect();
    wait_until("10 replies streaming", Duration::from_secs(10), || {
        open_streams(&fleet, 0) == 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term_at = Instant::now();
    stack.apis[0].signal("TERM");
    let observed = join_all(tasks).await;
    let exit = stack.apis[0].wait_exit(Duration::from_secs(15)).await;
    let exited_after = term_at.elapsed();
    let verdicts: Vec<Verdict> = observed.iter().map(|o| judge(o, &full)).collect();
    let last_end = observed.iter().map(|o| o.ended_at).max().unwrap() - term_at;
    eprintln!(
        "FAULT sigterm api: {} (every stream over {} after the SIGTERM); api exited {exit:?} {} \
         after it",
        tally(&verdicts),
        secs(last_end),
        secs(exited_after)
    );
    let bad: Vec<_> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            !matches!(
                v,
                Verdict::Complete | Verdict::Error { .. } | Verdict::Cut { .. }
            )
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}\n{}", stack.logs_tail(40));
    assert!(
        exit.is_some(),
        "the api did not exit within 15 s of SIGTERM\n{}",
        stack.logs_tail(40)
    );
}

/// Case 6. A worker frozen with SIGSTOP mid-stream (two workers; SIGCONT at the end): clients
/// whose answer had started get a `StreamError` within 3.5 s; jobs with nothing streamed get
/// that or a complete answer from the other worker; requests sent while it is frozen, and after
/// it wakes, are answered; nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_a_worker_mid_stream() {
    let _serial = SERIAL.lock().await;
    let fleet = Fleet::start_with(vec![
        scripted(0, 80, 100, 0),
        scripted(1, 10, 50, 4000),
        scripted(2, 10, 20, 0),
    ])
    .await
    .unwrap();
    let (streamed_text, late_text, quick_text) = (numbered(80), numbered(10), numbered(10));
    let dir = tempfile::tempdir().unwrap();
    let mg = write_metagraph(&fleet, dir.path());
    let mut stack = OwnedStack::start("stop", &mg, 1, 1, &[], &[]).await;
    let (streaming, late) =
        jobs_on_worker_0_then_a_second_worker(&mut stack, &fleet, 3, 3, 3).await;
    assert_nothing_streamed_yet(&fleet, 3);
    let stopped_at = Instant::now();
    stack.workers[0].signal("STOP");
    // SIGCONT however the test ends.
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            send_signal(self.0, "CONT");
        }
    }
    let resume = Resume(stack.workers[0].pid().unwrap());
    // Past the frozen worker's last pull request (2 s expiry): new work must go elsewhere.
    tokio::time::sleep_until((stopped_at + Duration::from_secs(3)).into()).await;
    let while_frozen: Vec<_> = (0..3)
        .map(|i| {
            let body = to_miner(2, 3, 10.0, &format!("while frozen {i}"));
            spawn_observe(
                stack.api(0, "/chat"),
                &stack.key,
                body,
                Duration::from_secs(20),
            )
        })
        .collect();
    let streaming = join_all(streaming).await;
    let late = join_all(late).await;
    let while_frozen = join_all(while_frozen).await;
    drop(resume);
    let resumed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: Vec<_> = (0..2)
        .map(|i| {
            let body = to_miner(2, 3, 10.0, &format!("after the thaw {i}"));
            spawn_observe(
                stack.api(0, "/chat"),
                &stack.key,
                body,
                Duration::from_secs(20),
            )
        })
        .collect();
    let after = join_all(after).await;

    let limit = Duration::from_millis(3500);
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (i, o) in streaming.iter().enumerate() {
        match judge(o, &streamed_text) {
            Verdict::Error { at, .. } if at - stopped_at <= limit => {
                seen.push(format!(
                    "streaming {i}: error after {}",
                    secs(at - stopped_at)
                ));
            }
            v => problems.push(format!(
                "streaming {i}: wanted a StreamError within 3.5 s of the SIGSTOP, got {} after \
                 {}: {v:?}",
                v.kind(),
                secs(o.ended_at.saturating_duration_since(stopped_at))
            )),
        }
    }
    for (i, o) in late.iter().enumerate() {
        match judge(o, &late_text) {
            Verdict::Error { at, .. } if at - stopped_at <= limit => {
                seen.push(format!("late {i}: error after {}", secs(at - stopped_at)));
            }
            Verdict::Complete if o.ended_at - o.sent_at <= Duration::from_secs(20) => {
                seen.push(format!(
                    "late {i}: answered after {}",
                    secs(o.ended_at - stopped_at)
                ));
            }
            v => problems.push(format!(
                "late {i}: wanted a StreamError within 3.5 s or the whole answer within the \
                 deadline, got {} after {}: {v:?}",
                v.kind(),
                secs(o.ended_at.saturating_duration_since(stopped_at))
            )),
        }
    }
    for (name, list) in [("while frozen", &while_frozen), ("after the thaw", &after)] {
        for (i, o) in list.iter().enumerate() {
            match judge(o, &quick_text) {
                Verdict::Complete => seen.push(format!(
                    "{name} {i}: answered in {}",
                    secs(o.ended_at - o.sent_at)
                )),
                v => problems.push(format!("{name} {i}: {} {v:?}", v.kind())),
            }
        }
    }
    eprintln!(
        "FAULT sigstop worker (resumed {} after the stop): {seen:#?}",
        secs(resumed_at - stopped_at)
    );
    assert!(
        problems.is_empty(),
        "{problems:#?}\n{}",
        stack.logs_tail(40)
    );
}

/// The soak: `SOAK_SECS` (300) at `SOAK_STREAMS` (200) concurrent streams against `simnet`
/// (16 well-behaved miners), one worker and one api: zero errors (every answer complete and
/// exactly the miner's reply), and the resident memory of the api and the worker back within
/// ±10% of their baseline — taken after a 20-s warm-up at the same load, once idle, since the
/// allocator keeps what the first burst needed — when the load stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "five minutes: cargo test --test faults -- --ignored soak"]
async fn soak() {
    let _serial = SERIAL.lock().await;
    let env_or = |key: &str, default: u64| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let soak_for = Duration::from_secs(env_or("SOAK_SECS", 300));
    let streams = env_or("SOAK_STREAMS", 200) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mg = dir.path().join("mg.json");
    let simnet = Proc::start(
        &format!("soak-simnet-{:08x}", rand::random::<u32>()),
        &[
            "simnet",
            "--miners",
            "16",
            "--misbehaving",
            "0",
            "--first-byte-ms",
            "50",
            "--latency-spread-ms",
            "100",
            "--chunk-gap-ms",
            "300",
            "--chain-port",
            "0",
            "--metagraph-out",
            mg.to_str().unwrap(),
        ],
        &[],
    );
    wait_until(
        "simnet wrote its metagraph",
        Duration::from_secs(30),
        || mg.exists(),
    )
    .await;
    let stack = OwnedStack::start(
        "soak",
        &mg,
        1,
        1,
        &[("WORKER_CONCURRENCY", (streams + 56).to_string())],
        &[],
    )
    .await;
    let pids = [
        ("api", stack.apis[0].pid().unwrap()),
        ("worker", stack.workers[0].pid().unwrap()),
    ];
    let rss = || pids.map(|(_, pid)| rss_kib(pid).unwrap_or(0));
    let cold = rss();

    /// Runs `streams` clients back to back until `until`; returns (answers, failures).
    async fn load(
        stack: &OwnedStack,
        streams: usize,
        until: Instant,
    ) -> (usize, Vec<String>, Vec<Duration>) {
        let mut clients = tokio::task::JoinSet::new();
        for c in 0..streams {
            let (url, key) = (stack.api(0, "/chat"), stack.key.clone());
            clients.spawn(async move {
                let (mut ok, mut failed, mut ttfc) = (0, Vec::new(), Vec::new());
                let mut n = 0;
                while Instant::now() < until {
                    let message = format!("client {c} question {n}");
                    n += 1;
                    let body =
                        json!({"k": 1, "timeout": 20, "roles": ["user"], "messages": [message]});
                    let o = observe_ndjson(&url, &key, &body, Duration::from_secs(30)).await;
                    let uid = o
                        .events
                        .first()
                        .and_then(|(_, e)| e["selected_uid"].as_u64())
                        .unwrap_or(0) as u16;
                    match judge(&o, &default_answer(uid, &message)) {
                        Verdict::Complete => {
                            ok += 1;
                            if let Some(at) = o.first_chunk_at() {
                                ttfc.push(at - o.sent_at);
                            }
                        }
                        v => failed.push(format!("{}: {v:?}", v.kind())),
                    }
                }
                (ok, failed, ttfc)
            });
        }
        let (mut ok, mut failed, mut ttfc) = (0, Vec::new(), Vec::new());
        while let Some(r) = clients.join_next().await {
            let (o, f, t) = r.unwrap();
            ok += o;
            failed.extend(f);
            ttfc.extend(t);
        }
        (ok, failed, ttfc)
    }

    let (warm_ok, warm_failed, _) =
        load(&stack, streams, Instant::now() + Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let baseline = rss();
    eprintln!(
        "SOAK warm-up: {warm_ok} answers, {} failures; RSS KiB cold {cold:?}, baseline {baseline:?}",
        warm_failed.len()
    );

    let started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut peak = [0u64; 2];
        loop {
            for (i, (_, pid)) in pids.iter().enumerate() {
                peak[i] = peak[i].max(rss_kib(*pid).unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            if started.elapsed() > soak_for {
                return peak;
            }
        }
    });
    let (ok, failed, mut ttfc) = load(&stack, streams, started + soak_for).await;
    let took = started.elapsed();
    let peak = sampler.await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss();
    ttfc.sort();
    let pct = |p: f64| {
        ttfc.get(((ttfc.len() as f64 * p) as usize).min(ttfc.len().saturating_sub(1)))
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3))
            .unwrap_or_default()
    };
    eprintln!(
        "SOAK {streams} streams for {}: {ok} answers ({:.1}/s), {} failures; TTFC p50 {} p99 {}; \
         RSS KiB (api, worker) baseline {baseline:?}, peak {peak:?}, after {after:?}",
        secs(took),
        ok as f64 / took.as_secs_f64(),
        failed.len(),
        pct(0.5),
        pct(0.99)
    );
    assert!(
        failed.is_empty() && warm_failed.is_empty(),
        "{} failures, first: {:#?}\n{}",
        failed.len() + warm_failed.len(),
        failed
            .iter()
            .chain(&warm_failed)
            .take(5)
            .collect::<Vec<_>>(),
        stack.logs_tail(30)
    );
    for (i, (name, _)) in pids.iter().enumerate() {
        let ratio = after[i] as f64 / baseline[i] as f64;
        assert!(
            (0.9..=1.1).contains(&ratio),
            "{name} RSS {} KiB after the soak vs {} KiB baseline ({:+.1}%)",
            after[i],
            baseline[i],
            (ratio - 1.0) * 100.0
        );
    }
    drop(simnet);
}
