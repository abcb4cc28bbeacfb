//! Downsampling of one series, as Thanos's `pkg/compact/downsample` does it: raw chunks to
//! 5m aggregate chunks, and aggregate chunks to the next resolution (5m to 1h).
//!
//! An aggregate chunk (encoding `0xff`) holds five XOR sub-chunks with one sample per window,
//! in the order count, sum, min, max, counter. The timestamp of a window's sample is the
//! window's inclusive end, `t - t % res + res - 1`, except that the last window of an output
//! chunk is clamped to the timestamp of the last input sample. The counter sub-chunk also
//! starts with the first raw sample and ends with the last raw value repeated at the last
//! window's timestamp, so that [`CounterResets`] can detect counter resets across chunks.
//!
//! Native histograms (integer or float chunks) give histogram aggregate chunks: count as XOR,
//! sum and counter as float histogram chunks, min and max absent (see the `hist` module). A
//! series whose chunks switch between floats and histograms is cut into runs of one kind,
//! each downsampled on its own, as Thanos does. Histograms with custom buckets (NHCB) are
//! refused, as Thanos cannot aggregate them.
//!
//! Everything here is a pure function over the chunks of one series; reading and writing
//! blocks is the caller's business.

use std::borrow::Cow;

use tsdb::chunkenc::aggr::{self, AggrType};
use tsdb::chunkenc::{is_stale_nan, num_samples, Encoding, XorAppender, XorIterator};

mod hist;

use hist::{ExpandError, HistSamples, HistScratch};

/// One chunk as stored: (min_time, max_time, encoding, bytes). The bytes are the chunk's data
/// without the encoding byte, as `tsdb::chunks` hands them out.
pub type EncodedChunk<'a> = (i64, i64, Encoding, &'a [u8]);

/// One output aggregate chunk: (min_time, max_time, AggrChunk bytes with encoding 0xff).
pub type AggrOut = (i64, i64, Vec<u8>);

/// Raw data.
pub const RES_RAW: i64 = 0;
/// 5 minutes in milliseconds.
pub const RES_5M: i64 = 300_000;
/// 1 hour in milliseconds.
pub const RES_1H: i64 = 3_600_000;

/// The raw scrape interval Thanos assumes when it sizes output chunks.
const ASSUMED_RAW_INTERVAL: i64 = 60_000;

/// Why a series could not be downsampled. `chunk` is the index of the offending chunk in the
/// slice given to the function (for [`CounterResets`], in the list it was built from).
#[derive(Debug, thiserror::Error)]
pub enum DownsampleError {
    /// Chunk metas that are out of order or overlap (`prev.max_time >= next.min_time`).
    #[error(
        "found overlapping chunks within series: chunk {chunk} [{min_time}, {max_time}] \
         starts at or before the end of chunk {prev} (max time {prev_max_time}); chunks are \
         expected to be ordered by min time and non-overlapping"
    )]
    OverlappingChunks {
        prev: usize,
        prev_max_time: i64,
        chunk: usize,
        min_time: i64,
        max_time: i64,
    },
    /// Native histograms with custom bucket bounds (NHCB, schema -53), which Thanos cannot
    /// aggregate. The caller decides what to do with the series.
    #[error(
        "chunk {chunk}: {what} holds native histograms with custom buckets (schema -53), \
         which downsampling does not support (Thanos cannot aggregate them)"
    )]
    CustomBuckets { chunk: usize, what: &'static str },
    /// A native histogram schema Prometheus does not know.
    #[error("chunk {chunk}: {what} holds a native histogram with unknown schema {schema}")]
    UnknownSchema {
        chunk: usize,
        what: &'static str,
        schema: i32,
    },
    /// An encoding that has no business here (an aggregate chunk among raw chunks, an unknown
    /// encoding byte, a float aggregate that is not XOR, a histogram aggregate whose count
    /// is not XOR).
    #[error("chunk {chunk}: unexpected encoding {encoding} for {what}")]
    UnexpectedEncoding {
        chunk: usize,
        what: &'static str,
        encoding: Encoding,
    },
    /// Bytes that do not decode.
    #[error("chunk {chunk}: corrupt {what}: {source}")]
    Corrupt {
        chunk: usize,
        what: &'static str,
        #[source]
        source: tsdb::Error,
    },
    /// `out_res <= in_res`.
    #[error("target resolution {target} not lower than existing one {current}")]
    ResolutionNotLower { current: i64, target: i64 },
    /// A resolution that cannot be downsampled to or from.
    #[error("invalid downsampling resolution {0}")]
    InvalidResolution(i64),
}

type Result<T> = std::result::Result<T, DownsampleError>;

/// A (timestamp, value) pair.
type Sample = (i64, f64);

/// Raw chunks of one series (time order) downsampled to `res`: XOR chunks to float
/// aggregates, histogram and float histogram chunks to histogram aggregates, each run of
/// chunks of one kind on its own.
///
/// Stale markers are dropped, as are samples that go back in time within a chunk (the
/// check starts at 0 in every chunk, so negative timestamps are dropped too); other NaNs
/// (histograms with a NaN sum) are dropped from the aggregates. A series without samples
/// gives no chunks.
pub fn downsample_raw(
    chunks: &[EncodedChunk],
    res: i64,
) -> std::result::Result<Vec<AggrOut>, DownsampleError> {
    if res <= 0 {
        return Err(DownsampleError::InvalidResolution(res));
    }
    check_overlaps(chunks)?;
    for (i, c) in chunks.iter().enumerate() {
        if !matches!(
            c.2,
            Encoding::XOR | Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM
        ) {
            return Err(DownsampleError::UnexpectedEncoding {
                chunk: i,
                what: "a raw chunk",
                encoding: c.2,
            });
        }
    }
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    let mut all = Vec::new();
    let mut hists = HistSamples::default();
    let mut rest = chunks;
    let mut first = 0;
    while let Some(c) = rest.first() {
        let histogram = is_histogram(c.2);
        let n = rest
            .iter()
            .position(|c| is_histogram(c.2) != histogram)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(n);
        if histogram {
            hists.clear();
            for (i, c) in run.iter().enumerate() {
                expand_histogram_chunk(
                    first + i,
                    "histogram chunk",
                    c.2,
                    c.3,
                    &mut hists,
                    &mut scratch.hist,
                )?;
            }
            hist::downsample_raw_histograms(&hists, res, &mut scratch.hist, &mut out);
        } else {
            all.clear();
            for (i, c) in run.iter().enumerate() {
                expand_xor(c.3, &mut all).map_err(|source| DownsampleError::Corrupt {
                    chunk: first + i,
                    what: "XOR chunk",
                    source,
                })?;
            }
            downsample_raw_samples(&all, res, &mut scratch, |c| out.push(c));
        }
        first += n;
        rest = tail;
    }
    Ok(out)
}

/// Whether an encoding is one of the native histogram chunk encodings.
fn is_histogram(enc: Encoding) -> bool {
    matches!(enc, Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM)
}

/// Expands a histogram (sub-)chunk into `out`, mapping the errors to chunk `chunk`.
fn expand_histogram_chunk(
    chunk: usize,
    what: &'static str,
    enc: Encoding,
    data: &[u8],
    out: &mut HistSamples,
    hs: &mut HistScratch,
) -> Result<()> {
    hist::expand_histograms(enc, data, out, &mut hs.reduced).map_err(|e| match e {
        ExpandError::Corrupt(source) => DownsampleError::Corrupt {
            chunk,
            what,
            source,
        },
        ExpandError::CustomBuckets => DownsampleError::CustomBuckets { chunk, what },
        ExpandError::UnknownSchema(schema) => DownsampleError::UnknownSchema {
            chunk,
            what,
            schema,
        },
    })
}

/// Aggregate chunks (and any stray raw chunks, which Thanos first turns into 5m
/// aggregates) of one series at `in_res`, re-aggregated to `out_res`. Float and histogram
/// aggregate chunks are re-aggregated in runs of one kind, as Thanos does.
///
/// Output chunks follow input chunk boundaries: each is built from a run of whole input
/// chunks, so the first and last raw counter values carried by the input survive.
pub fn downsample_aggr(
    chunks: &[EncodedChunk],
    in_res: i64,
    out_res: i64,
) -> std::result::Result<Vec<AggrOut>, DownsampleError> {
    if in_res < 0 {
        return Err(DownsampleError::InvalidResolution(in_res));
    }
    if out_res <= in_res {
        return Err(DownsampleError::ResolutionNotLower {
            current: in_res,
            target: out_res,
        });
    }
    check_overlaps(chunks)?;
    // Refuse what cannot be handled before doing any work.
    let mut kinds = Vec::with_capacity(chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        match c.2 {
            Encoding::AGGR => kinds.push(check_aggr_chunk(i, c.3)?),
            Encoding::XOR | Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM => {
                kinds.push(is_histogram(c.2))
            }
            enc => {
                return Err(DownsampleError::UnexpectedEncoding {
                    chunk: i,
                    what: "a downsampled chunk",
                    encoding: enc,
                });
            }
        }
    }

    let mut scratch = Scratch::default();
    let mut fixed: Vec<Fixed> = Vec::with_capacity(chunks.len());
    let mut all = Vec::new();
    let mut hists = HistSamples::default();
    let mut converted = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        if c.2 == Encoding::AGGR {
            fixed.push(Fixed {
                chunk: i,
                min_time: c.0,
                max_time: c.1,
                histogram: kinds[i],
                data: Cow::Borrowed(c.3),
            });
            continue;
        }
        // A raw chunk in a downsampled block. Empty ones are skipped (Thanos issue #5272);
        // others become 5m aggregates first, whatever the real input resolution.
        if num_samples(c.3) == 0 {
            continue;
        }
        converted.clear();
        if is_histogram(c.2) {
            hists.clear();
            expand_histogram_chunk(
                i,
                "histogram chunk",
                c.2,
                c.3,
                &mut hists,
                &mut scratch.hist,
            )?;
            hist::downsample_raw_histograms(&hists, RES_5M, &mut scratch.hist, &mut converted);
        } else {
            all.clear();
            expand_xor(c.3, &mut all).map_err(|source| DownsampleError::Corrupt {
                chunk: i,
                what: "XOR chunk",
                source,
            })?;
            downsample_raw_samples(&all, RES_5M, &mut scratch, |c| converted.push(c));
        }
        fixed.extend(converted.drain(..).map(|(min_time, max_time, data)| Fixed {
            chunk: i,
            min_time,
            max_time,
            histogram: is_histogram(c.2),
            data: Cow::Owned(data),
        }));
    }

    let mut out = Vec::new();
    let mut rest = &fixed[..];
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .position(|c| c.histogram != first.histogram)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(n);
        let (mint, maxt) = (first.min_time, run[n - 1].max_time);
        let count: usize = run
            .iter()
            .map(|c| aggr::num_samples(&c.data) as usize)
            .sum();
        let num_chunks = target_chunk_count(mint, maxt, in_res, out_res, count);
        downsample_aggr_loop(run, out_res, num_chunks, &mut scratch, &mut all, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

/// Cuts the chunks (all of one kind) into runs of `len / num_chunks` whole chunks (and a
/// shorter last run), one output chunk each (histogram runs may give more: see the `hist`
/// module).
fn downsample_aggr_loop(
    fixed: &[Fixed],
    res: i64,
    num_chunks: usize,
    scratch: &mut Scratch,
    buf: &mut Vec<Sample>,
    out: &mut Vec<AggrOut>,
) -> Result<()> {
    // Thanos does not floor this, and loops forever when it is 0 (more target chunks than
    // input chunks).
    let batch_size = (fixed.len() / num_chunks.max(1)).max(1);
    for part in fixed.chunks(batch_size) {
        if part[0].histogram {
            downsample_histogram_aggr_part(part, res, scratch, buf, out)?;
        } else if let Some(c) = downsample_aggr_part(part, res, scratch, buf)? {
            out.push(c);
        }
    }
    Ok(())
}

/// One part of histogram aggregate chunks re-aggregated (Thanos's
/// `downsampleHistogramAggrBatch`): counter and sum as histograms, count as floats.
fn downsample_histogram_aggr_part(
    part: &[Fixed],
    res: i64,
    scratch: &mut Scratch,
    buf: &mut Vec<Sample>,
    out: &mut Vec<AggrOut>,
) -> Result<()> {
    let Scratch {
        hist,
        hist_counters,
        hist_sums,
        ..
    } = scratch;
    hist_counters.clear();
    hist_sums.clear();
    buf.clear();
    for c in part {
        for (at, samples) in [
            (AggrType::Counter, &mut *hist_counters),
            (AggrType::Sum, &mut *hist_sums),
        ] {
            if let Some((enc, sub)) = hist_sub_chunk(c.chunk, &c.data, at)? {
                expand_histogram_chunk(c.chunk, AGGR_WHAT[at as usize], enc, sub, samples, hist)?;
            }
        }
        if let Some(sub) = hist_sub_chunk(c.chunk, &c.data, AggrType::Count)? {
            expand_xor(sub.1, buf).map_err(|source| DownsampleError::Corrupt {
                chunk: c.chunk,
                what: AGGR_WHAT[AggrType::Count as usize],
                source,
            })?;
        }
    }
    hist::downsample_histogram_aggr_part(hist_counters, hist_sums, buf, res, hist, out);
    Ok(())
}

/// An input chunk of [`downsample_aggr`] after stray raw chunks were converted.
struct Fixed<'a> {
    /// Index of the input chunk it came from.
    chunk: usize,
    min_time: i64,
    max_time: i64,
    /// A histogram aggregate chunk (its counter is a histogram chunk).
    histogram: bool,
    data: Cow<'a, [u8]>,
}

fn check_overlaps(chunks: &[EncodedChunk]) -> Result<()> {
    for (i, w) in chunks.windows(2).enumerate() {
        if w[0].1 >= w[1].0 {
            return Err(DownsampleError::OverlappingChunks {
                prev: i,
                prev_max_time: w[0].1,
                chunk: i + 1,
                min_time: w[1].0,
                max_time: w[1].1,
            });
        }
    }
    Ok(())
}

const AGGR_WHAT: [&str; 5] = [
    "the count aggregate",
    "the sum aggregate",
    "the min aggregate",
    "the max aggregate",
    "the counter aggregate",
];

/// Checks an aggregate chunk and tells its kind: a histogram aggregate (true) when its
/// counter is a histogram chunk, as Thanos decides. A float aggregate must have XOR
/// sub-chunks only; a histogram aggregate an XOR count and histogram sum and counter (its
/// min and max are not read).
fn check_aggr_chunk(chunk: usize, data: &[u8]) -> Result<bool> {
    let counter =
        aggr::get(data, AggrType::Counter).map_err(|source| DownsampleError::Corrupt {
            chunk,
            what: "aggregate chunk",
            source,
        })?;
    if counter.is_some_and(|(enc, _)| is_histogram(enc)) {
        hist_sub_chunk(chunk, data, AggrType::Count)?;
        hist_sub_chunk(chunk, data, AggrType::Sum)?;
        return Ok(true);
    }
    for at in AggrType::ALL {
        sub_chunk(chunk, data, at)?;
    }
    Ok(false)
}

/// The XOR sub-chunk `at` of a float aggregate chunk, `None` when absent.
///
/// Unlike Thanos, an absent aggregate at the very end of the chunk is reported as absent
/// rather than as "invalid size".
fn sub_chunk(chunk: usize, data: &[u8], at: AggrType) -> Result<Option<&[u8]>> {
    match aggr::get(data, at) {
        Ok(None) => Ok(None),
        Ok(Some((Encoding::XOR, sub))) => Ok(Some(sub)),
        Ok(Some((enc, _))) => Err(DownsampleError::UnexpectedEncoding {
            chunk,
            what: AGGR_WHAT[at as usize],
            encoding: enc,
        }),
        Err(source) => Err(DownsampleError::Corrupt {
            chunk,
            what: "aggregate chunk",
            source,
        }),
    }
}

/// Sub-chunk `at` of a histogram aggregate chunk, `None` when absent: the count must be
/// XOR, the sum and counter histogram or float histogram chunks.
fn hist_sub_chunk(chunk: usize, data: &[u8], at: AggrType) -> Result<Option<(Encoding, &[u8])>> {
    match aggr::get(data, at) {
        Ok(None) => Ok(None),
        Ok(Some((enc, sub))) => {
            let ok = match at {
                AggrType::Count => enc == Encoding::XOR,
                _ => is_histogram(enc),
            };
            if ok {
                Ok(Some((enc, sub)))
            } else {
                Err(DownsampleError::UnexpectedEncoding {
                    chunk,
                    what: AGGR_WHAT[at as usize],
                    encoding: enc,
                })
            }
        }
        Err(source) => Err(DownsampleError::Corrupt {
            chunk,
            what: "aggregate chunk",
            source,
        }),
    }
}

/// Appends the samples of an XOR chunk to `out`, without stale markers and without samples
/// older than the previous kept one (starting from 0, so negative timestamps are dropped).
/// Equal timestamps are kept: the counter aggregate's last-value marker has one.
fn expand_xor(data: &[u8], out: &mut Vec<Sample>) -> std::result::Result<(), tsdb::Error> {
    let mut it = XorIterator::new(data);
    let mut last_t = 0i64;
    while it.next() {
        let (t, v) = it.at();
        if is_stale_nan(v) {
            continue;
        }
        if t >= last_t {
            out.push((t, v));
            last_t = t;
        }
    }
    match it.err() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The inclusive end of the aligned window `t` falls into (Go's truncating `%`, wrapping).
#[inline]
fn current_window(t: i64, res: i64) -> i64 {
    t.wrapping_sub(t % res).wrapping_add(res).wrapping_sub(1)
}

/// Go's `int(f)` on amd64: NaN and out-of-range values give the minimum int64.
fn go_float_to_int(f: f64) -> i64 {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_POW_63..TWO_POW_63).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// How many output chunks a series should give: the expected number of output samples
/// (the range in output windows, scaled by how full the range is at `in_res`), split so that
/// each chunk gets at most 140 on average.
fn target_chunk_count(mint: i64, maxt: i64, in_res: i64, out_res: i64, count: usize) -> usize {
    let span = maxt.wrapping_sub(mint);
    let max_samples = (span / out_res) as f64;
    let mut fullness = count as f64 / (span as f64 / in_res as f64);
    if fullness > 1.0 {
        fullness = 1.0;
    }
    let exp = go_float_to_int(max_samples * fullness).wrapping_add(1);
    // The smallest x >= 1 with exp / x <= 140 (integer division).
    if exp <= 140 {
        1
    } else {
        (exp / 141 + 1) as usize
    }
}

/// Thanos's float aggregator: per-window count, sum, min and max, and a reset-corrected
/// counter that runs over the whole batch.
#[derive(Default)]
struct FloatAggr {
    total: usize,
    count: usize,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
    last: f64,
}

impl FloatAggr {
    #[inline]
    fn reset(&mut self) {
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::MAX;
        self.max = -f64::MAX;
    }

    #[inline]
    fn add(&mut self, v: f64) {
        if self.total > 0 {
            if v < self.last {
                self.counter += v;
            } else {
                self.counter += v - self.last;
            }
        } else {
            self.counter = v;
        }
        self.last = v;
        self.sum += v;
        self.count += 1;
        self.total += 1;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }
}

/// Aggregates `data` (non-empty) window by window, calling `emit` at the end of each window
/// with the window's timestamp: its inclusive end, or the timestamp of the last sample of
/// `data` for the last window. Returns the last window's timestamp.
fn downsample_batch(
    data: &[Sample],
    res: i64,
    aggr: &mut FloatAggr,
    mut emit: impl FnMut(i64, &FloatAggr),
) -> i64 {
    let last_t = data[data.len() - 1].0;
    let mut next_t = -1i64;
    for &(t, v) in data {
        if t > next_t {
            if next_t != -1 {
                emit(next_t, aggr);
            }
            aggr.reset();
            next_t = current_window(t, res).min(last_t);
        }
        aggr.add(v);
    }
    if aggr.total > 0 {
        emit(next_t, aggr);
    }
    next_t
}

const COUNT: usize = AggrType::Count as usize;
const SUM: usize = AggrType::Sum as usize;
const MIN: usize = AggrType::Min as usize;
const MAX: usize = AggrType::Max as usize;
const COUNTER: usize = AggrType::Counter as usize;

/// Builds one aggregate chunk; reused from one output chunk to the next.
struct AggrBuilder {
    apps: [XorAppender; 5],
    present: [bool; 5],
    mint: i64,
    maxt: i64,
}

impl Default for AggrBuilder {
    fn default() -> Self {
        AggrBuilder {
            apps: std::array::from_fn(|_| XorAppender::new()),
            present: [false; 5],
            mint: i64::MAX,
            maxt: i64::MIN,
        }
    }
}

impl AggrBuilder {
    fn reset(&mut self) {
        for app in &mut self.apps {
            app.reset();
        }
        self.present = [false; 5];
        self.mint = i64::MAX;
        self.maxt = i64::MIN;
    }

    #[inline]
    fn observe(&mut self, t: i64) {
        self.mint = self.mint.min(t);
        self.maxt = self.maxt.max(t);
    }

    fn finish(&self) -> AggrOut {
        let parts: [Option<&[u8]>; 5] =
            std::array::from_fn(|i| self.present[i].then(|| self.apps[i].bytes()));
        (self.mint, self.maxt, aggr::encode(parts))
    }
}

/// Buffers reused across the output chunks of a series.
#[derive(Default)]
struct Scratch {
    builder: AggrBuilder,
    batch: Vec<Sample>,
    hist: HistScratch,
    hist_counters: HistSamples,
    hist_sums: HistSamples,
}

/// Thanos's `DownsampleRaw`: cuts the samples into batches of about the target chunk size
/// (never splitting a window) and turns each batch into one aggregate chunk.
fn downsample_raw_samples(
    data: &[Sample],
    res: i64,
    scratch: &mut Scratch,
    push: impl FnMut(AggrOut),
) {
    let (Some(first), Some(last)) = (data.first(), data.last()) else {
        return;
    };
    // NaNs count here, although they are dropped from the batches.
    let num_chunks = target_chunk_count(first.0, last.0, ASSUMED_RAW_INTERVAL, res, data.len());
    downsample_raw_loop(data, res, num_chunks, scratch, push);
}

/// The batching of [`downsample_raw_samples`] for a given number of chunks (`>= 1`).
fn downsample_raw_loop(
    data: &[Sample],
    res: i64,
    num_chunks: usize,
    scratch: &mut Scratch,
    mut push: impl FnMut(AggrOut),
) {
    let batch_size = data.len() / num_chunks.max(1) + 1;
    let mut rest = data;
    while !rest.is_empty() {
        let mut j = batch_size.min(rest.len());
        let window_end = current_window(rest[j - 1].0, res);
        while j < rest.len() && rest[j].0 <= window_end {
            j += 1;
        }
        scratch.batch.clear();
        scratch
            .batch
            .extend(rest[..j].iter().filter(|s| !s.1.is_nan()));
        rest = &rest[j..];
        if scratch.batch.is_empty() {
            continue;
        }
        push(downsample_float_batch(
            &scratch.batch,
            res,
            &mut scratch.builder,
        ));
    }
}

/// One aggregate chunk from a batch of raw samples (no NaNs, non-empty).
fn downsample_float_batch(batch: &[Sample], res: i64, b: &mut AggrBuilder) -> AggrOut {
    b.reset();
    b.present = [true; 5];
    // The first raw value, for CounterResets.
    b.apps[COUNTER].append(batch[0].0, batch[0].1);
    let mut aggr = FloatAggr::default();
    let last_t = downsample_batch(batch, res, &mut aggr, |t, a| {
        b.observe(t);
        b.apps[SUM].append(t, a.sum);
        b.apps[MIN].append(t, a.min);
        b.apps[MAX].append(t, a.max);
        b.apps[COUNT].append(t, a.count as f64);
        b.apps[COUNTER].append(t, a.counter);
    });
    // The last raw value at the last window's timestamp, for CounterResets.
    b.apps[COUNTER].append(last_t, batch[batch.len() - 1].1);
    b.finish()
}

/// One output chunk from a run of whole aggregate chunks (Thanos's `downsampleFloatAggrBatch`).
/// `None` when the run holds no sample at all.
fn downsample_aggr_part(
    part: &[Fixed],
    res: i64,
    scratch: &mut Scratch,
    buf: &mut Vec<Sample>,
) -> Result<Option<AggrOut>> {
    let b = &mut scratch.builder;
    b.reset();

    // count (a sum of counts), sum, min and max.
    for at in [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max] {
        buf.clear();
        for c in part {
            if let Some(sub) = sub_chunk(c.chunk, &c.data, at)? {
                expand_xor(sub, buf).map_err(|source| DownsampleError::Corrupt {
                    chunk: c.chunk,
                    what: AGGR_WHAT[at as usize],
                    source,
                })?;
            }
        }
        if buf.is_empty() {
            // Thanos reports the range (0, 0) here, which drags the chunk's MinTime to 0;
            // an absent aggregate simply does not count towards the range.
            continue;
        }
        let i = at as usize;
        b.present[i] = true;
        let mut aggr = FloatAggr::default();
        downsample_batch(buf, res, &mut aggr, |t, a| {
            b.observe(t);
            let v = match at {
                AggrType::Min => a.min,
                AggrType::Max => a.max,
                _ => a.sum,
            };
            b.apps[i].append(t, v);
        });
    }

    // counter: the reset-corrected series, re-aggregated, between the first and last raw
    // values.
    let mut subs = Vec::with_capacity(part.len());
    for c in part {
        if let Some(sub) = sub_chunk(c.chunk, &c.data, AggrType::Counter)? {
            subs.push((c.chunk, sub));
        }
    }
    let mut it = CounterResets::with_indices(subs);
    buf.clear();
    let mut last_t = 0i64;
    while it.next() {
        let (t, v) = it.at();
        if is_stale_nan(v) {
            continue;
        }
        if t >= last_t {
            buf.push((t, v));
            last_t = t;
        }
    }
    if let Some(e) = it.take_err() {
        return Err(e);
    }
    if let Some(&(t0, v0)) = buf.first() {
        b.present[COUNTER] = true;
        b.apps[COUNTER].append(t0, v0);
        let mut aggr = FloatAggr::default();
        let last_t = downsample_batch(buf, res, &mut aggr, |t, a| {
            b.observe(t);
            b.apps[COUNTER].append(t, a.counter);
        });
        b.apps[COUNTER].append(last_t, it.last_raw());
    }

    if !b.present.iter().any(|&p| p) {
        return Ok(None);
    }
    Ok(Some(b.finish()))
}

/// Thanos's `ApplyCounterResetsSeriesIterator` over XOR chunks of a counter (raw chunks, or
/// counter aggregates that carry their first raw value first and their last raw value at a
/// repeated timestamp): a monotonic series of the total increase, reset-corrected, starting
/// at the first value.
///
/// ```text
/// first sample:          total = v
/// t > last t, v >= last: total += v - last      (then last = v)
/// t > last t, v <  last: total += v  (a reset)  (then last = v)
/// t == last t:           last = v, nothing emitted (the true last raw value)
/// t <  last t:           ignored (overlapping chunks)
/// ```
/// NaNs (stale markers included) are skipped. After a chunk ends, the series never goes
/// back to or before the last emitted timestamp.
///
/// Pull samples with [`next`](Self::next) and read them with [`at`](Self::at). A corrupt
/// chunk ends the iteration, with the error in [`err`](Self::err).
pub struct CounterResets<'a> {
    chunks: Vec<(usize, &'a [u8])>,
    i: usize,
    it: XorIterator<'a>,
    total: u64,
    last_t: i64,
    last_v: f64,
    total_v: f64,
    /// Whether the iterator is on a sample.
    valid: bool,
    /// After a chunk ended: an emitted sample must be at or after this timestamp (Go's
    /// `Seek(lastT+1)`, which matters only for the very first sample).
    floor: Option<i64>,
    err: Option<DownsampleError>,
}

impl<'a> CounterResets<'a> {
    /// Over XOR chunks (their bytes after the encoding byte), in time order.
    pub fn new<I: IntoIterator<Item = &'a [u8]>>(chunks: I) -> Self {
        Self::with_indices(chunks.into_iter().enumerate().collect())
    }

    /// Over the counter aggregates of aggregate chunks (encoding 0xff), in time order;
    /// chunks without a counter aggregate are skipped.
    pub fn from_aggr_chunks(chunks: &[&'a [u8]]) -> std::result::Result<Self, DownsampleError> {
        let mut subs = Vec::with_capacity(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            if let Some(sub) = sub_chunk(i, c, AggrType::Counter)? {
                subs.push((i, sub));
            }
        }
        Ok(Self::with_indices(subs))
    }

    fn with_indices(chunks: Vec<(usize, &'a [u8])>) -> Self {
        const EMPTY: &[u8] = &[0, 0];
        let it = XorIterator::new(chunks.first().map_or(EMPTY, |c| c.1));
        CounterResets {
            chunks,
            i: 0,
            it,
            total: 0,
            last_t: 0,
            last_v: 0.0,
            total_v: 0.0,
            valid: false,
            floor: None,
            err: None,
        }
    }

    /// Advances to the next sample; false at the end or on a corrupt chunk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bool {
        loop {
            if self.i >= self.chunks.len() {
                self.valid = false;
                return false;
            }
            if !self.it.next() {
                if let Some(source) = self.it.err() {
                    self.err = Some(DownsampleError::Corrupt {
                        chunk: self.chunks[self.i].0,
                        what: "counter chunk",
                        source,
                    });
                    self.i = self.chunks.len();
                    self.valid = false;
                    return false;
                }
                self.i += 1;
                if let Some(&(_, data)) = self.chunks.get(self.i) {
                    self.it.reset(data);
                }
                let floor = self.last_t.wrapping_add(1);
                self.floor = Some(self.floor.map_or(floor, |f| f.max(floor)));
                continue;
            }
            let (t, v) = self.it.at();
            if v.is_nan() {
                continue;
            }
            if self.total == 0 {
                self.total_v = v;
            } else if t > self.last_t {
                if v >= self.last_v {
                    self.total_v += v - self.last_v;
                } else {
                    self.total_v += v;
                }
            } else {
                if t == self.last_t {
                    // The true last raw value of an aggregate chunk: compared against the
                    // next chunk's first raw value.
                    self.last_v = v;
                }
                continue;
            }
            self.total += 1;
            self.last_t = t;
            self.last_v = v;
            if let Some(f) = self.floor {
                if t < f {
                    continue;
                }
                self.floor = None;
            }
            self.valid = true;
            return true;
        }
    }

    /// Advances to the first sample at or after `t` (iterating, so no reset is missed);
    /// false if there is none. Stays put when the current sample already qualifies.
    pub fn seek(&mut self, t: i64) -> bool {
        loop {
            if self.last_t >= t {
                return self.valid;
            }
            if !self.next() {
                return false;
            }
        }
    }

    /// The current sample: its timestamp and the reset-corrected total.
    #[inline]
    pub fn at(&self) -> (i64, f64) {
        (self.last_t, self.total_v)
    }

    /// The last raw value seen: after the iteration, the true last value of the series.
    #[inline]
    pub fn last_raw(&self) -> f64 {
        self.last_v
    }

    /// The error that ended the iteration early, if any.
    pub fn err(&self) -> Option<&DownsampleError> {
        self.err.as_ref()
    }

    /// Takes the error that ended the iteration early, if any.
    pub fn take_err(&mut self) -> Option<DownsampleError> {
        self.err.take()
    }
}

#[cfg(test)]
mod hist_testdata;
#[cfg(test)]
mod hist_tests;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;
