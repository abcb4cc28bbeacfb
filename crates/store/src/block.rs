//! One block of the bucket as the gateway serves it: its meta, its index-header, and the
//! lookups that fetch postings lists, series entries and chunks by byte range.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bucket::block::{get_range, object_path};
use storeapi::pb;
use tsdb::chunks::{ChunkMeta, ChunkRef};
use tsdb::encoding::Decbuf;
use tsdb::index::postings::{combine, plan_matchers};
use tsdb::index::{decode_series, IndexReader, SeriesEntry};
use tsdb::meta::BlockMeta;
use tsdb::{Labels, Matcher};

use crate::cache::{IndexCache, Key, Kind};
use crate::ranges::{partition, MAX_GAP};
use crate::{Error, Result};

/// Runs CPU-heavy work of a request on the blocking pool, so one expensive request cannot
/// hold up the async threads that serve every other call.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Limit(format!("request work failed: {e}"))))
}

/// A series entry is assumed to take at most this much; longer ones are read again whole.
const SERIES_SIZE_ESTIMATE: u64 = 64 * 1024;
/// A chunk is assumed to take at most this much (Thanos's estimate).
const CHUNK_SIZE_ESTIMATE: u64 = 16_000;

pub struct BucketBlock {
    pub meta: BlockMeta,
    pub id: String,
    pub ext_labels: Labels,
    header: IndexReader,
    bucket: bucket::Bucket,
    cache: Arc<IndexCache>,
}

/// A block's series selected for a query: labels (external ones added) and chunk metas.
pub type Selection = Vec<(Labels, Vec<ChunkMeta>)>;

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
    ) -> Self {
        let ext_labels = Labels::from_pairs(meta.external_labels());
        BucketBlock {
            id: meta.ulid.clone(),
            meta,
            ext_labels,
            header,
            bucket,
            cache,
        }
    }

    fn key(&self, kind: Kind, offset: u64) -> Key {
        Key {
            block: self.id.clone(),
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
        let mut out: Vec<Option<bytes::Bytes>> = ranges
            .iter()
            .map(|r| self.cache.get(&self.key(kind, r.start)))
            .collect();
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
        let mut out = vec![bytes::Bytes::new(); ranges.len()];
        let parts = partition(ranges, MAX_GAP);
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

    /// The block's series references selected by `matchers` (external labels already removed).
    /// Matching label values and intersecting lists run on a blocking thread.
    pub async fn postings(self: &Arc<Self>, matchers: &[Matcher]) -> Result<Vec<u32>> {
        let (this, owned) = (self.clone(), matchers.to_vec());
        let plan =
            blocking(move || plan_matchers(&this.header, &owned).map_err(Error::from)).await?;
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
        blocking(move || {
            let what = format!("{}/index", this.id);
            let mut lists: Vec<Vec<u32>> = Vec::with_capacity(data.len());
            for ((bytes, fetched), r) in data.iter().zip(&ranges) {
                let (list, used) = decode_postings(bytes, r.start, &what)?;
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

    /// Fetches and decodes the series entries of `refs` (sorted).
    async fn series_entries(&self, refs: &[u32]) -> Result<Vec<SeriesEntry>> {
        let ranges: Vec<Range<u64>> = refs
            .iter()
            .map(|&r| u64::from(r) * 16..u64::from(r) * 16 + SERIES_SIZE_ESTIMATE)
            .collect();
        let data = self.read_index_cached(Kind::Series, &ranges).await?;
        let what = format!("{}/index", self.id);
        let mut out = Vec::with_capacity(refs.len());
        for (((bytes, fetched), r), &sref) in data.iter().zip(&ranges).zip(refs) {
            let mut e = SeriesEntry::default();
            if let Ok(used) = decode_series(bytes, r.start, sref, &what, &mut e) {
                if *fetched {
                    self.cache.put(
                        self.key(Kind::Series, r.start),
                        bytes::Bytes::copy_from_slice(&bytes[..used]),
                    );
                }
            } else {
                // Longer than the estimate (or cut at the end of the part): read it exactly.
                let head = self.read_range("index", r.start..r.start + 10).await?;
                let mut d = Decbuf::new(&head, r.start, &what);
                let len = d.uvarint()? + d.position() as u64 + 4;
                let exact = self.read_range("index", r.start..r.start + len).await?;
                decode_series(&exact, r.start, sref, &what, &mut e)?;
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Fetches the chunks at `refs`: (encoding on disk, data) for each.
    async fn chunks(&self, refs: &[ChunkRef]) -> Result<Vec<(u8, bytes::Bytes)>> {
        let mut by_segment: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in refs.iter().enumerate() {
            by_segment.entry(r.segment()).or_default().push(i);
        }
        let mut out = vec![(0u8, bytes::Bytes::new()); refs.len()];
        for (seg, idx) in by_segment {
            let file = format!("chunks/{}", tsdb::chunks::segment_file_name(seg));
            let ranges: Vec<Range<u64>> = idx
                .iter()
                .map(|&i| {
                    u64::from(refs[i].offset())..u64::from(refs[i].offset()) + CHUNK_SIZE_ESTIMATE
                })
                .collect();
            let data = self.read_ranges(&file, &ranges).await?;
            for ((bytes, r), &i) in data.iter().zip(&ranges).zip(&idx) {
                out[i] = match parse_chunk(bytes, r.start, &file) {
                    Ok(c) => c,
                    Err(_) => {
                        let head = self.read_range(&file, r.start..r.start + 6).await?;
                        let mut d = Decbuf::new(&head, r.start, &file);
                        let len = d.uvarint()? + d.position() as u64 + 1 + 4;
                        let exact = self.read_range(&file, r.start..r.start + len).await?;
                        parse_chunk(&exact, r.start, &file).map_err(|e| self.err(e.to_string()))?
                    }
                };
            }
        }
        Ok(out)
    }

    /// The block's series for `q` with external labels added and the metas of their chunks
    /// in the time range, in index order (not necessarily sorted once external labels are
    /// added). Reads postings and series entries; no chunks.
    pub async fn select(self: &Arc<Self>, q: &BlockQuery<'_>) -> Result<Selection> {
        let Some(matchers) = self.index_matchers(q.matchers) else {
            return Ok(Vec::new());
        };
        let matchers: Vec<Matcher> = matchers.into_iter().cloned().collect();
        let refs = self.postings(&matchers).await?;
        let entries = self.series_entries(&refs).await?;
        let mut selected = Vec::with_capacity(entries.len());
        for e in entries {
            let chunks: Vec<ChunkMeta> = e
                .chunks
                .iter()
                .filter(|c| c.max_time >= q.min_time && c.min_time <= q.max_time)
                .copied()
                .collect();
            if chunks.is_empty() {
                continue;
            }
            let labels = self.header.labels_of(&e.label_refs)?;
            selected.push((labels.merge_overriding(&self.ext_labels), chunks));
        }
        Ok(selected)
    }

    /// The chunks of `metas` as StoreAPI chunks, still encoded, one per meta in order; `None`
    /// for encodings the StoreAPI has no form for. Aggregate chunks of downsampled blocks
    /// carry the sub-chunks of `aggregates` (count and sum when none are asked for).
    pub async fn fetch_chunks(
        &self,
        metas: &[ChunkMeta],
        aggregates: &[pb::Aggr],
    ) -> Result<Vec<Option<pb::AggrChunk>>> {
        let refs: Vec<ChunkRef> = metas.iter().map(|m| m.chunk_ref).collect();
        let data = self.chunks(&refs).await?;
        let mut out = Vec::with_capacity(metas.len());
        for (m, (enc, bytes)) in metas.iter().zip(data) {
            let mut c = pb::AggrChunk {
                min_time: m.min_time,
                max_time: m.max_time,
                ..Default::default()
            };
            if tsdb::chunkenc::Encoding(enc) == tsdb::chunkenc::Encoding::AGGR {
                self.fill_aggregates(&mut c, &bytes, aggregates)?;
                out.push(Some(c));
                continue;
            }
            let Some(wire) = storeapi::convert::encoding_to_pb(tsdb::chunkenc::Encoding(enc))
            else {
                out.push(None);
                continue;
            };
            c.raw = Some(pb::Chunk {
                r#type: wire as i32,
                data: bytes.to_vec(),
                hash: 0,
            });
            out.push(Some(c));
        }
        Ok(out)
    }

    /// Sets the requested aggregates of an aggregate chunk; one missing is an error, as in
    /// Thanos.
    fn fill_aggregates(
        &self,
        c: &mut pb::AggrChunk,
        data: &[u8],
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
                data: bytes.to_vec(),
                hash: 0,
            });
        }
        Ok(())
    }
}

/// Decodes a postings list (`len | #refs | refs | CRC`) fetched at `offset`; also returns the
/// bytes it takes.
fn decode_postings(b: &[u8], offset: u64, what: &str) -> Result<(Vec<u32>, usize)> {
    let mut d = Decbuf::new(b, offset, what);
    let len = d.be_u32()? as usize;
    let body = d.bytes(len)?;
    let crc = d.be_u32()?;
    let used = d.position();
    if tsdb::encoding::crc32(body) != crc {
        return Err(tsdb::Error::corrupted(what, offset, "postings list checksum mismatch").into());
    }
    let mut d = Decbuf::new(body, offset + 4, what);
    let n = d.be_u32()? as usize;
    let refs = d.bytes(
        n.checked_mul(4)
            .ok_or_else(|| d.error("postings length overflows"))?,
    )?;
    let list = refs
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((list, used))
}

/// Parses a chunk record fetched at `offset`, checking its CRC.
fn parse_chunk(b: &bytes::Bytes, offset: u64, what: &str) -> Result<(u8, bytes::Bytes)> {
    let mut d = Decbuf::new(b, offset, what);
    let len = d.uvarint()? as usize;
    let enc = d.u8()?;
    let start = d.position();
    let data = d.bytes(len)?;
    let crc = d.be_u32()?;
    let c = tsdb::encoding::crc32_append(tsdb::encoding::crc32(&[enc]), data);
    if c != crc {
        return Err(tsdb::Error::corrupted(what, offset, "chunk checksum mismatch").into());
    }
    Ok((enc, b.slice(start..start + len)))
}

/// A shared block.
pub type SharedBlock = Arc<BucketBlock>;
