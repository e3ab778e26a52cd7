//! A simulated subnet: miners that speak the real axon protocol, and the fleet that lists them.

pub mod fleet;
pub mod miner;
