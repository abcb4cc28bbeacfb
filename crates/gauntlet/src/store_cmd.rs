//! `gauntlet store`: the store gateway, with Thanos's flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::flags::{parse_bytes, parse_duration_flag, parse_time_flag, ObjstoreFlags};
use crate::server::{bind, router, run_component, Status};

#[derive(Args)]
pub struct StoreArgs {
    #[command(flatten)]
    objstore: ObjstoreFlags,
    /// Local data directory for index-headers.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Listen host:port for HTTP endpoints.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    #[command(flatten)]
    grpc_tls: crate::security::GrpcServerTlsFlags,
    #[command(flatten)]
    http_config: crate::security::HttpConfigFlag,
    /// Listen host:port for the gRPC StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: String,
    /// Maximum size of the in-memory index cache.
    #[arg(long = "index-cache-size", default_value = "250MB", value_parser = parse_bytes)]
    index_cache_size: u64,
    /// Repeat interval for syncing the blocks between local and remote view.
    #[arg(long = "sync-block-duration", default_value = "15m", value_parser = parse_duration_flag)]
    sync_block_duration: Duration,
    /// Number of blocks loaded (index-headers built) concurrently.
    #[arg(long = "block-sync-concurrency", default_value_t = 20)]
    block_sync_concurrency: usize,
    /// Serve only blocks with data after this time (RFC 3339 or relative such as -2w).
    #[arg(long = "min-time", default_value = "0000-01-01T00:00:00Z")]
    min_time: String,
    /// Serve only blocks with data before this time.
    #[arg(long = "max-time", default_value = "9999-12-31T23:59:59Z")]
    max_time: String,
    /// Maximum samples a single Series call may return (chunks × 120); 0 = no limit.
    #[arg(long = "store.grpc.series-sample-limit", default_value_t = 0)]
    series_sample_limit: i64,
    /// Maximum number of concurrent Series calls.
    #[arg(long = "store.grpc.series-max-concurrency", default_value_t = 20)]
    series_max_concurrency: usize,
    /// Minimum age of non-compacted blocks before they are served.
    #[arg(long = "consistency-delay", default_value = "0s", value_parser = parse_duration_flag)]
    consistency_delay: Duration,
    /// Blocks marked for deletion longer ago than this are no longer served.
    #[arg(long = "ignore-deletion-marks-delay", default_value = "24h", value_parser = parse_duration_flag)]
    ignore_deletion_marks_delay: Duration,
    /// The maximum series a single Series request may return; 0 = no limit.
    #[arg(long = "store.limits.request-series", default_value_t = 0)]
    request_series_limit: u64,
    /// The maximum samples a single Series request may return (chunks × 120); 0 = no limit.
    #[arg(long = "store.limits.request-samples", default_value_t = 0)]
    request_samples_limit: u64,
    /// The maximum label matchers a single request may carry; 0 = no limit.
    #[arg(long = "store.limits.request-matchers", default_value_t = 1_000)]
    request_matchers_limit: usize,
    /// The longest value (bytes) a label matcher, a regular expression above all, may have;
    /// 0 = no limit.
    #[arg(long = "store.limits.regex-bytes", default_value = "1MiB", value_parser = parse_bytes)]
    regex_bytes_limit: u64,
    /// Path to a YAML file with relabeling configuration selecting the blocks to serve, by
    /// their external labels and `__block_id` (keep, drop, hashmod for sharding).
    #[arg(long = "selector.relabel-config-file")]
    relabel_config_file: Option<PathBuf>,
    /// Alternative to selector.relabel-config-file: the relabeling configuration in YAML.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
    #[command(flatten)]
    viewer: crate::flags::BlockViewerFlags,
}

pub fn run(a: StoreArgs) -> Result<()> {
    let security = crate::security::Security::from_flags(&a.grpc_tls, &a.http_config)?;
    let yaml = a.objstore.yaml()?;
    let bucket = bucket::config::bucket_from_yaml(&yaml)?;
    let cfg = store::gateway::Config {
        data_dir: a.data_dir.clone(),
        min_time: parse_time_flag("min-time", &a.min_time)?,
        max_time: parse_time_flag("max-time", &a.max_time)?,
        consistency_delay_ms: a.consistency_delay.as_millis() as i64,
        ignore_deletion_marks_delay_ms: a.ignore_deletion_marks_delay.as_millis() as i64,
        block_sync_concurrency: a.block_sync_concurrency,
        series_sample_limit: a.series_sample_limit,
        index_cache_size: a.index_cache_size,
        series_max_concurrency: a.series_max_concurrency,
        request_series_limit: a.request_series_limit,
        request_samples_limit: a.request_samples_limit,
        request_matchers_limit: a.request_matchers_limit,
        regex_bytes_limit: a.regex_bytes_limit as usize,
        relabel: crate::compact_cmd::relabel_from(&a.relabel_config_file, &a.relabel_config)?,
        // A local directory reads exactly what is needed; remote stores merge nearby reads.
        range_gap: if bucket::config::is_filesystem(&yaml)? {
            0
        } else {
            bucket::ranges::MAX_GAP
        },
        ..Default::default()
    };
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("create --data-dir {}", a.data_dir.display()))?;
    tracing::info!(
        index_cache_size = a.index_cache_size,
        series_max_concurrency = a.series_max_concurrency,
        "starting store gateway"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    rt.block_on(async move {
        let viewer_bucket = bucket.clone();
        let gateway = Arc::new(store::gateway::BucketStore::new(bucket, cfg));
        let status = Status::new("store");
        status.metrics.handle("thanos_blocks_meta_syncs_total", "counter", "Total blocks metadata synchronization attempts.");
        status.metrics.handle("thanos_blocks_meta_sync_failures_total", "counter", "Total blocks metadata synchronization failures.");
        status.metrics.handle("thanos_bucket_store_blocks_loaded", "gauge", "Number of currently loaded blocks.");
        status.metrics.handle("thanos_bucket_store_block_loads_total", "counter", "Total number of remote block loading attempts.");
        status.metrics.handle("thanos_bucket_store_block_load_failures_total", "counter", "Total number of failed remote block loading attempts.");
        status.metrics.handle("thanos_bucket_store_block_drops_total", "counter", "Total number of local blocks that were dropped.");
        status.metrics.handle("thanos_bucket_store_block_drop_failures_total", "counter", "Total number of local blocks that failed to be dropped.");

        let http = bind(&a.http_address, "--http-address").await?;
        let grpc = bind(&a.grpc_address, "--grpc-address").await?;
        tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, "listening");
        let viewer = a.viewer.viewer(&viewer_bucket);
        let app = match &viewer {
            Some(blocks) => router(status.clone(), webui::store_routes(a.viewer.web.prefixes(), blocks.clone())),
            None => router(status.clone(), axum::Router::new()),
        };
        let sync_gw = gateway.clone();
        let sync_status = status.clone();
        run_component(http, app, grpc, gateway, None, security, move |mut stop| async move {
            loop {
                let started = std::time::Instant::now();
                sync_status.metrics.add("thanos_blocks_meta_syncs_total", 1.0);
                match sync_gw.sync().await {
                    Ok(s) => {
                        sync_status.metrics.set("thanos_bucket_store_blocks_loaded", s.loaded as f64);
                        sync_status.metrics.add("thanos_bucket_store_block_loads_total", (s.added + s.failed) as f64);
                        sync_status.metrics.add("thanos_bucket_store_block_load_failures_total", s.failed as f64);
                        sync_status.metrics.add("thanos_bucket_store_block_drops_total", s.removed as f64);
                        sync_status.ready.store(true, std::sync::atomic::Ordering::Release);
                        tracing::info!(loaded = s.loaded, added = s.added, removed = s.removed, failed = s.failed, duration = ?started.elapsed(), "synced blocks");
                        if let Some(blocks) = &viewer {
                            let metas: Vec<_> = sync_gw.blocks().iter().map(|b| b.meta.clone()).collect();
                            blocks.set_loaded(&metas);
                            // The listing this sync made: the bucket is not listed twice.
                            blocks.set_global(Ok(&s.view));
                        }
                    }
                    Err(e) => {
                        sync_status.metrics.add("thanos_blocks_meta_sync_failures_total", 1.0);
                        tracing::warn!(err = %e, "syncing blocks failed");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(a.sync_block_duration) => {}
                    _ = stop.changed() => break,
                }
            }
            Ok(())
        })
        .await?;
        tracing::info!("store gateway stopped");
        Ok(())
    })
}
