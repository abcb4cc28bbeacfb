//! The PromQL engine's storage in the querier: a Series call through the StoreAPI proxy per
//! selector, chunks decoded one series at a time, HA replicas merged by the penalty
//! algorithm when deduplicating.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use promql::{Error, Queryable, RawSample, SelectHints, SeriesSet};
use storeapi::convert::matcher_to_pb;
use storeapi::dedup::{dedup_iter, split_replicas, MergeByTime};
use storeapi::pb;
use storeapi::{SeriesStore, SeriesStream};
use tokio::runtime::Handle;
use tsdb::chunkenc::histogram::HistogramIterator;
use tsdb::chunkenc::XorIterator;
use tsdb::{Labels, Matcher};

use crate::endpoints::EndpointSet;

/// Per-request read settings.
#[derive(Clone, Debug)]
pub struct ReadSettings {
    pub dedup: bool,
    pub replica_labels: Vec<String>,
    pub strategy: pb::PartialResponseStrategy,
    /// Highest downsampling resolution to read (ms); 0 reads raw data only.
    pub max_resolution_ms: i64,
    /// Deduplicate by chaining the replicas' samples (one per timestamp) instead of by
    /// penalty (`--deduplication.func=chain`).
    pub chain_dedup: bool,
}

/// Selects through the endpoints chosen per selector. Must be used from a blocking thread
/// (the engine runs in `spawn_blocking`).
pub struct ProxyQueryable {
    pub endpoints: Arc<EndpointSet>,
    pub settings: ReadSettings,
    pub waiter: Waiter,
    /// Selections read before the engine ran (see [`crate::prefetch`]); a select takes the
    /// one it asks for.
    pub prefetched: crate::prefetch::Prefetched,
}

/// How the engine's thread waits on the stores: until the answer arrives, the query's
/// deadline passes or the query is canceled. Waits set no timers of their own (a timer
/// registered from this thread wakes the runtime's driver): whoever runs the query calls
/// [`Waiter::wake`] at the deadline and when the client goes away.
#[derive(Clone)]
pub struct Waiter {
    /// Drives the gRPC streams.
    handle: Handle,
    /// When the query must be done (the cancel token's deadline); a store that does not
    /// answer by then fails the query.
    deadline: Option<tokio::time::Instant>,
    /// Set when the client went away: waits on stores stop, and dropping the streams
    /// cancels the stores' work.
    cancel: promql::CancelToken,
    woken: Arc<tokio::sync::Notify>,
}

impl Waiter {
    /// A waiter on the current runtime, for the query of `cancel` (its deadline included).
    pub fn new(cancel: promql::CancelToken) -> Waiter {
        Waiter {
            handle: Handle::current(),
            deadline: cancel.deadline().map(tokio::time::Instant::from_std),
            cancel,
            woken: Arc::default(),
        }
    }

    /// Wakes every wait in progress, to look at the deadline and the cancel token again.
    pub fn wake(&self) {
        self.woken.notify_waiters();
    }

    /// Cancels the query and wakes its waits.
    pub fn cancel(&self) {
        self.cancel.cancel();
        self.wake();
    }

    /// Why waiting must stop, if it must.
    fn stopped(&self) -> Option<Error> {
        if self
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            Some(Error::Timeout("expression evaluation"))
        } else if self.cancel.is_canceled() {
            Some(Error::Canceled("expression evaluation"))
        } else {
            None
        }
    }

    /// Runs `fut` to completion from the engine's thread, giving up at the deadline or when
    /// the query is canceled.
    fn wait<F: std::future::Future>(&self, fut: F) -> promql::Result<F::Output> {
        self.handle.block_on(async {
            tokio::pin!(fut);
            loop {
                let woken = self.woken.notified();
                tokio::pin!(woken);
                // Registered before the check: a wake after it is not lost.
                woken.as_mut().enable();
                if let Some(e) = self.stopped() {
                    return Err(e);
                }
                tokio::select! {
                    biased;
                    out = &mut fut => return Ok(out),
                    _ = woken => {}
                }
            }
        })
    }
}

/// Functions whose input is a counter: replica switches then keep the counter monotonic.
fn is_counter_function(f: Option<&str>) -> bool {
    promql::function_table::reads_counter(f)
}

/// The aggregates of downsampled data a function reads (Thanos's choice, from the
/// engine's function table).
fn aggregates_for(func: Option<&str>) -> &'static [pb::Aggr] {
    use promql::function_table::Downsampled;
    match promql::function_table::downsampled_aggregate(func) {
        Downsampled::Min => &[pb::Aggr::Min],
        Downsampled::Max => &[pb::Aggr::Max],
        Downsampled::Count => &[pb::Aggr::Count],
        Downsampled::Sum => &[pb::Aggr::Sum],
        Downsampled::Counter => &[pb::Aggr::Counter],
        Downsampled::CountAndSum => &[pb::Aggr::Count, pb::Aggr::Sum],
    }
}

/// How the frames of one selection are read into samples.
pub(crate) struct Reading {
    dedup: bool,
    chain: bool,
    counter: bool,
    aggregates: &'static [pb::Aggr],
    range: std::ops::RangeInclusive<i64>,
}

/// One Series frame from the proxy, as the engine's selections read them.
pub(crate) type Frame = Result<pb::SeriesResponse, tonic::Status>;

impl ProxyQueryable {
    /// The Series request for a selection, and how its answer is read.
    pub(crate) fn request(
        &self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> (pb::SeriesRequest, Reading) {
        let s = &self.settings;
        let dedup = s.dedup && !s.replica_labels.is_empty();
        let aggregates = aggregates_for(hints.func.as_deref());
        let req = pb::SeriesRequest {
            min_time: hints.start,
            max_time: hints.end,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            max_resolution_window: s.max_resolution_ms,
            aggregates: aggregates.iter().map(|&a| a as i32).collect(),
            partial_response_strategy: s.strategy as i32,
            without_replica_labels: if dedup {
                s.replica_labels.clone()
            } else {
                Vec::new()
            },
            response_batch_size: storeapi::batch::DEFAULT_BATCH_SIZE,
            ..Default::default()
        };
        let reading = Reading {
            dedup,
            chain: s.chain_dedup,
            counter: is_counter_function(hints.func.as_deref()),
            aggregates,
            range: hints.start..=hints.end,
        };
        (req, reading)
    }

    /// The series set reading `ready`, then `stream` unless `ended`.
    pub(crate) fn series_set(
        &self,
        reading: Reading,
        ready: std::collections::VecDeque<Frame>,
        stream: Option<SeriesStream>,
    ) -> ProxySeriesSet {
        let ended = stream.is_none();
        ProxySeriesSet {
            waiter: self.waiter.clone(),
            stream: stream.unwrap_or_else(|| futures::stream::empty().boxed()),
            ready,
            ended,
            dedup: reading.dedup,
            chain: reading.chain,
            counter: reading.counter,
            aggregates: reading.aggregates,
            range: reading.range,
            warnings: Vec::new(),
            hists: Vec::new(),
            groups: Vec::new(),
            decoded: Vec::new(),
            chunk_ranges: Vec::new(),
            chunk_ts: Vec::new(),
        }
    }
}

impl Queryable for ProxyQueryable {
    fn select<'a>(
        &'a self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> promql::Result<Box<dyn SeriesSet + 'a>> {
        let (req, reading) = self.request(hints, matchers);
        if let Some(f) = self.prefetched.take(&req) {
            let (ready, stream) = f.map_err(Error::Storage)?;
            return Ok(Box::new(self.series_set(reading, ready, stream)));
        }
        let proxy = self.endpoints.select(hints.start, hints.end, matchers);
        let stream = self
            .waiter
            .wait(proxy.series(req))?
            .map_err(|e| Error::Storage(e.message().to_string()))?;
        Ok(Box::new(self.series_set(
            reading,
            std::collections::VecDeque::new(),
            Some(stream),
        )))
    }
}

/// Frames taken from the stream ahead of the engine stop at this many chunks (about a
/// megabyte decoded), or at 64 series.
const READY_CHUNKS: usize = 4096;

pub(crate) fn frame_chunks(frame: &Frame) -> usize {
    match frame {
        Ok(pb::SeriesResponse {
            result: Some(pb::series_response::Result::Series(s)),
        }) => s.chunks.len(),
        _ => 0,
    }
}

pub(crate) struct ProxySeriesSet {
    waiter: Waiter,
    stream: SeriesStream,
    /// Frames already received, not yet handed out.
    ready: std::collections::VecDeque<Frame>,
    /// The stream returned its end (it must not be polled again).
    ended: bool,
    dedup: bool,
    chain: bool,
    counter: bool,
    /// What downsampled chunks are read as.
    aggregates: &'static [pb::Aggr],
    /// Samples the engine may read (chunks run past it).
    range: std::ops::RangeInclusive<i64>,
    warnings: Vec<String>,
    /// Native histogram samples of the series last handed out.
    hists: Vec<promql::HPoint>,
    /// Scratch buffers, one per pseudo-replica.
    groups: Vec<Vec<(i64, f64)>>,
    /// Scratch for overlapping chunks: their samples as decoded, each one's range in it,
    /// and their timestamps.
    decoded: Vec<(i64, f64)>,
    chunk_ranges: Vec<std::ops::Range<usize>>,
    chunk_ts: Vec<i64>,
}

impl SeriesSet for ProxySeriesSet {
    fn next_series(&mut self, samples: &mut Vec<RawSample>) -> Option<promql::Result<Labels>> {
        loop {
            if self.ready.is_empty() && !self.ended {
                // Everything that has arrived at once: one wake-up of this thread per batch
                // of frames rather than per series.
                let (stream, ready, ended) = (&mut self.stream, &mut self.ready, &mut self.ended);
                let received = self.waiter.wait(async {
                    let Some(first) = stream.next().await else {
                        *ended = true;
                        return;
                    };
                    let mut chunks = frame_chunks(&first);
                    ready.push_back(first);
                    while ready.len() < 64 && chunks < READY_CHUNKS {
                        match stream.next().now_or_never() {
                            Some(Some(frame)) => {
                                chunks += frame_chunks(&frame);
                                ready.push_back(frame);
                            }
                            Some(None) => {
                                *ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                });
                if let Err(e) = received {
                    return Some(Err(e));
                }
            }
            let frame = match self.ready.pop_front() {
                None => return None,
                Some(Ok(f)) => f,
                Some(Err(e)) => return Some(Err(Error::Storage(e.message().to_string()))),
            };
            match frame.result {
                Some(pb::series_response::Result::Series(s)) => {
                    let chunks = s.chunks;
                    let labels = match storeapi::convert::labels_from_pb(&s.labels) {
                        Ok(l) => l,
                        Err(e) => return Some(Err(Error::Storage(e))),
                    };
                    if let Err(e) = self.decode(&chunks, samples) {
                        return Some(Err(Error::Storage(format!("series {labels}: {e}"))));
                    }
                    self.hists.clear();
                    if chunks.iter().any(is_histogram) {
                        let dedup = self.dedup && !self.chain;
                        if let Err(e) =
                            decode_histograms(&chunks, &self.range, dedup, &mut self.hists)
                        {
                            return Some(Err(Error::Storage(format!("series {labels}: {e}"))));
                        }
                    }
                    if samples.is_empty() && self.hists.is_empty() {
                        continue;
                    }
                    return Some(Ok(labels));
                }
                Some(pb::series_response::Result::Warning(w)) => self.warnings.push(w),
                _ => {}
            }
        }
    }

    fn take_histograms(&mut self) -> Vec<promql::HPoint> {
        std::mem::take(&mut self.hists)
    }

    fn warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// Decodes the native histogram chunks of a series into `out`, samples within `range`,
/// in time order. Overlapping chunks are split into pseudo-replicas as float chunks are;
/// several are merged by the penalty algorithm when deduplicating (without the counter
/// correction, which is for floats), by timestamp otherwise.
fn decode_histograms(
    chunks: &[pb::AggrChunk],
    range: &std::ops::RangeInclusive<i64>,
    dedup: bool,
    out: &mut Vec<promql::HPoint>,
) -> Result<(), String> {
    let hist_chunks: Vec<&pb::AggrChunk> = chunks.iter().filter(|c| is_histogram(c)).collect();
    // One replica's chunks one after another (the usual case): straight into `out`,
    // samples outside the range never copied.
    if hist_chunks
        .windows(2)
        .all(|w| w[1].min_time > w[0].max_time)
    {
        for c in hist_chunks {
            decode_histogram_chunk(c, &mut |h| {
                if range.contains(&h.t) {
                    out.push(promql::HPoint {
                        t: h.t,
                        h: std::sync::Arc::new(h.clone()),
                    });
                }
            })?;
        }
        return Ok(());
    }
    let mut decoded: Vec<promql::HPoint> = Vec::new();
    let mut chunk_ranges = Vec::new();
    for c in hist_chunks {
        let start = decoded.len();
        decode_histogram_chunk(c, &mut |h| {
            decoded.push(promql::HPoint {
                t: h.t,
                h: std::sync::Arc::new(h.clone()),
            })
        })?;
        chunk_ranges.push(start..decoded.len());
    }
    chunk_ranges.sort_by_key(|r| decoded.get(r.start).map_or(i64::MAX, |p| p.t));
    let ts: Vec<i64> = decoded.iter().map(|p| p.t).collect();
    let groups = split_replicas(&ts, &chunk_ranges);
    // Each group's samples moving forward in time, as (time, index into `decoded`).
    let replicas: Vec<Vec<(i64, f64)>> = groups
        .iter()
        .map(|members| {
            let mut r: Vec<(i64, f64)> = Vec::new();
            for &m in members {
                for i in chunk_ranges[m].clone() {
                    if r.last().is_none_or(|l| l.0 < decoded[i].t) {
                        r.push((decoded[i].t, i as f64));
                    }
                }
            }
            r
        })
        .collect();
    let picked = replicas.iter().map(|r| r.iter().copied());
    let merged: Box<dyn Iterator<Item = (i64, f64)>> = if dedup {
        dedup_iter(picked, false)
    } else {
        Box::new(MergeByTime::new(picked))
    };
    out.extend(
        merged
            .filter(|(t, _)| range.contains(t))
            .filter_map(|(_, i)| decoded.get(i as usize).cloned()),
    );
    Ok(())
}

/// Decodes one raw histogram chunk, handing each sample to `emit`.
fn decode_histogram_chunk(
    c: &pb::AggrChunk,
    emit: &mut dyn FnMut(&tsdb::chunkenc::histogram::Histogram),
) -> Result<(), String> {
    let Some(raw) = &c.raw else {
        return Ok(());
    };
    let encoding = if raw.r#type == pb::chunk::Encoding::Histogram as i32 {
        tsdb::chunkenc::Encoding::HISTOGRAM
    } else {
        tsdb::chunkenc::Encoding::FLOAT_HISTOGRAM
    };
    let corrupt = |e: &dyn std::fmt::Display| {
        format!(
            "corrupt histogram chunk [{}, {}]: {e}",
            c.min_time, c.max_time
        )
    };
    let mut it = HistogramIterator::new(encoding, &raw.data).map_err(|e| corrupt(&e))?;
    while it.next() {
        emit(it.at());
    }
    match it.err() {
        Some(e) => Err(corrupt(&e)),
        None => Ok(()),
    }
}

/// A raw chunk of native histogram samples (integer or float).
fn is_histogram(c: &pb::AggrChunk) -> bool {
    c.raw
        .as_ref()
        .is_some_and(|raw| raw.r#type != pb::chunk::Encoding::Xor as i32)
}

impl ProxySeriesSet {
    /// Decodes a series' chunks (sorted by time) into `out`. Overlapping chunks are split
    /// into pseudo-replicas (copies of one replica from several sources join it); several
    /// are merged by the penalty algorithm when deduplicating, by timestamp otherwise.
    fn decode(&mut self, chunks: &[pb::AggrChunk], out: &mut Vec<RawSample>) -> Result<(), String> {
        out.clear();
        // Downsampled counters need Thanos's reset handling across chunks.
        let counter_aggregates = self.counter && chunks.iter().any(|c| c.raw.is_none());
        let range = &self.range;
        if chunks.windows(2).all(|w| w[1].min_time > w[0].max_time) {
            let mut sink = SampleSink::new(counter_aggregates);
            for c in chunks {
                decode_chunk(c, self.aggregates, &mut |t, v| {
                    sink.push(t, v, &mut |t, v| {
                        if range.contains(&t) {
                            out.push(RawSample { t, v })
                        }
                    })
                })?;
            }
            return Ok(());
        }
        self.decoded.clear();
        self.chunk_ranges.clear();
        for c in chunks {
            let start = self.decoded.len();
            let decoded = &mut self.decoded;
            decode_chunk(c, self.aggregates, &mut |t, v| decoded.push((t, v)))?;
            self.chunk_ranges.push(start..self.decoded.len());
        }
        let decoded = &self.decoded;
        // By first sample (chunks that decode to nothing last).
        self.chunk_ranges
            .sort_by_key(|r| decoded.get(r.start).map_or(i64::MAX, |s| s.0));
        self.chunk_ts.clear();
        self.chunk_ts.extend(decoded.iter().map(|s| s.0));
        let groups = split_replicas(&self.chunk_ts, &self.chunk_ranges);
        let replica = |members: &[usize], emit: &mut dyn FnMut(i64, f64)| {
            let mut sink = SampleSink::new(counter_aggregates);
            for &i in members {
                for &(t, v) in &decoded[self.chunk_ranges[i].clone()] {
                    sink.push(t, v, &mut |t, v| emit(t, v));
                }
            }
        };
        if groups.len() <= 1 {
            // One replica: samples outside the range are of no use. (Replicas are merged
            // whole: the penalty algorithm looks at the samples around the range too.)
            if let Some(members) = groups.first() {
                replica(members, &mut |t, v| {
                    if range.contains(&t) {
                        out.push(RawSample { t, v })
                    }
                });
            }
            return Ok(());
        }
        self.groups.resize_with(groups.len(), Vec::new);
        for (buf, members) in self.groups.iter_mut().zip(&groups) {
            buf.clear();
            replica(members, &mut |t, v| buf.push((t, v)));
        }
        let replicas = self.groups[..groups.len()]
            .iter()
            .map(|g| g.iter().copied());
        let merged: Box<dyn Iterator<Item = (i64, f64)>> = if self.dedup && !self.chain {
            dedup_iter(replicas, self.counter)
        } else {
            Box::new(MergeByTime::new(replicas))
        };
        out.extend(merged.map(|(t, v)| RawSample { t, v }));
        Ok(())
    }
}

/// Takes one series' decoded samples in chunk order and passes on those that move forward
/// in time. For downsampled counters it applies Thanos's counter-reset handling: values
/// become one running total, and a sample repeating the previous timestamp (the raw value
/// that ends each counter aggregate) only tells the true last value, so a reset at the next
/// chunk's start is measured from it.
struct SampleSink {
    counter_aggregates: bool,
    last_t: i64,
    last_v: f64,
    total: f64,
}

impl SampleSink {
    fn new(counter_aggregates: bool) -> Self {
        SampleSink {
            counter_aggregates,
            last_t: i64::MIN,
            last_v: 0.0,
            total: 0.0,
        }
    }

    fn push(&mut self, t: i64, v: f64, emit: &mut impl FnMut(i64, f64)) {
        if !self.counter_aggregates {
            if t > self.last_t {
                self.last_t = t;
                emit(t, v);
            }
            return;
        }
        if v.is_nan() {
            return;
        }
        if self.last_t == i64::MIN {
            (self.last_t, self.last_v, self.total) = (t, v, v);
            emit(t, v);
        } else if t > self.last_t {
            self.total += if v >= self.last_v { v - self.last_v } else { v };
            (self.last_t, self.last_v) = (t, v);
            emit(t, self.total);
        } else if t == self.last_t {
            self.last_v = v;
        }
    }
}

/// Decodes one chunk: raw XOR data, or for downsampled data the aggregate asked for (see
/// [`aggregates_for`]), count and sum becoming their average, like Thanos.
fn decode_chunk(
    c: &pb::AggrChunk,
    aggregates: &[pb::Aggr],
    emit: &mut impl FnMut(i64, f64),
) -> Result<(), String> {
    if let Some(raw) = &c.raw {
        return decode_xor(raw, emit);
    }
    let single = match aggregates {
        [pb::Aggr::Min] => c.min.as_ref(),
        [pb::Aggr::Max] => c.max.as_ref(),
        [pb::Aggr::Count] => c.count.as_ref(),
        [pb::Aggr::Sum] => c.sum.as_ref(),
        [pb::Aggr::Counter] => c.counter.as_ref(),
        _ => None,
    };
    if let Some(chunk) = single {
        return decode_xor(chunk, emit);
    }
    match (&c.sum, &c.count) {
        (Some(sum), Some(count)) => {
            let mut sums = Vec::new();
            decode_xor(sum, &mut |t, v| sums.push((t, v)))?;
            let mut i = 0;
            decode_xor(count, &mut |t, n| {
                while i < sums.len() && sums[i].0 < t {
                    i += 1;
                }
                if i < sums.len() && sums[i].0 == t && n != 0.0 {
                    emit(t, sums[i].1 / n);
                }
            })
        }
        _ => Err("downsampled chunk without the aggregates asked for".into()),
    }
}

/// Generic over `emit` so that the per-sample work is inlined into the decoding loop.
fn decode_xor(chunk: &pb::Chunk, emit: &mut impl FnMut(i64, f64)) -> Result<(), String> {
    if chunk.r#type != pb::chunk::Encoding::Xor as i32 {
        // Native histogram chunks are decoded by `decode_histograms`.
        return Ok(());
    }
    let mut it = XorIterator::new(&chunk.data);
    while it.next() {
        let (t, v) = it.at();
        emit(t, v);
    }
    match it.err() {
        Some(e) => Err(format!("corrupt chunk: {e}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsdb::chunkenc::histogram::{FloatHistogramAppender, Histogram};

    fn hist_chunk(samples: &[(i64, f64)]) -> pb::AggrChunk {
        let mut app = FloatHistogramAppender::new();
        for &(t, count) in samples {
            let h = Histogram {
                t,
                count,
                sum: count,
                zero_count: count,
                ..Histogram::default()
            };
            app.append(&h).unwrap();
        }
        pb::AggrChunk {
            min_time: samples[0].0,
            max_time: samples[samples.len() - 1].0,
            raw: Some(pb::Chunk {
                r#type: pb::chunk::Encoding::FloatHistogram as i32,
                data: app.into_bytes().into(),
                hash: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn histogram_replicas_are_deduplicated_by_penalty() {
        // Replica a scrapes at 0, 15 s, ... with a gap from 45 s to 90 s; replica b runs 5 s
        // later and fills the gap.
        let a = hist_chunk(&[
            (0, 1.0),
            (15_000, 2.0),
            (30_000, 3.0),
            (90_000, 7.0),
            (105_000, 8.0),
        ]);
        let b: Vec<(i64, f64)> = (0..8)
            .map(|i| (5_000 + i * 15_000, 10.0 + i as f64))
            .collect();
        let b = hist_chunk(&b);
        let chunks = vec![a, b];
        let mut out = Vec::new();
        decode_histograms(&chunks, &(0..=200_000), true, &mut out).unwrap();
        let got: Vec<(i64, f64)> = out.iter().map(|p| (p.t, p.h.count)).collect();
        // The same choice of samples as the float penalty algorithm makes: a until its
        // gap, then b.
        let a_f = vec![
            (0, 1.0),
            (15_000, 2.0),
            (30_000, 3.0),
            (90_000, 7.0),
            (105_000, 8.0),
        ];
        let b_f: Vec<(i64, f64)> = (0..8)
            .map(|i| (5_000 + i * 15_000, 10.0 + i as f64))
            .collect();
        assert_eq!(got, storeapi::dedup::dedup_replicas(&[a_f, b_f], false));
        assert_eq!(
            &got[..4],
            &[(0, 1.0), (15_000, 2.0), (30_000, 3.0), (50_000, 13.0)]
        );
        // Without deduplication: every sample, merged by time.
        let mut all = Vec::new();
        decode_histograms(&chunks, &(0..=200_000), false, &mut all).unwrap();
        assert_eq!(all.len(), 13);
        // A corrupt chunk is an error, not a panic.
        let mut bad = chunks[0].clone();
        if let Some(raw) = &mut bad.raw {
            raw.data = vec![0, 9, 0].into();
        }
        assert!(decode_histograms(&[bad], &(0..=1), true, &mut Vec::new()).is_err());
    }
}
