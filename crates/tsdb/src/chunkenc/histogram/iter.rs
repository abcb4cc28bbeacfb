//! Decoding of histogram and float histogram chunks.

use super::super::bstream::BitReader;
use super::super::varbit::{read_varbit_int, read_varbit_uint};
use super::super::{Encoding, STALE_NAN_BITS};
use super::{bucket_count, CUSTOM_BUCKETS_SCHEMA};
use super::{copy_vec, CounterResetHeader, CounterResetHint, Histogram, Span};
use crate::error::{Error, Result};

/// Bound on the buckets one chunk may declare, so corrupt spans cannot exhaust memory.
const MAX_BUCKETS: u64 = 1 << 16;

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
///
/// [`at`](Self::at) gives the current sample with absolute bucket counts; its counter reset
/// hint follows Prometheus (see [`CounterResetHint`]). A stale marker comes out as
/// [`Histogram::stale_marker`].
pub struct HistogramIterator<'a> {
    br: BitReader<'a>,
    float: bool,
    header: CounterResetHeader,
    total: u16,
    read: u16,
    h: Histogram,
    /// Whether `h` holds the chunk layout (false after a stale marker was published).
    h_layout: bool,
    // Layout.
    schema: i32,
    zero_threshold: f64,
    p_spans: Vec<Span>,
    n_spans: Vec<Span>,
    custom_values: Vec<f64>,
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
        let mut it = HistogramIterator {
            br: BitReader::new(&[]),
            float: false,
            header: CounterResetHeader::Unknown,
            total: 0,
            read: 0,
            h: Histogram::default(),
            h_layout: false,
            schema: 0,
            zero_threshold: 0.0,
            p_spans: Vec::new(),
            n_spans: Vec::new(),
            custom_values: Vec::new(),
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
        };
        it.reset(encoding, data)?;
        Ok(it)
    }

    /// Points the iterator at another chunk, keeping its buffers.
    pub fn reset(&mut self, encoding: Encoding, data: &'a [u8]) -> Result<()> {
        self.float = match encoding {
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
        self.header = CounterResetHeader::from_flags(data[2]);
        self.br = BitReader::new(&data[3..]);
        self.total = u16::from_be_bytes([data[0], data[1]]);
        self.read = 0;
        self.h_layout = false;
        self.h.t = 0;
        self.t_delta = 0;
        self.cnt = 0;
        self.cnt_delta = 0;
        self.zcnt = 0;
        self.zcnt_delta = 0;
        self.sum = XorField::default();
        self.fcnt = XorField::default();
        self.fzcnt = XorField::default();
        self.custom_values.clear();
        self.err = None;
        Ok(())
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
        self.publish();
        true
    }

    fn read_spans(&mut self, positive: bool) -> Option<()> {
        let n = read_varbit_uint(&mut self.br)?;
        if n > MAX_BUCKETS {
            self.err = Some(format!("{n} spans exceed the limit"));
            return None;
        }
        let spans = if positive {
            &mut self.p_spans
        } else {
            &mut self.n_spans
        };
        spans.clear();
        for _ in 0..n {
            let length = u32::try_from(read_varbit_uint(&mut self.br)?).ok()?;
            let offset = i32::try_from(read_varbit_int(&mut self.br)?).ok()?;
            spans.push(Span { offset, length });
        }
        Some(())
    }

    fn checked_bucket_count(&mut self, positive: bool) -> Option<usize> {
        let n = bucket_count(if positive {
            &self.p_spans
        } else {
            &self.n_spans
        });
        if n > MAX_BUCKETS {
            self.err = Some(format!("{n} buckets exceed the limit"));
            return None;
        }
        Some(n as usize)
    }

    fn read_first(&mut self) -> Option<()> {
        let zt = self.br.read_byte()?;
        self.zero_threshold = match zt {
            0 => 0.0,
            255 => f64::from_bits(self.br.read_bits_wide(64)?),
            b => 0.5 * 2f64.powi(i32::from(b) - 243),
        };
        self.schema = i32::try_from(read_varbit_int(&mut self.br)?).ok()?;
        self.read_spans(true)?;
        self.read_spans(false)?;
        if self.schema == CUSTOM_BUCKETS_SCHEMA {
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
                self.custom_values.push(x);
            }
        }
        let np = self.checked_bucket_count(true)?;
        let nn = self.checked_bucket_count(false)?;
        self.h.t = read_varbit_int(&mut self.br)?;
        if self.float {
            self.fcnt.bits = self.br.read_bits_wide(64)?;
            self.fzcnt.bits = self.br.read_bits_wide(64)?;
            self.sum.bits = self.br.read_bits_wide(64)?;
            self.p_float.clear();
            self.p_float.resize(np, XorField::default());
            self.n_float.clear();
            self.n_float.resize(nn, XorField::default());
            for f in self.p_float.iter_mut().chain(self.n_float.iter_mut()) {
                f.bits = self.br.read_bits_wide(64)?;
            }
        } else {
            self.cnt = read_varbit_uint(&mut self.br)? as i64;
            self.zcnt = read_varbit_uint(&mut self.br)? as i64;
            self.sum.bits = self.br.read_bits_wide(64)?;
            self.p_deltas.clear();
            self.p_deltas.resize(np, (0, 0));
            self.n_deltas.clear();
            self.n_deltas.resize(nn, (0, 0));
            for d in self.p_deltas.iter_mut().chain(self.n_deltas.iter_mut()) {
                d.0 = read_varbit_int(&mut self.br)?;
            }
        }
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
        Some(())
    }

    /// Copies the decoder state into the public histogram (absolute bucket counts).
    fn publish(&mut self) {
        let h = &mut self.h;
        h.sum = f64::from_bits(self.sum.bits);
        if self.sum.bits == STALE_NAN_BITS {
            let t = h.t;
            h.counter_reset_hint = CounterResetHint::Unknown;
            h.schema = 0;
            h.zero_threshold = 0.0;
            h.zero_count = 0.0;
            h.count = 0.0;
            h.positive_spans.clear();
            h.negative_spans.clear();
            h.positive_buckets.clear();
            h.negative_buckets.clear();
            h.custom_values.clear();
            h.t = t;
            self.h_layout = false;
            return;
        }
        h.counter_reset_hint = if self.header == CounterResetHeader::Gauge {
            CounterResetHint::Gauge
        } else if self.read > 1 {
            CounterResetHint::NotCounterReset
        } else {
            CounterResetHint::Unknown
        };
        if !self.h_layout {
            h.schema = self.schema;
            h.zero_threshold = self.zero_threshold;
            copy_vec(&mut h.positive_spans, &self.p_spans);
            copy_vec(&mut h.negative_spans, &self.n_spans);
            copy_vec(&mut h.custom_values, &self.custom_values);
            let (np, nn) = if self.float {
                (self.p_float.len(), self.n_float.len())
            } else {
                (self.p_deltas.len(), self.n_deltas.len())
            };
            h.positive_buckets.clear();
            h.positive_buckets.resize(np, 0.0);
            h.negative_buckets.clear();
            h.negative_buckets.resize(nn, 0.0);
            self.h_layout = true;
        }
        if self.float {
            h.count = f64::from_bits(self.fcnt.bits);
            h.zero_count = f64::from_bits(self.fzcnt.bits);
            for (o, f) in h.positive_buckets.iter_mut().zip(&self.p_float) {
                *o = f64::from_bits(f.bits);
            }
            for (o, f) in h.negative_buckets.iter_mut().zip(&self.n_float) {
                *o = f64::from_bits(f.bits);
            }
        } else {
            h.count = self.cnt as u64 as f64;
            h.zero_count = self.zcnt as u64 as f64;
            for (buckets, deltas) in [
                (&mut h.positive_buckets, &self.p_deltas),
                (&mut h.negative_buckets, &self.n_deltas),
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
