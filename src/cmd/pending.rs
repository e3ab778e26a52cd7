//! Subcommands whose role is not built yet: they say so and exit non-zero, rather than
//! pretending to run.

use std::process::ExitCode;

/// Accepts (and ignores) any arguments, so the help of the planned command is stable.
#[derive(clap::Args, Debug)]
pub struct PendingArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Explains that `name` is not available yet.
pub fn run(name: &str, issue: &str) -> anyhow::Result<ExitCode> {
    eprintln!(
        "sn1-gateway {name} is not available yet (tracked in issue {issue}).\n\
         Run the distributed path instead, each in its own terminal (NATS on 127.0.0.1:4222):\n  \
         sn1-gateway simnet --miners 8 --metagraph-out /tmp/mg.json\n  \
         sn1-gateway worker --metagraph-file /tmp/mg.json --wallet.ephemeral\n  \
         PORT=10000 EXPECTED_ACCESS_KEY=secret sn1-gateway api"
    );
    Ok(ExitCode::from(2))
}
