//! Settings the syncer is configured with: the Subtensor network names (`finney`, `test`,
//! `local`, or a `ws://` / `wss://` URL), URLs shown without credentials, and retention ages
//! such as `7d`.

/// Mainnet (finney) public entrypoint.
pub const FINNEY: &str = "wss://entrypoint-finney.opentensor.ai:443";
/// The test network.
pub const TEST: &str = "wss://test.finney.opentensor.ai:443";
/// A node on this machine (and `sn1-gateway simnet`'s fake chain by default).
pub const LOCAL: &str = "ws://127.0.0.1:9944";
/// Mainnet archive node.
pub const ARCHIVE: &str = "wss://archive.chain.opentensor.ai:443";

/// The WebSocket URL of `network`: a known name or a `ws://` / `wss://` URL.
pub fn resolve_network(network: &str) -> Result<String, String> {
    let n = network.trim();
    match n {
        "finney" => return Ok(FINNEY.into()),
        "test" => return Ok(TEST.into()),
        "local" => return Ok(LOCAL.into()),
        "archive" => return Ok(ARCHIVE.into()),
        _ => {}
    }
    let rest = n
        .strip_prefix("ws://")
        .or_else(|| n.strip_prefix("wss://"))
        .ok_or_else(|| {
            format!(
                "{:?} is not finney, test, local, archive or a ws:// / wss:// URL",
                sn1_telemetry::redact_url(n)
            )
        })?;
    if rest.is_empty() || rest.starts_with('/') || rest.starts_with(':') {
        return Err(format!("{:?} has no host", sn1_telemetry::redact_url(n)));
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_resolve() {
        assert_eq!(resolve_network("finney").unwrap(), FINNEY);
        assert_eq!(resolve_network("test").unwrap(), TEST);
        assert_eq!(resolve_network("local").unwrap(), LOCAL);
        assert_eq!(
            resolve_network("ws://127.0.0.1:1234").unwrap(),
            "ws://127.0.0.1:1234"
        );
        assert!(resolve_network("wss://lite.sub.latent.to:443").is_ok());
        assert!(
            resolve_network("http://x")
                .unwrap_err()
                .contains("not finney")
        );
        assert!(resolve_network("ws://").unwrap_err().contains("no host"));
    }
}
