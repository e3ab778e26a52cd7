//! `sn1-gateway dendrite`: query one axon directly, the way the worker does, and show what came
//! back. The answer goes to stdout raw as it arrives (each piece flushed, no separators); one
//! outcome line goes to stderr at the end. Exit code 0 when the outcome is `ok`, 1 otherwise.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sn1_bittensor::dendrite::{
    Deadline, Dendrite, DendriteConfig, MinerProtocol, MinerTarget, Outcome, OutcomeKind, Prompt,
    ReplyLimits,
};
use sn1_bittensor::synapse::SynapseShape;

/// Which request to send.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynapseKind {
    /// StreamPromptingSynapse, classic shape (roles, messages).
    Classic,
    /// StreamPromptingSynapse, prompting v2.8–v2.12.1 shape (with task_name).
    #[value(name = "v2.12")]
    V212,
    /// Epistula-signed OpenAI chat completions (SSE).
    Epistula,
    /// Plain OpenAI chat completions (SSE), unsigned.
    Openai,
}

/// Arguments of `sn1-gateway dendrite`.
#[derive(clap::Args, Debug)]
pub struct DendriteArgs {
    /// The axon, `ip:port` (IPv6 as `[ip]:port`).
    #[arg(long)]
    pub axon: SocketAddr,
    /// The axon's hotkey (SS58): the requests are signed for it.
    #[arg(long = "axon-hotkey")]
    pub axon_hotkey: String,
    /// The request to send.
    #[arg(long, value_enum, default_value_t = SynapseKind::Classic)]
    pub synapse: SynapseKind,
    /// The message to send.
    #[arg(long)]
    pub message: String,
    /// The role of the message.
    #[arg(long, default_value = "user")]
    pub role: String,
    /// `task_name` of the v2.12 shape.
    #[arg(long = "task-name", default_value = "QuestionAnsweringTask")]
    pub task_name: String,
    /// Timeout in seconds: the query's deadline (told to the miner) and the first-byte wait.
    #[arg(long, default_value_t = 12.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// The ip sent as `bt_header_dendrite_ip` (never looked up online).
    #[arg(long = "external-ip", default_value = "127.0.0.1")]
    pub external_ip: String,
    /// Most bytes of answer read before stopping (oversize).
    #[arg(long = "max-bytes", default_value_t = 1 << 20)]
    pub max_bytes: usize,
    /// The dendrite's (validator's) hotkey.
    #[command(flatten)]
    pub wallet: crate::wallet_args::WalletArgs,
}

/// Longest accepted `--timeout` (an hour): anything longer is a typo.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

fn parse_timeout(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS {
        Ok(secs)
    } else {
        Err(format!(
            "the timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds"
        ))
    }
}

impl DendriteArgs {
    fn protocol(&self) -> MinerProtocol {
        match self.synapse {
            SynapseKind::Classic => MinerProtocol::Synapse(SynapseShape::Classic),
            SynapseKind::V212 => MinerProtocol::Synapse(SynapseShape::V212 {
                task_name: self.task_name.clone(),
                target_model: None,
                seed: None,
            }),
            SynapseKind::Epistula => MinerProtocol::Epistula,
            SynapseKind::Openai => MinerProtocol::OpenAi,
        }
    }
}

/// Runs the query (see the module docs).
pub async fn run(args: DendriteArgs) -> anyhow::Result<ExitCode> {
    sn1_bittensor::ss58::decode(&args.axon_hotkey).map_err(|e| {
        anyhow::anyhow!(
            "--axon-hotkey {} is not an SS58 address: {e}",
            args.axon_hotkey
        )
    })?;
    let hotkey = args.wallet.load()?;
    let dendrite = Dendrite::new(
        hotkey,
        DendriteConfig {
            external_ip: args.external_ip.clone(),
            ..DendriteConfig::default()
        },
    )
    .context("could not set up the dendrite")?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let target = MinerTarget {
        uid: 0,
        ip: args.axon.ip().to_string(),
        port: args.axon.port(),
        hotkey: args.axon_hotkey.clone(),
    };
    let prompt = Prompt {
        roles: vec![args.role.clone()],
        messages: vec![args.message.clone()],
        seed: None,
        sampling: Default::default(),
    };
    let limits = ReplyLimits {
        first_byte_timeout: timeout,
        max_bytes: args.max_bytes,
    };
    let deadline = Deadline::after(timeout);
    let mut reply = dendrite.query(&target, &prompt, &args.protocol(), limits, deadline);
    let mut stdout = std::io::stdout();
    // A miner's bytes are a stranger's: on a terminal, its control characters (escape
    // sequences) are shown, not obeyed. Piped, the answer stays raw.
    let terminal = stdout.is_terminal();
    while let Some(chunk) = reply.next_chunk().await {
        let shown = if terminal {
            shown_on_terminal(&chunk)
        } else {
            std::borrow::Cow::Borrowed(chunk.as_str())
        };
        stdout
            .write_all(shown.as_bytes())
            .and_then(|()| stdout.flush())
            .context("could not write the answer to stdout")?;
    }
    let outcome = reply.outcome();
    let mut stderr = std::io::stderr();
    // On a terminal the answer (no trailing newline) and this line share the screen: start a
    // new line there. When stderr is captured it holds exactly the one outcome line.
    let on_screen =
        stderr.is_terminal() && !outcome.text.is_empty() && !outcome.text.ends_with('\n');
    let newline = if on_screen { "\n" } else { "" };
    writeln!(stderr, "{newline}{}", outcome_line(&outcome)).context("could not write to stderr")?;
    Ok(if outcome.kind.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The outcome as one `key=value` line: `outcome=ok status=200 ttfb_ms=25 total_ms=340
/// bytes=67 chunks=4`, then `before_first_byte=` for timeouts and a quoted `message=` for
/// axon errors, connect failures and malformed replies. Missing values are `-`.
pub fn outcome_line(outcome: &Outcome) -> String {
    let status = outcome
        .http_status
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    let ttfb = outcome
        .time_to_first_byte
        .map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string());
    let mut line = format!(
        "outcome={} status={status} ttfb_ms={ttfb} total_ms={} bytes={} chunks={}",
        outcome.kind.label(),
        outcome.total_time.as_millis(),
        outcome.bytes,
        outcome.chunks,
    );
    match &outcome.kind {
        OutcomeKind::Timeout { before_first_byte } => {
            line.push_str(&format!(" before_first_byte={before_first_byte}"));
        }
        OutcomeKind::AxonError { message, .. }
        | OutcomeKind::ConnectFailure { message }
        | OutcomeKind::Malformed { message } => {
            line.push_str(&format!(" message={message:?}"));
        }
        OutcomeKind::Ok | OutcomeKind::Oversize => {}
    }
    line
}

/// `text` with every control character but newline and tab written as a `\u{…}` escape.
fn shown_on_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let harmless = |c: char| !c.is_control() || c == '\n' || c == '\t';
    if text.chars().all(harmless) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if harmless(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_sees_escape_sequences_not_their_effect() {
        assert_eq!(shown_on_terminal("plain\ttext\n"), "plain\ttext\n");
        let hostile = "red\u{1b}[31m bell\u{7} back\u{8}";
        let shown = shown_on_terminal(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(shown, "red\\u{1b}[31m bell\\u{7} back\\u{8}");
    }

    fn outcome(kind: OutcomeKind, status: Option<u16>, ttfb_ms: Option<u64>) -> Outcome {
        Outcome {
            kind,
            http_status: status,
            time_to_first_byte: ttfb_ms.map(Duration::from_millis),
            total_time: Duration::from_millis(340),
            bytes: 67,
            chunks: 4,
            text: String::new(),
        }
    }

    #[test]
    fn ok_line() {
        assert_eq!(
            outcome_line(&outcome(OutcomeKind::Ok, Some(200), Some(25))),
            "outcome=ok status=200 ttfb_ms=25 total_ms=340 bytes=67 chunks=4"
        );
    }

    #[test]
    fn error_lines_quote_their_message() {
        let kind = OutcomeKind::AxonError {
            status: 403,
            message: "Forbidden. Key is \"blacklisted\"".into(),
        };
        assert_eq!(
            outcome_line(&outcome(kind, Some(403), None)),
            r#"outcome=axon_error status=403 ttfb_ms=- total_ms=340 bytes=67 chunks=4 message="Forbidden. Key is \"blacklisted\"""#
        );
        let kind = OutcomeKind::ConnectFailure {
            message: "refused\nx".into(),
        };
        assert!(outcome_line(&outcome(kind, None, None)).ends_with(
            r#"status=- ttfb_ms=- total_ms=340 bytes=67 chunks=4 message="refused\nx""#
        ));
        let kind = OutcomeKind::Timeout {
            before_first_byte: false,
        };
        assert!(
            outcome_line(&outcome(kind, Some(200), Some(3))).ends_with(" before_first_byte=false")
        );
    }

    #[test]
    fn timeout_must_be_positive_and_bounded() {
        assert_eq!(parse_timeout("1.5"), Ok(1.5));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-3").is_err());
        assert!(parse_timeout("nan").is_err());
        assert!(parse_timeout("inf").is_err());
        assert!(parse_timeout("twelve").is_err());
    }
}
