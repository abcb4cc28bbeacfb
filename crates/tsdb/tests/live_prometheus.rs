//! A real Prometheus 2.42 scraping itself cuts short blocks (hidden block-duration flags);
//! every block it writes must read back exactly as `promtool tsdb dump` prints it.

mod common;

use std::time::{Duration, Instant};

use common::{dump_with_our_reader, run_promtool};
use testkit::prometheus::Prometheus;

use testkit::block_dirs as blocks_in;

#[test]
fn blocks_cut_by_running_prometheus_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut prom = Prometheus::start(
        dir.path(),
        &data,
        |port| {
            format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: a\n\
                 scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            )
        },
        &["--storage.tsdb.min-block-duration=30s", "--storage.tsdb.max-block-duration=30s"],
    )
    .unwrap();
    // The head is compacted into a block once it spans 1.5 block durations; the compaction
    // loop runs every minute.
    let deadline = Instant::now() + Duration::from_secs(240);
    while blocks_in(&data).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "prometheus cut no blocks within 4 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    prom.stop();

    // Compare blocks only: copy them into a fresh directory (promtool would also read the WAL).
    let copy = dir.path().join("blocks");
    std::fs::create_dir_all(&copy).unwrap();
    for b in blocks_in(&data) {
        let src = data.join(&b);
        let dst = copy.join(&b);
        std::fs::create_dir_all(dst.join("chunks")).unwrap();
        for f in ["meta.json", "index", "tombstones"] {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
        for e in std::fs::read_dir(src.join("chunks")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join("chunks").join(e.file_name())).unwrap();
        }
    }
    let theirs = run_promtool(&["tsdb", "dump", copy.to_str().unwrap()]);
    let ours = dump_with_our_reader(&copy);
    assert!(
        theirs.lines().count() > 100,
        "too few samples: {}",
        theirs.lines().count()
    );
    assert_eq!(ours.lines().count(), theirs.lines().count());
    for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
        assert_eq!(a, b, "line {i} differs");
    }
}

#[test]
fn prometheus_answers_queries_over_our_blocks() {
    use tsdb::block::BlockWriter;
    use tsdb::Labels;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Two adjacent 2h blocks of three counters sampled every 15s.
    let base = 1_600_000_000_000i64 / 7_200_000 * 7_200_000;
    for b in 0..2i64 {
        let (min_t, max_t) = (base + b * 7_200_000, base + (b + 1) * 7_200_000);
        let mut w = BlockWriter::new(&data, min_t, max_t).unwrap();
        for i in 0..3i64 {
            let l = Labels::from_pairs([
                ("__name__", "requests_total".to_string()),
                ("i", i.to_string()),
            ]);
            w.add_series(
                &l,
                (min_t..max_t)
                    .step_by(15_000)
                    .map(|t| (t, ((t - base) / 15_000 * (i + 1)) as f64)),
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    let prom = Prometheus::start(
        dir.path(),
        &data,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[],
    )
    .unwrap();

    let query = |q: &str, t: i64| -> serde_json::Value {
        let path = format!("/api/v1/query?query={q}&time={}.{:03}", t / 1000, t % 1000);
        let body = prom.get(&path).unwrap();
        serde_json::from_str(&body).unwrap()
    };
    // A raw sample in the second block, a rate across the block boundary, and a count.
    let t = base + 7_200_000 + 600_000;
    let v = query("requests_total%7Bi%3D%222%22%7D", t);
    assert_eq!(
        v["data"]["result"][0]["value"][1],
        serde_json::json!(((t - base) / 15_000 * 3).to_string())
    );
    let v = query(
        "sum(rate(requests_total%5B5m%5D))",
        base + 7_200_000 + 60_000,
    );
    let rate: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((rate - 6.0 / 15.0).abs() < 1e-9, "rate {rate}");
    let v = query("count(requests_total)", base + 1_000_000);
    assert_eq!(v["data"]["result"][0]["value"][1], serde_json::json!("3"));
}
