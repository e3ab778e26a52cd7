//! bittensor-wallet keyfiles (docs/protocol.md §9): plain JSON, `$NACL`-encrypted JSON, and clear
//! refusals for the legacy formats.
//!
//! * [`load_keyfile`] — reads a keyfile and builds the key from `secretPhrase`, else
//!   `secretSeed`, else `privateKey`; checks it against `publicKey`/`accountId`/`ss58Address`
//!   when present. A public-only file (`*pub.txt`) is refused: it cannot sign.
//! * [`decrypt_nacl`] — `$NACL` ‖ 24-byte nonce ‖ XSalsa20-Poly1305 secretbox, keyed by
//!   argon2i v1.3 (libsodium `crypto_pwhash_argon2i`, SENSITIVE limits: 8 passes, 512 MiB) of
//!   the password with bittensor's fixed salt. Takes a few seconds and 512 MiB by design.
//!
//! Every error names the file (when there is one) and never contains the password or secret.

use std::fmt;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{Hotkey, KeyError};

/// bittensor-wallet's fixed argon2 salt (`NACL_SALT` in btwallet src/keyfile.rs).
pub const NACL_SALT: [u8; 16] = [
    0x13, 0x71, 0x83, 0xdf, 0xf1, 0x5a, 0x09, 0xbc, 0x9c, 0x90, 0xb5, 0x51, 0x87, 0x39, 0xe9, 0xb1,
];
/// libsodium `crypto_pwhash_OPSLIMIT_SENSITIVE`.
pub const NACL_OPSLIMIT: u32 = 8;
/// libsodium `crypto_pwhash_MEMLIMIT_SENSITIVE` in bytes (argon2 takes KiB).
pub const NACL_MEMLIMIT_BYTES: u32 = 536_870_912;
/// Largest keyfile we read; real ones are under 1 KiB.
pub const MAX_KEYFILE_BYTES: u64 = 64 * 1024;

const NACL_PREFIX: &[u8] = b"$NACL";
const NONCE_LEN: usize = 24;
const MAC_LEN: usize = 16;

/// What went wrong with a keyfile.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than [`MAX_KEYFILE_BYTES`].
    #[error("larger than {MAX_KEYFILE_BYTES} bytes, not a keyfile")]
    TooLarge,
    /// The file is `$NACL`-encrypted and no password was given.
    #[error("encrypted ($NACL): a password is needed")]
    PasswordRequired,
    /// Decryption failed: wrong password or a corrupted file.
    #[error("cannot decrypt: wrong password or corrupted file")]
    WrongPassword,
    /// An encryption format bittensor used to write and that we do not read.
    #[error(
        "unsupported legacy encryption ({0}); re-create the key as an unencrypted or $NACL \
         keyfile (e.g. `btcli wallet regen_hotkey`)"
    )]
    LegacyEncryption(&'static str),
    /// The content is not what a keyfile holds.
    #[error("malformed keyfile: {0}")]
    Malformed(&'static str),
    /// Only public fields (a `*pub.txt` file): it cannot sign.
    #[error("holds only a public key ({0}), no secret to sign with")]
    PublicOnly(String),
    /// The secret field is there but is not a valid key.
    #[error("invalid secret: {0}")]
    Key(#[from] KeyError),
    /// The derived public key differs from the file's `publicKey`/`ss58Address`.
    #[error("the secret does not match the file's public key {0}")]
    PublicKeyMismatch(String),
    /// A wallet or hotkey name that is not a plain file name.
    #[error("invalid wallet or hotkey name {0:?}")]
    BadName(String),
}

/// A keyfile error: the file (when known) and what went wrong.
#[derive(Debug)]
pub struct KeyfileError {
    /// The keyfile's path (None for in-memory data given to [`decrypt_nacl`]).
    pub path: Option<PathBuf>,
    /// What went wrong.
    pub kind: KeyfileErrorKind,
}

impl KeyfileError {
    fn new(path: Option<&Path>, kind: impl Into<KeyfileErrorKind>) -> Self {
        KeyfileError {
            path: path.map(Path::to_path_buf),
            kind: kind.into(),
        }
    }

    /// The same error, attributed to `path`.
    pub fn at(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for KeyfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "keyfile {}: {}", p.display(), self.kind),
            None => write!(f, "keyfile: {}", self.kind),
        }
    }
}

impl std::error::Error for KeyfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// Decrypts a `$NACL` keyfile's bytes with `password`; returns the plaintext (the JSON), wiped
/// from memory when dropped.
pub fn decrypt_nacl(data: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, KeyfileError> {
    let err = |kind: KeyfileErrorKind| KeyfileError::new(None, kind);
    let rest = data
        .strip_prefix(NACL_PREFIX)
        .ok_or_else(|| err(KeyfileErrorKind::Malformed("no $NACL prefix")))?;
    if rest.len() < NONCE_LEN + MAC_LEN {
        return Err(err(KeyfileErrorKind::Malformed(
            "$NACL data shorter than nonce and MAC",
        )));
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let params = Params::new(NACL_MEMLIMIT_BYTES / 1024, NACL_OPSLIMIT, 1, Some(32))
        .map_err(|_| err(KeyfileErrorKind::Malformed("argon2 parameters")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &NACL_SALT, key.as_mut())
        .map_err(|_| err(KeyfileErrorKind::WrongPassword))?;
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| err(KeyfileErrorKind::WrongPassword))
}

/// Builds the key from a decrypted/plain keyfile JSON (secretPhrase > secretSeed > privateKey).
fn key_from_json(data: &[u8]) -> Result<Hotkey, KeyfileErrorKind> {
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|_| KeyfileErrorKind::Malformed("not JSON"))?;
    // The parsed secrets are wiped when this returns, like the bytes they came from.
    let value = WipedJson(value);
    let value = &value.0;
    let obj = value
        .as_object()
        .ok_or(KeyfileErrorKind::Malformed("not a JSON object"))?;
    let field = |name: &str| {
        obj.get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let key = if let Some(phrase) = field("secretPhrase") {
        Hotkey::from_mnemonic(phrase)?
    } else if let Some(seed) = field("secretSeed") {
        Hotkey::from_seed_hex(seed)?
    } else if let Some(private) = field("privateKey") {
        Hotkey::from_private_key_hex(private)?
    } else if let Some(address) = field("ss58Address").or_else(|| field("publicKey")) {
        return Err(KeyfileErrorKind::PublicOnly(address.to_string()));
    } else {
        return Err(KeyfileErrorKind::Malformed(
            "no secretPhrase, secretSeed or privateKey",
        ));
    };
    let public_hex = format!("0x{}", hex::encode(key.public()));
    for (name, expected) in [
        ("publicKey", public_hex.as_str()),
        ("accountId", public_hex.as_str()),
        ("ss58Address", key.ss58()),
    ] {
        if let Some(found) = field(name)
            && !found.eq_ignore_ascii_case(expected)
        {
            return Err(KeyfileErrorKind::PublicKeyMismatch(found.to_string()));
        }
    }
    Ok(key)
}

/// A parsed keyfile whose string values are wiped from memory when it is dropped.
struct WipedJson(serde_json::Value);

impl Drop for WipedJson {
    fn drop(&mut self) {
        if let Some(obj) = self.0.as_object_mut() {
            for v in obj.values_mut() {
                if let serde_json::Value::String(s) = v {
                    s.zeroize();
                }
            }
        }
    }
}

/// Loads a keyfile: plain JSON, or `$NACL` with `password`. Legacy ansible-vault and Fernet
/// (`gAAAAA`) files are refused with a clear error. Errors name `path`.
pub fn load_keyfile(path: &Path, password: Option<&str>) -> Result<Hotkey, KeyfileError> {
    let at = |kind: KeyfileErrorKind| KeyfileError::new(Some(path), kind);
    let meta = std::fs::metadata(path).map_err(|e| at(e.into()))?;
    if meta.len() > MAX_KEYFILE_BYTES {
        return Err(at(KeyfileErrorKind::TooLarge));
    }
    let data = Zeroizing::new(std::fs::read(path).map_err(|e| at(e.into()))?);
    if data.len() as u64 > MAX_KEYFILE_BYTES {
        return Err(at(KeyfileErrorKind::TooLarge));
    }
    let trimmed = data.trim_ascii_start();
    if trimmed.starts_with(NACL_PREFIX) {
        let password = password.ok_or_else(|| at(KeyfileErrorKind::PasswordRequired))?;
        let plain = decrypt_nacl(trimmed, password).map_err(|e| e.at(path))?;
        return key_from_json(&plain).map_err(at);
    }
    if trimmed.starts_with(b"$ANSIBLE_VAULT") {
        return Err(at(KeyfileErrorKind::LegacyEncryption("ansible-vault")));
    }
    if trimmed.starts_with(b"gAAAAA") {
        // btwallet cannot decrypt these either: its legacy_decrypt uses a random Fernet key.
        return Err(at(KeyfileErrorKind::LegacyEncryption("Fernet")));
    }
    key_from_json(trimmed).map_err(at)
}
