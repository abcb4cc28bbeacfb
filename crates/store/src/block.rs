//! One block of the bucket as the gateway serves it: its meta, its index-header, and the
//! lookups that fetch postings lists, series entries and chunks by byte range.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bucket::block::{get_range, object_path};
use storeapi::pb;
use tsdb::chunks::ChunkMeta;
use tsdb::encoding::Decbuf;
use tsdb::index::postings::{combine, plan_matchers};
use tsdb::index::{decode_series, IndexReader, SeriesEntry};
use tsdb::meta::BlockMeta;
use tsdb::{Labels, Matcher};

use crate::cache::{IndexCache, Key, Kind};
use crate::{Error, Result};
use bucket::ranges::partition;

/// Runs CPU-heavy work of a request on the blocking pool, so one expensive request cannot
/// hold up the async threads that serve every other call.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Limit(format!("request work failed: {e}"))))
}

/// [`blocking`], or right here when the caller knows the work is small (a thread hop costs
/// more than a few microseconds of work).
pub(crate) async fn blocking_unless<T: Send + 'static>(
    small: bool,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if small {
        f()
    } else {
        blocking(f).await
    }
}

/// A series entry is assumed to take at most this much; longer ones are read again whole.
const SERIES_SIZE_ESTIMATE: u64 = 64 * 1024;
/// A chunk is assumed to take at most this much (Thanos's estimate) when nothing better is
/// known.
const CHUNK_SIZE_ESTIMATE: u64 = 16_000;

/// A chunk as read from a segment file: its time range, encoding on disk and data. Kept
/// this small (not a `pb::AggrChunk`, several times its size) while a batch waits to be
/// sent.
#[derive(Debug)]
pub struct FetchedChunk {
    pub min_time: i64,
    pub max_time: i64,
    pub encoding: u8,
    pub data: bytes::Bytes,
}

/// A chunk to read: its meta and how many bytes its record takes at most.
#[derive(Clone, Copy, Debug)]
pub struct ChunkToRead {
    pub meta: ChunkMeta,
    pub max_len: u32,
}

/// Upper bounds of the records of a series' chunks (all of them, in file order): up to the
/// next chunk of the series in the same segment, else twice the largest record seen in the
/// series plus some slack, else [`CHUNK_SIZE_ESTIMATE`]. A bound that is short is found
/// when parsing and the chunk read again whole.
fn chunk_record_bounds(chunks: &[ChunkMeta]) -> impl Iterator<Item = u32> + '_ {
    let exact = move |i: usize| -> Option<u32> {
        let (a, b) = (chunks[i].chunk_ref, chunks.get(i + 1)?.chunk_ref);
        (a.segment() == b.segment() && b.offset() > a.offset()).then(|| b.offset() - a.offset())
    };
    let fallback = match (0..chunks.len()).filter_map(exact).max() {
        Some(l) => (2 * l + 256).min(CHUNK_SIZE_ESTIMATE as u32),
        None => CHUNK_SIZE_ESTIMATE as u32,
    };
    (0..chunks.len()).map(move |i| exact(i).unwrap_or(fallback))
}

pub struct BucketBlock {
    pub meta: BlockMeta,
    pub id: String,
    /// The ULID as a number: the index cache's key.
    ulid: u128,
    pub ext_labels: Labels,
    /// The external labels as sent, each a shared slice.
    ext_wire: Vec<pb::Label>,
    header: IndexReader,
    bucket: bucket::Bucket,
    cache: Arc<IndexCache>,
    /// Ranges of one object closer than this are read together; 0 reads them exactly, in
    /// one call.
    range_gap: u64,
}

/// A symbol of the block's index-header: (start, length) of its bytes there.
type Span = (u32, u32);

/// A block's series selected for a query, kept flat and small (no allocation or shared
/// reference per series): each series' own labels as spans of the index-header, and the
/// chunks to read. External labels are set over the own ones when the labels are read.
#[derive(Default)]
pub struct Selection {
    /// Per series: its range of `labels`, and where its chunks end in `chunks`.
    series: Vec<(Range<u32>, u32)>,
    labels: Vec<(Span, Span)>,
    chunks: Vec<ChunkToRead>,
}

impl Selection {
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The chunks to read of series `i`.
    pub fn chunks(&self, i: usize) -> &[ChunkToRead] {
        let start = if i == 0 { 0 } else { self.series[i - 1].1 };
        &self.chunks[start as usize..self.series[i].1 as usize]
    }

    /// All chunks to read.
    pub fn total_chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// One label of a selected series as sent: its own, or an external label of the block.
#[derive(Clone, Copy)]
pub enum WireLabel<'a> {
    Own(Span, Span),
    External(&'a pb::Label),
}

/// The labels of a selected series as sent, in name order: its own with the block's
/// external labels set over them, minus the labels named in `without`.
pub struct WireLabels<'a> {
    own: &'a [(Span, Span)],
    ext: &'a [pb::Label],
    without: &'a [String],
    header: &'a IndexReader,
}

impl<'a> WireLabels<'a> {
    /// The labels as (name, value) bytes, for comparing series.
    pub fn pairs(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let header = self.header;
        self.map(move |l| match l {
            WireLabel::Own(n, v) => (header.span_bytes(n), header.span_bytes(v)),
            WireLabel::External(e) => (&e.name[..], &e.value[..]),
        })
    }

    /// The labels for the wire: shared slices of the index-header, not copies.
    pub fn to_pb(self) -> Vec<pb::Label> {
        let header = self.header;
        self.map(|l| match l {
            WireLabel::Own(n, v) => pb::Label {
                name: header.span_shared(n),
                value: header.span_shared(v),
            },
            WireLabel::External(e) => e.clone(),
        })
        .collect()
    }
}

impl<'a> Iterator for WireLabels<'a> {
    type Item = WireLabel<'a>;

    fn next(&mut self) -> Option<WireLabel<'a>> {
        loop {
            let (label, name) = match (self.own.first(), self.ext.first()) {
                (None, None) => return None,
                (Some(&(n, v)), ext) => {
                    let own_name = self.header.span_bytes(n);
                    match ext {
                        Some(e) if &e.name[..] <= own_name => {
                            // An external label replaces an own label of its name.
                            if &e.name[..] == own_name {
                                self.own = &self.own[1..];
                            }
                            self.ext = &self.ext[1..];
                            (WireLabel::External(e), &e.name[..])
                        }
                        _ => {
                            self.own = &self.own[1..];
                            (WireLabel::Own(n, v), own_name)
                        }
                    }
                }
                (None, Some(e)) => {
                    self.ext = &self.ext[1..];
                    (WireLabel::External(e), &e.name[..])
                }
            };
            if !self.without.iter().any(|w| w.as_bytes() == name) {
                return Some(label);
            }
        }
    }
}

/// What a Series call asks of one block.
pub struct BlockQuery<'a> {
    pub matchers: &'a [Matcher],
    pub min_time: i64,
    pub max_time: i64,
}

impl BucketBlock {
    pub fn new(
        meta: BlockMeta,
        header: IndexReader,
        bucket: bucket::Bucket,
        cache: Arc<IndexCache>,
        range_gap: u64,
    ) -> Self {
        let ext_labels = Labels::from_pairs(meta.external_labels());
        BucketBlock {
            ulid: cache_id(&meta.ulid),
            id: meta.ulid.clone(),
            meta,
            ext_wire: storeapi::convert::labels_to_pb(&ext_labels),
            ext_labels,
            header,
            bucket,
            cache,
            range_gap,
        }
    }

    fn key(&self, kind: Kind, offset: u64) -> Key {
        Key {
            block: self.ulid,
            kind,
            offset,
        }
    }

    /// Reads index ranges, serving cached ones from the index cache; each with whether it
    /// was fetched (and so is for the caller to cache once it knows its exact length).
    async fn read_index_cached(
        &self,
        kind: Kind,
        ranges: &[Range<u64>],
    ) -> Result<Vec<(bytes::Bytes, bool)>> {
        let mut out = self
            .cache
            .get_many(self.ulid, kind, ranges.iter().map(|r| r.start));
        let missing: Vec<usize> = (0..ranges.len()).filter(|&i| out[i].is_none()).collect();
        let mut fetched_at = vec![false; ranges.len()];
        if !missing.is_empty() {
            let want: Vec<Range<u64>> = missing.iter().map(|&i| ranges[i].clone()).collect();
            let fetched = self.read_ranges("index", &want).await?;
            for (&i, b) in missing.iter().zip(fetched) {
                out[i] = Some(b);
                fetched_at[i] = true;
            }
        }
        Ok(out
            .into_iter()
            .map(Option::unwrap_or_default)
            .zip(fetched_at)
            .collect())
    }

    pub fn header(&self) -> &IndexReader {
        &self.header
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Block {
            block: self.id.clone(),
            msg: msg.into(),
        }
    }

    /// Splits matchers into those the block's external labels decide and those for the
    /// index; None when the external labels already rule the block out.
    pub fn index_matchers<'m>(&self, matchers: &'m [Matcher]) -> Option<Vec<&'m Matcher>> {
        let mut rest = Vec::new();
        for m in matchers {
            match self.ext_labels.get(&m.name) {
                Some(v) => {
                    if !m.matches(v) {
                        return None;
                    }
                }
                None => rest.push(m),
            }
        }
        Some(rest)
    }

    /// Reads one byte range of one object.
    async fn read_range(&self, file: &str, range: Range<u64>) -> Result<bytes::Bytes> {
        Ok(get_range(self.bucket.as_ref(), &object_path(&self.id, file), range).await?)
    }

    /// Reads byte ranges of one object, merging nearby ones; returns the bytes of each range.
    async fn read_ranges(&self, file: &str, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        let path = object_path(&self.id, file);
        if self.range_gap == 0 {
            return Ok(bucket::block::get_ranges(self.bucket.as_ref(), &path, ranges).await?);
        }
        let mut out = vec![bytes::Bytes::new(); ranges.len()];
        let parts = partition(ranges, self.range_gap);
        let fetched = futures::future::try_join_all(
            parts
                .iter()
                .map(|(r, _)| get_range(self.bucket.as_ref(), &path, r.clone())),
        )
        .await?;
        for ((part, members), data) in parts.iter().zip(fetched) {
            for &i in members {
                let r = &ranges[i];
                let from = (r.start - part.start) as usize;
                let to = ((r.end - part.start) as usize).min(data.len());
                out[i] = data.slice(from.min(to)..to);
            }
        }
        Ok(out)
    }

    /// Reads length-prefixed records again whole, after a first read (`partial`, starting at
    /// `start`) that was too short: `(index, start, partial)` each. The length comes from the
    /// uvarint at the start of what was read when it holds it (else from a small read), and
    /// a record takes `extra` bytes besides its length prefix and data.
    async fn read_whole_records(
        &self,
        file: &str,
        short: &[(usize, u64, bytes::Bytes)],
        extra: u64,
    ) -> Result<Vec<bytes::Bytes>> {
        let what = format!("{}/{file}", self.id);
        let record_len = |b: &[u8], start: u64| -> Result<u64> {
            let mut d = Decbuf::new(b, start, &what);
            Ok(d.uvarint()? + d.position() as u64 + extra)
        };
        let mut ranges = Vec::with_capacity(short.len());
        for (_, start, partial) in short {
            let len = match record_len(partial, *start) {
                Ok(len) => len,
                Err(_) => record_len(&self.read_range(file, *start..*start + 10).await?, *start)?,
            };
            ranges.push(*start..*start + len);
        }
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        self.read_ranges(file, &ranges).await
    }

    /// The block's series references selected by `matchers` (external labels already removed).
    /// Matching label values and intersecting lists run on a blocking thread.
    pub async fn postings(self: &Arc<Self>, matchers: &[Matcher]) -> Result<Vec<u32>> {
        let (this, owned) = (self.clone(), matchers.to_vec());
        // Equality matchers are lookups; others may scan many label values.
        let lookups = matchers.iter().all(|m| m.kind == tsdb::MatchType::Equal);
        let plan = blocking_unless(lookups, move || {
            plan_matchers(&this.header, &owned).map_err(Error::from)
        })
        .await?;
        let Some(plan) = plan else {
            return Ok(Vec::new());
        };
        let needs_all = plan.iter().all(|p| p.negative);
        let mut offsets: Vec<u64> = plan
            .iter()
            .flat_map(|p| p.offsets.iter().copied())
            .collect();
        if needs_all {
            offsets.push(
                self.header
                    .all_postings_offset()
                    .ok_or_else(|| self.err("index has no all-series postings"))?,
            );
        }
        let mut ranges = Vec::with_capacity(offsets.len());
        for &o in &offsets {
            ranges.push(o..self.header.next_postings_offset(o)?);
        }
        let data = self.read_index_cached(Kind::Postings, &ranges).await?;
        let this = self.clone();
        let bytes: usize = data.iter().map(|(b, _)| b.len()).sum();
        blocking_unless(bytes <= 64 * 1024, move || {
            let what = format!("{}/index", this.id);
            let mut lists: Vec<Vec<u32>> = Vec::with_capacity(data.len());
            for ((bytes, fetched), r) in data.iter().zip(&ranges) {
                let mut list = Vec::new();
                let used = tsdb::index::decode_postings(bytes, r.start, &what, &mut list)?;
                if *fetched {
                    // A copy: a slice would keep the whole merged read alive in the cache.
                    this.cache.put(
                        this.key(Kind::Postings, r.start),
                        bytes::Bytes::copy_from_slice(&bytes[..used]),
                    );
                }
                lists.push(list);
            }
            let all = if needs_all { lists.pop() } else { None };
            let mut grouped = Vec::with_capacity(plan.len());
            let mut it = lists.into_iter();
            for p in &plan {
                grouped.push(it.by_ref().take(p.offsets.len()).collect());
            }
            Ok(combine(&plan, grouped, || Ok(all.unwrap_or_default()))?)
        })
        .await
    }

    /// Fetches the series entries of `refs` (sorted) and passes each, decoded into one
    /// reused entry, to `each`: in index order, except entries longer than their read
    /// bound, which come last.
    async fn for_each_series(
        &self,
        refs: &[u32],
        mut each: impl FnMut(&SeriesEntry) -> Result<()>,
    ) -> Result<()> {
        let ranges = series_ranges(refs);
        let data = self.read_index_cached(Kind::Series, &ranges).await?;
        let what = format!("{}/index", self.id);
        let mut entry = SeriesEntry::default();
        let mut short = Vec::new();
        let mut to_cache = Vec::new();
        for (i, (((bytes, fetched), r), &sref)) in data.iter().zip(&ranges).zip(refs).enumerate() {
            let Ok(used) = decode_series(bytes, r.start, sref, &what, &mut entry) else {
                short.push((i, r.start, bytes.clone()));
                continue;
            };
            if *fetched {
                to_cache.push((
                    self.key(Kind::Series, r.start),
                    bytes::Bytes::copy_from_slice(&bytes[..used]),
                ));
            }
            each(&entry)?;
        }
        // Entries longer than the estimate (or cut at the end of a part): read them again
        // whole, together. A series entry ends with a CRC32.
        let whole = self.read_whole_records("index", &short, 4).await?;
        for ((i, start, _), bytes) in short.iter().zip(whole) {
            let used = decode_series(&bytes, *start, refs[*i], &what, &mut entry)?;
            to_cache.push((
                self.key(Kind::Series, *start),
                bytes::Bytes::copy_from_slice(&bytes[..used]),
            ));
            each(&entry)?;
        }
        self.cache.put_many(to_cache);
        Ok(())
    }

    /// Reads `chunks` (each with its record's length bound) from the segment files, in
    /// order: encoding on disk and data, not yet in wire form (see [`Self::wire_chunk`]).
    pub async fn fetch_chunks(&self, chunks: &[ChunkToRead]) -> Result<Vec<FetchedChunk>> {
        let mut by_segment: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, c) in chunks.iter().enumerate() {
            by_segment
                .entry(c.meta.chunk_ref.segment())
                .or_default()
                .push(i);
        }
        let mut out: Vec<FetchedChunk> = chunks
            .iter()
            .map(|c| FetchedChunk {
                min_time: c.meta.min_time,
                max_time: c.meta.max_time,
                encoding: 0,
                data: bytes::Bytes::new(),
            })
            .collect();
        for (seg, idx) in by_segment {
            let file = format!("chunks/{}", tsdb::chunks::segment_file_name(seg));
            let ranges: Vec<Range<u64>> = idx
                .iter()
                .map(|&i| {
                    let c = &chunks[i];
                    let offset = u64::from(c.meta.chunk_ref.offset());
                    offset..offset + u64::from(c.max_len)
                })
                .collect();
            let data = self.read_ranges(&file, &ranges).await?;
            let mut short = Vec::new();
            for ((bytes, r), &i) in data.iter().zip(&ranges).zip(&idx) {
                match parse_chunk(bytes, r.start, &file) {
                    Ok((enc, data)) => (out[i].encoding, out[i].data) = (enc, data),
                    Err(_) => short.push((i, r.start, bytes.clone())),
                }
            }
            // Records longer than their bound: read them again whole, together. A chunk
            // record ends with its encoding byte before the data and a CRC32 after it.
            let whole = self.read_whole_records(&file, &short, 1 + 4).await?;
            for ((i, start, _), bytes) in short.iter().zip(whole) {
                let (enc, data) =
                    parse_chunk(&bytes, *start, &file).map_err(|e| self.err(e.to_string()))?;
                (out[*i].encoding, out[*i].data) = (enc, data);
            }
        }
        Ok(out)
    }

    /// The block's series for `q` with external labels added and the metas of their chunks
    /// in the time range, mostly in index order (not sorted: see [`Self::for_each_series`],
    /// and external labels may reorder). Reads postings and series entries; no chunks.
    pub async fn select(self: &Arc<Self>, q: &BlockQuery<'_>) -> Result<Selection> {
        let Some(matchers) = self.index_matchers(q.matchers) else {
            return Ok(Selection::default());
        };
        let matchers: Vec<Matcher> = matchers.into_iter().cloned().collect();
        let refs = self.postings(&matchers).await?;
        let mut sel = Selection {
            series: Vec::with_capacity(refs.len()),
            labels: Vec::with_capacity(refs.len() * 4),
            chunks: Vec::with_capacity(refs.len()),
        };
        // The last chunk of a series has no exact bound of its own, but the next series'
        // chunks usually follow it in the segment (series are written in index order): the
        // first chunk of the next series visited bounds it when it starts after it.
        let mut unbounded_last: Option<usize> = None;
        self.for_each_series(&refs, |e| {
            if let (Some(i), Some(next)) = (unbounded_last.take(), e.chunks.first()) {
                let c = &mut sel.chunks[i];
                let (own, next) = (c.meta.chunk_ref, next.chunk_ref);
                if own.segment() == next.segment() && next.offset() > own.offset() {
                    c.max_len = c.max_len.min(next.offset() - own.offset());
                }
            }
            let bounds = chunk_record_bounds(&e.chunks);
            let before = sel.chunks.len();
            let last = e.chunks.len().saturating_sub(1);
            let mut took_last = false;
            sel.chunks.extend(
                (e.chunks.iter().enumerate())
                    .zip(bounds)
                    .filter(|((_, c), _)| c.max_time >= q.min_time && c.min_time <= q.max_time)
                    .map(|((i, &meta), max_len)| {
                        took_last = i == last;
                        ChunkToRead { meta, max_len }
                    }),
            );
            if sel.chunks.len() == before {
                return Ok(());
            }
            if took_last {
                unbounded_last = Some(sel.chunks.len() - 1);
            }
            let start = sel.labels.len();
            let mut last: Option<&[u8]> = None;
            for &(n, v) in &e.label_refs {
                let (n, v) = (self.header.symbol_span(n)?, self.header.symbol_span(v)?);
                let name = self.header.span_bytes(n);
                if last.is_some_and(|l| l >= name) {
                    return Err(self.err("series labels not sorted by name"));
                }
                last = Some(name);
                sel.labels.push((n, v));
            }
            sel.series.push((
                start as u32..sel.labels.len() as u32,
                sel.chunks.len() as u32,
            ));
            Ok(())
        })
        .await?;
        Ok(sel)
    }

    /// The labels of series `i` of `sel` (selected from this block) as sent.
    pub fn wire_labels<'a>(
        &'a self,
        sel: &'a Selection,
        i: usize,
        without: &'a [String],
    ) -> WireLabels<'a> {
        let r = &sel.series[i].0;
        WireLabels {
            own: &sel.labels[r.start as usize..r.end as usize],
            ext: &self.ext_wire,
            without,
            header: &self.header,
        }
    }

    /// A fetched chunk in wire form: raw, or the requested aggregates of a downsampled
    /// chunk; `None` for an encoding the wire cannot carry.
    pub fn wire_chunk(
        &self,
        c: FetchedChunk,
        aggregates: &[pb::Aggr],
    ) -> Result<Option<pb::AggrChunk>> {
        let mut out = pb::AggrChunk {
            min_time: c.min_time,
            max_time: c.max_time,
            ..Default::default()
        };
        let encoding = tsdb::chunkenc::Encoding(c.encoding);
        if encoding == tsdb::chunkenc::Encoding::AGGR {
            self.fill_aggregates(&mut out, &c.data, aggregates)?;
            return Ok(Some(out));
        }
        let Some(wire) = storeapi::convert::encoding_to_pb(encoding) else {
            return Ok(None);
        };
        out.raw = Some(pb::Chunk {
            r#type: wire as i32,
            data: c.data,
            hash: 0,
        });
        Ok(Some(out))
    }

    /// Sets the requested aggregates of an aggregate chunk; one missing is an error, as in
    /// Thanos.
    fn fill_aggregates(
        &self,
        c: &mut pb::AggrChunk,
        data: &bytes::Bytes,
        aggregates: &[pb::Aggr],
    ) -> Result<()> {
        use tsdb::chunkenc::aggr::{self, AggrType};
        let wanted: &[pb::Aggr] = if aggregates.is_empty() {
            &[pb::Aggr::Count, pb::Aggr::Sum]
        } else {
            aggregates
        };
        for &a in wanted {
            let (t, slot) = match a {
                pb::Aggr::Raw => continue,
                pb::Aggr::Count => (AggrType::Count, &mut c.count),
                pb::Aggr::Sum => (AggrType::Sum, &mut c.sum),
                pb::Aggr::Min => (AggrType::Min, &mut c.min),
                pb::Aggr::Max => (AggrType::Max, &mut c.max),
                pb::Aggr::Counter => (AggrType::Counter, &mut c.counter),
            };
            let fail = |msg: String| Error::Block {
                block: self.id.clone(),
                msg,
            };
            let part = aggr::get(data, t).map_err(|e| fail(format!("aggregate chunk: {e}")))?;
            let Some((enc, bytes)) = part else {
                return Err(fail(format!(
                    "aggregate {} does not exist in a downsampled chunk",
                    t.name()
                )));
            };
            let wire = storeapi::convert::encoding_to_pb(enc)
                .ok_or_else(|| fail(format!("aggregate {} has encoding {enc}", t.name())))?;
            *slot = Some(pb::Chunk {
                r#type: wire as i32,
                data: data.slice_ref(bytes),
                hash: 0,
            });
        }
        Ok(())
    }
}

/// A block's number in the index cache: its ULID, or for a directory name that is not one
/// (never loaded from a bucket, but harmless) a hash of it.
fn cache_id(id: &str) -> u128 {
    ulid::Ulid::from_string(id).map_or_else(
        |_| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            u128::from(h.finish())
        },
        u128::from,
    )
}

/// Byte ranges to read for the series entries of `refs` (sorted): an entry starts at its
/// reference × 16 and ends before the next one starts, so each range ends at the next
/// selected entry, and the last at [`SERIES_SIZE_ESTIMATE`].
fn series_ranges(refs: &[u32]) -> Vec<Range<u64>> {
    let start = |r: u32| u64::from(r) * 16;
    refs.iter()
        .enumerate()
        .map(|(i, &r)| {
            let estimate = start(r) + SERIES_SIZE_ESTIMATE;
            let end = refs
                .get(i + 1)
                .map_or(estimate, |&n| start(n).min(estimate));
            start(r)..end
        })
        .collect()
}

/// Parses a chunk record fetched at `offset`, checking its CRC: its encoding and data.
fn parse_chunk(b: &bytes::Bytes, offset: u64, what: &str) -> Result<(u8, bytes::Bytes)> {
    let (enc, data) = tsdb::chunks::checked_record(b, offset, what)?;
    Ok((enc.0, b.slice(data)))
}

/// A shared block.
pub type SharedBlock = Arc<BucketBlock>;

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(segment: u32, offset: u32) -> ChunkMeta {
        ChunkMeta {
            min_time: 0,
            max_time: 0,
            chunk_ref: tsdb::chunks::ChunkRef::new(segment, offset),
        }
    }

    #[test]
    fn wire_labels_set_external_labels_over_the_series() {
        let own = [("a", "1"), ("job", "x"), ("replica", "own"), ("z", "9")];
        let ext = Labels::from_pairs([("b", "2"), ("replica", "r1"), ("zz", "3")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let mut symbols: Vec<String> = own
            .iter()
            .flat_map(|&(n, v)| [n.to_string(), v.to_string()])
            .collect();
        symbols.sort();
        let mut w = tsdb::index::IndexWriter::create(&path, symbols).unwrap();
        w.add_series(&Labels::from_pairs(own), &[meta(0, 8)])
            .unwrap();
        w.finish().unwrap();
        let bytes = tsdb::chunks::FileBytes::from_vec(std::fs::read(&path).unwrap());
        let header = IndexReader::new(bytes, "index").unwrap();
        let span = |text: &str| {
            let r = (0..header.num_symbols() as u32)
                .find(|&r| header.symbol(r).unwrap() == text)
                .unwrap();
            header.symbol_span(r).unwrap()
        };
        let sel = Selection {
            series: vec![(0..4, 1)],
            labels: own.iter().map(|&(n, v)| (span(n), span(v))).collect(),
            chunks: vec![ChunkToRead {
                meta: meta(0, 8),
                max_len: 100,
            }],
        };
        let ext_wire = storeapi::convert::labels_to_pb(&ext);
        fn of<'a>(
            sel: &'a Selection,
            ext: &'a [pb::Label],
            without: &'a [String],
            header: &'a IndexReader,
        ) -> WireLabels<'a> {
            let r = &sel.series[0].0;
            WireLabels {
                own: &sel.labels[r.start as usize..r.end as usize],
                ext,
                without,
                header,
            }
        }
        let dropping = ["replica".to_string(), "z".to_string()];
        let labels = |drop: bool| of(&sel, &ext_wire, if drop { &dropping } else { &[] }, &header);
        let want = Labels::from_pairs(own).merge_overriding(&ext);
        assert_eq!(
            labels(false).to_pb(),
            storeapi::convert::labels_to_pb(&want)
        );
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = labels(false)
            .pairs()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        let want_pairs: Vec<(Vec<u8>, Vec<u8>)> = want
            .iter()
            .map(|l| (l.name.as_bytes().to_vec(), l.value.as_bytes().to_vec()))
            .collect();
        assert_eq!(pairs, want_pairs);
        let mut dropped = want.clone();
        dropped.remove("replica");
        dropped.remove("z");
        assert_eq!(
            labels(true).to_pb(),
            storeapi::convert::labels_to_pb(&dropped)
        );
        assert_eq!(sel.chunks(0).len(), 1);
    }

    #[test]
    fn series_ranges_end_at_the_next_selected_entry() {
        let r = series_ranges(&[1, 2, 10, 100_000]);
        assert_eq!(r[0], 16..32);
        assert_eq!(r[1], 32..160);
        assert_eq!(r[2], 160..160 + SERIES_SIZE_ESTIMATE);
        assert_eq!(r[3], 1_600_000..1_600_000 + SERIES_SIZE_ESTIMATE);
        assert!(series_ranges(&[]).is_empty());
    }

    #[test]
    fn chunk_bounds_come_from_the_next_chunk_or_the_series_largest() {
        // Two chunks in segment 0, the third starts segment 1.
        let chunks = [meta(0, 8), meta(0, 108), meta(0, 408), meta(1, 8)];
        let bounds = |c: &[ChunkMeta]| chunk_record_bounds(c).collect::<Vec<_>>();
        assert_eq!(bounds(&chunks), vec![100, 300, 856, 856]);
        // Nothing known: Thanos's estimate.
        assert_eq!(bounds(&[meta(0, 8)]), vec![CHUNK_SIZE_ESTIMATE as u32]);
        // Large records cap at the estimate.
        let big = [meta(0, 8), meta(0, 12_008), meta(0, 30_000)];
        assert_eq!(
            bounds(&big),
            vec![12_000, 17_992, CHUNK_SIZE_ESTIMATE as u32]
        );
    }
}
