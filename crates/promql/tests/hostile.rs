//! Queries built to hurt: deep nesting, huge literals, long subqueries. Each must get an
//! answer or a clear error, within its time budget, and never take the process down.

use std::time::{Duration, Instant};

use promql::{CancelToken, Engine, EngineOptions, Error, MemStorage, Value};
use tsdb::Labels;

fn storage() -> MemStorage {
    let mut s = MemStorage::new();
    for i in 0..3 {
        let l = Labels::from_pairs([("__name__", "x"), ("i", &i.to_string())]);
        for t in 0..100 {
            s.append(&l, t * 15_000, t as f64);
        }
    }
    s.finish();
    s
}

fn instant(q: &str) -> promql::Result<Value> {
    Engine::default()
        .instant_query(&storage(), q, 600_000)
        .map(|r| r.value)
}

#[test]
fn long_sum_chain_evaluates() {
    let q = vec!["1"; 2000].join("+");
    assert_eq!(
        instant(&q).unwrap(),
        Value::Scalar {
            t: 600_000,
            v: 2000.0
        }
    );
}

#[test]
fn long_or_chain_evaluates() {
    let q = vec!["x"; 1500].join(" or ");
    match instant(&q).unwrap() {
        Value::Vector(v) => assert_eq!(v.len(), 3),
        v => panic!("{v:?}"),
    }
}

#[test]
fn deep_function_nesting_evaluates() {
    let q = format!("{}x{}", "abs(".repeat(5000), ")".repeat(5000));
    match instant(&q).unwrap() {
        Value::Vector(v) => assert_eq!(v.len(), 3),
        v => panic!("{v:?}"),
    }
}

#[test]
fn deep_aggregation_nesting_evaluates() {
    let q = format!("{}x{}", "sum(".repeat(2000), ")".repeat(2000));
    match instant(&q).unwrap() {
        Value::Vector(v) => assert_eq!(v[0].v, 3.0 * 40.0),
        v => panic!("{v:?}"),
    }
}

#[test]
fn deep_subquery_nesting_evaluates() {
    let mut q = "x".to_string();
    for _ in 0..2000 {
        q = format!("last_over_time(({q})[1m:1m])");
    }
    if let Err(e) = instant(&q) {
        panic!("{e}");
    }
}

#[test]
fn too_deep_is_a_clear_error_and_fast() {
    let q = vec!["1"; 100_000].join("+");
    let started = Instant::now();
    let e = instant(&q).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(e, Error::Parse(ref m) if m.contains("too complex")),
        "{e}"
    );
}

#[test]
fn deep_range_query_evaluates() {
    let q = vec!["x"; 1000].join(" + ");
    let r = Engine::default()
        .range_query(&storage(), &q, 0, 600_000, 60_000)
        .unwrap();
    assert!(matches!(r.value, Value::Matrix(ref m) if m.len() == 3));
}

#[test]
fn year_long_millisecond_subquery_answers_from_the_samples_it_sees() {
    let engine = Engine::new(EngineOptions {
        timeout: Duration::from_secs(5),
        ..Default::default()
    });
    let started = Instant::now();
    let r = engine
        .instant_query_with(
            &storage(),
            "max_over_time(x[1y:1ms])",
            600_000,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(r.value, Value::Vector(ref v) if v.len() == 3 && v[0].v == 40.0));
}

#[test]
fn subqueries_over_more_steps_than_samples_allowed_are_refused_at_once() {
    for q in [
        "max_over_time(vector(1)[1y:1ms])",
        "max_over_time(sum(x)[1d:1ms])",
        "count_over_time(rate(x[5m])[1y:1ms])",
    ] {
        let started = Instant::now();
        let e = instant(q).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{q}: {:?}",
            started.elapsed()
        );
        assert_eq!(e, Error::TooManySamples("query execution"), "{q}");
    }
}

#[test]
fn samples_limit_holds_within_one_series() {
    let engine = Engine::new(EngineOptions {
        max_samples: 100_000,
        ..Default::default()
    });
    let e = engine
        .instant_query(&storage(), "count_over_time(x[1y:1ms])", 600_000)
        .unwrap_err();
    assert_eq!(e, Error::TooManySamples("query execution"));
}

#[test]
fn deadline_of_the_token_counts() {
    let token = CancelToken::with_deadline(Instant::now());
    let q = format!("{}x{}", "abs(".repeat(100), ")".repeat(100));
    let e = Engine::default()
        .instant_query_with(&storage(), &q, 600_000, &token)
        .unwrap_err();
    assert_eq!(e, Error::Timeout("expression evaluation"));
}

#[test]
fn nesting_at_the_limit_evaluates() {
    let q = vec!["1"; promql::MAX_NESTING].join("+");
    let started = Instant::now();
    assert_eq!(
        instant(&q).unwrap(),
        Value::Scalar {
            t: 600_000,
            v: promql::MAX_NESTING as f64
        }
    );
    eprintln!("{} terms: {:?}", promql::MAX_NESTING, started.elapsed());
    let q = vec!["x"; promql::MAX_NESTING / 2].join(" or ");
    let started = Instant::now();
    assert!(instant(&q).is_ok());
    eprintln!(
        "{} or terms: {:?}",
        promql::MAX_NESTING / 2,
        started.elapsed()
    );
}

#[test]
fn inputs_the_parser_cannot_take_are_parse_errors() {
    // A comment ends at a carriage return, as in Prometheus; then a unitless duration.
    assert!(matches!(instant("#\rx[6e1045]m"), Err(Error::Parse(_))));
    // Durations and offsets too large for the parser's own arithmetic.
    for q in [
        "x offset 1e300",
        "x[5m] offset 9999999999999999999y",
        "x[1e300s]",
    ] {
        assert!(matches!(instant(q), Err(Error::Parse(_))), "{q}");
    }
}

#[test]
fn a_heavy_range_query_stops_at_its_timeout() {
    // 300 series × 11,000 steps: far more work than the budget allows (about 300 ms in
    // an optimized build, seconds in a debug one).
    let mut s = MemStorage::new();
    for i in 0..300 {
        let l = Labels::from_pairs([("__name__", "y"), ("i", &i.to_string())]);
        for t in 0..400 {
            s.append(&l, t * 15_000, (t * i) as f64);
        }
    }
    s.finish();
    let engine = Engine::new(EngineOptions {
        timeout: Duration::from_millis(50),
        ..Default::default()
    });
    let started = Instant::now();
    let r = engine.range_query(
        &s,
        "sum by (i) (rate(y[5m])) + on(i) group_left max_over_time(y[10m])",
        0,
        11_000 * 500,
        500,
    );
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Timeout(_))), "{:?}", r.map(|_| ()));
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
}
