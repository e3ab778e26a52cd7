//! Contracts between the gateway's roles, shared by api, worker, syncer and standalone mode.
//!
//! * [`job`] — the chat job the api publishes and a worker pulls.
//! * [`event`] — what a worker tells the api about one job (accepted, chunk, heartbeat, done, error).
//! * [`subjects`] — NATS stream and subject names under a configurable prefix.
//! * [`audit`] — the audit record of one request (completion + every miner reply).
//! * [`bus`] — the job queue / event bus seam (NATS JetStream today).
//! * [`metagraph`] — neurons as the worker needs them, and the static metagraph file.
//! * [`store`] — Postgres: migrations, metagraph snapshots, the audit log.
//! * [`trace`] — W3C trace context carried in message headers.
//! * [`telemetry`] — logging set-up shared by every binary.

pub mod audit;
pub mod bus;
pub mod event;
pub mod job;
pub mod metagraph;
pub mod store;
pub mod subjects;
pub mod telemetry;
pub mod trace;
