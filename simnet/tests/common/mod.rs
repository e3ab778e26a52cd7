//! Helpers shared by the simulated-miner tests: the test wallets and a raw HTTP/1.1 client that
//! sends exact bytes and parses the reply (head, chunked or sized body).

#![allow(
    dead_code,
    reason = "each test crate uses a different part of these helpers"
)]

use std::path::PathBuf;
use std::time::Duration;

use sn1_bittensor::keys::Hotkey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bittensor/tests/data");
pub const VALIDATOR_SS58: &str = "5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5";
pub const MINER_SS58: &str = "5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7";

pub fn wallet_hotkey(wallet: &str) -> Hotkey {
    let path = PathBuf::from(format!("{DATA}/wallets/{wallet}/hotkeys/default"));
    sn1_bittensor::keyfile::load_keyfile(&path, None).unwrap()
}

pub fn capture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/captures/{name}")).unwrap()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body's HTTP chunks, when chunked.
    pub chunks: Vec<Vec<u8>>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>, want: usize) {
    let mut tmp = [0u8; 8192];
    while buf.len() < want {
        let n = sock.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&tmp[..n]);
    }
}

async fn read_line(sock: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8(buf[..at].to_vec()).unwrap();
            buf.drain(..at + 2);
            return line;
        }
        let n = sock.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Sends `request` as is and reads one response.
pub async fn send_raw(addr: std::net::SocketAddr, request: &[u8]) -> RawResponse {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut sock))
        .await
        .expect("response within 10 s")
}

pub async fn read_response(sock: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let status_line = read_line(sock, &mut buf).await;
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let line = read_line(sock, &mut buf).await;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
        chunks: Vec::new(),
    };
    if response.header("transfer-encoding") == Some("chunked") {
        loop {
            let size = usize::from_str_radix(read_line(sock, &mut buf).await.trim(), 16).unwrap();
            fill(sock, &mut buf, size + 2).await;
            let chunk: Vec<u8> = buf.drain(..size).collect();
            assert_eq!(buf.drain(..2).collect::<Vec<u8>>(), b"\r\n");
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk);
            response.chunks.push(chunk);
        }
    } else {
        let len: usize = response
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        fill(sock, &mut buf, len).await;
        response.body = buf[..len].to_vec();
    }
    response
}

/// A captured request split into its head lines and body.
#[derive(Clone, Debug)]
pub struct CapturedRequest {
    pub head: String,
    pub body: Vec<u8>,
}

impl CapturedRequest {
    pub fn load(name: &str) -> CapturedRequest {
        let raw = capture(name);
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        CapturedRequest {
            head: String::from_utf8(raw[..at].to_vec()).unwrap(),
            body: raw[at + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> String {
        self.head
            .lines()
            .find_map(|l| {
                l.split_once(": ")
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.to_owned())
            .unwrap()
    }

    pub fn with_header(&self, name: &str, value: &str) -> CapturedRequest {
        let head = self
            .head
            .lines()
            .map(|l| match l.split_once(": ") {
                Some((k, _)) if k.eq_ignore_ascii_case(name) => format!("{k}: {value}"),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        CapturedRequest {
            head,
            body: self.body.clone(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone().into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    pub fn nonce(&self) -> u64 {
        self.header("bt_header_dendrite_nonce").parse().unwrap()
    }
}

/// Changes one hex digit of `hex` at `index` (stays valid hex).
pub fn flip_hex_digit(hex: &str, index: usize) -> String {
    let mut chars: Vec<char> = hex.chars().collect();
    chars[index] = if chars[index] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}
