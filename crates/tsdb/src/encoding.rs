//! Byte-level primitives shared by the format modules: a bounds-checked decoder that
//! reports the absolute offset of any problem, and an encoder with Go's varint forms.
//! Fixed-width integers are big-endian; varints are LEB128 (zigzag for signed), as Go's
//! `encoding/binary` writes them; checksums are CRC-32 Castagnoli.

use crate::error::{Error, Result};

/// CRC-32 Castagnoli of `data`.
#[inline]
pub fn crc32(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continues a CRC-32 Castagnoli over more bytes.
#[inline]
pub fn crc32_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// A cursor over a byte slice. `base` is the absolute file offset of `buf[0]`, so errors name
/// the real position; `what` names the file or structure being decoded.
#[derive(Clone)]
pub struct Decbuf<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    what: &'a str,
}

impl<'a> Decbuf<'a> {
    pub fn new(buf: &'a [u8], base: u64, what: &'a str) -> Self {
        Decbuf {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    /// The absolute offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn error(&self, msg: impl Into<String>) -> Error {
        Error::corrupted(self.what, self.offset(), msg)
    }

    #[cold]
    fn eof(&self, need: usize) -> Error {
        self.error(format!(
            "unexpected end of data: need {need} bytes, have {}",
            self.remaining()
        ))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.eof(n));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn be_u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn be_u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn uvarint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut x: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                self.pos = start;
                return Err(self.eof(1));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                self.pos = start;
                return Err(self.error("uvarint overflows 64 bits"));
            }
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
            shift += 7;
            if shift > 63 {
                self.pos = start;
                return Err(self.error("uvarint overflows 64 bits"));
            }
        }
    }

    pub fn varint(&mut self) -> Result<i64> {
        let u = self.uvarint()?;
        Ok(zigzag_decode(u))
    }

    pub fn uvarint32(&mut self) -> Result<u32> {
        let at = self.offset();
        let v = self.uvarint()?;
        u32::try_from(v)
            .map_err(|_| Error::corrupted(self.what, at, format!("value {v} overflows 32 bits")))
    }

    /// A uvarint-length-prefixed byte string.
    pub fn uvarint_bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| self.error("length overflows"))?;
        self.bytes(n)
    }

    /// A uvarint-length-prefixed UTF-8 string.
    pub fn uvarint_str(&mut self) -> Result<&'a str> {
        let at = self.offset();
        let b = self.uvarint_bytes()?;
        std::str::from_utf8(b)
            .map_err(|_| Error::corrupted(self.what, at, "string is not valid UTF-8"))
    }
}

#[inline]
pub fn zigzag_decode(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[inline]
pub fn zigzag_encode(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Appends `v` as a Go uvarint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag_encode(v));
}

pub fn put_uvarint_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn put_be_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_be_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The number of bytes `v` takes as a uvarint.
pub fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            put_uvarint(&mut b, v as u64);
            let mut d = Decbuf::new(&b, 0, "t");
            assert_eq!(d.varint().unwrap(), v);
            assert_eq!(d.uvarint().unwrap(), v as u64);
            assert!(d.is_empty());
        }
    }

    #[test]
    fn errors_name_offsets() {
        let b = [0x80u8, 0x80];
        let mut d = Decbuf::new(&b, 100, "index");
        let e = d.uvarint().unwrap_err().to_string();
        assert!(e.contains("index") && e.contains("100"), "{e}");
        let over = [0xffu8; 11];
        assert!(Decbuf::new(&over, 0, "x").uvarint().is_err());
    }
}
