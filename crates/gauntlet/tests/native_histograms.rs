//! Native histograms end to end: a scrape target of the test's own exposes them in the
//! protobuf exposition format, a real Prometheus 2.42 (`--enable-feature=native-histograms`)
//! scrapes it every second, `gauntlet sidecar` reads Prometheus and `gauntlet query`
//! (`--query.promql-compat=v2`) answers over the sidecar. Instant and range queries on the
//! histograms must answer as Prometheus itself does: same series, floats and histogram
//! objects (count, sum, every bucket) within a relative 1e-9.
//!
//! The data: `test_latency_seconds{path="/a"}` (schema 3, negative, zero and positive
//! buckets; a new bucket appears half way) and `{path="/b"}` (schema 2, counts start over
//! at scrape `RESET_AT`: a counter reset), plus the float counter `test_requests_total`.
//! Every value is a function of the scrape's number, so Prometheus's answers tell which
//! scrape a sample came from.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use testkit::nhexpo::{self, MetricFamily, Target};
use testkit::promapi::{parse_metric, parse_time, parse_value, same_value, secs, url_encode};
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, wait_until, Process};

/// Scrapes in Prometheus before the comparison starts.
const SCRAPES: u64 = 18;
/// The scrape at which `{path="/b"}` starts over.
const RESET_AT: u64 = 9;
/// The scrape from which `{path="/a"}` has one more bucket.
const NEW_BUCKET_AT: u64 = 6;

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

/// What the target exposes at its `k`-th scrape (from 1).
fn page(k: u64) -> Vec<MetricFamily> {
    // `/b` counts start over at RESET_AT.
    let n = if k < RESET_AT { k } else { k - RESET_AT + 1 };
    let mut positive_a = vec![
        (-12, k),
        (-11, 2 * k),
        (-10, 3 * k),
        (-8, k),
        (-3, 4 * k),
        (2, 2 * k),
    ];
    if k >= NEW_BUCKET_AT {
        positive_a.push((9, k - NEW_BUCKET_AT + 1));
    }
    let a = nhexpo::native_histogram(3, 0.001, k, 2.375 * k as f64, &[(-4, k)], &positive_a);
    let b = nhexpo::native_histogram(
        2,
        0.001,
        0,
        1.75 * n as f64,
        &[],
        &[(0, 2 * n), (1, n), (4, 3 * n)],
    );
    let with = |path: &str, h: Option<nhexpo::Histogram>, c: Option<f64>| {
        let mut m = nhexpo::metric(&[("path", path)]);
        m.histogram = h;
        m.counter = c.map(|v| nhexpo::Counter { value: Some(v) });
        m
    };
    vec![
        nhexpo::family(
            "test_latency_seconds",
            "Request latency.",
            nhexpo::HISTOGRAM,
            vec![with("/a", Some(a), None), with("/b", Some(b), None)],
        ),
        nhexpo::family(
            "test_requests_total",
            "Requests served.",
            nhexpo::COUNTER,
            vec![
                with("/a", None, Some(10.0 * k as f64)),
                with("/b", None, Some(5.0 * n as f64)),
            ],
        ),
    ]
}

/// The queries compared; the last ones return range vectors, asked as instant queries only.
const QUERIES: &[&str] = &[
    "test_latency_seconds",
    "rate(test_latency_seconds[5s])",
    "histogram_quantile(0.9, rate(test_latency_seconds[5s]))",
    "histogram_count(test_latency_seconds)",
    "histogram_sum(test_latency_seconds)",
    "histogram_fraction(0, 0.5, test_latency_seconds)",
    // Bounds inside buckets (0.5 is a bucket boundary of both schemas, these are not).
    "histogram_fraction(-0.7, 1.1, test_latency_seconds)",
    "sum(test_latency_seconds)",
    "sum(rate(test_latency_seconds[5s]))",
    "count(test_latency_seconds)",
    "test_requests_total",
    "increase(test_latency_seconds[5s])",
    "histogram_quantile(0.5, test_latency_seconds)",
    "histogram_quantile(0.9, sum(rate(test_latency_seconds[5s])))",
    "histogram_count(rate(test_latency_seconds[5s]))",
    "rate(test_requests_total[5s])",
];
const RANGE_VECTOR_QUERIES: &[&str] = &["test_latency_seconds[5s]"];

/// A histogram as the API writes it.
#[derive(Debug)]
struct Hist {
    count: f64,
    sum: f64,
    /// (boundary rule, lower, upper, count)
    buckets: Vec<(i64, f64, f64, f64)>,
}

#[derive(Debug)]
enum Val {
    F(f64),
    H(Hist),
}

/// A series of an answer: labels, points in time order.
type Series = (Vec<(String, String)>, Vec<(i64, Val)>);

#[derive(Debug)]
enum Answer {
    Error(String, String),
    Scalar(i64, f64),
    /// Instant vectors and matrices alike: the result type and the series.
    Series(&'static str, Vec<Series>),
}

fn parse_hist(v: &Json) -> Hist {
    let buckets = v["buckets"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| {
                    (
                        b[0].as_i64().unwrap_or(-1),
                        parse_value(&b[1]),
                        parse_value(&b[2]),
                        parse_value(&b[3]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Hist {
        count: parse_value(&v["count"]),
        sum: parse_value(&v["sum"]),
        buckets,
    }
}

fn point(p: &Json, hist: bool) -> (i64, Val) {
    let t = parse_time(&p[0]);
    if hist {
        (t, Val::H(parse_hist(&p[1])))
    } else {
        (t, Val::F(parse_value(&p[1])))
    }
}

fn parse_answer(body: &str) -> Answer {
    let v: Json = serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON {e}: {body}"));
    if v["status"] != "success" {
        return Answer::Error(
            v["errorType"].as_str().unwrap_or("").into(),
            v["error"].as_str().unwrap_or("").into(),
        );
    }
    let r = &v["data"]["result"];
    let kind = match v["data"]["resultType"].as_str().unwrap_or("") {
        "scalar" => return Answer::Scalar(parse_time(&r[0]), parse_value(&r[1])),
        "vector" => "vector",
        "matrix" => "matrix",
        other => panic!("unexpected result type {other}: {body}"),
    };
    let series = r
        .as_array()
        .unwrap_or_else(|| panic!("no result list: {body}"))
        .iter()
        .map(|s| {
            let mut points = Vec::new();
            for (key, hist) in [
                ("value", false),
                ("histogram", true),
                ("values", false),
                ("histograms", true),
            ] {
                match &s[key] {
                    Json::Null => {}
                    p if key.ends_with('s') => {
                        for p in p.as_array().into_iter().flatten() {
                            points.push(point(p, hist));
                        }
                    }
                    p => points.push(point(p, hist)),
                }
            }
            points.sort_by_key(|p| p.0);
            (parse_metric(&s["metric"]), points)
        })
        .collect();
    Answer::Series(kind, series)
}

fn show_val(v: &Val) -> String {
    match v {
        Val::F(f) => format!("{f}"),
        Val::H(h) => format!("{h:?}"),
    }
}

/// The first way `ours` differs from `theirs`, if any.
fn first_difference(theirs: &Answer, ours: &Answer) -> Option<String> {
    match (theirs, ours) {
        (Answer::Error(a, m1), Answer::Error(b, m2)) => {
            (a != b).then(|| format!("error types differ: prometheus {a}: {m1}; ours {b}: {m2}"))
        }
        (Answer::Scalar(t1, v1), Answer::Scalar(t2, v2)) => {
            (t1 != t2 || !same_value(*v1, *v2)).then(|| format!("scalar {t1} {v1} vs {t2} {v2}"))
        }
        (Answer::Series(k1, a), Answer::Series(k2, b)) => {
            if k1 != k2 {
                return Some(format!("result type {k1} vs {k2}"));
            }
            let labels = |s: &[Series]| {
                let mut l: Vec<String> = s.iter().map(|x| format!("{:?}", x.0)).collect();
                l.sort();
                l
            };
            if labels(a) != labels(b) {
                return Some(format!(
                    "series differ: prometheus {:?}, ours {:?}",
                    labels(a),
                    labels(b)
                ));
            }
            for (l, p1) in a {
                let (_, p2) = b.iter().find(|x| &x.0 == l).expect("same label sets");
                for (i, (x, y)) in p1.iter().zip(p2).enumerate() {
                    if let Some(d) = point_difference(x, y) {
                        return Some(format!("{l:?} point {i}: {d}"));
                    }
                }
                if p1.len() != p2.len() {
                    let (short, long) = if p1.len() < p2.len() {
                        (p1, p2)
                    } else {
                        (p2, p1)
                    };
                    return Some(format!(
                        "{l:?}: {} points vs {} (first extra at t={})",
                        p1.len(),
                        p2.len(),
                        long[short.len()].0
                    ));
                }
            }
            None
        }
        _ => Some(format!(
            "answers differ in kind: prometheus {theirs:?}, ours {ours:?}"
        )),
    }
}

fn point_difference(x: &(i64, Val), y: &(i64, Val)) -> Option<String> {
    let both = || {
        format!(
            "prometheus t={} {}, ours t={} {}",
            x.0,
            show_val(&x.1),
            y.0,
            show_val(&y.1)
        )
    };
    if x.0 != y.0 {
        return Some(format!("timestamps differ: {}", both()));
    }
    match (&x.1, &y.1) {
        (Val::F(a), Val::F(b)) => (!same_value(*a, *b)).then(|| format!("value: {}", both())),
        (Val::H(a), Val::H(b)) => {
            if !same_value(a.count, b.count) {
                return Some(format!("count {} vs {}: {}", a.count, b.count, both()));
            }
            if !same_value(a.sum, b.sum) {
                return Some(format!("sum {} vs {}: {}", a.sum, b.sum, both()));
            }
            for (i, (p, q)) in a.buckets.iter().zip(&b.buckets).enumerate() {
                let same = p.0 == q.0
                    && same_value(p.1, q.1)
                    && same_value(p.2, q.2)
                    && same_value(p.3, q.3);
                if !same {
                    return Some(format!("bucket {i} {p:?} vs {q:?}: {}", both()));
                }
            }
            (a.buckets.len() != b.buckets.len()).then(|| {
                format!(
                    "{} buckets vs {}: {}",
                    a.buckets.len(),
                    b.buckets.len(),
                    both()
                )
            })
        }
        _ => Some(format!("float vs histogram: {}", both())),
    }
}

/// Counts the points and histogram points in an answer (to show the comparison is not
/// empty).
fn points(a: &Answer) -> (usize, usize) {
    match a {
        Answer::Series(_, s) => {
            let all = s.iter().flat_map(|x| &x.1);
            (
                all.clone().count(),
                all.filter(|p| matches!(p.1, Val::H(_))).count(),
            )
        }
        Answer::Scalar(..) => (1, 0),
        Answer::Error(..) => (0, 0),
    }
}

#[test]
fn native_histograms_answer_like_prometheus() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let target = Target::serve(page);
    let prom = Prometheus::start(
        dir.path(),
        &dir.path().join("data"),
        |_| {
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    replica: a\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                target.port
            )
        },
        &["--enable-feature=native-histograms"],
    )
    .unwrap();

    // Sidecar and querier start while Prometheus scrapes.
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let _sidecar = gauntlet(&[
        "sidecar".into(),
        format!("--prometheus.url={}", prom.url()),
        "--prometheus.get_config_interval=1s".into(),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        "--query.replica-label=replica".into(),
        "--query.promql-compat=v2".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);

    // Prometheus has ingested scrape SCRAPES once `/a`'s request counter reads 10 * SCRAPES.
    let counter_a = url_encode("test_requests_total{path=\"/a\"}");
    let latest = || -> f64 {
        prom.get(&format!("/api/v1/query?query={counter_a}"))
            .ok()
            .and_then(|b| serde_json::from_str::<Json>(&b).ok())
            .map_or(0.0, |v| parse_value(&v["data"]["result"][0]["value"][1]))
    };
    wait_until(
        &format!("{SCRAPES} scrapes in Prometheus"),
        Duration::from_secs(45),
        || latest() >= 10.0 * SCRAPES as f64,
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#} (target answered {} scrapes)\n{}",
            target.scrapes(),
            prom.log_tail()
        )
    });
    // The scrape times, from the counter: sample k (from 1) has value 10 * k.
    let body = prom
        .get(&format!("/api/v1/query?query={counter_a}%5B1m%5D"))
        .unwrap();
    let v: Json = serde_json::from_str(&body).unwrap();
    let mut at: BTreeMap<u64, i64> = BTreeMap::new();
    for p in v["data"]["result"][0]["values"].as_array().unwrap() {
        let k = (parse_value(&p[1]) / 10.0).round() as u64;
        at.insert(k, parse_time(&p[0]));
    }
    let first = at[&1];
    let last = at[&SCRAPES];
    let reset = at[&RESET_AT];
    println!(
        "{} scrapes in Prometheus after {:?}; scrape 1 at {first}, reset at {reset}, scrape {SCRAPES} at {last}",
        at.len(),
        began.elapsed()
    );

    // The histograms reach Prometheus as native histograms.
    let raw = prom
        .get(&format!(
            "/api/v1/query?query=test_latency_seconds&time={}",
            secs(last)
        ))
        .unwrap();
    assert!(raw.contains("\"histogram\":"), "no native histogram: {raw}");

    wait_until("sidecar ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let probe = format!(
        "/api/v1/query?query=test_requests_total&time={}",
        secs(last)
    );
    wait_until(
        "querier answers over the sidecar",
        Duration::from_secs(30),
        || {
            http_get(q_http, &probe)
                .is_ok_and(|(c, b)| c == 200 && b.contains("\"/a\"") && b.contains("\"/b\""))
        },
    )
    .unwrap();

    // Evaluation times: early, on a sample, across the reset and new bucket, at the end.
    let times = [
        first + 2_500,
        at[&5],
        at[&NEW_BUCKET_AT] + 300,
        reset - 200,
        reset + 700,
        reset + 2_900,
        last - 1_300,
        last,
    ];
    let range = format!("start={}&end={}&step=1", secs(first + 1_000), secs(last));
    let mut paths: Vec<(&str, String)> = Vec::new();
    for q in QUERIES {
        let e = url_encode(q);
        for t in times {
            paths.push((q, format!("/api/v1/query?query={e}&time={}", secs(t))));
        }
        paths.push((q, format!("/api/v1/query_range?query={e}&{range}")));
    }
    for q in RANGE_VECTOR_QUERIES {
        let e = url_encode(q);
        for t in times {
            paths.push((q, format!("/api/v1/query?query={e}&time={}", secs(t))));
        }
    }

    let mut first_mismatch: BTreeMap<&str, String> = BTreeMap::new();
    let mut counted: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (q, path) in &paths {
        let theirs_body = prom.get_any(path);
        let (_, ours_body) = http_get(q_http, path).unwrap();
        let (theirs, ours) = (parse_answer(&theirs_body), parse_answer(&ours_body));
        let (n, h) = points(&theirs);
        let c = counted.entry(q).or_default();
        (c.0, c.1) = (c.0 + n, c.1 + h);
        if let Some(d) = first_difference(&theirs, &ours) {
            first_mismatch
                .entry(q)
                .or_insert_with(|| format!("{path}\n      {d}"));
        }
    }

    println!(
        "\n{} API calls compared ({} queries):",
        paths.len(),
        QUERIES.len() + RANGE_VECTOR_QUERIES.len()
    );
    for q in QUERIES.iter().chain(RANGE_VECTOR_QUERIES) {
        let (n, h) = counted[q];
        match first_mismatch.get(q) {
            None => println!("  MATCH     {q}  ({n} points, {h} histograms)"),
            Some(d) => println!("  MISMATCH  {q}  ({n} points, {h} histograms)\n      {d}"),
        }
    }
    println!("took {:?}", began.elapsed());
    assert!(
        first_mismatch.is_empty(),
        "{} of {} queries answer unlike Prometheus 2.42 (see the list above)",
        first_mismatch.len(),
        QUERIES.len() + RANGE_VECTOR_QUERIES.len()
    );
}
