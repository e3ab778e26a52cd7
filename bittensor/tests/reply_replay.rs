//! Replays the responses a real bittensor 10.5.0 axon sent (tests/data/captures) byte for byte
//! from a raw TCP server, and checks how `Dendrite` classifies them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use std::time::Duration;

use sn1_bittensor::dendrite::{
    Deadline, Dendrite, DendriteConfig, MinerProtocol, MinerReply, MinerTarget, OutcomeKind,
    Prompt, ReplyLimits,
};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::synapse::SynapseShape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const VALIDATOR_MNEMONIC: &str =
    "advice pass ribbon enhance world volcano balcony toy dutch bracket they question";
const MINER_SS58: &str = "5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7";

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/captures/{name}")).unwrap()
}

/// One write of the capture per `S->C` line of its timeline: (offset from the first write, bytes).
fn timeline_writes(name: &str, response: &[u8]) -> Vec<(Duration, Vec<u8>)> {
    let timeline = String::from_utf8(capture(name)).unwrap();
    let mut writes = Vec::new();
    let mut at = 0;
    let mut first: Option<f64> = None;
    for line in timeline.lines().filter(|l| l.contains("S->C")) {
        let mut fields = line.split_whitespace();
        let t: f64 = fields
            .next()
            .unwrap()
            .trim_start_matches('+')
            .trim_end_matches('s')
            .parse()
            .unwrap();
        fields.next();
        let len: usize = fields.next().unwrap().parse().unwrap();
        let t0 = *first.get_or_insert(t);
        writes.push((
            Duration::from_secs_f64(t - t0),
            response[at..at + len].to_vec(),
        ));
        at += len;
    }
    assert_eq!(
        at,
        response.len(),
        "the timeline of {name} covers the whole response"
    );
    writes
}

/// Reads one HTTP request (head + Content-Length body) and returns it.
async fn read_request(sock: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = sock.read(&mut tmp).await.unwrap();
        assert!(n > 0, "client closed before sending a request");
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
    }
}

enum Script {
    /// Write these pieces at these offsets, then keep the socket open for `hold`.
    Timed(Vec<(Duration, Vec<u8>)>, Duration),
    /// Write the bytes, then reset the connection (RST).
    ThenReset(Vec<u8>),
}

/// A one-shot server; returns its port and a handle yielding the request it got.
async fn serve(script: Script) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let request = read_request(&mut sock).await;
        match script {
            Script::Timed(writes, hold) => {
                let start = tokio::time::Instant::now();
                for (at, bytes) in writes {
                    tokio::time::sleep_until(start + at).await;
                    if sock.write_all(&bytes).await.is_err() {
                        return request;
                    }
                }
                let mut sink = [0u8; 64];
                // Hold the connection until the client goes away or `hold` passes.
                let _ = tokio::time::timeout(hold, sock.read(&mut sink)).await;
            }
            Script::ThenReset(bytes) => {
                sock.write_all(&bytes).await.unwrap();
                sock.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                sock.set_zero_linger().unwrap();
                drop(sock);
            }
        }
        request
    });
    (port, task)
}

fn dendrite() -> Dendrite {
    let hotkey = Hotkey::from_mnemonic(VALIDATOR_MNEMONIC).unwrap();
    Dendrite::new(hotkey, DendriteConfig::default()).unwrap()
}

fn target(port: u16) -> MinerTarget {
    MinerTarget {
        uid: 7,
        ip: "127.0.0.1".into(),
        port,
        hotkey: MINER_SS58.into(),
    }
}

fn prompt() -> Prompt {
    Prompt {
        roles: vec!["user".into()],
        messages: vec!["What is 2+2?".into()],
        seed: None,
        sampling: Default::default(),
    }
}

fn limits(total: Duration) -> ReplyLimits {
    ReplyLimits {
        first_byte_timeout: total,
        max_bytes: 1 << 20,
    }
}

async fn drain(reply: &mut MinerReply) -> Vec<String> {
    let mut chunks = Vec::new();
    while let Some(chunk) = reply.next_chunk().await {
        assert!(!chunk.is_empty());
        chunks.push(chunk);
    }
    chunks
}

#[tokio::test]
async fn classic_capture_streams_its_chunks_and_ends_ok() {
    let response = capture("stream_classic.response.http");
    let writes = timeline_writes("stream_classic.timeline.txt", &response);
    let (port, server) = serve(Script::Timed(writes, Duration::from_secs(5))).await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        limits(Duration::from_secs(5)),
        Deadline::after(Duration::from_secs(5)),
    );
    let chunks = drain(&mut reply).await;
    let outcome = reply.outcome();
    assert_eq!(
        chunks,
        vec![
            "Hello from a real",
            " bittensor axon. ",
            "This reply is str",
            "eamed in chunks."
        ]
    );
    assert_eq!(outcome.kind, OutcomeKind::Ok);
    assert_eq!(outcome.http_status, Some(200));
    assert_eq!(
        outcome.text,
        "Hello from a real bittensor axon. This reply is streamed in chunks."
    );
    assert_eq!(outcome.chunks, 4);
    assert_eq!(outcome.bytes, 67);
    let ttfb = outcome.time_to_first_byte.unwrap();
    assert!(ttfb < Duration::from_millis(250), "{ttfb:?}");
    assert!(
        outcome.total_time >= Duration::from_millis(290),
        "{:?}",
        outcome.total_time
    );

    let request = String::from_utf8(server.await.unwrap()).unwrap();
    assert!(
        request.starts_with("POST /StreamPromptingSynapse HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains(
        "\r\nbt_header_axon_hotkey: 5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7\r\n"
    ));
    assert!(request.contains("\r\ncomputed_body_hash: aa3b8458244b4728b8d4d96175f9336188c2c6fc536bfe4729ccc63b3abada42\r\n"));
}

#[tokio::test]
async fn blacklisted_capture_is_an_axon_error_and_yields_no_text() {
    let response = capture("stream_blacklisted_403.response.http");
    let (port, _server) = serve(Script::Timed(
        vec![(Duration::ZERO, response)],
        Duration::from_secs(5),
    ))
    .await;
    let shape = SynapseShape::V212 {
        task_name: "QuestionAnsweringTask".into(),
        target_model: None,
        seed: None,
    };
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(shape),
        limits(Duration::from_secs(5)),
        Deadline::after(Duration::from_secs(5)),
    );
    let chunks = drain(&mut reply).await;
    let outcome = reply.outcome();
    assert!(chunks.is_empty(), "{chunks:?}");
    assert_eq!(
        outcome.kind,
        OutcomeKind::AxonError {
            status: 403,
            message: "Forbidden. Key is blacklisted: Unrecognized hotkey 5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5.".into(),
        }
    );
    assert_eq!(outcome.http_status, Some(403));
    assert_eq!(outcome.text, "");
    assert_eq!(outcome.chunks, 0);
    assert_eq!(outcome.time_to_first_byte, None);
}

#[tokio::test]
async fn stalled_capture_times_out_with_the_partial_text() {
    let response = capture("stream_timeout_408.response.http");
    let writes = timeline_writes("stream_timeout_408.timeline.txt", &response);
    let (port, server) = serve(Script::Timed(writes, Duration::from_secs(10))).await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        limits(Duration::from_secs(1)),
        Deadline::after(Duration::from_secs(1)),
    );
    let chunks = drain(&mut reply).await;
    let outcome = reply.outcome();
    assert_eq!(chunks, vec!["Hello from a", " real bitte", "nsor axon. "]);
    assert_eq!(
        outcome.kind,
        OutcomeKind::Timeout {
            before_first_byte: false
        }
    );
    assert_eq!(outcome.text, "Hello from a real bittensor axon. ");
    assert!(outcome.total_time >= Duration::from_secs(1));
    assert!(
        outcome.total_time < Duration::from_millis(1500),
        "{:?}",
        outcome.total_time
    );
    // The dendrite closed the connection: the server's hold ends long before its 10 s.
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn first_byte_timeout_fires_when_nothing_arrives() {
    let response = capture("stream_timeout_408.response.http");
    // Only the head; the body never starts.
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = response[..head_end].to_vec();
    let (port, _server) = serve(Script::Timed(
        vec![(Duration::ZERO, head)],
        Duration::from_secs(10),
    ))
    .await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        ReplyLimits {
            first_byte_timeout: Duration::from_millis(300),
            max_bytes: 1024,
        },
        Deadline::after(Duration::from_secs(5)),
    );
    assert!(drain(&mut reply).await.is_empty());
    let outcome = reply.outcome();
    assert_eq!(
        outcome.kind,
        OutcomeKind::Timeout {
            before_first_byte: true
        }
    );
    assert_eq!(outcome.http_status, Some(200));
    assert!(outcome.total_time < Duration::from_secs(1));
}

#[tokio::test]
async fn closed_port_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        limits(Duration::from_secs(5)),
        Deadline::after(Duration::from_secs(5)),
    );
    assert!(drain(&mut reply).await.is_empty());
    let outcome = reply.outcome();
    assert!(
        matches!(outcome.kind, OutcomeKind::ConnectFailure { .. }),
        "{:?}",
        outcome.kind
    );
    assert_eq!(outcome.http_status, None);
}

#[tokio::test]
async fn reset_after_two_chunks_is_malformed_with_the_partial_text() {
    let response = capture("stream_classic.response.http");
    let text = String::from_utf8(response).unwrap();
    let cut = text.find("11\r\nThis reply").unwrap();
    let (port, _server) = serve(Script::ThenReset(text.as_bytes()[..cut].to_vec())).await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        limits(Duration::from_secs(5)),
        Deadline::after(Duration::from_secs(5)),
    );
    let chunks = drain(&mut reply).await;
    let outcome = reply.outcome();
    assert_eq!(chunks.concat(), "Hello from a real bittensor axon. ");
    assert!(
        matches!(outcome.kind, OutcomeKind::Malformed { .. }),
        "{:?}",
        outcome.kind
    );
    assert_eq!(outcome.text, "Hello from a real bittensor axon. ");
}

#[tokio::test]
async fn broken_chunk_framing_is_malformed() {
    let response = capture("stream_classic.response.http");
    let text = String::from_utf8(response).unwrap();
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let broken = format!(
        "{}11\r\nHello from a real\r\nzz\r\nnot a chunk\r\n",
        &text[..head_end]
    );
    let (port, _server) = serve(Script::Timed(
        vec![(Duration::ZERO, broken.into_bytes())],
        Duration::from_secs(5),
    ))
    .await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        limits(Duration::from_secs(5)),
        Deadline::after(Duration::from_secs(5)),
    );
    let chunks = drain(&mut reply).await;
    let outcome = reply.outcome();
    assert_eq!(chunks.concat(), "Hello from a real");
    assert!(
        matches!(outcome.kind, OutcomeKind::Malformed { .. }),
        "{:?}",
        outcome.kind
    );
}

#[tokio::test]
async fn multibyte_characters_split_across_reads_and_the_size_cap() {
    let text = "héllo wörld 😀 ok";
    let bytes = text.as_bytes();
    // One HTTP chunk per byte, each written separately: every character is split.
    let mut writes = vec![(
        Duration::ZERO,
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
    )];
    for (i, b) in bytes.iter().enumerate() {
        let mut piece = b"1\r\n".to_vec();
        piece.push(*b);
        piece.extend_from_slice(b"\r\n");
        writes.push((Duration::from_millis(2 * i as u64 + 1), piece));
    }
    writes.push((
        Duration::from_millis(2 * bytes.len() as u64 + 1),
        b"0\r\n\r\n".to_vec(),
    ));
    let (port, _server) = serve(Script::Timed(writes.clone(), Duration::from_secs(5))).await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        limits(Duration::from_secs(5)),
        Deadline::after(Duration::from_secs(5)),
    );
    let chunks = drain(&mut reply).await;
    let outcome = reply.outcome();
    assert_eq!(chunks.concat(), text);
    assert_eq!(outcome.kind, OutcomeKind::Ok);
    assert_eq!(outcome.bytes, bytes.len());

    // The same stream with a 10-byte cap: "héllo wö" is 10 bytes, then the cap cuts.
    let (port, _server) = serve(Script::Timed(writes, Duration::from_secs(5))).await;
    let mut reply = dendrite().query(
        &target(port),
        &prompt(),
        &MinerProtocol::Synapse(SynapseShape::Classic),
        ReplyLimits {
            max_bytes: 10,
            ..limits(Duration::from_secs(5))
        },
        Deadline::after(Duration::from_secs(5)),
    );
    drain(&mut reply).await;
    let outcome = reply.outcome();
    assert_eq!(outcome.kind, OutcomeKind::Oversize);
    assert_eq!(outcome.text, "héllo wö");
}
