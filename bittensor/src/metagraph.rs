//! Subtensor's metagraph runtime-API answers (docs/protocol.md §10): SCALE decoding by hand, the
//! inverse encoding (for the fake chain and simnet), and the SDK's normalised rows.
//!
//! Entry points: [`hex_result`] turns a `state_call` JSON-RPC result into bytes;
//! [`decode_neurons_lite`] / [`decode_neurons_lite_any`] read
//! `NeuronInfoRuntimeApi_get_neurons_lite`, [`decode_subnet_state`] reads
//! `SubnetInfoRuntimeApi_get_subnet_state`; [`neuron_rows`] combines them the way bittensor
//! 10.x `Metagraph` does. Malformed or truncated bytes give a [`DecodeError`] naming the field
//! and offset, never a panic, and a declared length the input cannot back is refused before
//! anything is allocated.

pub mod scale;

mod rows;
mod types;

pub use rows::{NeuronRow, VALIDATOR_MIN_STAKE_TAO, neuron_rows};
pub use types::{AxonInfo, NeuronLite, PrometheusInfo, SubnetState};

use scale::{Reader, Writer};

/// Why a runtime-API answer could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated input reading {what} at offset {offset}: need {need} bytes, {left} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        need: usize,
        /// Bytes that were left.
        left: usize,
    },
    /// A bool byte other than 0 or 1.
    #[error("invalid bool byte {byte:#04x} reading {what} at offset {offset}")]
    InvalidBool {
        /// The field being read.
        what: &'static str,
        /// Where it is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// An `Option` tag other than 0 or 1.
    #[error("invalid Option tag {tag:#04x} reading {what} at offset {offset}")]
    InvalidOptionTag {
        /// The field being read.
        what: &'static str,
        /// Where it is.
        offset: usize,
        /// The tag found.
        tag: u8,
    },
    /// A compact integer larger than its type.
    #[error("compact integer reading {what} at offset {offset} does not fit in {bits} bits")]
    CompactOverflow {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Width of the type.
        bits: u32,
    },
    /// A compact integer in a longer mode than its value needs (parity-scale-codec refuses it).
    #[error("non-canonical compact integer reading {what} at offset {offset}")]
    NonCanonicalCompact {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// A `Vec` length the remaining bytes cannot hold.
    #[error(
        "{what} at offset {offset} declares {len} items, more than the {left} remaining bytes can hold"
    )]
    LengthTooLarge {
        /// The vector being read.
        what: &'static str,
        /// Where its length starts.
        offset: usize,
        /// The declared length.
        len: u64,
        /// Bytes left after the length.
        left: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{left} trailing bytes after {what} at offset {offset}")]
    TrailingBytes {
        /// The value that was read.
        what: &'static str,
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        left: usize,
    },
    /// The JSON-RPC result string does not start with `0x`.
    #[error("JSON-RPC result does not start with 0x")]
    MissingHexPrefix,
    /// The JSON-RPC result string is not hex.
    #[error("JSON-RPC result is not valid hex: {0}")]
    InvalidHex(#[from] hex::FromHexError),
}

/// The bytes of a `state_call` JSON-RPC result string (`"0x…"`, surrounding whitespace ignored).
pub fn hex_result(text: &str) -> Result<Vec<u8>, DecodeError> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or(DecodeError::MissingHexPrefix)?;
    Ok(hex::decode(digits)?)
}

fn read_neurons(r: &mut Reader<'_>) -> Result<Vec<NeuronLite>, DecodeError> {
    r.vec("neurons", types::MIN_NEURON_LEN, NeuronLite::read)
}

/// Decodes a `get_neurons_lite` answer (`Vec<NeuronInfoLite>`); every byte must be used.
pub fn decode_neurons_lite(bytes: &[u8]) -> Result<Vec<NeuronLite>, DecodeError> {
    let mut r = Reader::new(bytes);
    let neurons = read_neurons(&mut r)?;
    r.finish("neurons")?;
    Ok(neurons)
}

/// Like [`decode_neurons_lite`], but also accepts the legacy answer of older runtimes (spec 208
/// and earlier): the same bytes wrapped as a `Vec<u8>`, i.e. preceded by one more compact length
/// equal to the number of bytes after it.
///
/// The two forms cannot be confused: a non-empty current answer declares `n` neurons of at least
/// 143 bytes each, so its leading compact is never the length of the rest.
pub fn decode_neurons_lite_any(bytes: &[u8]) -> Result<Vec<NeuronLite>, DecodeError> {
    let mut r = Reader::new(bytes);
    if let Ok(len) = r.compact_u64("neurons.wrapper")
        && len > 0
        && u64::try_from(r.remaining()) == Ok(len)
    {
        let inner = r.take(r.remaining(), "neurons.wrapper")?;
        let mut inner_reader = Reader::new(inner);
        let neurons = read_neurons(&mut inner_reader)?;
        inner_reader.finish("neurons")?;
        return Ok(neurons);
    }
    decode_neurons_lite(bytes)
}

/// Decodes a `get_subnet_state` answer (`Option<SubnetState>`, `None` for a missing subnet);
/// every byte must be used.
pub fn decode_subnet_state(bytes: &[u8]) -> Result<Option<SubnetState>, DecodeError> {
    let mut r = Reader::new(bytes);
    let state = r.option("subnet_state", SubnetState::read)?;
    r.finish("subnet_state")?;
    Ok(state)
}

/// Encodes neurons as `get_neurons_lite` returns them (current form); inverse of
/// [`decode_neurons_lite`].
pub fn encode_neurons_lite(neurons: &[NeuronLite]) -> Vec<u8> {
    let mut w = Writer::new();
    w.vec(neurons, |w, n| n.write(w));
    w.into_bytes()
}

/// Encodes `Some(state)` as `get_subnet_state` returns it; inverse of [`decode_subnet_state`].
pub fn encode_subnet_state(state: &SubnetState) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1);
    state.write(&mut w);
    w.into_bytes()
}

#[cfg(test)]
mod tests;
