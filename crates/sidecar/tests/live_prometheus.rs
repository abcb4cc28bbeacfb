//! The sidecar's StoreAPI against a real Prometheus 2.42: samples through remote read equal
//! what Prometheus's own API returns, external labels are added, and failures are clear.

use std::time::Duration;

use futures::StreamExt;
use sidecar::PrometheusStore;
use storeapi::convert::labels_from_pb;
use storeapi::pb;
use storeapi::SeriesStore;
use testkit::prometheus::Prometheus;
use tsdb::chunkenc::XorIterator;

fn config(port: u16, external: bool) -> String {
    let ext = if external {
        "  external_labels:\n    replica: a\n    cluster: test\n"
    } else {
        ""
    };
    format!(
        "global:\n  scrape_interval: 1s\n{ext}scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
}

async fn series(
    s: &PrometheusStore,
    name: &str,
    min_t: i64,
    max_t: i64,
) -> Result<Vec<(tsdb::Labels, Vec<(i64, f64)>)>, tonic::Status> {
    let req = pb::SeriesRequest {
        min_time: min_t,
        max_time: max_t,
        matchers: vec![pb::LabelMatcher {
            r#type: 0,
            name: "__name__".into(),
            value: name.into(),
        }],
        ..Default::default()
    };
    let mut stream = s.series(req).await?;
    let mut out = Vec::new();
    while let Some(f) = stream.next().await {
        if let Some(pb::series_response::Result::Series(se)) = f?.result {
            let mut samples = Vec::new();
            for c in &se.chunks {
                let mut it = XorIterator::new(&c.raw.as_ref().unwrap().data);
                while it.next() {
                    let (t, v) = it.at();
                    if t >= min_t && t <= max_t {
                        samples.push((t, v));
                    }
                }
            }
            out.push((labels_from_pb(&se.labels).unwrap(), samples));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_equals_prometheus_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = dir.path().to_path_buf();
    let mut prom = tokio::task::spawn_blocking(move || {
        Prometheus::start(&d, &data, |p| config(p, true), &[]).unwrap()
    })
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", prom.port);
    let store = PrometheusStore::new(&url, i64::MIN).unwrap();
    // Target discovery publishes every 5s; wait until a few scrapes have landed.
    let p2 = prom.port;
    tokio::task::spawn_blocking(move || {
        testkit::wait_until("three scrapes of up", Duration::from_secs(60), || {
            testkit::http_get(p2, "/api/v1/query?query=count_over_time(up%5B1m%5D)").is_ok_and(
                |(_, b)| b.contains("\"3\"") || b.contains("\"4\"") || b.contains("\"5\""),
            )
        })
    })
    .await
    .unwrap()
    .unwrap();

    let info = store.info().await.unwrap();
    assert_eq!(
        labels_from_pb(&info.label_sets[0].labels)
            .unwrap()
            .to_string(),
        r#"{cluster="test", replica="a"}"#
    );

    let now = tsdb::time::now_ms() / 1000 * 1000;
    let got = series(&store, "up", now - 60_000, now).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.to_string(), r#"{__name__="up", cluster="test", instance="127.0.0.1:PORT", job="prometheus", replica="a"}"#.replace("PORT", &prom.port.to_string()));
    let body = prom
        .get(&format!(
            "/api/v1/query?query=up%5B1m%5D&time={}",
            now / 1000
        ))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let want: Vec<(i64, f64)> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(want.len() >= 2, "{body}");
    assert_eq!(got[0].1, want);

    // A matcher on an external label: matching keeps the series, contradicting drops them.
    let names = store
        .label_names(pb::LabelNamesRequest {
            start: now - 60_000,
            end: now,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        names.names.contains(&"replica".to_string()) && names.names.contains(&"job".to_string())
    );
    let req = |v: &str| pb::SeriesRequest {
        min_time: now - 60_000,
        max_time: now,
        matchers: vec![pb::LabelMatcher {
            r#type: 0,
            name: "replica".into(),
            value: v.into(),
        }],
        skip_chunks: true,
        ..Default::default()
    };
    assert!(store.series(req("a")).await.unwrap().count().await > 1);
    assert_eq!(store.series(req("b")).await.unwrap().count().await, 0);

    // Prometheus down: a clear error naming it.
    prom.stop();
    let err = series(&store, "up", now - 60_000, now).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains(&url), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_prometheus_without_external_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = dir.path().to_path_buf();
    let prom = tokio::task::spawn_blocking(move || {
        Prometheus::start(&d, &data, |p| config(p, false), &[]).unwrap()
    })
    .await
    .unwrap();
    let store = PrometheusStore::new(&format!("http://127.0.0.1:{}", prom.port), i64::MIN).unwrap();
    let err = store.refresh_external_labels().await.unwrap_err();
    assert!(
        err.message().contains("no external labels configured"),
        "{}",
        err.message()
    );
}
