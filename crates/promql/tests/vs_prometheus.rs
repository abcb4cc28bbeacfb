//! Differential test: every query of `vs-prometheus-queries.txt`, as instant queries at
//! several times and as range queries, through our engine over TSDB blocks and through a
//! real Prometheus 2.42 serving the same blocks. Results must be equal: same result type,
//! label sets, timestamps, values within a relative 1e-9 (NaN equals NaN), series order of
//! range results and of sort()/sort_desc(), and the same error class for failing queries.
//!
//! The data (testkit's dataset) has counters with resets, gauges, classic histograms,
//! sparse series that come and go, several jobs and instances, and a gap. OpenMetrics text
//! cannot carry stale markers, so series ending exercise the lookback instead.

use std::path::Path;

use promql::{BlockStorage, Engine, Value};
use serde_json::Value as Json;
use testkit::prometheus::{create_blocks_from_openmetrics, Prometheus};
use tsdb::labels::Labels;

/// 2h-aligned start of the data, ms.
const START: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A result in a form both sides convert to.
#[derive(Debug)]
enum Res {
    Error { bad_data: bool, msg: String },
    Scalar(i64, f64),
    Str(i64, String),
    Vector(Vec<(Labels, i64, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

fn parse_value(v: &Json) -> f64 {
    match v.as_str().unwrap_or("") {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

fn parse_time(v: &Json) -> i64 {
    (v.as_f64().unwrap_or(f64::NAN) * 1000.0).round() as i64
}

fn parse_metric(v: &Json) -> Labels {
    let mut pairs: Vec<(String, String)> = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    Labels::from_pairs(pairs)
}

fn from_prometheus(body: &str) -> Res {
    let v: Json = serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON {e}: {body}"));
    if v["status"] != "success" {
        return Res::Error {
            bad_data: v["errorType"] == "bad_data",
            msg: v["error"].as_str().unwrap_or("").to_string(),
        };
    }
    let r = &v["data"]["result"];
    match v["data"]["resultType"].as_str().unwrap_or("") {
        "scalar" => Res::Scalar(parse_time(&r[0]), parse_value(&r[1])),
        "string" => Res::Str(parse_time(&r[0]), r[1].as_str().unwrap_or("").to_string()),
        "vector" => Res::Vector(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        parse_metric(&s["metric"]),
                        parse_time(&s["value"][0]),
                        parse_value(&s["value"][1]),
                    )
                })
                .collect(),
        ),
        "matrix" => Res::Matrix(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let points = s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (parse_time(&p[0]), parse_value(&p[1])))
                        .collect();
                    (parse_metric(&s["metric"]), points)
                })
                .collect(),
        ),
        other => panic!("unknown result type {other}: {body}"),
    }
}

fn from_ours(r: promql::Result<promql::QueryResult>) -> Res {
    match r {
        Err(e) => Res::Error {
            bad_data: matches!(e, promql::Error::Parse(_)),
            msg: e.to_string(),
        },
        Ok(r) => match r.value {
            Value::Scalar { t, v } => Res::Scalar(t, v),
            Value::String { t, s } => Res::Str(t, s),
            Value::Vector(v) => Res::Vector(v.into_iter().map(|s| (s.labels, s.t, s.v)).collect()),
            Value::Matrix(m) => Res::Matrix(
                m.into_iter()
                    .map(|s| (s.labels, s.points.into_iter().map(|p| (p.t, p.v)).collect()))
                    .collect(),
            ),
        },
    }
}

fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-12 || diff / a.abs().max(b.abs()) <= 1e-9
}

/// Why `ours` differs from `theirs`, if it does.
fn differ(theirs: &Res, ours: &Res, ordered: bool) -> Option<String> {
    match (theirs, ours) {
        (Res::Error { bad_data: a, .. }, Res::Error { bad_data: b, .. }) => {
            (a != b).then(|| format!("error classes differ: {theirs:?} vs {ours:?}"))
        }
        (Res::Scalar(t1, v1), Res::Scalar(t2, v2)) => {
            (t1 != t2 || !same_value(*v1, *v2)).then(|| format!("scalar {t1} {v1} vs {t2} {v2}"))
        }
        (Res::Str(t1, s1), Res::Str(t2, s2)) => {
            (t1 != t2 || s1 != s2).then(|| format!("string {s1:?} vs {s2:?}"))
        }
        (Res::Vector(a), Res::Vector(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{} samples vs {}: {}",
                    a.len(),
                    b.len(),
                    brief(theirs, ours)
                ));
            }
            for (i, (l, t, v)) in a.iter().enumerate() {
                let other = if ordered {
                    b.get(i).filter(|x| &x.0 == l)
                } else {
                    b.iter().find(|x| &x.0 == l)
                };
                match other {
                    None => {
                        return Some(format!("{l} missing or misplaced: {}", brief(theirs, ours)))
                    }
                    Some((_, t2, v2)) if t2 != t || !same_value(*v, *v2) => {
                        return Some(format!("{l}: {t} {v} vs {t2} {v2}"))
                    }
                    _ => {}
                }
            }
            None
        }
        (Res::Matrix(a), Res::Matrix(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{} series vs {}: {}",
                    a.len(),
                    b.len(),
                    brief(theirs, ours)
                ));
            }
            for ((l1, p1), (l2, p2)) in a.iter().zip(b) {
                if l1 != l2 {
                    return Some(format!("series order/labels: {l1} vs {l2}"));
                }
                if p1.len() != p2.len() {
                    return Some(format!("{l1}: {} points vs {}", p1.len(), p2.len()));
                }
                for (x, y) in p1.iter().zip(p2) {
                    if x.0 != y.0 || !same_value(x.1, y.1) {
                        return Some(format!("{l1}: point {x:?} vs {y:?}"));
                    }
                }
            }
            None
        }
        _ => Some(format!("result kinds differ: {}", brief(theirs, ours))),
    }
}

fn brief(a: &Res, b: &Res) -> String {
    let mut s = format!("prometheus={a:?} ours={b:?}");
    if s.len() > 600 {
        s.truncate(600);
        s.push_str("...");
    }
    s
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn same_answers_as_prometheus() {
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
    copy_dir(&ours_dir, &prom_dir);
    let prom = Prometheus::start(
        dir.path(),
        &prom_dir,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[],
    )
    .unwrap();
    let storage = BlockStorage::open_dir(&ours_dir).unwrap();
    let engine = Engine::default();

    let corpus = load_corpus();
    assert!(
        corpus.len() >= 300,
        "corpus has only {} queries",
        corpus.len()
    );
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
        "{} queries, {compared} executions compared, {} mismatches, {message_diffs} errors \
         with other wording",
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
