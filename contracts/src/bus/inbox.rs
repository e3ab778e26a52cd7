//! Where an api process receives the events of the jobs it dispatched: one [`EventInbox`] per
//! process, one route per request in flight.
//!
//! On NATS the inbox is a single wildcard subscription (`<prefix>.events.<inbox>.*`) made when
//! the process starts, and a task that hands each event to its request's channel: a request
//! costs the server no subscription of its own (no SUB/UNSUB per request, no interest to
//! propagate). In-process, the worker hands events to the same routes directly.

use super::streams::EventStream;
use crate::event::Numbered;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Events buffered per request before its reader takes them (a channel allocates as it fills).
/// The reader is the request's relay, which takes them as they come (it merges text itself); a
/// reader this far behind has a client that stopped reading. A job's events hold one answer
/// (the worker caps a reply at 256 KiB), so a full buffer is at most a few MiB.
pub(crate) const EVENT_BUFFER: usize = 16 * 1024;

/// An event on its way to its request: decoded already (in-process), or as it came off the wire,
/// decoded by the request's own reader (so one task routing a whole process's events does
/// no decoding).
pub(crate) enum Routed {
    Event(Numbered),
    Encoded(bytes::Bytes),
}

/// Requests in flight, by request id, and the channel of each.
#[derive(Default)]
pub(crate) struct Routes(Mutex<HashMap<String, mpsc::Sender<Routed>>>);

impl Routes {
    /// The channel of `request_id`, while its stream lives.
    pub(crate) fn sender(&self, request_id: &str) -> Option<mpsc::Sender<Routed>> {
        self.lock().get(request_id).cloned()
    }

    /// A new route for `request_id`; dropping the stream removes it.
    fn register(self: &Arc<Self>, request_id: &str) -> EventStream {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        self.lock().insert(request_id.to_string(), tx);
        let route = Route {
            request_id: request_id.to_string(),
            routes: self.clone(),
        };
        let stream = futures::stream::unfold((rx, route), |(mut rx, route)| async move {
            loop {
                match rx.recv().await? {
                    Routed::Event(event) => return Some((event, (rx, route))),
                    Routed::Encoded(payload) => match serde_json::from_slice(&payload) {
                        Ok(event) => return Some((event, (rx, route))),
                        // The error's category and place only: its text could quote the answer.
                        // A skipped event leaves a gap in the numbers, which ends the answer.
                        Err(e) => tracing::warn!(
                            category = ?e.classify(),
                            line = e.line(),
                            column = e.column(),
                            "skipping an undecodable worker event"
                        ),
                    },
                }
            }
        });
        EventStream(stream.boxed())
    }

    /// Hands `event` to its request without waiting: a full channel or a request nobody waits
    /// for any more drops it (the reader sees the gap in the numbers).
    pub(crate) fn deliver(&self, request_id: &str, event: Routed) {
        let Some(tx) = self.sender(request_id) else {
            return;
        };
        if tx.try_send(event).is_err() {
            metrics::counter!("sn1_bus_events_dropped_total").increment(1);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Routed>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request's route, removed when its stream is dropped.
struct Route {
    request_id: String,
    routes: Arc<Routes>,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.request_id);
    }
}

/// The events of every job this process dispatches. Cheap to clone; the NATS subscription
/// ends when the last clone is dropped.
#[derive(Clone)]
pub struct EventInbox {
    address: String,
    routes: Arc<Routes>,
    _listener: Option<Arc<tokio_util::task::AbortOnDropHandle<()>>>,
}

impl EventInbox {
    pub(crate) fn new(
        address: String,
        routes: Arc<Routes>,
        listener: Option<tokio::task::JoinHandle<()>>,
    ) -> Self {
        EventInbox {
            address,
            routes,
            _listener: listener.map(|l| Arc::new(tokio_util::task::AbortOnDropHandle::new(l))),
        }
    }

    /// What a job carries so its worker's events reach this inbox
    /// ([`crate::job::ChatJob::events_to`]).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The events of `request_id` from now on. Call before publishing the job.
    pub fn subscribe(&self, request_id: &str) -> EventStream {
        self.routes.register(request_id)
    }
}
