//! One compactor iteration, as Thanos's: sync the bucket's view, delete blocks whose
//! deletion mark is old enough, mark redundant blocks (their sources are in another block)
//! for deletion, compact every group until no group has a plan, downsample in two passes
//! (raw → 5m, then 5m → 1h), apply retention per resolution, and delete partial uploads
//! left for two days.
//!
//! Nothing is ever deleted before what replaces it is complete in the bucket: a compacted or
//! downsampled block is uploaded with meta.json last, and only then are its sources marked;
//! marked blocks are deleted after `--delete-delay`. Killed at any point, the next iteration
//! finds a consistent bucket: an upload without meta.json is invisible (and cleaned up), a
//! compacted block whose sources were not marked yet makes them redundant (and marked).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bucket::fetcher::{Filters, View};
use bucket::relabel::Relabel;
use bucket::Bucket;
use tsdb::meta::BlockMeta;

use crate::error::{from_bucket, CompactError, Result};
use crate::group::{self, Group};
use crate::merge::VerticalMerge;
use crate::metrics::Metrics;
use crate::planner;

/// Partial uploads younger than this are left alone (they may still be uploading).
pub const PARTIAL_UPLOAD_THRESHOLD_MS: i64 = 48 * 3_600_000;
/// A raw block is downsampled to 5m once it spans this much.
pub const DOWNSAMPLE_RAW_MIN_SPAN_MS: i64 = 40 * 3_600_000;
/// A 5m block is downsampled to 1h once it spans this much.
pub const DOWNSAMPLE_5M_MIN_SPAN_MS: i64 = 10 * 24 * 3_600_000;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Compaction levels (ms); see [`planner::ranges_for_level`].
    pub ranges: Vec<i64>,
    /// Merge overlapping blocks (vertical compaction) instead of halting on them.
    pub vertical: bool,
    pub merge: VerticalMerge,
    pub replica_labels: Vec<String>,
    pub consistency_delay_ms: i64,
    pub delete_delay_ms: i64,
    /// Retention of raw, 5m and 1h blocks (ms); 0 keeps them forever.
    pub retention_ms: [i64; 3],
    pub downsampling: bool,
    pub compact_concurrency: usize,
    pub fetch_concurrency: usize,
    pub downsample_concurrency: usize,
    pub meta_fetch_concurrency: usize,
    /// Mark blocks with out-of-order chunks no-compact instead of failing.
    pub skip_out_of_order_chunks: bool,
    /// Plans whose sources' indexes add up to more than this are cut down (bytes).
    pub block_max_index_size: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub relabel: Relabel,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            ranges: planner::DEFAULT_RANGES.to_vec(),
            vertical: false,
            merge: VerticalMerge::OneToOne,
            replica_labels: Vec::new(),
            consistency_delay_ms: 30 * 60_000,
            delete_delay_ms: 48 * 3_600_000,
            retention_ms: [0; 3],
            downsampling: true,
            compact_concurrency: 1,
            fetch_concurrency: 1,
            downsample_concurrency: 1,
            meta_fetch_concurrency: 32,
            skip_out_of_order_chunks: false,
            block_max_index_size: 64 << 30,
            min_time: None,
            max_time: None,
            relabel: Relabel::default(),
        }
    }
}

impl Config {
    /// Thanos's checks: with downsampling on, raw data must outlive the 40h after which it
    /// is downsampled, and 5m data the 10 days after which it is.
    pub fn validate(&self) -> Result<()> {
        let [raw, five, _] = self.retention_ms;
        if self.downsampling && raw != 0 && raw < DOWNSAMPLE_RAW_MIN_SPAN_MS {
            return Err(CompactError::Fail(
                "raw resolution must be higher than the minimum block size after which 5m resolution downsampling will occur (40 hours)".into(),
            ));
        }
        if self.downsampling && five != 0 && five < DOWNSAMPLE_5M_MIN_SPAN_MS {
            return Err(CompactError::Fail(
                "5m resolution retention must be higher than the minimum block size after which 1h resolution downsampling will occur (10 days)".into(),
            ));
        }
        if self.merge == VerticalMerge::Penalty && self.replica_labels.is_empty() {
            return Err(CompactError::Fail(
                "penalty based deduplication needs at least one replica label specified".into(),
            ));
        }
        if self.compact_concurrency == 0 {
            return Err(CompactError::Fail(
                "invalid concurrency level (0), concurrency level must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Where long steps report how far they are (a progress bar on a terminal).
pub trait Progress: Send + Sync {
    fn report(&self, phase: &str, done: usize, total: usize);
}

pub struct Compactor {
    pub(crate) bucket: Bucket,
    pub(crate) cfg: Config,
    pub(crate) metrics: Metrics,
    pub(crate) progress: Option<Arc<dyn Progress>>,
    /// Set to stop long work between series.
    pub(crate) cancel: Arc<AtomicBool>,
}

impl Compactor {
    pub fn new(bucket: Bucket, cfg: Config) -> Compactor {
        let metrics = Metrics::register();
        metrics
            .delete_delay_seconds
            .set(cfg.delete_delay_ms as f64 / 1000.0);
        metrics
            .consistency_delay_seconds
            .set(cfg.consistency_delay_ms as f64 / 1000.0);
        metrics.halted.set(0.0);
        Compactor {
            bucket,
            cfg,
            metrics,
            progress: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn with_progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = Some(p);
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A flag that, once set, makes running work stop at the next series.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    pub(crate) fn report(&self, phase: &str, done: usize, total: usize) {
        if let Some(p) = &self.progress {
            p.report(phase, done, total);
        }
    }

    pub(crate) fn compact_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("compact")
    }

    pub(crate) fn downsample_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("downsample")
    }

    /// The bucket as the compactor sees it.
    pub async fn sync(&self) -> Result<View> {
        let filters = Filters {
            min_time: self.cfg.min_time,
            max_time: self.cfg.max_time,
            relabel: self.cfg.relabel.clone(),
            consistency_delay_ms: self.cfg.consistency_delay_ms,
            ignore_deletion_marks_delay_ms: Some(self.cfg.delete_delay_ms / 2),
            replica_labels: self.cfg.replica_labels.clone(),
            deduplicate: true,
            gather_marks: true,
            concurrency: self.cfg.meta_fetch_concurrency,
        };
        let view = bucket::fetcher::fetch(self.bucket.as_ref(), &filters, tsdb::time::now_ms())
            .await
            .map_err(|e| from_bucket("sync", e))?;
        for (id, e) in &view.unreadable {
            tracing::error!(block = %id, err = %e, "block with unreadable meta.json left alone: fix or remove it");
        }
        for (state, n) in &view.synced {
            telemetry::gauge(
                "thanos_blocks_meta_synced",
                "Number of block metadata synced",
                &[("state", state)],
            )
            .set(*n as f64);
        }
        Ok(view)
    }

    /// One iteration; see the module doc.
    pub async fn run_once(&self) -> Result<()> {
        self.compact_all()
            .await
            .map_err(|e| e.context("compaction"))?;
        if self.cfg.downsampling {
            tracing::info!("start first pass of downsampling");
            let view = self
                .sync()
                .await
                .map_err(|e| e.context("sync before first pass of downsampling"))?;
            self.downsample_pass(&view)
                .await
                .map_err(|e| e.context("first pass of downsampling failed"))?;
            tracing::info!("start second pass of downsampling");
            let view = self
                .sync()
                .await
                .map_err(|e| e.context("sync before second pass of downsampling"))?;
            self.downsample_pass(&view)
                .await
                .map_err(|e| e.context("second pass of downsampling failed"))?;
            tracing::info!("downsampling iterations done");
        } else {
            tracing::info!("downsampling was explicitly disabled");
        }
        let view = self
            .sync()
            .await
            .map_err(|e| e.context("sync before retention"))?;
        self.apply_retention(&view)
            .await
            .map_err(|e| e.context("retention failed"))?;
        self.clean_partial_uploads(&view).await;
        self.metrics.cleanup_loops.inc();
        let view = self.sync().await?;
        self.update_progress(&view);
        Ok(())
    }

    /// Compacts every group until none has a plan.
    async fn compact_all(&self) -> Result<()> {
        let mut round = 0;
        loop {
            round += 1;
            let view = self.sync().await.map_err(|e| e.context("sync"))?;
            let deleted = self
                .delete_marked(&view)
                .await
                .map_err(|e| e.context("cleaning marked blocks"))?;
            let collected = self
                .garbage_collect(&view, &deleted)
                .await
                .map_err(|e| e.context("garbage"))?;
            let gone: HashSet<&String> = deleted.iter().chain(collected.iter()).collect();
            let metas: Vec<BlockMeta> = view
                .metas
                .iter()
                .filter(|m| !gone.contains(&m.ulid))
                .cloned()
                .collect();
            let groups = group::groups(&metas);
            self.clean_local_dir(&self.compact_dir(), &groups);
            let todo: Vec<Group> = groups.into_iter().filter(|g| g.metas.len() > 1).collect();
            let sem = Arc::new(tokio::sync::Semaphore::new(
                self.cfg.compact_concurrency.max(1),
            ));
            let no_compact = &view.no_compact;
            let results = futures::future::join_all(todo.iter().map(|g| {
                let sem = sem.clone();
                async move {
                    let _slot = sem.acquire().await;
                    let r = self.compact_group(g, no_compact).await;
                    (g, r)
                }
            }))
            .await;
            let mut rerun = false;
            let mut errors: Vec<CompactError> = Vec::new();
            for (g, r) in results {
                match r {
                    Ok(again) => rerun |= again,
                    Err(e) => errors.push(e.context(format!("group {}", g.key))),
                }
            }
            if let Some(i) = errors.iter().position(|e| e.is_halt()) {
                return Err(errors.swap_remove(i));
            }
            if let Some(e) = errors.into_iter().next() {
                return Err(e);
            }
            if !rerun {
                tracing::info!(rounds = round, "compaction iterations done");
                return Ok(());
            }
        }
    }

    /// Removes everything in `dir` that is not `<group key>/<ULID>` of a current block.
    fn clean_local_dir(&self, dir: &Path, groups: &[Group]) {
        let keep: HashSet<PathBuf> = groups
            .iter()
            .flat_map(|g| g.metas.iter().map(move |m| dir.join(&g.key).join(&m.ulid)))
            .collect();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(inner) = std::fs::read_dir(&p) {
                    for b in inner.flatten() {
                        if !keep.contains(&b.path()) {
                            let _ = std::fs::remove_dir_all(b.path());
                        }
                    }
                }
                let _ = std::fs::remove_dir(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    /// Deletes blocks whose deletion mark is older than `--delete-delay`; returns their ids.
    pub async fn delete_marked(&self, view: &View) -> Result<Vec<String>> {
        let now = tsdb::time::now_ms();
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (id, mark) in &view.deletion_marks {
            if now - mark.deletion_time * 1000 <= self.cfg.delete_delay_ms {
                continue;
            }
            let Ok(ulid) = id.parse::<ulid::Ulid>() else {
                continue;
            };
            match bucket::block::delete_block(self.bucket.as_ref(), ulid).await {
                Ok(()) => {
                    self.metrics.blocks_cleaned.inc();
                    tracing::info!(block = %id, "deleted block marked for deletion");
                    deleted.push(id.clone());
                }
                Err(e) => {
                    self.metrics.cleanup_failures.inc();
                    errors.push(format!("delete block {id}: {e}"));
                }
            }
        }
        if !errors.is_empty() {
            return Err(CompactError::Retry(errors.join("; ")));
        }
        Ok(deleted)
    }

    /// Marks blocks whose sources another block holds (`view.duplicates`) for deletion.
    async fn garbage_collect(&self, view: &View, just_deleted: &[String]) -> Result<Vec<String>> {
        let started = std::time::Instant::now();
        let mut marked = Vec::new();
        for id in &view.duplicates {
            if view.deletion_marks.contains_key(id) || just_deleted.contains(id) {
                continue;
            }
            tracing::info!(block = %id, "marking outdated block for deletion");
            if let Err(e) = self.mark_for_deletion(id, "outdated block").await {
                self.metrics.gc_failures.inc();
                return Err(e.context(format!("mark block {id} for deletion")));
            }
            self.metrics.garbage_collected.inc();
            marked.push(id.clone());
        }
        self.metrics.gc_runs.inc();
        telemetry::histogram(
            "thanos_compact_garbage_collection_duration_seconds",
            "Time it took to perform garbage collection iteration.",
            &[],
            &[
                0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0, 240.0,
                360.0, 720.0,
            ],
        )
        .observe(started.elapsed().as_secs_f64());
        Ok(marked)
    }

    pub(crate) async fn mark_for_deletion(&self, id: &str, details: &str) -> Result<()> {
        let ulid: ulid::Ulid = id
            .parse()
            .map_err(|_| CompactError::Fail(format!("{id} is not a ULID")))?;
        let existed = bucket::markers::deletion_mark(self.bucket.as_ref(), ulid)
            .await
            .map_err(|e| from_bucket(format!("read deletion mark of {id}"), e))?
            .is_some();
        bucket::markers::mark_for_deletion(self.bucket.as_ref(), ulid, details)
            .await
            .map_err(|e| from_bucket(format!("mark {id} for deletion"), e))?;
        if !existed {
            self.metrics.marked_for_deletion.inc();
            tracing::info!(block = %id, details, "block has been marked for deletion");
        }
        Ok(())
    }

    /// Marks blocks past their resolution's retention for deletion.
    pub async fn apply_retention(&self, view: &View) -> Result<()> {
        tracing::info!("start optional retention");
        let now = tsdb::time::now_ms();
        for m in &view.metas {
            let d = retention_of(&self.cfg.retention_ms, m.resolution());
            if d == 0 || view.deletion_marks.contains_key(&m.ulid) {
                continue;
            }
            if now > m.max_time / 1000 * 1000 + d {
                let details = format!(
                    "block exceeding retention of {}",
                    tsdb::time::go_duration_string(d)
                );
                tracing::info!(block = %m.ulid, max_time = m.max_time, "applying retention: marking block for deletion");
                self.mark_for_deletion(&m.ulid, &details)
                    .await
                    .map_err(|e| e.context("delete block"))?;
            }
        }
        tracing::info!("optional retention apply done");
        Ok(())
    }

    /// Deletes uploads that never got their meta.json and have not changed for two days,
    /// and finishes deleting blocks whose deletion was interrupted (deletion mark, no meta).
    /// Best effort: failures are counted and logged.
    pub async fn clean_partial_uploads(&self, view: &View) {
        let now = tsdb::time::now_ms();
        for id in &view.partial {
            let name = id.to_string();
            let (newest, interrupted_deletion) = match self.partial_state(&name).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(block = %name, err = %e, "inspecting partial upload failed");
                    continue;
                }
            };
            let due = match interrupted_deletion {
                Some(deletion_time_ms) => now - deletion_time_ms > self.cfg.delete_delay_ms,
                None => {
                    now - newest.unwrap_or(id.timestamp_ms() as i64) > PARTIAL_UPLOAD_THRESHOLD_MS
                }
            };
            if !due {
                continue;
            }
            self.metrics.partial_deletion_attempts.inc();
            match bucket::block::delete_block(self.bucket.as_ref(), *id).await {
                Ok(()) => {
                    self.metrics.blocks_cleaned.inc();
                    tracing::info!(block = %name, "deleted aborted partial upload");
                }
                Err(e) => {
                    self.metrics.cleanup_failures.inc();
                    tracing::warn!(block = %name, err = %e, "deleting aborted partial upload failed");
                }
            }
        }
    }

    /// The newest modification time of a partial block's objects, and its deletion time if
    /// it carries a deletion mark.
    async fn partial_state(&self, id: &str) -> Result<(Option<i64>, Option<i64>)> {
        use futures::TryStreamExt;
        let prefix = bucket::ObjectPath::from(id);
        let objects: Vec<object_store::ObjectMeta> = self
            .bucket
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| CompactError::Retry(format!("list {id}: {e}")))?;
        let newest = objects
            .iter()
            .map(|o| o.last_modified.timestamp_millis())
            .max();
        let mark = match id.parse::<ulid::Ulid>() {
            Ok(u) => bucket::markers::deletion_mark(self.bucket.as_ref(), u)
                .await
                .ok()
                .flatten()
                .map(|m| m.deletion_time * 1000),
            Err(_) => None,
        };
        Ok((newest, mark))
    }

    /// The `thanos_compact_todo_*` gauges: compactions and blocks still to do.
    pub fn update_progress(&self, view: &View) {
        let mut compactions = 0;
        let mut blocks = 0;
        for g in group::groups(&view.metas) {
            let mut metas = g.metas.clone();
            loop {
                let refs: Vec<&BlockMeta> = metas.iter().collect();
                let plan: Vec<String> = planner::plan(&self.cfg.ranges, &refs, &view.no_compact)
                    .iter()
                    .map(|m| m.ulid.clone())
                    .collect();
                if plan.is_empty() {
                    break;
                }
                compactions += 1;
                blocks += plan.len();
                let planned: HashSet<&String> = plan.iter().collect();
                let merged: Vec<&BlockMeta> =
                    metas.iter().filter(|m| planned.contains(&m.ulid)).collect();
                let mut synthetic = merged[0].clone();
                synthetic.ulid = format!("planned-{compactions}");
                synthetic.min_time = merged.iter().map(|m| m.min_time).min().unwrap_or(0);
                synthetic.max_time = merged.iter().map(|m| m.max_time).max().unwrap_or(0);
                synthetic.stats.num_tombstones = 0;
                metas.retain(|m| !planned.contains(&m.ulid));
                metas.push(synthetic);
                metas.sort_by_key(|m| m.min_time);
                if plan.len() == 1 {
                    break;
                }
            }
        }
        self.metrics.todo_compactions.set(compactions as f64);
        self.metrics.todo_compaction_blocks.set(blocks as f64);
        self.metrics
            .todo_downsample_blocks
            .set(if self.cfg.downsampling {
                to_downsample(view).len()
            } else {
                0
            } as f64);
        let now = tsdb::time::now_ms();
        let past = view
            .metas
            .iter()
            .filter(|m| {
                let d = retention_of(&self.cfg.retention_ms, m.resolution());
                d > 0 && now > m.max_time + d
            })
            .count();
        self.metrics.todo_deletion_blocks.set(past as f64);
    }
}

/// The retention for a resolution.
pub fn retention_of(retention: &[i64; 3], resolution: i64) -> i64 {
    match resolution {
        0 => retention[0],
        300_000 => retention[1],
        3_600_000 => retention[2],
        _ => 0,
    }
}

/// Blocks due for downsampling: raw blocks of at least 40h and 5m blocks of at least 10d
/// whose sources no block of the next resolution holds yet (no-downsample marks respected);
/// with the target resolution, by ULID.
pub fn to_downsample(view: &View) -> Vec<(BlockMeta, i64)> {
    let metas: Vec<&BlockMeta> = view
        .metas
        .iter()
        .filter(|m| !view.no_downsample.contains(&m.ulid))
        .collect();
    let sources_of = |res: i64| -> BTreeSet<&String> {
        metas
            .iter()
            .filter(|m| m.resolution() == res)
            .flat_map(|m| m.compaction.sources.iter())
            .collect()
    };
    let (s5m, s1h) = (sources_of(300_000), sources_of(3_600_000));
    let mut out = Vec::new();
    for m in &metas {
        let span = m.max_time - m.min_time;
        let covered = |s: &BTreeSet<&String>| m.compaction.sources.iter().all(|x| s.contains(x));
        match m.resolution() {
            0 if !covered(&s5m) && span >= DOWNSAMPLE_RAW_MIN_SPAN_MS => {
                out.push(((*m).clone(), 300_000))
            }
            300_000 if !covered(&s1h) && span >= DOWNSAMPLE_5M_MIN_SPAN_MS => {
                out.push(((*m).clone(), 3_600_000))
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.ulid.cmp(&b.0.ulid));
    out
}
