//! What every long-running component shares: the HTTP server with `/metrics`,
//! `/-/healthy` and `/-/ready`, a small metrics registry in Prometheus text format, and
//! shutdown on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

/// The component's metrics, kept in the process-wide [`telemetry`] registry; a name may
/// carry labels (`name{a="b"}`).
#[derive(Default)]
pub struct Metrics;

/// Splits `name{a="b",c="d"}` into the family name and its label pairs.
fn split_name(full: &str) -> (&str, Vec<(String, String)>) {
    let Some((name, rest)) = full.split_once('{') else {
        return (full, Vec::new());
    };
    let body = rest.trim_end_matches('}');
    let labels = body
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    (name, labels)
}

impl Metrics {
    fn value(&self, full: &str, kind: &'static str, help: &str) -> telemetry::Value {
        let (name, labels) = split_name(full);
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match kind {
            "counter" => telemetry::counter(name, help, &pairs),
            _ => telemetry::gauge(name, help, &pairs),
        }
    }

    /// Registers (or finds) a metric; `kind` is "gauge" or "counter".
    pub fn handle(&self, name: &str, kind: &'static str, help: &'static str) -> telemetry::Value {
        self.value(name, kind, help)
    }

    pub fn set(&self, name: &str, v: f64) {
        self.value(name, "gauge", "").set(v);
    }

    pub fn add(&self, name: &str, v: f64) {
        self.value(name, "counter", "").add(v);
    }

    pub fn render(&self) -> String {
        telemetry::render()
    }
}

/// Shared state of the HTTP endpoints.
pub struct Status {
    pub ready: AtomicBool,
    pub metrics: Metrics,
}

impl Status {
    pub fn new(component: &str) -> Arc<Status> {
        let s = Arc::new(Status {
            ready: AtomicBool::new(false),
            metrics: Metrics,
        });
        let name = format!(
            "gauntlet_build_info{{component=\"{component}\",version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        s.metrics.handle(&name, "gauge", "Build information.");
        s.metrics.set(&name, 1.0);
        // Thanos's own, which its dashboards read (Go-specific labels say what runs instead).
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        telemetry::gauge(
            "thanos_build_info",
            "A metric with a constant '1' value labeled by version, revision, branch, goversion from which thanos was built, and the goos, goarch and tags for the build.",
            &[
                ("branch", "main"),
                ("goarch", arch),
                ("goos", std::env::consts::OS),
                ("goversion", "rust"),
                ("revision", "gauntlet"),
                ("tags", ""),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
        )
        .set(1.0);
        s
    }
}

/// Thanos's buckets for HTTP request durations (seconds).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

/// The `handler` label Thanos gives an API route, if the path is one.
fn handler_name(path: &str) -> Option<&'static str> {
    let api = path.strip_prefix("/api/v1/")?;
    Some(match api {
        "query" => "query",
        "query_range" => "query_range",
        "series" => "series",
        "labels" => "label_names",
        "stores" => "stores",
        "status/buildinfo" => "status_build",
        "status/flags" => "status_flags",
        "status/runtimeinfo" => "status_runtime",
        other if other.starts_with("label/") && other.ends_with("/values") => "label_values",
        _ => return None,
    })
}

/// Counts and times API requests as Thanos does: `http_requests_total` and
/// `http_request_duration_seconds`, labelled `code`, `handler` and `method`.
async fn http_metrics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(handler) = handler_name(req.uri().path()) else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_ascii_lowercase();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let code = resp.status().as_u16().to_string();
    let labels = [
        ("code", code.as_str()),
        ("handler", handler),
        ("method", method.as_str()),
    ];
    telemetry::counter(
        "http_requests_total",
        "Tracks the number of HTTP requests.",
        &labels,
    )
    .inc();
    telemetry::histogram(
        "http_request_duration_seconds",
        "Tracks the latencies for HTTP requests.",
        &labels,
        HTTP_BUCKETS,
    )
    .observe(started.elapsed().as_secs_f64());
    resp
}

/// The `/metrics`, `/-/healthy`, `/-/ready` routes, plus any component routes.
pub fn router(status: Arc<Status>, extra: Router) -> Router {
    let m = status.clone();
    let r = status.clone();
    extra
        .layer(axum::middleware::from_fn(http_metrics))
        .route(
            "/metrics",
            get(move || async move { m.metrics.render() + &bucket::stats::render() }),
        )
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route(
            "/-/ready",
            get(move || async move {
                if r.ready.load(Ordering::Acquire) {
                    (StatusCode::OK, "OK\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
}

/// Refreshes the block viewer's view of the bucket now and every `every` (each listing
/// bounded by `timeout`) until `stop` changes.
pub fn spawn_block_viewer_sync(
    blocks: Arc<webui::BlocksApi>,
    bucket: bucket::Bucket,
    filters: bucket::fetcher::Filters,
    every: Duration,
    timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let refresh = blocks.refresh(bucket.as_ref(), &filters);
            if tokio::time::timeout(timeout, refresh).await.is_err() {
                tracing::warn!(?timeout, "block viewer: listing the bucket timed out");
            }
            tokio::select! {
                _ = tokio::time::sleep(every.max(Duration::from_millis(100))) => {}
                _ = stop.changed() => return,
            }
        }
    });
}

/// Binds `addr` as Go's `net.Listen` reads it: `host:port`, `:port` (every interface) or
/// `name:port`; fails with the address in the message.
pub async fn bind(addr: &str, what: &str) -> Result<tokio::net::TcpListener> {
    let sa = listen_address(addr)
        .await
        .with_context(|| format!("invalid {what} {addr:?}: want host:port"))?;
    tokio::net::TcpListener::bind(sa)
        .await
        .with_context(|| format!("listen on {what} {addr}"))
}

async fn listen_address(addr: &str) -> Result<SocketAddr> {
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().context("bad port")?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(sa) = addr.parse() {
        return Ok(sa);
    }
    tokio::net::lookup_host(addr)
        .await
        .context("resolve host")?
        .next()
        .context("host has no address")
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("received shutdown signal");
}

/// Runs a component until SIGINT/SIGTERM: `app` on the HTTP listener, `store` as the gRPC
/// StoreAPI with `apis` beside it (both secured by `security`), and `background` (given a stop signal) alongside;
/// then stops all three. An error from `background` stops the servers and is returned.
pub async fn run_component<F, Fut>(
    http: tokio::net::TcpListener,
    app: Router,
    grpc: tokio::net::TcpListener,
    store: Arc<dyn storeapi::SeriesStore>,
    apis: Option<Arc<dyn storeapi::apis::PromApis>>,
    security: crate::security::Security,
    background: F,
) -> Result<()>
where
    F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let http_task = tokio::spawn(std::future::IntoFuture::into_future(
        axum::serve(
            crate::http_edge::EdgeListener::new(http, security.http.tls.clone())?,
            security.http.apply(app),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone())),
    ));
    let grpc_task = tokio::spawn(storeapi::server::serve(
        store,
        apis,
        grpc,
        security.grpc_tls.clone(),
        stopped(stop_rx.clone()),
    ));
    let mut bg_task = tokio::spawn(background(stop_rx));
    // The background work ends on the stop signal, or early with an error that stops all.
    let early = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut bg_task => Some(r),
    };
    let _ = stop_tx.send(true);
    let background_result = match early {
        Some(r) => r,
        None => bg_task.await,
    };
    background_result.context("background task")??;
    http_task.await?.context("HTTP server")?;
    grpc_task.await?.context("gRPC server")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_addresses_as_go_reads_them() {
        let at = |s: &'static str| async move { listen_address(s).await.map(|a| a.to_string()) };
        assert_eq!(at(":10901").await.unwrap(), "0.0.0.0:10901");
        assert_eq!(at("127.0.0.1:9090").await.unwrap(), "127.0.0.1:9090");
        assert_eq!(at("[::1]:9090").await.unwrap(), "[::1]:9090");
        assert!(at("localhost:9090").await.unwrap().ends_with(":9090"));
        assert!(at("nohost").await.is_err());
        assert!(at(":notaport").await.is_err());
    }
}
