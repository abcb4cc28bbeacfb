//! Downsampling blocks of the bucket: each block due (see [`to_downsample`]) is downloaded,
//! every series turned into aggregate chunks ([`crate::downsample`]) and written, streaming,
//! into a new block of the target resolution with the same labels and sources, which is
//! uploaded (meta.json last). The source block stays; retention and the planner decide its
//! fate.

use std::path::Path;

use bucket::fetcher::View;
use tsdb::block::{Block, BlockWriter};
use tsdb::chunkenc::Encoding;
use tsdb::meta::BlockMeta;

use crate::compactor::{to_downsample, Compactor};
use crate::downsample::{self, EncodedChunk};
use crate::error::{from_bucket, CompactError, Result};
use crate::job::segment_files;

impl Compactor {
    /// Downsamples every block due, `--downsample.concurrency` at a time. A block that
    /// cannot be downsampled is counted and reported; the others go on.
    pub async fn downsample_pass(&self, view: &View) -> Result<()> {
        use futures::StreamExt;
        let todo = to_downsample(view);
        let dir = self.downsample_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| CompactError::Fail(format!("create {}: {e}", dir.display())))?;
        let total = todo.len();
        let results: Vec<Result<()>> = futures::stream::iter(todo.into_iter().enumerate())
            .map(|(i, (meta, target))| {
                let dir = dir.clone();
                async move {
                    let source_res = meta.resolution();
                    let started = std::time::Instant::now();
                    let r = self.downsample_block(&meta, target, &dir).await;
                    telemetry::counter(
                        "thanos_compact_downsample_total",
                        "Total number of downsampling attempts.",
                        &[("resolution", &source_res.to_string())],
                    )
                    .inc();
                    match &r {
                        Ok(()) => self
                            .metrics
                            .downsample_duration(source_res)
                            .observe(started.elapsed().as_secs_f64()),
                        Err(e) => {
                            telemetry::counter(
                                "thanos_compact_downsample_failures_total",
                                "Total number of failed downsampling attempts.",
                                &[("resolution", &source_res.to_string())],
                            )
                            .inc();
                            tracing::error!(block = %meta.ulid, target, err = %e, "downsampling failed");
                        }
                    }
                    self.report("downsample", i + 1, total);
                    r
                }
            })
            .buffer_unordered(self.cfg.downsample_concurrency.max(1))
            .collect()
            .await;
        let _ = std::fs::remove_dir_all(&dir);
        let errors: Vec<CompactError> = results.into_iter().filter_map(|r| r.err()).collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors
                .into_iter()
                .next()
                .unwrap_or(CompactError::Fail(String::new()))),
            n => {
                let retry = errors.iter().all(|e| e.is_retry());
                let msg = format!(
                    "{n} errors: {}",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                Err(if retry {
                    CompactError::Retry(msg)
                } else {
                    CompactError::Fail(msg)
                })
            }
        }
    }

    async fn downsample_block(&self, meta: &BlockMeta, target: i64, dir: &Path) -> Result<()> {
        let what = if target == 300_000 {
            "downsampling to 5 min"
        } else {
            "downsampling to 60 min"
        };
        let id: ulid::Ulid = meta
            .ulid
            .parse()
            .map_err(|_| CompactError::Fail(format!("{} is not a ULID", meta.ulid)))?;
        let local = bucket::block::download_block(self.bucket.as_ref(), id, dir)
            .await
            .map_err(|e| from_bucket(format!("download block {}", meta.ulid), e))?;
        let input = meta.clone();
        let (out_parent, cancel) = (dir.to_path_buf(), self.cancel.clone());
        let local_in = local.clone();
        let written = tokio::task::spawn_blocking(move || {
            downsample_local(&local_in, &input, target, &out_parent, &cancel)
        })
        .await
        .map_err(|e| CompactError::Fail(format!("{what}: task failed: {e}")))?
        .map_err(|e| CompactError::Fail(format!("{what}: block {}: {e}", meta.ulid)))?;
        let _ = std::fs::remove_dir_all(&local);
        let Some(new_meta) = written else {
            tracing::info!(block = %meta.ulid, "downsampling produced no series; nothing uploaded");
            return Ok(());
        };
        let new_dir = dir.join(&new_meta.ulid);
        bucket::block::upload_block(self.bucket.as_ref(), &new_dir, &new_meta)
            .await
            .map_err(|e| from_bucket(format!("upload downsampled block {}", new_meta.ulid), e))?;
        tracing::info!(
            source = %meta.ulid,
            block = %new_meta.ulid,
            resolution = target,
            series = new_meta.stats.num_series,
            samples = new_meta.stats.num_samples,
            "downsampled block uploaded"
        );
        let _ = std::fs::remove_dir_all(&new_dir);
        Ok(())
    }
}

/// Downsamples the local block at `dir` into a new block under `out_parent`; `None` when
/// no series has data.
pub fn downsample_local(
    dir: &Path,
    input: &BlockMeta,
    target: i64,
    out_parent: &Path,
    cancel: &std::sync::atomic::AtomicBool,
) -> std::result::Result<Option<BlockMeta>, String> {
    let block = Block::open(dir).map_err(|e| e.to_string())?;
    let ix = block.index();
    let mut symbols = Vec::with_capacity(ix.num_symbols());
    for r in 0..ix.num_symbols() {
        symbols.push(ix.symbol(r as u32).map_err(|e| e.to_string())?.to_string());
    }
    let ulid = ulid::Ulid::new();
    let mut w = BlockWriter::streaming(out_parent, ulid, input.min_time, input.max_time, symbols)
        .map_err(|e| e.to_string())?;
    // The new block keeps the source's labels and compaction history, at a new resolution.
    w.set_compaction(input.compaction.clone());
    let mut thanos = input.thanos.clone().unwrap_or_default();
    thanos.downsample.resolution = target;
    thanos.source = "compactor".into();
    thanos.files.clear();
    thanos.segment_files.clear();
    thanos.extra.remove("upload_time");
    w.set_thanos(thanos);
    let mut set = block.all_series().map_err(|e| e.to_string())?;
    let source_res = input.resolution();
    let mut written = 0u64;
    let mut chunks: Vec<EncodedChunk> = Vec::new();
    while let Some(s) = set.next().map_err(|e| e.to_string())? {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("downsampling canceled".into());
        }
        chunks.clear();
        for c in &s.chunks {
            let (enc, data) = block
                .chunks()
                .chunk(c.chunk_ref)
                .map_err(|e| e.to_string())?;
            chunks.push((c.min_time, c.max_time, enc, data));
        }
        let out = if source_res == 0 {
            downsample::downsample_raw(&chunks, target)
        } else {
            downsample::downsample_aggr(&chunks, source_res, target)
        }
        .map_err(|e| format!("series {}: {e}", s.labels))?;
        if out.is_empty() {
            tracing::warn!(series = %s.labels, "empty chunks happened, skip series");
            continue;
        }
        let refs: Vec<(i64, i64, Encoding, &[u8])> = out
            .iter()
            .map(|(a, b, d)| (*a, *b, Encoding::AGGR, d.as_slice()))
            .collect();
        w.add_encoded_series(&s.labels, &refs)
            .map_err(|e| e.to_string())?;
        written += 1;
    }
    if written == 0 {
        return Ok(None);
    }
    let mut meta = w.finish().map_err(|e| e.to_string())?;
    let new_dir = out_parent.join(&meta.ulid);
    // Downsampled blocks carry no tombstones file, as Thanos writes them.
    let _ = std::fs::remove_file(new_dir.join("tombstones"));
    meta.thanos_mut().segment_files = segment_files(&new_dir);
    meta.write_to_dir(&new_dir).map_err(|e| e.to_string())?;
    Ok(Some(meta))
}
