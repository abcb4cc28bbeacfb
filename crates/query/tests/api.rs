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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_store_hits_the_timeout() {
    let ep = Endpoint::new("hung:1", Arc::new(Hung));
    ep.refresh().await;
    let api = Arc::new(Api::new(
        Arc::new(EndpointSet::new(vec![ep])),
        Config {
            replica_labels: vec![],
            partial_response: true,
            timeout: Duration::from_millis(300),
            engine: promql::Engine::default(),
            auto_downsampling: false,
            max_concurrent: 4,
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router(api)).await });
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
