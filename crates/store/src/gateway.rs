//! The bucket store: which blocks are served (synced from the bucket with Thanos's filters)
//! and the StoreAPI over them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use storeapi::convert::{labels_to_pb, matchers_from_pb};
use storeapi::pb;
use storeapi::store::{series_frame, warning_frame, SeriesStore, SeriesStream};
use tonic::Status;
use tsdb::meta::BlockMeta;
use tsdb::Labels;

use crate::block::{blocking_unless, BlockQuery, BucketBlock, ChunkToRead, FetchedChunk};
use crate::cache::IndexCache;
use crate::plan::Plan;
use crate::{header, Error, Result};

/// Buckets of the Series call histograms: seconds, and counts (blocks, series).
const SECONDS: &[f64] = &[
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];
const COUNTS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// One of Thanos's `thanos_bucket_store_series_*` histograms (labelled by tenant, as Thanos).
fn series_histogram(name: &str, help: &str, bounds: &[f64]) -> telemetry::Histogram {
    telemetry::histogram(name, help, &[("tenant", "default-tenant")], bounds)
}

/// Thanos assumes chunks hold 120 samples when enforcing sample limits.
const SAMPLES_PER_CHUNK: i64 = 120;
/// Regex matchers with at most this many pattern bytes in all are compiled on the async
/// thread that received the call.
const SMALL_PATTERN_BYTES: usize = 128;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Serve only blocks overlapping [min_time, max_time] (ms).
    pub min_time: i64,
    pub max_time: i64,
    /// Blocks younger than this (by upload time or ULID time) are not served yet, except
    /// compactor output.
    pub consistency_delay_ms: i64,
    /// Blocks marked for deletion longer ago than this are no longer served.
    pub ignore_deletion_marks_delay_ms: i64,
    pub block_sync_concurrency: usize,
    /// Maximum samples (chunks × 120) one Series call may return; 0 = unlimited.
    pub series_sample_limit: i64,
    /// Bytes of postings and series entries kept in memory.
    pub index_cache_size: u64,
    /// Series calls served at once; further calls wait.
    pub series_max_concurrency: usize,
    /// Chunk bytes (as estimated before reading) a Series call reads per step, from every
    /// block at once (from a remote bucket: per four blocks, see [`batch_bytes_for`]): its
    /// memory follows this, not the answer's size, and each step costs a read per block.
    pub series_batch_bytes: u64,
    /// Most series one Series call may return (`--store.limits.request-series`); 0 = no limit.
    pub request_series_limit: u64,
    /// Most samples one Series call may return, counted as chunks × 120
    /// (`--store.limits.request-samples`); 0 = no limit.
    pub request_samples_limit: u64,
    /// Most label matchers one request may carry; 0 = no limit.
    pub request_matchers_limit: usize,
    /// Longest regular expression (bytes) a matcher may carry; 0 = no limit.
    pub regex_bytes_limit: usize,
    /// Selects the blocks served by external labels and `__block_id`.
    pub relabel: bucket::relabel::Relabel,
    /// Byte ranges of one object closer than this are read with one GET (Thanos's
    /// partitioner: 512 KiB). 0 reads each range exactly, in one call per object: for a
    /// local filesystem bucket, where a read costs little and bytes not needed cost most.
    pub range_gap: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            min_time: i64::MIN,
            max_time: i64::MAX,
            consistency_delay_ms: 0,
            ignore_deletion_marks_delay_ms: 24 * 3_600_000,
            block_sync_concurrency: 20,
            series_sample_limit: 0,
            index_cache_size: 250_000_000,
            series_max_concurrency: 20,
            series_batch_bytes: 4 << 20,
            request_series_limit: 0,
            request_samples_limit: 0,
            request_matchers_limit: 1_000,
            regex_bytes_limit: 1 << 20,
            relabel: bucket::relabel::Relabel::default(),
            range_gap: bucket::ranges::MAX_GAP,
        }
    }
}

#[derive(Debug, Default)]
pub struct SyncStats {
    pub loaded: usize,
    pub added: usize,
    pub removed: usize,
    pub failed: usize,
    /// The bucket as this sync saw it, after the store's filters (for the block viewer).
    pub view: bucket::fetcher::View,
}

pub struct BucketStore {
    bucket: bucket::Bucket,
    cfg: Config,
    cache: Arc<IndexCache>,
    series_slots: Arc<tokio::sync::Semaphore>,
    blocks: RwLock<BTreeMap<String, Arc<BucketBlock>>>,
    /// Blocks that could not be loaded at the last sync, with why: answers over their time
    /// range warn that they are missing.
    failed: RwLock<BTreeMap<String, (BlockMeta, String)>>,
    synced: AtomicBool,
}

impl BucketStore {
    pub fn new(bucket: bucket::Bucket, cfg: Config) -> Self {
        BucketStore {
            bucket,
            cache: Arc::new(IndexCache::new(cfg.index_cache_size)),
            series_slots: Arc::new(tokio::sync::Semaphore::new(
                cfg.series_max_concurrency.max(1),
            )),
            cfg,
            blocks: RwLock::new(BTreeMap::new()),
            failed: RwLock::new(BTreeMap::new()),
            synced: AtomicBool::new(false),
        }
    }

    /// Index cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.cache.hits.load(Relaxed),
            self.cache.misses.load(Relaxed),
            self.cache.size(),
        )
    }

    /// True once the first sync finished.
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn blocks(&self) -> Vec<Arc<BucketBlock>> {
        self.blocks
            .read()
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    async fn load_block(&self, meta: BlockMeta) -> Result<BucketBlock> {
        let dir = self.cfg.data_dir.join(&meta.ulid);
        let reader = match header::load(&dir) {
            Ok(r) => r,
            Err(_) => {
                header::build(self.bucket.as_ref(), &meta.ulid, &dir).await?;
                header::load(&dir)?
            }
        };
        Ok(BucketBlock::new(
            meta,
            reader,
            self.bucket.clone(),
            self.cache.clone(),
            self.cfg.range_gap,
        ))
    }

    /// Lists the bucket, loads new blocks (building their index-headers) and drops blocks
    /// that are gone or filtered out. A block that fails to load is logged and skipped.
    pub async fn sync(&self) -> Result<SyncStats> {
        let filters = bucket::fetcher::Filters {
            min_time: Some(self.cfg.min_time),
            max_time: Some(self.cfg.max_time),
            consistency_delay_ms: self.cfg.consistency_delay_ms,
            ignore_deletion_marks_delay_ms: Some(self.cfg.ignore_deletion_marks_delay_ms),
            relabel: self.cfg.relabel.clone(),
            // A compacted block and its sources are never served together.
            deduplicate: true,
            concurrency: 32,
            ..Default::default()
        };
        let view =
            bucket::fetcher::fetch(self.bucket.as_ref(), &filters, tsdb::time::now_ms()).await?;
        for (id, e) in &view.unreadable {
            tracing::warn!(block = %id, err = %e, "skipping block with unreadable meta.json");
        }
        let wanted = view.metas.clone();
        let current: BTreeSet<String> = self
            .blocks
            .read()
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default();
        let want_ids: BTreeSet<String> = wanted.iter().map(|m| m.ulid.clone()).collect();
        let new: Vec<BlockMeta> = wanted
            .into_iter()
            .filter(|m| !current.contains(&m.ulid))
            .collect();
        let mut stats = SyncStats::default();
        let loaded: Vec<(BlockMeta, Result<BucketBlock>)> = futures::stream::iter(new)
            .map(|m| async move {
                let r = self.load_block(m.clone()).await;
                (m, r)
            })
            .buffer_unordered(self.cfg.block_sync_concurrency.max(1))
            .collect()
            .await;
        let mut failed = BTreeMap::new();
        let mut blocks = self
            .blocks
            .write()
            .map_err(|_| Error::Limit("block set lock poisoned".into()))?;
        for (meta, r) in loaded {
            let id = meta.ulid.clone();
            match r {
                Ok(b) => {
                    tracing::info!(block = %id, "loaded new block");
                    blocks.insert(id, Arc::new(b));
                    stats.added += 1;
                }
                Err(e) => {
                    tracing::warn!(block = %id, err = %e, "loading block failed; skipped, queries over its time range warn");
                    failed.insert(id, (meta, e.to_string()));
                    stats.failed += 1;
                }
            }
        }
        if let Ok(mut f) = self.failed.write() {
            *f = failed;
        }
        let gone: Vec<String> = blocks
            .keys()
            .filter(|k| !want_ids.contains(*k))
            .cloned()
            .collect();
        for id in gone {
            blocks.remove(&id);
            let _ = std::fs::remove_dir_all(self.cfg.data_dir.join(&id));
            tracing::info!(block = %id, "dropped block");
            stats.removed += 1;
        }
        stats.loaded = blocks.len();
        drop(blocks);
        stats.view = view;
        self.synced.store(true, Ordering::Release);
        Ok(stats)
    }

    /// Warnings for the blocks that failed to load and might hold data for the request.
    fn missing_block_warnings(
        &self,
        min_t: i64,
        max_t: i64,
        matchers: &[tsdb::Matcher],
    ) -> Vec<String> {
        let failed = self.failed.read().map(|f| f.clone()).unwrap_or_default();
        failed
            .values()
            .filter(|(m, _)| m.max_time > min_t && m.min_time <= max_t)
            .filter(|(m, _)| {
                let ext = Labels::from_pairs(m.external_labels());
                matchers
                    .iter()
                    .all(|mt| ext.get(&mt.name).is_none_or(|v| mt.matches(v)))
            })
            .map(|(m, e)| {
                format!(
                    "block {} ({} to {}) could not be loaded and is missing from this answer: {}",
                    m.ulid,
                    tsdb::time::format_rfc3339(m.min_time),
                    tsdb::time::format_rfc3339(m.max_time),
                    bounded(e)
                )
            })
            .collect()
    }

    /// Checks a request's matchers against the limits and compiles them, off the async threads.
    async fn checked_matchers(&self, m: &[pb::LabelMatcher]) -> Result<Vec<tsdb::Matcher>, Status> {
        let limit = self.cfg.request_matchers_limit;
        if limit > 0 && m.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "request has {} label matchers, more than the limit of {limit} (--store.limits.request-matchers)",
                m.len()
            )));
        }
        let regex_limit = self.cfg.regex_bytes_limit;
        if regex_limit > 0 {
            if let Some(big) = m.iter().find(|x| x.value.len() > regex_limit) {
                return Err(Status::resource_exhausted(format!(
                    "label matcher on {:?} has a value of {} bytes, more than the limit of {regex_limit} (--store.limits.regex-bytes)",
                    bounded(&big.name),
                    big.value.len()
                )));
            }
        }
        // Equality matchers and short patterns compile in microseconds, quicker than a
        // thread hop; long patterns compile on the blocking pool.
        let pattern_bytes: usize = m
            .iter()
            .filter(|x| {
                x.r#type == pb::label_matcher::Type::Re as i32
                    || x.r#type == pb::label_matcher::Type::Nre as i32
            })
            .map(|x| x.value.len())
            .sum();
        let compiled = if pattern_bytes <= SMALL_PATTERN_BYTES {
            matchers_from_pb(m)
        } else {
            let owned = m.to_vec();
            tokio::task::spawn_blocking(move || matchers_from_pb(&owned))
                .await
                .map_err(|e| Status::internal(format!("compiling matchers: {e}")))?
        };
        compiled.map_err(|e| Status::invalid_argument(bounded(&e)))
    }

    /// Blocks of any resolution overlapping `[min_t, max_t]` (for the label calls).
    fn blocks_in(&self, min_t: i64, max_t: i64) -> Vec<Arc<BucketBlock>> {
        self.blocks()
            .into_iter()
            .filter(|b| b.meta.max_time > min_t && b.meta.min_time <= max_t)
            .collect()
    }

    /// The blocks a Series call reads, chosen as Thanos does: over `[min_t, max_t]`, blocks of
    /// the coarsest resolution not above `max_resolution`, the time they leave uncovered
    /// filled from the next finer resolution, down to raw data.
    fn blocks_for_series(
        &self,
        min_t: i64,
        max_t: i64,
        max_resolution: i64,
    ) -> Vec<Arc<BucketBlock>> {
        let mut levels: BTreeMap<std::cmp::Reverse<i64>, Vec<Arc<BucketBlock>>> = BTreeMap::new();
        for b in self.blocks() {
            if b.meta.resolution() <= max_resolution.max(0) {
                levels
                    .entry(std::cmp::Reverse(b.meta.resolution()))
                    .or_default()
                    .push(b);
            }
        }
        let mut levels: Vec<Vec<Arc<BucketBlock>>> = levels.into_values().collect();
        for l in &mut levels {
            l.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        }
        let mut out = Vec::new();
        fill_from_levels(&levels, min_t, max_t, &mut out);
        out
    }
}

/// The chunk bytes a Series call over `blocks` blocks of a remote bucket reads per step:
/// `per_four_blocks` for every four blocks, up to eight times that. Each step costs a GET
/// per block, so a long range over many blocks takes few steps (a 7-day query over 14
/// blocks: 3 GETs per block instead of 5), while the memory a call holds stays bounded.
fn batch_bytes_for(per_four_blocks: u64, blocks: usize) -> u64 {
    let scale = (blocks as u64).div_ceil(4).clamp(1, 8);
    per_four_blocks.max(1).saturating_mul(scale)
}

/// Covers `[min_t, max_t]` with the blocks of `levels[0]` (coarsest first, each sorted by
/// time), filling what they leave uncovered from the finer levels.
fn fill_from_levels(
    levels: &[Vec<Arc<BucketBlock>>],
    min_t: i64,
    max_t: i64,
    out: &mut Vec<Arc<BucketBlock>>,
) {
    let Some((level, finer)) = levels.split_first() else {
        return;
    };
    if min_t > max_t {
        return;
    }
    let mut start = min_t;
    for b in level {
        if b.meta.max_time <= min_t {
            continue;
        }
        if b.meta.min_time > max_t {
            break;
        }
        fill_from_levels(finer, start, b.meta.min_time - 1, out);
        out.push(b.clone());
        start = start.max(b.meta.max_time);
    }
    fill_from_levels(finer, start, max_t, out);
}

/// The chunk-reading half of a Series call: walks the planned series in batches, reading
/// each batch's chunks from its blocks (concurrently) and yielding frames, so a call holds
/// one batch of chunks at a time.
struct SeriesBatches {
    plan: Plan,
    /// The next series of the plan to send.
    next: usize,
    /// Warnings and errors to send before the next series.
    ready: std::collections::VecDeque<Result<pb::SeriesResponse, Status>>,
    /// Series of the plan whose chunks are read and whose frames are still to be built,
    /// and those chunks, per block in the order of the series.
    pending: std::ops::Range<usize>,
    fetched: BTreeMap<u32, std::vec::IntoIter<FetchedChunk>>,
    skip_chunks: bool,
    aggregates: Vec<pb::Aggr>,
    /// Chunk bytes of the next step, and of the largest (steps double up to it).
    step_bytes: u64,
    batch_bytes: u64,
    abort: bool,
    failed: BTreeSet<usize>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    stats: SentStats,
}

/// What a Series call sent, reported under Thanos's names when the call ends.
struct SentStats {
    started: std::time::Instant,
    series: u64,
    chunks: u64,
    chunk_size: telemetry::LocalHistogram,
}

impl SentStats {
    fn new() -> Self {
        SentStats {
            started: std::time::Instant::now(),
            series: 0,
            chunks: 0,
            chunk_size: telemetry::histogram(
                "thanos_bucket_store_sent_chunk_size_bytes",
                "Size in bytes of the chunks for the single series, which is adequate to the gRPC message size sent to querier.",
                &[("tenant", "default-tenant")],
                &[32.0, 256.0, 512.0, 1024.0, 32768.0, 262_144.0, 524_288.0, 1_048_576.0],
            )
            .local(),
        }
    }
}

impl Drop for SentStats {
    fn drop(&mut self) {
        series_histogram(
            "thanos_bucket_store_series_merge_duration_seconds",
            "Time it takes to merge sub-results from all queried blocks into a single result.",
            SECONDS,
        )
        .observe(self.started.elapsed().as_secs_f64());
        // Every series and chunk read is sent: touched and fetched count the same items.
        for name in [
            "thanos_bucket_store_series_data_touched",
            "thanos_bucket_store_series_data_fetched",
        ] {
            for (kind, n) in [("series", self.series), ("chunks", self.chunks)] {
                telemetry::summary(
                    name,
                    "Number of items of a data type touched or retrieved to fulfill a single Store API series request.",
                    &[("data_type", kind), ("tenant", "default-tenant")],
                )
                .observe(n as f64);
            }
        }
    }
}

impl SeriesBatches {
    async fn next_frame(&mut self) -> Option<Result<pb::SeriesResponse, Status>> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            if let Some(i) = self.pending.next() {
                if let Some(frame) = self.frame(i) {
                    return Some(frame);
                }
                continue;
            }
            // Whole series up to about `step_bytes` of chunks.
            let start = self.next;
            let mut bytes = 0u64;
            while self.next < self.plan.len() && (bytes < self.step_bytes || self.next == start) {
                bytes += self.plan.chunk_bytes(self.next);
                self.next += 1;
            }
            if self.next == start {
                return None;
            }
            self.step_bytes = (self.step_bytes * 2).min(self.batch_bytes);
            self.read_batch(start..self.next).await;
        }
    }

    /// Reads the chunks of `batch` (a range of the plan) from its blocks, concurrently;
    /// their frames are built one at a time as they are sent ([`Self::frame`]).
    async fn read_batch(&mut self, batch: std::ops::Range<usize>) {
        self.fetched.clear();
        self.pending = batch.clone();
        if self.skip_chunks {
            return;
        }
        // Per block, the metas of the batch's series in order.
        let mut per_block: BTreeMap<u32, Vec<ChunkToRead>> = BTreeMap::new();
        for i in batch {
            for &part in self.plan.parts(i) {
                if !self.failed.contains(&(part.block as usize)) {
                    per_block
                        .entry(part.block)
                        .or_default()
                        .extend_from_slice(self.plan.chunks(part));
                }
            }
        }
        let blocks = self.plan.blocks();
        let reads =
            futures::future::join_all(per_block.iter().map(|(&b, metas)| async move {
                (b, blocks[b as usize].fetch_chunks(metas).await)
            }))
            .await;
        drop(per_block);
        for (b, r) in reads {
            match r {
                Ok(c) => {
                    self.fetched.insert(b, c.into_iter());
                }
                Err(e) => {
                    if self.block_failed(b, e) {
                        return;
                    }
                }
            }
        }
    }

    /// Notes that block `b` failed: ends the call with the error when partial responses
    /// are off (returns true), else warns and leaves the block out from here on.
    fn block_failed(&mut self, b: u32, e: Error) -> bool {
        let id = &self.plan.blocks()[b as usize].id;
        tracing::warn!(block = %id, err = %e, "reading chunks failed");
        self.fetched.remove(&b);
        if self.abort {
            self.ready.push_back(Err(status(e)));
            self.next = self.plan.len();
            self.pending = 0..0;
            return true;
        }
        self.ready
            .push_back(Ok(warning_frame(format!("block {id}: {e}"))));
        self.failed.insert(b as usize);
        false
    }

    /// The frame of series `i` of the read batch, with its chunks from every block; `None`
    /// when it has none left.
    fn frame(&mut self, i: usize) -> Option<Result<pb::SeriesResponse, Status>> {
        if self.skip_chunks {
            return Some(Ok(series_frame(pb::Series {
                labels: self.plan.labels(i),
                chunks: Vec::new(),
            })));
        }
        let parts = self.plan.parts(i).len();
        let wanted = (self.plan.parts(i).iter())
            .map(|&p| self.plan.chunks(p).len())
            .sum();
        let mut chunks = Vec::with_capacity(wanted);
        for k in 0..parts {
            let part = self.plan.parts(i)[k];
            let n = self.plan.chunks(part).len();
            let Some(it) = self.fetched.get_mut(&part.block) else {
                continue;
            };
            let block = &self.plan.blocks()[part.block as usize];
            let mut failure = None;
            for c in it.by_ref().take(n) {
                match block.wire_chunk(c, &self.aggregates) {
                    Ok(Some(c)) => chunks.push(c),
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failure {
                if self.block_failed(part.block, e) {
                    return self.ready.pop_front();
                }
                // The block's chunks already in `chunks` stay: they were read correctly.
            }
        }
        if chunks.is_empty() {
            return None;
        }
        storeapi::proxy::sort_and_dedup_chunks(&mut chunks);
        self.stats.series += 1;
        self.stats.chunks += chunks.len() as u64;
        let bytes: usize = chunks
            .iter()
            .map(|c| c.raw.as_ref().map_or(0, |r| r.data.len()))
            .sum();
        self.stats.chunk_size.observe(bytes as f64);
        Some(Ok(series_frame(pb::Series {
            labels: self.plan.labels(i),
            chunks,
        })))
    }
}

fn status(e: Error) -> Status {
    e.into()
}

/// Error texts that go into gRPC trailers stay small.
fn bounded(s: &str) -> String {
    storeapi::server::bounded_message(s)
}

#[async_trait::async_trait]
impl SeriesStore for BucketStore {
    fn name(&self) -> String {
        "store".into()
    }

    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        let blocks = self.blocks();
        let mut sets: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for b in &blocks {
            sets.insert(
                b.ext_labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
            );
            min_t = min_t.min(b.meta.min_time);
            max_t = max_t.max(b.meta.max_time);
        }
        min_t = min_t.max(self.cfg.min_time);
        max_t = max_t.min(self.cfg.max_time);
        if blocks.is_empty() || min_t > max_t {
            (min_t, max_t) = (-1, -1);
        }
        Ok(pb::info::InfoResponse {
            label_sets: sets
                .into_iter()
                .map(|s| pb::ZLabelSet {
                    labels: labels_to_pb(&Labels::from_pairs(s)),
                })
                .collect(),
            component_type: "store".into(),
            store: Some(pb::info::StoreInfo {
                min_time: min_t,
                max_time: max_t,
                supports_without_replica_labels: true,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let matchers = self.checked_matchers(&req.matchers).await?;
        let waited = std::time::Instant::now();
        let slot = self
            .series_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("store gateway shutting down"))?;
        series_histogram(
            "thanos_bucket_store_series_gate_duration_seconds",
            "Time it takes for a series request to wait at the gate.",
            SECONDS,
        )
        .observe(waited.elapsed().as_secs_f64());
        let started = std::time::Instant::now();
        // --min-time/--max-time bound what is served, not only which blocks are loaded.
        let mut req = req;
        req.min_time = req.min_time.max(self.cfg.min_time);
        req.max_time = req.max_time.min(self.cfg.max_time);
        let blocks = self.blocks_for_series(req.min_time, req.max_time, req.max_resolution_window);
        let q = BlockQuery {
            matchers: &matchers,
            min_time: req.min_time,
            max_time: req.max_time,
        };
        let abort = req.partial_response_strategy == pb::PartialResponseStrategy::Abort as i32;
        let results = futures::future::join_all(blocks.iter().map(|b| b.select(&q))).await;
        let mut selections = Vec::with_capacity(results.len());
        let mut ready: std::collections::VecDeque<Result<pb::SeriesResponse, Status>> = self
            .missing_block_warnings(req.min_time, req.max_time, &matchers)
            .into_iter()
            .map(|w| Ok(warning_frame(w)))
            .collect();
        for (i, (b, r)) in blocks.iter().zip(results).enumerate() {
            match r {
                Ok(l) => selections.push((i, l)),
                Err(e) => {
                    tracing::warn!(block = %b.id, err = %e, "series lookup failed");
                    if abort {
                        return Err(status(e));
                    }
                    ready.push_back(Ok(warning_frame(format!("block {}: {e}", b.id))));
                }
            }
        }
        let without = req.without_replica_labels.clone();
        let selected: usize = selections.iter().map(|(_, l)| l.len()).sum();
        let blocks_queried = blocks.len();
        // Ordering a few series is quicker than a thread hop.
        let plan = blocking_unless(selected <= 1024, move || {
            Ok(Plan::new(blocks, selections, without))
        })
        .await
        .map_err(status)?;
        let series_count = plan.len();
        series_histogram(
            "thanos_bucket_store_series_blocks_queried",
            "Number of blocks in a bucket store that were touched to satisfy a query.",
            COUNTS,
        )
        .observe(blocks_queried as f64);
        series_histogram(
            "thanos_bucket_store_series_result_series",
            "Number of series observed in the final result of a query.",
            COUNTS,
        )
        .observe(series_count as f64);
        series_histogram(
            "thanos_bucket_store_series_get_all_duration_seconds",
            "Time it takes until all per-block prepares and loads for a query are finished.",
            SECONDS,
        )
        .observe(started.elapsed().as_secs_f64());
        let series_limit = self.cfg.request_series_limit;
        if series_limit > 0 && series_count as u64 > series_limit {
            return Err(Status::resource_exhausted(format!(
                "exceeded series limit: limit {series_limit} violated (got {series_count})"
            )));
        }
        let samples_limit = self.cfg.request_samples_limit;
        if samples_limit > 0 && !req.skip_chunks {
            let chunks = plan.total_chunks() as u64;
            if chunks * SAMPLES_PER_CHUNK as u64 > samples_limit {
                return Err(Status::resource_exhausted(format!(
                    "exceeded samples limit: limit {samples_limit} violated (got {})",
                    chunks * SAMPLES_PER_CHUNK as u64
                )));
            }
        }
        if self.cfg.series_sample_limit > 0 && !req.skip_chunks {
            let chunks = plan.total_chunks() as i64;
            if chunks * SAMPLES_PER_CHUNK > self.cfg.series_sample_limit {
                return Err(Status::resource_exhausted(format!(
                    "exceeded samples limit: {} chunks × {SAMPLES_PER_CHUNK} samples > limit {}",
                    chunks, self.cfg.series_sample_limit
                )));
            }
        }
        // A filesystem bucket (exact reads, no range gap) answers a read at the cost of a
        // few system calls: there a call over one or two blocks (an instant query) starts
        // with a quarter step and doubles, so that the first series go out while the rest
        // are read, at one or two reads more per block.
        let (step_bytes, batch_bytes) = if self.cfg.range_gap > 0 {
            let b = batch_bytes_for(self.cfg.series_batch_bytes, blocks_queried);
            (b, b)
        } else {
            let b = self.cfg.series_batch_bytes.max(1);
            let first = if blocks_queried <= 2 {
                (b / 4).max(1)
            } else {
                b
            };
            (first, b)
        };
        let batches = SeriesBatches {
            plan,
            next: 0,
            ready,
            pending: 0..0,
            fetched: BTreeMap::new(),
            skip_chunks: req.skip_chunks,
            aggregates: req.aggregates().collect(),
            step_bytes,
            batch_bytes,
            abort,
            failed: BTreeSet::new(),
            _slot: slot,
            stats: SentStats::new(),
        };
        Ok(futures::stream::unfold(batches, |mut b| async move {
            let frame = b.next_frame().await?;
            Some((frame, b))
        })
        .boxed())
    }

    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        let mut names = BTreeSet::new();
        let warnings = self.missing_block_warnings(req.start, req.end, &[]);
        if req.matchers.is_empty() {
            for b in self.blocks_in(req.start, req.end) {
                names.extend(b.header().label_names().into_iter().map(String::from));
                names.extend(b.ext_labels.iter().map(|l| l.name.clone()));
            }
        } else {
            for s in self
                .matching_label_sets(&req.matchers, req.start, req.end)
                .await?
            {
                names.extend(s.iter().map(|l| l.name_str().to_string()));
            }
        }
        Ok(pb::LabelNamesResponse {
            names: names.into_iter().collect(),
            warnings,
            ..Default::default()
        })
    }

    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        let mut values = BTreeSet::new();
        let warnings = self.missing_block_warnings(req.start, req.end, &[]);
        if req.matchers.is_empty() {
            for b in self.blocks_in(req.start, req.end) {
                if let Some(v) = b.ext_labels.get(&req.label) {
                    values.insert(v.to_string());
                    continue;
                }
                let vs = b
                    .header()
                    .label_values(&req.label)
                    .map_err(|e| status(e.into()))?;
                values.extend(vs.into_iter().map(String::from));
            }
        } else {
            for s in self
                .matching_label_sets(&req.matchers, req.start, req.end)
                .await?
            {
                if let Some(l) = s.iter().find(|l| l.name == req.label) {
                    values.insert(l.value_str().to_string());
                }
            }
        }
        Ok(pb::LabelValuesResponse {
            values: values.into_iter().collect(),
            warnings,
            ..Default::default()
        })
    }
}

impl BucketStore {
    async fn matching_label_sets(
        &self,
        m: &[pb::LabelMatcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Vec<pb::Label>>, Status> {
        let req = pb::SeriesRequest {
            min_time: start,
            max_time: end,
            matchers: m.to_vec(),
            skip_chunks: true,
            ..Default::default()
        };
        let mut stream = self.series(req).await?;
        let mut out = Vec::new();
        while let Some(f) = stream.next().await {
            if let Some(pb::series_response::Result::Series(s)) = f?.result {
                out.push(s.labels);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::batch_bytes_for;

    #[test]
    fn reads_per_step_grow_with_the_blocks_a_call_touches() {
        assert_eq!(batch_bytes_for(4 << 20, 1), 4 << 20);
        assert_eq!(batch_bytes_for(4 << 20, 4), 4 << 20);
        assert_eq!(batch_bytes_for(4 << 20, 14), 16 << 20);
        assert_eq!(batch_bytes_for(4 << 20, 400), 32 << 20);
        assert_eq!(batch_bytes_for(0, 0), 1);
    }
}
