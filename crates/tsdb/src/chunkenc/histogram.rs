//! Native histogram chunks (integer `histogram` = 2 and `floathistogram` = 3), decode only.
//!
//! ```text
//! num_samples <u16 BE> | flags <1 byte: top 2 bits counter-reset header> | bit stream:
//! layout:  zero_threshold (byte: 0 → 0, 255 → f64 follows, else 2^(b-243)/2)
//!          schema <varbit int>, positive spans, negative spans
//!          (spans: <varbit uint count>, then (length <varbit uint>, offset <varbit int>)*)
//!          custom bounds when schema = -53: <varbit uint count>, each (x*1000+1 <varbit uint>,
//!          or 0 then an f64)
//! integer sample 0: t <varbit int>, count <varbit uint>, zero count <varbit uint>, sum <f64>,
//!          buckets as deltas between neighbours <varbit int>
//! float sample 0:   t <varbit int>, count, zero count, sum, buckets: raw f64 each
//! sample n ≥ 1:     t delta-of-delta <varbit int>; integer chunks: count, zero count and
//!          buckets as delta-of-delta <varbit int>, sum XOR-encoded; float chunks: count,
//!          zero count, sum and buckets each XOR-encoded against their previous value.
//! ```
//! A stale marker is a sample whose sum is the stale NaN; its buckets are not written.

use super::bstream::BitReader;
use super::varbit::{read_varbit_int, read_varbit_uint};
use super::{Encoding, STALE_NAN_BITS};
use crate::error::{Error, Result};

/// Bound on the buckets one chunk may declare, so corrupt spans cannot exhaust memory.
const MAX_BUCKETS: u64 = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterResetHeader {
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

/// One decoded histogram sample, with absolute (not delta) float bucket counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub t: i64,
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
    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN_BITS
    }
}

/// XOR state of one float field.
#[derive(Clone, Copy, Debug, Default)]
struct XorField {
    bits: u64,
    leading: u8,
    trailing: u8,
}

impl XorField {
    fn read(&mut self, br: &mut BitReader<'_>) -> Option<()> {
        if !br.read_bit()? {
            return Some(());
        }
        let sig = if br.read_bit()? {
            self.leading = br.read_bits(5)? as u8;
            let mut sig = br.read_bits(6)? as u32;
            if sig == 0 {
                sig = 64;
            }
            if u32::from(self.leading) + sig > 64 {
                return None;
            }
            self.trailing = (64 - u32::from(self.leading) - sig) as u8;
            sig
        } else {
            64 - u32::from(self.leading) - u32::from(self.trailing)
        };
        if sig > 0 {
            self.bits ^= br.read_bits_wide(sig)? << self.trailing;
        }
        Some(())
    }
}

/// Iterates the samples of a histogram or float histogram chunk.
pub struct HistogramIterator<'a> {
    br: BitReader<'a>,
    float: bool,
    header: CounterResetHeader,
    total: u16,
    read: u16,
    h: Histogram,
    // Integer chunk state.
    t_delta: i64,
    cnt: i64,
    cnt_delta: i64,
    zcnt: i64,
    zcnt_delta: i64,
    p_deltas: Vec<(i64, i64)>,
    n_deltas: Vec<(i64, i64)>,
    // Float chunk / sum state.
    sum: XorField,
    fcnt: XorField,
    fzcnt: XorField,
    p_float: Vec<XorField>,
    n_float: Vec<XorField>,
    err: Option<String>,
}

impl<'a> HistogramIterator<'a> {
    pub fn new(encoding: Encoding, data: &'a [u8]) -> Result<Self> {
        let float = match encoding {
            Encoding::HISTOGRAM => false,
            Encoding::FLOAT_HISTOGRAM => true,
            e => {
                return Err(Error::InvalidInput(format!(
                    "not a histogram encoding: {e}"
                )))
            }
        };
        if data.len() < 3 {
            return Err(Error::corrupted(
                "histogram chunk",
                0,
                "shorter than its 3-byte header",
            ));
        }
        let header = match data[2] >> 6 {
            0b10 => CounterResetHeader::CounterReset,
            0b01 => CounterResetHeader::NotCounterReset,
            0b11 => CounterResetHeader::Gauge,
            _ => CounterResetHeader::Unknown,
        };
        Ok(HistogramIterator {
            br: BitReader::new(&data[3..]),
            float,
            header,
            total: u16::from_be_bytes([data[0], data[1]]),
            read: 0,
            h: Histogram::default(),
            t_delta: 0,
            cnt: 0,
            cnt_delta: 0,
            zcnt: 0,
            zcnt_delta: 0,
            p_deltas: Vec::new(),
            n_deltas: Vec::new(),
            sum: XorField::default(),
            fcnt: XorField::default(),
            fzcnt: XorField::default(),
            p_float: Vec::new(),
            n_float: Vec::new(),
            err: None,
        })
    }

    pub fn counter_reset_header(&self) -> CounterResetHeader {
        self.header
    }

    pub fn num_samples(&self) -> u16 {
        self.total
    }

    pub fn at(&self) -> &Histogram {
        &self.h
    }

    pub fn err(&self) -> Option<Error> {
        self.err
            .as_ref()
            .map(|m| Error::corrupted("histogram chunk", self.br.bit_position() / 8 + 3, m.clone()))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bool {
        if self.err.is_some() || self.read >= self.total {
            return false;
        }
        let ok = if self.read == 0 {
            self.read_first()
        } else {
            self.read_next()
        };
        if ok.is_none() {
            if self.err.is_none() {
                self.err = Some(format!(
                    "unexpected end of data (sample {} of {})",
                    self.read, self.total
                ));
            }
            return false;
        }
        self.read += 1;
        true
    }

    fn read_spans(&mut self) -> Option<Vec<Span>> {
        let n = read_varbit_uint(&mut self.br)?;
        if n > MAX_BUCKETS {
            self.err = Some(format!("{n} spans exceed the limit"));
            return None;
        }
        let mut spans = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let length = u32::try_from(read_varbit_uint(&mut self.br)?).ok()?;
            let offset = i32::try_from(read_varbit_int(&mut self.br)?).ok()?;
            spans.push(Span { offset, length });
        }
        Some(spans)
    }

    fn bucket_count(&mut self, spans: &[Span]) -> Option<usize> {
        let n: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
        if n > MAX_BUCKETS {
            self.err = Some(format!("{n} buckets exceed the limit"));
            return None;
        }
        Some(n as usize)
    }

    fn read_first(&mut self) -> Option<()> {
        let zt = self.br.read_byte()?;
        self.h.zero_threshold = match zt {
            0 => 0.0,
            255 => f64::from_bits(self.br.read_bits_wide(64)?),
            b => 0.5 * 2f64.powi(i32::from(b) - 243),
        };
        self.h.schema = i32::try_from(read_varbit_int(&mut self.br)?).ok()?;
        self.h.positive_spans = self.read_spans()?;
        self.h.negative_spans = self.read_spans()?;
        if self.h.schema == -53 {
            let n = read_varbit_uint(&mut self.br)?;
            if n > MAX_BUCKETS {
                self.err = Some(format!("{n} custom bounds exceed the limit"));
                return None;
            }
            for _ in 0..n {
                let v = read_varbit_uint(&mut self.br)?;
                let x = if v == 0 {
                    f64::from_bits(self.br.read_bits_wide(64)?)
                } else {
                    (v - 1) as f64 / 1000.0
                };
                self.h.custom_values.push(x);
            }
        }
        let np = self.bucket_count(&self.h.positive_spans.clone())?;
        let nn = self.bucket_count(&self.h.negative_spans.clone())?;
        self.h.positive_buckets = vec![0.0; np];
        self.h.negative_buckets = vec![0.0; nn];
        self.h.t = read_varbit_int(&mut self.br)?;
        if self.float {
            self.fcnt.bits = self.br.read_bits_wide(64)?;
            self.fzcnt.bits = self.br.read_bits_wide(64)?;
            self.sum.bits = self.br.read_bits_wide(64)?;
            self.p_float = vec![XorField::default(); np];
            self.n_float = vec![XorField::default(); nn];
            for f in self.p_float.iter_mut().chain(self.n_float.iter_mut()) {
                f.bits = self.br.read_bits_wide(64)?;
            }
        } else {
            self.cnt = read_varbit_uint(&mut self.br)? as i64;
            self.zcnt = read_varbit_uint(&mut self.br)? as i64;
            self.sum.bits = self.br.read_bits_wide(64)?;
            self.p_deltas = vec![(0, 0); np];
            self.n_deltas = vec![(0, 0); nn];
            for d in self.p_deltas.iter_mut().chain(self.n_deltas.iter_mut()) {
                d.0 = read_varbit_int(&mut self.br)?;
            }
        }
        self.publish();
        Some(())
    }

    fn read_next(&mut self) -> Option<()> {
        let dod = read_varbit_int(&mut self.br)?;
        self.t_delta = self.t_delta.wrapping_add(dod);
        self.h.t = self.h.t.wrapping_add(self.t_delta);
        if self.float {
            self.fcnt.read(&mut self.br)?;
            self.fzcnt.read(&mut self.br)?;
            self.sum.read(&mut self.br)?;
            if self.sum.bits != STALE_NAN_BITS {
                for f in self.p_float.iter_mut().chain(self.n_float.iter_mut()) {
                    f.read(&mut self.br)?;
                }
            }
        } else {
            let cd = read_varbit_int(&mut self.br)?;
            self.cnt_delta = self.cnt_delta.wrapping_add(cd);
            self.cnt = self.cnt.wrapping_add(self.cnt_delta);
            let zd = read_varbit_int(&mut self.br)?;
            self.zcnt_delta = self.zcnt_delta.wrapping_add(zd);
            self.zcnt = self.zcnt.wrapping_add(self.zcnt_delta);
            self.sum.read(&mut self.br)?;
            if self.sum.bits != STALE_NAN_BITS {
                for d in self.p_deltas.iter_mut().chain(self.n_deltas.iter_mut()) {
                    let dod = read_varbit_int(&mut self.br)?;
                    d.1 = d.1.wrapping_add(dod);
                    d.0 = d.0.wrapping_add(d.1);
                }
            }
        }
        self.publish();
        Some(())
    }

    /// Copies the decoder state into the public histogram (absolute bucket counts).
    fn publish(&mut self) {
        self.h.sum = f64::from_bits(self.sum.bits);
        if self.float {
            self.h.count = f64::from_bits(self.fcnt.bits);
            self.h.zero_count = f64::from_bits(self.fzcnt.bits);
            for (o, f) in self.h.positive_buckets.iter_mut().zip(&self.p_float) {
                *o = f64::from_bits(f.bits);
            }
            for (o, f) in self.h.negative_buckets.iter_mut().zip(&self.n_float) {
                *o = f64::from_bits(f.bits);
            }
        } else {
            self.h.count = self.cnt as u64 as f64;
            self.h.zero_count = self.zcnt as u64 as f64;
            for (buckets, deltas) in [
                (&mut self.h.positive_buckets, &self.p_deltas),
                (&mut self.h.negative_buckets, &self.n_deltas),
            ] {
                let mut cur = 0i64;
                for (o, d) in buckets.iter_mut().zip(deltas.iter()) {
                    cur = cur.wrapping_add(d.0);
                    *o = cur as f64;
                }
            }
        }
    }
}

/// Decodes every sample of a histogram chunk; used to check that chunks load.
pub fn decode_all(encoding: Encoding, data: &[u8]) -> Result<Vec<Histogram>> {
    let mut it = HistogramIterator::new(encoding, data)?;
    let mut out = Vec::with_capacity(usize::from(it.num_samples()));
    while it.next() {
        out.push(it.at().clone());
    }
    match it.err() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::super::varbit::{put_varbit_int, put_varbit_uint};
    use super::super::BitWriter;
    use super::*;

    /// Writes an integer histogram chunk the way Prometheus 2.42 does, for two samples.
    fn two_sample_chunk() -> Vec<u8> {
        let mut bw = BitWriter::from_bytes(vec![0, 2, 0b0100_0000]);
        bw.write_byte(0); // zero threshold 0
        put_varbit_int(&mut bw, 3); // schema
        put_varbit_uint(&mut bw, 1); // one positive span
        put_varbit_uint(&mut bw, 2);
        put_varbit_int(&mut bw, 1);
        put_varbit_uint(&mut bw, 0); // no negative spans
        put_varbit_int(&mut bw, 1000); // t
        put_varbit_uint(&mut bw, 5); // count
        put_varbit_uint(&mut bw, 1); // zero count
        bw.write_bits(12.5f64.to_bits(), 64);
        put_varbit_int(&mut bw, 3); // bucket 0 = 3
        put_varbit_int(&mut bw, -2); // bucket 1 = 1
                                     // sample 1: t=2000, count 7, zero 1, sum same, buckets 4, 2.
        put_varbit_int(&mut bw, 1000);
        put_varbit_int(&mut bw, 2);
        put_varbit_int(&mut bw, 0);
        bw.write_bit(false); // sum unchanged
        put_varbit_int(&mut bw, 1); // delta of first bucket delta: 3 → 4
        put_varbit_int(&mut bw, 0); // second delta -2 unchanged → 2
        bw.into_bytes()
    }

    #[test]
    fn decodes_integer_histograms() {
        let hs = decode_all(Encoding::HISTOGRAM, &two_sample_chunk()).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].positive_buckets, vec![3.0, 1.0]);
        assert_eq!((hs[1].t, hs[1].count, hs[1].zero_count), (2000, 7.0, 1.0));
        assert_eq!(hs[1].positive_buckets, vec![4.0, 2.0]);
        assert_eq!(hs[1].sum, 12.5);
        assert_eq!(
            hs[0].positive_spans,
            vec![Span {
                offset: 1,
                length: 2
            }]
        );
    }

    #[test]
    fn truncation_is_an_error() {
        let c = two_sample_chunk();
        for cut in 0..c.len() - 1 {
            assert!(
                decode_all(Encoding::HISTOGRAM, &c[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }
}
