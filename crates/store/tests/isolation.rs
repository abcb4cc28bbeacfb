//! One expensive request must not stall the others: a Series call with a flood of regex
//! matchers is refused at the limit, and without the limit it runs on blocking threads while
//! label calls and Info keep answering fast. Error texts stay small enough for gRPC trailers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use store::gateway::{BucketStore, Config};
use storeapi::client::GrpcStore;
use storeapi::pb;
use storeapi::store::SeriesStore;

mod common;
use common::{uploaded_blocks, H};

async fn serve(
    dir: &std::path::Path,
    cfg: Config,
) -> (GrpcStore, tokio::sync::oneshot::Sender<()>) {
    let (_, bucket) = uploaded_blocks(&dir.join("local"), &dir.join("bucket"), "a").await;
    let store = Arc::new(BucketStore::new(
        bucket,
        Config {
            data_dir: dir.join("data"),
            ..cfg
        },
    ));
    store.sync().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(storeapi::server::serve(
        store,
        None,
        listener,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    (GrpcStore::new(&addr.to_string()).unwrap(), stop)
}

fn regex_flood(n: usize) -> Vec<pb::LabelMatcher> {
    (0..n)
        .map(|i| pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "instance".into(),
            value: format!("host-(0|1|2|3|4|5|6|7|8|9)+.*{i}|.*"),
        })
        .collect()
}

fn series_request(matchers: Vec<pb::LabelMatcher>) -> pb::SeriesRequest {
    pb::SeriesRequest {
        min_time: 0,
        max_time: 6 * H,
        matchers,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matcher_flood_is_refused_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _stop) = serve(dir.path(), Config::default()).await;
    let started = Instant::now();
    let e = match client.series(series_request(regex_flood(100_000))).await {
        Ok(mut s) => s.next().await.unwrap().unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(
        e.message().contains("--store.limits.request-matchers"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expensive_series_call_does_not_stall_label_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        request_matchers_limit: 0,
        ..Config::default()
    };
    let (client, _stop) = serve(dir.path(), cfg).await;
    let client = Arc::new(client);
    // More expensive calls at once than the runtime has async threads.
    let heavy: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                if let Ok(mut s) = c.series(series_request(regex_flood(6_000))).await {
                    while s.next().await.is_some() {}
                }
                started.elapsed()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While the flood is worked on, label calls and Info answer promptly.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let names = client
            .label_names(pb::LabelNamesRequest {
                start: 0,
                end: 6 * H,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(names.names.contains(&"job".to_string()));
        client.info().await.unwrap();
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut heavy_took = Duration::ZERO;
    for h in heavy {
        heavy_took = heavy_took.max(h.await.unwrap());
    }
    println!("label calls took at most {slowest:?} while the flood took {heavy_took:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "label calls stalled {slowest:?} behind a {heavy_took:?} request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_regex_error_reaches_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _stop) = serve(dir.path(), Config::default()).await;
    let huge = format!("({})", "a|".repeat(500_000));
    let e = match client
        .series(series_request(vec![pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "instance".into(),
            value: huge,
        }]))
        .await
    {
        Ok(mut s) => match s.next().await {
            Some(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        },
        Err(e) => e,
    };
    assert_ne!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(e.message().len() <= 8192, "{} bytes", e.message().len());
    assert!(
        e.message().contains("instance") || e.message().contains("regex"),
        "{}",
        &e.message()[..200.min(e.message().len())]
    );
}
