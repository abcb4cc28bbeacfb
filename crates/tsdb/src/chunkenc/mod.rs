//! Chunk encodings: XOR (Gorilla) floats and native histogram chunks (integer and float),
//! encode and decode; the encoding byte as stored on disk.

pub mod aggr;
mod bstream;
pub mod histogram;
mod varbit;
pub mod xor;

pub use bstream::{BitReader, BitWriter};
pub use histogram::{
    FloatHistogramAppender, HistogramAppender, HistogramIterator, CUSTOM_BUCKETS_SCHEMA,
};
pub use xor::{XorAppender, XorIterator};

/// The encoding byte of a chunk as Prometheus stores it on disk (not the Thanos wire enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encoding(pub u8);

impl Encoding {
    pub const NONE: Encoding = Encoding(0);
    pub const XOR: Encoding = Encoding(1);
    pub const HISTOGRAM: Encoding = Encoding(2);
    pub const FLOAT_HISTOGRAM: Encoding = Encoding(3);
    /// Thanos's downsampled aggregate chunk.
    pub const AGGR: Encoding = Encoding(0xff);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "none",
            1 => "XOR",
            2 => "histogram",
            3 => "floathistogram",
            0xff => "aggr",
            _ => "unknown",
        }
    }

    pub fn is_known(self) -> bool {
        matches!(self.0, 0..=3 | 0xff)
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

/// The number of samples recorded in a chunk's 2-byte header (XOR and histogram chunks).
pub fn num_samples(data: &[u8]) -> u16 {
    match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// The staleness marker Prometheus writes: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
