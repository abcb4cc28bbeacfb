//! `gauntlet compact` end to end: a multi-day history written by promtool goes into a
//! filesystem bucket; the compactor merges it level by level and downsamples it. Every
//! sample survives, the output passes `promtool tsdb analyze` and `tools bucket verify`,
//! Prometheus 2.42 answers the same on the compacted blocks as on the sources, the 5m
//! aggregates equal those computed from the raw samples, and downsampled queries through
//! store and querier stay close to the raw answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::promapi::{differ, from_prometheus, secs, url_encode};
use testkit::prometheus::{create_blocks_from_openmetrics, promtool, Prometheus};
use testkit::{free_port, http_get, wait_until, Process};
use tsdb::block::Block;
use tsdb::chunkenc::aggr::{self, AggrType};
use tsdb::chunkenc::{Encoding, XorIterator};
use tsdb::meta::BlockMeta;

/// 2023-11-15T00:00:00Z, aligned to Thanos's 2-day compaction range.
const START: i64 = 1_700_006_400_000;
const HOUR: i64 = 3_600_000;

type Samples = BTreeMap<String, BTreeMap<i64, f64>>;

fn gauntlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .output()
        .unwrap()
}

fn objstore(bucket: &Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    )
}

/// A promtool-written history of `hours` for one replica, uploaded with external labels.
fn history(dir: &Path, hours: i64, replica: &str, gaps: Vec<(i64, i64)>, bucket: &Path) -> PathBuf {
    let data = testkit::dataset::Dataset {
        start_ms: START,
        end_ms: START + hours * HOUR,
        interval_ms: 30_000,
        instances: 2,
        seed: 11,
        gaps,
    };
    let om = dir.join(format!("{replica}.om"));
    std::fs::write(&om, data.openmetrics()).unwrap();
    let blocks = dir.join(format!("blocks-{replica}"));
    create_blocks_from_openmetrics(&om, &blocks).unwrap();
    let out = gauntlet(&[
        "tools",
        "bucket",
        "upload-blocks",
        &objstore(bucket),
        &format!("--path={}", blocks.display()),
        "--label=cluster=\"c1\"",
        &format!("--label=replica=\"{replica}\""),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    blocks
}

fn compact(bucket: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compact".to_string(),
        objstore(bucket),
        format!("--data-dir={}", data.display()),
        "--consistency-delay=0s".into(),
        format!("--http-address=127.0.0.1:{}", free_port()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(&args)
        .output()
        .unwrap()
}

/// Blocks of the bucket without a deletion mark, with their directories.
fn live_blocks(bucket: &Path) -> Vec<(PathBuf, BlockMeta)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(bucket).unwrap().flatten() {
        let dir = e.path();
        if !dir.join("meta.json").exists() || dir.join("deletion-mark.json").exists() {
            continue;
        }
        out.push((dir.clone(), BlockMeta::read_from_dir(&dir).unwrap()));
    }
    out.sort_by_key(|(_, m)| (m.resolution(), m.min_time));
    out
}

fn raw_samples(dirs: &[PathBuf]) -> Samples {
    let mut out = Samples::new();
    for d in dirs {
        let b = Block::open(d).unwrap();
        let mut set = b.all_series().unwrap();
        while let Some(s) = set.next().unwrap() {
            let e = out.entry(s.labels.to_string()).or_default();
            for (t, v) in set.samples(&s).collect_all().unwrap() {
                e.insert(t, v);
            }
        }
    }
    out
}

fn block_dirs(dir: &Path) -> Vec<PathBuf> {
    testkit::block_dirs(dir)
        .into_iter()
        .map(|b| dir.join(b))
        .collect()
}

/// The differential corpus of the read path, with times in this history.
fn corpus() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../promql/tests/vs-prometheus-queries.txt");
    let mid = secs(START + 20 * HOUR + 7_000);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.replace("{mid}", &mid))
        .collect()
}

fn corpus_paths(times: &[i64], range: (i64, i64, i64)) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for q in corpus() {
        let ordered = q.starts_with("sort(") || q.starts_with("sort_desc(");
        let e = url_encode(&q);
        for &t in times {
            out.push((format!("/api/v1/query?query={e}&time={}", secs(t)), ordered));
        }
        out.push((
            format!(
                "/api/v1/query_range?query={e}&start={}&end={}&step={}",
                secs(range.0),
                secs(range.1),
                range.2 / 1000
            ),
            true,
        ));
    }
    out
}

fn mismatches(a_port: u16, b_port: u16, paths: &[(String, bool)]) -> Vec<String> {
    let mut out = Vec::new();
    for (p, ordered) in paths {
        let (_, a) = http_get(a_port, p).unwrap();
        let (_, b) = http_get(b_port, p).unwrap();
        if let Some(d) = differ(&from_prometheus(&a), &from_prometheus(&b), *ordered) {
            out.push(format!("{p}: {d}"));
        }
    }
    out
}

fn prometheus_on(dir: &Path, name: &str, blocks: &[PathBuf]) -> Prometheus {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    for b in blocks {
        testkit::copy_dir(
            b,
            &data.join(b.file_name().unwrap()),
            &["deletion-mark.json"],
        );
    }
    let work = dir.join(format!("{name}-work"));
    std::fs::create_dir_all(&work).unwrap();
    Prometheus::start(
        &work,
        &data,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
        ],
    )
    .unwrap()
}

/// count, sum, min, max of each 5m window of the raw samples, by window end.
fn windows_of(samples: &BTreeMap<i64, f64>, res: i64) -> BTreeMap<i64, (f64, f64, f64, f64)> {
    let mut out: BTreeMap<i64, (f64, f64, f64, f64)> = BTreeMap::new();
    for (&t, &v) in samples {
        if v.is_nan() {
            continue;
        }
        let end = t - t.rem_euclid(res) + res - 1;
        let e = out.entry(end).or_insert((0.0, 0.0, f64::MAX, f64::MIN));
        e.0 += 1.0;
        e.1 += v;
        e.2 = e.2.min(v);
        e.3 = e.3.max(v);
    }
    out
}

fn decode(sub: Option<(Encoding, &[u8])>) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    if let Some((_, data)) = sub {
        let mut it = XorIterator::new(data);
        while it.next() {
            out.push(it.at());
        }
    }
    out
}

#[test]
fn compacted_history_keeps_every_sample_and_answers_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let sources = history(dir.path(), 54, "a", vec![], &bucket);
    let source_dirs = block_dirs(&sources);
    assert!(
        source_dirs.len() >= 27,
        "{} source blocks",
        source_dirs.len()
    );

    let out = compact(&bucket, &dir.path().join("data"), &["--delete-delay=0s"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("compaction done"), "{log}");
    // A second run deletes what the first marked and finds nothing more to do.
    let out = compact(&bucket, &dir.path().join("data"), &["--delete-delay=0s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let live = live_blocks(&bucket);
    let raw: Vec<&(PathBuf, BlockMeta)> =
        live.iter().filter(|(_, m)| m.resolution() == 0).collect();
    let five: Vec<&(PathBuf, BlockMeta)> = live
        .iter()
        .filter(|(_, m)| m.resolution() == 300_000)
        .collect();
    let levels: Vec<u32> = raw.iter().map(|(_, m)| m.compaction.level).collect();
    assert!(
        raw.iter()
            .any(|(_, m)| m.max_time - m.min_time >= 47 * HOUR),
        "no 2d block: {levels:?}"
    );
    assert!(
        raw.len() < source_dirs.len() / 3,
        "{} raw blocks left",
        raw.len()
    );
    assert_eq!(five.len(), 1, "one 5m block for the 2d block");
    // Every marked source was deleted by the second run; no partial upload is left.
    for e in std::fs::read_dir(&bucket).unwrap().flatten() {
        assert!(
            e.path().join("meta.json").exists(),
            "{} without meta.json",
            e.path().display()
        );
    }

    // Every sample survives.
    let raw_dirs: Vec<PathBuf> = raw.iter().map(|(d, _)| d.clone()).collect();
    let want = raw_samples(&source_dirs);
    let got = raw_samples(&raw_dirs);
    assert_eq!(got.len(), want.len());
    for (series, samples) in &want {
        assert_eq!(got.get(series), Some(samples), "{series}");
    }

    // The output is a valid Prometheus block, for promtool and for our verifier.
    for d in &raw_dirs {
        promtool(&[
            "tsdb",
            "analyze",
            d.parent().unwrap().to_str().unwrap(),
            d.file_name().unwrap().to_str().unwrap(),
        ])
        .unwrap_or_else(|e| panic!("promtool analyze {}: {e:#}", d.display()));
        let issues = tsdb::verify::verify_block(d);
        assert!(issues.is_empty(), "{issues:?}");
    }
    let out = gauntlet(&["tools", "bucket", "verify", &objstore(&bucket)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The 5m aggregates equal those of the raw samples, window by window.
    let (five_dir, five_meta) = five[0];
    assert_eq!(five_meta.thanos.as_ref().unwrap().source, "compactor");
    let b = Block::open(five_dir).unwrap();
    let mut set = b.all_series().unwrap();
    let mut checked = 0;
    while let Some(s) = set.next().unwrap() {
        let raw_in_range: BTreeMap<i64, f64> = want[&s.labels.to_string()]
            .range(five_meta.min_time..five_meta.max_time)
            .map(|(t, v)| (*t, *v))
            .collect();
        let expect = windows_of(&raw_in_range, 300_000);
        let mut got: BTreeMap<i64, (f64, f64, f64, f64)> = BTreeMap::new();
        for c in &s.chunks {
            let (enc, data) = b.chunks().chunk(c.chunk_ref).unwrap();
            assert_eq!(enc, Encoding::AGGR);
            let count = decode(aggr::get(data, AggrType::Count).unwrap());
            let sum = decode(aggr::get(data, AggrType::Sum).unwrap());
            let min = decode(aggr::get(data, AggrType::Min).unwrap());
            let max = decode(aggr::get(data, AggrType::Max).unwrap());
            for i in 0..count.len() {
                // A chunk's last window is stamped with its last sample: key by window.
                let t = count[i].0;
                let end = t - t.rem_euclid(300_000) + 300_000 - 1;
                got.insert(end, (count[i].1, sum[i].1, min[i].1, max[i].1));
            }
        }
        if got != expect {
            let first = expect
                .iter()
                .find(|(k, v)| got.get(*k) != Some(*v))
                .map(|(k, v)| format!("window {k}: raw {v:?}, downsampled {:?}", got.get(k)));
            panic!(
                "{}: {} windows downsampled, {} from raw; first difference: {first:?}",
                s.labels,
                got.len(),
                expect.len()
            );
        }
        checked += 1;
    }
    assert!(checked > 20, "{checked} series checked");

    // Prometheus 2.42 answers the same on the compacted blocks as on the sources.
    let before = prometheus_on(dir.path(), "prom-sources", &source_dirs);
    let after = prometheus_on(dir.path(), "prom-compacted", &raw_dirs);
    let paths = corpus_paths(
        &[
            START + 10 * HOUR,
            START + 30 * HOUR + 7_500,
            START + 50 * HOUR,
        ],
        (START + 45 * HOUR, START + 50 * HOUR, 300_000),
    );
    let diff = mismatches(before.port, after.port, &paths);
    println!(
        "{} queries compared, {} mismatches",
        paths.len(),
        diff.len()
    );
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

fn serve(dir: &Path, bucket: &Path, name: &str) -> (Process, u16, Process, u16) {
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let store = testkit::spawn_quiet(
        env!("CARGO_BIN_EXE_gauntlet"),
        &[
            "store".into(),
            objstore(bucket),
            format!("--data-dir={}", dir.join(format!("store-{name}")).display()),
            format!("--http-address=127.0.0.1:{s_http}"),
            format!("--grpc-address=127.0.0.1:{s_grpc}"),
        ],
    );
    wait_until("store ready", Duration::from_secs(60), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let query = testkit::spawn_quiet(
        env!("CARGO_BIN_EXE_gauntlet"),
        &[
            "query".into(),
            format!("--endpoint=127.0.0.1:{s_grpc}"),
            "--query.replica-label=replica".into(),
            format!("--http-address=127.0.0.1:{q_http}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ],
    );
    let probe = format!(
        "/api/v1/query?query=count(memory_bytes)&time={}",
        secs(START + 3 * HOUR)
    );
    wait_until(
        "query sees the store's data",
        Duration::from_secs(60),
        || http_get(q_http, &probe).is_ok_and(|(c, b)| c == 200 && b.contains("\"value\"")),
    )
    .unwrap();
    (store, s_http, query, q_http)
}

#[test]
fn replicas_compacted_vertically_answer_as_the_querier_deduplicated_them() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    history(
        dir.path(),
        12,
        "a",
        vec![(START + 2 * HOUR, START + 2 * HOUR + 20 * 60_000)],
        &bucket,
    );
    history(
        dir.path(),
        12,
        "b",
        vec![(START + 5 * HOUR, START + 5 * HOUR + 15 * 60_000)],
        &bucket,
    );
    let paths = corpus_paths(
        &[
            START + HOUR,
            START + 2 * HOUR + 10 * 60_000,
            START + 5 * HOUR + 7_500,
        ],
        (START + HOUR, START + 7 * HOUR, 120_000),
    );
    let (mut store, _, mut query, q_before) = serve(dir.path(), &bucket, "before");
    let before: Vec<String> = paths
        .iter()
        .map(|(p, _)| http_get(q_before, p).unwrap().1)
        .collect();
    store.kill();
    query.kill();

    let out = compact(
        &bucket,
        &dir.path().join("data"),
        &[
            "--deduplication.replica-label=replica",
            "--deduplication.func=penalty",
            "--downsampling.disable",
            "--delete-delay=0s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = compact(
        &bucket,
        &dir.path().join("data"),
        &[
            "--deduplication.replica-label=replica",
            "--deduplication.func=penalty",
            "--downsampling.disable",
            "--delete-delay=0s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = live_blocks(&bucket);
    assert!(
        live.iter()
            .all(|(_, m)| !m.external_labels().contains_key("replica")),
        "replica labels dropped"
    );
    assert!(
        live.iter().any(|(_, m)| m.compaction.sources.len() > 2),
        "vertically compacted"
    );

    let (_store, _, _query, q_after) = serve(dir.path(), &bucket, "after");
    let mut diff = Vec::new();
    for ((p, ordered), b) in paths.iter().zip(&before) {
        let (_, a) = http_get(q_after, p).unwrap();
        if let Some(d) = differ(&from_prometheus(b), &from_prometheus(&a), *ordered) {
            diff.push(format!("{p}: {d}"));
        }
    }
    println!(
        "{} queries compared before and after vertical compaction, {} mismatches",
        paths.len(),
        diff.len()
    );
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// The values of a range query's matrix, by series and time.
fn matrix(port: u16, path: &str) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let (code, body) = http_get(port, path).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let key = s["metric"].to_string();
        let mut points = BTreeMap::new();
        for p in s["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let x: f64 = p[1].as_str().unwrap().parse().unwrap();
            points.insert(t, x);
        }
        out.insert(key, points);
    }
    out
}

#[test]
fn downsampled_queries_stay_close_to_raw_and_counters_do_not_spike() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // Two replicas with gaps, compacted with deduplication, then downsampled.
    history(
        dir.path(),
        54,
        "a",
        vec![(START + 10 * HOUR, START + 10 * HOUR + 25 * 60_000)],
        &bucket,
    );
    history(
        dir.path(),
        54,
        "b",
        vec![(START + 30 * HOUR, START + 31 * HOUR)],
        &bucket,
    );
    let args = [
        "--deduplication.replica-label=replica",
        "--deduplication.func=penalty",
        "--delete-delay=0s",
    ];
    for _ in 0..2 {
        let out = compact(&bucket, &dir.path().join("data"), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let live = live_blocks(&bucket);
    assert!(
        live.iter().any(|(_, m)| m.resolution() == 300_000),
        "a 5m block"
    );
    let (_store, _, _query, q) = serve(dir.path(), &bucket, "ds");

    let range = format!(
        "start={}&end={}&step=3600",
        secs(START + 4 * HOUR),
        secs(START + 46 * HOUR)
    );
    // (query, relative tolerance): windows of an hour, evaluated on the hour.
    let cases = [
        ("rate(http_requests_total[1h])", 0.10),
        ("increase(http_requests_total[1h])", 0.10),
        ("sum_over_time(memory_bytes[1h])", 0.03),
        // count_over_time reads the count aggregate and counts its windows, as Thanos does
        // (it is not the raw count): checked apart below.
        ("avg_over_time(memory_bytes[1h])", 0.03),
        ("max_over_time(memory_bytes[1h])", 0.03),
        ("min_over_time(memory_bytes[1h])", 0.03),
    ];
    let mut report = Vec::new();
    for (query, tolerance) in cases {
        let q_enc = url_encode(query);
        let raw = matrix(
            q,
            &format!("/api/v1/query_range?query={q_enc}&{range}&max_source_resolution=0"),
        );
        let down = matrix(
            q,
            &format!("/api/v1/query_range?query={q_enc}&{range}&max_source_resolution=5m"),
        );
        assert_eq!(raw.len(), down.len(), "{query}: series");
        let mut worst: f64 = 0.0;
        let mut compared = 0;
        for (series, points) in &raw {
            let d = &down[series];
            for (t, x) in points {
                let Some(y) = d.get(t) else { continue };
                if *x == 0.0 && *y == 0.0 {
                    continue;
                }
                let err = (x - y).abs() / x.abs().max(y.abs());
                worst = worst.max(err);
                compared += 1;
            }
        }
        report.push(format!(
            "{query}: {compared} points, worst relative error {worst:.4}"
        ));
        assert!(compared > 100, "{query}: {compared} points compared");
        assert!(
            worst <= tolerance,
            "{query}: worst relative error {worst} above {tolerance}"
        );
    }
    // count_over_time over 5m data counts the 12 windows of each hour, as in Thanos.
    let q_enc = url_encode("count_over_time(memory_bytes[1h])");
    let down = matrix(
        q,
        &format!("/api/v1/query_range?query={q_enc}&{range}&max_source_resolution=5m"),
    );
    assert!(
        down.values()
            .flat_map(|p| p.values())
            .all(|&n| (11.0..=13.0).contains(&n)),
        "{down:?}"
    );
    // Deduplicated, downsampled counters never spike (Thanos issue 7623: 790 against 0.31).
    let q_enc = url_encode("max(rate(http_requests_total[2h]))");
    let raw = matrix(
        q,
        &format!("/api/v1/query_range?query={q_enc}&{range}&max_source_resolution=0"),
    );
    let down = matrix(
        q,
        &format!("/api/v1/query_range?query={q_enc}&{range}&max_source_resolution=5m"),
    );
    let peak = |m: &BTreeMap<String, BTreeMap<i64, f64>>| {
        m.values()
            .flat_map(|p| p.values())
            .fold(0f64, |a, b| a.max(*b))
    };
    let (raw_peak, down_peak) = (peak(&raw), peak(&down));
    report.push(format!(
        "peak rate: raw {raw_peak:.3}, downsampled {down_peak:.3}"
    ));
    assert!(
        down_peak <= raw_peak * 1.2,
        "downsampled counter spikes: {down_peak} vs {raw_peak}"
    );
    println!("{}", report.join("\n"));
}
