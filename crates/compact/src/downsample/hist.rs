//! Native histogram downsampling, as Thanos does it (`downsampleHistogramBatch`,
//! `downsampleHistogramAggrBatch` and the `histogramAggregator`).
//!
//! A histogram window of an aggregate chunk holds three aggregates: count (XOR, the number of
//! raw histograms in the window), sum (a float histogram chunk, the sum of the window's
//! histograms, gauge) and counter (a float histogram chunk, the reset-corrected running total
//! of the batch at the window's end). Min and max are absent, and there are no first and last
//! raw values: at 5m to 1h the counters of consecutive chunks are joined by counter reset
//! detection instead. Each batch works at the lowest schema among its histograms; finer ones
//! are reduced to it.
//!
//! Where Prometheus's float histogram appender would cut a new chunk in the middle of a batch
//! (a zero threshold change, a gauge histogram among counters), Thanos keeps the new chunk
//! only and silently loses the windows before it; here the output chunk ends before that
//! window instead and a new one starts with it, so nothing is lost.

use tsdb::chunkenc::histogram::{
    CounterResetHint, FloatHistogramAppender, Histogram, HistogramIterator, Span,
    CUSTOM_BUCKETS_SCHEMA,
};
use tsdb::chunkenc::{Encoding, XorAppender};
use tsdb::encoding::put_uvarint;

use super::{current_window, target_chunk_count, AggrOut, FloatAggr, Sample, ASSUMED_RAW_INTERVAL};
use tsdb::histogram::{self as fh, View};

/// One histogram sample's fields; its spans and buckets live in the shared buffers of
/// [`HistSamples`] (`(start, len)` ranges).
#[derive(Clone, Copy, Debug)]
struct Meta {
    t: i64,
    hint: CounterResetHint,
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    count: f64,
    sum: f64,
    p_spans: (usize, usize),
    p_buckets: (usize, usize),
    n_spans: (usize, usize),
    n_buckets: (usize, usize),
}

/// Histogram samples of a series, stored without an allocation per sample.
#[derive(Default)]
pub(super) struct HistSamples {
    meta: Vec<Meta>,
    spans: Vec<Span>,
    buckets: Vec<f64>,
}

fn push_range<T: Copy>(v: &mut Vec<T>, src: &[T]) -> (usize, usize) {
    let start = v.len();
    v.extend_from_slice(src);
    (start, src.len())
}

impl HistSamples {
    pub fn clear(&mut self) {
        self.meta.clear();
        self.spans.clear();
        self.buckets.clear();
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    fn t(&self, i: usize) -> i64 {
        self.meta[i].t
    }

    fn push(&mut self, h: &Histogram) {
        let p_spans = push_range(&mut self.spans, &h.positive_spans);
        let n_spans = push_range(&mut self.spans, &h.negative_spans);
        let p_buckets = push_range(&mut self.buckets, &h.positive_buckets);
        let n_buckets = push_range(&mut self.buckets, &h.negative_buckets);
        self.meta.push(Meta {
            t: h.t,
            hint: h.counter_reset_hint,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count,
            count: h.count,
            sum: h.sum,
            p_spans,
            p_buckets,
            n_spans,
            n_buckets,
        });
    }

    fn get(&self, i: usize) -> View<'_> {
        let m = &self.meta[i];
        let s = |r: (usize, usize)| &self.spans[r.0..r.0 + r.1];
        let b = |r: (usize, usize)| &self.buckets[r.0..r.0 + r.1];
        View {
            hint: m.hint,
            schema: m.schema,
            zero_threshold: m.zero_threshold,
            zero_count: m.zero_count,
            count: m.count,
            sum: m.sum,
            p_spans: s(m.p_spans),
            p_buckets: b(m.p_buckets),
            n_spans: s(m.n_spans),
            n_buckets: b(m.n_buckets),
            custom_values: &[],
        }
    }
}

/// Why a histogram chunk could not be expanded.
pub(super) enum ExpandError {
    Corrupt(tsdb::Error),
    CustomBuckets,
    UnknownSchema(i32),
}

/// Appends the samples of a histogram or float histogram chunk to `out`, as float
/// histograms with the hints Prometheus's iterator gives, without stale markers and without
/// samples older than the previous kept one (starting from 0, as for XOR chunks). Schemas 9
/// to 52 are reduced to 8, as Prometheus's iterator does; custom buckets are refused.
pub(super) fn expand_histograms(
    enc: Encoding,
    data: &[u8],
    out: &mut HistSamples,
    reduced: &mut Histogram,
) -> Result<(), ExpandError> {
    let mut it = HistogramIterator::new(enc, data).map_err(ExpandError::Corrupt)?;
    let mut last_t = 0i64;
    while it.next() {
        let h = it.at();
        if h.is_stale() || h.t < last_t {
            continue;
        }
        match h.schema {
            CUSTOM_BUCKETS_SCHEMA => return Err(ExpandError::CustomBuckets),
            -9..=8 => out.push(h),
            9..=52 => {
                fh::copy_to_schema(reduced, &fh::view(h), 8);
                reduced.t = h.t;
                reduced.counter_reset_hint = h.counter_reset_hint;
                out.push(reduced);
            }
            s => return Err(ExpandError::UnknownSchema(s)),
        }
        last_t = h.t;
    }
    match it.err() {
        Some(e) => Err(ExpandError::Corrupt(e)),
        None => Ok(()),
    }
}

/// Thanos's `histogramAggregator`: per window the number of histograms and their sum; over
/// the whole batch the reset-corrected counter. All at the batch's lowest schema.
#[derive(Default)]
struct HistAggr {
    schema: i32,
    total: usize,
    count: usize,
    has_sum: bool,
    sum: Histogram,
    counter: Histogram,
    previous: Histogram,
    reduced: Histogram,
    delta: Histogram,
}

impl HistAggr {
    fn start(&mut self, schema: i32) {
        self.schema = schema;
        self.total = 0;
        self.count = 0;
        self.has_sum = false;
    }

    fn reset_window(&mut self) {
        self.count = 0;
        self.has_sum = false;
    }

    fn add(&mut self, s: View<'_>) {
        let HistAggr {
            schema,
            total,
            count,
            has_sum,
            sum,
            counter,
            previous,
            reduced,
            delta,
        } = self;
        // A finer histogram is reduced; reset detection looks at the original, so a finer
        // schema after a coarser one counts as a reset, as in Thanos.
        let h = if s.schema > *schema {
            fh::copy_to_schema(reduced, &s, *schema);
            fh::view(reduced)
        } else {
            s
        };
        if *total > 0 {
            let prev = fh::view(previous);
            if h.hint != CounterResetHint::Gauge && fh::detect_reset(&s, &prev) {
                fh::add(counter, &h);
            } else {
                fh::copy_into(delta, &h);
                fh::sub(delta, &prev);
                fh::add(counter, &fh::view(delta));
            }
        } else {
            fh::copy_into(counter, &h);
        }
        if *has_sum {
            fh::add(sum, &h);
        } else {
            fh::copy_into(sum, &h);
            *has_sum = true;
        }
        // A gauge, so that appending a smaller sum after a larger one is no counter reset.
        sum.counter_reset_hint = CounterResetHint::Gauge;
        fh::copy_into(previous, &h);
        *count += 1;
        *total += 1;
    }
}

/// The windows of one aggregate: histograms whose `t` is the window's timestamp, reusing
/// their buffers from one batch to the next.
#[derive(Default)]
struct Windows {
    items: Vec<Histogram>,
    len: usize,
}

impl Windows {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, t: i64, h: &Histogram) {
        if let Some(item) = self.items.get_mut(self.len) {
            item.copy_from(h);
        } else {
            self.items.push(h.clone());
        }
        self.items[self.len].t = t;
        self.len += 1;
    }

    fn as_slice(&self) -> &[Histogram] {
        &self.items[..self.len]
    }
}

/// Builds histogram aggregate chunks window by window: count as XOR, sum and counter as
/// float histogram chunks, min and max absent.
struct Writer {
    count: XorAppender,
    sum: FloatHistogramAppender,
    counter: FloatHistogramAppender,
    windows: usize,
    mint: i64,
    maxt: i64,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            count: XorAppender::new(),
            sum: FloatHistogramAppender::new(),
            counter: FloatHistogramAppender::new(),
            windows: 0,
            mint: i64::MAX,
            maxt: i64::MIN,
        }
    }
}

impl Writer {
    fn reset(&mut self) {
        self.count.reset();
        self.sum.reset();
        self.counter.reset();
        self.windows = 0;
        self.mint = i64::MAX;
        self.maxt = i64::MIN;
    }

    /// Appends as Thanos does (`AppendFloatHistogram(app, …)` with the appender itself as
    /// the previous one, which gives a counter chunk the "no counter reset" header).
    fn append(app: &mut FloatHistogramAppender, h: &Histogram) {
        let first = app.num_samples() == 0;
        let res = app.append(h);
        debug_assert!(res.is_ok(), "checked before: {res:?}");
        if first && res.is_ok() {
            let header = app.counter_reset_header_after(h);
            app.set_counter_reset_header(header);
        }
    }

    fn window(
        &mut self,
        t: i64,
        counter: Option<&Histogram>,
        sum: Option<&Histogram>,
        count: Option<f64>,
        out: &mut Vec<AggrOut>,
    ) {
        let cut = counter.is_some_and(|h| self.counter.appendable(h).is_err())
            || sum.is_some_and(|h| self.sum.appendable(h).is_err());
        if cut {
            self.flush(out);
        }
        if let Some(h) = counter {
            Self::append(&mut self.counter, h);
        }
        if let Some(h) = sum {
            Self::append(&mut self.sum, h);
        }
        if let Some(v) = count {
            self.count.append(t, v);
        }
        self.windows += 1;
        self.mint = self.mint.min(t);
        self.maxt = self.maxt.max(t);
    }

    /// Ends the current chunk, if it has any window.
    fn flush(&mut self, out: &mut Vec<AggrOut>) {
        if self.windows > 0 {
            let parts = [
                Some((Encoding::XOR, self.count.bytes())),
                Some((Encoding::FLOAT_HISTOGRAM, self.sum.bytes())),
                None,
                None,
                Some((Encoding::FLOAT_HISTOGRAM, self.counter.bytes())),
            ];
            out.push((self.mint, self.maxt, encode_aggr(parts)));
        }
        self.reset();
    }

    /// Writes the windows of the three aggregates (each in time order), joined by
    /// timestamp, into one or more chunks.
    fn write(
        &mut self,
        counters: &[Histogram],
        sums: &[Histogram],
        counts: &[Sample],
        out: &mut Vec<AggrOut>,
    ) {
        self.reset();
        let (mut i, mut j, mut k) = (0, 0, 0);
        loop {
            let t = [
                counters.get(i).map(|h| h.t),
                sums.get(j).map(|h| h.t),
                counts.get(k).map(|s| s.0),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(t) = t else {
                break;
            };
            let c = counters.get(i).filter(|h| h.t == t);
            let s = sums.get(j).filter(|h| h.t == t);
            let n = counts.get(k).filter(|s| s.0 == t).map(|s| s.1);
            i += usize::from(c.is_some());
            j += usize::from(s.is_some());
            k += usize::from(n.is_some());
            self.window(t, c, s, n, out);
        }
        self.flush(out);
    }
}

/// An aggregate chunk from sub-chunks given in count, sum, min, max, counter order.
fn encode_aggr(parts: [Option<(Encoding, &[u8])>; 5]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().flatten().map(|p| p.1.len() + 6).sum());
    for part in parts {
        match part {
            None => put_uvarint(&mut out, 0),
            Some((enc, data)) => {
                put_uvarint(&mut out, data.len() as u64);
                out.push(enc.0);
                out.extend_from_slice(data);
            }
        }
    }
    out
}

/// Buffers reused across the batches and parts of a series.
#[derive(Default)]
pub(super) struct HistScratch {
    batch: Vec<usize>,
    aggr: HistAggr,
    counters: Windows,
    sums: Windows,
    counts: Vec<Sample>,
    writer: Writer,
    pub(super) reduced: Histogram,
}

fn min_schema(samples: &HistSamples, idx: impl Iterator<Item = usize>) -> i32 {
    idx.map(|i| samples.meta[i].schema)
        .min()
        .unwrap_or(i32::MAX)
}

/// Thanos's `downsampleBatch` over histograms: aggregates window by window and calls `emit`
/// at each window's end with its timestamp (the last window's clamped to the last sample).
fn downsample_hist_batch(
    samples: &HistSamples,
    batch: &[usize],
    res: i64,
    aggr: &mut HistAggr,
    mut emit: impl FnMut(i64, &mut HistAggr),
) {
    let Some(&last) = batch.last() else {
        return;
    };
    let last_t = samples.t(last);
    let mut next_t = -1i64;
    for &i in batch {
        let t = samples.t(i);
        if t > next_t {
            if next_t != -1 {
                emit(next_t, aggr);
            }
            aggr.reset_window();
            next_t = current_window(t, res).min(last_t);
        }
        aggr.add(samples.get(i));
    }
    if aggr.total > 0 {
        emit(next_t, aggr);
    }
}

/// Thanos's `DownsampleRaw` for histogram samples: batches of about the target chunk size,
/// never splitting a window, each made into aggregate chunks (one unless a chunk had to be
/// cut). Samples whose sum is NaN are left out of the batches (but counted for the size).
pub(super) fn downsample_raw_histograms(
    samples: &HistSamples,
    res: i64,
    hs: &mut HistScratch,
    out: &mut Vec<AggrOut>,
) {
    let n = samples.len();
    if n == 0 {
        return;
    }
    let num_chunks =
        target_chunk_count(samples.t(0), samples.t(n - 1), ASSUMED_RAW_INTERVAL, res, n);
    let batch_size = n / num_chunks.max(1) + 1;
    let mut start = 0;
    while start < n {
        let mut j = batch_size.min(n - start);
        let window_end = current_window(samples.t(start + j - 1), res);
        while start + j < n && samples.t(start + j) <= window_end {
            j += 1;
        }
        hs.batch.clear();
        hs.batch
            .extend((start..start + j).filter(|&i| !samples.meta[i].sum.is_nan()));
        start += j;
        if hs.batch.is_empty() {
            continue;
        }
        downsample_histogram_batch(samples, res, hs, out);
    }
}

/// Thanos's `downsampleHistogramBatch` over `hs.batch` (non-empty).
fn downsample_histogram_batch(
    samples: &HistSamples,
    res: i64,
    hs: &mut HistScratch,
    out: &mut Vec<AggrOut>,
) {
    let HistScratch {
        batch,
        aggr,
        counters,
        sums,
        counts,
        writer,
        ..
    } = hs;
    let gauge = samples.meta[batch[0]].hint == CounterResetHint::Gauge;
    aggr.start(min_schema(samples, batch.iter().copied()));
    counters.clear();
    sums.clear();
    counts.clear();
    downsample_hist_batch(samples, batch, res, aggr, |t, a| {
        if gauge {
            a.counter.counter_reset_hint = CounterResetHint::Gauge;
            a.sum.counter_reset_hint = CounterResetHint::Gauge;
        }
        counters.push(t, &a.counter);
        sums.push(t, &a.sum);
        counts.push((t, a.count as f64));
    });
    writer.write(counters.as_slice(), sums.as_slice(), counts, out);
}

/// Thanos's `downsampleHistogramAggrBatch`: one part of histogram aggregate chunks
/// re-aggregated. `counters` and `sums` hold the expanded counter and sum aggregates of the
/// part, `counts` its count aggregate samples. Appends nothing when all are empty.
pub(super) fn downsample_histogram_aggr_part(
    counters: &HistSamples,
    sums: &HistSamples,
    counts: &[Sample],
    res: i64,
    hs: &mut HistScratch,
    out: &mut Vec<AggrOut>,
) {
    let HistScratch {
        batch,
        aggr,
        counters: counter_windows,
        sums: sum_windows,
        counts: count_windows,
        writer,
        ..
    } = hs;
    counter_windows.clear();
    sum_windows.clear();
    count_windows.clear();
    // The counter: the running total over the part's counter samples, per window.
    batch.clear();
    batch.extend(0..counters.len());
    aggr.start(min_schema(counters, 0..counters.len()));
    downsample_hist_batch(counters, batch, res, aggr, |t, a| {
        counter_windows.push(t, &a.counter);
    });
    // The sum: the sum of the sums, per window.
    batch.clear();
    batch.extend(0..sums.len());
    aggr.start(min_schema(sums, 0..sums.len()));
    downsample_hist_batch(sums, batch, res, aggr, |t, a| {
        sum_windows.push(t, &a.sum);
    });
    // The count: the sum of the counts, per window.
    if !counts.is_empty() {
        let mut fa = FloatAggr::default();
        super::downsample_batch(counts, res, &mut fa, |t, a| {
            count_windows.push((t, a.sum));
        });
    }
    writer.write(
        counter_windows.as_slice(),
        sum_windows.as_slice(),
        count_windows,
        out,
    );
}
