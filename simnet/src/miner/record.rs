//! The calls a simulated miner received, for tests to inspect: [`CallRecord`], the bounded
//! [`CallLog`], and the [`StreamGuard`] that lives inside a reply body and notes when the body
//! ended or was dropped (the client went away).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::time::Instant;

/// Which route a call used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallProtocol {
    /// `/StreamPromptingSynapse`.
    Synapse,
    /// `/Synapse` (the axon's ping).
    Ping,
    /// `/v1/chat/completions` with Epistula checks.
    Epistula,
    /// `/v1/chat/completions` without checks.
    OpenAi,
    /// Anything else (refused with the axon's 404, or 400/500 before the route was known).
    Other,
}

/// One call as the miner saw it.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// Sequence number, from 1.
    pub id: u64,
    /// The route used.
    pub protocol: CallProtocol,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// The caller's hotkey: verified when accepted, as claimed in the headers when refused.
    pub dendrite_hotkey: Option<String>,
    /// Roles of the prompt (empty when refused before the body was read).
    pub roles: Vec<String>,
    /// Messages of the prompt.
    pub messages: Vec<String>,
    /// Status answered.
    pub status: u16,
    /// True when the request passed the checks (a misbehaviour may still answer an error).
    pub accepted: bool,
    /// The refusal or error message, for non-200 answers.
    pub reject_message: Option<String>,
    /// When the request arrived.
    pub started_at: Instant,
    /// Chunks of the reply body handed to the server so far.
    pub chunks_sent: usize,
    /// When the reply body was complete (every chunk handed over); `None` if it never was.
    pub ended_at: Option<Instant>,
    /// When the reply body was dropped: right after its end, or when the client went away.
    /// For error answers (no stream), the time of the answer.
    pub closed_at: Option<Instant>,
}

impl CallRecord {
    /// True when the body was dropped before it was complete: the client closed the
    /// connection mid-stream (or the miner reset or stalled and was then abandoned).
    pub fn dropped_early(&self) -> bool {
        self.closed_at.is_some() && self.ended_at.is_none()
    }
}

/// The bounded list of call records plus the count of reply bodies still open.
#[derive(Debug)]
pub struct CallLog {
    records: Mutex<VecDeque<CallRecord>>,
    next_id: AtomicU64,
    open: AtomicUsize,
    max: usize,
}

impl CallLog {
    /// A log keeping the last `max` records.
    pub fn new(max: usize) -> CallLog {
        CallLog {
            records: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<CallRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a record (its `id` is assigned here) and returns the id.
    pub fn push(&self, mut record: CallRecord) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        record.id = id;
        let mut records = self.lock();
        while records.len() >= self.max {
            records.pop_front();
        }
        records.push_back(record);
        id
    }

    /// Changes record `id` if it is still kept.
    pub fn update(&self, id: u64, change: impl FnOnce(&mut CallRecord)) {
        let mut records = self.lock();
        if let Some(record) = records.iter_mut().rev().find(|r| r.id == id) {
            change(record);
        }
    }

    /// A copy of the records kept, oldest first.
    pub fn snapshot(&self) -> Vec<CallRecord> {
        self.lock().iter().cloned().collect()
    }

    /// Reply bodies currently open.
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Lives inside a reply body stream; its `Drop` records when the body went away.
#[derive(Debug)]
pub struct StreamGuard {
    log: Arc<CallLog>,
    id: u64,
}

impl StreamGuard {
    /// Opens the stream of record `id`.
    pub fn open(log: Arc<CallLog>, id: u64) -> StreamGuard {
        log.open.fetch_add(1, Ordering::Relaxed);
        StreamGuard { log, id }
    }

    /// One more chunk was handed to the server.
    pub fn chunk_sent(&self) {
        self.log.update(self.id, |r| r.chunks_sent += 1);
    }

    /// The whole body was handed over.
    pub fn ended(&self) {
        let now = Instant::now();
        self.log.update(self.id, |r| {
            r.ended_at.get_or_insert(now);
        });
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        self.log.update(self.id, |r| {
            r.closed_at.get_or_insert(now);
        });
        self.log.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CallRecord {
        CallRecord {
            id: 0,
            protocol: CallProtocol::Synapse,
            method: "POST".into(),
            path: "/StreamPromptingSynapse".into(),
            dendrite_hotkey: None,
            roles: vec![],
            messages: vec![],
            status: 200,
            accepted: true,
            reject_message: None,
            started_at: Instant::now(),
            chunks_sent: 0,
            ended_at: None,
            closed_at: None,
        }
    }

    #[test]
    fn guard_records_chunks_end_and_close() {
        let log = Arc::new(CallLog::new(10));
        let id = log.push(record());
        let guard = StreamGuard::open(log.clone(), id);
        assert_eq!(log.open_streams(), 1);
        guard.chunk_sent();
        guard.chunk_sent();
        drop(guard);
        let r = &log.snapshot()[0];
        assert_eq!(r.chunks_sent, 2);
        assert!(r.dropped_early());
        assert_eq!(log.open_streams(), 0);
    }

    #[test]
    fn log_is_bounded_and_ids_increase() {
        let log = CallLog::new(2);
        for _ in 0..5 {
            log.push(record());
        }
        let ids: Vec<u64> = log.snapshot().iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![4, 5]);
    }
}
