//! Our engine against Prometheus 2.42 on the same TSDB block: 10k counters and a
//! 100-instance classic histogram over 2 hours at 15 s, range queries over the 2 hours
//! at a 60 s step. Prometheus is timed through its HTTP API (JSON encoding included,
//! the responses are small), ours over the block on disk (decoding included).
//! Run: `cargo bench -p promql --bench vs_prometheus`.

use std::time::{Duration, Instant};

use promql::{BlockStorage, Engine, EngineOptions};
use testkit::prometheus::Prometheus;
use tsdb::block::BlockWriter;
use tsdb::chunkenc::histogram::{Histogram, HistogramAppender, Span};
use tsdb::chunkenc::Encoding;
use tsdb::labels::Labels;

const START: i64 = 1_699_999_200_000;
const INTERVAL: i64 = 15_000;
const SAMPLES: i64 = 480;

fn write_block(dir: &std::path::Path) {
    let mut series: Vec<(Labels, u32)> = Vec::new();
    for i in 0..10_000u32 {
        series.push((
            Labels::from_pairs(vec![
                ("__name__", "http_requests_total".to_string()),
                ("instance", format!("host-{}", i / 10)),
                ("job", format!("job-{}", i % 10)),
            ]),
            i,
        ));
    }
    let les = ["0.1", "0.5", "1", "5", "10", "+Inf"];
    for i in 0..100u32 {
        for (b, le) in les.iter().enumerate() {
            series.push((
                Labels::from_pairs(vec![
                    ("__name__", "latency_seconds_bucket".to_string()),
                    ("instance", format!("host-{i}")),
                    ("le", le.to_string()),
                ]),
                100_000 + b as u32,
            ));
        }
    }
    for i in 0..100u32 {
        series.push((
            Labels::from_pairs(vec![
                ("__name__", "latency_native_seconds".to_string()),
                ("instance", format!("host-{i}")),
            ]),
            200_000 + i,
        ));
    }
    series.sort();
    let mut w = BlockWriter::new(dir, START, START + SAMPLES * INTERVAL).unwrap();
    for (labels, seed) in &series {
        if *seed >= 200_000 {
            let chunks = native_chunks(*seed - 200_000);
            let encoded: Vec<(i64, i64, Encoding, &[u8])> = chunks
                .iter()
                .map(|(a, b, bytes)| (*a, *b, Encoding::HISTOGRAM, bytes.as_slice()))
                .collect();
            w.add_encoded_series(labels, &encoded).unwrap();
            continue;
        }
        let mut v = 0.0;
        let samples: Vec<(i64, f64)> = (0..SAMPLES)
            .map(|k| {
                v += ((*seed as i64 * 7 + k * 13) % 17) as f64 + (*seed % 10) as f64;
                if seed < &100_000 && k % 400 == 399 {
                    v = 0.0;
                }
                (START + k * INTERVAL, v)
            })
            .collect();
        w.add_series(labels, samples).unwrap();
    }
    w.finish().unwrap();
}

/// A native histogram series as integer histogram chunks of 120 samples: schema 3, 24
/// populated buckets, growing as a counter.
fn native_chunks(i: u32) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut app = HistogramAppender::new();
    let mut first = START;
    for k in 0..SAMPLES {
        let t = START + k * INTERVAL;
        let buckets: Vec<f64> = (0..24)
            .map(|b| ((k + 1) * (b as i64 % 5 + 1) + i as i64 % 7) as f64)
            .collect();
        let count: f64 = buckets.iter().sum();
        let h = Histogram {
            t,
            schema: 3,
            count,
            sum: count * 0.5,
            positive_spans: vec![Span {
                offset: -4,
                length: 24,
            }],
            positive_buckets: buckets,
            ..Histogram::default()
        };
        app.append(&h).unwrap();
        if app.num_samples() == 120 || k == SAMPLES - 1 {
            let bytes = std::mem::replace(&mut app, HistogramAppender::new()).into_bytes();
            out.push((first, t, bytes));
            first = t + INTERVAL;
        }
    }
    out
}

/// Panics unless both answers have the same series, points and (within 1e-6 relative)
/// the same totals of float values and histogram counts (NaNs left out).
fn check_same(name: &str, prometheus_json: &str, ours: &promql::Value) {
    let v: serde_json::Value = serde_json::from_str(prometheus_json).unwrap();
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let (mut p_points, mut p_total) = (0usize, 0.0f64);
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    for s in &result {
        for p in s["values"].as_array().into_iter().flatten() {
            p_points += 1;
            p_total += num(&p[1]).filter(|v| !v.is_nan()).unwrap_or(0.0);
        }
        for p in s["histograms"].as_array().into_iter().flatten() {
            p_points += 1;
            p_total += num(&p[1]["count"]).filter(|v| !v.is_nan()).unwrap_or(0.0);
        }
    }
    let promql::Value::Matrix(series) = ours else {
        panic!("{name}: not a matrix");
    };
    let o_points: usize = series.iter().map(|s| s.points.len() + s.hists.len()).sum();
    let o_total: f64 = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|p| p.v)
                .filter(|v| !v.is_nan())
                .sum::<f64>()
                + s.hists.iter().map(|p| p.h.count).sum::<f64>()
        })
        .sum();
    let close = (p_total - o_total).abs() <= 1e-6 * p_total.abs().max(o_total.abs()).max(1.0);
    assert!(
        result.len() == series.len() && p_points == o_points && close,
        "{name}: Prometheus {} series, {p_points} points, total {p_total}; ours {} series, \
         {o_points} points, total {o_total}",
        result.len(),
        series.len()
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_block(&data);
    let prom = Prometheus::start(
        dir.path(),
        &data,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[],
    )
    .unwrap();
    let storage = BlockStorage::open_dir(&data).unwrap();
    // Prometheus 2.42 is the peer here.
    let engine = Engine::new(EngineOptions {
        dialect: promql::Dialect::V2,
        ..Default::default()
    });
    let (start, end, step) = (START + 5 * 60_000, START + (SAMPLES - 1) * INTERVAL, 60_000);
    let cases: &[(&str, &str, u64)] = &[
        ("rate 10k", "rate(http_requests_total[5m])", 10_000),
        (
            "sum by rate 10k",
            "sum by (job) (rate(http_requests_total[5m]))",
            10_000,
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[5m])))",
            600,
        ),
        (
            "subquery",
            "max_over_time(sum by (job) (rate(http_requests_total[5m]))[30m:1m])",
            10_000,
        ),
        (
            "binary join",
            "sum by (job) (http_requests_total / on(job, instance) group_left http_requests_total)",
            10_000,
        ),
        (
            "native quantile",
            "histogram_quantile(0.9, rate(latency_native_seconds[5m]))",
            100,
        ),
        (
            "native sum rate",
            "sum(rate(latency_native_seconds[5m]))",
            100,
        ),
        (
            "native sum quantile",
            "histogram_quantile(0.9, sum(rate(latency_native_seconds[5m])))",
            100,
        ),
        (
            "count threshold",
            "count(http_requests_total > 1000)",
            10_000,
        ),
    ];
    println!(
        "{:<20} {:>10} {:>12} {:>10} {:>14}",
        "query", "ours ms", "prometheus ms", "speedup", "ours samples/s"
    );
    for &(name, q, series) in cases {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            url_encode(q),
            start / 1000,
            end / 1000,
            step / 1000
        );
        // Warm both (page cache, Prometheus's caches), checking that the answers agree,
        // then time.
        let theirs_body = prom.get(&path).unwrap();
        let ours_result = engine.range_query(&storage, q, start, end, step).unwrap();
        check_same(name, &theirs_body, &ours_result.value);
        let mut theirs = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            prom.get(&path).unwrap();
            theirs.push(t.elapsed());
            let t = Instant::now();
            engine.range_query(&storage, q, start, end, step).unwrap();
            ours.push(t.elapsed());
        }
        let (o, p) = (median(ours), median(theirs));
        let samples = series as f64 * SAMPLES as f64;
        println!(
            "{:<20} {:>10.1} {:>12.1} {:>9.2}x {:>13.1}M",
            name,
            o.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            p.as_secs_f64() / o.as_secs_f64(),
            samples / o.as_secs_f64() / 1e6
        );
    }
}
