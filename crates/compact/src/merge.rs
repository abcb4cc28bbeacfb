//! Compaction proper: several local blocks merged into one new block, streaming.
//!
//! The sources' series are read in label order and merged k-way; each output series is
//! written as soon as it is complete, so memory follows the number of series (the index's
//! postings), never the samples. Within a series, chunks are taken in time order: a chunk
//! that overlaps no other and lies inside its block (no tombstone touching it) is copied
//! byte for byte; byte-identical copies of a chunk are kept once; chunks that overlap are
//! decoded, merged and re-encoded into XOR chunks of at most 120 samples. Merging is
//! Prometheus's compacting merge (one sample per timestamp) or, for HA replicas, the penalty
//! deduplication the querier uses ([`tsdb::dedup`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tsdb::block::{Block, BlockSeries, BlockWriter, SeriesSet};
use tsdb::chunkenc::{Encoding, XorAppender, XorIterator};
use tsdb::chunks::ChunkMeta;
use tsdb::labels::Labels;
use tsdb::meta::{BlockMeta, Compaction, ThanosMeta};
use tsdb::tombstones::Interval;

/// Samples per re-encoded chunk, as Prometheus's compacting merge cuts them.
const SAMPLES_PER_CHUNK: u16 = 120;

/// How the overlapping chunks of one series become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerticalMerge {
    /// Prometheus's compacting merge: all samples, one per timestamp.
    OneToOne,
    /// Thanos's `--deduplication.func=penalty`: replicas deduplicated as the querier does.
    Penalty,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("block {block}: {source}")]
    Read {
        block: String,
        #[source]
        source: tsdb::Error,
    },
    #[error("writing the compacted block: {0}")]
    Write(#[source] tsdb::Error),
    #[error("block {block}: series {series}: chunk at {offset:#x}: {msg}")]
    Chunk {
        block: String,
        series: String,
        offset: u64,
        msg: String,
    },
    #[error("series {series}: {msg}")]
    Unsupported { series: String, msg: String },
    #[error("compaction canceled")]
    Canceled,
}

/// What the new block is and where it comes from.
pub struct Output<'a> {
    pub parent: &'a Path,
    pub ulid: ulid::Ulid,
    pub compaction: Compaction,
    pub thanos: Option<ThanosMeta>,
}

/// One source block's series set and the series it offers next.
struct Source<'a> {
    block: &'a Block,
    set: SeriesSet<'a>,
    head: Option<BlockSeries>,
}

impl<'a> Source<'a> {
    fn advance(&mut self) -> Result<(), MergeError> {
        self.head = self.set.next().map_err(|e| MergeError::Read {
            block: self.block.meta().ulid.clone(),
            source: e,
        })?;
        Ok(())
    }
}

/// One chunk of the series being merged.
struct Item<'a> {
    src: usize,
    meta: ChunkMeta,
    enc: Encoding,
    data: &'a [u8],
    /// Samples must be filtered: the chunk reaches outside its block or a deletion touches it.
    trim: bool,
}

/// Merges `sources` (in plan order) into a new block under `out.parent`. `None` when nothing
/// is left (every series deleted). Checks `cancel` between series.
pub fn merge_blocks(
    sources: &[Block],
    merge: VerticalMerge,
    out: Output<'_>,
    cancel: &AtomicBool,
) -> Result<Option<BlockMeta>, MergeError> {
    let min_time = sources.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let max_time = sources.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let mut symbols = BTreeSet::new();
    for b in sources {
        let ix = b.index();
        for r in 0..ix.num_symbols() {
            let s = ix.symbol(r as u32).map_err(|e| MergeError::Read {
                block: b.meta().ulid.clone(),
                source: e,
            })?;
            if !symbols.contains(s) {
                symbols.insert(s.to_string());
            }
        }
    }
    let mut w = BlockWriter::streaming(out.parent, out.ulid, min_time, max_time, symbols)
        .map_err(MergeError::Write)?;
    w.set_compaction(out.compaction);
    if let Some(t) = out.thanos {
        w.set_thanos(t);
    }
    let mut srcs: Vec<Source> = Vec::with_capacity(sources.len());
    for b in sources {
        let set = b.all_series().map_err(|e| MergeError::Read {
            block: b.meta().ulid.clone(),
            source: e,
        })?;
        let mut s = Source {
            block: b,
            set,
            head: None,
        };
        s.advance()?;
        srcs.push(s);
    }
    let mut series_written = 0u64;
    let mut merged_here = 0u64;
    let mut scratch = Scratch::default();
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(MergeError::Canceled);
        }
        let Some(min) = srcs
            .iter()
            .filter_map(|s| s.head.as_ref())
            .map(|h| &h.labels)
            .min()
            .cloned()
        else {
            break;
        };
        let mut parts: Vec<(usize, BlockSeries)> = Vec::new();
        for (i, s) in srcs.iter_mut().enumerate() {
            if s.head.as_ref().is_some_and(|h| h.labels == min) {
                if let Some(h) = s.head.take() {
                    parts.push((i, h));
                }
                s.advance()?;
            }
        }
        if merge_series(sources, &min, &parts, merge, &mut w, &mut scratch)? {
            series_written += 1;
        }
        merged_here += 1;
        if merged_here.is_multiple_of(4096) {
            // Pages of the sources already merged are not needed again.
            for b in sources {
                b.release_pages();
            }
        }
    }
    if series_written == 0 {
        return Ok(None);
    }
    w.finish().map(Some).map_err(MergeError::Write)
}

/// Buffers reused across series.
#[derive(Default)]
struct Scratch {
    samples: Vec<(i64, f64)>,
    per_source: Vec<Vec<(i64, f64)>>,
    encoded: Vec<(i64, i64, Vec<u8>)>,
}

/// Merges one series' parts and writes it; false when nothing of it is left.
fn merge_series(
    sources: &[Block],
    labels: &Labels,
    parts: &[(usize, BlockSeries)],
    merge: VerticalMerge,
    w: &mut BlockWriter,
    scratch: &mut Scratch,
) -> Result<bool, MergeError> {
    let mut items: Vec<Item> = Vec::new();
    for (src, s) in parts {
        let block = &sources[*src];
        let (bmin, bmax) = (block.meta().min_time, block.meta().max_time - 1);
        for c in &s.chunks {
            let (enc, data) = block
                .chunks()
                .chunk(c.chunk_ref)
                .map_err(|e| MergeError::Read {
                    block: block.meta().ulid.clone(),
                    source: e,
                })?;
            let outside = c.min_time < bmin || c.max_time > bmax;
            let deleted = s
                .deleted
                .iter()
                .any(|d| d.min_time <= c.max_time && c.min_time <= d.max_time);
            if c.max_time < bmin || c.min_time > bmax {
                continue;
            }
            items.push(Item {
                src: *src,
                meta: *c,
                enc,
                data,
                trim: outside || deleted,
            });
        }
    }
    items.sort_by_key(|i| (i.meta.min_time, i.meta.max_time));
    let overlapping = items
        .windows(2)
        .any(|p| p[1].meta.min_time <= p[0].meta.max_time);
    let mut out: Vec<(i64, i64, Encoding, Vec<u8>)> = Vec::new();
    if merge == VerticalMerge::Penalty && overlapping {
        // Replicas: each source's samples whole, deduplicated as the querier does.
        let n = parts.len();
        scratch.per_source.resize_with(n, Vec::new);
        for v in &mut scratch.per_source[..n] {
            v.clear();
        }
        for it in &items {
            let k = parts
                .iter()
                .position(|(src, _)| *src == it.src)
                .unwrap_or(0);
            require_xor(labels, it)?;
            decode_into(sources, parts, labels, it, &mut scratch.per_source[k])?;
        }
        for v in &mut scratch.per_source[..n] {
            v.sort_by_key(|s| s.0);
            v.dedup_by_key(|s| s.0);
        }
        let merged = tsdb::dedup::dedup_replicas(&scratch.per_source[..n], false);
        encode_xor(&merged, &mut scratch.encoded);
        out.extend(
            scratch
                .encoded
                .drain(..)
                .map(|(a, b, d)| (a, b, Encoding::XOR, d)),
        );
    } else {
        let mut i = 0;
        while i < items.len() {
            // A cluster: chunks chained by overlap.
            let mut j = i + 1;
            let mut cluster_max = items[i].meta.max_time;
            while j < items.len() && items[j].meta.min_time <= cluster_max {
                cluster_max = cluster_max.max(items[j].meta.max_time);
                j += 1;
            }
            let cluster = &items[i..j];
            let first = &cluster[0];
            let all_same = cluster.iter().all(|c| {
                c.meta.min_time == first.meta.min_time
                    && c.meta.max_time == first.meta.max_time
                    && c.enc == first.enc
                    && c.data == first.data
            });
            let histograms = cluster
                .iter()
                .all(|c| matches!(c.enc, Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM));
            if all_same && !first.trim {
                out.push((
                    first.meta.min_time,
                    first.meta.max_time,
                    first.enc,
                    first.data.to_vec(),
                ));
            } else if histograms {
                merge_histograms(sources, parts, labels, cluster, &mut out)?;
            } else {
                scratch.samples.clear();
                for it in cluster {
                    require_xor(labels, it)?;
                    decode_into(sources, parts, labels, it, &mut scratch.samples)?;
                }
                // One sample per timestamp; among equal ones the first source's wins.
                scratch.samples.sort_by_key(|s| s.0);
                scratch.samples.dedup_by_key(|s| s.0);
                encode_xor(&scratch.samples, &mut scratch.encoded);
                out.extend(
                    scratch
                        .encoded
                        .drain(..)
                        .map(|(a, b, d)| (a, b, Encoding::XOR, d)),
                );
            }
            i = j;
        }
    }
    if out.is_empty() {
        return Ok(false);
    }
    let refs: Vec<(i64, i64, Encoding, &[u8])> = out
        .iter()
        .map(|(a, b, e, d)| (*a, *b, *e, d.as_slice()))
        .collect();
    w.add_encoded_series(labels, &refs)
        .map_err(MergeError::Write)?;
    Ok(true)
}

/// Merges overlapping native-histogram chunks: samples decoded (inside their block and
/// outside deletions), one per timestamp (the first chunk's), and appended again, integer
/// histograms staying integer unless a float one joins them; the appender cuts chunks where
/// Prometheus would (counter resets, layout changes, size).
fn merge_histograms(
    sources: &[Block],
    parts: &[(usize, BlockSeries)],
    labels: &Labels,
    cluster: &[Item],
    out: &mut Vec<(i64, i64, Encoding, Vec<u8>)>,
) -> Result<(), MergeError> {
    use tsdb::chunkenc::histogram::{
        AppendError, FloatHistogramAppender, Histogram, HistogramAppender, HistogramIterator,
    };
    let mut samples: Vec<Histogram> = Vec::new();
    for it in cluster {
        let block = &sources[it.src];
        let (bmin, bmax) = (block.meta().min_time, block.meta().max_time - 1);
        let deleted: &[Interval] = parts
            .iter()
            .find(|(s, _)| *s == it.src)
            .map_or(&[], |(_, s)| s.deleted.as_slice());
        let chunk_err = |msg: String| MergeError::Chunk {
            block: block.meta().ulid.clone(),
            series: labels.to_string(),
            offset: it.meta.chunk_ref.0,
            msg,
        };
        let mut h =
            HistogramIterator::new(it.enc, it.data).map_err(|e| chunk_err(e.to_string()))?;
        while h.next() {
            let x = h.at();
            if it.trim && (x.t < bmin || x.t > bmax || deleted.iter().any(|d| d.contains(x.t))) {
                continue;
            }
            samples.push(x.clone());
        }
        if let Some(e) = h.err() {
            return Err(chunk_err(e.to_string()));
        }
    }
    samples.sort_by_key(|h| h.t);
    samples.dedup_by_key(|h| h.t);
    let float = cluster.iter().any(|c| c.enc == Encoding::FLOAT_HISTOGRAM);
    let unsupported = |e: AppendError| MergeError::Unsupported {
        series: labels.to_string(),
        msg: format!("re-encoding merged native histograms: {e:?}"),
    };
    macro_rules! encode_with {
        ($app:ty, $enc:expr) => {{
            let mut app = <$app>::new();
            let (mut min_t, mut max_t) = (0i64, 0i64);
            for h in &samples {
                if app.num_samples() == 0 {
                    min_t = h.t;
                }
                match app.append(h) {
                    Ok(_) => {}
                    Err(AppendError::Cut { header, .. }) => {
                        out.push((min_t, max_t, $enc, app.bytes().to_vec()));
                        app.reset();
                        app.set_counter_reset_header(header);
                        min_t = h.t;
                        app.append(h).map_err(unsupported)?;
                    }
                    Err(e) => return Err(unsupported(e)),
                }
                max_t = h.t;
            }
            if app.num_samples() > 0 {
                out.push((min_t, max_t, $enc, app.bytes().to_vec()));
            }
        }};
    }
    if float {
        encode_with!(FloatHistogramAppender, Encoding::FLOAT_HISTOGRAM);
    } else {
        encode_with!(HistogramAppender, Encoding::HISTOGRAM);
    }
    Ok(())
}

fn require_xor(labels: &Labels, it: &Item) -> Result<(), MergeError> {
    if it.enc == Encoding::XOR {
        return Ok(());
    }
    Err(MergeError::Unsupported {
        series: labels.to_string(),
        msg: format!(
            "{} chunks overlapping other chunks (or cut by deletions) cannot be merged yet; only identical copies are",
            it.enc
        ),
    })
}

/// Appends the samples of one XOR chunk that lie inside its block and outside deletions.
fn decode_into(
    sources: &[Block],
    parts: &[(usize, BlockSeries)],
    labels: &Labels,
    it: &Item,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), MergeError> {
    let block = &sources[it.src];
    let (bmin, bmax) = (block.meta().min_time, block.meta().max_time - 1);
    let deleted: &[Interval] = parts
        .iter()
        .find(|(s, _)| *s == it.src)
        .map_or(&[], |(_, s)| s.deleted.as_slice());
    let mut x = XorIterator::new(it.data);
    while x.next() {
        let (t, v) = x.at();
        if it.trim && (t < bmin || t > bmax || deleted.iter().any(|d| d.contains(t))) {
            continue;
        }
        out.push((t, v));
    }
    if let Some(e) = x.err() {
        return Err(MergeError::Chunk {
            block: block.meta().ulid.clone(),
            series: labels.to_string(),
            offset: it.meta.chunk_ref.0,
            msg: e.to_string(),
        });
    }
    Ok(())
}

/// Encodes time-sorted samples into XOR chunks of at most 120 samples.
fn encode_xor(samples: &[(i64, f64)], out: &mut Vec<(i64, i64, Vec<u8>)>) {
    out.clear();
    let mut app = XorAppender::new();
    let mut min_t = 0;
    let mut max_t = 0;
    for &(t, v) in samples {
        if app.num_samples() == 0 {
            min_t = t;
        } else if app.num_samples() >= SAMPLES_PER_CHUNK {
            out.push((min_t, max_t, app.bytes().to_vec()));
            app.reset();
            min_t = t;
        }
        app.append(t, v);
        max_t = t;
    }
    if app.num_samples() > 0 {
        out.push((min_t, max_t, app.bytes().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_chunks_of_120() {
        let samples: Vec<(i64, f64)> = (0..250).map(|i| (i * 1000, i as f64)).collect();
        let mut out = Vec::new();
        encode_xor(&samples, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].0, out[0].1), (0, 119_000));
        assert_eq!((out[2].0, out[2].1), (240_000, 249_000));
        let mut back = Vec::new();
        for (_, _, d) in &out {
            tsdb::chunkenc::xor::decode_all(d, &mut back).unwrap();
        }
        assert_eq!(back, samples);
    }
}
