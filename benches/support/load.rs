//! The load client of the peer benchmark: N concurrent streams, each asking one target again
//! and again (for a while, or a number of times), timing the first content chunk and the whole
//! answer, counting the bytes received and checking that the answer arrived whole.

use crate::support::Sample;
use futures::StreamExt;
use serde_json::json;
use sn1_bittensor::sse::{SseParser, SseState};
use std::time::{Duration, Instant};

/// The prompt every request carries.
pub const PROMPT: &str = "Tell me a happy story about a rabbit and a turtle";

/// Where a request goes and how its answer is read.
#[derive(Clone, Debug)]
pub enum Api {
    /// An OpenAI `POST …/chat/completions` (SSE), with this model.
    OpenAi { url: String, model: String },
    /// Our `POST /chat` (NDJSON `StreamChunk` lines) with the api key, asking `k` miners.
    Sn1 { url: String, key: String, k: usize },
}

/// How long each stream keeps asking.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Requests started within this time since the round began (all are finished).
    Elapsed(Duration),
    /// This many requests per stream.
    Count(usize),
}

/// One round's outcome.
#[derive(Debug, Default)]
pub struct Round {
    pub samples: Vec<Sample>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Body bytes of the successful answers.
    pub bytes: u64,
    /// From the start until the last answer ended.
    pub elapsed: Duration,
}

impl Round {
    /// Completed requests (successful or not).
    pub fn requests(&self) -> usize {
        self.samples.len() + self.errors
    }

    /// Successful answers per second.
    pub fn throughput(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A client with room for every stream's connection.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("client")
}

/// Runs `streams` concurrent streams against `api`; each answer must read `expected`.
pub async fn round(
    client: &reqwest::Client,
    api: &Api,
    streams: usize,
    until: Until,
    expected: &str,
) -> Round {
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let (client, api, expected) = (client.clone(), api.clone(), expected.to_owned());
            tokio::spawn(async move {
                let mut out = Round::default();
                for n in 0.. {
                    let more = match until {
                        Until::Elapsed(d) => start.elapsed() < d,
                        Until::Count(c) => n < c,
                    };
                    if !more {
                        break;
                    }
                    match ask(&client, &api, &expected).await {
                        Ok((sample, bytes)) => {
                            out.samples.push(sample);
                            out.bytes += bytes;
                        }
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(e);
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Round::default();
    for task in tasks {
        let r = task.await.expect("stream task");
        all.samples.extend(r.samples);
        all.errors += r.errors;
        all.bytes += r.bytes;
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
    }
    all.elapsed = start.elapsed();
    all
}

/// One request: its timings and the body bytes received, or why it failed.
pub async fn ask(
    client: &reqwest::Client,
    api: &Api,
    expected: &str,
) -> Result<(Sample, u64), String> {
    let start = Instant::now();
    let request = match api {
        Api::OpenAi { url, model } => client.post(url).json(&json!({
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": true,
        })),
        Api::Sn1 { url, key, k } => client.post(url).header("api_key", key).json(&json!({
            "k": k, "timeout": 30, "roles": ["user"], "messages": [PROMPT],
        })),
    };
    let response = request.send().await.map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("status {status}: {body}"));
    }
    let mut reader = match api {
        Api::OpenAi { .. } => Reader::Sse(SseParser::default(), false),
        Api::Sn1 { .. } => Reader::Ndjson(Vec::new(), false),
    };
    let mut stream = response.bytes_stream();
    let (mut first, mut bytes, mut text) = (None, 0u64, String::new());
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| format!("body: {e}"))?;
        bytes += piece.len() as u64;
        reader.push(&piece, &mut text)?;
        if first.is_none() && !text.is_empty() {
            first = Some(start.elapsed());
        }
    }
    if !reader.finished() {
        return Err(format!("the answer did not finish; text so far: {text:?}"));
    }
    if text != expected {
        return Err(format!("incomplete answer: {text:?}"));
    }
    let first = first.ok_or("no content")?;
    Ok((
        Sample {
            first,
            total: start.elapsed(),
        },
        bytes,
    ))
}

enum Reader {
    /// The parser and whether `[DONE]` came.
    Sse(SseParser, bool),
    /// The partial line and whether the `"finished"` line came.
    Ndjson(Vec<u8>, bool),
}

#[derive(serde::Deserialize)]
struct Line {
    #[serde(default)]
    delta: String,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl Reader {
    fn push(&mut self, bytes: &[u8], text: &mut String) -> Result<(), String> {
        match self {
            Reader::Sse(parser, done) => {
                *done |= parser.push(bytes, text).map_err(|e| e.to_string())? == SseState::Done;
            }
            Reader::Ndjson(partial, finished) => {
                partial.extend_from_slice(bytes);
                let mut consumed = 0;
                while let Some(end) = partial[consumed..].iter().position(|&b| b == b'\n') {
                    let line = &partial[consumed..consumed + end];
                    consumed += end + 1;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let line: Line = serde_json::from_slice(line)
                        .map_err(|e| format!("not a StreamChunk line ({e})"))?;
                    if let Some(error) = line.error {
                        return Err(format!("StreamError: {error}"));
                    }
                    text.push_str(&line.delta);
                    *finished |= line.finish_reason.as_deref() == Some("finished");
                }
                partial.drain(..consumed);
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        match self {
            Reader::Sse(_, done) | Reader::Ndjson(_, done) => *done,
        }
    }
}
