//! API keys: the seed's static `EXPECTED_ACCESS_KEY`, accepted from the seed's `api_key`
//! header, `api-key`, or `Authorization: Bearer`. Compared in constant time; only a short hash
//! of the key (its id) is ever logged or put on a job.

use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who may call the api.
#[derive(Clone)]
pub enum Auth {
    /// One static key.
    Static {
        /// The key.
        key: SecretString,
        /// Its id: `static-` + the first 12 hex digits of its SHA-256.
        id: String,
    },
    /// No authentication (`--insecure-no-auth`).
    Open,
}

impl Auth {
    /// Auth with one static key.
    pub fn with_key(key: SecretString) -> Self {
        let id = key_id(key.expose_secret());
        Auth::Static { key, id }
    }

    /// The caller's key id, or `None` when the key is missing or wrong.
    pub fn check(&self, headers: &HeaderMap) -> Option<String> {
        match self {
            Auth::Open => Some("anonymous".into()),
            Auth::Static { key, id } => {
                let given = presented_key(headers)?;
                let expected = key.expose_secret().as_bytes();
                // ct_eq on equal-length slices; lengths differing is not secret.
                (given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected)))
                    .then(|| id.clone())
            }
        }
    }
}

/// The id under which a key appears in logs and records.
pub fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("static-{}", &hex::encode(digest)[..12])
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    for name in ["api_key", "api-key"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            return Some(v.trim());
        }
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_header_forms() {
        let auth = Auth::with_key(SecretString::from("s3cret"));
        for (name, value) in [
            ("api_key", "s3cret"),
            ("api-key", "s3cret"),
            ("authorization", "Bearer s3cret"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            assert_eq!(auth.check(&h), Some(key_id("s3cret")), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("api_key", "s3cres".parse().unwrap());
        assert_eq!(auth.check(&h), None);
        assert_eq!(auth.check(&HeaderMap::new()), None);
        assert!(!key_id("s3cret").contains("s3cret"));
    }
}
