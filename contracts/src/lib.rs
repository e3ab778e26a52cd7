//! Contracts between the gateway's roles, shared by api, worker, syncer and standalone mode.
//!
//! * [`job`] — the chat job the api publishes and a worker pulls.
//! * [`event`] — what a worker tells the api about one job (accepted, chunk, heartbeat, done, error).
//! * [`audit`] — the audit record of one request (completion + every miner reply).
//! * [`metagraph`] — neurons as the worker needs them, the syncer's update notice, the static
//!   metagraph file.
//! * [`bus`] — seam one: every message between roles (NATS JetStream | in-process).
//! * [`store`] — seam two: the system of record (Postgres | SQLite).
//! * [`duration`] — the one duration syntax of configuration.
//! * [`retry`] — the one backoff.

pub mod audit;
pub mod bus;
pub mod duration;
pub mod event;
pub mod job;
pub mod metagraph;
pub mod retry;
pub mod store;
