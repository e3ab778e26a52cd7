//! One task per miner, reading its reply into one channel (the fan-out's I/O).

use super::{FanoutRequest, MinerMsg, miner_span};
use sn1_bittensor::dendrite::Dendrite;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

/// One task per miner, reading its reply into one channel.
pub(super) struct Readers {
    tasks: JoinSet<()>,
    handles: Vec<AbortHandle>,
    /// One span per query, in the order of the targets (finished with its record).
    pub(super) spans: Vec<tracing::Span>,
}

impl Readers {
    /// Starts the queries of `request`; their deadline is the fan-out's.
    pub(super) fn start(
        dendrite: &Dendrite,
        request: &FanoutRequest,
        started: Instant,
    ) -> (Readers, mpsc::Receiver<MinerMsg>) {
        let (tx, rx) = mpsc::channel::<MinerMsg>(64 * request.targets.len().max(1));
        let mut tasks = JoinSet::new();
        let mut handles = Vec::with_capacity(request.targets.len());
        let mut spans = Vec::with_capacity(request.targets.len());
        for (i, target) in request.targets.iter().enumerate() {
            let span = miner_span::start(target, &request.protocol);
            let mut reply = dendrite.query(
                target,
                &request.prompt,
                &request.protocol,
                request.limits,
                request.deadline,
            );
            let tx = tx.clone();
            let task_span = span.clone();
            spans.push(span);
            handles.push(
                tasks.spawn(
                    async move {
                        let us = || started.elapsed().as_micros() as u64;
                        tracing::trace!(us = us(), "miner task running");
                        while let Some(text) = reply.next_chunk().await {
                            tracing::trace!(us = us(), "miner chunk");
                            if tx.send(MinerMsg::Chunk(i, text)).await.is_err() {
                                return;
                            }
                        }
                        let _ = tx.send(MinerMsg::Done(i, reply.outcome())).await;
                    }
                    .instrument(task_span),
                ),
            );
        }
        (
            Readers {
                tasks,
                handles,
                spans,
            },
            rx,
        )
    }

    /// Drops these miners' replies (their connections close).
    pub(super) fn stop(&self, which: &[usize]) {
        for &i in which {
            if let Some(handle) = self.handles.get(i) {
                handle.abort();
            }
        }
    }

    /// Drops every reply still being read.
    pub(super) fn stop_all(&mut self) {
        self.tasks.abort_all();
    }
}
