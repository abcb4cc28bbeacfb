//! Engine behaviours the script and differential tests do not reach: streamed
//! aggregation over colliding label sets and histogram arithmetic, limits, timeouts and
//! cancellation, and what the 2.42/3.x switch changes.

use std::time::Duration;

use promql::{CancelToken, Engine, EngineOptions, Error, MemStorage, Value};
use tsdb::labels::Labels;

fn l(name: &str, x: &str) -> Labels {
    Labels::from_pairs(vec![("__name__", name), ("x", x)])
}

#[test]
fn name_dropping_collisions_are_checked_per_step_like_prometheus() {
    let mut st = MemStorage::new();
    for t in (0..=60_000).step_by(15_000) {
        st.append(&l("a", "1"), t, 1.0);
    }
    for t in (600_000..=660_000).step_by(15_000) {
        st.append(&l("b", "1"), t, 2.0);
    }
    st.finish();
    // 2.42's closed lookback window: the sample at 60s is still seen at 120s.
    let e = Engine::new(EngineOptions {
        lookback_delta_ms: 60_000,
        dialect: promql::Dialect::V2,
        ..Default::default()
    });
    // Disjoint in time: no two values for one label set at one step.
    let r = e
        .range_query(&st, r#"sum({__name__=~"a|b"} * 2)"#, 0, 660_000, 60_000)
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(m[0].points.len(), 5, "{m:?}");
    // At one step both exist: Prometheus's error.
    let mut st2 = st.clone();
    st2.append(&l("b", "1"), 30_000, 2.0);
    st2.finish();
    let err = e
        .instant_query(&st2, r#"sum({__name__=~"a|b"} * 2)"#, 30_000)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    // Over many steps, the overlap found past the first 64.
    let mut st3 = st.clone();
    st3.append(&l("b", "1"), 100_000, 2.0);
    st3.finish();
    let err = e
        .range_query(&st3, r#"sum({__name__=~"a|b"} * 2)"#, 0, 200_000, 1_000)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    let ok = e.range_query(&st3, r#"sum({__name__=~"a|b"} * 2)"#, 0, 99_000, 1_000);
    assert!(ok.is_ok(), "{ok:?}");
    // A range function over a selector (streamed into the sum) drops the names too, and
    // like Prometheus's it checks the whole matrix: two series with output anywhere in the
    // range collide, even at different steps.
    let err = e
        .range_query(
            &st,
            r#"sum(rate({__name__=~"a|b"}[5m]))"#,
            0,
            700_000,
            10_000,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    let ok = e.range_query(
        &st,
        r#"sum(rate({__name__=~"a|b"}[5m]))"#,
        0,
        200_000,
        10_000,
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn streamed_aggregation_takes_histograms_trims_and_collisions_as_materialized() {
    use std::sync::Arc;
    use tsdb::chunkenc::histogram::{Histogram, Span};
    let mut st = MemStorage::new();
    for (name, count) in [("h", 4.0), ("g", 6.0)] {
        for t in (0..=120_000).step_by(30_000) {
            let h = Histogram {
                t,
                count,
                sum: 2.0 * count,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 1,
                }],
                positive_buckets: vec![count],
                ..Histogram::default()
            };
            st.append_histogram(&l(name, "1"), Arc::new(h));
        }
        st.append(&l(&format!("{name}_float"), "1"), 0, count);
    }
    st.finish();
    let e = engine(promql::Dialect::default());
    // Streamed (an aggregation over vector * number) and materialized (the number
    // through `scalar()`, which the stream does not take) agree.
    for (streamed, materialized) in [
        ("sum(h * 2)", "sum(h * scalar(vector(2)))"),
        ("sum(h / 2)", "sum(h / scalar(vector(2)))"),
        ("count(h_float </ 5)", "count(h_float </ scalar(vector(5)))"),
    ] {
        let a = instant(&e, &st, streamed, 120_000).unwrap();
        let b = instant(&e, &st, materialized, 120_000);
        match (&a.value, b.as_ref().map(|b| &b.value)) {
            (Value::Vector(a), Ok(Value::Vector(b))) => {
                assert_eq!(a.len(), b.len(), "{streamed}: {a:?} vs {b:?}");
                for (x, y) in a.iter().zip(b) {
                    assert_eq!((x.v, &x.h), (y.v, &y.h), "{streamed}");
                }
            }
            other => panic!("{streamed}: {other:?}"),
        }
    }
    let scaled = instant(&e, &st, "sum(h * 2)", 120_000).unwrap();
    let Value::Vector(v) = scaled.value else {
        panic!()
    };
    assert_eq!(v[0].h.as_ref().map(|h| h.count), Some(8.0));
    // Histograms without their names collide at every step: the error, not a second read.
    let err = instant(&e, &st, r#"sum({__name__=~"h|g"} * 2)"#, 120_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    // A comparison drops histograms with 3.x's info, as the materialized path does.
    let r = instant(&e, &st, "count(h > 1)", 120_000).unwrap();
    assert!(matches!(&r.value, Value::Vector(v) if v.is_empty()));
    assert_eq!(
        r.infos,
        [
            "PromQL info: incompatible sample types encountered for binary operator \">\": \
          histogram > float (1:7)"
        ]
    );
}

#[test]
fn sample_limit_timeout_and_cancellation() {
    let mut st = MemStorage::new();
    for i in 0..100 {
        for t in (0..3_600_000).step_by(15_000) {
            st.append(&l("m", &i.to_string()), t, t as f64);
        }
    }
    st.finish();
    let small = Engine::new(EngineOptions {
        max_samples: 1000,
        ..Default::default()
    });
    let err = small
        .range_query(&st, "m", 0, 3_600_000, 15_000)
        .unwrap_err();
    assert!(matches!(err, Error::TooManySamples(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    let quick = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..Default::default()
    });
    let err = quick
        .range_query(&st, "rate(m[5m])", 0, 3_600_000, 15_000)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = Engine::default()
        .range_query_with(&st, "sum(m)", 0, 3_600_000, 15_000, &cancel)
        .unwrap_err();
    assert!(matches!(err, Error::Canceled(_)), "{err}");
}

#[test]
fn bad_queries_are_parse_errors() {
    let st = MemStorage::new();
    let e = Engine::default();
    for q in [
        "sum(",
        "rate(m)",
        "foo_bar_fn(m)",
        "m[5m] + 1",
        "sort_by_label(m)",
        "{x=~\".*\"}",
    ] {
        let err = e.instant_query(&st, q, 0).unwrap_err();
        assert!(matches!(err, Error::Parse(_)), "{q}: {err:?}");
    }
    let err = e.range_query(&st, "m[5m]", 0, 10, 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid expression type \"range vector\""),
        "{err}"
    );
}

fn engine(dialect: promql::Dialect) -> Engine {
    Engine::new(EngineOptions {
        dialect,
        ..Default::default()
    })
}

const V3_EXPERIMENTAL: promql::Dialect = promql::Dialect {
    compat: promql::Compat::V3,
    experimental_functions: true,
    binop_fill_modifiers: false,
};

fn instant(e: &Engine, st: &MemStorage, q: &str, t: i64) -> Result<promql::QueryResult, Error> {
    e.instant_query(st, q, t)
}

fn only_value(r: &promql::QueryResult) -> f64 {
    match &r.value {
        Value::Vector(s) if s.len() == 1 => s[0].v,
        Value::Scalar { v, .. } => *v,
        other => panic!("one value expected: {other:?}"),
    }
}

/// What `--query.promql-compat` switches: windows, regexes, the function set, numbers as
/// durations, duration expressions and annotations.
#[test]
fn compat_switch_selects_2_42_or_3_x_semantics() {
    let mut st = MemStorage::new();
    for t in [0, 60_000, 120_000] {
        st.append(&l("x", "1"), t, 1.0);
    }
    st.append(
        &Labels::from_pairs(vec![("__name__", "multi"), ("l", "a\nb")]),
        120_000,
        5.0,
    );
    st.finish();
    let (v2, v3) = (
        engine(promql::Dialect::V2),
        engine(promql::Dialect::default()),
    );
    // A sample exactly at the window's start counts in 2.42 only.
    let q = "count_over_time(x[1m])";
    assert_eq!(only_value(&instant(&v2, &st, q, 120_000).unwrap()), 2.0);
    assert_eq!(only_value(&instant(&v3, &st, q, 120_000).unwrap()), 1.0);
    // Lookback too: at 5m after the last sample, 2.42 still sees it.
    assert!(
        matches!(instant(&v2, &st, "x", 420_000).unwrap().value, Value::Vector(s) if s.len() == 1)
    );
    assert!(
        matches!(instant(&v3, &st, "x", 420_000).unwrap().value, Value::Vector(s) if s.is_empty())
    );
    // `.` matches a newline in 3.x.
    let q = r#"multi{l=~"a.b"}"#;
    assert!(
        matches!(instant(&v2, &st, q, 120_000).unwrap().value, Value::Vector(s) if s.is_empty())
    );
    assert_eq!(only_value(&instant(&v3, &st, q, 120_000).unwrap()), 5.0);
    // Renamed and experimental functions.
    let err = instant(&v3, &st, "holt_winters(x[5m], 0.5, 0.5)", 120_000).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown function with name \"holt_winters\""),
        "{err}"
    );
    let q = "double_exponential_smoothing(x[5m], 0.5, 0.5)";
    let err = instant(&v3, &st, q, 120_000).unwrap_err();
    assert!(
        err.to_string()
            .contains("function \"double_exponential_smoothing\" is not enabled"),
        "{err}"
    );
    assert!(instant(&engine(V3_EXPERIMENTAL), &st, q, 120_000).is_ok());
    let err = instant(&v2, &st, "first_over_time(x[5m])", 120_000).unwrap_err();
    assert!(err.to_string().contains("unknown function"), "{err}");
    assert_eq!(
        only_value(&instant(&v3, &st, "first_over_time(x[5m])", 120_000).unwrap()),
        1.0
    );
    let err = instant(&v3, &st, "limitk(1, x)", 120_000).unwrap_err();
    assert!(err.to_string().contains("experimental"), "{err}");
    // Numbers as seconds, and duration expressions.
    assert!(instant(&v2, &st, "count_over_time(x[90])", 120_000).is_err());
    for q in [
        "count_over_time(x[90])",
        "count_over_time(x[1m+30s])",
        "count_over_time(x[3m/2])",
        "count_over_time(x[max_of(1m, 90s)])",
    ] {
        assert_eq!(
            only_value(&instant(&v3, &st, q, 120_000).unwrap()),
            2.0,
            "{q}"
        );
    }
    let r = v3
        .range_query(&st, "count_over_time(x[step()])", 60_000, 120_000, 60_000)
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(
        m[0].points.iter().map(|p| p.v).collect::<Vec<_>>(),
        [1.0, 1.0]
    );
    for (q, msg) in [
        ("x[1m/0]", "division by zero"),
        ("x[1m-1m]", "duration must be greater than 0"),
        ("x[step()]", "duration must be greater than 0"),
    ] {
        let err = instant(&v3, &st, q, 120_000).unwrap_err();
        assert!(err.to_string().contains(msg), "{q}: {err}");
    }
    // An offset takes one term: `x offset 30 * 2` is `(x offset 30s) * 2`.
    assert_eq!(
        only_value(&instant(&v3, &st, "x offset 30 * 2", 120_000).unwrap()),
        2.0
    );
    // Fill modifiers are experimental in 3.14, off unless enabled: refused.
    let err = instant(&v3, &st, "x *\n  (x + on() fill(0) x)", 120_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "2:4: parse error: binop fill modifiers are experimental and not enabled"
    );
    // With Prometheus's feature flag they work, between two vectors only.
    let fill = engine(promql::Dialect {
        binop_fill_modifiers: true,
        ..promql::Dialect::default()
    });
    let filled = instant(
        &fill,
        &st,
        "x + on() fill_right(5) (vector(1) > 2)",
        120_000,
    );
    let plain = instant(&fill, &st, "x + 5", 120_000);
    assert_eq!(only_value(&filled.unwrap()), only_value(&plain.unwrap()));
    for (q, msg) in [
        (
            "x + fill(0) 1",
            "1:1: parse error: filling in missing series only allowed between instant vectors",
        ),
        (
            "x and fill(0) x",
            "1:1: parse error: filling in missing series not allowed for set operators",
        ),
    ] {
        let err = instant(&fill, &st, q, 120_000).unwrap_err();
        assert!(
            err.to_string()
                .contains(msg.split(": ").last().unwrap_or(msg)),
            "{q}: {err}"
        );
    }
    // Annotations exist in 3.x only, placed (line:col) as Prometheus places them.
    let r = instant(&v3, &st, "rate(x[5m])", 120_000).unwrap();
    assert_eq!(
        r.infos,
        [
            "PromQL info: metric might not be a counter, name does not end in \
          _total/_sum/_count/_bucket: \"x\" (1:6)"
        ]
    );
    let r = instant(&v3, &st, "sort(x)\n  + on() (\n rate(x[5m]))", 120_000).unwrap();
    assert_eq!(
        r.infos,
        [
            "PromQL info: metric might not be a counter, name does not end in \
          _total/_sum/_count/_bucket: \"x\" (3:7)"
        ]
    );
    assert!(instant(&v2, &st, "rate(x[5m])", 120_000)
        .unwrap()
        .infos
        .is_empty());
}

#[test]
fn sort_by_label_orders_naturally_and_limit_ratio_splits_the_input() {
    let mut st = MemStorage::new();
    for i in ["a10", "a9", "a1", "b2"] {
        st.append(&l("m", i), 0, 1.0);
    }
    st.finish();
    let e = engine(V3_EXPERIMENTAL);
    let r = instant(&e, &st, r#"sort_by_label(m, "x")"#, 0).unwrap();
    let Value::Vector(s) = r.value else { panic!() };
    let order: Vec<&str> = s.iter().map(|s| s.labels.get("x").unwrap()).collect();
    assert_eq!(order, ["a1", "a9", "a10", "b2"]);
    let r = instant(&e, &st, r#"sort_by_label_desc(m, "x")"#, 0).unwrap();
    let Value::Vector(s) = r.value else { panic!() };
    assert_eq!(s[0].labels.get("x"), Some("b2"));
    // r and -(1 - r) take complementary halves of the series.
    for r in [0.2, 0.5, 0.9] {
        let q = format!("count(limit_ratio({r}, m) or limit_ratio(-(1 - {r}), m))");
        assert_eq!(only_value(&instant(&e, &st, &q, 0).unwrap()), 4.0, "{r}");
        let q = format!("count(limit_ratio({r}, m) and limit_ratio(-(1 - {r}), m))");
        assert!(matches!(instant(&e, &st, &q, 0).unwrap().value, Value::Vector(s) if s.is_empty()));
    }
    let err = instant(&e, &st, "limitk(NaN, m)", 0).unwrap_err();
    assert_eq!(err.to_string(), "Parameter value is NaN");
}

#[test]
fn info_adds_the_data_labels_of_target_info() {
    let mut st = MemStorage::new();
    let lbl = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.to_vec());
    st.append(
        &lbl(&[("__name__", "up"), ("instance", "a"), ("job", "j")]),
        0,
        1.0,
    );
    st.append(
        &lbl(&[("__name__", "up"), ("instance", "b"), ("job", "j")]),
        0,
        1.0,
    );
    st.append(
        &lbl(&[
            ("__name__", "target_info"),
            ("instance", "a"),
            ("job", "j"),
            ("version", "1.2"),
            ("zone", "z1"),
        ]),
        0,
        1.0,
    );
    st.finish();
    let e = engine(V3_EXPERIMENTAL);
    let labels_of = |q: &str| -> Vec<String> {
        match instant(&e, &st, q, 0).unwrap().value {
            Value::Vector(s) => {
                let mut v: Vec<String> = s.iter().map(|s| s.labels.to_string()).collect();
                v.sort();
                v
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        labels_of("info(up)"),
        [
            r#"{__name__="up", instance="a", job="j", version="1.2", zone="z1"}"#,
            r#"{__name__="up", instance="b", job="j"}"#,
        ]
    );
    // A data-label selector keeps only the labels it names, and series without a match
    // go when the selector cannot match an empty value.
    assert_eq!(
        labels_of(r#"info(up, {zone=~"z.+"})"#),
        [r#"{__name__="up", instance="a", job="j", zone="z1"}"#]
    );
    let err = instant(&engine(promql::Dialect::default()), &st, "info(up)", 0).unwrap_err();
    assert!(err.to_string().contains("not enabled"), "{err}");
}
