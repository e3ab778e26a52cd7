//! API keys: the seed's static `EXPECTED_ACCESS_KEY` (managed keys are [`crate::keys`]),
//! accepted from the seed's `api_key` header, `api-key`, or `Authorization: Bearer`. Compared in constant time; only the key's id
//! is ever logged or put on a job (and so into the audit log).
//!
//! A key's id is `kid-` + the first 16 hex digits of HMAC-SHA256(`KEY_ID_SECRET`, key)
//! ([`key_id`]): without the server-side secret nobody can test guesses against an id (an
//! unsalted hash of a weak key could be reversed), and every api replica given the same secret
//! gives a key the same id, so audit rows stay comparable across replicas.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Shortest `KEY_ID_SECRET` accepted: 16 characters, so the secret itself cannot be guessed
/// (an operator's `openssl rand -hex 32` gives 64).
pub const MIN_KEY_ID_SECRET_LEN: usize = 16;

/// Who may call the api.
#[derive(Clone)]
pub enum Auth {
    /// One static key.
    Static {
        /// The key.
        key: SecretString,
        /// Its id ([`key_id`]).
        id: String,
    },
    /// No static key: only managed keys (checked against the store by [`crate::keys`]).
    ManagedOnly,
    /// No authentication (`--insecure-no-auth`).
    Open,
}

impl Auth {
    /// Auth with one static key, whose id is keyed with `id_secret` (`KEY_ID_SECRET`).
    pub fn with_key(key: SecretString, id_secret: &SecretString) -> Self {
        let id = key_id(id_secret, key.expose_secret());
        Auth::Static { key, id }
    }

    /// The caller's key id, or `None` when the key is missing or not the static key (it may
    /// still be a managed key: [`crate::keys::authenticate`] asks the store).
    pub fn check(&self, headers: &HeaderMap) -> Option<String> {
        match self {
            Auth::Open => Some("anonymous".into()),
            Auth::ManagedOnly => None,
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

/// The id under which `key` appears in logs and records: `kid-` + the first 16 hex digits (64
/// bits: no two keys of one deployment meet) of HMAC-SHA256 keyed with `secret`.
pub fn key_id(secret: &SecretString, key: &str) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .map(|mac| mac.chain_update(key.as_bytes()).finalize().into_bytes());
    match mac {
        Ok(bytes) => format!("kid-{}", &hex::encode(bytes)[..16]),
        Err(_) => "kid-unknown".into(),
    }
}

/// Reads the key-id secret kept in `path`, or makes up a random one and stores it there (mode
/// 0600) — standalone mode's default, so ids stay stable across restarts with the same data
/// directory. Returns the secret and whether it was just created.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<(SecretString, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= MIN_KEY_ID_SECRET_LEN => {
            return Ok((SecretString::from(text.trim().to_string()), false));
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds fewer than {MIN_KEY_ID_SECRET_LEN} characters",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = hex::encode(rand_bytes());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    file.sync_all()?;
    Ok((SecretString::from(secret), true))
}

fn rand_bytes() -> [u8; 32] {
    // UUID v4s come from the OS's random source; two make 32 random bytes (less 12 fixed bits).
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

/// The key a request presents, from any of the accepted headers.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
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
    use sha2::Digest;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    #[test]
    fn accepts_the_three_header_forms() {
        let s = secret("a-server-side-secret");
        let auth = Auth::with_key(SecretString::from("s3cret"), &s);
        for (name, value) in [
            ("api_key", "s3cret"),
            ("api-key", "s3cret"),
            ("authorization", "Bearer s3cret"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            assert_eq!(auth.check(&h), Some(key_id(&s, "s3cret")), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("api_key", "s3cres".parse().unwrap());
        assert_eq!(auth.check(&h), None);
        assert_eq!(auth.check(&HeaderMap::new()), None);
        assert!(!key_id(&s, "s3cret").contains("s3cret"));
    }

    /// Finding 7 of issue #17: the id was `static-` + sha256(key)[..12], so anyone could check
    /// a guessed key against it (`static-98483c6eb40b` is "testkey").
    #[test]
    fn an_id_cannot_be_computed_without_the_secret() {
        let unsalted = &hex::encode(sha2::Sha256::digest(b"testkey"))[..12];
        assert_eq!(unsalted, "98483c6eb40b");
        let id = key_id(&secret("0123456789abcdef-one"), "testkey");
        assert!(id.starts_with("kid-") && id.len() == 4 + 16, "{id}");
        assert!(!id.contains(unsalted), "{id}");
        // Same secret, same id (every replica agrees); another secret, another id.
        assert_eq!(id, key_id(&secret("0123456789abcdef-one"), "testkey"));
        assert_ne!(id, key_id(&secret("0123456789abcdef-two"), "testkey"));
        assert_ne!(id, key_id(&secret("0123456789abcdef-one"), "testkey2"));
    }

    /// RFC 4231 test case 2: the id is the real HMAC-SHA256, truncated.
    #[test]
    fn the_id_is_hmac_sha256() {
        let id = key_id(&secret("Jefe"), "what do ya want for nothing?");
        assert_eq!(id, "kid-5bdcc146bf60754e");
    }

    #[test]
    fn a_made_up_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key-id-secret");
        let (first, created) = load_or_create_secret(&path).unwrap();
        assert!(created);
        assert_eq!(first.expose_secret().len(), 64);
        let (again, created) = load_or_create_secret(&path).unwrap();
        assert!(!created);
        assert_eq!(first.expose_secret(), again.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(load_or_create_secret(&path).is_err());
    }
}
