//! The metagraph syncer: reads a subnet's neurons from Subtensor at the finalized head (raw
//! `state_call` of the runtime APIs over subxt's RPC client, docs/protocol.md §10), writes each
//! snapshot to Postgres in one transaction, notifies workers on `<prefix>.metagraph.updated`
//! and prunes old snapshots. One replica writes at a time (a Postgres advisory lock), so running
//! two is safe; while the chain is unreachable the last snapshot keeps serving.
//!
//! Entry points: [`Syncer::run`] (the loop), [`Syncer::run_once`] (`--once`),
//! [`snapshot::decode_snapshot`] (bytes → rows, no I/O), [`ops::serve`] (`/livez`, `/readyz`,
//! `/metrics`).

pub mod local;
pub mod network;
pub mod ops;
pub mod rpc;
pub mod snapshot;
pub mod status;
pub mod syncer;

pub use network::resolve_network;
pub use status::{StatusView, SyncStatus};
pub use syncer::{Notifier, SyncError, SyncReport, Syncer, SyncerConfig};
