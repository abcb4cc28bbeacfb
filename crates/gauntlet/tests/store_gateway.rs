//! `gauntlet store` end to end: promtool writes blocks from a generated dataset, they are
//! uploaded to a bucket (filesystem, then Garage), the real binary serves them over gRPC, and
//! every sample it returns equals `promtool tsdb dump` of the same blocks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use storeapi::client::GrpcStore;
use storeapi::convert::labels_from_pb;
use storeapi::pb;
use storeapi::store::SeriesStore;
use testkit::{free_port, go_g, http_get, wait_until, Process};
use tsdb::chunkenc::XorIterator;

fn blocks(dir: &Path) -> std::path::PathBuf {
    let end = 1_700_006_400_000i64;
    let d = testkit::dataset::Dataset {
        start_ms: end - 5 * 3_600_000,
        end_ms: end,
        interval_ms: 30_000,
        instances: 2,
        seed: 7,
        gaps: vec![],
    };
    let om = dir.join("data.om");
    std::fs::write(&om, d.openmetrics()).unwrap();
    let out = dir.join("prom");
    testkit::prometheus::promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        om.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .unwrap();
    out
}

/// promtool's dump lines with the external label added, as "labels value ts".
fn expected(prom: &Path) -> Vec<String> {
    let dump = testkit::prometheus::promtool(&["tsdb", "dump", prom.to_str().unwrap()]).unwrap();
    let mut lines: Vec<String> = dump
        .lines()
        .map(|l| {
            let (labels, rest) = l.split_once("} ").unwrap();
            format!("{labels}, replica=\"x\"}} {rest}")
        })
        .collect();
    lines.sort();
    lines
}

async fn served(port: u16) -> Vec<String> {
    let client = GrpcStore::new(&format!("127.0.0.1:{port}")).unwrap();
    let req = pb::SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![pb::LabelMatcher {
            r#type: 2,
            name: "__name__".into(),
            value: ".+".into(),
        }],
        ..Default::default()
    };
    let mut stream = client.series(req).await.unwrap();
    let mut lines = Vec::new();
    while let Some(f) = stream.next().await {
        if let Some(pb::series_response::Result::Series(s)) = f.unwrap().result {
            let l = labels_from_pb(&s.labels).unwrap();
            for c in &s.chunks {
                let mut it = XorIterator::new(&c.raw.as_ref().unwrap().data);
                while it.next() {
                    let (t, v) = it.at();
                    lines.push(format!("{l} {} {t}", go_g(v)));
                }
            }
        }
    }
    lines.sort();
    lines
}

fn run_store(objstore: &str, data: &Path) -> (Process, u16, u16) {
    let (http, grpc) = (free_port(), free_port());
    let p = Process::spawn(
        "gauntlet store",
        Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(["store", objstore])
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!("--grpc-address=127.0.0.1:{grpc}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    wait_until("store gateway ready", Duration::from_secs(30), || {
        matches!(http_get(http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    (p, http, grpc)
}

fn upload(objstore: &str, prom: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args([
            "tools",
            "bucket",
            "upload-blocks",
            objstore,
            "--label",
            "replica=\"x\"",
        ])
        .arg(format!("--path={}", prom.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn check(objstore: &str, dir: &Path, prom: &Path) {
    upload(objstore, prom);
    let (_p, http, grpc) = run_store(objstore, &dir.join("data"));
    let want = expected(prom);
    let got = served(grpc).await;
    assert!(want.len() > 1000);
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a, b);
    }
    let (code, metrics) = http_get(http, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("thanos_bucket_store_blocks_loaded 3"),
        "{metrics}"
    );
    assert_eq!(http_get(http, "/-/healthy").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_promtool_blocks_from_filesystem_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let prom = blocks(dir.path());
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    check(&objstore, dir.path(), &prom).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_promtool_blocks_from_garage() {
    let dir = tempfile::tempdir().unwrap();
    let prom = blocks(dir.path());
    let garage = tokio::task::spawn_blocking(|| testkit::garage::Garage::start("thanos"))
        .await
        .unwrap()
        .unwrap();
    let objstore = format!("--objstore.config={}", garage.objstore_yaml());
    check(&objstore, dir.path(), &prom).await;
}
