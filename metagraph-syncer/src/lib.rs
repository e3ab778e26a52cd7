//! The metagraph syncer: reads a subnet's neurons from Subtensor at the finalized head (raw
//! `state_call` of the runtime APIs over subxt's RPC client, docs/protocol.md §10), writes each
//! snapshot to the store (Postgres, or SQLite in standalone mode) in one transaction, notifies
//! workers on the bus and prunes old snapshots. One replica writes at a time (the store's sync
//! lock), so running two is safe; while the chain is unreachable the last snapshot keeps
//! serving.
//!
//! Entry points: [`Syncer::run`] (the loop), [`Syncer::run_once`] (`--once`),
//! [`snapshot::decode_snapshot`] (bytes → rows, no I/O), [`SyncerProbe`] (`/readyz`).

pub mod network;
pub mod ops;
pub mod rpc;
pub mod snapshot;
pub mod status;
pub mod syncer;

pub use network::resolve_network;
pub use ops::SyncerProbe;
pub use status::{StatusView, SyncStatus};
pub use syncer::{SyncError, SyncReport, Syncer, SyncerConfig};
