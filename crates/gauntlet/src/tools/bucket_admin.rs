//! `gauntlet tools bucket mark | cleanup | retention | downsample`, with Thanos's flags, on
//! the compactor's own code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::compact_cmd::relabel_from;
use crate::flags::parse_duration_flag;

#[derive(Clone, Copy, ValueEnum)]
pub enum MarkerKind {
    #[value(name = "deletion-mark.json")]
    Deletion,
    #[value(name = "no-compact-mark.json")]
    NoCompact,
    #[value(name = "no-downsample-mark.json")]
    NoDownsample,
}

#[derive(Args)]
pub struct MarkArgs {
    /// ID (ULID) of the block to mark (repeated).
    #[arg(long = "id", required = true)]
    ids: Vec<String>,
    /// Marker to be put.
    #[arg(long = "marker", value_enum, required = true)]
    marker: MarkerKind,
    /// Human readable details to be put into marker.
    #[arg(long = "details")]
    details: Option<String>,
    /// Remove the marker instead.
    #[arg(long = "remove")]
    remove: bool,
}

/// Flags shared by cleanup and retention.
#[derive(Args)]
pub struct SyncArgs {
    /// Time before a block marked for deletion is deleted from bucket.
    #[arg(long = "delete-delay", default_value = "48h", value_parser = parse_duration_flag)]
    delete_delay: Duration,
    /// Minimum age of fresh (non-compacted) blocks before they are being processed.
    #[arg(long = "consistency-delay", default_value = "30m", value_parser = parse_duration_flag)]
    consistency_delay: Duration,
    /// Number of goroutines to use when syncing block metadata from object storage.
    #[arg(long = "block-sync-concurrency", default_value_t = 20)]
    block_sync_concurrency: usize,
    /// Path to a YAML file with relabeling configuration selecting the blocks.
    #[arg(long = "selector.relabel-config-file")]
    relabel_config_file: Option<PathBuf>,
    /// Alternative to selector.relabel-config-file: the relabeling configuration in YAML.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
}

#[derive(Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    sync: SyncArgs,
    /// How long to retain raw samples in bucket; 0d keeps them forever.
    #[arg(long = "retention.resolution-raw", default_value = "0d", value_parser = parse_duration_flag)]
    retention_raw: Duration,
    /// How long to retain samples of resolution 1 (5 minutes); 0d keeps them forever.
    #[arg(long = "retention.resolution-5m", default_value = "0d", value_parser = parse_duration_flag)]
    retention_5m: Duration,
    /// How long to retain samples of resolution 2 (1 hour); 0d keeps them forever.
    #[arg(long = "retention.resolution-1h", default_value = "0d", value_parser = parse_duration_flag)]
    retention_1h: Duration,
}

#[derive(Args)]
pub struct DownsampleArgs {
    /// Wait interval between downsample runs.
    #[arg(long = "wait-interval", default_value = "5m", value_parser = parse_duration_flag)]
    wait_interval: Duration,
    /// Number of goroutines to use when downsampling blocks.
    #[arg(long = "downsample.concurrency", default_value_t = 1)]
    downsample_concurrency: usize,
    /// Number of goroutines to use when fetching/uploading block files (accepted).
    #[arg(long = "block-files-concurrency", default_value_t = 1)]
    block_files_concurrency: usize,
    /// Data directory in which to cache blocks and process downsamplings.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Listen host:port for HTTP endpoints (`/metrics`, `/-/healthy`, `/-/ready`).
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    #[command(flatten)]
    http_config: crate::security::HttpConfigFlag,
    /// Hash function for uploaded files (accepted).
    #[arg(long = "hash-func", default_value = "")]
    hash_func: String,
    /// Run one downsampling iteration and exit (Thanos's tool loops forever).
    #[arg(long = "once", hide = true)]
    once: bool,
}

fn compactor(bucket: bucket::Bucket, s: Option<&SyncArgs>) -> Result<compact::Compactor> {
    let mut cfg = compact::Config::default();
    if let Some(s) = s {
        cfg.delete_delay_ms = s.delete_delay.as_millis() as i64;
        cfg.consistency_delay_ms = s.consistency_delay.as_millis() as i64;
        cfg.meta_fetch_concurrency = s.block_sync_concurrency.max(1);
        cfg.relabel = relabel_from(&s.relabel_config_file, &s.relabel_config)?;
    }
    Ok(compact::Compactor::new(bucket, cfg))
}

pub async fn mark(bucket: &bucket::Bucket, a: MarkArgs) -> Result<()> {
    let details = a.details.clone().unwrap_or_default();
    if !a.remove && details.is_empty() {
        bail!("required flag --details not provided");
    }
    for id in &a.ids {
        let ulid: ulid::Ulid = id
            .parse()
            .map_err(|_| anyhow::anyhow!("block.id is not a valid UUID, got: {id}"))?;
        let b = bucket.as_ref();
        use bucket::markers::*;
        let r = match (a.marker, a.remove) {
            (MarkerKind::Deletion, false) => mark_for_deletion(b, ulid, &details).await,
            (MarkerKind::NoCompact, false) => {
                mark_no_compact(b, ulid, NO_COMPACT_REASON_MANUAL, &details).await
            }
            (MarkerKind::NoDownsample, false) => {
                mark_no_downsample(b, ulid, NO_COMPACT_REASON_MANUAL, &details).await
            }
            (MarkerKind::Deletion, true) => remove_marker::<DeletionMark>(b, ulid).await,
            (MarkerKind::NoCompact, true) => remove_marker::<NoCompactMark>(b, ulid).await,
            (MarkerKind::NoDownsample, true) => remove_marker::<NoDownsampleMark>(b, ulid).await,
        };
        let what = if a.remove { "remove mark" } else { "mark" };
        r.with_context(|| format!("{what} {id}"))?;
    }
    tracing::info!(blocks = a.ids.len(), "marking done");
    Ok(())
}

pub async fn cleanup(bucket: &bucket::Bucket, a: CleanupArgs) -> Result<()> {
    let c = compactor(bucket.clone(), Some(&a.sync))?;
    let view = c.sync().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    c.clean_partial_uploads(&view).await;
    c.delete_marked(&view)
        .await
        .map_err(|e| anyhow::anyhow!("error cleaning blocks: {e}"))?;
    tracing::info!("cleanup done");
    Ok(())
}

pub async fn retention(bucket: &bucket::Bucket, a: RetentionArgs) -> Result<()> {
    let c = {
        let mut cfg = compact::Config {
            retention_ms: [
                a.retention_raw.as_millis() as i64,
                a.retention_5m.as_millis() as i64,
                a.retention_1h.as_millis() as i64,
            ],
            ..Default::default()
        };
        cfg.delete_delay_ms = a.sync.delete_delay.as_millis() as i64;
        cfg.consistency_delay_ms = a.sync.consistency_delay.as_millis() as i64;
        cfg.meta_fetch_concurrency = a.sync.block_sync_concurrency.max(1);
        cfg.relabel = relabel_from(&a.sync.relabel_config_file, &a.sync.relabel_config)?;
        compact::Compactor::new(bucket.clone(), cfg)
    };
    tracing::warn!("GLOBAL COMPACTOR SHOULD __NOT__ BE RUNNING ON THE SAME BUCKET");
    let view = c.sync().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    c.apply_retention(&view)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Stops a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn downsample(bucket: &bucket::Bucket, a: DownsampleArgs) -> Result<()> {
    if !matches!(a.hash_func.as_str(), "" | "SHA256") {
        bail!("invalid --hash-func {:?}: want \"\" or SHA256", a.hash_func);
    }
    let _ = a.block_files_concurrency;
    let web = a.http_config.load()?;
    let status = crate::server::Status::new("downsample");
    let http = crate::server::bind(&a.http_address, "--http-address").await?;
    tracing::info!(http = %http.local_addr()?, "serving metrics");
    let app = crate::server::router(status.clone(), axum::Router::new());
    let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
        crate::http_edge::EdgeListener::new(http, web.tls.clone())?,
        web.apply(app),
    )));
    let _stop_server = AbortOnDrop(server);
    let cfg = compact::Config {
        data_dir: a.data_dir.clone(),
        downsample_concurrency: a.downsample_concurrency.max(1),
        consistency_delay_ms: 0,
        ..Default::default()
    };
    let c = compact::Compactor::new(bucket.clone(), cfg);
    loop {
        for pass in ["first", "second"] {
            let view = c.sync().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            c.downsample_pass(&view)
                .await
                .map_err(|e| anyhow::anyhow!("{pass} pass of downsampling failed: {e}"))?;
        }
        tracing::info!("downsampling iterations done");
        status
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        if a.once {
            return Ok(());
        }
        tokio::time::sleep(a.wait_interval).await;
    }
}
