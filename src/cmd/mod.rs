//! One module per subcommand: its typed configuration (flags and env, checked together) and
//! the code that builds the role and runs it until SIGTERM / Ctrl-C.

pub mod api;
pub mod audit_args;
pub mod common;
pub mod keys;
pub mod migrate;
pub mod miner_args;
pub mod simnet;
pub mod standalone;
pub mod syncer;
pub mod worker;
