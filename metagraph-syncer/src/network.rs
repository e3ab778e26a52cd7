//! Settings the syncer is configured with: the Subtensor network names (`finney`, `test`,
//! `local`, or a `ws://` / `wss://` URL), URLs shown without credentials, and retention ages
//! such as `7d`.

use std::time::Duration;

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
                redact_url(n)
            )
        })?;
    if rest.is_empty() || rest.starts_with('/') || rest.starts_with(':') {
        return Err(format!("{:?} has no host", redact_url(n)));
    }
    Ok(n.to_string())
}

/// `url` as `scheme://host:port`, without user info, path or query (RPC providers put API keys
/// there), so it can be logged.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return "<url>".into(),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hidden = host.len() < rest.len() || authority.contains('@');
    format!("{scheme}://{host}{}", if hidden { "/…" } else { "" })
}

/// Parses an age: `90s`, `30m`, `12h`, `7d`, `2w` or a number of seconds.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an age (e.g. 90s, 30m, 12h, 7d)"))?;
    let unit_secs = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    let secs = value * unit_secs;
    if !(secs.is_finite() && (0.0..1e12).contains(&secs)) {
        return Err(format!("{text:?} is not a positive age"));
    }
    Ok(Duration::from_secs_f64(secs))
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

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("ws://127.0.0.1:9944"), "ws://127.0.0.1:9944");
        assert_eq!(
            redact_url("wss://user:pw@node.example:443/ws/SECRETKEY?x=1"),
            "wss://node.example:443/…"
        );
        assert!(!redact_url("wss://n/SECRET").contains("SECRET"));
        assert_eq!(redact_url("nonsense"), "<url>");
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_age("7y").is_err());
        assert!(parse_age("-1d").is_err());
        assert!(parse_age("soon").is_err());
    }
}
