//! Prints a generated dataset as OpenMetrics text:
//! `gen-openmetrics HOURS [REPLICA]` ending now, 30s interval, 4 instances per job.
//! Replica "b" has different gaps than replica "a", so deduplication has work to do.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hours: i64 = args.get(1).and_then(|h| h.parse().ok()).unwrap_or(48);
    let replica = args.get(2).map(String::as_str).unwrap_or("a");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let end = now / 30_000 * 30_000;
    let start = end - hours * 3_600_000;
    let gap = |from_h: i64, len_min: i64| {
        (
            start + from_h * 3_600_000,
            start + from_h * 3_600_000 + len_min * 60_000,
        )
    };
    let gaps = match replica {
        "a" => vec![gap(hours / 3, 20)],
        _ => vec![gap(hours / 2, 45), gap(hours / 5, 10)],
    };
    let d = testkit::dataset::Dataset {
        start_ms: start,
        end_ms: end,
        interval_ms: 30_000,
        instances: 4,
        seed: 42,
        gaps,
    };
    print!("{}", d.openmetrics());
}
