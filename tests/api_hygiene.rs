//! Connection hygiene of the api, with real processes and real sockets: idle and half-sent
//! connections are closed by the header-read and idle timeouts, a flood of idle connections
//! leaves `/readyz` and `/chat` answering, connections beyond `MAX_CONNECTIONS` get the
//! documented refusal (503 + `Retry-After` + `Connection: close`; `/readyz` still answered), and
//! SIGTERM lets an open stream finish.
//!
//! The flood test holds many sockets in this process and in the api: it first raises this
//! process's soft open-file limit to the hard limit (children inherit it) and scales the flood
//! down below 20,000 when the hard limit is too low, saying so on stderr. It runs alone; the
//! other tests of this file run together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::json;
use sn1_simnet::fleet::Fleet;
use sn1_simnet::miner::{SimMinerConfig, sim_hotkey};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::RwLock;

/// The flood test takes it for writing (alone); the others for reading (together).
static MACHINE: RwLock<()> = RwLock::const_new(());

/// The flood the issue describes.
const FLOOD: u64 = 20_000;

// Timeouts are checked from instants taken just *before* what starts the server's clock (the
// connect, the request), so "closed no earlier than the timeout" needs no tolerance.

/// Raises this process's soft open-file limit to the hard limit; returns the hard limit.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .expect("raise RLIMIT_NOFILE to the hard limit");
    limit.maximum.unwrap_or(u64::MAX)
}

/// A Prometheus sample of `/metrics` text (`name` with its labels, as printed), 0 if absent.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// The `/metrics` page of the ops port `ops`.
async fn metrics(ops: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One worker process over a fleet of `miners` simulated miners, and one api process with
/// `api_env` on top of the usual settings.
struct Distributed {
    _fleet: Fleet,
    _dir: tempfile::TempDir,
    workers: Stack,
    api: Proc,
    port: u16,
    /// The api's ops port (`/metrics`).
    ops: u16,
}

impl Distributed {
    async fn start(tag: &str, fleet: Fleet, api_env: &[(&str, String)]) -> Distributed {
        let dir = tempfile::tempdir().unwrap();
        let mg = write_metagraph(&fleet, dir.path());
        let workers = Stack::start(tag, &mg, 0, 1, &[]).await;
        let port = free_port();
        let ops = free_port();
        let mut env = vec![
            ("NATS_URL", nats_url()),
            ("NATS_PREFIX", workers.prefix.clone()),
            ("PORT", port.to_string()),
            ("OPS_PORT", ops.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", workers.key.clone()),
        ];
        env.extend(api_env.iter().cloned());
        let api = Proc::start(&format!("{}-api", workers.prefix), &["api"], &env);
        wait_ok(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(30),
        )
        .await;
        Distributed {
            _fleet: fleet,
            _dir: dir,
            workers,
            api,
            port,
            ops,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn logs(&self) -> String {
        format!("{}\n==== api\n{}", self.workers.logs(), self.api.log_text())
    }
}

async fn fleet(n: u16, chunk_delay: Duration, text: Option<String>) -> Fleet {
    let configs = (0..n)
        .map(|uid| {
            let mut c = SimMinerConfig::new(uid, sim_hotkey(uid).unwrap());
            c.reply.chunk_delay = chunk_delay;
            if let Some(text) = &text {
                c.reply.text = Some(text.clone());
                c.reply.chunk_chars = 5;
            }
            c
        })
        .collect();
    Fleet::start_with(configs).await.unwrap()
}

/// `sn1-gateway standalone --simnet` with `env` on top of a port, a key and a data directory.
/// Returns the process, its port, its key and its ops port.
async fn standalone(tag: &str, env: &[(&str, String)]) -> (Proc, u16, String, u16) {
    let prefix = unique_prefix(tag);
    let port = free_port();
    let ops = free_port();
    let key = format!("key-{prefix}");
    let mut all = vec![
        ("PORT", port.to_string()),
        ("OPS_PORT", ops.to_string()),
        ("EXPECTED_ACCESS_KEY", key.clone()),
        (
            "DATA_DIR",
            log_dir()
                .join(format!("{prefix}-data"))
                .display()
                .to_string(),
        ),
    ];
    all.extend(env.iter().cloned());
    let proc = Proc::start(
        &format!("{prefix}-standalone"),
        &["standalone", "--simnet"],
        &all,
    );
    wait_ok(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(30),
    )
    .await;
    (proc, port, key, ops)
}

/// Reads until the peer closes (EOF or reset); returns the bytes read.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body; returns the head and the body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return (head, text[end + 4..end + 4 + length].to_string());
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a whole response: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server has closed `stream` (without waiting).
fn is_closed(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Opens `n` connections to `addr` (64 handshakes at a time, well within the api's listen
/// backlog) and returns them with when each started connecting.
async fn open(addr: SocketAddr, n: usize) -> Vec<(TcpStream, Instant)> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|_| async move {
            let started = Instant::now();
            (TcpStream::connect(addr).await.expect("connect"), started)
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// `n` keep-alive connections that each got an answer within the cap (an answer with
/// `Connection: close` came from beyond it, e.g. while a closed client's slot was still taken).
async fn hold(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let start = Instant::now();
    let mut held = Vec::new();
    while held.len() < n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        if head.contains("connection: close") {
            assert!(start.elapsed() < Duration::from_secs(10), "no room for {n}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            held.push(stream);
        }
    }
    held
}

/// Waits until the api's `sn1_api_connections_open` reaches `n` (read on its ops port `ops`,
/// whose connections are not counted); returns how long that took.
async fn wait_open(ops: u16, n: f64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let open = sample(&metrics(ops).await, "sn1_api_connections_open");
        if open >= n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{open} connections open, {n} expected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_mib(proc: &Proc) -> f64 {
    let pid = proc.child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_leaves_readyz_and_chat_answering_then_is_closed() {
    let _alone = MACHINE.write().await;
    let hard = raise_open_file_limit();
    // This process holds the flood plus its own descriptors; the api the same plus headroom.
    let silent = FLOOD.min(hard.saturating_sub(1_100)) as usize;
    if (silent as u64) < FLOOD {
        eprintln!(
            "the hard open-file limit is {hard}: flooding with {silent} idle connections \
             instead of {FLOOD}"
        );
    }
    let kept_alive = 100;
    let header = Duration::from_secs(20);
    let idle = Duration::from_secs(3);
    let gw = Distributed::start(
        "flood",
        fleet(4, Duration::from_millis(5), None).await,
        &[
            ("HEADER_READ_TIMEOUT", "20s".into()),
            ("IDLE_TIMEOUT", "3s".into()),
            ("MAX_CONNECTIONS", (silent + kept_alive + 50).to_string()),
        ],
    )
    .await;
    assert!(
        gw.api
            .log_text()
            .contains(&format!("max_connections={}", silent + kept_alive + 50)),
        "the api lowered its cap: {}",
        gw.api.log_text()
    );

    // The flood: connections that never send a byte.
    let started = Instant::now();
    let flood = open(gw.addr(), silent).await;
    let opened_in = started.elapsed();
    // Keep-alive connections that asked once and then stay idle.
    let mut answered = Vec::new();
    for (mut stream, _) in open(gw.addr(), kept_alive).await {
        let asked = Instant::now();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, r#"{"status":"ok"}"#);
        answered.push((stream, asked));
    }
    let accepted_in = wait_open(
        gw.ops,
        (silent + kept_alive) as f64,
        Duration::from_secs(20),
    )
    .await;
    let rss = rss_mib(&gw.api);

    // Everything still answers, on new connections, while the flood is open.
    let t = Instant::now();
    let ready = reqwest::get(gw.url("/readyz")).await.unwrap();
    let readyz_in = t.elapsed();
    assert_eq!(ready.status(), 200);
    assert!(
        readyz_in < Duration::from_secs(1),
        "/readyz took {readyz_in:?}"
    );
    let t = Instant::now();
    let out = post_ndjson(&gw.url("/chat"), &gw.workers.key, &seed_request()).await;
    let chat_in = t.elapsed();
    assert_eq!(out.status, 200, "{}", gw.logs());
    check_stream_events(&out.events);
    assert!(chat_in < Duration::from_secs(5), "/chat took {chat_in:?}");
    let still_open = flood.iter().filter(|(s, _)| !is_closed(s)).count();
    assert_eq!(still_open, silent, "flood connections closed early");

    // Then the timeouts close them: the kept-alive ones after IDLE_TIMEOUT from their answer,
    // the silent ones after HEADER_READ_TIMEOUT from connecting.
    let watch = |stream: TcpStream, since: Instant| {
        tokio::spawn(async move {
            let mut stream = stream;
            let bytes = read_to_close(&mut stream).await;
            (since.elapsed(), bytes.len())
        })
    };
    let idle_closes: Vec<_> = answered.into_iter().map(|(s, at)| watch(s, at)).collect();
    let header_closes: Vec<_> = flood.into_iter().map(|(s, at)| watch(s, at)).collect();
    let slack = Duration::from_secs(5);
    let mut idle_worst = Duration::ZERO;
    for task in idle_closes {
        let (after, bytes) = tokio::time::timeout(idle + slack, task)
            .await
            .expect("an idle keep-alive connection stayed open")
            .unwrap();
        assert_eq!(bytes, 0);
        assert!(after >= idle, "closed {after:?} after its request");
        idle_worst = idle_worst.max(after);
    }
    let mut header_worst = Duration::ZERO;
    for task in header_closes {
        let (after, bytes) = tokio::time::timeout(header + slack, task)
            .await
            .expect("a silent connection stayed open")
            .unwrap();
        assert_eq!(bytes, 0, "a silent connection got an answer");
        assert!(after >= header, "closed {after:?} after connecting");
        header_worst = header_worst.max(after);
    }
    let text = metrics(gw.ops).await;
    assert!(
        sample(
            &text,
            r#"sn1_api_connections_timed_out_total{phase="header"}"#
        ) >= silent as f64,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"sn1_api_connections_timed_out_total{phase="idle"}"#
        ) >= kept_alive as f64,
        "{text}"
    );
    eprintln!(
        "flood of {silent} silent + {kept_alive} kept-alive connections: opened in {opened_in:?}, \
         all accepted after {accepted_in:?} more; api RSS {rss:.0} MiB; /readyz {readyz_in:?}, \
         /chat stream {chat_in:?}; closed at most {idle_worst:?} after the request (idle 3 s), \
         {header_worst:?} after connecting (header 20 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_client_is_closed_after_the_header_read_timeout() {
    let _shared = MACHINE.read().await;
    let (proc, port, key, ops) = standalone(
        "slowhdr",
        &[
            ("HEADER_READ_TIMEOUT", "1s".into()),
            ("BODY_READ_TIMEOUT", "1s".into()),
            ("IDLE_TIMEOUT", "3s".into()),
        ],
    )
    .await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let slack = Duration::from_millis(1500);

    // A head trickling in, one header line every 200 ms: cut off 1 s after connecting, with
    // no answer.
    let opened = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b"x-trickle: 1\r\n").await.is_err() || is_closed(&stream) {
                return opened.elapsed();
            }
        }
    };
    let closed_after = tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("a slow-header client was never closed");
    assert!(
        closed_after >= Duration::from_secs(1) && closed_after < Duration::from_secs(1) + slack,
        "closed after {closed_after:?}: {}",
        proc.log_text()
    );
    assert!(read_to_close(&mut stream).await.is_empty(), "no answer");

    // On a keep-alive connection the next head's clock starts at its first byte: idle for
    // longer than the header timeout is fine (the idle timeout is 3 s)...
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(
        !is_closed(&stream),
        "closed while idle, before IDLE_TIMEOUT"
    );
    // ...then a head that trickles is cut off 1 s after its first byte.
    let first_byte = Instant::now();
    stream.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
    let mut closed = false;
    while first_byte.elapsed() < Duration::from_secs(1) + slack {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"x-trickle: 1\r\n").await.is_err() || is_closed(&stream) {
            closed = true;
            break;
        }
    }
    let cut_after = first_byte.elapsed();
    assert!(closed, "the trickling head was not cut off");
    assert!(
        cut_after >= Duration::from_secs(1),
        "cut off {cut_after:?} after its first byte"
    );

    // A keep-alive connection left idle is closed after IDLE_TIMEOUT.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let asked = Instant::now();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut stream).await;
    let bytes = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut stream))
        .await
        .expect("an idle connection stayed open");
    let after = asked.elapsed();
    assert!(bytes.is_empty());
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_secs(3) + slack,
        "idle connection closed after {after:?}"
    );
    eprintln!(
        "slow head closed {closed_after:?} after connecting (HEADER_READ_TIMEOUT 1 s); a \
         keep-alive connection's next head cut off {cut_after:?} after its first byte; an idle \
         one closed {after:?} after its request (IDLE_TIMEOUT 3 s)"
    );

    // A whole head, then a body that trickles (a byte every 200 ms of 100): 408 when
    // BODY_READ_TIMEOUT (1 s) has passed since the head, naming the limit.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let sent = Instant::now();
    let (read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..99 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut stream = read;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read_head = async {
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .expect("no answer to a trickling body");
    let after = sent.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(1) + slack,
        "408 after {after:?}"
    );
    let text = metrics(ops).await;
    assert!(
        sample(
            &text,
            r#"sn1_api_connections_timed_out_total{phase="header"}"#
        ) >= 2.0
    );
    assert!(
        sample(
            &text,
            r#"sn1_api_connections_timed_out_total{phase="idle"}"#
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_connections_a_request_gets_503_and_readyz_still_answers() {
    let _shared = MACHINE.read().await;
    let (proc, port, key, ops) = standalone(
        "maxconn",
        &[
            ("MAX_CONNECTIONS", "4".into()),
            ("HEADER_READ_TIMEOUT", "30s".into()),
        ],
    )
    .await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let held = hold(addr, 4).await;

    // A chat request on a fifth connection: the documented refusal, then the connection closes.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = seed_request().to_string();
    stream
        .write_all(
            format!(
                "POST /chat HTTP/1.1\r\nhost: x\r\napi_key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["type"], "too_many_connections", "{body}");
    assert!(read_to_close(&mut stream).await.is_empty(), "closed after");

    // Probes are still answered, with the truth.
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.headers()["connection"],
        "close",
        "one request per overflow connection"
    );

    // Beyond the overflow room too: a new connection is closed at once, unanswered.
    let overflow = open(addr, 64).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let bytes = tokio::time::timeout(Duration::from_secs(1), read_to_close(&mut stream))
        .await
        .expect("a connection beyond the overflow room was not closed at once");
    assert!(bytes.is_empty());
    eprintln!(
        "beyond the overflow room: closed {:?} after connecting",
        t.elapsed()
    );
    drop(overflow);
    // The silent overflow connections are closed within their short header timeout (2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = metrics(ops).await;
    assert_eq!(
        sample(
            &text,
            r#"sn1_api_connections_refused_total{reason="at_capacity"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"sn1_api_connections_refused_total{reason="overflow_full"}"#
        ) >= 1.0,
        "{text}"
    );

    // Room again once the held connections go.
    drop(held);
    let start = Instant::now();
    loop {
        let out = post_ndjson(
            &format!("http://127.0.0.1:{port}/echo"),
            &key,
            &json!({"roles": ["user"], "messages": ["room again"]}),
        )
        .await;
        if out.status == 200 {
            check_stream_events(&out.events);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still refused: {} {:?}\n{}",
            out.status,
            out.events,
            proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish_and_stops_accepting() {
    let _shared = MACHINE.read().await;
    // 60 chunks, 40 ms apart: a 2.4 s answer.
    let mut gw = Distributed::start(
        "drain",
        fleet(1, Duration::from_millis(40), Some("slow ".repeat(60))).await,
        &[],
    )
    .await;
    let response = reqwest::Client::new()
        .post(gw.url("/chat"))
        .header("api_key", &gw.workers.key)
        .json(&json!({"k": 1, "timeout": 30, "roles": ["user"], "messages": ["tell me"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    use futures::StreamExt;
    let first = stream.next().await.unwrap().unwrap();
    gw.api.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(gw.addr()).await.is_err(),
        "still accepting after SIGTERM"
    );
    let mut body = first.to_vec();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("the stream was cut"));
    }
    let events: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (text, _) = check_stream_events(&events);
    assert_eq!(
        text.trim_end(),
        "slow ".repeat(60).trim_end(),
        "{}",
        gw.logs()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), gw.api.child.wait())
        .await
        .expect("the api did not exit after its last response")
        .unwrap();
    assert!(status.success(), "{status}");
}
