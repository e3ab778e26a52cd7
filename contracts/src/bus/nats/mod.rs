//! NATS implementation of the bus: JetStream work-queue streams for jobs and audit records
//! (persisted, bounded, one durable pull consumer each, shared by all workers or writers) and
//! core NATS subjects for events, cancels and metagraph notices (low latency, no persistence:
//! their readers are live processes). Everything used here exists in NATS Server 2.9.

mod intake;
mod jetstream;
mod subjects;

pub use jetstream::{AuditQueueConfig, QueueConfig};
pub(crate) use jetstream::{JetStreamMessage, NatsJobs, ack};
pub use subjects::Subjects;

use super::headers::Headers;
use super::inbox::{EventInbox, Routed, Routes};
use super::streams::{CancelStream, MetagraphUpdates};
use super::{BusError, codec, unavailable};
use crate::event::{NumberedRef, WorkerEvent};
use crate::metagraph::MetagraphUpdated;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// How long a core publish that must arrive (a cancel, a metagraph notice) may take to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to NATS with the names and bounds of one deployment. Cheap to clone (one
/// reference count: requests and jobs each hold a clone).
#[derive(Clone)]
pub struct NatsBus(Arc<Connection>);

/// What a [`NatsBus`] shares between its clones.
pub(crate) struct Connection {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    subjects: Subjects,
    config: QueueConfig,
    /// Counts the client's (re)connections, so job intake re-pulls after each.
    connects: tokio::sync::watch::Receiver<u64>,
}

impl NatsBus {
    /// Connects (retrying in the background when the server is down at start, so the process
    /// comes up and reports not-ready).
    pub async fn connect(
        url: &str,
        subjects: Subjects,
        config: QueueConfig,
    ) -> Result<NatsBus, BusError> {
        let (connected, connects) = tokio::sync::watch::channel(0u64);
        let connected = std::sync::Arc::new(connected);
        // async-nats sends no user info from a URL: pass it as the CONNECT's user and password
        // (per-role NATS users, `nats://<user>:<password>@host`).
        // A role's user gets an inbox of its own (`_INBOX_<user>.…`, for request replies and
        // pulled jobs), so its NATS permissions need not let it read another role's replies.
        let mut options = async_nats::ConnectOptions::new();
        if let Ok(addr) = url.parse::<async_nats::ServerAddr>()
            && let (Some(user), Some(pass)) = (addr.username(), addr.password())
        {
            options = options
                .user_and_password(user.to_string(), pass.to_string())
                .custom_inbox_prefix(inbox_prefix(user));
        }
        let client = options
            .name(format!("sn1-gateway/{}", subjects.prefix()))
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.send_modify(|n| *n += 1);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                        other => tracing::debug!(event = %other, "NATS client event"),
                    }
                }
            })
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(unavailable)?;
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(config.publish_timeout);
        Ok(NatsBus(Arc::new(Connection {
            client,
            js,
            subjects,
            config,
            connects,
        })))
    }

    /// The names in use.
    pub fn subjects(&self) -> &Subjects {
        &self.0.subjects
    }

    /// The server's `max_payload`, once connected.
    pub(super) fn max_message_bytes(&self) -> Option<usize> {
        self.is_connected()
            .then(|| self.0.client.server_info().max_payload)
            .filter(|n| *n > 0)
    }

    /// Whether the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.0.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Subscribes once to the events of every job this process will dispatch, and routes
    /// each to its request.
    pub(super) async fn event_inbox(&self) -> Result<EventInbox, BusError> {
        let address = uuid::Uuid::new_v4().simple().to_string();
        let sub = self
            .subscribe(self.0.subjects.events_inbox(&address))
            .await?;
        let routes = Arc::new(Routes::default());
        let prefix_len = self.0.subjects.events(&address, "").len();
        let listener = tokio::spawn(route_events(sub, routes.clone(), prefix_len));
        Ok(EventInbox::new(address, routes, Some(listener)))
    }

    /// Publishes one event of a job to the inbox `to`.
    pub(super) async fn publish_event(
        &self,
        to: &str,
        request_id: &str,
        seq: u64,
        event: &WorkerEvent,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(&NumberedRef { seq, event }).map_err(codec)?;
        self.0
            .client
            .publish(self.0.subjects.events(to, request_id), payload.into())
            .await
            .map_err(unavailable)
    }

    /// Asks the worker of a job to stop (the client went away).
    pub(super) async fn publish_cancel(&self, request_id: &str) -> Result<(), BusError> {
        self.publish_flushed(self.0.subjects.cancel(request_id), Vec::new())
            .await
    }

    /// Every cancel of this deployment, as request ids.
    pub(super) async fn subscribe_cancels(&self) -> Result<CancelStream, BusError> {
        let sub = self.subscribe(self.0.subjects.cancel_all()).await?;
        let prefix_len = self.0.subjects.cancel("").len();
        let ids = sub.filter_map(move |msg| {
            let id = msg.subject.as_str().get(prefix_len..).map(str::to_string);
            async move { id }
        });
        Ok(CancelStream(ids.boxed()))
    }

    /// Tells every worker that a new metagraph snapshot is stored.
    pub(super) async fn publish_metagraph_updated(
        &self,
        update: &MetagraphUpdated,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(update).map_err(codec)?;
        self.publish_flushed(self.0.subjects.metagraph_updated(), payload)
            .await
    }

    /// Metagraph notifications of this deployment.
    pub(super) async fn subscribe_metagraph_updates(&self) -> Result<MetagraphUpdates, BusError> {
        let sub = self.subscribe(self.0.subjects.metagraph_updated()).await?;
        Ok(MetagraphUpdates(decoded(sub, "metagraph notice").boxed()))
    }

    /// Sends what the client holds, bounded by [`FLUSH_TIMEOUT`].
    pub(super) async fn flush(&self) -> Result<(), BusError> {
        tokio::time::timeout(FLUSH_TIMEOUT, self.0.client.flush())
            .await
            .map_err(|_| {
                BusError::Unavailable(format!("NATS did not flush within {FLUSH_TIMEOUT:?}"))
            })?
            .map_err(unavailable)
    }

    async fn subscribe(&self, subject: String) -> Result<async_nats::Subscriber, BusError> {
        self.0.client.subscribe(subject).await.map_err(unavailable)
    }

    /// Publishes and flushes, bounded by [`FLUSH_TIMEOUT`].
    async fn publish_flushed(&self, subject: String, payload: Vec<u8>) -> Result<(), BusError> {
        let send = async {
            self.0
                .client
                .publish(subject, payload.into())
                .await
                .map_err(unavailable)?;
            self.0.client.flush().await.map_err(unavailable)
        };
        tokio::time::timeout(FLUSH_TIMEOUT, send)
            .await
            .map_err(|_| {
                BusError::Unavailable(format!("NATS did not flush within {FLUSH_TIMEOUT:?}"))
            })?
    }
}

/// The messages of `sub` decoded as `T`; undecodable ones are skipped with a warning (a newer
/// peer may send a message this process does not know).
fn decoded<T: DeserializeOwned + Send + 'static>(
    sub: async_nats::Subscriber,
    what: &'static str,
) -> impl futures::Stream<Item = T> + Send {
    sub.filter_map(move |msg| {
        let item = match serde_json::from_slice(&msg.payload) {
            Ok(item) => Some(item),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an undecodable {what}");
                None
            }
        };
        async move { item }
    })
}

/// The inbox prefix of NATS user `user`: `_INBOX_` + the name, with anything but letters,
/// digits, `-` and `_` as `_` (a subject token must not hold `.`, `*`, `>` or spaces).
pub fn inbox_prefix(user: &str) -> String {
    let token: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_INBOX_{token}")
}

/// Hands each event of an inbox's subscription to its request (the last token of the subject).
async fn route_events(mut sub: async_nats::Subscriber, routes: Arc<Routes>, prefix_len: usize) {
    while let Some(msg) = sub.next().await {
        let Some(request_id) = msg.subject.as_str().get(prefix_len..) else {
            continue;
        };
        routes.deliver(request_id, Routed::Encoded(msg.payload));
    }
}

/// Our headers as NATS headers.
fn to_nats(headers: &Headers) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in headers.iter() {
        map.insert(k, v);
    }
    map
}

/// NATS headers as ours.
fn from_nats(headers: Option<&async_nats::HeaderMap>) -> Headers {
    headers
        .map(|h| {
            h.iter()
                .filter_map(|(k, values)| Some((k.to_string(), values.first()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
