//! The slice of SCALE (parity-scale-codec) that Subtensor's runtime-API answers use, by hand.
//!
//! [`Reader`] reads little-endian fixed integers, compact integers, bools, 32-byte account ids,
//! `Vec<T>` and `Option<T>` from a byte slice; every read is bounds-checked and fails with a
//! [`DecodeError`] naming the field and the offset. [`Writer`] is the inverse, for tests and the
//! fake chain. Compact integers are read strictly, as parity-scale-codec does: a value in a
//! longer mode than it needs is refused.

use super::DecodeError;

/// A cursor over SCALE bytes. Never panics and never allocates more than the input can back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte has been read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(DecodeError::TrailingBytes {
                what,
                offset: self.pos,
                left,
            }),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                need: n,
                left,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A little-endian `u128`.
    pub fn u128(&mut self, what: &'static str) -> Result<u128, DecodeError> {
        self.array(what).map(u128::from_le_bytes)
    }

    /// A bool: exactly `0x00` or `0x01`.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::InvalidBool { what, offset, byte }),
        }
    }

    /// A 32-byte `AccountId32` (an sr25519 public key).
    pub fn account(&mut self, what: &'static str) -> Result<[u8; 32], DecodeError> {
        self.array(what)
    }

    /// A `Compact<u64>` (also used for any narrower compact, then range-checked).
    pub fn compact_u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let offset = self.pos;
        let first = self.u8(what)?;
        let non_canonical = DecodeError::NonCanonicalCompact { what, offset };
        match first & 0b11 {
            0 => Ok(u64::from(first >> 2)),
            1 => {
                let rest = self.u8(what)?;
                let v = u64::from(u16::from_le_bytes([first, rest]) >> 2);
                if v < 1 << 6 {
                    Err(non_canonical)
                } else {
                    Ok(v)
                }
            }
            2 => {
                let rest: [u8; 3] = self.array(what)?;
                let v = u64::from(u32::from_le_bytes([first, rest[0], rest[1], rest[2]]) >> 2);
                if v < 1 << 14 {
                    Err(non_canonical)
                } else {
                    Ok(v)
                }
            }
            _ => {
                let n = usize::from(first >> 2) + 4;
                if n > 8 {
                    return Err(DecodeError::CompactOverflow {
                        what,
                        offset,
                        bits: 64,
                    });
                }
                let body = self.take(n, what)?;
                let v = body
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                // Shortest form: 4 bytes only for values >= 2^30, otherwise a non-zero top byte.
                let least = if n == 4 {
                    1 << 30
                } else {
                    1u64 << (8 * (n - 1))
                };
                if v < least { Err(non_canonical) } else { Ok(v) }
            }
        }
    }

    /// A `Compact<u16>`.
    pub fn compact_u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let offset = self.pos;
        let v = self.compact_u64(what)?;
        u16::try_from(v).map_err(|_| DecodeError::CompactOverflow {
            what,
            offset,
            bits: 16,
        })
    }

    /// A `Vec<T>`: a `Compact<u32>` length, then the items read by `item`.
    ///
    /// `min_item_len` is the fewest bytes one item can take; a length that the remaining bytes
    /// could not hold is refused before anything is allocated.
    pub fn vec<T>(
        &mut self,
        what: &'static str,
        min_item_len: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let offset = self.pos;
        let len = self.compact_u64(what)?;
        let left = self.remaining();
        let fits = usize::try_from(len)
            .ok()
            .filter(|&n| u32::try_from(n).is_ok())
            .filter(|&n| {
                n.checked_mul(min_item_len.max(1))
                    .is_some_and(|b| b <= left)
            });
        let Some(len) = fits else {
            return Err(DecodeError::LengthTooLarge {
                what,
                offset,
                len,
                left,
            });
        };
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// An `Option<T>`: tag `0x00` (None) or `0x01` followed by the value.
    pub fn option<T>(
        &mut self,
        what: &'static str,
        value: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        let offset = self.pos;
        match self.u8(what)? {
            0 => Ok(None),
            1 => value(self).map(Some),
            tag => Err(DecodeError::InvalidOptionTag { what, offset, tag }),
        }
    }
}

/// Builds SCALE bytes; the inverse of [`Reader`].
#[derive(Debug, Clone, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Raw bytes (fixed-size fields such as account ids).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u128`.
    pub fn u128(&mut self, v: u128) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A bool as `0x00`/`0x01`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A compact integer in its shortest form.
    pub fn compact(&mut self, v: u64) -> &mut Self {
        if v < 1 << 6 {
            self.u8((v as u8) << 2)
        } else if v < 1 << 14 {
            self.u16(((v as u16) << 2) | 0b01)
        } else if v < 1 << 30 {
            self.u32(((v as u32) << 2) | 0b10)
        } else {
            let n = (8 - v.leading_zeros() as usize / 8).max(4);
            self.u8((((n - 4) as u8) << 2) | 0b11);
            self.bytes(&v.to_le_bytes()[..n])
        }
    }

    /// A `Vec<T>`: compact length, then each item written by `item`.
    pub fn vec<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.compact(items.len() as u64);
        for it in items {
            item(self, it);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact_bytes(v: u64) -> Vec<u8> {
        let mut w = Writer::new();
        w.compact(v);
        w.into_bytes()
    }

    #[test]
    fn compact_edges_round_trip_with_known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x04]),
            (63, &[0xfc]),
            (64, &[0x01, 0x01]),
            (16383, &[0xfd, 0xff]),
            (16384, &[0x02, 0x00, 0x01, 0x00]),
            ((1 << 30) - 1, &[0xfe, 0xff, 0xff, 0xff]),
            (1 << 30, &[0x03, 0x00, 0x00, 0x00, 0x40]),
            (u32::MAX as u64, &[0x03, 0xff, 0xff, 0xff, 0xff]),
            (1 << 32, &[0x07, 0x00, 0x00, 0x00, 0x00, 0x01]),
            (
                u64::MAX,
                &[0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for &(v, expected) in cases {
            assert_eq!(compact_bytes(v), expected, "encoding of {v}");
            let mut r = Reader::new(expected);
            assert_eq!(r.compact_u64("v").unwrap(), v, "decoding of {v}");
            r.finish("v").unwrap();
        }
    }

    #[test]
    fn compact_refuses_non_canonical_overflow_and_truncation() {
        // 1 in two-byte mode, 63 in four-byte mode, 2^30-1 in big mode, 2^32 with a zero top byte.
        for bad in [
            &[0x05, 0x00][..],
            &[0xfe, 0x00, 0x00, 0x00],
            &[0x03, 0xff, 0xff, 0xff, 0x3f],
            &[0x0b, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00],
        ] {
            let err = Reader::new(bad).compact_u64("x").unwrap_err();
            assert!(
                matches!(err, DecodeError::NonCanonicalCompact { .. }),
                "{bad:?}: {err}"
            );
        }
        // Nine value bytes do not fit a u64.
        let err = Reader::new(&[0x17; 10]).compact_u64("x").unwrap_err();
        assert!(
            matches!(err, DecodeError::CompactOverflow { bits: 64, .. }),
            "{err}"
        );
        // 65536 as Compact<u16>.
        let err = Reader::new(&compact_bytes(65536))
            .compact_u16("uid")
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::CompactOverflow { bits: 16, .. }),
            "{err}"
        );
        assert_eq!(
            Reader::new(&compact_bytes(65535))
                .compact_u16("uid")
                .unwrap(),
            65535
        );
        let err = Reader::new(&[0x02, 0x00]).compact_u64("len").unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                what: "len",
                offset: 1,
                need: 3,
                left: 1
            }
        );
    }

    #[test]
    fn vec_length_beyond_input_is_refused_before_reading() {
        // 2^30-1 items of at least 32 bytes each, with 3 bytes behind the length.
        let bytes = [0xfe, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = Reader::new(&bytes)
            .vec("hotkeys", 32, |r| r.account("hotkey"))
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::LengthTooLarge {
                what: "hotkeys",
                offset: 0,
                len: (1 << 30) - 1,
                left: 3
            }
        );
        assert!(err.to_string().contains("hotkeys"), "{err}");
        // u64::MAX declared items.
        let mut w = Writer::new();
        w.compact(u64::MAX);
        let err = Reader::new(&w.into_bytes())
            .vec("x", 1, |r| r.u8("x"))
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::LengthTooLarge { len: u64::MAX, .. }),
            "{err}"
        );
    }

    #[test]
    fn bool_option_and_fixed_ints() {
        let mut w = Writer::new();
        w.bool(true)
            .u16(0xbeef)
            .u32(7)
            .u64(u64::MAX)
            .u128(1 << 100)
            .u8(1)
            .u8(9);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert!(r.bool("b").unwrap());
        assert_eq!(r.u16("a").unwrap(), 0xbeef);
        assert_eq!(r.u32("a").unwrap(), 7);
        assert_eq!(r.u64("a").unwrap(), u64::MAX);
        assert_eq!(r.u128("a").unwrap(), 1 << 100);
        assert_eq!(r.option("o", |r| r.u8("v")).unwrap(), Some(9));
        r.finish("all").unwrap();
        let err = Reader::new(&[2]).bool("active").unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidBool {
                what: "active",
                offset: 0,
                byte: 2
            }
        );
        let err = Reader::new(&[7])
            .option("state", |r| r.u8("v"))
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidOptionTag {
                what: "state",
                offset: 0,
                tag: 7
            }
        );
        let err = Reader::new(&[1, 2]).finish("neurons").unwrap_err();
        assert_eq!(
            err,
            DecodeError::TrailingBytes {
                what: "neurons",
                offset: 0,
                left: 2
            }
        );
    }
}
