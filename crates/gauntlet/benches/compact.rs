//! Compaction and downsampling, side by side in one run: `gauntlet compact` on a generated
//! group of 2h blocks (2 days, and 10× that), Prometheus 2.42 compacting the same blocks
//! itself (started on them with a larger maximum block duration; its log gives each
//! compaction's duration), and Thanos's compactor when `THANOS_BIN` is set. Prints samples
//! per second of compaction and of downsampling, peak RSS (VmHWM, mapped files included) and
//! peak anonymous memory (sampled: the heap). Run with `bench/compact`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::free_port;
use tsdb::block::BlockWriter;
use tsdb::labels::Labels;

/// 2023-11-15T00:00:00Z, aligned to the 2-day and 14-day compaction ranges' grid.
const START: i64 = 1_700_006_400_000;
const HOUR: i64 = 3_600_000;
const INTERVAL: i64 = 15_000;
const SERIES: usize = 2_000;

fn write_blocks(dir: &Path, days: i64) -> u64 {
    let mut all: Vec<Labels> = (0..SERIES)
        .map(|i| {
            Labels::from_pairs(vec![
                (
                    "__name__",
                    if i % 4 == 0 {
                        "memory_bytes"
                    } else {
                        "requests_total"
                    }
                    .to_string(),
                ),
                ("instance", format!("host-{}", i / 8)),
                ("job", format!("job-{}", i % 8)),
            ])
        })
        .collect();
    all.sort();
    let mut samples = 0u64;
    // Half a day more than asked, so the last 2-day range is complete and gets compacted.
    for b in 0..days * 12 + 6 {
        let (min, max) = (START + b * 2 * HOUR, START + (b + 1) * 2 * HOUR);
        let mut w = BlockWriter::new(dir, min, max).unwrap();
        for (k, l) in all.iter().enumerate() {
            let gauge = l.get("__name__") == Some("memory_bytes");
            let s = (min..max).step_by(INTERVAL as usize).map(move |t| {
                let n = (t - START) / INTERVAL;
                let v = if gauge {
                    1e8 + ((n * 7919 + k as i64) % 1000) as f64
                } else {
                    (n * (k as i64 % 5 + 1) % 20_000) as f64
                };
                (t, v)
            });
            w.add_series(l, s).unwrap();
        }
        let meta = w.finish().unwrap();
        samples += meta.stats.num_samples;
    }
    samples
}

fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        * 1024
}

/// Peak memory of a process: resident set (VmHWM, mapped files included) and the highest
/// anonymous memory sampled (heap: what grows with the work held in memory).
#[derive(Clone, Copy, Default)]
struct Peak {
    rss: u64,
    anon: u64,
}

impl Peak {
    fn sample(&mut self, pid: u32) {
        self.rss = self.rss.max(vm_hwm(pid));
        if let Some((anon, _)) = testkit::rss_split(pid) {
            self.anon = self.anon.max(anon);
        }
    }
    fn max(self, o: Peak) -> Peak {
        Peak {
            rss: self.rss.max(o.rss),
            anon: self.anon.max(o.anon),
        }
    }
}

/// Runs a command to the end; returns its wall time, peak memory (sampled) and its stderr.
fn measure(cmd: &mut Command) -> (Duration, Peak, String) {
    let started = Instant::now();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = Peak::default();
    loop {
        peak.sample(pid);
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{cmd:?} failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    (started.elapsed(), peak, text)
}

/// Sum of the `duration=` fields of log lines with `msg`.
fn logged(text: &str, msg: &str) -> Duration {
    text.lines()
        .filter(|l| l.contains(msg))
        .filter_map(|l| l.split("duration=").nth(1)?.split_whitespace().next())
        .map(parse_go_duration)
        .sum()
}

fn objstore(bucket: &Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    )
}

fn upload(blocks: &Path, bucket: &Path) {
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", &objstore(bucket)])
        .arg(format!("--path={}", blocks.display()))
        .arg("--label=cluster=\"bench\"")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

struct Row {
    who: String,
    /// Wall time of the compaction run (process start to exit), when it is one.
    wall: Option<Duration>,
    compact: Duration,
    downsample: Option<Duration>,
    peak: Peak,
}

/// A Thanos-flag compactor (`bin compact ...`): compaction alone, then downsampling.
fn compactor(bin: &str, who: &str, dir: &Path, blocks: &Path, name: &str) -> Row {
    let bucket = dir.join(format!("bucket-{who}-{name}"));
    upload(blocks, &bucket);
    let run = |extra: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("compact")
            .arg(objstore(&bucket))
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("data-{who}-{name}")).display()
            ))
            .arg("--consistency-delay=0s")
            .arg(format!("--http-address=127.0.0.1:{}", free_port()))
            .args(extra);
        measure(&mut c)
    };
    let (wall, p1, log) = run(&["--downsampling.disable"]);
    let (downsample, p2, _) = run(&[]);
    // The merges' own durations, comparable with Prometheus's logged compaction durations;
    // Thanos does not log them, so its wall time stands in.
    let merged = logged(&log, "msg=\"compacted blocks\"");
    Row {
        who: format!("{who} ({name})"),
        wall: Some(wall),
        compact: if merged.is_zero() { wall } else { merged },
        downsample: Some(downsample),
        peak: p1.max(p2),
    }
}

/// Prometheus compacting the blocks itself: started on them, it compacts in the background;
/// the durations of its "compact blocks" log lines are summed once it has been quiet a while.
fn prometheus(dir: &Path, blocks: &Path, name: &str, days: i64) -> Row {
    let data = dir.join(format!("prom-{name}"));
    testkit::copy_dir(blocks, &data, &[]);
    let port = free_port();
    let log = dir.join(format!("prom-{name}.log"));
    let cfg = dir.join("prom.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").unwrap();
    let max_block = format!("--storage.tsdb.max-block-duration={}d", days.max(2) * 2);
    let mut child =
        Command::new(testkit::find_binary("prometheus", "apt-get install prometheus").unwrap())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=100y")
            .arg("--storage.tsdb.min-block-duration=2h")
            .arg(&max_block)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = Peak::default();
            while !done.load(Ordering::Relaxed) {
                peak.sample(pid);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    // Compaction starts within a minute; done when no compaction was logged for 90 s.
    let mut last_count = 0;
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(5));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let n = text.matches("msg=\"compact blocks\"").count();
        if n != last_count {
            last_count = n;
            quiet_since = Instant::now();
        } else if n > 0 && quiet_since.elapsed() > Duration::from_secs(90) {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut total = Duration::ZERO;
    for line in text
        .lines()
        .filter(|l| l.contains("msg=\"compact blocks\""))
    {
        if let Some(d) = line
            .split("duration=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            total += parse_go_duration(d);
        }
    }
    Row {
        who: format!("prometheus 2.42 ({name}, {last_count} compactions)"),
        wall: None,
        compact: total,
        downsample: None,
        peak,
    }
}

/// Go's duration text (`1.5s`, `250ms`, `1m2.5s`).
fn parse_go_duration(s: &str) -> Duration {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().unwrap_or(0.0);
        total += v * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" | "us" => 1e-6,
            "ns" => 1e-9,
            _ => 0.0,
        };
        num.clear();
    }
    Duration::from_secs_f64(total)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // BENCH_COMPACT_KEEP=1 keeps the generated blocks and buckets for profiling.
    let root = dir.path().to_path_buf();
    let _cleanup = if std::env::var_os("BENCH_COMPACT_KEEP").is_some() {
        eprintln!("keeping {}", root.display());
        let _ = dir.keep();
        None
    } else {
        Some(dir)
    };
    let sizes: Vec<i64> = std::env::var("BENCH_COMPACT_DAYS")
        .ok()
        .map(|s| s.split(',').filter_map(|d| d.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2, 20]);
    let thanos_bin = std::env::var("THANOS_BIN").ok();
    if thanos_bin.is_none() {
        eprintln!("THANOS_BIN is not set: Thanos's compactor is left out of this run");
    }
    let mut rows: Vec<(u64, Row)> = Vec::new();
    for &days in &sizes {
        let blocks: PathBuf = root.join(format!("blocks-{days}d"));
        std::fs::create_dir_all(&blocks).unwrap();
        let t = Instant::now();
        let samples = write_blocks(&blocks, days);
        eprintln!(
            "{days}d: {samples} samples in {} blocks, written in {:?}",
            days * 12 + 6,
            t.elapsed()
        );
        let name = format!("{days}d");
        rows.push((
            samples,
            compactor(
                env!("CARGO_BIN_EXE_gauntlet"),
                "gauntlet",
                &root,
                &blocks,
                &name,
            ),
        ));
        if let Some(bin) = &thanos_bin {
            rows.push((samples, compactor(bin, "thanos", &root, &blocks, &name)));
        }
        rows.push((samples, prometheus(&root, &blocks, &name, days)));
    }
    println!(
        "{:<44} {:>12} {:>8} {:>10} {:>14} {:>12} {:>10} {:>10} {:>10}",
        "compactor",
        "samples",
        "wall s",
        "merge s",
        "merge smp/s",
        "downsample s",
        "ds smp/s",
        "peak RSS",
        "peak anon"
    );
    for (samples, r) in &rows {
        let rate = |d: Duration| *samples as f64 / d.as_secs_f64().max(1e-9);
        println!(
            "{:<44} {:>12} {:>8} {:>10.2} {:>14.0} {:>12} {:>10} {:>6} MiB {:>6} MiB",
            r.who,
            samples,
            r.wall
                .map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            r.compact.as_secs_f64(),
            rate(r.compact),
            r.downsample
                .map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            r.downsample
                .map_or("-".into(), |d| format!("{:.0}", rate(d))),
            r.peak.rss >> 20,
            r.peak.anon >> 20
        );
    }
}
