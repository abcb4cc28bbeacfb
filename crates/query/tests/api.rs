//! The HTTP API in process, over stores that hang or fail.

use std::sync::Arc;
use std::time::Duration;

use query::api::{router, Api, Config};
use query::endpoints::{Endpoint, EndpointSet};
use storeapi::pb;
use storeapi::{SeriesStore, SeriesStream};
use tonic::Status;

/// A store whose Series never answers.
struct Hung;

#[async_trait::async_trait]
impl SeriesStore for Hung {
    fn name(&self) -> String {
        "hung".into()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        Ok(pb::info::InfoResponse {
            store: Some(pb::info::StoreInfo {
                min_time: i64::MIN / 2,
                max_time: i64::MAX / 2,
                ..Default::default()
            }),
            ..Default::default()
        })
    }
    async fn series(&self, _req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        std::future::pending::<()>().await;
        Err(Status::internal("unreachable"))
    }
    async fn label_names(
        &self,
        _req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        std::future::pending::<()>().await;
        Err(Status::internal("unreachable"))
    }
    async fn label_values(
        &self,
        _req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        std::future::pending::<()>().await;
        Err(Status::internal("unreachable"))
    }
}

fn config(timeout: Duration, max_concurrent: usize) -> Config {
    Config {
        replica_labels: vec![],
        partial_response: true,
        timeout,
        engine: promql::Engine::default(),
        auto_downsampling: false,
        max_concurrent,
        default_step: Duration::from_secs(1),
    }
}

/// Serves the API over `endpoints` on a free loopback port.
async fn serve(endpoints: Vec<Arc<Endpoint>>, cfg: Config) -> u16 {
    let api = Arc::new(Api::new(Arc::new(EndpointSet::new(endpoints)), cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router(api)).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_store_hits_the_timeout() {
    let ep = Endpoint::new("hung:1", Arc::new(Hung));
    ep.refresh().await;
    let port = serve(vec![ep], config(Duration::from_millis(300), 4)).await;
    for path in [
        "/api/v1/series?match%5B%5D=up",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/query?query=up",
        "/api/v1/query_range?query=rate(up%5B5m%5D)&start=0&end=600&step=60",
    ] {
        let started = std::time::Instant::now();
        let (code, body) =
            tokio::task::spawn_blocking(move || testkit::http_get(port, path).unwrap())
                .await
                .unwrap();
        assert_eq!(code, 503, "{path}: {body}");
        assert!(body.contains("\"errorType\":\"timeout\""), "{body}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_the_queue_counts_against_the_timeout() {
    let ep = Endpoint::new("hung:1", Arc::new(Hung));
    ep.refresh().await;
    let timeout = Duration::from_millis(800);
    let port = serve(vec![ep], config(timeout, 1)).await;
    // The first query holds the only slot until its deadline; the second waits in the queue
    // and must be answered when its own deadline passes, not after the first finished.
    let first = tokio::task::spawn_blocking(move || {
        let t = std::time::Instant::now();
        let r = testkit::http_get(port, "/api/v1/query?query=up").unwrap();
        (r, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::task::spawn_blocking(move || {
        let t = std::time::Instant::now();
        let r = testkit::http_get(port, "/api/v1/query?query=vector(1)&timeout=0.3").unwrap();
        (r, t.elapsed())
    });
    let ((code1, body1), took1) = first.await.unwrap();
    let ((code2, body2), took2) = second.await.unwrap();
    assert_eq!(code1, 503, "{body1}");
    assert!(
        body1.contains("query timed out in expression evaluation"),
        "{body1}"
    );
    assert_eq!(code2, 503, "{body2}");
    assert!(body2.contains("query timed out in query queue"), "{body2}");
    assert!(took1 < timeout + Duration::from_millis(700), "{took1:?}");
    assert!(took2 < Duration::from_millis(300 + 700), "{took2:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_too_deep_to_evaluate_is_refused_fast() {
    let port = serve(vec![], config(Duration::from_secs(30), 4)).await;
    let body = format!("query={}", vec!["1"; 100_000].join("%2B"));
    let t = std::time::Instant::now();
    let a = tokio::task::spawn_blocking(move || {
        testkit::http_request(
            port,
            "POST",
            b"/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("too complex"), "{}", a.text());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // And the largest depth accepted evaluates (2,000 terms, as Prometheus answers).
    let body = format!("query={}", vec!["1"; 2000].join("%2B"));
    let a = tokio::task::spawn_blocking(move || {
        testkit::http_request(
            port,
            "POST",
            b"/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.text().contains("\"2000\""), "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_queries_without_step_use_thanos_default_step() {
    let port = serve(
        vec![],
        Config {
            default_step: Duration::from_secs(30),
            ..config(Duration::from_secs(5), 4)
        },
    )
    .await;
    // max(range / 250, --query.default-step), in whole seconds, as Thanos.
    for (range, step) in [(3_600, 30), (36_000, 144)] {
        let path = format!("/api/v1/query_range?query=1&start=0&end={range}");
        let (code, body) =
            tokio::task::spawn_blocking(move || testkit::http_get(port, &path).unwrap())
                .await
                .unwrap();
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains(&format!("[0,\"1\"],[{step},\"1\"]")),
            "{range}: {body}"
        );
    }
}
