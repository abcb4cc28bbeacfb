//! What every long-running component shares: the HTTP server with `/metrics`,
//! `/-/healthy` and `/-/ready`, a small metrics registry in Prometheus text format, and
//! shutdown on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
        s
    }
}

/// The `/metrics`, `/-/healthy`, `/-/ready` routes, plus any component routes.
pub fn router(status: Arc<Status>, extra: Router) -> Router {
    let m = status.clone();
    let r = status.clone();
    extra
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

/// Binds `addr` ("host:port"), failing with the address in the message.
pub async fn bind(addr: &str, what: &str) -> Result<tokio::net::TcpListener> {
    let sa: SocketAddr = addr
        .parse()
        .with_context(|| format!("invalid {what} {addr:?}: want host:port"))?;
    tokio::net::TcpListener::bind(sa)
        .await
        .with_context(|| format!("listen on {what} {addr}"))
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
/// StoreAPI, and `background` (given a stop signal) alongside; then stops all three.
pub async fn run_component<F, Fut>(
    http: tokio::net::TcpListener,
    app: Router,
    grpc: tokio::net::TcpListener,
    store: Arc<dyn storeapi::SeriesStore>,
    background: F,
) -> Result<()>
where
    F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let http_task = tokio::spawn(std::future::IntoFuture::into_future(
        axum::serve(crate::http_edge::EdgeListener(http), app)
            .with_graceful_shutdown(stopped(stop_rx.clone())),
    ));
    let grpc_task = tokio::spawn(storeapi::server::serve(
        store,
        grpc,
        stopped(stop_rx.clone()),
    ));
    let bg_task = tokio::spawn(background(stop_rx));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = bg_task.await;
    http_task.await?.context("HTTP server")?;
    grpc_task.await?.context("gRPC server")?;
    Ok(())
}
