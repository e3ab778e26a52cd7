//! The Bittensor wire protocol, as a library with no knowledge of NATS or HTTP routes.
//!
//! * [`ss58`], [`keys`], [`keyfile`], [`wallet`] — sr25519 hotkeys the way bittensor loads them.
//! * [`pystr`], [`synapse`], [`nonce`] — signed `StreamPromptingSynapse` requests
//!   (docs/protocol.md §2–§5).
//! * [`verify`] — the axon side: how a real 10.x axon checks a request (§7).
//! * [`epistula`] — signed Epistula requests and their miner-side check (§6.2).
//! * [`reply`], [`sse`], [`dendrite`], [`deadline`] — sending requests to miners and reading
//!   streamed replies, within one deadline.
//! * [`metagraph`] — Subtensor's neuron and subnet-state runtime-API answers (§10).

pub mod deadline;
pub mod dendrite;
pub mod epistula;
pub mod keyfile;
pub mod keys;
pub mod metagraph;
pub mod nonce;
pub mod pystr;
pub mod reply;
pub mod ss58;
pub mod sse;
pub mod synapse;
pub mod verify;
pub mod wallet;
