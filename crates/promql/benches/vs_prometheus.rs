//! Our engine against Prometheus 2.42 on the same TSDB block: 10k counters and a
//! 100-instance classic histogram over 2 hours at 15 s, range queries over the 2 hours
//! at a 60 s step. Prometheus is timed through its HTTP API (JSON encoding included,
//! the responses are small), ours over the block on disk (decoding included).
//! Run: `cargo bench -p promql --bench vs_prometheus`.

use std::time::{Duration, Instant};

use promql::{BlockStorage, Engine, EngineOptions};
use testkit::prometheus::Prometheus;
use tsdb::block::BlockWriter;
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
    series.sort();
    let mut w = BlockWriter::new(dir, START, START + SAMPLES * INTERVAL).unwrap();
    for (labels, seed) in &series {
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
        // Warm both (page cache, Prometheus's caches), then time.
        prom.get(&path).unwrap();
        engine.range_query(&storage, q, start, end, step).unwrap();
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
