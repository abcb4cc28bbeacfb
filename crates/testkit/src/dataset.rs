//! Generated metrics that look like a real fleet, as OpenMetrics text for
//! `promtool tsdb create-blocks-from openmetrics`: counters with resets, gauges, classic
//! histograms, sparse series that come and go, several jobs and instances. One seed gives
//! the same data every time; a replica name shifts nothing but can punch gaps.

use crate::Rng;
use std::fmt::Write as _;

#[derive(Clone, Debug)]
pub struct Dataset {
    /// First sample time, ms since the epoch.
    pub start_ms: i64,
    /// Last sample time (exclusive), ms.
    pub end_ms: i64,
    /// Scrape interval, ms.
    pub interval_ms: i64,
    /// Instances per job.
    pub instances: usize,
    pub seed: u64,
    /// Time ranges `[from, to)` (ms) in which this replica has no samples.
    pub gaps: Vec<(i64, i64)>,
}

const JOBS: [&str; 2] = ["api", "db"];
const METHODS: [&str; 2] = ["GET", "POST"];
const CODES: [&str; 2] = ["200", "500"];
const BUCKETS: [&str; 6] = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];

impl Dataset {
    fn in_gap(&self, t: i64) -> bool {
        self.gaps.iter().any(|&(a, b)| t >= a && t < b)
    }

    /// The whole dataset as OpenMetrics text (one family after another, as the format wants).
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        // Every replica walks all timestamps (so its values are the same), writing only those
        // outside its gaps.
        let times: Vec<i64> = (self.start_ms..self.end_ms)
            .step_by(self.interval_ms.max(1) as usize)
            .collect();
        let ts = |t: i64| format!("{}.{:03}", t / 1000, t % 1000);
        let instances: Vec<String> = (0..self.instances)
            .map(|i| format!("10.0.0.{}:9100", i + 1))
            .collect();

        out.push_str("# HELP http_requests Requests served.\n# TYPE http_requests counter\n");
        for (j, job) in JOBS.iter().enumerate() {
            for (i, inst) in instances.iter().enumerate() {
                for (m, method) in METHODS.iter().enumerate() {
                    for (c, code) in CODES.iter().enumerate() {
                        let mut rng = Rng(self.seed
                            ^ (((j * 1000 + i * 100 + m * 10 + c) as u64 + 1) * 0x9E37_79B9));
                        let rate = if c == 0 { 20.0 } else { 0.5 } * (1.0 + j as f64);
                        let mut v = 0.0f64;
                        let mut last_t = self.start_ms;
                        for &t in &times {
                            // Restarts reset counters now and then.
                            if rng.next().is_multiple_of(2000) {
                                v = 0.0;
                            }
                            v += (rate * (t - last_t) as f64 / 1000.0 * (0.5 + rng.unit())).round();
                            last_t = t;
                            if self.in_gap(t) {
                                continue;
                            }
                            writeln!(
                                out,
                                "http_requests_total{{job=\"{job}\",instance=\"{inst}\",method=\"{method}\",code=\"{code}\"}} {v} {}",
                                ts(t)
                            )
                            .ok();
                        }
                    }
                }
            }
        }

        out.push_str("# HELP memory_bytes Resident memory.\n# TYPE memory_bytes gauge\n");
        for (j, job) in JOBS.iter().enumerate() {
            for (i, inst) in instances.iter().enumerate() {
                let mut rng = Rng(self.seed ^ (0xABCD + (j * 100 + i) as u64));
                let base = 2e8 * (1 + i) as f64;
                for &t in &times {
                    let phase = (t - self.start_ms) as f64 / 3.6e6;
                    let v = (base * (1.0 + 0.3 * (phase / 4.0).sin()) + rng.unit() * 1e6).round();
                    if self.in_gap(t) {
                        continue;
                    }
                    writeln!(
                        out,
                        "memory_bytes{{job=\"{job}\",instance=\"{inst}\"}} {v} {}",
                        ts(t)
                    )
                    .ok();
                }
            }
        }

        out.push_str("# HELP request_duration_seconds Request latency.\n# TYPE request_duration_seconds histogram\n");
        for (i, inst) in instances.iter().enumerate() {
            let mut rng = Rng(self.seed ^ (0x5151 + i as u64));
            let mut counts = [0.0f64; BUCKETS.len()];
            let mut sum = 0.0f64;
            let mut lines: Vec<String> = Vec::new();
            for &t in &times {
                for _ in 0..(5 + rng.next() % 10) {
                    let x = -rng.unit().max(1e-9).ln() * 0.2;
                    sum += x;
                    for (b, le) in BUCKETS.iter().enumerate() {
                        if *le == "+Inf" || x <= le.parse::<f64>().unwrap_or(f64::INFINITY) {
                            counts[b] += 1.0;
                        }
                    }
                }
                if self.in_gap(t) {
                    continue;
                }
                for (b, le) in BUCKETS.iter().enumerate() {
                    lines.push(format!(
                        "request_duration_seconds_bucket{{job=\"api\",instance=\"{inst}\",le=\"{le}\"}} {} {}",
                        counts[b],
                        ts(t)
                    ));
                }
                lines.push(format!(
                    "request_duration_seconds_count{{job=\"api\",instance=\"{inst}\"}} {} {}",
                    counts[BUCKETS.len() - 1],
                    ts(t)
                ));
                lines.push(format!(
                    "request_duration_seconds_sum{{job=\"api\",instance=\"{inst}\"}} {sum} {}",
                    ts(t)
                ));
            }
            // OpenMetrics wants each series' samples together; sort keeps series contiguous
            // and (at a fixed label prefix) time-ordered because timestamps have equal width.
            lines.sort_by(|a, b| series_key(a).cmp(series_key(b)));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }

        out.push_str("# HELP batch_last_success Sparse: batch jobs that come and go.\n# TYPE batch_last_success gauge\n");
        for b in 0..4 {
            let mut rng = Rng(self.seed ^ (0x7777 + b));
            let mut alive = rng.next().is_multiple_of(2);
            for &t in &times {
                if rng.next().is_multiple_of(200) {
                    alive = !alive;
                }
                if alive && !self.in_gap(t) {
                    writeln!(
                        out,
                        "batch_last_success{{batch=\"b{b}\"}} {} {}",
                        t / 1000,
                        ts(t)
                    )
                    .ok();
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// The series part of an OpenMetrics sample line.
fn series_key(line: &str) -> &str {
    line.split_once("} ").map_or(line, |(k, _)| k)
}
