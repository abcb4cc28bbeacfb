//! The read path against Prometheus 2.42 on one machine: the same blocks served by
//! `gauntlet store` (filesystem bucket) + `gauntlet query`, and by Prometheus. Per query:
//! cold latency (first run after start), warm latency (median of 5), object-store range
//! reads and bytes; at the end, peak RSS of each process. Run with `bench/read-path`.
//!
//! `READ_PATH_SCALE=10` writes ten times the series (the same queries over a bucket ten
//! times as large). `READ_PATH_HOLD=<seconds>` keeps the processes up after the table, for profiling.
//!
//! Data: 4,000 counters and a 200-instance classic histogram over 2 days at 30 s, and 200
//! counters over the 7 days up to the same end, written as 12 h blocks; Prometheus runs with
//! compaction off (min = max block duration = 2h).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::promapi::url_encode;
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, peak_rss, wait_until, Process};
use tsdb::block::BlockWriter;
use tsdb::labels::Labels;

const START: i64 = 1_699_920_000_000; // 12h-aligned
const INTERVAL: i64 = 30_000;
const HOUR: i64 = 3_600_000;
const DAYS: i64 = 2;
/// The long-range series (`long_requests_total`) start this many days before the end.
const LONG_DAYS: i64 = 7;
const LONG_SERIES: u32 = 200;

/// `READ_PATH_SCALE` (default 1) multiplies the series: the bucket grows, what the queries
/// select stays (the added series have other metric names).
fn scale() -> u32 {
    std::env::var("READ_PATH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn series() -> Vec<(Labels, u32)> {
    let mut out = Vec::new();
    for i in 0..4_000 * scale() {
        let name = if i < 4_000 {
            "http_requests_total".to_string()
        } else {
            format!("background_{}_total", i / 4_000)
        };
        let i = i % 4_000;
        out.push((
            Labels::from_pairs(vec![
                ("__name__", name),
                ("code", if i % 20 == 0 { "500" } else { "200" }.to_string()),
                ("instance", format!("host-{}", i / 8)),
                ("job", format!("job-{}", i % 8)),
            ]),
            i,
        ));
    }
    for i in 0..200 * scale() {
        let name = if i < 200 {
            "latency_seconds_bucket".to_string()
        } else {
            format!("background_{}_seconds_bucket", i / 200)
        };
        let i = i % 200;
        for (b, le) in ["0.1", "0.5", "1", "5", "+Inf"].iter().enumerate() {
            out.push((
                Labels::from_pairs(vec![
                    ("__name__", name.clone()),
                    ("instance", format!("host-{i}")),
                    ("le", le.to_string()),
                ]),
                10_000 + b as u32,
            ));
        }
    }
    for i in 0..LONG_SERIES {
        out.push((
            Labels::from_pairs(vec![
                ("__name__", "long_requests_total".to_string()),
                ("instance", format!("host-{}", i / 4)),
                ("job", format!("job-{}", i % 4)),
            ]),
            20_000 + i,
        ));
    }
    out.sort();
    out
}

fn is_long(labels: &Labels) -> bool {
    labels.get("__name__") == Some("long_requests_total")
}

fn write_blocks(dir: &Path) {
    let all = series();
    let block = 12 * HOUR;
    let first = START + (DAYS - LONG_DAYS) * 24 * HOUR;
    for b in 0..(LONG_DAYS * 24 * HOUR / block) {
        let (min, max) = (first + b * block, first + (b + 1) * block);
        let mut w = BlockWriter::new(dir, min, max).unwrap();
        for (labels, seed) in &all {
            if min < START && !is_long(labels) {
                continue;
            }
            let samples = (min..max).step_by(INTERVAL as usize).map(|t| {
                let k = (t - first) / INTERVAL;
                let v = (k * (*seed as i64 % 13 + 1)) as f64 + (*seed % 7) as f64;
                (t, v)
            });
            w.add_series(labels, samples).unwrap();
        }
        w.finish().unwrap();
    }
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

fn store_reads(port: u16) -> (u64, u64) {
    let (_, body) = http_get(port, "/metrics").unwrap();
    let get = |name: &str| -> u64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        get("gauntlet_objstore_bucket_get_range_total "),
        get("gauntlet_objstore_bucket_get_range_bytes_total"),
    )
}

fn timed(port: u16, path: &str) -> Duration {
    let t = Instant::now();
    let (code, body) = http_get(port, path).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    t.elapsed()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks");
    std::fs::create_dir_all(&blocks).unwrap();
    let t = Instant::now();
    write_blocks(&blocks);
    eprintln!("wrote blocks in {:?}", t.elapsed());

    let bucket = dir.path().join("bucket");
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", &objstore])
        .arg(format!("--path={}", blocks.display()))
        .arg("--label=replica=\"a\"")
        .status()
        .unwrap();
    assert!(st.success());
    let prom = Prometheus::start(
        dir.path(),
        &blocks,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
        ],
    )
    .unwrap();
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let store = gauntlet(&[
        "store".into(),
        objstore,
        format!("--data-dir={}", dir.path().join("store").display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    wait_until("store ready", Duration::from_secs(120), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        "--query.replica-label=replica".into(),
        // Prometheus 2.42 is the peer: answer as it does.
        "--query.promql-compat=v2".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    wait_until("query sees the store", Duration::from_secs(60), || {
        http_get(q_http, "/api/v1/label/job/values")
            .is_ok_and(|(c, b)| c == 200 && b.contains("job-1"))
    })
    .unwrap();

    let headers = dir_size(&dir.path().join("store"));
    println!(
        "idle store gateway: RSS {} MiB, index-headers {} KiB, bucket {} MiB",
        testkit::rss(store.pid()) >> 20,
        headers >> 10,
        dir_size(&bucket) >> 20
    );
    let end = START + DAYS * 24 * HOUR - INTERVAL;
    let s = |ms: i64| ms / 1000;
    let queries: Vec<(&str, String)> = vec![
        (
            "instant selector",
            format!(
                "query={}&time={}",
                url_encode("http_requests_total{job=\"job-3\"}"),
                s(end)
            ),
        ),
        (
            "instant sum rate",
            format!(
                "query={}&time={}",
                url_encode("sum by (job) (rate(http_requests_total[5m]))"),
                s(end)
            ),
        ),
        (
            "range 1h rate",
            format!(
                "query={}&start={}&end={}&step=60",
                url_encode("sum by (code) (rate(http_requests_total[5m]))"),
                s(end - HOUR),
                s(end)
            ),
        ),
        (
            "range 1d sum",
            format!(
                "query={}&start={}&end={}&step=300",
                url_encode("sum by (job) (rate(http_requests_total[10m]))"),
                s(end - 24 * HOUR),
                s(end)
            ),
        ),
        (
            "range 2d quantile",
            format!(
                "query={}&start={}&end={}&step=900",
                url_encode(
                    "histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[15m])))"
                ),
                s(START + HOUR),
                s(end)
            ),
        ),
        (
            "instant one series",
            format!(
                "query={}&time={}",
                url_encode("http_requests_total{instance=\"host-7\",job=\"job-3\",code=\"200\"}"),
                s(end)
            ),
        ),
        (
            "instant sum by inst",
            format!(
                "query={}&time={}",
                url_encode("sum by (instance) (rate(http_requests_total[5m]))"),
                s(end)
            ),
        ),
        (
            "range 1d avg 1h",
            format!(
                "query={}&start={}&end={}&step=300",
                url_encode("avg_over_time(http_requests_total{job=\"job-2\"}[1h])"),
                s(end - 24 * HOUR),
                s(end)
            ),
        ),
        (
            "range 1d rate 1h",
            format!(
                "query={}&start={}&end={}&step=300",
                url_encode("sum(rate(http_requests_total{job=\"job-2\"}[1h]))"),
                s(end - 24 * HOUR),
                s(end)
            ),
        ),
        (
            "range 1d max 1h",
            format!(
                "query={}&start={}&end={}&step=300",
                url_encode("max_over_time(http_requests_total{job=\"job-2\"}[1h])"),
                s(end - 24 * HOUR),
                s(end)
            ),
        ),
        (
            "range 6h subquery",
            format!(
                "query={}&start={}&end={}&step=300",
                url_encode("max_over_time(rate(http_requests_total{job=\"job-2\"}[5m])[1h:1m])"),
                s(end - 6 * HOUR),
                s(end)
            ),
        ),
        (
            "range 6h group_left",
            format!(
                "query={}&start={}&end={}&step=120",
                url_encode(
                    "rate(http_requests_total{job=\"job-2\"}[5m]) / on(instance) group_left \
                     sum by (instance) (rate(http_requests_total{job=\"job-2\"}[5m]))"
                ),
                s(end - 6 * HOUR),
                s(end)
            ),
        ),
        (
            "range 7d rate 1h",
            format!(
                "query={}&start={}&end={}&step=3600",
                url_encode("sum by (job) (rate(long_requests_total[1h]))"),
                s(end - LONG_DAYS * 24 * HOUR + HOUR),
                s(end)
            ),
        ),
        (
            "instant regex",
            format!(
                "query={}&time={}",
                url_encode("sum by (job) (rate(http_requests_total{instance=~\"host-1.*\"}[5m]))"),
                s(end)
            ),
        ),
        (
            "range 6h topk",
            format!(
                "query={}&start={}&end={}&step=120",
                url_encode("topk(5, rate(http_requests_total{code=\"500\"}[5m]))"),
                s(end - 6 * HOUR),
                s(end)
            ),
        ),
    ];
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>9}",
        "query", "ours cold", "prom cold", "ours warm", "prom warm", "ratio", "GETs", "KiB read"
    );
    let mut ratios = Vec::new();
    for (name, params) in &queries {
        let path = |kind: &str| {
            let endpoint = if params.contains("step=") {
                "query_range"
            } else {
                "query"
            };
            let _ = kind;
            format!("/api/v1/{endpoint}?{params}")
        };
        let p = path("");
        let before = store_reads(s_http);
        let ours_cold = timed(q_http, &p);
        let after = store_reads(s_http);
        let prom_cold = timed(prom.port, &p);
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..5 {
            ours.push(timed(q_http, &p));
            theirs.push(timed(prom.port, &p));
        }
        ours.sort();
        theirs.sort();
        let (o, t) = (ours[2], theirs[2]);
        ratios.push(t.as_secs_f64() / o.as_secs_f64());
        println!(
            "{:<20} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.2}x {:>7} {:>9}",
            name,
            ours_cold.as_secs_f64() * 1e3,
            prom_cold.as_secs_f64() * 1e3,
            o.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / o.as_secs_f64(),
            after.0 - before.0,
            (after.1 - before.1) / 1024,
        );
        let (anon, file) = testkit::rss_split(store.pid()).unwrap_or_default();
        eprintln!(
            "  store peak RSS so far: {:?} MiB (now: heap {} MiB, mapped files {} MiB)",
            peak_rss(store.pid()).map(|b| b >> 20),
            anon >> 20,
            file >> 20
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median warm speedup (prometheus time / ours): {:.2}x",
        ratios[ratios.len() / 2]
    );
    if let Some(secs) = std::env::var("READ_PATH_HOLD")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // For profiling: keep the stack up (attach `perf record -p PID` and send queries).
        eprintln!(
            "holding {secs}s: query http://127.0.0.1:{q_http} (pid {}), store pid {}, \
             prometheus http://127.0.0.1:{} (pid {})",
            query.pid(),
            store.pid(),
            prom.port,
            prom.pid()
        );
        std::thread::sleep(Duration::from_secs(secs));
    }
    let mb = |b: Option<u64>| b.map_or("?".to_string(), |b| format!("{} MiB", b >> 20));
    println!(
        "peak RSS: store gateway {}, querier {}, prometheus {}",
        mb(peak_rss(store.pid())),
        mb(peak_rss(query.pid())),
        mb(peak_rss(prom.pid()))
    );
}
