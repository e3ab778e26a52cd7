//! SS58 addresses with the Bittensor prefix 42 (docs/protocol.md §3).
//!
//! `base58(prefix ‖ pubkey32 ‖ blake2b512("SS58PRE" ‖ prefix ‖ pubkey32)[0..2])`; prefix 42 fits
//! in one byte, so every address is 35 bytes before base58 and starts with `5`.
//! Entry points: [`encode`], [`decode`].

use blake2::{Blake2b512, Digest};

/// The SS58 network prefix Bittensor uses (the generic Substrate prefix).
pub const PREFIX: u8 = 42;

/// Longest text accepted by [`decode`] (a 35-byte payload is at most 48 base58 characters).
const MAX_ADDRESS_LEN: usize = 64;

/// Why an SS58 address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ss58Error {
    /// The text is not base58 (or is absurdly long).
    #[error("not a base58 string")]
    NotBase58,
    /// The decoded payload is not 1 + 32 + 2 bytes.
    #[error("wrong length: {0} bytes, expected 35 (prefix 42, 32-byte key, 2-byte checksum)")]
    BadLength(usize),
    /// The network prefix is not 42.
    #[error("wrong network prefix {0}, expected 42")]
    BadPrefix(u8),
    /// The 2-byte blake2b checksum does not match.
    #[error("bad checksum")]
    BadChecksum,
}

fn checksum(prefix_and_key: &[u8]) -> [u8; 2] {
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(prefix_and_key);
    let digest = hasher.finalize();
    [digest[0], digest[1]]
}

/// The SS58 address (prefix 42) of a 32-byte public key.
pub fn encode(public: &[u8; 32]) -> String {
    let mut payload = Vec::with_capacity(35);
    payload.push(PREFIX);
    payload.extend_from_slice(public);
    let sum = checksum(&payload);
    payload.extend_from_slice(&sum);
    bs58::encode(payload).into_string()
}

/// The 32-byte public key of an SS58 address; checks the prefix (42) and the checksum.
pub fn decode(address: &str) -> Result<[u8; 32], Ss58Error> {
    if address.len() > MAX_ADDRESS_LEN {
        return Err(Ss58Error::NotBase58);
    }
    let bytes = bs58::decode(address)
        .into_vec()
        .map_err(|_| Ss58Error::NotBase58)?;
    if bytes.len() != 35 {
        return Err(Ss58Error::BadLength(bytes.len()));
    }
    if bytes[0] != PREFIX {
        return Err(Ss58Error::BadPrefix(bytes[0]));
    }
    if checksum(&bytes[..33]) != [bytes[33], bytes[34]] {
        return Err(Ss58Error::BadChecksum);
    }
    let mut public = [0u8; 32];
    public.copy_from_slice(&bytes[1..33]);
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALIDATOR: &str = "5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5";
    const VALIDATOR_HEX: &str = "8407ace94a2cc2680ae1ca3c9a19fbbf10cc15ba8bb7a3085a2b66cded2a8c1c";

    #[test]
    fn round_trip_known_address() {
        let mut public = [0u8; 32];
        hex::decode_to_slice(VALIDATOR_HEX, &mut public).unwrap();
        assert_eq!(encode(&public), VALIDATOR);
        assert_eq!(decode(VALIDATOR).unwrap(), public);
    }

    #[test]
    fn rejects_bad_addresses() {
        // A changed character breaks the checksum (or the length).
        let mut bad = VALIDATOR.to_string();
        bad.replace_range(10..11, "b");
        assert!(decode(&bad).is_err());
        assert_eq!(decode("0OIl"), Err(Ss58Error::NotBase58));
        assert!(matches!(decode("5F3p"), Err(Ss58Error::BadLength(_))));
        assert_eq!(decode(&"5".repeat(100)), Err(Ss58Error::NotBase58));
        // Same key with prefix 0 (Polkadot).
        let mut payload = vec![0u8];
        payload.extend_from_slice(&decode(VALIDATOR).unwrap());
        let sum = checksum(&payload);
        payload.extend_from_slice(&sum);
        let polkadot = bs58::encode(payload).into_string();
        assert_eq!(decode(&polkadot), Err(Ss58Error::BadPrefix(0)));
    }
}
