//! Native histogram chunks: integer `histogram` (encoding 2) and `floathistogram` (encoding 3),
//! encode and decode.
//!
//! ```text
//! num_samples <u16 BE> | flags <1 byte: top 2 bits counter-reset header> | bit stream:
//! layout:  zero_threshold (byte: 0 → 0, 255 → f64 follows, else 2^(b-243)/2)
//!          schema <varbit int>, positive spans, negative spans
//!          (spans: <varbit uint count>, then (length <varbit uint>, offset <varbit int>)*)
//!          custom bounds when schema = -53: <varbit uint count>, each (x*1000+1 <varbit uint>,
//!          or a 0 bit then an f64)
//! integer sample 0: t <varbit int>, count <varbit uint>, zero count <varbit uint>, sum <f64>,
//!          buckets as deltas between neighbours <varbit int>
//! float sample 0:   t <varbit int>, count, zero count, sum, buckets: raw f64 each
//! sample n ≥ 1:     t delta-of-delta <varbit int>; integer chunks: count, zero count and
//!          buckets as delta-of-delta <varbit int>, sum XOR-encoded; float chunks: count,
//!          zero count, sum and buckets each XOR-encoded against their previous value.
//! ```
//! A stale marker is a sample whose sum is the stale NaN; its buckets are not written (and the
//! first sample of a chunk that is a stale marker writes an empty layout).
//!
//! The appenders follow Prometheus (3.x `AppendHistogram`/`AppendFloatHistogram` with
//! `appendOnly = false`): new buckets recode the chunk to the union layout, missing empty
//! buckets are filled in, and what Prometheus answers with a new chunk (a counter reset, a
//! schema or zero threshold change, a sample after a stale marker, a gauge after a counter
//! or the reverse) is reported to the caller as [`AppendError::Cut`].
//!
//! The bytes are those of Prometheus 2.42's bit stream, which ends a stream that stops on a
//! byte boundary after a whole-byte write with one open zero byte (newer versions do not);
//! both decode the same.

mod append;
mod iter;
mod layout;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use append::{AppendError, Appended, CutReason, FloatHistogramAppender, HistogramAppender};
pub use iter::{decode_all, HistogramIterator};

use super::STALE_NAN_BITS;

/// The schema of histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// The top two bits of a histogram chunk's flags byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterResetHeader {
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

impl CounterResetHeader {
    /// The header stored in a chunk's flags byte.
    pub fn from_flags(flags: u8) -> Self {
        match flags >> 6 {
            0b10 => CounterResetHeader::CounterReset,
            0b01 => CounterResetHeader::NotCounterReset,
            0b11 => CounterResetHeader::Gauge,
            _ => CounterResetHeader::Unknown,
        }
    }

    /// The flags byte bits of this header.
    pub fn bits(self) -> u8 {
        match self {
            CounterResetHeader::Unknown => 0,
            CounterResetHeader::CounterReset => 0b1000_0000,
            CounterResetHeader::NotCounterReset => 0b0100_0000,
            CounterResetHeader::Gauge => 0b1100_0000,
        }
    }
}

/// What a histogram sample says about counter resets (Prometheus's `CounterResetHint`).
///
/// Decoding gives `Gauge` for every sample of a gauge chunk, `NotCounterReset` for the
/// samples after the first in other chunks, and `Unknown` for the first (whatever the chunk
/// header says, as Prometheus 3 does: the previous chunk may be gone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

/// One histogram sample, with absolute (not delta) float bucket counts.
///
/// For integer chunks every count must be a whole number (at most 2^53 in magnitude).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub t: i64,
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    pub custom_values: Vec<f64>,
}

impl Histogram {
    /// A stale marker at `t`: only the sum (the stale NaN) is meaningful.
    pub fn stale_marker(t: i64) -> Self {
        Histogram {
            t,
            sum: f64::from_bits(STALE_NAN_BITS),
            ..Histogram::default()
        }
    }

    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN_BITS
    }

    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Copies `other` into `self`, reusing `self`'s buffers.
    pub fn copy_from(&mut self, other: &Histogram) {
        self.t = other.t;
        self.counter_reset_hint = other.counter_reset_hint;
        self.schema = other.schema;
        self.zero_threshold = other.zero_threshold;
        self.zero_count = other.zero_count;
        self.count = other.count;
        self.sum = other.sum;
        copy_vec(&mut self.positive_spans, &other.positive_spans);
        copy_vec(&mut self.negative_spans, &other.negative_spans);
        copy_vec(&mut self.positive_buckets, &other.positive_buckets);
        copy_vec(&mut self.negative_buckets, &other.negative_buckets);
        copy_vec(&mut self.custom_values, &other.custom_values);
    }
}

pub(crate) fn copy_vec<T: Copy>(dst: &mut Vec<T>, src: &[T]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// The number of buckets the spans describe.
pub fn bucket_count(spans: &[Span]) -> u64 {
    spans.iter().map(|s| u64::from(s.length)).sum()
}
