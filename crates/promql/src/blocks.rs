//! [`Queryable`] over local TSDB blocks: series of all blocks overlapping the range, merged
//! by labels (a k-way merge of each block's label-ordered series).

use crate::error::{Error, Result};
use crate::storage::{Queryable, RawSample, SelectHints, SeriesSet};
use crate::value::HPoint;
use std::path::Path;
use std::sync::Arc;
use tsdb::block::{Block, BlockSeries, SeriesSet as BlockSeriesSet};
use tsdb::chunkenc::histogram::HistogramIterator;
use tsdb::chunkenc::Encoding;
use tsdb::labels::Labels;
use tsdb::matchers::Matcher;

/// Blocks opened from local directories, ordered by min time.
pub struct BlockStorage {
    blocks: Vec<Block>,
}

impl BlockStorage {
    pub fn new(mut blocks: Vec<Block>) -> Self {
        blocks.sort_by_key(|b| b.meta().min_time);
        BlockStorage { blocks }
    }

    /// Opens every block directory (one with a meta.json) directly under `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Storage(format!("read {}: {e}", dir.display())))?;
        let mut blocks = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
            let path = entry.path();
            if path.join("meta.json").is_file() {
                let block = Block::open(&path)
                    .map_err(|e| Error::Storage(format!("open block {}: {e}", path.display())))?;
                blocks.push(block);
            }
        }
        Ok(BlockStorage::new(blocks))
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
}

struct Cursor<'a> {
    set: BlockSeriesSet<'a>,
    head: Option<BlockSeries>,
}

struct MergedSeriesSet<'a> {
    cursors: Vec<Cursor<'a>>,
    start: i64,
    end: i64,
    scratch: Vec<RawSample>,
    /// Native histogram samples of the series last returned.
    hists: Vec<HPoint>,
}

fn storage_err(e: tsdb::Error) -> Error {
    Error::Storage(e.to_string())
}

impl<'a> MergedSeriesSet<'a> {
    fn advance(cursor: &mut Cursor<'a>) -> Result<()> {
        cursor.head = cursor.set.next().map_err(storage_err)?;
        Ok(())
    }

    fn read_into(&self, i: usize, out: &mut Vec<RawSample>) -> Result<()> {
        let c = &self.cursors[i];
        let Some(series) = c.head.as_ref() else {
            return Ok(());
        };
        let mut it = c.set.samples(series);
        while let Some((t, v)) = it.next() {
            if t >= self.start && t <= self.end {
                out.push(RawSample { t, v });
            }
        }
        if let Some(e) = it.err() {
            return Err(Error::Storage(e.to_string()));
        }
        Ok(())
    }

    /// Appends the native histogram samples of cursor `i`'s series in range (tombstones
    /// applied) to `self.hists`.
    fn read_histograms(&mut self, i: usize) -> Result<()> {
        let c = &self.cursors[i];
        let Some(series) = c.head.as_ref() else {
            return Ok(());
        };
        let block = c.set.block();
        for meta in &series.chunks {
            let (enc, data) = block.chunks().chunk(meta.chunk_ref).map_err(storage_err)?;
            if enc != Encoding::HISTOGRAM && enc != Encoding::FLOAT_HISTOGRAM {
                continue;
            }
            let corrupt = |e: &dyn std::fmt::Display| {
                Error::Storage(format!(
                    "block {}: series {}: histogram chunk {:#x}: {e}",
                    block.dir().display(),
                    series.labels,
                    meta.chunk_ref.0
                ))
            };
            let mut it = HistogramIterator::new(enc, data).map_err(|e| corrupt(&e))?;
            while it.next() {
                let h = it.at();
                if h.t < self.start
                    || h.t > self.end
                    || series.deleted.iter().any(|d| d.contains(h.t))
                {
                    continue;
                }
                self.hists.push(HPoint {
                    t: h.t,
                    h: Arc::new(h.clone()),
                });
            }
            if let Some(e) = it.err() {
                return Err(corrupt(&e));
            }
        }
        Ok(())
    }
}

impl MergedSeriesSet<'_> {
    fn next_merged(&mut self, samples: &mut Vec<RawSample>) -> Result<Option<Labels>> {
        let mut min: Option<&Labels> = None;
        for c in &self.cursors {
            if let Some(h) = &c.head {
                if min.is_none_or(|m| h.labels < *m) {
                    min = Some(&h.labels);
                }
            }
        }
        let Some(labels) = min.cloned() else {
            return Ok(None);
        };
        samples.clear();
        self.hists.clear();
        let mut merged_blocks = 0;
        for i in 0..self.cursors.len() {
            if self.cursors[i]
                .head
                .as_ref()
                .is_some_and(|h| h.labels == labels)
            {
                if merged_blocks == 0 {
                    self.read_into(i, samples)?;
                } else {
                    let mut scratch = std::mem::take(&mut self.scratch);
                    scratch.clear();
                    self.read_into(i, &mut scratch)?;
                    merge_samples(samples, &scratch);
                    self.scratch = scratch;
                }
                merged_blocks += 1;
                self.read_histograms(i)?;
                Self::advance(&mut self.cursors[i])?;
            }
        }
        if merged_blocks > 1 && !self.hists.is_empty() {
            // Several blocks: in time order, the first block's sample winning a tie.
            self.hists.sort_by_key(|p| p.t);
            self.hists.dedup_by_key(|p| p.t);
        }
        Ok(Some(labels))
    }
}

impl SeriesSet for MergedSeriesSet<'_> {
    fn next_series(&mut self, samples: &mut Vec<RawSample>) -> Option<Result<Labels>> {
        loop {
            match self.next_merged(samples) {
                Ok(Some(_)) if samples.is_empty() && self.hists.is_empty() => continue,
                Ok(Some(l)) => return Some(Ok(l)),
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn take_histograms(&mut self) -> Vec<HPoint> {
        std::mem::take(&mut self.hists)
    }
}

/// Merges `extra` into the time-ordered `into`; on equal timestamps the existing sample wins.
fn merge_samples(into: &mut Vec<RawSample>, extra: &[RawSample]) {
    if extra.is_empty() {
        return;
    }
    if into.last().is_none_or(|l| l.t < extra[0].t) {
        into.extend_from_slice(extra);
        return;
    }
    let mut out = Vec::with_capacity(into.len() + extra.len());
    let (mut i, mut j) = (0, 0);
    while i < into.len() && j < extra.len() {
        match into[i].t.cmp(&extra[j].t) {
            std::cmp::Ordering::Less => {
                out.push(into[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(extra[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(into[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&into[i..]);
    out.extend_from_slice(&extra[j..]);
    *into = out;
}

impl Queryable for BlockStorage {
    fn select<'a>(
        &'a self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + 'a>> {
        let mut cursors = Vec::new();
        for b in &self.blocks {
            let m = b.meta();
            // Block max_time is exclusive.
            if m.max_time <= hints.start || m.min_time > hints.end {
                continue;
            }
            let set = b
                .select(matchers, hints.start, hints.end)
                .map_err(storage_err)?;
            let mut c = Cursor { set, head: None };
            MergedSeriesSet::advance(&mut c)?;
            cursors.push(c);
        }
        Ok(Box::new(MergedSeriesSet {
            cursors,
            start: hints.start,
            end: hints.end,
            scratch: Vec::new(),
            hists: Vec::new(),
        }))
    }
}
