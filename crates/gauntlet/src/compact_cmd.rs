//! `gauntlet compact`: the compactor, with Thanos's flags. Without `--wait` it runs one
//! iteration and exits (0 when done); with it, an iteration every `--wait-interval`, a
//! halt (bad data) leaving the HTTP server up with `thanos_compact_halted 1`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::flags::{parse_bytes, parse_duration_flag, parse_time_flag, ObjstoreFlags};
use crate::server::{bind, router, Status};

#[derive(Args)]
pub struct CompactArgs {
    #[command(flatten)]
    objstore: ObjstoreFlags,
    /// Data directory in which to cache blocks and process compactions.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    http_config: crate::security::HttpConfigFlag,
    /// Listen host:port for HTTP endpoints.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    /// Do not exit after all compactions have been processed and wait for new work.
    #[arg(short = 'w', long = "wait")]
    wait: bool,
    /// Wait interval between consecutive compaction runs and bucket refreshes.
    #[arg(long = "wait-interval", default_value = "5m", value_parser = parse_duration_flag)]
    wait_interval: Duration,
    /// Minimum age of fresh (non-compacted) blocks before they are being processed.
    #[arg(long = "consistency-delay", default_value = "30m", value_parser = parse_duration_flag)]
    consistency_delay: Duration,
    /// How long to retain raw samples in bucket; 0d keeps them forever.
    #[arg(long = "retention.resolution-raw", default_value = "0d", value_parser = parse_duration_flag)]
    retention_raw: Duration,
    /// How long to retain samples of resolution 1 (5 minutes) in bucket; 0d keeps them forever.
    #[arg(long = "retention.resolution-5m", default_value = "0d", value_parser = parse_duration_flag)]
    retention_5m: Duration,
    /// How long to retain samples of resolution 2 (1 hour) in bucket; 0d keeps them forever.
    #[arg(long = "retention.resolution-1h", default_value = "0d", value_parser = parse_duration_flag)]
    retention_1h: Duration,
    /// Disables downsampling.
    #[arg(long = "downsampling.disable")]
    downsampling_disable: bool,
    /// Number of goroutines to use when compacting groups.
    #[arg(long = "compact.concurrency", default_value_t = 1)]
    compact_concurrency: usize,
    /// Number of goroutines to use when fetching blocks from object storage.
    #[arg(long = "compact.blocks-fetch-concurrency", default_value_t = 1)]
    blocks_fetch_concurrency: usize,
    /// Number of goroutines to use when downsampling blocks.
    #[arg(long = "downsample.concurrency", default_value_t = 1)]
    downsample_concurrency: usize,
    /// Number of goroutines to use when fetching/uploading block files from object storage.
    #[arg(long = "block-files-concurrency", default_value_t = 1)]
    block_files_concurrency: usize,
    /// Number of goroutines to use when fetching block metadata from object storage.
    #[arg(long = "block-meta-fetch-concurrency", default_value_t = 32)]
    block_meta_fetch_concurrency: usize,
    /// How often partial uploads are cleaned up in the background; 0s disables.
    #[arg(long = "compact.cleanup-interval", default_value = "5m", value_parser = parse_duration_flag)]
    cleanup_interval: Duration,
    /// How often the progress gauges (thanos_compact_todo_*) are updated; 0s disables.
    #[arg(long = "compact.progress-interval", default_value = "5m", value_parser = parse_duration_flag)]
    progress_interval: Duration,
    /// Time before a block marked for deletion is deleted from the bucket; 0s deletes at the
    /// next cleanup.
    #[arg(long = "delete-delay", default_value = "48h", value_parser = parse_duration_flag)]
    delete_delay: Duration,
    /// Label to treat as a replica indicator of blocks that can be deduplicated (repeated, or
    /// comma-separated); enables vertical compaction.
    #[arg(long = "deduplication.replica-label")]
    replica_labels: Vec<String>,
    /// Deduplication of overlapping samples: "" (1:1, identical timestamps collapse) or
    /// "penalty" (the querier's HA deduplication; needs replica labels).
    #[arg(long = "deduplication.func", default_value = "")]
    dedup_func: String,
    /// Merge overlapping blocks instead of halting on them.
    #[arg(long = "compact.enable-vertical-compaction", hide = true)]
    enable_vertical: bool,
    /// Mark blocks with out-of-order chunks no-compact instead of failing on them.
    #[arg(long = "compact.skip-block-with-out-of-order-chunks", hide = true)]
    skip_out_of_order: bool,
    /// Maximum compaction level: 0=1h, 1=2h, 2=8h, 3=48h, 4=336h.
    #[arg(long = "debug.max-compaction-level", default_value_t = 4, hide = true)]
    max_compaction_level: usize,
    /// Halt (keeping the HTTP server up) on critical errors instead of exiting.
    #[arg(long = "debug.halt-on-error", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", hide = true)]
    halt_on_error: bool,
    #[arg(long = "no-debug.halt-on-error", hide = true)]
    no_halt_on_error: bool,
    /// Maximum summed index size of the blocks of one compaction.
    #[arg(long = "compact.block-max-index-size", default_value = "64GiB", value_parser = parse_bytes, hide = true)]
    block_max_index_size: u64,
    /// Start of time range limit to compact (RFC 3339 or relative such as -1d).
    #[arg(long = "min-time", default_value = "0000-01-01T00:00:00Z")]
    min_time: String,
    /// End of time range limit to compact.
    #[arg(long = "max-time", default_value = "9999-12-31T23:59:59Z")]
    max_time: String,
    /// Path to a YAML file with relabeling configuration selecting the blocks to compact.
    #[arg(long = "selector.relabel-config-file")]
    relabel_config_file: Option<PathBuf>,
    /// Alternative to selector.relabel-config-file: the relabeling configuration in YAML.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
    /// Hash function for uploaded block files ("" or SHA256); accepted, files are not hashed.
    #[arg(long = "hash-func", default_value = "")]
    hash_func: String,
    #[command(flatten)]
    viewer: crate::flags::BlockViewerFlags,
    /// How often the block viewer lists the bucket.
    #[arg(long = "block-viewer.global.sync-block-interval", default_value = "1m", value_parser = parse_duration_flag)]
    viewer_interval: Duration,
    /// Maximum time for one listing of the bucket by the block viewer.
    #[arg(long = "block-viewer.global.sync-block-timeout", default_value = "5m", value_parser = parse_duration_flag)]
    viewer_timeout: Duration,
}

/// A one-line progress bar on a terminal.
struct TermProgress;

impl compact::Progress for TermProgress {
    fn report(&self, phase: &str, done: usize, total: usize) {
        let width = 30;
        let filled = (done * width)
            .checked_div(total)
            .unwrap_or(width)
            .min(width);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{phase:<10} [{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        if done >= total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

pub fn relabel_from(
    file: &Option<PathBuf>,
    inline: &Option<String>,
) -> Result<bucket::relabel::Relabel> {
    let yaml = match (file, inline) {
        (Some(_), Some(_)) => bail!(
            "both --selector.relabel-config-file and --selector.relabel-config are set; use one"
        ),
        (Some(p), None) => std::fs::read_to_string(p)
            .with_context(|| format!("read --selector.relabel-config-file {}", p.display()))?,
        (None, Some(y)) => y.clone(),
        (None, None) => String::new(),
    };
    bucket::relabel::Relabel::parse(&yaml).context("invalid --selector.relabel-config")
}

fn config(a: &CompactArgs) -> Result<compact::Config> {
    let replica_labels: Vec<String> = a
        .replica_labels
        .iter()
        .flat_map(|l| l.split(','))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let merge = match a.dedup_func.as_str() {
        "" => compact::VerticalMerge::OneToOne,
        "penalty" => compact::VerticalMerge::Penalty,
        other => bail!("invalid --deduplication.func {other:?}: want \"\" or \"penalty\""),
    };
    if !matches!(a.hash_func.as_str(), "" | "SHA256") {
        bail!("invalid --hash-func {:?}: want \"\" or SHA256", a.hash_func);
    }
    if a.max_compaction_level < 4 {
        tracing::warn!(
            current = a.max_compaction_level,
            default = 4,
            "Max compaction level is lower than should be"
        );
    }
    let ms = |d: Duration| d.as_millis() as i64;
    let cfg = compact::Config {
        data_dir: a.data_dir.clone(),
        ranges: compact::planner::ranges_for_level(a.max_compaction_level)
            .map_err(anyhow::Error::msg)
            .context("get compaction levels")?,
        vertical: a.enable_vertical || !replica_labels.is_empty(),
        merge,
        replica_labels,
        consistency_delay_ms: ms(a.consistency_delay),
        delete_delay_ms: ms(a.delete_delay),
        retention_ms: [ms(a.retention_raw), ms(a.retention_5m), ms(a.retention_1h)],
        downsampling: !a.downsampling_disable,
        compact_concurrency: a.compact_concurrency,
        fetch_concurrency: a.blocks_fetch_concurrency.max(1),
        downsample_concurrency: a.downsample_concurrency.max(1),
        meta_fetch_concurrency: a.block_meta_fetch_concurrency.max(1),
        skip_out_of_order_chunks: a.skip_out_of_order,
        block_max_index_size: a.block_max_index_size,
        min_time: Some(parse_time_flag("min-time", &a.min_time)?),
        max_time: Some(parse_time_flag("max-time", &a.max_time)?),
        relabel: relabel_from(&a.relabel_config_file, &a.relabel_config)?,
    };
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cfg)
}

pub fn run(a: CompactArgs) -> Result<()> {
    let cfg = config(&a)?;
    let bucket = bucket::config::bucket_from_yaml(&a.objstore.yaml()?)?;
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("create --data-dir {}", a.data_dir.display()))?;
    let _ = a.block_files_concurrency;
    let halt_on_error = a.halt_on_error && !a.no_halt_on_error;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    rt.block_on(async move {
        let status = Status::new("compact");
        let web = a.http_config.load()?;
        let http = bind(&a.http_address, "--http-address").await?;
        tracing::info!(http = %http.local_addr()?, wait = a.wait, "starting compactor");
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let app = match a.viewer.viewer(&bucket) {
            None => router(status.clone(), axum::Router::new()),
            Some(blocks) => {
                crate::server::spawn_block_viewer_sync(
                    blocks.clone(),
                    bucket.clone(),
                    bucket::fetcher::Filters::default(),
                    a.viewer_interval,
                    a.viewer_timeout,
                    stop_rx.clone(),
                );
                router(
                    status.clone(),
                    webui::bucket_routes(a.viewer.web.prefixes(), blocks),
                )
            }
        };
        let mut http_stop = stop_rx.clone();
        let http_task = tokio::spawn(std::future::IntoFuture::into_future(
            axum::serve(
                crate::http_edge::EdgeListener::new(http, web.tls.clone())?,
                web.apply(app),
            )
            .with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            }),
        ));
        let mut compactor = compact::Compactor::new(bucket, cfg);
        if !a.wait && std::io::stderr().is_terminal() {
            compactor = compactor.with_progress(Arc::new(TermProgress));
        }
        let compactor = Arc::new(compactor);
        status
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        let cancel = compactor.cancel_flag();
        tokio::spawn(async move {
            crate::server::shutdown_signal().await;
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = stop_tx.send(true);
        });
        let result = if a.wait {
            spawn_background(
                &compactor,
                a.cleanup_interval,
                a.progress_interval,
                stop_rx.clone(),
            );
            run_waiting(&compactor, a.wait_interval, halt_on_error, &mut stop_rx).await
        } else {
            match compactor.run_once().await {
                Ok(()) => {
                    compactor.metrics().iterations.inc();
                    tracing::info!("compaction done");
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        };
        http_task.abort();
        result
    })
}

/// Iterations every `interval` until stopped; see the module doc for errors.
async fn run_waiting(
    c: &Arc<compact::Compactor>,
    interval: Duration,
    halt_on_error: bool,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return Ok(()),
        }
        match c.run_once().await {
            Ok(()) => c.metrics().iterations.inc(),
            Err(e) if e.is_halt() => {
                tracing::error!(err = %e, "critical error detected; halting");
                if !halt_on_error {
                    bail!("critical error detected: {e}");
                }
                c.metrics().halted.set(1.0);
                // Halted: the HTTP server and metrics stay up until the process is stopped.
                let _ = stop.changed().await;
                return Ok(());
            }
            Err(e) if e.is_retry() => {
                tracing::error!(err = %e, "retriable error");
                c.metrics().retries.inc();
            }
            Err(e) => bail!("error executing compaction: {e}"),
        }
    }
}

/// Background cleanup of partial uploads and the progress gauges.
fn spawn_background(
    c: &Arc<compact::Compactor>,
    cleanup: Duration,
    progress: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let jobs: [(Duration, bool); 2] = [(cleanup, true), (progress, false)];
    for (every, is_cleanup) in jobs {
        if every.is_zero() {
            continue;
        }
        let (c, mut stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                match c.sync().await {
                    Ok(view) if is_cleanup => {
                        c.clean_partial_uploads(&view).await;
                        c.metrics().cleanup_loops.inc();
                    }
                    Ok(view) => c.update_progress(&view),
                    Err(e) => tracing::warn!(err = %e, "background sync failed"),
                }
            }
        });
    }
}
