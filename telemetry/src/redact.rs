//! Nothing secret in output: URLs are shown without their user info, path or query (NATS and
//! Postgres URLs carry passwords there, RPC providers API keys).

/// `url` as `scheme://host:port`, without user info, path or query (RPC providers put API keys
/// there), so it can be logged or
/// shown in an error.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
