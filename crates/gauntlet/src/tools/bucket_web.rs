//! `gauntlet tools bucket web`: the block viewer over a bucket, refreshed every `--refresh`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::flags::{parse_duration_flag, WebPrefixFlags};
use crate::server::{bind, router, Status};

#[derive(Args)]
pub struct WebArgs {
    /// Listen host:port for HTTP endpoints.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    #[command(flatten)]
    http_config: crate::security::HttpConfigFlag,
    #[command(flatten)]
    web: WebPrefixFlags,
    /// Accepted for Thanos compatibility; the block viewer API sends no CORS headers.
    #[arg(long = "web.disable-cors")]
    disable_cors: bool,
    /// How often the bucket is listed.
    #[arg(long = "refresh", default_value = "30m", value_parser = parse_duration_flag)]
    refresh: Duration,
    /// Timeout of one listing of the bucket.
    #[arg(long = "timeout", default_value = "5m", value_parser = parse_duration_flag)]
    timeout: Duration,
    /// External block label to use as group title.
    #[arg(long = "label", default_value = "")]
    label: String,
    /// Disable marking blocks for deletion or no compaction from the block viewer.
    #[arg(long = "disable-admin-operations")]
    disable_admin_operations: bool,
    /// Path to a YAML file with relabeling configuration selecting the blocks to show.
    #[arg(long = "selector.relabel-config-file")]
    relabel_config_file: Option<std::path::PathBuf>,
    /// Alternative to selector.relabel-config-file: the relabeling configuration in YAML.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
}

pub async fn web(store: &bucket::Bucket, a: WebArgs) -> Result<()> {
    let _ = a.disable_cors;
    let filters = bucket::fetcher::Filters {
        relabel: crate::compact_cmd::relabel_from(&a.relabel_config_file, &a.relabel_config)?,
        ..Default::default()
    };
    let http_cfg = a.http_config.load()?;
    let status = Status::new("bucket");
    let http = bind(&a.http_address, "--http-address").await?;
    tracing::info!(http = %http.local_addr()?, refresh = ?a.refresh, "starting bucket web");
    let mut viewer = webui::BlocksApi::new(&a.label);
    if !a.disable_admin_operations {
        viewer = viewer.with_admin(store.clone());
    }
    let blocks = Arc::new(viewer);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    crate::server::spawn_block_viewer_sync(
        blocks.clone(),
        store.clone(),
        filters,
        a.refresh,
        a.timeout,
        stop_rx.clone(),
    );
    status
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    let app = router(
        status.clone(),
        webui::bucket_routes(a.web.prefixes(), blocks),
    );
    let mut stop = stop_rx;
    let server = axum::serve(
        crate::http_edge::EdgeListener::new(http, http_cfg.tls.clone())?,
        http_cfg.apply(app),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.changed().await;
    });
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    server.await?;
    tracing::info!("bucket web stopped");
    Ok(())
}
