//! One group's compaction, as Thanos's `Group.Compact`: check for overlaps (a halt without
//! vertical compaction), plan (no-compact marks, the index-size and downsampled-overlap
//! guards that mark blocks no-compact and plan again), download and verify the planned
//! blocks, merge them into a new block, upload it (meta.json last), and only then mark the
//! sources for deletion.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use tsdb::meta::{BlockDesc, BlockMeta, Compaction, ThanosMeta};
use tsdb::verify::IssueKind;

use crate::compactor::Compactor;
use crate::error::{from_bucket, CompactError, Result};
use crate::group::Group;
use crate::merge::{self, Output};
use crate::planner;

/// What one planning step of a group did.
enum Step {
    /// Nothing to compact.
    Done,
    /// A block was marked no-compact: plan again from a fresh view.
    Replan,
    /// `sources` became `new` (or nothing, when everything in them was deleted).
    Compacted {
        sources: HashSet<String>,
        new: Option<Box<BlockMeta>>,
    },
}

/// Index size above which a plan is cut down, as a fraction of `--compact.block-max-index-size`.
const INDEX_SIZE_THRESHOLD: f64 = 0.85;

impl Compactor {
    /// Compacts what the planner picks in `group`; true when something was done (so the
    /// group should be planned again).
    pub(crate) async fn compact_group(
        &self,
        group: &Group,
        no_compact: &HashSet<String>,
    ) -> Result<bool> {
        let res = group.resolution;
        self.metrics
            .group(
                "thanos_compact_group_compaction_runs_started_total",
                "Total number of group compaction attempts.",
                res,
            )
            .inc();
        // Plan and compact again within the group (its blocks updated in place) until there is
        // nothing left to do, instead of syncing the whole bucket between compactions.
        let mut group = group.clone();
        let mut marks = no_compact.clone();
        let mut did = false;
        let r = loop {
            match self.compact_group_inner(&group, &marks).await {
                Ok(Step::Done) => break Ok(did),
                Ok(Step::Replan) => break Ok(true),
                Ok(Step::Compacted { sources, new }) => {
                    did = true;
                    group.metas.retain(|m| !sources.contains(&m.ulid));
                    if let Some(m) = new {
                        group.metas.push(*m);
                    }
                    group.metas.sort_by(|a, b| {
                        a.min_time
                            .cmp(&b.min_time)
                            .then_with(|| a.ulid.cmp(&b.ulid))
                    });
                    marks.retain(|id| !sources.contains(id));
                }
                Err(e) => break Err(e),
            }
        };
        match &r {
            Ok(_) => self
                .metrics
                .group(
                    "thanos_compact_group_compaction_runs_completed_total",
                    "Total number of group completed compaction runs. This also includes compactor group runs that resulted with no compaction.",
                    res,
                )
                .inc(),
            Err(_) => self
                .metrics
                .group(
                    "thanos_compact_group_compactions_failures_total",
                    "Total number of failed group compactions.",
                    res,
                )
                .inc(),
        }
        r
    }

    async fn compact_group_inner(
        &self,
        group: &Group,
        no_compact: &HashSet<String>,
    ) -> Result<Step> {
        let metas: Vec<&BlockMeta> = group.metas.iter().collect();
        let overlaps = planner::overlapping_groups(&metas);
        if !overlaps.is_empty() && !self.cfg.vertical {
            return Err(CompactError::Halt(format!(
                "pre compaction overlap check: overlaps found while gathering blocks. {}",
                planner::describe_overlaps(&overlaps)
            )));
        }
        let Some(plan) = self.plan(group, no_compact).await? else {
            return Ok(Step::Done);
        };
        let overlapping = !planner::select_overlapping(&plan.iter().collect::<Vec<_>>()).is_empty();
        tracing::info!(
            group = %group.describe(),
            plan = %plan
                .iter()
                .map(|m| format!("{} ({}-{})", m.ulid, m.min_time, m.max_time))
                .collect::<Vec<_>>()
                .join(", "),
            "compaction available and planned"
        );
        let mut seen = HashSet::new();
        for m in &plan {
            for s in &m.compaction.sources {
                if !seen.insert(s.clone()) {
                    let msg = format!(
                        "overlapping sources detected for plan [{}]",
                        plan.iter()
                            .map(|m| m.ulid.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    if !self.cfg.vertical {
                        return Err(CompactError::Halt(msg));
                    }
                    tracing::warn!(group = %group.describe(), "{msg}");
                }
            }
        }

        let dir = self.compact_dir().join(&group.key);
        std::fs::create_dir_all(&dir)
            .map_err(|e| CompactError::Fail(format!("create {}: {e}", dir.display())))?;
        let dirs = self.download_all(&plan, &dir).await?;
        if self.verify_inputs(&plan, &dirs).await?.is_some() {
            // A block was marked no-compact: sync and plan again.
            return Ok(Step::Replan);
        }

        // Merge on a blocking thread: it is CPU and disk work.
        let started = std::time::Instant::now();
        let ulid = ulid::Ulid::new();
        let compaction = Compaction {
            level: plan.iter().map(|m| m.compaction.level).max().unwrap_or(1) + 1,
            sources: plan
                .iter()
                .flat_map(|m| m.compaction.sources.iter().cloned())
                .collect::<BTreeSet<String>>()
                .into_iter()
                .collect(),
            parents: plan
                .iter()
                .map(|m| BlockDesc {
                    ulid: m.ulid.clone(),
                    min_time: m.min_time,
                    max_time: m.max_time,
                })
                .collect(),
            ..Default::default()
        };
        let mut thanos = ThanosMeta {
            labels: group.labels.clone(),
            source: "compactor".into(),
            ..Default::default()
        };
        thanos.downsample.resolution = group.resolution;
        thanos
            .extra
            .insert("index_stats".into(), serde_json::json!({}));
        let (merge_mode, cancel, out_dir) = (self.cfg.merge, self.cancel.clone(), dir.clone());
        let input_dirs = dirs.clone();
        let merged = tokio::task::spawn_blocking(move || {
            let blocks = input_dirs
                .iter()
                .map(|d| tsdb::block::Block::open(d))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| format!("open downloaded block: {e}"))?;
            merge::merge_blocks(
                &blocks,
                merge_mode,
                Output {
                    parent: &out_dir,
                    ulid,
                    compaction,
                    thanos: Some(thanos),
                },
                &cancel,
            )
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| CompactError::Halt(format!("compaction task failed: {e}")))?
        .map_err(|e| {
            CompactError::Halt(format!(
                "compact blocks [{}]: {e}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let Some(new_meta) = merged else {
            tracing::info!(group = %group.describe(), "no compacted blocks, deleting source blocks");
            for m in &plan {
                self.mark_for_deletion(&m.ulid, "source of compacted block")
                    .await?;
                self.metrics.garbage_collected.inc();
            }
            remove_dirs(&dirs);
            return Ok(Step::Compacted {
                sources: plan.iter().map(|m| m.ulid.clone()).collect(),
                new: None,
            });
        };
        let new_dir = dir.join(&new_meta.ulid);
        tracing::info!(
            group = %group.describe(),
            block = %new_meta.ulid,
            series = new_meta.stats.num_series,
            samples = new_meta.stats.num_samples,
            duration = ?started.elapsed(),
            "compacted blocks"
        );
        // Thanos uploads compacted blocks without a tombstones file.
        let _ = std::fs::remove_file(new_dir.join("tombstones"));
        let mut meta = new_meta.clone();
        meta.thanos_mut().segment_files = segment_files(&new_dir);
        let uploaded = bucket::block::upload_block(self.bucket.as_ref(), &new_dir, &meta)
            .await
            .map_err(|e| from_bucket(format!("upload of {} failed", meta.ulid), e))?;
        for m in &plan {
            self.mark_for_deletion(&m.ulid, "source of compacted block")
                .await
                .map_err(|e| e.context("mark old block for deletion from bucket"))?;
            self.metrics.garbage_collected.inc();
        }
        remove_dirs(&dirs);
        let _ = std::fs::remove_dir_all(&new_dir);
        self.metrics
            .group(
                "thanos_compact_group_compactions_total",
                "Total number of group compaction attempts that resulted in a new block.",
                group.resolution,
            )
            .inc();
        if overlapping {
            self.metrics
                .group(
                    "thanos_compact_group_vertical_compactions_total",
                    "Total number of group compaction attempts that resulted in a new block based on overlapping blocks.",
                    group.resolution,
                )
                .inc();
        }
        Ok(Step::Compacted {
            sources: plan.iter().map(|m| m.ulid.clone()).collect(),
            new: Some(Box::new(uploaded)),
        })
    }

    /// The planner with Thanos's guards: a plan whose indexes add up to too much loses its
    /// largest block (marked no-compact), overlapping downsampled blocks are marked
    /// no-compact (aggregates cannot be merged vertically); planned again after each mark.
    async fn plan(
        &self,
        group: &Group,
        no_compact: &HashSet<String>,
    ) -> Result<Option<Vec<BlockMeta>>> {
        let mut marks = no_compact.clone();
        let metas: Vec<&BlockMeta> = group.metas.iter().collect();
        loop {
            let plan: Vec<BlockMeta> = planner::plan(&self.cfg.ranges, &metas, &marks)
                .into_iter()
                .cloned()
                .collect();
            if plan.is_empty() {
                return Ok(None);
            }
            let limit = (self.cfg.block_max_index_size as f64 * INDEX_SIZE_THRESHOLD) as u64;
            let mut total = 0u64;
            let mut biggest: Option<(&BlockMeta, u64)> = None;
            let mut too_big = None;
            for m in &plan {
                let size = self.index_size(m).await?;
                if biggest.is_none_or(|(_, s)| s < size) {
                    biggest = Some((m, size));
                }
                total += size;
                if total >= limit {
                    too_big = biggest.map(|(b, _)| b.ulid.clone());
                    break;
                }
            }
            if let Some(id) = too_big {
                let details = format!(
                    "largeTotalIndexSizeFilter: Total compacted block's index size could exceed: {} with this block. See https://github.com/thanos-io/thanos/issues/1424",
                    self.cfg.block_max_index_size
                );
                self.mark_no_compact(&id, bucket::markers::NO_COMPACT_REASON_INDEX_SIZE, &details)
                    .await?;
                self.metrics.marked_no_compact_index_size.inc();
                marks.insert(id);
                continue;
            }
            if self.cfg.vertical {
                let refs: Vec<&BlockMeta> = plan.iter().collect();
                if !planner::select_overlapping(&refs).is_empty() {
                    let downsampled: Vec<String> = plan
                        .iter()
                        .filter(|m| m.resolution() != 0)
                        .map(|m| m.ulid.clone())
                        .collect();
                    if !downsampled.is_empty() {
                        for id in downsampled {
                            self.mark_no_compact(
                                &id,
                                bucket::markers::NO_COMPACT_REASON_DOWNSAMPLE_VERTICAL,
                                "verticalCompactionDownsampleFilter: Downsampled block, see https://github.com/thanos-io/thanos/issues/6775",
                            )
                            .await?;
                            self.metrics.marked_no_compact_downsample_vertical.inc();
                            marks.insert(id);
                        }
                        continue;
                    }
                }
            }
            return Ok(Some(plan));
        }
    }

    async fn index_size(&self, m: &BlockMeta) -> Result<u64> {
        if let Some(f) = m
            .thanos
            .as_ref()
            .and_then(|t| t.files.iter().find(|f| f.rel_path == "index"))
            .filter(|f| f.size_bytes > 0)
        {
            return Ok(f.size_bytes as u64);
        }
        let p = bucket::block::object_path(&m.ulid, "index");
        let head = bucket::ObjectStoreExt::head(self.bucket.as_ref(), &p)
            .await
            .map_err(|e| CompactError::Fail(format!("get attr of {p}: {e}")))?;
        Ok(head.size)
    }

    pub(crate) async fn mark_no_compact(
        &self,
        id: &str,
        reason: &str,
        details: &str,
    ) -> Result<()> {
        let ulid: ulid::Ulid = id
            .parse()
            .map_err(|_| CompactError::Fail(format!("{id} is not a ULID")))?;
        bucket::markers::mark_no_compact(self.bucket.as_ref(), ulid, reason, details)
            .await
            .map_err(|e| CompactError::Fail(format!("mark {id} for no compaction: {e}")))?;
        tracing::warn!(block = %id, reason, details, "block marked for no compaction");
        Ok(())
    }

    /// Downloads the planned blocks, `--compact.blocks-fetch-concurrency` at a time.
    async fn download_all(&self, plan: &[BlockMeta], dir: &Path) -> Result<Vec<PathBuf>> {
        use futures::StreamExt;
        let n = plan.len();
        let results: Vec<Result<PathBuf>> = futures::stream::iter(plan.iter().enumerate())
            .map(|(i, m)| async move {
                let id: ulid::Ulid = m
                    .ulid
                    .parse()
                    .map_err(|_| CompactError::Fail(format!("{} is not a ULID", m.ulid)))?;
                let d = bucket::block::download_block(self.bucket.as_ref(), id, dir)
                    .await
                    .map_err(|e| from_bucket(format!("download block {}", m.ulid), e))?;
                self.report("download", i + 1, n);
                Ok(d)
            })
            .buffered(self.cfg.fetch_concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Checks the downloaded blocks before they are merged. `Some(true)` when a block was
    /// marked no-compact instead (plan again).
    async fn verify_inputs(&self, plan: &[BlockMeta], dirs: &[PathBuf]) -> Result<Option<bool>> {
        for (m, d) in plan.iter().zip(dirs) {
            let dir = d.clone();
            let issues =
                tokio::task::spawn_blocking(move || tsdb::verify::verify_block_structure(&dir))
                    .await
                    .map_err(|e| CompactError::Fail(format!("verify {}: {e}", d.display())))?;
            let out_of_order: Vec<_> = issues
                .iter()
                .filter(|i| i.kind == IssueKind::OutOfOrderChunks)
                .collect();
            let critical: Vec<_> = issues
                .iter()
                .filter(|i| !matches!(i.kind, IssueKind::OutOfOrderChunks | IssueKind::Stats))
                .collect();
            if !critical.is_empty() {
                let shown: Vec<String> = critical.iter().take(5).map(|i| i.to_string()).collect();
                return Err(CompactError::Halt(format!(
                    "block with not healthy index found {}; Compaction level {}; Labels: {:?}: {}{}",
                    d.display(),
                    m.compaction.level,
                    m.external_labels(),
                    shown.join("; "),
                    if critical.len() > 5 { format!("; and {} more", critical.len() - 5) } else { String::new() }
                )));
            }
            if !out_of_order.is_empty() {
                if self.cfg.skip_out_of_order_chunks {
                    self.mark_no_compact(
                        &m.ulid,
                        bucket::markers::NO_COMPACT_REASON_OUT_OF_ORDER_CHUNKS,
                        "OutofOrderChunk: marking block with out-of-order series/chunks to as no compact to unblock compaction",
                    )
                    .await?;
                    self.metrics.marked_no_compact_out_of_order.inc();
                    remove_dirs(dirs);
                    return Ok(Some(true));
                }
                return Err(CompactError::Fail(format!(
                    "blocks with out-of-order chunks are dropped from compaction:  {}: {} (see --compact.skip-block-with-out-of-order-chunks)",
                    d.display(),
                    out_of_order[0]
                )));
            }
        }
        Ok(None)
    }
}

/// The chunk segment files of a block directory, sorted.
pub(crate) fn segment_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join("chunks"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub(crate) fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
