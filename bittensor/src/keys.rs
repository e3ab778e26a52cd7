//! sr25519 hotkeys the way bittensor-wallet derives and uses them (docs/protocol.md §3).
//!
//! * [`Hotkey`] — a signing key built from a BIP39 mnemonic (entropy → substrate-bip39 mini
//!   secret), a 32-byte mini secret (`secretSeed`) or a 64-byte schnorrkel secret
//!   (`privateKey`). The secret never leaves the struct: `Debug` prints only the SS58 address.
//! * [`verify_hex`] — `Keypair.verify` of bittensor-wallet: a `0x`-hex signature over the
//!   message, or over `<Bytes>` + message + `</Bytes>` (the polkadot.js wrapping).
//!
//! Signing uses schnorrkel with the signing context `b"substrate"` (sp-core's sr25519).

use sp_core::Pair as _;
use sp_core::sr25519::{Pair, Public, Signature};

use crate::ss58::{self, Ss58Error};

/// Why a hotkey could not be built. Never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The phrase is not a valid English BIP39 mnemonic (word list or checksum).
    #[error("invalid BIP39 mnemonic: {0}")]
    Mnemonic(String),
    /// The hex text is not hex (after an optional `0x`).
    #[error("{what} is not valid hex")]
    Hex {
        /// Which input ("secret seed" or "private key").
        what: &'static str,
    },
    /// The decoded secret has the wrong length.
    #[error("{what} has {got} bytes, expected {expected}")]
    Length {
        /// Which input ("secret seed" or "private key").
        what: &'static str,
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// schnorrkel refused the bytes (e.g. a non-canonical scalar in a private key).
    #[error("{what} is not a valid sr25519 secret")]
    Invalid {
        /// Which input ("secret seed" or "private key").
        what: &'static str,
    },
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature text does not start with `0x` (bittensor-wallet refuses it the same way).
    #[error("Invalid signature format. Expected hex string.")]
    Format,
    /// The signature is `0x` followed by something that is not 64 bytes of hex.
    #[error("signature is not 64 bytes of hex")]
    Hex,
    /// The signer address is not a valid SS58 (prefix 42) address.
    #[error("invalid signer address: {0}")]
    Signer(#[from] Ss58Error),
    /// Well-formed signature that does not match the message and signer.
    #[error("signature does not match")]
    Mismatch,
}

/// An sr25519 hotkey able to sign. Cheap to clone; `Debug` shows only the SS58 address.
#[derive(Clone)]
pub struct Hotkey {
    pair: Pair,
    public: [u8; 32],
    ss58: String,
}

impl std::fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hotkey").field(&self.ss58).finish()
    }
}

/// Decodes hex with an optional `0x` prefix into exactly `N` bytes.
fn secret_hex<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], KeyError> {
    let digits = text.trim();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(digits);
    if digits.len() != 2 * N {
        // Report the byte length without decoding (or echoing) the secret.
        return Err(KeyError::Length {
            what,
            got: digits.len() / 2,
            expected: N,
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|_| KeyError::Hex { what })?;
    Ok(out)
}

impl Hotkey {
    fn from_pair(pair: Pair) -> Hotkey {
        let public: [u8; 32] = pair.public().0;
        let ss58 = ss58::encode(&public);
        Hotkey { pair, public, ss58 }
    }

    /// From a BIP39 mnemonic: entropy → substrate-bip39 `mini_secret_from_entropy(e, "")` →
    /// schnorrkel expansion (Ed25519 mode). This is how bittensor-wallet's `secretPhrase` works.
    pub fn from_mnemonic(phrase: &str) -> Result<Hotkey, KeyError> {
        let normalized = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
        let mnemonic =
            bip39::Mnemonic::parse(normalized).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
        let entropy = mnemonic.to_entropy();
        let mini = substrate_bip39::mini_secret_from_entropy(&entropy, "")
            .map_err(|_| KeyError::Mnemonic("entropy of unsupported length".into()))?;
        let pair = Pair::from_seed_slice(&mini.to_bytes()).map_err(|_| KeyError::Invalid {
            what: "mnemonic seed",
        })?;
        Ok(Hotkey::from_pair(pair))
    }

    /// From `"0x"` + 32-byte mini secret (the keyfile's `secretSeed`). The `0x` is optional.
    pub fn from_seed_hex(seed: &str) -> Result<Hotkey, KeyError> {
        let what = "secret seed";
        let bytes = secret_hex::<32>(seed, what)?;
        let pair = Pair::from_seed_slice(&bytes).map_err(|_| KeyError::Invalid { what })?;
        Ok(Hotkey::from_pair(pair))
    }

    /// From `"0x"` + 64-byte schnorrkel secret key (key ‖ nonce, the keyfile's `privateKey`).
    pub fn from_private_key_hex(key: &str) -> Result<Hotkey, KeyError> {
        let what = "private key";
        let bytes = secret_hex::<64>(key, what)?;
        let pair = Pair::from_seed_slice(&bytes).map_err(|_| KeyError::Invalid { what })?;
        Ok(Hotkey::from_pair(pair))
    }

    /// From a secret given as text (environment variable, Kubernetes Secret): a mnemonic, a
    /// `0x` + 64-hex-digit seed, or a `0x` + 128-hex-digit private key.
    pub fn from_secret_str(s: &str) -> Result<Hotkey, KeyError> {
        let t = s.trim();
        if t.starts_with("0x") || t.starts_with("0X") {
            if t.len() == 2 + 128 {
                Hotkey::from_private_key_hex(t)
            } else {
                Hotkey::from_seed_hex(t)
            }
        } else {
            Hotkey::from_mnemonic(t)
        }
    }

    /// The SS58 address (prefix 42).
    pub fn ss58(&self) -> &str {
        &self.ss58
    }

    /// The 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// sr25519 signature (context `b"substrate"`) of `message`. Random: two calls differ.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair.sign(message).0
    }

    /// `"0x"` + 128 lowercase hex digits of [`Hotkey::sign`], as bittensor sends signatures.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        format!("0x{}", hex::encode(self.sign(message)))
    }
}

/// Checks a `0x`-hex sr25519 signature by `signer_ss58` over `message`, also accepting a
/// signature over `<Bytes>` + message + `</Bytes>` as bittensor-wallet's `Keypair.verify` does.
pub fn verify_hex(
    signer_ss58: &str,
    message: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let digits = signature.strip_prefix("0x").ok_or(SignatureError::Format)?;
    if digits.len() != 128 {
        return Err(SignatureError::Hex);
    }
    let mut sig = [0u8; 64];
    hex::decode_to_slice(digits, &mut sig).map_err(|_| SignatureError::Hex)?;
    let public = ss58::decode(signer_ss58)?;
    if verify_bytes(&public, message, &sig) {
        return Ok(());
    }
    let mut wrapped = Vec::with_capacity(message.len() + 15);
    wrapped.extend_from_slice(b"<Bytes>");
    wrapped.extend_from_slice(message);
    wrapped.extend_from_slice(b"</Bytes>");
    if verify_bytes(&public, &wrapped, &sig) {
        return Ok(());
    }
    Err(SignatureError::Mismatch)
}

/// Plain sr25519 check (context `b"substrate"`) of a raw signature by a raw public key.
pub fn verify_bytes(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    Pair::verify(
        &Signature::from_raw(*signature),
        message,
        &Public::from_raw(*public),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHRASE: &str =
        "advice pass ribbon enhance world volcano balcony toy dutch bracket they question";
    const SS58: &str = "5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5";

    #[test]
    fn mnemonic_derives_known_address_and_debug_hides_secret() {
        let key = Hotkey::from_mnemonic(PHRASE).unwrap();
        assert_eq!(key.ss58(), SS58);
        let dbg = format!("{key:?}");
        assert_eq!(dbg, format!("Hotkey(\"{SS58}\")"));
        assert!(!dbg.contains("advice"));
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let key = Hotkey::from_mnemonic(PHRASE).unwrap();
        let sig = key.sign_hex(b"msg");
        assert_eq!(sig.len(), 130);
        assert_eq!(verify_hex(SS58, b"msg", &sig), Ok(()));
        assert_eq!(
            verify_hex(SS58, b"msh", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hex(SS58, b"msg", &sig[2..]),
            Err(SignatureError::Format)
        );
        assert_eq!(verify_hex(SS58, b"msg", "0x12"), Err(SignatureError::Hex));
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let err = Hotkey::from_secret_str(
            "0xzz11223344556677889900112233445566778899001122334455667788990011",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("zz1122"), "{err}");
        let err = Hotkey::from_mnemonic(
            "advice pass ribbon enhance world volcano balcony toy dutch bracket they they",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("volcano"), "{err}");
    }
}
