//! Differential test: every query of `vs-prometheus-queries.txt`, as instant queries at
//! several times and as range queries, through our engine over TSDB blocks and through a
//! real Prometheus serving the same blocks: 2.42 (Debian's) under `Compat::V2`, and a 3.x
//! built by hand (`PROMETHEUS3_BIN`; skipped with a printed reason without it) under
//! `Compat::V3`. Results must be equal: same result type,
//! label sets, timestamps, values within a relative 1e-9 (NaN equals NaN), series order of
//! range results and of sort()/sort_desc(), and the same error class for failing queries.
//!
//! The data (testkit's dataset) has counters with resets, gauges, classic histograms,
//! sparse series that come and go, several jobs and instances, and a gap. OpenMetrics text
//! cannot carry stale markers, so series ending exercise the lookback instead.

use std::path::Path;

use promql::{BlockStorage, Engine, EngineOptions, Value};
use testkit::promapi::{differ, from_prometheus, secs, url_encode, Res};
use testkit::prometheus::{create_blocks_from_openmetrics, Prometheus};
use tsdb::labels::Labels;

fn pairs(l: Labels) -> Vec<(String, String)> {
    l.into_vec()
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect()
}

/// 2h-aligned start of the data, ms.
const START: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;

fn from_ours(r: promql::Result<promql::QueryResult>) -> Res {
    match r {
        Err(e) => Res::Error {
            bad_data: matches!(e, promql::Error::Parse(_)),
            msg: e.to_string(),
        },
        Ok(r) => match r.value {
            Value::Scalar { t, v } => Res::Scalar(t, v),
            Value::String { t, s } => Res::Str(t, s),
            Value::Vector(v) => {
                Res::Vector(v.into_iter().map(|s| (pairs(s.labels), s.t, s.v)).collect())
            }
            Value::Matrix(m) => Res::Matrix(
                m.into_iter()
                    .map(|s| {
                        (
                            pairs(s.labels),
                            s.points.into_iter().map(|p| (p.t, p.v)).collect(),
                        )
                    })
                    .collect(),
            ),
        },
    }
}

fn load_corpus() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vs-prometheus-queries.txt"),
    )
    .unwrap();
    let mid = secs(START + 2 * HOUR + 7_000);
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.replace("{mid}", &mid))
        .collect()
}

#[test]
fn same_answers_as_prometheus() {
    differential(None, promql::Dialect::V2);
}

#[test]
fn same_answers_as_prometheus_3() {
    let Some(bin) = std::env::var_os("PROMETHEUS3_BIN") else {
        println!("skipped: set PROMETHEUS3_BIN to a Prometheus 3.x binary to compare under v3");
        return;
    };
    // As Prometheus's own harness runs 3.x: experimental functions on.
    differential(
        Some(std::path::PathBuf::from(bin)),
        promql::Dialect {
            compat: promql::Compat::V3,
            experimental_functions: true,
            binop_fill_modifiers: false,
        },
    );
}

fn differential(prometheus3: Option<std::path::PathBuf>, dialect: promql::Dialect) {
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
    let ours_dir = dir.path().join("ours");
    let blocks = create_blocks_from_openmetrics(&om, &ours_dir).unwrap();
    assert!(!blocks.is_empty());
    // Prometheus may compact its copy; ours stays as written.
    let prom_dir = dir.path().join("prometheus");
    testkit::copy_dir(&ours_dir, &prom_dir, &[]);
    let config = |_| "global:\n  scrape_interval: 1h\n".into();
    let prom = match &prometheus3 {
        None => Prometheus::start(dir.path(), &prom_dir, config, &[]),
        Some(bin) => Prometheus::start_binary(
            bin,
            testkit::free_port(),
            dir.path(),
            &prom_dir,
            config,
            &["--enable-feature=promql-experimental-functions"],
        ),
    }
    .unwrap();
    let storage = BlockStorage::open_dir(&ours_dir).unwrap();
    let engine = Engine::new(EngineOptions {
        dialect,
        ..Default::default()
    });

    let mut corpus = load_corpus();
    // `VS_PROMETHEUS_ONLY=<text>`: only the queries containing it (for debugging).
    if let Ok(only) = std::env::var("VS_PROMETHEUS_ONLY") {
        corpus.retain(|q| q.contains(&only));
        println!("only {} queries containing {only:?}", corpus.len());
    } else {
        assert!(
            corpus.len() >= 300,
            "corpus has only {} queries",
            corpus.len()
        );
    }
    let instant_times = [
        START + HOUR,
        START + 2 * HOUR + 7_500,
        START + 4 * HOUR - 1,
        START + 4 * HOUR + 180_000,
    ];
    let ranges = [
        (START + HOUR, START + 3 * HOUR, 60_000),
        (START + 30 * 60_000 + 1_000, START + 90 * 60_000, 47_000),
    ];
    let (mut compared, mut mismatches, mut message_diffs) = (0, Vec::new(), 0);
    for q in &corpus {
        let ordered = q.starts_with("sort(") || q.starts_with("sort_desc(");
        for &t in &instant_times {
            let path = format!("/api/v1/query?query={}&time={}", url_encode(q), secs(t));
            let theirs = from_prometheus(&prom.get_any(&path));
            let ours = from_ours(engine.instant_query(&storage, q, t));
            compared += 1;
            if let Some(d) = differ(&theirs, &ours, ordered) {
                mismatches.push(format!("instant {q} @ {}: {d}", secs(t)));
            } else if let (Res::Error { msg: a, bad_data }, Res::Error { msg: b, .. }) =
                (&theirs, &ours)
            {
                if a != b {
                    message_diffs += 1;
                    if !bad_data {
                        println!(
                            "execution error wording: {q}\n  prometheus: {a}\n  ours:       {b}"
                        );
                    }
                }
            }
        }
        for &(start, end, step) in &ranges {
            let path = format!(
                "/api/v1/query_range?query={}&start={}&end={}&step={}",
                url_encode(q),
                secs(start),
                secs(end),
                secs(step)
            );
            let theirs = from_prometheus(&prom.get_any(&path));
            let ours = from_ours(engine.range_query(&storage, q, start, end, step));
            compared += 1;
            if let Some(d) = differ(&theirs, &ours, true) {
                mismatches.push(format!(
                    "range {q} [{}..{} / {}]: {d}",
                    secs(start),
                    secs(end),
                    step
                ));
            }
        }
    }
    println!(
        "{dialect:?}: {} queries, {compared} executions compared, {} mismatches, \
         {message_diffs} errors with other wording",
        corpus.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
