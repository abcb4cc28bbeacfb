//! Opens a block directory and selects series and samples from it.

use std::path::{Path, PathBuf};

use super::{CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::chunkenc::{Encoding, XorIterator};
use crate::chunks::{ChunkMeta, ChunkReader, FileBytes};
use crate::error::{Error, Result};
use crate::index::postings::postings_for_matchers;
use crate::index::{IndexReader, SeriesEntry};
use crate::labels::Labels;
use crate::matchers::Matcher;
use crate::meta::BlockMeta;
use crate::tombstones::{Interval, Tombstones};

/// An open block: meta, index and chunk segments memory-mapped, tombstones in memory.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    tombstones: Tombstones,
}

impl Block {
    pub fn open(dir: &Path) -> Result<Block> {
        let meta = BlockMeta::read_from_dir(dir)?;
        let index_path = dir.join(INDEX_FILENAME);
        let index = IndexReader::new(
            FileBytes::map(&index_path)?,
            index_path.display().to_string(),
        )?;
        let chunks_dir = dir.join(CHUNKS_DIRNAME);
        let chunks = if chunks_dir.exists() {
            ChunkReader::open(&chunks_dir)?
        } else {
            ChunkReader::from_segments(Vec::new())?
        };
        let tombstones = Tombstones::read_from_dir(dir)?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            tombstones,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    pub fn chunks(&self) -> &ChunkReader {
        &self.chunks
    }

    /// Drops the mapped pages of the index and chunks read so far: long sequential passes
    /// (compaction, downsampling) call it now and then so their resident set stays small.
    pub fn release_pages(&self) {
        self.index.release_pages();
        self.chunks.release_pages();
    }

    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Series matching all `matchers` with at least one chunk overlapping `[mint, maxt]`
    /// (both inclusive), in label order.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<SeriesSet<'_>> {
        let postings = postings_for_matchers(&self.index, matchers)?;
        Ok(SeriesSet {
            block: self,
            postings,
            next: 0,
            mint,
            maxt,
            entry: SeriesEntry::default(),
        })
    }

    /// Every series of the block over its whole time range.
    pub fn all_series(&self) -> Result<SeriesSet<'_>> {
        self.select(&[], i64::MIN, i64::MAX)
    }
}

/// Series of a block in label order; pull them with [`SeriesSet::next`].
pub struct SeriesSet<'a> {
    block: &'a Block,
    postings: Vec<u32>,
    next: usize,
    mint: i64,
    maxt: i64,
    entry: SeriesEntry,
}

/// One series: its labels, its chunks within the selected time range and deleted intervals.
#[derive(Clone, Debug)]
pub struct BlockSeries {
    pub series_ref: u32,
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
    pub deleted: Vec<Interval>,
}

impl<'a> SeriesSet<'a> {
    pub fn len(&self) -> usize {
        self.postings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.postings.is_empty()
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<BlockSeries>> {
        while let Some(&sref) = self.postings.get(self.next) {
            self.next += 1;
            let ix = &self.block.index;
            ix.series(sref, &mut self.entry)?;
            let (mint, maxt) = (self.mint, self.maxt);
            let deleted = self.block.tombstones.get(sref);
            let chunks: Vec<ChunkMeta> = self
                .entry
                .chunks
                .iter()
                .filter(|c| c.max_time >= mint && c.min_time <= maxt)
                .filter(|c| {
                    !deleted
                        .iter()
                        .any(|d| d.min_time <= c.min_time && c.max_time <= d.max_time)
                })
                .copied()
                .collect();
            if chunks.is_empty() {
                continue;
            }
            return Ok(Some(BlockSeries {
                series_ref: sref,
                labels: ix.labels_of(&self.entry.label_refs)?,
                chunks,
                deleted: deleted.to_vec(),
            }));
        }
        Ok(None)
    }

    /// The block the series come from.
    pub fn block(&self) -> &'a Block {
        self.block
    }

    /// Samples of `series` in `[self.mint, self.maxt]`, tombstones applied.
    pub fn samples(&self, series: &'a BlockSeries) -> SampleIterator<'a> {
        SampleIterator::new(self.block, series, self.mint, self.maxt)
    }
}

/// Float samples of one series across its chunks, tombstoned samples and samples outside
/// `[mint, maxt]` skipped. Histogram chunks are skipped here (read them with
/// [`crate::chunkenc::histogram::HistogramIterator`]).
pub struct SampleIterator<'a> {
    block: &'a Block,
    series: &'a BlockSeries,
    chunk: usize,
    it: XorIterator<'a>,
    mint: i64,
    maxt: i64,
    last_t: i64,
    err: Option<Error>,
}

impl<'a> SampleIterator<'a> {
    pub fn new(block: &'a Block, series: &'a BlockSeries, mint: i64, maxt: i64) -> Self {
        SampleIterator {
            block,
            series,
            chunk: 0,
            it: XorIterator::new(&[0, 0]),
            mint,
            maxt,
            last_t: i64::MIN,
            err: None,
        }
    }

    fn open_next_chunk(&mut self) -> bool {
        while let Some(c) = self.series.chunks.get(self.chunk) {
            self.chunk += 1;
            match self.block.chunks.chunk(c.chunk_ref) {
                Ok((Encoding::XOR, data)) => {
                    self.it.reset(data);
                    return true;
                }
                Ok((Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM, _)) => continue,
                Ok((enc, _)) => {
                    self.err = Some(Error::corrupted(
                        self.block.dir.join(CHUNKS_DIRNAME).display().to_string(),
                        c.chunk_ref.0,
                        format!(
                            "series {}: unsupported chunk encoding {enc}",
                            self.series.labels
                        ),
                    ));
                    return false;
                }
                Err(e) => {
                    self.err = Some(e);
                    return false;
                }
            }
        }
        false
    }

    /// The next sample, or None at the end (check [`err`](Self::err) then).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<(i64, f64)> {
        loop {
            if self.it.next() {
                let (t, v) = self.it.at();
                if t < self.mint || t <= self.last_t {
                    continue;
                }
                if t > self.maxt {
                    // Later chunks start later still.
                    self.chunk = self.series.chunks.len();
                    self.it.reset(&[0, 0]);
                    return None;
                }
                if self.series.deleted.iter().any(|d| d.contains(t)) {
                    continue;
                }
                self.last_t = t;
                return Some((t, v));
            }
            if let Some(e) = self.it.err() {
                let c = &self.series.chunks[self.chunk - 1];
                self.err = Some(Error::corrupted(
                    self.block.dir.join(CHUNKS_DIRNAME).display().to_string(),
                    c.chunk_ref.0,
                    format!(
                        "series {}: chunk {:#x}: {e}",
                        self.series.labels, c.chunk_ref.0
                    ),
                ));
                return None;
            }
            if !self.open_next_chunk() {
                return None;
            }
        }
    }

    pub fn err(&self) -> Option<&Error> {
        self.err.as_ref()
    }

    /// Consumes the iterator into a vector, failing on the first corrupt chunk.
    pub fn collect_all(mut self) -> Result<Vec<(i64, f64)>> {
        let mut out = Vec::new();
        while let Some(s) = self.next() {
            out.push(s);
        }
        match self.err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}
