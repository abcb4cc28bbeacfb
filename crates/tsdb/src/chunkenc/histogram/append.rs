//! Appenders for histogram (integer) and float histogram chunks, with Prometheus's rules for
//! what may go into one chunk.

use super::super::bstream::BitWriter;
use super::super::Encoding;
use super::iter::HistogramIterator;
use super::layout::{
    adjust_for_inserts, expand_spans_and_buckets, expand_spans_both_ways, insert_buckets,
    put_varbit_int, put_varbit_uint, write_layout, Insert, XorState,
};
use super::{bucket_count, copy_vec, CounterResetHeader, CounterResetHint, Histogram, Span};

/// How a sample went into the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Written after the previous samples.
    InPlace,
    /// The sample brought new buckets: the whole chunk was re-encoded with the union layout
    /// (the earlier samples get zero counts in the new buckets), then the sample written.
    Recoded,
}

/// Why a sample needs a new chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// A counter reset: the sample's hint says so, or a count went down, or a populated
    /// bucket disappeared (counter chunks), or the custom bounds changed (Prometheus treats
    /// that as a reset).
    CounterReset,
    /// The schema or the zero threshold changed (or the custom bounds, in a gauge chunk).
    Layout,
    /// The previous sample is a stale marker and this one is not.
    AfterStale,
    /// A gauge histogram after counter histograms, or the reverse.
    KindChange,
    /// The chunk holds 65535 samples, as many as its header can count.
    Full,
}

/// Why [`HistogramAppender::append`] or [`FloatHistogramAppender::append`] did not append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The sample belongs in a new chunk and was not appended. Take the finished chunk's
    /// bytes, [`reset`](FloatHistogramAppender::reset), set `header` (what Prometheus
    /// writes in the new chunk) with `set_counter_reset_header`, and append again.
    #[error("histogram sample needs a new chunk ({reason:?})")]
    Cut {
        reason: CutReason,
        header: CounterResetHeader,
    },
    /// An integer histogram chunk cannot hold the counts: fractions, negative totals, or
    /// beyond 2^53 in magnitude.
    #[error("histogram counts are not integers an integer histogram chunk can hold")]
    NotInteger,
    /// The number of buckets does not match the spans.
    #[error("histogram buckets do not match its spans")]
    Malformed,
}

/// The per-sample fields an appender writes (a stale marker has zero counts and no
/// buckets).
struct Fields<'a> {
    count: f64,
    zero_count: f64,
    sum: f64,
    positive: &'a [f64],
    negative: &'a [f64],
}

/// The encoding of counts and buckets: integer varbits with delta-of-delta, or XOR floats.
trait Codec: Default {
    const FLOAT: bool;
    const ENCODING: Encoding;
    fn validate(h: &Histogram) -> Result<(), AppendError>;
    fn first(&mut self, bw: &mut BitWriter, f: &Fields<'_>);
    fn next(&mut self, bw: &mut BitWriter, f: &Fields<'_>, stale: bool);
}

const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

fn whole(v: f64) -> bool {
    v.trunc() == v && v.abs() <= MAX_EXACT
}

/// Integer chunk state, as Prometheus's `HistogramAppender`: buckets are kept as deltas
/// between neighbours, and each sample writes the delta of those deltas.
#[derive(Default)]
struct IntCodec {
    cnt: u64,
    zcnt: u64,
    cnt_delta: i64,
    zcnt_delta: i64,
    sum: XorState,
    p_buckets: Vec<i64>,
    n_buckets: Vec<i64>,
    p_deltas: Vec<i64>,
    n_deltas: Vec<i64>,
    scratch: Vec<i64>,
}

/// Absolute counts to deltas between neighbours.
fn to_deltas(abs: &[f64], out: &mut Vec<i64>) {
    out.clear();
    let mut prev = 0i64;
    for &v in abs {
        let v = v as i64;
        out.push(v.wrapping_sub(prev));
        prev = v;
    }
}

impl Codec for IntCodec {
    const FLOAT: bool = false;
    const ENCODING: Encoding = Encoding::HISTOGRAM;

    fn validate(h: &Histogram) -> Result<(), AppendError> {
        let ok = whole(h.count)
            && h.count >= 0.0
            && whole(h.zero_count)
            && h.zero_count >= 0.0
            && h.positive_buckets.iter().all(|&v| whole(v))
            && h.negative_buckets.iter().all(|&v| whole(v));
        if ok {
            Ok(())
        } else {
            Err(AppendError::NotInteger)
        }
    }

    fn first(&mut self, bw: &mut BitWriter, f: &Fields<'_>) {
        self.cnt = f.count as u64;
        self.zcnt = f.zero_count as u64;
        put_varbit_uint(bw, self.cnt);
        put_varbit_uint(bw, self.zcnt);
        bw.write_bits(f.sum.to_bits(), 64);
        self.sum = XorState::new(f.sum.to_bits());
        self.cnt_delta = 0;
        self.zcnt_delta = 0;
        for (abs, buckets, deltas) in [
            (f.positive, &mut self.p_buckets, &mut self.p_deltas),
            (f.negative, &mut self.n_buckets, &mut self.n_deltas),
        ] {
            to_deltas(abs, buckets);
            deltas.clear();
            deltas.resize(buckets.len(), 0);
            for &d in buckets.iter() {
                put_varbit_int(bw, d);
            }
        }
    }

    fn next(&mut self, bw: &mut BitWriter, f: &Fields<'_>, stale: bool) {
        let cnt = f.count as u64;
        let zcnt = f.zero_count as u64;
        let cnt_delta = (cnt as i64).wrapping_sub(self.cnt as i64);
        let zcnt_delta = (zcnt as i64).wrapping_sub(self.zcnt as i64);
        let (cnt_dod, zcnt_dod) = if stale {
            (0, 0)
        } else {
            (
                cnt_delta.wrapping_sub(self.cnt_delta),
                zcnt_delta.wrapping_sub(self.zcnt_delta),
            )
        };
        put_varbit_int(bw, cnt_dod);
        put_varbit_int(bw, zcnt_dod);
        self.sum.write(bw, f.sum.to_bits());
        for (abs, buckets, deltas) in [
            (f.positive, &mut self.p_buckets, &mut self.p_deltas),
            (f.negative, &mut self.n_buckets, &mut self.n_deltas),
        ] {
            to_deltas(abs, &mut self.scratch);
            for ((b, prev), prev_delta) in self.scratch.iter().zip(buckets.iter_mut()).zip(deltas) {
                let delta = b.wrapping_sub(*prev);
                put_varbit_int(bw, delta.wrapping_sub(*prev_delta));
                *prev_delta = delta;
                *prev = *b;
            }
        }
        self.cnt = cnt;
        self.zcnt = zcnt;
        self.cnt_delta = cnt_delta;
        self.zcnt_delta = zcnt_delta;
    }
}

/// Float chunk state, as Prometheus's `FloatHistogramAppender`: every field XOR-encoded
/// against its previous value.
#[derive(Default)]
struct FloatCodec {
    cnt: XorState,
    zcnt: XorState,
    sum: XorState,
    p: Vec<XorState>,
    n: Vec<XorState>,
}

impl Codec for FloatCodec {
    const FLOAT: bool = true;
    const ENCODING: Encoding = Encoding::FLOAT_HISTOGRAM;

    fn validate(_: &Histogram) -> Result<(), AppendError> {
        Ok(())
    }

    fn first(&mut self, bw: &mut BitWriter, f: &Fields<'_>) {
        for (state, v) in [
            (&mut self.cnt, f.count),
            (&mut self.zcnt, f.zero_count),
            (&mut self.sum, f.sum),
        ] {
            bw.write_bits(v.to_bits(), 64);
            *state = XorState::new(v.to_bits());
        }
        for (abs, states) in [(f.positive, &mut self.p), (f.negative, &mut self.n)] {
            states.clear();
            for &v in abs {
                bw.write_bits(v.to_bits(), 64);
                states.push(XorState::new(v.to_bits()));
            }
        }
    }

    fn next(&mut self, bw: &mut BitWriter, f: &Fields<'_>, _stale: bool) {
        self.cnt.write(bw, f.count.to_bits());
        self.zcnt.write(bw, f.zero_count.to_bits());
        self.sum.write(bw, f.sum.to_bits());
        for (abs, states) in [(f.positive, &mut self.p), (f.negative, &mut self.n)] {
            for (state, &v) in states.iter_mut().zip(abs) {
                state.write(bw, v.to_bits());
            }
        }
    }
}

/// The outcome of Prometheus's `appendable`/`appendableGauge` checks.
enum Verdict {
    Ok,
    Cut { reason: CutReason, reset: bool },
}

/// The shared appender; the public types wrap it.
struct Core<C: Codec> {
    bw: BitWriter,
    /// A second buffer for recoding, kept to reuse its capacity.
    spare: BitWriter,
    num: u16,
    /// Whether the caller set the header since the last reset (the first append then
    /// leaves it alone).
    header_set: bool,
    // Chunk layout.
    schema: i32,
    zero_threshold: f64,
    p_spans: Vec<Span>,
    n_spans: Vec<Span>,
    custom_values: Vec<f64>,
    // Last sample (absolute counts; a stale marker leaves zero counts and the buckets).
    t: i64,
    t_delta: i64,
    count: f64,
    zero_count: f64,
    sum: f64,
    p_abs: Vec<f64>,
    n_abs: Vec<f64>,
    codec: C,
    // Scratch.
    fwd_p: Vec<Insert>,
    fwd_n: Vec<Insert>,
    bwd_p: Vec<Insert>,
    bwd_n: Vec<Insert>,
    merged_p: Vec<Span>,
    merged_n: Vec<Span>,
    adj: Histogram,
    rec: Histogram,
}

const HEADER: [u8; 3] = [0, 0, 0];

impl<C: Codec> Core<C> {
    fn new() -> Self {
        let mut bw = BitWriter::with_capacity(256);
        bw.extend_aligned(&HEADER);
        Core {
            bw,
            spare: BitWriter::default(),
            num: 0,
            header_set: false,
            schema: 0,
            zero_threshold: 0.0,
            p_spans: Vec::new(),
            n_spans: Vec::new(),
            custom_values: Vec::new(),
            t: 0,
            t_delta: 0,
            count: 0.0,
            zero_count: 0.0,
            sum: 0.0,
            p_abs: Vec::new(),
            n_abs: Vec::new(),
            codec: C::default(),
            fwd_p: Vec::new(),
            fwd_n: Vec::new(),
            bwd_p: Vec::new(),
            bwd_n: Vec::new(),
            merged_p: Vec::new(),
            merged_n: Vec::new(),
            adj: Histogram::default(),
            rec: Histogram::default(),
        }
    }

    fn reset(&mut self) {
        self.bw.clear();
        self.bw.extend_aligned(&HEADER);
        self.num = 0;
        self.header_set = false;
        self.t = 0;
        self.t_delta = 0;
        self.count = 0.0;
        self.zero_count = 0.0;
        self.sum = 0.0;
    }

    fn header(&self) -> CounterResetHeader {
        CounterResetHeader::from_flags(self.bw.bytes()[2])
    }

    fn set_header(&mut self, h: CounterResetHeader) {
        let b = &mut self.bw.bytes_mut()[2];
        *b = (*b & 0b0011_1111) | h.bits();
    }

    /// Prometheus's `appendFloatHistogram`/`appendHistogram`: writes the sample, no checks.
    fn append_sample(&mut self, h: &Histogram) {
        let stale = h.is_stale();
        let f = if stale {
            Fields {
                count: 0.0,
                zero_count: 0.0,
                sum: h.sum,
                positive: &[],
                negative: &[],
            }
        } else {
            Fields {
                count: h.count,
                zero_count: h.zero_count,
                sum: h.sum,
                positive: &h.positive_buckets,
                negative: &h.negative_buckets,
            }
        };
        if self.num == 0 {
            // The first sample dictates the layout (a stale marker an empty one).
            if stale {
                write_layout(&mut self.bw, 0, 0.0, &[], &[], &[]);
                self.schema = 0;
                self.zero_threshold = 0.0;
                self.p_spans.clear();
                self.n_spans.clear();
                self.custom_values.clear();
            } else {
                write_layout(
                    &mut self.bw,
                    h.schema,
                    h.zero_threshold,
                    &h.positive_spans,
                    &h.negative_spans,
                    &h.custom_values,
                );
                self.schema = h.schema;
                self.zero_threshold = h.zero_threshold;
                copy_vec(&mut self.p_spans, &h.positive_spans);
                copy_vec(&mut self.n_spans, &h.negative_spans);
                copy_vec(&mut self.custom_values, &h.custom_values);
            }
            put_varbit_int(&mut self.bw, h.t);
            self.codec.first(&mut self.bw, &f);
            self.t_delta = 0;
            copy_vec(&mut self.p_abs, f.positive);
            copy_vec(&mut self.n_abs, f.negative);
        } else {
            let t_delta = h.t.wrapping_sub(self.t);
            put_varbit_int(&mut self.bw, t_delta.wrapping_sub(self.t_delta));
            self.codec.next(&mut self.bw, &f, stale);
            self.t_delta = t_delta;
            if !stale {
                copy_vec(&mut self.p_abs, f.positive);
                copy_vec(&mut self.n_abs, f.negative);
            }
        }
        self.t = h.t;
        self.count = f.count;
        self.zero_count = f.zero_count;
        self.sum = f.sum;
        self.num += 1;
        let n = self.num.to_be_bytes();
        let head = self.bw.bytes_mut();
        head[0] = n[0];
        head[1] = n[1];
    }

    fn last_is_stale(&self) -> bool {
        self.sum.to_bits() == super::super::STALE_NAN_BITS
    }

    /// Prometheus's `appendable`: may a counter histogram follow the chunk? Fills the
    /// forward and backward inserts when it may.
    fn appendable(&mut self, h: &Histogram) -> Verdict {
        let cut = |reason, reset| Verdict::Cut { reason, reset };
        if self.num > 0 && self.header() == CounterResetHeader::Gauge {
            return cut(CutReason::KindChange, false);
        }
        if h.counter_reset_hint == CounterResetHint::CounterReset {
            return cut(CutReason::CounterReset, true);
        }
        if h.is_stale() {
            self.clear_inserts();
            return Verdict::Ok;
        }
        if self.last_is_stale() {
            return cut(CutReason::AfterStale, false);
        }
        if h.count < self.count {
            return cut(CutReason::CounterReset, true);
        }
        if h.schema != self.schema || h.zero_threshold != self.zero_threshold {
            return cut(CutReason::Layout, false);
        }
        if h.uses_custom_buckets() && h.custom_values != self.custom_values {
            return cut(CutReason::Layout, true);
        }
        if h.zero_count < self.zero_count {
            return cut(CutReason::CounterReset, true);
        }
        if !expand_spans_and_buckets(
            &self.p_spans,
            &h.positive_spans,
            &self.p_abs,
            &h.positive_buckets,
            &mut self.fwd_p,
            &mut self.bwd_p,
        ) || !expand_spans_and_buckets(
            &self.n_spans,
            &h.negative_spans,
            &self.n_abs,
            &h.negative_buckets,
            &mut self.fwd_n,
            &mut self.bwd_n,
        ) {
            return cut(CutReason::CounterReset, true);
        }
        Verdict::Ok
    }

    /// Prometheus's `appendableGauge`: may a gauge histogram follow the chunk? Fills the
    /// inserts and the merged spans when it may.
    fn appendable_gauge(&mut self, h: &Histogram) -> Verdict {
        let cut = |reason| Verdict::Cut {
            reason,
            reset: false,
        };
        if self.num > 0 && self.header() != CounterResetHeader::Gauge {
            return cut(CutReason::KindChange);
        }
        if h.is_stale() {
            self.clear_inserts();
            return Verdict::Ok;
        }
        if self.last_is_stale() {
            return cut(CutReason::AfterStale);
        }
        if h.schema != self.schema || h.zero_threshold != self.zero_threshold {
            return cut(CutReason::Layout);
        }
        if h.uses_custom_buckets() && h.custom_values != self.custom_values {
            return cut(CutReason::Layout);
        }
        expand_spans_both_ways(
            &self.p_spans,
            &h.positive_spans,
            &mut self.fwd_p,
            &mut self.bwd_p,
            &mut self.merged_p,
        );
        expand_spans_both_ways(
            &self.n_spans,
            &h.negative_spans,
            &mut self.fwd_n,
            &mut self.bwd_n,
            &mut self.merged_n,
        );
        Verdict::Ok
    }

    fn clear_inserts(&mut self) {
        self.fwd_p.clear();
        self.fwd_n.clear();
        self.bwd_p.clear();
        self.bwd_n.clear();
    }

    /// The header of a new chunk for a counter verdict, as Prometheus sets it when it cuts.
    fn cut_header(reason: CutReason, reset: bool) -> CounterResetHeader {
        if reset {
            CounterResetHeader::CounterReset
        } else if reason == CutReason::KindChange && !C::FLOAT {
            CounterResetHeader::NotCounterReset
        } else {
            CounterResetHeader::Unknown
        }
    }

    fn header_after(&mut self, h: &Histogram) -> CounterResetHeader {
        match h.counter_reset_hint {
            CounterResetHint::Gauge => return CounterResetHeader::Gauge,
            CounterResetHint::CounterReset => return CounterResetHeader::CounterReset,
            _ => {}
        }
        match self.appendable(h) {
            Verdict::Ok => CounterResetHeader::NotCounterReset,
            Verdict::Cut { reset: true, .. } => CounterResetHeader::CounterReset,
            Verdict::Cut { reason, .. } if C::FLOAT || reason == CutReason::KindChange => {
                CounterResetHeader::NotCounterReset
            }
            Verdict::Cut { .. } => CounterResetHeader::Unknown,
        }
    }

    fn validate(h: &Histogram) -> Result<(), AppendError> {
        if h.is_stale() {
            return Ok(());
        }
        if bucket_count(&h.positive_spans) != h.positive_buckets.len() as u64
            || bucket_count(&h.negative_spans) != h.negative_buckets.len() as u64
        {
            return Err(AppendError::Malformed);
        }
        C::validate(h)
    }

    /// Whether `h` (valid) may follow the samples of a non-empty chunk; fills the inserts
    /// for [`append`](Self::append) when it may.
    fn fits(&mut self, h: &Histogram) -> Result<(), AppendError> {
        if self.num == u16::MAX {
            let header = self.header_after(h);
            return Err(AppendError::Cut {
                reason: CutReason::Full,
                header,
            });
        }
        if h.counter_reset_hint != CounterResetHint::Gauge {
            if let Verdict::Cut { reason, reset } = self.appendable(h) {
                return Err(AppendError::Cut {
                    reason,
                    header: Self::cut_header(reason, reset),
                });
            }
        } else if let Verdict::Cut { reason, .. } = self.appendable_gauge(h) {
            return Err(AppendError::Cut {
                reason,
                header: CounterResetHeader::Gauge,
            });
        }
        Ok(())
    }

    fn check(&mut self, h: &Histogram) -> Result<(), AppendError> {
        Self::validate(h)?;
        if self.num == 0 {
            return Ok(());
        }
        self.fits(h)
    }

    fn append(&mut self, h: &Histogram) -> Result<Appended, AppendError> {
        Self::validate(h)?;
        if self.num == 0 {
            self.append_sample(h);
            if self.header_set {
                return Ok(Appended::InPlace);
            }
            match h.counter_reset_hint {
                CounterResetHint::Gauge => self.set_header(CounterResetHeader::Gauge),
                CounterResetHint::CounterReset => self.set_header(CounterResetHeader::CounterReset),
                _ => {}
            }
            return Ok(Appended::InPlace);
        }
        self.fits(h)?;
        let gauge = h.counter_reset_hint == CounterResetHint::Gauge;
        let backward = !self.bwd_p.is_empty() || !self.bwd_n.is_empty();
        let forward = !self.fwd_p.is_empty() || !self.fwd_n.is_empty();
        let mut adj = std::mem::take(&mut self.adj);
        let input = if backward {
            // The sample lacks empty buckets of the chunk: give it them.
            adj.copy_from(h);
            if gauge {
                copy_vec(&mut adj.positive_spans, &self.merged_p);
                copy_vec(&mut adj.negative_spans, &self.merged_n);
            } else if !forward {
                copy_vec(&mut adj.positive_spans, &self.p_spans);
                copy_vec(&mut adj.negative_spans, &self.n_spans);
            } else {
                adjust_for_inserts(&h.positive_spans, &self.bwd_p, &mut adj.positive_spans);
                adjust_for_inserts(&h.negative_spans, &self.bwd_n, &mut adj.negative_spans);
            }
            if !self.bwd_p.is_empty() {
                insert_buckets(&h.positive_buckets, &mut adj.positive_buckets, &self.bwd_p);
            }
            if !self.bwd_n.is_empty() {
                insert_buckets(&h.negative_buckets, &mut adj.negative_buckets, &self.bwd_n);
            }
            &adj
        } else {
            h
        };
        let out = if forward {
            self.recode(&input.positive_spans, &input.negative_spans);
            Appended::Recoded
        } else {
            Appended::InPlace
        };
        self.append_sample(input);
        self.adj = adj;
        Ok(out)
    }

    /// Re-encodes the chunk with the given (wider) layout, filling the new buckets of the
    /// earlier samples with zeros according to the forward inserts.
    fn recode(&mut self, p_spans: &[Span], n_spans: &[Span]) {
        let header = self.header();
        let mut old = std::mem::replace(&mut self.bw, std::mem::take(&mut self.spare));
        self.bw.clear();
        self.bw.extend_aligned(&HEADER);
        self.num = 0;
        let (fwd_p, fwd_n) = (
            std::mem::take(&mut self.fwd_p),
            std::mem::take(&mut self.fwd_n),
        );
        let mut rec = std::mem::take(&mut self.rec);
        if let Ok(mut it) = HistogramIterator::new(C::ENCODING, old.bytes()) {
            while it.next() {
                let h = it.at();
                rec.copy_from(h);
                if !h.is_stale() {
                    copy_vec(&mut rec.positive_spans, p_spans);
                    copy_vec(&mut rec.negative_spans, n_spans);
                    if !fwd_p.is_empty() {
                        insert_buckets(&h.positive_buckets, &mut rec.positive_buckets, &fwd_p);
                    }
                    if !fwd_n.is_empty() {
                        insert_buckets(&h.negative_buckets, &mut rec.negative_buckets, &fwd_n);
                    }
                }
                self.append_sample(&rec);
            }
            debug_assert!(it.err().is_none(), "recoding our own chunk: {:?}", it.err());
        }
        self.set_header(header);
        old.clear();
        self.spare = old;
        self.rec = rec;
        self.fwd_p = fwd_p;
        self.fwd_n = fwd_n;
    }
}

macro_rules! appender {
    ($(#[$doc:meta])* $name:ident, $codec:ty) => {
        $(#[$doc])*
        pub struct $name(Core<$codec>);

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("num_samples", &self.0.num)
                    .field("bytes", &self.0.bw.len())
                    .finish()
            }
        }

        impl $name {
            pub fn new() -> Self {
                $name(Core::new())
            }

            /// Starts a new chunk (header: unknown counter reset), reusing the buffers.
            pub fn reset(&mut self) {
                self.0.reset();
            }

            pub fn num_samples(&self) -> u16 {
                self.0.num
            }

            /// The chunk bytes so far (a valid chunk at any point).
            pub fn bytes(&self) -> &[u8] {
                self.0.bw.bytes()
            }

            pub fn into_bytes(self) -> Vec<u8> {
                self.0.bw.into_bytes()
            }

            pub fn counter_reset_header(&self) -> CounterResetHeader {
                self.0.header()
            }

            /// Sets the chunk's counter reset header. Unless it was set since the last
            /// reset, the first append sets it to `Gauge` or `CounterReset` when the
            /// sample's hint says so (as Prometheus does for a chunk it did not cut itself).
            pub fn set_counter_reset_header(&mut self, h: CounterResetHeader) {
                self.0.set_header(h);
                self.0.header_set = true;
            }

            /// The header Prometheus gives a new chunk that continues this one with `h`
            /// (its `prev.appendable(h)` when cutting for other reasons, e.g. size).
            pub fn counter_reset_header_after(&mut self, h: &Histogram) -> CounterResetHeader {
                self.0.header_after(h)
            }

            /// What [`append`](Self::append) would do with `h`, without appending: `Ok` if
            /// it goes into this chunk (in place or recoding), else its error.
            pub fn appendable(&mut self, h: &Histogram) -> Result<(), AppendError> {
                self.0.check(h)
            }

            /// Appends `h` at `h.t` (timestamps must increase; not checked here). A gauge
            /// histogram (hint `Gauge`) follows gauge rules: buckets may appear and
            /// disappear and counts go down. Others follow counter rules. A stale marker
            /// needs the hint of its series to stay in a gauge chunk.
            pub fn append(&mut self, h: &Histogram) -> Result<Appended, AppendError> {
                self.0.append(h)
            }
        }
    };
}

appender!(
    /// Builds an integer histogram chunk (encoding 2) sample by sample.
    HistogramAppender,
    IntCodec
);

appender!(
    /// Builds a float histogram chunk (encoding 3) sample by sample.
    FloatHistogramAppender,
    FloatCodec
);
