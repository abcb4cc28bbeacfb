//! The PromQL differential corpus through the real binaries: blocks in a bucket
//! (filesystem, then Garage), `gauntlet store` over it, `gauntlet query` in front, and
//! Prometheus serving the same blocks: 2.42 with `--query.promql-compat=v2`, and a 3.x
//! built by hand (`PROMETHEUS3_BIN`, skipped with a printed reason without it) with the
//! default `v3`. Instant and range queries (with their warnings and infos), series, labels
//! and label values must answer alike.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::promapi::{annotations_differ, differ, from_prometheus, secs, url_encode};
use testkit::prometheus::{create_blocks_from_openmetrics, Prometheus};
use testkit::{free_port, http_get, wait_until, Process};

const START: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

fn corpus() -> Vec<String> {
    testkit::promapi::read_path_corpus(&secs(START + 2 * HOUR + 7_000))
}

/// Every API path compared: the corpus as instant and range queries, plus metadata calls.
fn paths() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let times = [
        START + HOUR,
        START + 2 * HOUR + 7_500,
        START + 4 * HOUR + 180_000,
    ];
    for q in corpus() {
        let ordered = q.starts_with("sort(") || q.starts_with("sort_desc(");
        let e = url_encode(&q);
        for t in times {
            out.push((format!("/api/v1/query?query={e}&time={}", secs(t)), ordered));
        }
        out.push((
            format!(
                "/api/v1/query_range?query={e}&start={}&end={}&step=60",
                secs(START + HOUR),
                secs(START + 3 * HOUR)
            ),
            true,
        ));
    }
    let range = format!("start={}&end={}", secs(START), secs(START + 4 * HOUR));
    out.extend(testkit::promapi::metadata_paths(&range));
    out
}

/// Compares the querier on `q_http` with Prometheus's answers.
fn compare(q_http: u16, expected: &HashMap<String, String>, paths: &[(String, bool)]) {
    let mut mismatches = Vec::new();
    let mut annotated = 0;
    for (path, ordered) in paths {
        let (_, body) = http_get(q_http, path).unwrap();
        let theirs = &expected[path];
        annotated += usize::from(theirs.contains("\"warnings\":") || theirs.contains("\"infos\":"));
        let same = if path.starts_with("/api/v1/query") {
            differ(&from_prometheus(theirs), &from_prometheus(&body), *ordered)
                .or_else(|| annotations_differ(theirs, &body))
        } else {
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(theirs).unwrap(),
                serde_json::from_str(&body).unwrap(),
            );
            (a["data"] != b["data"]).then(|| format!("{} vs {}", a["data"], b["data"]))
        };
        if let Some(d) = same {
            mismatches.push(format!("{path}: {d}"));
        }
    }
    println!(
        "{} API calls compared ({annotated} answered with warnings or infos), {} mismatches",
        paths.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Uploads the blocks, runs store and query (answering as `compat`) over `objstore`,
/// compares.
#[allow(clippy::too_many_arguments)]
fn run_over(
    dir: &Path,
    name: &str,
    compat: &str,
    objstore: &str,
    blocks: &Path,
    expected: &HashMap<String, String>,
    paths: &[(String, bool)],
) {
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", objstore])
        .arg(format!("--path={}", blocks.display()))
        // Blocks need external labels; as a replica label, deduplication removes it again.
        .arg("--label=replica=\"a\"")
        .status()
        .unwrap();
    assert!(st.success(), "upload to {name}");
    let (s_http, s_grpc) = (free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore.into(),
        format!("--data-dir={}", dir.join(format!("store-{name}")).display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    wait_until("store ready", Duration::from_secs(60), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let q_http = free_port();
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        "--query.replica-label=replica".into(),
        format!("--query.promql-compat={compat}"),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    wait_until("query sees the store", Duration::from_secs(60), || {
        http_get(q_http, "/api/v1/label/job/values")
            .is_ok_and(|(c, b)| c == 200 && b.contains("db"))
    })
    .unwrap();
    println!("{name}:");
    compare(q_http, expected, paths);
}

#[test]
fn store_and_query_answer_like_prometheus() {
    differential(None);
}

#[test]
fn store_and_query_answer_like_prometheus_3() {
    let Some(bin) = std::env::var_os("PROMETHEUS3_BIN") else {
        println!("skipped: set PROMETHEUS3_BIN to a Prometheus 3.x binary to compare under v3");
        return;
    };
    differential(Some(std::path::PathBuf::from(bin)));
}

/// Against Debian's Prometheus 2.42 (`v2`), or the given 3.x binary (`v3`, filesystem only).
fn differential(prometheus3: Option<std::path::PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let data = testkit::dataset::Dataset {
        start_ms: START,
        end_ms: START + 4 * HOUR,
        interval_ms: 15_000,
        instances: 3,
        seed: 42,
        gaps: vec![(START + 100 * 60_000, START + 110 * 60_000)],
    };
    let om = dir.path().join("data.om");
    std::fs::write(&om, data.openmetrics()).unwrap();
    let blocks = dir.path().join("blocks");
    assert!(!create_blocks_from_openmetrics(&om, &blocks)
        .unwrap()
        .is_empty());
    let prom_dir = dir.path().join("prometheus");
    testkit::copy_dir(&blocks, &prom_dir, &[]);
    let config = |_| "global:\n  scrape_interval: 1h\n".into();
    let prom = match &prometheus3 {
        None => Prometheus::start(dir.path(), &prom_dir, config, &[]),
        Some(bin) => Prometheus::start_binary(bin, free_port(), dir.path(), &prom_dir, config, &[]),
    }
    .unwrap();
    let compat = if prometheus3.is_some() { "v3" } else { "v2" };
    let paths = paths();
    assert!(paths.len() > 1200);
    let expected: HashMap<String, String> = paths
        .iter()
        .map(|(p, _)| (p.clone(), prom.get_any(p)))
        .collect();

    let fs = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    run_over(
        dir.path(),
        "filesystem",
        compat,
        &fs,
        &blocks,
        &expected,
        &paths,
    );
    if prometheus3.is_some() {
        return;
    }

    let garage = testkit::garage::Garage::start("differential").unwrap();
    let s3 = format!("--objstore.config={}", garage.objstore_yaml());
    run_over(
        dir.path(),
        "garage",
        compat,
        &s3,
        &blocks,
        &expected,
        &paths,
    );
}
