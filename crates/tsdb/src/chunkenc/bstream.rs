//! Bit streams, most significant bit first, as Prometheus's `bstream`.
//!
//! The reader keeps up to 64 bits left-aligned in a register and refills a whole word at a
//! time when at least 8 bytes remain, so the per-field cost is a shift and a mask.

/// Appends bits to a byte vector, filling each byte from bit 7 down.
#[derive(Clone, Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits in the last byte (0 means a new byte is needed).
    free: u8,
}

impl BitWriter {
    pub fn with_capacity(n: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(n),
            free: 0,
        }
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        BitWriter { bytes, free: 0 }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends whole bytes with no open byte after them (the chunk header).
    pub fn extend_aligned(&mut self, b: &[u8]) {
        debug_assert_eq!(self.free, 0);
        self.bytes.extend_from_slice(b);
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.free = 0;
    }

    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.free - 1);
            }
        }
        self.free -= 1;
    }

    #[inline]
    pub fn write_byte(&mut self, b: u8) {
        self.write_bits(u64::from(b), 8);
    }

    /// Writes the low `n` bits of `v` (n ≤ 64), most significant first.
    ///
    /// Byte-compatible with Prometheus's `bstream`: a write of whole bytes that ends on a byte
    /// boundary leaves a zero byte open at the end, as Go's `writeByte` does.
    #[inline]
    pub fn write_bits(&mut self, v: u64, n: u32) {
        self.put_bits(v, n);
        if n >= 8 && n.is_multiple_of(8) && self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
    }

    #[inline]
    fn put_bits(&mut self, v: u64, mut n: u32) {
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(u32::from(self.free));
            let chunk = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            let shift = u32::from(self.free) - take;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << shift;
            }
            self.free -= take as u8;
            n -= take;
        }
    }
}

/// Reads bits from a byte slice, most significant first. Running past the end is reported
/// by returning `None`; it never panics.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load into `buf`.
    pos: usize,
    /// Bits not yet consumed, left-aligned.
    buf: u64,
    /// How many bits of `buf` are valid.
    valid: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let mut r = BitReader {
            data,
            pos: 0,
            buf: 0,
            valid: 0,
        };
        r.refill();
        r
    }

    /// Loads bytes until at least 56 bits are valid or the data ends.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(bytes) = self.data.get(self.pos..self.pos + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(bytes);
            let word = u64::from_be_bytes(w);
            if self.valid < 64 {
                self.buf |= word >> self.valid;
            }
            let take = (63 - self.valid) >> 3;
            self.pos += take as usize;
            self.valid += take * 8;
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.valid <= 56 && self.pos < self.data.len() {
            self.buf |= u64::from(self.data[self.pos]) << (56 - self.valid);
            self.pos += 1;
            self.valid += 8;
        }
    }

    /// Reads `n` bits (1 ≤ n ≤ 56).
    #[inline(always)]
    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        debug_assert!((1..=56).contains(&n));
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return None;
            }
        }
        let v = self.buf >> (64 - n);
        self.buf <<= n;
        self.valid -= n;
        Some(v)
    }

    /// Reads `n` bits for any 1 ≤ n ≤ 64.
    #[inline]
    pub fn read_bits_wide(&mut self, n: u32) -> Option<u64> {
        if n <= 56 {
            return self.read_bits(n);
        }
        let hi = self.read_bits(n - 32)?;
        let lo = self.read_bits(32)?;
        Some((hi << 32) | lo)
    }

    #[inline(always)]
    pub fn read_bit(&mut self) -> Option<bool> {
        self.read_bits(1).map(|b| b == 1)
    }

    /// Returns the next `n` bits (1 ≤ n ≤ 8) without consuming them, padding with
    /// zeros past the end of the data.
    #[inline(always)]
    pub fn peek_bits(&mut self, n: u32) -> u64 {
        if self.valid < n {
            self.refill();
        }
        self.buf >> (64 - n)
    }

    /// Consumes `n` bits already seen with `peek_bits`; false when they were past the end.
    #[inline(always)]
    pub fn consume(&mut self, n: u32) -> bool {
        if self.valid < n {
            return false;
        }
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.valid -= n;
        true
    }

    #[inline]
    pub fn read_byte(&mut self) -> Option<u8> {
        self.read_bits(8).map(|v| v as u8)
    }

    /// A Go uvarint written into the bit stream byte by byte.
    pub fn read_uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.read_byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(x);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    pub fn read_varint(&mut self) -> Option<i64> {
        self.read_uvarint().map(crate::encoding::zigzag_decode)
    }

    /// Makes at least 56 bits available when the data has them, and returns the window:
    /// (bits left-aligned, how many are valid). For decoders that parse several fields
    /// from one load and then [`consume`](Self::consume) what they used.
    #[inline(always)]
    pub fn window(&mut self) -> (u64, u32) {
        if self.valid < 56 {
            self.refill();
        }
        (self.buf, self.valid)
    }

    /// Bits consumed so far.
    pub fn bit_position(&self) -> u64 {
        self.pos as u64 * 8 - u64::from(self.valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mixed_widths() {
        let mut w = BitWriter::default();
        let fields: Vec<(u64, u32)> = (0..500u64)
            .map(|i| {
                let n = (i % 64 + 1) as u32;
                (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), n)
            })
            .collect();
        for &(v, n) in &fields {
            w.write_bits(v, n);
        }
        w.write_bit(true);
        let mut r = BitReader::new(w.bytes());
        for &(v, n) in &fields {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            assert_eq!(r.read_bits_wide(n), Some(v & mask));
        }
        assert_eq!(r.read_bit(), Some(true));
    }

    #[test]
    fn end_of_data_is_none() {
        let mut r = BitReader::new(&[0xAB]);
        assert_eq!(r.read_bits(8), Some(0xAB));
        assert_eq!(r.read_bits(1), None);
    }
}
