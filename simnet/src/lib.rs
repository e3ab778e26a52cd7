//! A simulated subnet: miners that speak the real axon protocol, the fleet that lists them, and
//! a fake Subtensor node serving their metagraph.

pub mod chain;
pub mod fleet;
pub mod miner;
pub mod profile;
