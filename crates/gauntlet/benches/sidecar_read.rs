//! Remote-read throughput of `gauntlet sidecar` beside Prometheus 2.42: Series over gRPC
//! (remote read with streamed XOR chunks behind it) against asking Prometheus directly, by
//! remote read from this process and by its HTTP query API (a matrix selector, JSON).
//! Prints series/s and samples/s per path (median of 5 after a warm-up) and peak RSS.
//! Run with `bench/sidecar-read`.
//!
//! Data: 10,000 series over 6 h at 15 s (14.4 M samples) in 2 h blocks under Prometheus's
//! data dir; compaction off so the blocks stay as written.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use storeapi::client::GrpcStore;
use storeapi::convert::matcher_to_pb;
use storeapi::pb;
use storeapi::store::SeriesStore;
use testkit::promapi::url_encode;
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, peak_rss, wait_until, Process};
use tsdb::block::BlockWriter;
use tsdb::labels::Labels;
use tsdb::{MatchType, Matcher};

const START: i64 = 1_699_920_000_000; // 2h-aligned
const INTERVAL: i64 = 15_000;
const HOUR: i64 = 3_600_000;
const HOURS: i64 = 6;
const SERIES: u32 = 10_000;
const RUNS: usize = 5;

fn write_blocks(dir: &Path) {
    let mut all: Vec<(Labels, u32)> = (0..SERIES)
        .map(|i| {
            (
                Labels::from_pairs(vec![
                    ("__name__", "bench_requests_total".to_string()),
                    ("instance", format!("host-{}", i / 10)),
                    ("job", format!("job-{}", i % 10)),
                ]),
                i,
            )
        })
        .collect();
    all.sort();
    for b in 0..HOURS / 2 {
        let (min, max) = (START + b * 2 * HOUR, START + (b + 1) * 2 * HOUR);
        let mut w = BlockWriter::new(dir, min, max).unwrap();
        for (labels, seed) in &all {
            let samples = (min..max).step_by(INTERVAL as usize).map(|t| {
                let k = (t - START) / INTERVAL;
                (
                    (t),
                    (k * (*seed as i64 % 13 + 1)) as f64 + (k % 7) as f64 * 0.25,
                )
            });
            w.add_series(labels, samples).unwrap();
        }
        w.finish().unwrap();
    }
}

/// Series and samples of one Series call (samples from the XOR chunk headers).
async fn series_call(store: &dyn SeriesStore, matchers: &[Matcher]) -> (u64, u64) {
    let req = pb::SeriesRequest {
        min_time: START,
        max_time: START + HOURS * HOUR,
        matchers: matchers.iter().map(matcher_to_pb).collect(),
        ..Default::default()
    };
    let mut stream = store.series(req).await.unwrap();
    let (mut series, mut samples) = (0u64, 0u64);
    while let Some(r) = stream.next().await {
        match r.unwrap().result {
            Some(pb::series_response::Result::Series(s)) => {
                series += 1;
                for c in s.chunks.iter().filter_map(|c| c.raw.as_ref()) {
                    if c.data.len() >= 2 {
                        samples += u16::from_be_bytes([c.data[0], c.data[1]]) as u64;
                    }
                }
            }
            Some(pb::series_response::Result::Warning(w)) => panic!("warning: {w}"),
            _ => {}
        }
    }
    (series, samples)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(path: &str, series: u64, samples: u64, d: Duration) {
    let s = d.as_secs_f64();
    println!(
        "{path:<52} {series:>7} series {samples:>10} samples {:>9.1} ms {:>10.0} series/s {:>6.1} M samples/s",
        s * 1e3,
        series as f64 / s,
        samples as f64 / s / 1e6
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prom-data");
    std::fs::create_dir_all(&data).unwrap();
    let t = Instant::now();
    write_blocks(&data);
    eprintln!("wrote blocks in {:?}", t.elapsed());
    let prom = Prometheus::start(
        dir.path(),
        &data,
        |_| "global:\n  scrape_interval: 1h\n  external_labels:\n    replica: a\n".into(),
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
        ],
    )
    .unwrap();
    let (http, grpc) = (free_port(), free_port());
    let sidecar: Process = testkit::spawn_quiet(
        env!("CARGO_BIN_EXE_gauntlet"),
        &[
            "sidecar".into(),
            format!("--prometheus.url=http://127.0.0.1:{}", prom.port),
            format!("--tsdb.path={}", data.display()),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
        ],
    );
    wait_until("sidecar ready", Duration::from_secs(60), || {
        matches!(http_get(http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let through_sidecar = GrpcStore::new(&format!("127.0.0.1:{grpc}")).unwrap();
    let direct =
        sidecar::PrometheusStore::new(&format!("http://127.0.0.1:{}", prom.port), 0).unwrap();
    let name = Matcher::new(MatchType::Equal, "__name__", "bench_requests_total").unwrap();
    let one_job = Matcher::new(MatchType::Equal, "job", "job-3").unwrap();
    let cases: Vec<(&str, Vec<Matcher>, String)> = vec![
        (
            "all 10k series, 6h",
            vec![name.clone()],
            "bench_requests_total".into(),
        ),
        (
            "1k series (one job), 6h",
            vec![name, one_job],
            "bench_requests_total{job=\"job-3\"}".into(),
        ),
    ];
    println!("remote-read Series throughput (median of {RUNS}, after one warm-up run)");
    for (what, matchers, selector) in &cases {
        let mut expected = None;
        let paths: [(&str, &dyn SeriesStore); 2] = [
            ("sidecar Series (gRPC)", &through_sidecar),
            ("Prometheus remote read, direct", &direct),
        ];
        for (path, store) in paths {
            let mut times = Vec::new();
            let mut counts = (0, 0);
            for _ in 0..=RUNS {
                let t = Instant::now();
                counts = rt.block_on(series_call(store, matchers));
                times.push(t.elapsed());
            }
            times.remove(0);
            assert_eq!(*expected.get_or_insert(counts), counts, "{path}: {what}");
            report(
                &format!("{what}: {path}"),
                counts.0,
                counts.1,
                median(times),
            );
        }
        let (series, samples) = expected.unwrap_or_default();
        let q = format!(
            "/api/v1/query?query={}&time={}",
            url_encode(&format!("{selector}[{HOURS}h]")),
            (START + HOURS * HOUR - 1) / 1000
        );
        let mut times = Vec::new();
        for _ in 0..=RUNS {
            let t = Instant::now();
            let (code, body) = http_get(prom.port, &q).unwrap();
            assert_eq!(code, 200, "{body:.300}");
            times.push(t.elapsed());
        }
        times.remove(0);
        report(
            &format!("{what}: Prometheus query API"),
            series,
            samples,
            median(times),
        );
    }
    println!(
        "peak RSS: sidecar {} MiB, Prometheus {} MiB",
        peak_rss(sidecar.pid()).unwrap_or(0) >> 20,
        peak_rss(prom.pid()).unwrap_or(0) >> 20
    );
}
