//! Engine behaviours the script and differential tests do not reach: streamed
//! aggregation falling back on colliding label sets, limits, timeouts and cancellation.

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
    let e = Engine::new(EngineOptions {
        lookback_delta_ms: 60_000,
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
