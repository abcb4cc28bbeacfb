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
        flags: Default::default(),
        cors: true,
        chain_dedup: false,
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

/// A series with the given labels and samples in one raw XOR chunk.
fn xor_series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> pb::Series {
    let mut app = tsdb::chunkenc::XorAppender::new();
    for &(t, v) in samples {
        app.append(t, v);
    }
    pb::Series {
        labels: labels
            .iter()
            .map(|(n, v)| pb::Label {
                name: n.to_string().into(),
                value: v.to_string().into(),
            })
            .collect(),
        chunks: vec![pb::AggrChunk {
            min_time: samples.first().map_or(0, |s| s.0),
            max_time: samples.last().map_or(0, |s| s.0),
            raw: Some(pb::Chunk {
                r#type: 0,
                data: app.into_bytes().into(),
                hash: 0,
            }),
            ..Default::default()
        }],
    }
}

/// A store with one series, `up{job="a"}`, with a sample of 1 every 10 minutes over an
/// hour, and the label names `a`…`e`.
struct Sparse;

#[async_trait::async_trait]
impl SeriesStore for Sparse {
    fn name(&self) -> String {
        "sparse".into()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        Hung.info().await
    }
    async fn series(&self, _req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        use futures::StreamExt;
        let samples: Vec<(i64, f64)> = (0..7).map(|i| (i * 600_000, 1.0)).collect();
        let series = xor_series(&[("__name__", "up"), ("job", "a")], &samples);
        Ok(futures::stream::iter([Ok(storeapi::store::series_frame(series))]).boxed())
    }
    async fn label_names(
        &self,
        _req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        Ok(pb::LabelNamesResponse {
            names: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
            ..Default::default()
        })
    }
    async fn label_values(
        &self,
        _req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        Ok(pb::LabelValuesResponse {
            values: vec!["x".into(), "y".into()],
            ..Default::default()
        })
    }
}

async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> testkit::HttpAnswer {
    let (path, headers): (String, Vec<(String, String)>) = (
        path.to_string(),
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        testkit::http_request(port, "GET", path.as_bytes(), &h, b"").unwrap()
    })
    .await
    .unwrap()
}

async fn sparse_api(cfg: Config) -> u16 {
    let ep = Endpoint::new("sparse", Arc::new(Sparse));
    ep.refresh().await;
    serve(vec![ep], cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookback_delta_parameter_and_thanos_dynamic_lookback() {
    let port = sparse_api(config(Duration::from_secs(5), 4)).await;
    // 7 minutes after the sample at 10m: beyond the default 5m lookback.
    let at = "&time=1020";
    let empty = get(port, &format!("/api/v1/query?query=up{at}"), &[]).await;
    assert!(empty.text().contains("\"result\":[]"), "{}", empty.text());
    let wider = get(
        port,
        &format!("/api/v1/query?query=up{at}&lookback_delta=8m"),
        &[],
    )
    .await;
    assert!(wider.text().contains("\"1\"]"), "{}", wider.text());
    // Allowed to read 1h data, the lookback grows to an hour (Thanos's dynamic lookback).
    let dynamic = get(
        port,
        &format!("/api/v1/query?query=up{at}&max_source_resolution=1h"),
        &[],
    )
    .await;
    assert!(dynamic.text().contains("\"1\"]"), "{}", dynamic.text());
    let bad = get(port, "/api/v1/query?query=up&lookback_delta=x", &[]).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("'lookback_delta' parameter"),
        "{}",
        bad.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_status_cors_and_gzip() {
    let port = sparse_api(Config {
        flags: [("query.timeout".to_string(), "5s".to_string())].into(),
        ..config(Duration::from_secs(5), 4)
    })
    .await;
    let names = get(port, "/api/v1/labels?limit=2", &[]).await;
    assert_eq!(
        names.text(),
        r#"{"status":"success","data":["a","b"],"warnings":["results truncated due to limit"]}"#
    );
    let all = get(port, "/api/v1/labels?limit=5", &[]).await;
    assert!(!all.text().contains("warnings"), "{}", all.text());
    let values = get(port, "/api/v1/label/job/values?limit=1", &[]).await;
    assert!(
        values.text().contains(r#""data":["x"]"#),
        "{}",
        values.text()
    );
    let series = get(port, "/api/v1/series?match[]=up&limit=1", &[]).await;
    assert!(!series.text().contains("truncated"), "{}", series.text());
    let bad = get(port, "/api/v1/labels?limit=-1", &[]).await;
    assert_eq!(bad.status, 400);

    let flags = get(port, "/api/v1/status/flags", &[]).await;
    assert_eq!(
        flags.text(),
        r#"{"status":"success","data":{"query.timeout":"5s"}}"#
    );
    let rt = get(port, "/api/v1/status/runtimeinfo", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&rt.text()).unwrap();
    assert!(v["data"]["startTime"].is_string() && v["data"]["CWD"].is_string());

    assert_eq!(names.header("access-control-allow-origin"), Some("*"));
    let options = tokio::task::spawn_blocking(move || {
        testkit::http_request(port, "OPTIONS", b"/api/v1/query", &[], b"").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(options.status, 204);
    assert_eq!(
        options.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );

    let zipped = get(
        port,
        "/api/v1/query?query=up&time=600",
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&zipped.body[..]),
        &mut text,
    )
    .unwrap();
    let plain = get(port, "/api/v1/query?query=up&time=600", &[]).await;
    assert_eq!(text, plain.text());
    assert_eq!(plain.header("content-encoding"), None);

    let no_cors = sparse_api(Config {
        cors: false,
        ..config(Duration::from_secs(5), 4)
    })
    .await;
    let r = get(no_cors, "/api/v1/labels", &[]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

/// One replica of `up{job="a"}`: a label `replica`, samples of `value` at `times` (s).
struct Replica {
    replica: &'static str,
    times: &'static [i64],
    value: f64,
}

#[async_trait::async_trait]
impl SeriesStore for Replica {
    fn name(&self) -> String {
        self.replica.into()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        Hung.info().await
    }
    async fn series(&self, _req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        use futures::StreamExt;
        let samples: Vec<(i64, f64)> = self.times.iter().map(|t| (t * 1000, self.value)).collect();
        let series = xor_series(
            &[("__name__", "up"), ("job", "a"), ("replica", self.replica)],
            &samples,
        );
        Ok(futures::stream::iter([Ok(storeapi::store::series_frame(series))]).boxed())
    }
    async fn label_names(
        &self,
        r: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        Sparse.label_names(r).await
    }
    async fn label_values(
        &self,
        r: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        Sparse.label_values(r).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_deduplication_keeps_every_replicas_samples() {
    let replicas = || async {
        let a = Endpoint::new(
            "a",
            Arc::new(Replica {
                replica: "a",
                times: &[0, 20, 40],
                value: 1.0,
            }),
        );
        let b = Endpoint::new(
            "b",
            Arc::new(Replica {
                replica: "b",
                times: &[10, 30],
                value: 2.0,
            }),
        );
        a.refresh().await;
        b.refresh().await;
        vec![a, b]
    };
    let cfg = |chain: bool| Config {
        replica_labels: vec!["replica".into()],
        chain_dedup: chain,
        ..config(Duration::from_secs(5), 4)
    };
    let path = "/api/v1/query_range?query=up&start=0&end=40&step=10";
    let penalty = get(serve(replicas().await, cfg(false)).await, path, &[]).await;
    let chain = get(serve(replicas().await, cfg(true)).await, path, &[]).await;
    let values = |a: &testkit::HttpAnswer| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&a.text()).unwrap();
        v["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_str().unwrap().to_string())
            .collect()
    };
    // Penalty follows one replica at a time; chain interleaves both.
    assert_eq!(
        values(&penalty),
        ["1", "2", "2", "2", "2"],
        "{}",
        penalty.text()
    );
    assert_eq!(
        values(&chain),
        ["1", "2", "1", "2", "1"],
        "{}",
        chain.text()
    );
}

/// A store whose Info offers the given `cluster` label sets and that records the matchers
/// it is asked with; its series are `up{cluster=…}` for each.
struct Clustered {
    clusters: &'static [&'static str],
    asked: std::sync::Mutex<Vec<Vec<pb::LabelMatcher>>>,
}

#[async_trait::async_trait]
impl SeriesStore for Clustered {
    fn name(&self) -> String {
        self.clusters.join(",")
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        let mut info = Hung.info().await?;
        info.label_sets = self
            .clusters
            .iter()
            .map(|c| pb::ZLabelSet {
                labels: vec![pb::Label {
                    name: "cluster".into(),
                    value: c.to_string().into(),
                }],
            })
            .collect();
        Ok(info)
    }
    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        use futures::StreamExt;
        self.asked.lock().unwrap().push(req.matchers.clone());
        // Matchers on `cluster` apply, as a real store applies them.
        let allowed = |c: &str| {
            req.matchers
                .iter()
                .filter(|m| m.name == "cluster")
                .all(|m| {
                    regex::Regex::new(&format!("^(?:{})$", m.value)).is_ok_and(|r| r.is_match(c))
                })
        };
        let frames: Vec<Result<pb::SeriesResponse, Status>> = self
            .clusters
            .iter()
            .filter(|c| allowed(c))
            .map(|c| {
                Ok(storeapi::store::series_frame(xor_series(
                    &[("__name__", "up"), ("cluster", c)],
                    &[(0, 1.0)],
                )))
            })
            .collect();
        Ok(futures::stream::iter(frames).boxed())
    }
    async fn label_names(
        &self,
        r: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        Sparse.label_names(r).await
    }
    async fn label_values(
        &self,
        r: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        Sparse.label_values(r).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_limits_endpoints_and_series_to_the_label_sets_it_keeps() {
    let us = Arc::new(Clustered {
        clusters: &["us"],
        asked: Default::default(),
    });
    let both = Arc::new(Clustered {
        clusters: &["eu", "us"],
        asked: Default::default(),
    });
    let eps = vec![
        Endpoint::new("us", us.clone()),
        Endpoint::new("both", both.clone()),
    ];
    for e in &eps {
        e.refresh().await;
    }
    let selector: query::endpoints::Selector =
        Arc::new(|l: &std::collections::BTreeMap<String, String>| {
            l.get("cluster").map(String::as_str) == Some("eu")
        });
    let set = EndpointSet::new(eps).with_selector(Some(selector));
    let api = Arc::new(Api::new(Arc::new(set), config(Duration::from_secs(5), 4)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router(api)).await });
    let r = get(port, "/api/v1/query?query=up&time=0", &[]).await;
    assert!(r.text().contains(r#""cluster":"eu""#), "{}", r.text());
    assert!(!r.text().contains(r#""cluster":"us""#), "{}", r.text());
    assert!(
        us.asked.lock().unwrap().is_empty(),
        "the us-only endpoint is not asked"
    );
    let asked = both.asked.lock().unwrap();
    assert!(
        asked[0]
            .iter()
            .any(|m| m.name == "cluster" && m.value == "eu"),
        "{asked:?}"
    );
}

/// A store that answers every Series call with its series of the metric name asked for
/// (all of them when the name is not given).
struct Fixed(Vec<pb::Series>);

#[async_trait::async_trait]
impl SeriesStore for Fixed {
    fn name(&self) -> String {
        "fixed".into()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        Hung.info().await
    }
    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        use futures::StreamExt;
        let name = req
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && m.r#type == pb::label_matcher::Type::Eq as i32)
            .map(|m| m.value.clone());
        let frames: Vec<_> = self
            .0
            .iter()
            .filter(|s| {
                name.as_ref().is_none_or(|n| {
                    s.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == n)
                })
            })
            .cloned()
            .map(|s| Ok(storeapi::store::series_frame(s)))
            .collect();
        Ok(futures::stream::iter(frames).boxed())
    }
    async fn label_names(
        &self,
        _req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        Ok(Default::default())
    }
    async fn label_values(
        &self,
        _req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        Ok(Default::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_are_answered_in_prometheus_json() {
    use tsdb::chunkenc::histogram::{Histogram, HistogramAppender, Span};
    let floats = xor_series(
        &[("__name__", "a"), ("job", "x")],
        &[(0, 1.0), (15_000, 2.0)],
    );
    let mut app = HistogramAppender::new();
    for (t, n) in [(0i64, 4.0), (15_000, 6.0)] {
        let h = Histogram {
            t,
            count: n,
            sum: n * 1.5,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![n / 2.0, n / 2.0],
            ..Histogram::default()
        };
        app.append(&h).unwrap();
    }
    let mut histograms = xor_series(&[("__name__", "h"), ("job", "x")], &[(0, 1.0)]);
    histograms.chunks[0].max_time = 15_000;
    histograms.chunks[0].raw = Some(pb::Chunk {
        r#type: pb::chunk::Encoding::Histogram as i32,
        data: app.into_bytes().into(),
        hash: 0,
    });
    let mut corrupt = histograms.clone();
    corrupt.labels[0].value = "broken".into();
    if let Some(raw) = &mut corrupt.chunks[0].raw {
        raw.data = vec![0, 2, 0, 0xff].into();
    }
    let ep = Endpoint::new("fixed", Arc::new(Fixed(vec![floats, histograms])));
    ep.refresh().await;
    let port = serve(vec![ep], config(Duration::from_secs(5), 4)).await;
    let bad_ep = Endpoint::new("corrupt", Arc::new(Fixed(vec![corrupt])));
    bad_ep.refresh().await;
    let bad_port = serve(vec![bad_ep], config(Duration::from_secs(5), 4)).await;
    let answer = get(
        port,
        "/api/v1/query?query=%7B__name__%3D~%22a%7Ch%22%7D&time=20",
        &[],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(v["status"], "success", "{}", answer.text());
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{}", answer.text());
    assert_eq!(result[0]["value"][1], "2");
    assert_eq!(
        result[1]["histogram"],
        serde_json::json!([20, {"count": "6", "sum": "9", "buckets": [[0, "0.5", "1", "3"], [0, "1", "2", "3"]]}]),
        "{}",
        answer.text()
    );
    assert!(v.get("warnings").is_none(), "{}", answer.text());
    // A range query answers `histograms`.
    let range = get(
        port,
        "/api/v1/query_range?query=h&start=0&end=15&step=15",
        &[],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&range.body).unwrap();
    let series = &v["data"]["result"][0];
    assert!(series.get("values").is_none(), "{}", range.text());
    assert_eq!(
        series["histograms"].as_array().unwrap().len(),
        2,
        "{}",
        range.text()
    );
    // A chunk that does not decode is an error naming the series.
    let bad = get(bad_port, "/api/v1/query?query=broken&time=20", &[]).await;
    assert!(
        bad.text().contains("corrupt histogram chunk"),
        "{}",
        bad.text()
    );
    assert!(bad.text().contains("broken"), "{}", bad.text());
}

/// A store that counts its Series calls and answers from `Fixed`, except for the metric
/// `bad`, whose calls fail.
struct Counted(Arc<std::sync::atomic::AtomicUsize>, Fixed);

impl Counted {
    /// Metrics `few` (3 series), `many` (300) and `a`…`f` (1 each); each series has a
    /// sample of 1 every 10 minutes over an hour.
    fn new(calls: Arc<std::sync::atomic::AtomicUsize>) -> Counted {
        let samples: Vec<(i64, f64)> = (0..7).map(|i| (i * 600_000, 1.0)).collect();
        let mut series = Vec::new();
        for (name, count) in [("few", 3), ("many", 300)]
            .into_iter()
            .chain(["a", "b", "c", "d", "e", "f"].map(|n| (n, 1)))
        {
            for i in 0..count {
                let i = format!("{i:03}");
                series.push(xor_series(&[("__name__", name), ("i", &i)], &samples));
            }
        }
        Counted(calls, Fixed(series))
    }
}

#[async_trait::async_trait]
impl SeriesStore for Counted {
    fn name(&self) -> String {
        "counted".into()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        Hung.info().await
    }
    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if (req.matchers.iter()).any(|m| m.name == "__name__" && m.value == "bad") {
            return Err(Status::unavailable("the bad store is down"));
        }
        self.1.series(req).await
    }
    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        self.1.label_names(req).await
    }
    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        self.1.label_values(req).await
    }
}

/// Small queries are evaluated where they arrive over selections read first; larger ones
/// continue on a blocking thread with what was read. Either way the answer is the same and
/// each selection is asked of the stores once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_queries_read_each_selection_once() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ep = Endpoint::new("counted", Arc::new(Counted::new(calls.clone())));
    ep.refresh().await;
    let port = serve(vec![ep], config(Duration::from_secs(5), 4)).await;
    let value = |text: &str| -> String {
        let at = text.find("\"3600,\"").or_else(|| text.find("[3600,\""));
        let rest = &text[at.unwrap_or_else(|| panic!("no sample at 3600: {text}"))..];
        let start = rest.find(",\"").unwrap() + 2;
        rest[start..start + rest[start..].find('"').unwrap()].to_string()
    };
    for (query, expected, selections) in [
        // One small selection, and the same one twice.
        ("count(few)", "3", 1),
        ("count(few / few)", "3", 2),
        // Larger than a small query: its stream continues on the blocking thread.
        ("count(many)", "300", 1),
        ("count(few) + count(many)", "303", 2),
        // More selections than a small query reads.
        (
            "count(a) + count(b) + count(c) + count(d) + count(e) + count(f)",
            "6",
            6,
        ),
    ] {
        let q = query
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('/', "%2F");
        for path in [
            format!("/api/v1/query?query={q}&time=3600"),
            // 61 steps (few) and 3601 (not few).
            format!("/api/v1/query_range?query={q}&start=0&end=3600&step=60"),
            format!("/api/v1/query_range?query={q}&start=0&end=3600&step=1"),
        ] {
            let before = calls.load(std::sync::atomic::Ordering::SeqCst);
            let answer = get(port, &path, &[]).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text());
            assert_eq!(value(&answer.text()), expected, "{path}");
            let after = calls.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(after - before, selections, "Series calls for {path}");
        }
    }
    // A failing store fails the query with its message, wherever it is evaluated.
    for path in [
        "/api/v1/query?query=count(bad)&time=3600&partial_response=false",
        "/api/v1/query?query=count(many)%2Bcount(bad)&time=3600&partial_response=false",
    ] {
        let answer = get(port, path, &[]).await;
        assert_ne!(answer.status, 200, "{path}");
        assert!(
            answer.text().contains("the bad store is down"),
            "{path}: {}",
            answer.text()
        );
    }
}
