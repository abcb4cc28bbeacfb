//! Writes a complete block from series given in label order.
//!
//! Chunks stream into segment files as series arrive; the index, tombstones and meta.json
//! are written at [`BlockWriter::finish`], all inside `<ULID>.tmp-for-creation`, which is
//! renamed to `<ULID>` only when everything is on disk.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::chunkenc::{Encoding, XorAppender};
use crate::chunks::{sync_dir, ChunkMeta, ChunkWriter};
use crate::error::{Error, Result};
use crate::index::IndexWriter;
use crate::labels::Labels;
use crate::meta::{BlockMeta, ThanosMeta};
use crate::tombstones::Tombstones;

pub const DEFAULT_BLOCK_DURATION: i64 = 2 * 60 * 60 * 1000;
/// Prometheus aims for this many samples per chunk.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Cuts a series' samples into XOR chunks exactly as Prometheus 2.42's head does: a chunk
/// ends at the next multiple of `chunk_range`, at an end time predicted after 30 samples so
/// that the remaining chunks of the range are equally full (which can exceed 120 samples when
/// a series starts mid-range), or at 240 samples. [`ChunkCutter::with_max_samples`] lowers
/// the hard limit, e.g. to 120.
pub struct ChunkCutter {
    chunk_range: i64,
    max_samples: u16,
    app: XorAppender,
    min_t: i64,
    max_t: i64,
    next_at: i64,
}

impl ChunkCutter {
    pub fn new(chunk_range: i64) -> Self {
        ChunkCutter {
            chunk_range: chunk_range.max(1),
            max_samples: 2 * SAMPLES_PER_CHUNK,
            app: XorAppender::new(),
            min_t: 0,
            max_t: i64::MIN,
            next_at: i64::MIN,
        }
    }

    /// Never lets a chunk hold more than `max` samples (at least 1).
    pub fn with_max_samples(mut self, max: u16) -> Self {
        self.max_samples = max.max(1);
        self
    }

    fn range_end(&self, t: i64) -> i64 {
        // Go's integer division truncates toward zero, as Rust's does.
        (t / self.chunk_range) * self.chunk_range + self.chunk_range
    }

    /// Adds a sample; `emit(min_t, max_t, bytes)` receives every chunk that is complete.
    pub fn push(
        &mut self,
        t: i64,
        v: f64,
        emit: &mut impl FnMut(i64, i64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let n = self.app.num_samples();
        if n == 0 {
            self.min_t = t;
            self.next_at = self.range_end(t);
        } else {
            if n == SAMPLES_PER_CHUNK / 4 {
                self.next_at = compute_chunk_end_time(self.min_t, self.max_t, self.next_at);
            }
            if t >= self.next_at || n >= self.max_samples {
                self.flush(emit)?;
                self.min_t = t;
                self.next_at = self.range_end(t);
            }
        }
        self.app.append(t, v);
        self.max_t = t;
        Ok(())
    }

    /// Emits the chunk in progress, if any.
    pub fn flush(&mut self, emit: &mut impl FnMut(i64, i64, &[u8]) -> Result<()>) -> Result<()> {
        if self.app.num_samples() > 0 {
            emit(self.min_t, self.max_t, self.app.bytes())?;
            self.app.reset();
        }
        Ok(())
    }
}

fn compute_chunk_end_time(start: i64, cur: i64, max: i64) -> i64 {
    let n = (max - start) / ((cur - start + 1) * 4);
    if n <= 1 {
        return max;
    }
    start + (max - start) / n
}

pub struct BlockWriter {
    parent: PathBuf,
    ulid: ulid::Ulid,
    tmp: PathBuf,
    min_time: i64,
    max_time: i64,
    chunks: Option<ChunkWriter>,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    symbols: HashSet<String>,
    cutter: ChunkCutter,
    num_samples: u64,
    num_chunks: u64,
    thanos: Option<ThanosMeta>,
    tombstones: Tombstones,
    /// Streaming mode: the index is written as series arrive (symbols were given upfront),
    /// so memory does not grow with the series' chunks.
    index: Option<IndexWriter>,
    streamed_series: u64,
    last_streamed: Option<Labels>,
    /// Float and histogram samples, counted apart as newer Prometheus does (streaming mode).
    num_float_samples: u64,
    num_histogram_samples: u64,
    /// Replaces the level-1 compaction section of a new block (compactor output).
    compaction: Option<crate::meta::Compaction>,
}

impl BlockWriter {
    /// Starts a block covering `[min_time, max_time)` under `parent`.
    pub fn new(parent: &Path, min_time: i64, max_time: i64) -> Result<Self> {
        Self::with_ulid(parent, ulid::Ulid::new(), min_time, max_time)
    }

    pub fn with_ulid(
        parent: &Path,
        ulid: ulid::Ulid,
        min_time: i64,
        max_time: i64,
    ) -> Result<Self> {
        if max_time <= min_time {
            return Err(Error::InvalidInput(format!(
                "block time range [{min_time}, {max_time}) is empty"
            )));
        }
        let tmp = parent.join(format!("{ulid}.tmp-for-creation"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create dir", &tmp, e))?;
        let chunks = ChunkWriter::new(&tmp.join(CHUNKS_DIRNAME))?;
        Ok(BlockWriter {
            parent: parent.to_path_buf(),
            ulid,
            tmp,
            min_time,
            max_time,
            chunks: Some(chunks),
            series: Vec::new(),
            symbols: HashSet::new(),
            cutter: ChunkCutter::new(DEFAULT_BLOCK_DURATION),
            num_samples: 0,
            num_chunks: 0,
            thanos: None,
            tombstones: Tombstones::default(),
            index: None,
            streamed_series: 0,
            last_streamed: None,
            num_float_samples: 0,
            num_histogram_samples: 0,
            compaction: None,
        })
    }

    /// A writer that streams: every label name and value of the series to come is in
    /// `symbols`, so each series goes to the index as it is added and only the postings stay
    /// in memory. Used by compaction, whose symbols are the union of its sources'.
    pub fn streaming(
        parent: &Path,
        ulid: ulid::Ulid,
        min_time: i64,
        max_time: i64,
        symbols: impl IntoIterator<Item = String>,
    ) -> Result<Self> {
        let mut w = Self::with_ulid(parent, ulid, min_time, max_time)?;
        w.index = Some(IndexWriter::create(&w.tmp.join(INDEX_FILENAME), symbols)?);
        Ok(w)
    }

    /// Records a finished series: straight into the index when streaming, else kept for
    /// [`finish`](Self::finish).
    fn push_series(&mut self, labels: &Labels, metas: Vec<ChunkMeta>) -> Result<()> {
        match &mut self.index {
            Some(iw) => {
                iw.add_series(labels, &metas)?;
                self.streamed_series += 1;
                self.last_streamed = Some(labels.clone());
            }
            None => {
                self.add_symbols(labels);
                self.series.push((labels.clone(), metas));
            }
        }
        Ok(())
    }

    /// Sets the range chunks are aligned to (Prometheus's head chunk range; default 2h).
    pub fn set_chunk_range(&mut self, range: i64) {
        self.cutter = ChunkCutter::new(range);
    }

    /// Replaces the chunk cutting policy (range and sample limit).
    pub fn set_chunk_cutter(&mut self, cutter: ChunkCutter) {
        self.cutter = cutter;
    }

    /// Sets the compaction section (level, sources, parents) of the block's meta.json.
    pub fn set_compaction(&mut self, compaction: crate::meta::Compaction) {
        self.compaction = Some(compaction);
    }

    /// Adds a Thanos section to the block's meta.json.
    pub fn set_thanos(&mut self, thanos: ThanosMeta) {
        self.thanos = Some(thanos);
    }

    pub fn ulid(&self) -> ulid::Ulid {
        self.ulid
    }

    fn check_order(&self, labels: &Labels) -> Result<()> {
        if labels.is_empty() {
            return Err(Error::InvalidInput("series with an empty label set".into()));
        }
        let prev = self
            .series
            .last()
            .map(|(l, _)| l)
            .or(self.last_streamed.as_ref());
        if let Some(prev) = prev {
            if prev >= labels {
                return Err(Error::InvalidInput(format!(
                    "series {labels} is not after {prev}: series must be added in label order, once each"
                )));
            }
        }
        Ok(())
    }

    fn add_symbols(&mut self, labels: &Labels) {
        for l in labels {
            for s in [&l.name, &l.value] {
                if !self.symbols.contains(s.as_str()) {
                    self.symbols.insert(s.clone());
                }
            }
        }
    }

    /// Adds a series with its samples, which must have strictly increasing timestamps inside
    /// the block's range. A series without samples is skipped.
    pub fn add_series(
        &mut self,
        labels: &Labels,
        samples: impl IntoIterator<Item = (i64, f64)>,
    ) -> Result<()> {
        self.check_order(labels)?;
        let (min_time, max_time) = (self.min_time, self.max_time);
        let mut metas = Vec::new();
        let chunks = self
            .chunks
            .as_mut()
            .ok_or_else(|| Error::InvalidInput("block writer closed".into()))?;
        let mut num_chunks = 0u64;
        let mut emit = |mint: i64, maxt: i64, bytes: &[u8]| -> Result<()> {
            let chunk_ref = chunks.write_chunk(Encoding::XOR, bytes)?;
            metas.push(ChunkMeta {
                min_time: mint,
                max_time: maxt,
                chunk_ref,
            });
            num_chunks += 1;
            Ok(())
        };
        let mut last_t = i64::MIN;
        let mut n = 0u64;
        for (t, v) in samples {
            if t < min_time || t >= max_time {
                return Err(Error::InvalidInput(format!(
                    "series {labels}: sample at {t} outside block range [{min_time}, {max_time})"
                )));
            }
            if n > 0 && t <= last_t {
                return Err(Error::InvalidInput(format!(
                    "series {labels}: sample at {t} not after the previous one at {last_t}"
                )));
            }
            self.cutter.push(t, v, &mut emit)?;
            last_t = t;
            n += 1;
        }
        self.cutter.flush(&mut emit)?;
        if metas.is_empty() {
            return Ok(());
        }
        self.num_samples += n;
        self.num_chunks += num_chunks;
        self.push_series(labels, metas)
    }

    /// Adds a series from chunks already encoded: `(min_time, max_time, encoding, bytes)`,
    /// in time order, not overlapping. Used to copy chunks between blocks without decoding.
    pub fn add_encoded_series(
        &mut self,
        labels: &Labels,
        chunks: &[(i64, i64, Encoding, &[u8])],
    ) -> Result<()> {
        self.check_order(labels)?;
        if chunks.is_empty() {
            return Ok(());
        }
        let writer = self
            .chunks
            .as_mut()
            .ok_or_else(|| Error::InvalidInput("block writer closed".into()))?;
        let mut metas = Vec::with_capacity(chunks.len());
        for &(mint, maxt, enc, bytes) in chunks {
            if metas.last().is_some_and(|m: &ChunkMeta| mint <= m.max_time) || maxt < mint {
                return Err(Error::InvalidInput(format!(
                    "series {labels}: chunks overlap or are unordered"
                )));
            }
            let chunk_ref = writer.write_chunk(enc, bytes)?;
            let n = u64::from(if enc == Encoding::AGGR {
                crate::chunkenc::aggr::num_samples(bytes)
            } else {
                crate::chunkenc::num_samples(bytes)
            });
            self.num_samples += n;
            match enc {
                Encoding::XOR => self.num_float_samples += n,
                Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM => self.num_histogram_samples += n,
                _ => {}
            }
            metas.push(ChunkMeta {
                min_time: mint,
                max_time: maxt,
                chunk_ref,
            });
        }
        self.num_chunks += metas.len() as u64;
        self.push_series(labels, metas)
    }

    /// Writes the index, tombstones and meta.json, then moves the block into place.
    pub fn finish(mut self) -> Result<BlockMeta> {
        if let Some(c) = self.chunks.take() {
            c.close()?;
        }
        let num_series = match self.index.take() {
            Some(iw) => {
                iw.finish()?;
                self.streamed_series
            }
            None => {
                let symbols = std::mem::take(&mut self.symbols);
                let mut iw = IndexWriter::create(&self.tmp.join(INDEX_FILENAME), symbols)?;
                for (labels, chunks) in &self.series {
                    iw.add_series(labels, chunks)?;
                }
                iw.finish()?;
                self.series.len() as u64
            }
        };
        self.tombstones.write_to_dir(&self.tmp)?;

        let mut meta = BlockMeta::new(self.ulid, self.min_time, self.max_time);
        meta.stats.num_samples = self.num_samples;
        meta.stats.num_series = num_series;
        if self.streamed_series > 0 {
            meta.stats.num_float_samples = self.num_float_samples;
            meta.stats.num_histogram_samples = self.num_histogram_samples;
        }
        meta.stats.num_chunks = self.num_chunks;
        meta.thanos = self.thanos.take();
        if let Some(c) = self.compaction.take() {
            meta.compaction = c;
        }
        meta.write_to_dir(&self.tmp)?;
        sync_dir(&self.tmp)?;

        let dst = self.parent.join(self.ulid.to_string());
        std::fs::rename(&self.tmp, &dst).map_err(|e| Error::io("rename", &self.tmp, e))?;
        sync_dir(&self.parent)?;
        // Nothing left for Drop to clean up.
        self.tmp = PathBuf::new();
        Ok(meta)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
