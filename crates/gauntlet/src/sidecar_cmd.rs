//! `gauntlet sidecar`: the StoreAPI over the Prometheus next to it, with Thanos's flags.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::flags::{parse_duration_flag, parse_time_flag, ObjstoreFlags};
use crate::server::{bind, router, run_component, Status};

#[derive(Args)]
pub struct SidecarArgs {
    /// URL at which to reach Prometheus's API.
    #[arg(long = "prometheus.url", default_value = "http://localhost:9090")]
    prometheus_url: String,
    /// Maximum time to wait for Prometheus to become ready.
    #[arg(long = "prometheus.ready_timeout", default_value = "10m", value_parser = parse_duration_flag)]
    ready_timeout: Duration,
    /// How often to re-read Prometheus's configuration (external labels).
    #[arg(long = "prometheus.get_config_interval", default_value = "30s", value_parser = parse_duration_flag)]
    config_interval: Duration,
    /// Timeout for getting Prometheus's configuration, readiness and metrics.
    #[arg(long = "prometheus.get_config_timeout", default_value = "5s", value_parser = parse_duration_flag)]
    config_timeout: Duration,
    /// How often to check that Prometheus answers; while it does not, the sidecar is not ready.
    #[arg(long = "prometheus.health-interval", default_value = "5s", value_parser = parse_duration_flag, hide = true)]
    health_interval: Duration,
    /// HTTP client config (YAML) for reaching Prometheus: basic auth, bearer token, TLS.
    #[arg(long = "prometheus.http-client", default_value = "")]
    http_client: String,
    /// Path to a file with the HTTP client config.
    #[arg(long = "prometheus.http-client-file", default_value = "")]
    http_client_file: String,
    /// Data directory of the TSDB.
    #[arg(long = "tsdb.path", default_value = "./data")]
    tsdb_path: PathBuf,
    #[command(flatten)]
    objstore: ObjstoreFlags,
    /// Also upload compacted blocks (compaction level > 1).
    #[arg(long = "shipper.upload-compacted")]
    upload_compacted: bool,
    /// Go on past a block that failed to upload (later blocks may reach the bucket first).
    #[arg(long = "shipper.allow-out-of-order-uploads", hide = true)]
    allow_out_of_order: bool,
    /// Skip local blocks whose meta.json cannot be read instead of stopping at them.
    #[arg(long = "shipper.skip-corrupted-blocks", hide = true)]
    skip_corrupted: bool,
    /// Prometheus config file watched by the reloader (changes make Prometheus reload).
    #[arg(long = "reloader.config-file", default_value = "")]
    reloader_config_file: String,
    /// Output file for the config with `$(ENV_VAR)` references expanded.
    #[arg(long = "reloader.config-envsubst-file", default_value = "")]
    reloader_config_output: String,
    /// Rule directory watched by the reloader; repeatable.
    #[arg(long = "reloader.rule-dir")]
    reloader_rule_dirs: Vec<PathBuf>,
    /// How often the reloader re-reads config and rules in full.
    #[arg(long = "reloader.watch-interval", default_value = "3m", value_parser = parse_duration_flag)]
    reloader_watch_interval: Duration,
    /// How often a failed reload is retried.
    #[arg(long = "reloader.retry-interval", default_value = "5s", value_parser = parse_duration_flag)]
    reloader_retry_interval: Duration,
    /// How Prometheus is reloaded: `http` (POST /-/reload) or `signal` (SIGHUP).
    #[arg(long = "reloader.method", default_value = "http", value_parser = ["http", "signal"])]
    reloader_method: String,
    /// Process name to send SIGHUP to with `--reloader.method=signal`.
    #[arg(long = "reloader.process-name", default_value = "prometheus")]
    reloader_process_name: String,
    /// Serve only data after this time (RFC 3339 or relative such as -1d).
    #[arg(long = "min-time", default_value = "0000-01-01T00:00:00Z")]
    min_time: String,
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
}

pub fn run(a: SidecarArgs) -> Result<()> {
    let security = crate::security::Security::from_flags(&a.grpc_tls, &a.http_config)?;
    let bucket = if a.objstore.config_file.is_some() || a.objstore.config.is_some() {
        Some(bucket::config::bucket_from_yaml(&a.objstore.yaml()?)?)
    } else {
        tracing::info!("no object storage configured: serving queries only, shipping nothing");
        None
    };
    let min_time = parse_time_flag("min-time", &a.min_time)?;
    let http_client_yaml = match (a.http_client_file.as_str(), a.http_client.as_str()) {
        ("", yaml) => yaml.to_string(),
        (path, "") => std::fs::read_to_string(path)
            .with_context(|| format!("read --prometheus.http-client-file {path}"))?,
        _ => bail!(
            "both --prometheus.http-client-file and --prometheus.http-client are set; use one"
        ),
    };
    let http_client = sidecar::http_client::HttpClientConfig::parse(&http_client_yaml)
        .map_err(anyhow::Error::msg)
        .context("--prometheus.http-client")?;
    tracing::info!(prometheus = %a.prometheus_url, tsdb_path = %a.tsdb_path.display(), upload_compacted = a.upload_compacted, "starting sidecar");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    let _guard = rt.enter();
    let prom = Arc::new(
        sidecar::PrometheusStore::with_client(
            &a.prometheus_url,
            min_time,
            a.config_timeout,
            &http_client,
        )
        .map_err(anyhow::Error::msg)?,
    );
    rt.block_on(async move {
        let status = Status::new("sidecar");
        status.metrics.handle("thanos_shipper_uploads_total", "counter", "Total number of uploaded blocks.");
        status.metrics.handle("thanos_shipper_upload_failures_total", "counter", "Total number of block upload failures.");
        let http = bind(&a.http_address, "--http-address").await?;
        let grpc = bind(&a.grpc_address, "--grpc-address").await?;
        tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, "listening");
        let app = router(status.clone(), axum::Router::new());
        let watcher = prom.clone();
        let shipper = bucket.map(|b| sidecar::shipper::Shipper {
            bucket: b,
            tsdb_dir: a.tsdb_path.clone(),
            upload_compacted: a.upload_compacted,
            source: "sidecar".into(),
            allow_out_of_order: a.allow_out_of_order,
            skip_corrupted: a.skip_corrupted,
        });
        let prometheus_up = telemetry::gauge(
            "thanos_sidecar_prometheus_up",
            "Boolean indicator whether the sidecar can reach its Prometheus peer.",
            &[],
        );
        let (health_prom, health_status, up) = (prom.clone(), status.clone(), prometheus_up.clone());
        let health_interval = a.health_interval;
        let startup = Startup {
            prom: prom.clone(),
            url: a.prometheus_url.clone(),
            ready_timeout: a.ready_timeout,
            uploads: shipper.is_some(),
        };
        let prom_apis: Arc<dyn storeapi::apis::PromApis> = prom.clone();
        let reloader = (!a.reloader_config_file.is_empty() || !a.reloader_rule_dirs.is_empty()).then(|| {
            sidecar::reloader::Reloader {
                config_file: Some(PathBuf::from(&a.reloader_config_file))
                    .filter(|p| !p.as_os_str().is_empty()),
                config_output: Some(PathBuf::from(&a.reloader_config_output))
                    .filter(|p| !p.as_os_str().is_empty()),
                rule_dirs: a.reloader_rule_dirs.clone(),
                watch_interval: a.reloader_watch_interval,
                retry_interval: a.reloader_retry_interval,
                trigger: if a.reloader_method == "signal" {
                    sidecar::reloader::Trigger::Signal {
                        process_name: a.reloader_process_name.clone(),
                    }
                } else {
                    sidecar::reloader::Trigger::Http {
                        url: prom.url().to_string(),
                        client: prom.http_client(),
                    }
                },
            }
        });
        run_component(http, app, grpc, prom, Some(prom_apis), security, move |mut stop| async move {
        if let Some(r) = reloader {
            tokio::spawn(r.run(stop.clone()));
        }
        if !startup.wait(&mut stop).await? {
            return Ok(());
        }
        prometheus_up.set(1.0);
        status.ready.store(true, Ordering::Release);
        // Readiness follows Prometheus: checked often, with a timeout, so a frozen or stopped
        // Prometheus makes the sidecar not ready (and unhealthy to queriers) within seconds.
        tokio::spawn(async move {
            let mut was_up = true;
            loop {
                tokio::time::sleep(health_interval).await;
                match health_prom.check_ready().await {
                    Ok(()) => {
                        if !was_up {
                            tracing::info!("Prometheus answers again; sidecar ready");
                        }
                        was_up = true;
                        up.set(1.0);
                        health_status.ready.store(true, Ordering::Release);
                    }
                    Err(e) => {
                        if was_up {
                            tracing::warn!(err = %e.message(), "Prometheus does not answer; sidecar not ready");
                        }
                        was_up = false;
                        up.set(0.0);
                        health_status.ready.store(false, Ordering::Release);
                    }
                }
            }
        });
            loop {
                let labels = match watcher.refresh_external_labels().await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        status.ready.store(false, Ordering::Release);
                        prometheus_up.set(0.0);
                        tracing::warn!(err = %e.message(), "reading Prometheus configuration failed");
                        None
                    }
                };
                if let (Some(s), Some(l)) = (&shipper, &labels) {
                    match s.sync(l).await {
                        Ok(r) => {
                            status.metrics.add("thanos_shipper_uploads_total", r.uploaded.len() as f64);
                            status.metrics.add("thanos_shipper_upload_failures_total", r.failed.len() as f64);
                            for (id, e) in &r.failed {
                                tracing::warn!(block = %id, err = %e, "block not shipped");
                            }
                        }
                        Err(e) => tracing::warn!(err = %e, "shipper sync failed"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(a.config_interval) => {}
                    _ = stop.changed() => break,
                }
            }
            Ok(())
        })
        .await?;
        tracing::info!("sidecar stopped");
        Ok(())
    })
}

/// Waiting for Prometheus at startup, as Thanos's sidecar waits: retried (each failure
/// logged with its cause) until Prometheus is ready and its external labels are read; with
/// uploads on, the sidecar gives up after `--prometheus.ready_timeout`, else it waits on.
struct Startup {
    prom: Arc<sidecar::PrometheusStore>,
    url: String,
    ready_timeout: Duration,
    uploads: bool,
}

impl Startup {
    /// True once Prometheus is ready; false when stopped while waiting.
    async fn wait(&self, stop: &mut tokio::sync::watch::Receiver<bool>) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        loop {
            let attempt = async {
                self.prom.check_ready().await?;
                self.prom.refresh_external_labels().await
            };
            match attempt.await {
                Ok(labels) => {
                    tracing::info!(external_labels = %labels, "read external labels from Prometheus");
                    return Ok(true);
                }
                Err(e) => {
                    if self.uploads && tokio::time::Instant::now() > deadline {
                        bail!(
                            "Prometheus at {} not ready after {:?} (--prometheus.ready_timeout), \
                             no external labels to upload blocks with: {}",
                            self.url,
                            self.ready_timeout,
                            e.message()
                        );
                    }
                    tracing::warn!(prometheus = %self.url, err = %e.message(), "Prometheus not ready yet; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return Ok(false),
            }
        }
    }
}
