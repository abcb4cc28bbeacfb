//! Native histograms end to end: a scrape target of the test's own exposes them in the
//! protobuf exposition format and a real Prometheus scrapes it every second. Our querier
//! then answers the same queries twice, as Prometheus itself does (same series, floats and
//! histogram objects: count, sum, every bucket, within a relative 1e-9):
//!
//! - over `gauntlet sidecar` beside the live Prometheus;
//! - over `gauntlet store`, reading a block of the same samples from a filesystem bucket:
//!   Prometheus's admin API snapshots its head into a block (`--web.enable-admin-api`,
//!   `POST /api/v1/admin/tsdb/snapshot`) and `gauntlet tools bucket upload-blocks` puts it
//!   in the bucket with the `thanos` section (external label `replica="a"`, which the
//!   querier deduplicates away again). The store sends the block's histogram chunks as
//!   they are (`Chunk.Encoding` HISTOGRAM / FLOAT_HISTOGRAM) and the querier decodes them.
//!
//! Two Prometheus versions:
//!
//! - `native_histograms_answer_like_prometheus`: Debian's Prometheus 2.42
//!   (`--enable-feature=native-histograms`), our querier with `--query.promql-compat=v2`,
//!   17 hand-picked queries.
//! - `native_histograms_answer_like_prometheus_3`: a Prometheus 3.x built by hand
//!   (`PROMETHEUS3_BIN`; skipped with a printed reason without it) with
//!   `scrape_native_histograms: true` and `convert_classic_histograms_to_nhcb: true`, our
//!   querier with its default `v3`, and a generated corpus of histogram queries (selectors,
//!   range functions over several windows, `histogram_*`, aggregations, arithmetic,
//!   `offset`, `*_over_time`, subqueries) over exponential histograms, custom-bucket
//!   histograms and float counters, with stale markers.
//!
//! The data: `test_latency_seconds{path="/a"}` (schema 3, negative, zero and positive
//! buckets; a new bucket appears half way) and `{path="/b"}` (schema 2, counts start over
//! at scrape `RESET_AT`: a counter reset), plus the float counter `test_requests_total`.
//! The 3.x run adds `{path="/c"}` of both (schema 1, a wider zero bucket), gone from the
//! target from scrape `GONE_AT` on, so Prometheus writes stale markers; the classic
//! histogram `test_classic_seconds` (`/a` and `/b`, `/b` resetting too), which 3.x stores as
//! a native histogram with custom buckets; and `test_kahan_seconds`, three series whose
//! sums cancel unless added with Kahan summation as 3.x does. Every value is a function of
//! the scrape's number, so Prometheus's answers tell which scrape a sample came from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use testkit::nhexpo::{self, MetricFamily, Target};
use testkit::promapi::{parse_metric, parse_time, parse_value, same_value, secs, url_encode};
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, http_request, wait_until, Process};

/// Scrapes in Prometheus before the comparison starts.
const SCRAPES: u64 = 18;
/// The scrape at which `{path="/b"}` starts over.
const RESET_AT: u64 = 9;
/// The scrape from which `{path="/a"}` has one more bucket.
const NEW_BUCKET_AT: u64 = 6;
/// The scrape from which the 3.x run's `{path="/c"}` series are gone from the target.
const GONE_AT: u64 = 12;

/// Starts `gauntlet` with its stderr in `<dir>/<name>.log`; killed on drop.
fn gauntlet(dir: &Path, name: &str, args: &[String]) -> (Process, PathBuf) {
    testkit::spawn_logged(env!("CARGO_BIN_EXE_gauntlet"), dir, name, args)
}

/// A series of the target: a histogram or a counter value.
fn series(path: &str, h: Option<nhexpo::Histogram>, c: Option<f64>) -> nhexpo::Metric {
    let mut m = nhexpo::metric(&[("path", path)]);
    m.histogram = h;
    m.counter = c.map(|v| nhexpo::Counter { value: Some(v) });
    m
}

/// `/b`'s count base at scrape `k`: it starts over at RESET_AT.
fn after_reset(k: u64) -> u64 {
    if k < RESET_AT {
        k
    } else {
        k - RESET_AT + 1
    }
}

/// What the target exposes at its `k`-th scrape (from 1).
fn page(k: u64) -> Vec<MetricFamily> {
    let n = after_reset(k);
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
    vec![
        nhexpo::family(
            "test_latency_seconds",
            "Request latency.",
            nhexpo::HISTOGRAM,
            vec![series("/a", Some(a), None), series("/b", Some(b), None)],
        ),
        nhexpo::family(
            "test_requests_total",
            "Requests served.",
            nhexpo::COUNTER,
            vec![
                series("/a", None, Some(10.0 * k as f64)),
                series("/b", None, Some(5.0 * n as f64)),
            ],
        ),
    ]
}

/// The 3.x run's page: [`page`], `{path="/c"}` until GONE_AT, and a classic histogram.
fn page3(k: u64) -> Vec<MetricFamily> {
    let mut families = page(k);
    if k < GONE_AT {
        let c = nhexpo::native_histogram(
            1,
            0.01,
            k,
            1.5 * k as f64,
            &[(-1, k)],
            &[(-9, k), (0, k), (1, 2 * k), (3, k)],
        );
        families[0].metric.push(series("/c", Some(c), None));
        families[1]
            .metric
            .push(series("/c", None, Some(3.0 * k as f64)));
    }
    let classic = |k: u64| {
        nhexpo::classic_histogram(
            8 * k,
            3.1 * k as f64,
            &[
                (0.1, k),
                (0.25, 3 * k),
                (0.5, 4 * k),
                (1.0, 6 * k),
                (2.5, 7 * k),
            ],
        )
    };
    families.push(nhexpo::family(
        "test_classic_seconds",
        "Request latency, classic buckets.",
        nhexpo::HISTOGRAM,
        vec![
            series("/a", Some(classic(k)), None),
            series("/b", Some(classic(after_reset(k))), None),
        ],
    ));
    // Sums that cancel: at every scrape the three series hold 1e20, a small number and
    // -1e20 in turn, so plain summation (across series, or over 3s of one series) loses
    // the small one and Kahan summation keeps it.
    let kahan = (0..3u64)
        .map(|part| {
            let sum = match (k + part) % 3 {
                0 => 1e20,
                1 => 0.5 * k as f64,
                _ => -1e20,
            };
            let mut m = nhexpo::metric(&[("part", &part.to_string())]);
            m.histogram = Some(nhexpo::native_histogram(0, 0.0, 0, sum, &[], &[(0, k)]));
            m
        })
        .collect();
    families.push(nhexpo::family(
        "test_kahan_seconds",
        "Sums that need Kahan summation.",
        nhexpo::HISTOGRAM,
        kahan,
    ));
    families
}

/// The 2.42 run's queries; the last ones return range vectors, asked as instant queries
/// only.
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

/// A query of the corpus and whether it is asked as an instant query only (it returns a
/// range vector).
struct Query {
    text: String,
    instant_only: bool,
}

/// The 3.x run's corpus: templates × functions × windows over the exponential histograms
/// (`H`), the custom-bucket ones (`C`) and the float counters (`F`).
fn corpus3() -> Vec<Query> {
    const H: &str = "test_latency_seconds";
    const C: &str = "test_classic_seconds";
    const F: &str = "test_requests_total";
    let mut out: Vec<Query> = Vec::new();
    let mut add = |text: String| {
        out.push(Query {
            text,
            instant_only: false,
        })
    };
    // Selectors and matchers; `/c` goes stale half way.
    for s in [
        H,
        "test_latency_seconds{path=\"/a\"}",
        "test_latency_seconds{path=~\"/[bc]\"}",
        "test_latency_seconds{path!=\"/b\"}",
        C,
        F,
        "{__name__=~\"test_.*\",path=\"/c\"}",
        "test_latency_seconds offset 3s",
    ] {
        add(s.to_string());
    }
    // Counter-like range functions.
    for f in ["rate", "increase", "delta", "irate", "idelta"] {
        for w in ["3s", "5s", "10s"] {
            for m in [H, C, F] {
                add(format!("{f}({m}[{w}])"));
            }
        }
    }
    // histogram_* over raw histograms and rates.
    let args = [
        H.to_string(),
        format!("rate({H}[5s])"),
        C.to_string(),
        format!("rate({C}[5s])"),
    ];
    for a in &args {
        for f in [
            "histogram_count",
            "histogram_sum",
            "histogram_avg",
            "histogram_stddev",
            "histogram_stdvar",
        ] {
            add(format!("{f}({a})"));
        }
        for phi in ["0.1", "0.5", "0.9", "0.99"] {
            add(format!("histogram_quantile({phi}, {a})"));
        }
        for (lo, hi) in [("0", "0.5"), ("-0.7", "1.1")] {
            add(format!("histogram_fraction({lo}, {hi}, {a})"));
        }
    }
    // Aggregations.
    for agg in [
        "sum",
        "avg",
        "count",
        "group",
        "sum by (path)",
        "sum without (path)",
        "avg by (job)",
    ] {
        for a in [H.to_string(), format!("rate({H}[5s])"), C.to_string()] {
            add(format!("{agg} ({a})"));
        }
    }
    for q in [
        "histogram_quantile(0.9, sum(rate(test_latency_seconds[5s])))",
        "histogram_quantile(0.5, sum by (path) (rate(test_classic_seconds[10s])))",
        "histogram_count(sum(test_latency_seconds))",
        "histogram_fraction(0, 1, sum(rate(test_classic_seconds[5s])))",
        "sum(rate(test_requests_total[5s]))",
        // Arithmetic with numbers and between histograms.
        "test_latency_seconds * 2",
        "2 * test_latency_seconds",
        "test_latency_seconds / 4",
        "-test_latency_seconds",
        "rate(test_latency_seconds[5s]) * 60",
        "test_classic_seconds * 3",
        "test_latency_seconds - test_latency_seconds offset 2s",
        "test_classic_seconds - test_classic_seconds offset 3s",
        "test_latency_seconds + test_latency_seconds",
        "rate(test_latency_seconds[10s]) - rate(test_latency_seconds[5s])",
        "test_requests_total - test_requests_total offset 2s",
        "test_latency_seconds + on(path) test_classic_seconds",
        "test_latency_seconds / test_latency_seconds",
        "test_latency_seconds == test_latency_seconds",
    ] {
        add(q.to_string());
    }
    // *_over_time and friends.
    for f in [
        "sum_over_time",
        "avg_over_time",
        "last_over_time",
        "count_over_time",
        "present_over_time",
        "resets",
        "changes",
    ] {
        for w in ["5s", "10s"] {
            for m in [H, C] {
                add(format!("{f}({m}[{w}])"));
            }
        }
    }
    for q in [
        "max_over_time(test_latency_seconds[5s])",
        "resets(test_requests_total[10s])",
        "last_over_time(test_latency_seconds{path=\"/c\"}[3s])",
        // Subqueries.
        "sum_over_time(rate(test_latency_seconds[5s])[10s:2s])",
        "last_over_time(test_latency_seconds[10s:3s])",
        "max_over_time(histogram_count(rate(test_classic_seconds[5s]))[10s:2s])",
        "rate(test_latency_seconds[10s:2s])",
        // Kahan summation of histograms (3.x sums and averages them compensated).
        "test_kahan_seconds",
        "sum(test_kahan_seconds)",
        "avg(test_kahan_seconds)",
        "histogram_sum(sum(test_kahan_seconds))",
        "sum_over_time(test_kahan_seconds[3s])",
        "avg_over_time(test_kahan_seconds[3s])",
    ] {
        add(q.to_string());
    }
    for q in [
        "test_latency_seconds[5s]",
        "test_classic_seconds[5s]",
        "test_requests_total[10s]",
        "rate(test_latency_seconds[5s])[10s:2s]",
        "histogram_count(rate(test_classic_seconds[5s]))[10s:2s]",
    ] {
        out.push(Query {
            text: q.to_string(),
            instant_only: true,
        });
    }
    out
}

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

/// Starts Prometheus (Debian's 2.42, or `binary`) on `<dir>/data` scraping a target of
/// ours that serves `page`, every second; `job` goes into the scrape config's job.
fn start_prometheus(
    dir: &Path,
    binary: Option<&Path>,
    page: fn(u64) -> Vec<MetricFamily>,
    job: &str,
    flags: &[&str],
) -> (Target, Prometheus) {
    let target = Target::serve(page);
    let port = target.port;
    let config = move |_| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    replica: a\nscrape_configs:\n  - job_name: app\n{job}    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
    };
    let data = dir.join("data");
    let prom = match binary {
        None => Prometheus::start(dir, &data, config, flags),
        Some(b) => Prometheus::start_binary(b, free_port(), dir, &data, config, flags),
    }
    .unwrap_or_else(|e| panic!("{e:#}"));
    (target, prom)
}

/// Waits until Prometheus has ingested scrape SCRAPES and returns every scrape's time.
fn wait_for_scrapes(prom: &Prometheus, target: &Target) -> BTreeMap<u64, i64> {
    // Scrape k (from 1) has `/a`'s request counter at 10 * k.
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
    let body = prom
        .get(&format!("/api/v1/query?query={counter_a}%5B1m%5D"))
        .unwrap();
    let v: Json = serde_json::from_str(&body).unwrap();
    let mut at = BTreeMap::new();
    for p in v["data"]["result"][0]["values"].as_array().unwrap() {
        let k = (parse_value(&p[1]) / 10.0).round() as u64;
        at.insert(k, parse_time(&p[0]));
    }
    assert!(
        (1..=SCRAPES).all(|k| at.contains_key(&k)),
        "scrapes missing: {at:?}"
    );
    at
}

/// Starts `gauntlet sidecar` beside `prom`: (process, gRPC port, HTTP port).
fn start_sidecar(dir: &Path, prom: &Prometheus) -> (Process, u16, u16) {
    let (http, grpc) = (free_port(), free_port());
    let (p, _) = gauntlet(
        dir,
        "sidecar",
        &[
            "sidecar".into(),
            format!("--prometheus.url={}", prom.url()),
            "--prometheus.get_config_interval=1s".into(),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
        ],
    );
    (p, grpc, http)
}

/// Starts `gauntlet query` over the StoreAPI at `grpc` (`compat`: the PromQL flavour, or
/// the default): (process, its log, HTTP port).
fn start_querier(
    dir: &Path,
    name: &str,
    grpc: u16,
    compat: Option<&str>,
) -> (Process, PathBuf, u16) {
    let http = free_port();
    let mut args = vec![
        "query".into(),
        format!("--endpoint=127.0.0.1:{grpc}"),
        "--query.replica-label=replica".into(),
        format!("--http-address=127.0.0.1:{http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ];
    if let Some(c) = compat {
        args.push(format!("--query.promql-compat={c}"));
    }
    let (p, log) = gauntlet(dir, name, &args);
    (p, log, http)
}

/// Waits until the querier on `http` answers the request counters of both paths at `t`.
fn wait_answers(what: &str, http: u16, t: i64, logs: &[&Path]) {
    let probe = format!("/api/v1/query?query=test_requests_total&time={}", secs(t));
    wait_until(what, Duration::from_secs(60), || {
        http_get(http, &probe)
            .is_ok_and(|(c, b)| c == 200 && b.contains("\"/a\"") && b.contains("\"/b\""))
    })
    .unwrap_or_else(|e| {
        let tails: Vec<String> = logs.iter().map(|l| testkit::log_tail(l)).collect();
        panic!("{e:#}\n{}", tails.join("\n"))
    });
}

/// Snapshots Prometheus's TSDB (head included) through the admin API, uploads the
/// snapshot's blocks into a filesystem bucket under `dir` with external label
/// `replica="a"`, and starts `gauntlet store` over the bucket: (process, its log, gRPC
/// port).
fn store_over_snapshot(dir: &Path, prom: &Prometheus) -> (Process, PathBuf, u16) {
    let a = http_request(prom.port, "POST", b"/api/v1/admin/tsdb/snapshot", &[], b"")
        .unwrap_or_else(|e| panic!("snapshot: {e:#}"));
    assert_eq!(a.status, 200, "snapshot: {}", a.text());
    let v: Json = serde_json::from_slice(&a.body).unwrap();
    let name = v["data"]["name"].as_str().expect("snapshot name");
    let snap = prom.data.join("snapshots").join(name);
    let blocks = testkit::block_dirs(&snap);
    assert!(!blocks.is_empty(), "no block in {}", snap.display());
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.join("bucket").display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", &objstore])
        .arg(format!("--path={}", snap.display()))
        .arg("--label=replica=\"a\"")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upload-blocks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uploaded = testkit::block_dirs(&dir.join("bucket"));
    assert_eq!(uploaded, blocks, "blocks in the bucket");
    println!("snapshot blocks in the bucket: {blocks:?}");
    let (http, grpc) = (free_port(), free_port());
    let (p, log) = gauntlet(
        dir,
        "store",
        &[
            "store".into(),
            objstore,
            format!("--data-dir={}", dir.join("store-cache").display()),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
        ],
    );
    (p, log, grpc)
}

/// The API paths asking each query (by index): an instant query at each of `times`, and a
/// range query over `range` (`start=…&end=…&step=…`) unless it is instant only.
fn api_paths(queries: &[Query], times: &[i64], range: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let e = url_encode(&q.text);
        for t in times {
            out.push((i, format!("/api/v1/query?query={e}&time={}", secs(*t))));
        }
        if !q.instant_only {
            out.push((i, format!("/api/v1/query_range?query={e}&{range}")));
        }
    }
    out
}

/// Prometheus's answer to every path (answers at past times do not change as it scrapes
/// on, so both passes compare with the same ones).
fn answers(prom: &Prometheus, paths: &[(usize, String)]) -> HashMap<String, String> {
    paths
        .iter()
        .map(|(_, p)| (p.clone(), prom.get_any(p)))
        .collect()
}

/// How one query fared.
#[derive(Default)]
struct Outcome {
    calls: usize,
    mismatches: usize,
    /// The first mismatching call and its first difference.
    first: Option<String>,
    /// Points (and histogram points among them) in Prometheus's answers.
    points: usize,
    histograms: usize,
    /// Calls Prometheus answered with an error.
    errors: usize,
    /// Calls Prometheus answered with warnings or infos.
    annotated: usize,
}

/// Asks the querier on `http` every path and compares with Prometheus's answers.
fn compare(
    n_queries: usize,
    paths: &[(usize, String)],
    theirs: &HashMap<String, String>,
    http: u16,
) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = (0..n_queries).map(|_| Outcome::default()).collect();
    for (i, path) in paths {
        let (_, ours_body) = http_get(http, path).unwrap();
        let annotations = testkit::promapi::annotations_differ(&theirs[path], &ours_body);
        let annotated =
            theirs[path].contains("\"warnings\":") || theirs[path].contains("\"infos\":");
        let (theirs, ours) = (parse_answer(&theirs[path]), parse_answer(&ours_body));
        let (n, h) = points(&theirs);
        let o = &mut out[*i];
        o.calls += 1;
        o.points += n;
        o.histograms += h;
        o.errors += usize::from(matches!(theirs, Answer::Error(..)));
        o.annotated += usize::from(annotated);
        if let Some(d) = first_difference(&theirs, &ours).or(annotations) {
            o.mismatches += 1;
            o.first.get_or_insert_with(|| format!("{path}\n      {d}"));
        }
    }
    out
}

/// Prints every query's outcome (`all`), or only the mismatching ones and those Prometheus
/// answers with no point at all, then the summary line; returns the number of mismatching
/// queries.
fn report(pass: &str, queries: &[Query], outcomes: &[Outcome], all: bool) -> usize {
    println!("\n{pass}:");
    for (q, o) in queries.iter().zip(outcomes) {
        let counts = format!(
            "{} points, {} histograms, {} errors",
            o.points, o.histograms, o.errors
        );
        match &o.first {
            None if all => println!("  MATCH     {}  ({counts})", q.text),
            None if o.points == 0 => println!("  NO DATA   {}  ({counts})", q.text),
            None => {}
            Some(d) => println!(
                "  MISMATCH  {}  ({} of {} calls; {counts})\n      {d}",
                q.text, o.mismatches, o.calls
            ),
        }
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let bad = outcomes.iter().filter(|o| o.first.is_some()).count();
    println!(
        "{pass}: {} queries, {} calls, {} mismatches ({bad} queries mismatch; Prometheus answered {} points, {} of them histograms, {} errors, and {} answers with warnings or infos)",
        queries.len(),
        sum(|o| o.calls),
        sum(|o| o.mismatches),
        sum(|o| o.points),
        sum(|o| o.histograms),
        sum(|o| o.errors),
        sum(|o| o.annotated),
    );
    bad
}

/// A querier to hold against Prometheus: its name, HTTP port, and the logs to show when it
/// never answers.
struct Pass<'a> {
    name: &'a str,
    http: u16,
    logs: Vec<&'a Path>,
}

/// Waits for each pass's querier and compares its answers with Prometheus's, the passes
/// side by side (a thread each), then reports them in order (`all`: see [`report`]);
/// returns the number of mismatching queries over all passes.
fn compare_passes(
    queries: &[Query],
    paths: &[(usize, String)],
    theirs: &HashMap<String, String>,
    passes: &[Pass],
    last: i64,
    all: bool,
) -> usize {
    let began = Instant::now();
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let running: Vec<_> = passes
            .iter()
            .map(|p| {
                s.spawn(move || {
                    wait_answers(
                        &format!("querier answers {}", p.name),
                        p.http,
                        last,
                        &p.logs,
                    );
                    compare(queries.len(), paths, theirs, p.http)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    println!(
        "\n{} passes of {} calls compared in {:?}",
        passes.len(),
        paths.len(),
        began.elapsed()
    );
    passes
        .iter()
        .zip(&outcomes)
        .map(|(p, o)| report(p.name, queries, o, all))
        .sum()
}

#[test]
fn native_histograms_answer_like_prometheus() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (target, prom) = start_prometheus(
        d,
        None,
        page,
        "",
        &[
            "--enable-feature=native-histograms",
            "--web.enable-admin-api",
        ],
    );
    // Sidecar and querier start while Prometheus scrapes.
    let (_sidecar, s_grpc, s_http) = start_sidecar(d, &prom);
    let (_query, q_log, q_http) = start_querier(d, "query-sidecar", s_grpc, Some("v2"));

    let at = wait_for_scrapes(&prom, &target);
    let (first, last, reset) = (at[&1], at[&SCRAPES], at[&RESET_AT]);
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

    // The block for the store: snapshot now; the store and its querier start up while
    // Prometheus answers.
    let (_store, st_log, st_grpc) = store_over_snapshot(d, &prom);
    let (_query_st, qs_log, qs_http) = start_querier(d, "query-store", st_grpc, Some("v2"));

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
    let queries: Vec<Query> = QUERIES
        .iter()
        .map(|q| (q, false))
        .chain(RANGE_VECTOR_QUERIES.iter().map(|q| (q, true)))
        .map(|(q, instant_only)| Query {
            text: q.to_string(),
            instant_only,
        })
        .collect();
    let paths = api_paths(&queries, &times, &range);
    let asked = Instant::now();
    let theirs = answers(&prom, &paths);
    println!(
        "Prometheus answered {} calls in {:?}",
        paths.len(),
        asked.elapsed()
    );

    wait_until("sidecar ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let passes = [
        Pass {
            name: "over the sidecar",
            http: q_http,
            logs: vec![&q_log],
        },
        Pass {
            name: "over the store gateway",
            http: qs_http,
            logs: vec![&st_log, &qs_log],
        },
    ];
    let bad = compare_passes(&queries, &paths, &theirs, &passes, last, true);
    println!("took {:?}", began.elapsed());
    assert!(
        bad == 0,
        "{bad} mismatching queries over the sidecar and the store ({} queries each) against Prometheus 2.42 (see the lists above)",
        queries.len()
    );
}

#[test]
fn native_histograms_answer_like_prometheus_3() {
    let Some(bin) = std::env::var_os("PROMETHEUS3_BIN") else {
        println!("skipping: PROMETHEUS3_BIN not set (a Prometheus 3.x binary built by hand)");
        return;
    };
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 3.x scrapes native histograms when the scrape config says so (the feature flag is
    // gone), and makes custom-bucket histograms of classic ones on request.
    let (target, prom) = start_prometheus(
        d,
        Some(Path::new(&bin)),
        page3,
        "    scrape_native_histograms: true\n    convert_classic_histograms_to_nhcb: true\n    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]\n",
        &["--web.enable-admin-api"],
    );
    let (_sidecar, s_grpc, s_http) = start_sidecar(d, &prom);
    let (_query, q_log, q_http) = start_querier(d, "query-sidecar", s_grpc, None);

    let at = wait_for_scrapes(&prom, &target);
    let (first, last, reset, gone) = (at[&1], at[&SCRAPES], at[&RESET_AT], at[&GONE_AT]);
    println!(
        "{} scrapes in Prometheus 3 after {:?}; scrape 1 at {first}, reset at {reset}, /c gone at {gone}, scrape {SCRAPES} at {last}",
        at.len(),
        began.elapsed()
    );
    for (q, what) in [
        ("test_latency_seconds", "exponential native histograms"),
        ("test_classic_seconds", "custom-bucket histograms"),
    ] {
        let raw = prom
            .get(&format!("/api/v1/query?query={q}&time={}", secs(last)))
            .unwrap();
        assert!(raw.contains("\"histogram\":"), "no {what}: {raw}");
    }

    let (_store, st_log, st_grpc) = store_over_snapshot(d, &prom);
    let (_query_st, qs_log, qs_http) = start_querier(d, "query-store", st_grpc, None);

    // Evaluation times: early, on a sample, across the new bucket and the reset, on and
    // after the stale markers, at the end. The range query steps on and between samples.
    let times = [
        first + 2_500,
        at[&5],
        at[&NEW_BUCKET_AT] + 300,
        reset - 200,
        reset + 700,
        gone,
        gone + 400,
        gone + 2_600,
        last - 1_300,
        last,
    ];
    let range = format!("start={}&end={}&step=0.5", secs(first + 500), secs(last));
    let queries = corpus3();
    assert!(queries.len() >= 100, "{} queries", queries.len());
    let paths = api_paths(&queries, &times, &range);
    let asked = Instant::now();
    let theirs = answers(&prom, &paths);
    println!(
        "Prometheus answered {} calls in {:?}",
        paths.len(),
        asked.elapsed()
    );

    wait_until("sidecar ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let passes = [
        Pass {
            name: "over the sidecar",
            http: q_http,
            logs: vec![&q_log],
        },
        Pass {
            name: "over the store gateway",
            http: qs_http,
            logs: vec![&st_log, &qs_log],
        },
    ];
    let bad = compare_passes(&queries, &paths, &theirs, &passes, last, false);
    println!("took {:?}", began.elapsed());
    assert!(
        bad == 0,
        "{bad} mismatching queries over the sidecar and the store ({} queries each) against Prometheus 3 (see the lists above)",
        queries.len()
    );
}
