//! Engine throughput on typical shapes over in-memory data: 10k series (1k for the
//! histogram) of 2 hours at a 15 s interval, range queries over the 2 hours at a 60 s step.
//! Throughput is in raw samples of the selected series per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promql::{Engine, EngineOptions, MemStorage, RawSample};
use tsdb::histogram::{Histogram, Span};
use tsdb::labels::Labels;

const INTERVAL: i64 = 15_000;
const HOURS: i64 = 2;
const SAMPLES: i64 = HOURS * 3_600_000 / INTERVAL;

fn storage() -> MemStorage {
    let mut st = MemStorage::new();
    for i in 0..10_000u32 {
        let labels = Labels::from_pairs(vec![
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job-{}", i % 10)),
            ("instance", format!("host-{}", i / 10)),
        ]);
        let mut v = 0.0;
        let samples = (0..SAMPLES)
            .map(|k| {
                v += ((i as i64 * 7 + k * 13) % 17) as f64;
                if k % 500 == 499 {
                    v = 0.0;
                }
                RawSample { t: k * INTERVAL, v }
            })
            .collect();
        st.add_series(labels, samples);
    }
    let bounds = ["0.1", "0.5", "1", "5", "10", "+Inf"];
    for i in 0..100u32 {
        for (b, le) in bounds.iter().enumerate() {
            let labels = Labels::from_pairs(vec![
                ("__name__", "latency_seconds_bucket".to_string()),
                ("instance", format!("host-{i}")),
                ("le", le.to_string()),
            ]);
            let samples = (0..SAMPLES)
                .map(|k| RawSample {
                    t: k * INTERVAL,
                    v: (k * (b as i64 + 1) + i as i64) as f64,
                })
                .collect();
            st.add_series(labels, samples);
        }
    }
    // 100 native histograms (schema 3, 24 buckets, growing as a counter).
    for i in 0..100u32 {
        let labels = Labels::from_pairs(vec![
            ("__name__", "latency_native_seconds".to_string()),
            ("instance", format!("host-{i}")),
        ]);
        for k in 0..SAMPLES {
            st.append_histogram(
                &labels,
                std::sync::Arc::new(native_histogram(i, k, k * INTERVAL)),
            );
        }
    }
    st.finish();
    st
}

/// Sample `k` of native histogram series `i`: schema 3, 24 populated buckets.
fn native_histogram(i: u32, k: i64, t: i64) -> Histogram {
    let buckets: Vec<f64> = (0..24)
        .map(|b| ((k + 1) * (b as i64 % 5 + 1) + i as i64 % 7) as f64)
        .collect();
    let count: f64 = buckets.iter().sum();
    Histogram {
        t,
        schema: 3,
        count,
        sum: count * 0.37,
        positive_spans: vec![Span {
            offset: -4,
            length: 24,
        }],
        positive_buckets: buckets,
        ..Histogram::default()
    }
}

fn bench(c: &mut Criterion) {
    let st = storage();
    let engine = Engine::default();
    let end = (HOURS * 3_600_000) - INTERVAL;
    let cases: &[(&str, &str, u64)] = &[
        ("rate_10k", "rate(http_requests_total[5m])", 10_000),
        (
            "sum_by_rate_10k",
            "sum by (job) (rate(http_requests_total[5m]))",
            10_000,
        ),
        ("selector_10k", "http_requests_total", 10_000),
        (
            "histogram_quantile_600",
            "histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[5m])))",
            600,
        ),
        (
            "native_histogram_quantile_100",
            "histogram_quantile(0.9, rate(latency_native_seconds[5m]))",
            100,
        ),
        (
            "native_sum_rate_100",
            "sum(rate(latency_native_seconds[5m]))",
            100,
        ),
        (
            "subquery_10k",
            "max_over_time(rate(http_requests_total[5m])[30m:1m])",
            10_000,
        ),
        (
            "binary_join_10k",
            "http_requests_total / on(job, instance) group_left http_requests_total",
            10_000,
        ),
        // Hour-long windows: the work should grow with the samples, not with the window.
        (
            "rate_1h_1k",
            "rate(http_requests_total{job=\"job-1\"}[1h])",
            1_000,
        ),
        (
            "avg_over_time_1h_1k",
            "avg_over_time(http_requests_total{job=\"job-1\"}[1h])",
            1_000,
        ),
        (
            "max_over_time_1h_1k",
            "max_over_time(http_requests_total{job=\"job-1\"}[1h])",
            1_000,
        ),
        (
            "stddev_over_time_1h_1k",
            "stddev_over_time(http_requests_total{job=\"job-1\"}[1h])",
            1_000,
        ),
        (
            "quantile_over_time_1h_1k",
            "quantile_over_time(0.9, http_requests_total{job=\"job-1\"}[1h])",
            1_000,
        ),
        (
            "subquery_1h_1k",
            "max_over_time(rate(http_requests_total{job=\"job-1\"}[5m])[1h:15s])",
            1_000,
        ),
    ];
    let mut g = c.benchmark_group("range_2h_step_60s");
    g.sample_size(10);
    for &(name, q, series) in cases {
        g.throughput(Throughput::Elements(series * SAMPLES as u64));
        g.bench_function(name, |b| {
            b.iter(|| engine.range_query(&st, q, 0, end, 60_000).unwrap())
        });
    }
    g.finish();

    // Each incremental range function against rescanning every window: 1h windows over
    // 2h at a 15 s step (a new window per sample), 1,000 series.
    let rescanning = Engine::new(EngineOptions {
        incremental_windows: false,
        ..Default::default()
    });
    let mut g = c.benchmark_group("window_1h_step_15s");
    g.sample_size(10);
    for f in [
        "rate",
        "increase",
        "resets",
        "changes",
        "sum_over_time",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
    ] {
        let arg = if f == "quantile_over_time" {
            "0.9, "
        } else {
            ""
        };
        let q = format!("{f}({arg}http_requests_total{{job=\"job-1\"}}[1h])");
        g.throughput(Throughput::Elements(1_000 * SAMPLES as u64));
        for (kind, e) in [("incremental", &engine), ("rescanning", &rescanning)] {
            g.bench_function(format!("{f}/{kind}"), |b| {
                b.iter(|| e.range_query(&st, &q, 0, end, INTERVAL).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
