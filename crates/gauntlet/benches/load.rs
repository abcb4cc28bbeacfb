//! Load on the read path, side by side with Prometheus 2.42 on the same blocks: 50 heavy
//! queries sent at once (more than `--query.max-concurrent` = 20) while a stream of light
//! queries keeps coming, both servers with a 30 s query timeout. Prints throughput, latency
//! percentiles, how many answers timed out (in the queue or in evaluation), and the RSS of
//! each process before the load, at its peak and after 20 s idle. Loopback only; stops by
//! itself. Run with `bench/load`.
//!
//! Data: 5,000 counters over 24 h at 15 s (28.8M samples) in 2 h blocks.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::promapi::url_encode;
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, http_request, wait_until, Process};
use tsdb::block::BlockWriter;
use tsdb::labels::Labels;

const START: i64 = 1_699_920_000_000;
const INTERVAL: i64 = 15_000;
const HOUR: i64 = 3_600_000;
const HOURS: i64 = 24;
const SERIES: u32 = 5_000;
const HEAVY: usize = 50;
const TIMEOUT: &str = "30s";

fn write_blocks(dir: &Path) {
    let mut all: Vec<Labels> = (0..SERIES)
        .map(|i| {
            Labels::from_pairs(vec![
                ("__name__", "http_requests_total".to_string()),
                ("instance", format!("host-{}", i / 10)),
                ("job", format!("job-{}", i % 10)),
            ])
        })
        .collect();
    all.sort();
    for b in 0..HOURS / 2 {
        let (min, max) = (START + b * 2 * HOUR, START + (b + 1) * 2 * HOUR);
        let mut w = BlockWriter::new(dir, min, max).unwrap();
        for (k, labels) in all.iter().enumerate() {
            let samples = (min..max).step_by(INTERVAL as usize).map(move |t| {
                let n = (t - START) / INTERVAL;
                ((t), (n * (k as i64 % 7 + 1)) as f64)
            });
            w.add_series(labels, samples).unwrap();
        }
        w.finish().unwrap();
    }
}

/// How an answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    QueueTimeout,
    EvalTimeout,
    Error,
    NoAnswer,
}

fn classify(a: &std::io::Result<testkit::HttpAnswer>) -> Outcome {
    match a {
        Err(_) => Outcome::NoAnswer,
        Ok(a) if a.status == 200 => Outcome::Ok,
        Ok(a) if a.status == 503 && a.text().contains("query queue") => Outcome::QueueTimeout,
        Ok(a) if a.status == 503 => Outcome::EvalTimeout,
        Ok(_) => Outcome::Error,
    }
}

struct Run {
    heavy: Vec<(Duration, Outcome)>,
    light: Vec<(Duration, Outcome)>,
    wall: Duration,
    rss_before: Vec<u64>,
    rss_peak: Vec<u64>,
    rss_idle: Vec<u64>,
}

fn get(port: u16, path: &str) -> std::io::Result<testkit::HttpAnswer> {
    http_request(port, "GET", path.as_bytes(), &[], b"").map_err(std::io::Error::other)
}

fn heavy_queries() -> Vec<String> {
    let s = |ms: i64| ms / 1000;
    let end = START + HOURS * HOUR - INTERVAL;
    let mut out = Vec::new();
    for i in 0..HEAVY {
        let q = match i % 5 {
            0..=2 => format!(
                "query={}&start={}&end={}&step=15",
                url_encode("sum by (job) (rate(http_requests_total[5m]))"),
                s(START + HOUR),
                s(end)
            ),
            3 => format!(
                "query={}&start={}&end={}&step=60",
                url_encode("http_requests_total"),
                s(end - 12 * HOUR),
                s(end)
            ),
            _ => format!(
                "query={}&start={}&end={}&step=60",
                url_encode("max_over_time(rate(http_requests_total[5m])[1h:1m])"),
                s(end - 6 * HOUR),
                s(end)
            ),
        };
        out.push(format!("/api/v1/query_range?{q}"));
    }
    out
}

fn load(port: u16, pids: &[u32]) -> Run {
    let rss_before: Vec<u64> = pids.iter().map(|&p| testkit::rss(p)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new(rss_before.clone()));
    let sampler = {
        let (done, peaks, pids) = (done.clone(), peaks.clone(), pids.to_vec());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let mut p = peaks.lock().unwrap();
                for (i, &pid) in pids.iter().enumerate() {
                    p[i] = p[i].max(testkit::rss(pid));
                }
                drop(p);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let light = {
        let done = done.clone();
        let end = START + HOURS * HOUR - INTERVAL;
        let path = format!(
            "/api/v1/query?query={}&time={}",
            url_encode("http_requests_total{instance=\"host-7\",job=\"job-3\"}"),
            end / 1000
        );
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let a = get(port, &path);
                out.push((t.elapsed(), classify(&a)));
                std::thread::sleep(Duration::from_millis(200));
            }
            out
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = heavy_queries()
        .into_iter()
        .map(|path| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let a = get(port, &path);
                (t.elapsed(), classify(&a))
            })
        })
        .collect();
    let heavy: Vec<(Duration, Outcome)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let light = light.join().unwrap();
    sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let rss_idle = pids.iter().map(|&p| testkit::rss(p)).collect();
    let rss_peak = peaks.lock().unwrap().clone();
    Run {
        heavy,
        light,
        wall,
        rss_before,
        rss_peak,
        rss_idle,
    }
}

/// One query with a large answer (every point of every series): its time, answer size and
/// the peak RSS of each process meanwhile.
fn big_answer(port: u16, pids: &[u32]) -> (Duration, usize, Vec<u64>) {
    let end = START + HOURS * HOUR - INTERVAL;
    let path = format!(
        "/api/v1/query_range?query=http_requests_total&start={}&end={}&step=15",
        START / 1000,
        end / 1000
    );
    let done = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new(vec![0u64; pids.len()]));
    let sampler = {
        let (done, peaks, pids) = (done.clone(), peaks.clone(), pids.to_vec());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let mut p = peaks.lock().unwrap();
                for (i, &pid) in pids.iter().enumerate() {
                    p[i] = p[i].max(testkit::rss(pid));
                }
                drop(p);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    let a = get(port, &path).unwrap();
    let took = t.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(a.status, 200, "{:.300}", a.text());
    let peaks = peaks.lock().unwrap().clone();
    (took, a.body.len(), peaks)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64()
}

fn report(name: &str, procs: &[&str], r: &Run) {
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for (_, o) in &r.heavy {
        *counts.entry(*o).or_default() += 1;
    }
    let mut lat: Vec<Duration> = r.heavy.iter().map(|(d, _)| *d).collect();
    lat.sort();
    let mut light: Vec<Duration> = r.light.iter().map(|(d, _)| *d).collect();
    light.sort();
    let light_ok = r.light.iter().filter(|(_, o)| *o == Outcome::Ok).count();
    println!("== {name}");
    println!(
        "heavy: {} sent, answered in {:.1} s ({:.2}/s); ok {}, queue timeout {}, eval timeout {}, error {}, no answer {}",
        r.heavy.len(),
        r.wall.as_secs_f64(),
        r.heavy.len() as f64 / r.wall.as_secs_f64(),
        counts.get(&Outcome::Ok).unwrap_or(&0),
        counts.get(&Outcome::QueueTimeout).unwrap_or(&0),
        counts.get(&Outcome::EvalTimeout).unwrap_or(&0),
        counts.get(&Outcome::Error).unwrap_or(&0),
        counts.get(&Outcome::NoAnswer).unwrap_or(&0),
    );
    println!(
        "heavy latency s: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!(
        "light: {} sent, {} ok; latency s: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        r.light.len(),
        light_ok,
        pct(&light, 0.5),
        pct(&light, 0.9),
        pct(&light, 0.99),
        pct(&light, 1.0)
    );
    for (i, p) in procs.iter().enumerate() {
        println!(
            "RSS {p}: before {} MiB, peak {} MiB, idle after 20 s {} MiB",
            r.rss_before[i] >> 20,
            r.rss_peak[i] >> 20,
            r.rss_idle[i] >> 20
        );
    }
}

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks");
    std::fs::create_dir_all(&blocks).unwrap();
    let t = Instant::now();
    write_blocks(&blocks);
    eprintln!(
        "wrote {} samples in {:?}",
        SERIES as i64 * HOURS * HOUR / INTERVAL,
        t.elapsed()
    );
    let bucket = dir.path().join("bucket");
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", &objstore])
        .arg(format!("--path={}", blocks.display()))
        .arg("--label=replica=\"a\"")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

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
        format!("--query.timeout={TIMEOUT}"),
        "--query.max-concurrent=20".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    let probe = format!(
        "/api/v1/query?query=count(http_requests_total)&time={}",
        (START + HOUR) / 1000
    );
    wait_until(
        "query sees the store's data",
        Duration::from_secs(60),
        || http_get(q_http, &probe).is_ok_and(|(c, b)| c == 200 && b.contains("5000")),
    )
    .unwrap();
    let ours_big = big_answer(q_http, &[store.pid(), query.pid()]);
    std::thread::sleep(Duration::from_secs(5));
    let ours = load(q_http, &[store.pid(), query.pid()]);
    drop(query);
    drop(store);

    let prom = Prometheus::start(
        dir.path(),
        &blocks,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
            &format!("--query.timeout={TIMEOUT}"),
            "--query.max-concurrency=20",
        ],
    )
    .unwrap();
    wait_until("prometheus answers", Duration::from_secs(60), || {
        http_get(prom.port, &probe).is_ok_and(|(c, b)| c == 200 && b.contains("5000"))
    })
    .unwrap();
    let theirs_big = big_answer(prom.port, &[prom.pid()]);
    std::thread::sleep(Duration::from_secs(5));
    let theirs = load(prom.port, &[prom.pid()]);

    println!(
        "load: {HEAVY} heavy range queries at once + a light instant query every 200 ms; query timeout {TIMEOUT}, 20 concurrent"
    );
    let points = SERIES as i64 * (HOURS * HOUR / INTERVAL);
    println!("one answer of {points} points (24 h at 15 s, every series):");
    println!(
        "  gauntlet: {:.1} s, {} MiB of JSON, peak RSS store {} MiB + query {} MiB",
        ours_big.0.as_secs_f64(),
        ours_big.1 >> 20,
        ours_big.2[0] >> 20,
        ours_big.2[1] >> 20
    );
    println!(
        "  prometheus: {:.1} s, {} MiB of JSON, peak RSS {} MiB",
        theirs_big.0.as_secs_f64(),
        theirs_big.1 >> 20,
        theirs_big.2[0] >> 20
    );
    report("gauntlet store + query", &["store", "query"], &ours);
    report("prometheus 2.42", &["prometheus"], &theirs);
}
