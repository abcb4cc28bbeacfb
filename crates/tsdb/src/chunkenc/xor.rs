//! XOR (Gorilla, millisecond variant) float chunks.
//!
//! ```text
//! num_samples <u16 BE>
//! sample 0:  t0 <varint>            v0 <64 bits>
//! sample 1:  t1-t0 <uvarint>        <xor value>
//! sample n:  <delta-of-delta bits>  <xor value>
//! ```
//! Delta-of-delta buckets: `0` (dod = 0), `10`+14 bits, `110`+17, `1110`+20, `1111`+64, each
//! payload the low bits of the two's complement. Value: `0` same as before; `10` reuse the
//! previous leading/trailing window; `11` + 5 bits leading + 6 bits significant-bit count
//! (0 means 64) + the significant bits.

use super::bstream::{BitReader, BitWriter};
use crate::error::{Error, Result};

/// Builds an XOR chunk sample by sample.
#[derive(Clone, Debug)]
pub struct XorAppender {
    bw: BitWriter,
    num: u16,
    t: i64,
    v: u64,
    t_delta: i64,
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl XorAppender {
    pub fn new() -> Self {
        let mut bw = BitWriter::with_capacity(128);
        bw.extend_aligned(&[0, 0]);
        XorAppender {
            bw,
            num: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    /// Starts a new chunk, reusing the buffer.
    pub fn reset(&mut self) {
        self.bw.clear();
        self.bw.extend_aligned(&[0, 0]);
        self.num = 0;
        self.leading = 0xff;
        self.trailing = 0;
    }

    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// The chunk bytes so far (a valid chunk at any point).
    pub fn bytes(&self) -> &[u8] {
        self.bw.bytes()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bw.into_bytes()
    }

    /// Appends a sample. Timestamps must increase (not checked here: the block writer does).
    pub fn append(&mut self, t: i64, v: f64) {
        let vbits = v.to_bits();
        match self.num {
            0 => {
                let mut buf = Vec::with_capacity(10);
                crate::encoding::put_varint(&mut buf, t);
                for b in buf {
                    self.bw.write_byte(b);
                }
                self.bw.write_bits(vbits, 64);
            }
            1 => {
                let td = t.wrapping_sub(self.t);
                let mut buf = Vec::with_capacity(10);
                crate::encoding::put_uvarint(&mut buf, td as u64);
                for b in buf {
                    self.bw.write_byte(b);
                }
                self.write_value(vbits);
                self.t_delta = td;
            }
            _ => {
                let td = t.wrapping_sub(self.t);
                let dod = td.wrapping_sub(self.t_delta);
                if dod == 0 {
                    self.bw.write_bit(false);
                } else if fits(dod, 14) {
                    self.bw.write_bits(0b10, 2);
                    self.bw.write_bits(dod as u64, 14);
                } else if fits(dod, 17) {
                    self.bw.write_bits(0b110, 3);
                    self.bw.write_bits(dod as u64, 17);
                } else if fits(dod, 20) {
                    self.bw.write_bits(0b1110, 4);
                    self.bw.write_bits(dod as u64, 20);
                } else {
                    self.bw.write_bits(0b1111, 4);
                    self.bw.write_bits(dod as u64, 64);
                }
                self.write_value(vbits);
                self.t_delta = td;
            }
        }
        self.t = t;
        self.v = vbits;
        self.num = self.num.wrapping_add(1);
        let n = self.num.to_be_bytes();
        let head = self.bw.bytes_mut();
        head[0] = n[0];
        head[1] = n[1];
    }

    fn write_value(&mut self, vbits: u64) {
        let x = vbits ^ self.v;
        if x == 0 {
            self.bw.write_bit(false);
            return;
        }
        self.bw.write_bit(true);
        let mut leading = x.leading_zeros() as u8;
        let trailing = x.trailing_zeros() as u8;
        if leading >= 32 {
            leading = 31;
        }
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.bw.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.bw.write_bits(x >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.bw.write_bit(true);
        self.bw.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 significant bits are written as 0 in the 6-bit field.
        self.bw.write_bits(u64::from(sig), 6);
        self.bw.write_bits(x >> trailing, sig);
    }
}

/// Whether `x` fits Prometheus's `bitRange(x, nbits)`: -(2^(n-1)-1) ≤ x ≤ 2^(n-1).
#[inline]
fn fits(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// Decodes an XOR chunk. Pull samples with [`XorIterator::next`]; a corrupt chunk ends the
/// iteration and leaves the error in [`XorIterator::err`].
#[derive(Clone, Debug)]
pub struct XorIterator<'a> {
    br: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: u64,
    t_delta: i64,
    leading: u8,
    trailing: u8,
    err: Option<String>,
}

impl<'a> XorIterator<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let mut it = XorIterator {
            br: BitReader::new(&[]),
            total: 0,
            read: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: 0,
            trailing: 0,
            err: None,
        };
        it.reset(data);
        it
    }

    /// Points the iterator at new chunk bytes, keeping nothing from before.
    pub fn reset(&mut self, data: &'a [u8]) {
        self.total = super::num_samples(data);
        self.br = BitReader::new(data.get(2..).unwrap_or(&[]));
        self.read = 0;
        self.t = 0;
        self.v = 0;
        self.t_delta = 0;
        self.leading = 0;
        self.trailing = 0;
        self.err = if data.len() < 2 {
            Some("XOR chunk shorter than its 2-byte header".into())
        } else {
            None
        };
        if self.err.is_some() {
            self.total = 0;
        }
    }

    pub fn num_samples(&self) -> u16 {
        self.total
    }

    #[inline]
    pub fn at(&self) -> (i64, f64) {
        (self.t, f64::from_bits(self.v))
    }

    #[inline]
    pub fn t(&self) -> i64 {
        self.t
    }

    /// The error that ended the iteration early, if any.
    pub fn err(&self) -> Option<Error> {
        self.err
            .as_ref()
            .map(|m| Error::corrupted("XOR chunk", self.br.bit_position() / 8, m.clone()))
    }

    #[cold]
    fn fail(&mut self, msg: &str) -> bool {
        self.err = Some(format!("{msg} (sample {} of {})", self.read, self.total));
        self.read = self.total;
        false
    }

    /// Advances to the next sample; false at the end or on corruption.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bool {
        if self.read >= self.total {
            return false;
        }
        match self.read {
            0 => {
                let (Some(t), Some(v)) = (self.br.read_varint(), self.br.read_bits_wide(64)) else {
                    return self.fail("unexpected end of data");
                };
                self.t = t;
                self.v = v;
            }
            1 => {
                let Some(td) = self.br.read_uvarint() else {
                    return self.fail("unexpected end of data");
                };
                self.t_delta = td as i64;
                self.t = self.t.wrapping_add(self.t_delta);
                if !self.read_value() {
                    return self.fail("unexpected end of data");
                }
            }
            _ => {
                // The fast path declines without consuming anything, or fails for good.
                if !self.next_fast() && (self.err.is_some() || !self.next_slow()) {
                    return false;
                }
            }
        }
        self.read += 1;
        true
    }

    /// Decodes sample n ≥ 2 from one 64-bit window when its timestamp fits (the common
    /// case); false leaves the reader untouched for [`next_slow`](Self::next_slow).
    #[inline(always)]
    fn next_fast(&mut self) -> bool {
        let (buf, valid) = self.br.window();
        // Delta of delta: prefix of up to four ones, then 0, 14, 17 or 20 payload bits.
        let (skip, nbits): (u32, u32) = match buf.leading_ones() {
            0 => (1, 0),
            1 => (2, 14),
            2 => (3, 17),
            3 => (4, 20),
            _ => return false,
        };
        let used = skip + nbits;
        if used > valid {
            return false;
        }
        if nbits > 0 {
            let u = (buf << skip) >> (64 - nbits);
            let dod = if u > (1 << (nbits - 1)) {
                u as i64 - (1i64 << nbits)
            } else {
                u as i64
            };
            self.t_delta = self.t_delta.wrapping_add(dod);
        }
        self.t = self.t.wrapping_add(self.t_delta);
        // Value: `0` same, `10` reuse window, `11` new window (5 + 6 bits header).
        let rest = buf << used;
        let (total, leading, trailing, sig) = if rest >> 63 == 0 {
            (used + 1, self.leading, self.trailing, 0)
        } else if (rest >> 62) & 1 == 0 {
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            (used + 2, self.leading, self.trailing, sig)
        } else {
            let leading = ((rest << 2) >> 59) as u32;
            let mut sig = ((rest << 7) >> 58) as u32;
            if sig == 0 {
                sig = 64;
            }
            (
                used + 13,
                leading as u8,
                64u32.saturating_sub(leading + sig) as u8,
                sig,
            )
        };
        if total + sig > valid || u32::from(leading) + sig > 64 {
            // The value does not fit this window (or is corrupt): read it field by field.
            self.br.consume(used);
            return self.read_value() || self.fail("unexpected end of data");
        }
        if sig > 0 {
            let bits = (buf << total) >> (64 - sig);
            self.v ^= bits << trailing;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.br.consume(total + sig)
    }

    /// Decodes sample n ≥ 2 field by field, for wide fields and the end of the data.
    #[cold]
    fn next_slow(&mut self) -> bool {
        let prefix = self.br.peek_bits(4);
        let (skip, nbits) = match prefix {
            0b0000..=0b0111 => (1, 0),
            0b1000..=0b1011 => (2, 14),
            0b1100 | 0b1101 => (3, 17),
            0b1110 => (4, 20),
            _ => (4, 64),
        };
        if !self.br.consume(skip) {
            return self.fail("unexpected end of data");
        }
        if nbits > 0 {
            let Some(bits) = self.br.read_bits_wide(nbits) else {
                return self.fail("unexpected end of data");
            };
            let dod = if nbits == 64 {
                bits as i64
            } else if bits > (1 << (nbits - 1)) {
                bits as i64 - (1i64 << nbits)
            } else {
                bits as i64
            };
            self.t_delta = self.t_delta.wrapping_add(dod);
        }
        self.t = self.t.wrapping_add(self.t_delta);
        if !self.read_value() {
            return self.fail("unexpected end of data");
        }
        true
    }

    #[inline(always)]
    fn read_value(&mut self) -> bool {
        match self.br.peek_bits(2) {
            0b00 | 0b01 => self.br.consume(1),
            0b10 => {
                if !self.br.consume(2) {
                    return false;
                }
                let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
                self.xor_in(sig)
            }
            _ => {
                if !self.br.consume(2) {
                    return false;
                }
                let Some(hdr) = self.br.read_bits(11) else {
                    return false;
                };
                let leading = (hdr >> 6) as u32;
                let mut sig = (hdr & 0x3f) as u32;
                if sig == 0 {
                    sig = 64;
                }
                if leading + sig > 64 {
                    return false;
                }
                self.leading = leading as u8;
                self.trailing = (64 - leading - sig) as u8;
                self.xor_in(sig)
            }
        }
    }

    #[inline(always)]
    fn xor_in(&mut self, sig: u32) -> bool {
        if sig == 0 {
            return true;
        }
        let Some(bits) = self.br.read_bits_wide(sig) else {
            return false;
        };
        self.v ^= bits << self.trailing;
        true
    }

    /// Advances to the first sample with timestamp ≥ `t`; false if there is none.
    pub fn seek(&mut self, t: i64) -> bool {
        if self.read > 0 && self.t >= t {
            return true;
        }
        while self.next() {
            if self.t >= t {
                return true;
            }
        }
        false
    }
}

/// Decodes a whole chunk into `out` (appending); an error names the problem.
pub fn decode_all(data: &[u8], out: &mut Vec<(i64, f64)>) -> Result<()> {
    let mut it = XorIterator::new(data);
    while it.next() {
        out.push(it.at());
    }
    match it.err() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, f64)]) {
        let mut app = XorAppender::new();
        for &(t, v) in samples {
            app.append(t, v);
        }
        let mut out = Vec::new();
        decode_all(app.bytes(), &mut out).unwrap();
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }

    #[test]
    fn regular_and_irregular() {
        let s: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_000_000 + i * 15_000, i as f64 * 1.5))
            .collect();
        round_trip(&s);
        let s: Vec<(i64, f64)> = (0..120i64)
            .map(|i| (i * i * 977 - 5_000_000_000, ((i * 7919) % 13) as f64 / 3.0))
            .collect();
        round_trip(&s);
        round_trip(&[
            (0, f64::NAN),
            (1, f64::INFINITY),
            (2, f64::NEG_INFINITY),
            (3, f64::from_bits(super::super::STALE_NAN_BITS)),
            (i64::MAX / 2, -0.0),
            (i64::MAX / 2 + 1, 1e308),
        ]);
        round_trip(&[(42, 1.0)]);
        round_trip(&[]);
    }

    #[test]
    fn dod_boundaries() {
        let mut s = vec![(0i64, 0.0), (1000, 1.0)];
        let mut t = 1000i64;
        let mut delta = 1000i64;
        for dod in [
            8192i64,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            524288,
            -524287,
            524289,
            -524288,
            1 << 40,
        ] {
            delta += dod;
            t += delta;
            s.push((t, dod as f64));
        }
        round_trip(&s);
    }

    #[test]
    fn truncated_chunk_errors() {
        let mut app = XorAppender::new();
        for i in 0..50 {
            app.append(i * 1000 + (i * i) % 7, i as f64 * 0.1);
        }
        let bytes = app.bytes();
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            let r = decode_all(&bytes[..cut], &mut out);
            assert!(r.is_err(), "cut at {cut} decoded {} samples", out.len());
        }
    }
}
