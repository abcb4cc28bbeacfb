//! The proxy over in-memory stores and over real gRPC: merge order, chunk dedup, partial
//! responses, label APIs.

use std::sync::Arc;

use futures::StreamExt;
use storeapi::client::GrpcStore;
use storeapi::pb::{self, series_response::Result as Frame};
use storeapi::proxy::Proxy;
use storeapi::store::{series_frame, SeriesStore, SeriesStream};
use tonic::Status;

/// A store serving fixed series (sorted by labels), or failing when `fail` is set.
struct Fixed {
    name: &'static str,
    series: Vec<pb::Series>,
    fail: Option<&'static str>,
}

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label::new(name, value)
}

fn chunk(min: i64, max: i64, data: &[u8]) -> pb::AggrChunk {
    pb::AggrChunk {
        min_time: min,
        max_time: max,
        raw: Some(pb::Chunk {
            r#type: 0,
            data: data.to_vec().into(),
            hash: 0,
        }),
        ..Default::default()
    }
}

fn series(job: &str, chunks: Vec<pb::AggrChunk>) -> pb::Series {
    pb::Series {
        labels: vec![label("__name__", "up"), label("job", job)],
        chunks,
    }
}

#[async_trait::async_trait]
impl SeriesStore for Fixed {
    fn name(&self) -> String {
        self.name.into()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        Ok(pb::info::InfoResponse {
            label_sets: vec![pb::ZLabelSet {
                labels: vec![label("store", self.name)],
            }],
            store: Some(pb::info::StoreInfo {
                min_time: 0,
                max_time: 100,
                ..Default::default()
            }),
            ..Default::default()
        })
    }
    async fn series(&self, _req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        if let Some(msg) = self.fail {
            return Err(Status::unavailable(msg));
        }
        let frames: Vec<Result<pb::SeriesResponse, Status>> = self
            .series
            .iter()
            .cloned()
            .map(|s| Ok(series_frame(s)))
            .collect();
        Ok(futures::stream::iter(frames).boxed())
    }
    async fn label_names(
        &self,
        _req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        if let Some(msg) = self.fail {
            return Err(Status::unavailable(msg));
        }
        Ok(pb::LabelNamesResponse {
            names: vec!["__name__".into(), "job".into(), self.name.into()],
            ..Default::default()
        })
    }
    async fn label_values(
        &self,
        _req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        Ok(pb::LabelValuesResponse {
            values: self
                .series
                .iter()
                .map(|s| s.labels[1].value_str().to_string())
                .collect(),
            ..Default::default()
        })
    }
}

async fn collect(
    s: &dyn SeriesStore,
    strategy: pb::PartialResponseStrategy,
) -> Result<(Vec<pb::Series>, Vec<String>), Status> {
    let req = pb::SeriesRequest {
        partial_response_strategy: strategy as i32,
        ..Default::default()
    };
    let mut stream = s.series(req).await?;
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    while let Some(f) = stream.next().await {
        match f?.result {
            Some(Frame::Series(s)) => out.push(s),
            Some(Frame::Warning(w)) => warnings.push(w),
            _ => {}
        }
    }
    Ok((out, warnings))
}

fn stores() -> Vec<Arc<dyn SeriesStore>> {
    vec![
        Arc::new(Fixed {
            name: "a",
            series: vec![
                series("api", vec![chunk(0, 10, b"x"), chunk(11, 20, b"y")]),
                series("db", vec![chunk(0, 5, b"d")]),
            ],
            fail: None,
        }),
        Arc::new(Fixed {
            name: "b",
            series: vec![
                series("api", vec![chunk(11, 20, b"y"), chunk(21, 30, b"z")]),
                series("cache", vec![chunk(0, 5, b"c")]),
            ],
            fail: None,
        }),
    ]
}

#[tokio::test]
async fn merges_in_label_order_and_dedups_chunks() {
    let proxy = Proxy::new(stores());
    let (out, warnings) = collect(&proxy, pb::PartialResponseStrategy::Abort)
        .await
        .unwrap();
    assert!(warnings.is_empty());
    let jobs: Vec<&str> = out.iter().map(|s| s.labels[1].value_str()).collect();
    assert_eq!(jobs, ["api", "cache", "db"]);
    let api: Vec<(i64, i64)> = out[0]
        .chunks
        .iter()
        .map(|c| (c.min_time, c.max_time))
        .collect();
    assert_eq!(api, [(0, 10), (11, 20), (21, 30)]);
}

#[tokio::test]
async fn a_series_split_over_frames_comes_out_once_with_sorted_chunks() {
    // As Thanos's store gateway answers with replica labels removed: one frame per block
    // and replica, chunks in block order rather than time order.
    let proxy = Proxy::new(vec![Arc::new(Fixed {
        name: "thanos",
        series: vec![
            series("api", vec![chunk(20, 29, b"a3"), chunk(0, 9, b"a1")]),
            series("api", vec![chunk(1, 10, b"b1"), chunk(0, 9, b"a1")]),
            series("db", vec![chunk(5, 6, b"d")]),
        ],
        fail: None,
    })]);
    let (out, _) = collect(&proxy, pb::PartialResponseStrategy::Abort)
        .await
        .unwrap();
    let jobs: Vec<&str> = out.iter().map(|s| s.labels[1].value_str()).collect();
    assert_eq!(jobs, ["api", "db"]);
    let api: Vec<(i64, i64)> = out[0]
        .chunks
        .iter()
        .map(|c| (c.min_time, c.max_time))
        .collect();
    assert_eq!(api, [(0, 9), (1, 10), (20, 29)]);
}

#[tokio::test]
async fn partial_response_warn_and_abort() {
    let mut s = stores();
    s.push(Arc::new(Fixed {
        name: "down",
        series: vec![],
        fail: Some("connection refused"),
    }));
    let proxy = Proxy::new(s);
    let (out, warnings) = collect(&proxy, pb::PartialResponseStrategy::Warn)
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(warnings, ["store down: connection refused"]);
    let err = collect(&proxy, pb::PartialResponseStrategy::Abort)
        .await
        .unwrap_err();
    assert!(err.message().contains("store down") && err.message().contains("connection refused"));

    let names = proxy
        .label_names(pb::LabelNamesRequest {
            partial_response_strategy: pb::PartialResponseStrategy::Warn as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names.names, ["__name__", "a", "b", "job"]);
    assert_eq!(names.warnings.len(), 1);
}

#[tokio::test]
async fn grpc_round_trip_and_stacked_proxies() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let inner: Arc<dyn SeriesStore> = Arc::new(Proxy::new(stores()));
    let server = tokio::spawn(storeapi::server::serve(
        inner,
        None,
        listener,
        None,
        async {
            let _ = rx.await;
        },
    ));
    let client = GrpcStore::new(&addr.to_string()).unwrap();
    let info = client.info().await.unwrap();
    assert_eq!(info.label_sets.len(), 2);
    // A proxy over the gRPC client: queriers stack.
    let outer = Proxy::new(vec![Arc::new(client)]);
    let (out, _) = collect(&outer, pb::PartialResponseStrategy::Abort)
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].chunks.len(), 3);
    let _ = tx.send(());
    server.await.unwrap().unwrap();

    // The server is gone: WARN turns that into a warning, ABORT into an error.
    let gone = Proxy::new(vec![Arc::new(GrpcStore::new(&addr.to_string()).unwrap())]);
    let (out, warnings) = collect(&gone, pb::PartialResponseStrategy::Warn)
        .await
        .unwrap();
    assert!(out.is_empty() && warnings.len() == 1, "{warnings:?}");
    assert!(warnings[0].contains(&addr.to_string()));
}

/// Sends its series, then nothing: neither more frames nor the end of the stream.
struct Stalling(Fixed);

#[async_trait::async_trait]
impl SeriesStore for Stalling {
    fn name(&self) -> String {
        self.0.name()
    }
    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        futures::future::pending().await
    }
    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let sent = self.0.series(req).await?;
        Ok(sent.chain(futures::stream::pending()).boxed())
    }
    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        self.0.label_names(req).await
    }
    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        self.0.label_values(req).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_stops_sending_hits_the_response_timeout() {
    use std::time::Duration;
    use storeapi::timeout::ResponseTimeout;
    let limit = Duration::from_millis(500);
    let stalling: Arc<dyn SeriesStore> = Arc::new(Stalling(Fixed {
        name: "stalling",
        series: vec![series("worker", vec![chunk(0, 5, b"w")])],
        fail: None,
    }));
    let mut s: Vec<Arc<dyn SeriesStore>> = stores()
        .into_iter()
        .map(|s| Arc::new(ResponseTimeout::new(s, limit)) as Arc<dyn SeriesStore>)
        .collect();
    s.push(Arc::new(ResponseTimeout::new(stalling.clone(), limit)));
    let proxy = Proxy::new(s);

    let started = tokio::time::Instant::now();
    let (out, warnings) = collect(&proxy, pb::PartialResponseStrategy::Warn)
        .await
        .unwrap();
    assert!(started.elapsed() < limit * 2, "{:?}", started.elapsed());
    let jobs: Vec<&str> = out.iter().map(|s| s.labels[1].value_str()).collect();
    assert_eq!(jobs, ["api", "cache", "db", "worker"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("store stalling: no response within"),
        "{warnings:?}"
    );
    let err = collect(&proxy, pb::PartialResponseStrategy::Abort)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded);

    // Unary calls too.
    let err = ResponseTimeout::new(stalling, limit)
        .info()
        .await
        .unwrap_err();
    assert!(err.message().contains("500ms"), "{}", err.message());
}

/// The merge equals a reference that gathers every store's series, sorts them by labels and
/// joins equal ones (chunks sorted, identical chunks once), for random stores whose series
/// overlap and that send one series as several frames.
mod merge_property {
    use super::*;
    use proptest::prelude::*;
    use storeapi::convert::compare_pb_labels;
    use storeapi::proxy::sort_and_dedup_chunks;

    /// Per store: (job index, chunk start, chunk byte) in any order.
    fn store_contents() -> impl Strategy<Value = Vec<Vec<(u8, u8, u8)>>> {
        proptest::collection::vec(
            proptest::collection::vec((0u8..6, 0u8..4, 0u8..3), 0..12),
            1..5,
        )
    }

    /// A store's frames in label order; a series may be split over consecutive frames.
    fn frames(contents: &[(u8, u8, u8)]) -> Vec<pb::Series> {
        let mut sorted = contents.to_vec();
        sorted.sort_by_key(|&(job, ..)| job);
        sorted
            .into_iter()
            .map(|(job, start, byte)| {
                let t = i64::from(start) * 10;
                series(&format!("job-{job}"), vec![chunk(t, t + 9, &[byte])])
            })
            .collect()
    }

    fn reference(stores: &[Vec<pb::Series>]) -> Vec<pb::Series> {
        let mut all: Vec<pb::Series> = stores.iter().flatten().cloned().collect();
        all.sort_by(|a, b| compare_pb_labels(&a.labels, &b.labels));
        let mut out: Vec<pb::Series> = Vec::new();
        for s in all {
            match out.last_mut() {
                Some(last) if compare_pb_labels(&last.labels, &s.labels).is_eq() => {
                    last.chunks.extend(s.chunks)
                }
                _ => out.push(s),
            }
        }
        for s in &mut out {
            sort_and_dedup_chunks(&mut s.chunks);
        }
        out
    }

    proptest! {
        #[test]
        fn merge_equals_sorting_everything(contents in store_contents()) {
            let per_store: Vec<Vec<pb::Series>> = contents.iter().map(|c| frames(c)).collect();
            let stores: Vec<Arc<dyn SeriesStore>> = per_store
                .iter()
                .map(|series| {
                    Arc::new(Fixed { name: "s", series: series.clone(), fail: None })
                        as Arc<dyn SeriesStore>
                })
                .collect();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (got, warnings) = rt
                .block_on(collect(&Proxy::new(stores), pb::PartialResponseStrategy::Abort))
                .unwrap();
            prop_assert!(warnings.is_empty());
            prop_assert_eq!(got, reference(&per_store));
        }
    }
}
