use promql::{Engine, MemStorage, Value};
use tsdb::labels::Labels;

#[test]
fn smoke() {
    let mut st = MemStorage::new();
    for i in 0..100 {
        st.append(
            &Labels::from_pairs(vec![("__name__", "m"), ("job", "a")]),
            i * 10_000,
            i as f64,
        );
        st.append(
            &Labels::from_pairs(vec![("__name__", "m"), ("job", "b")]),
            i * 10_000,
            2.0 * i as f64,
        );
    }
    st.finish();
    let e = Engine::default();
    for q in [
        "m",
        "rate(m[1m])",
        "sum(m)",
        "sum by (job) (rate(m[5m]))",
        "m / on(job) m",
        "topk(1, m)",
        "max_over_time(m[5m:1m])",
        "1 + 2",
        "time()",
        "histogram_quantile(0.5, m)",
    ] {
        let r = e.instant_query(&st, q, 500_000).unwrap();
        println!("{q}: {:?}", r.value);
        let r = e.range_query(&st, q, 400_000, 500_000, 50_000);
        println!("range {q}: {:?}", r.map(|r| r.value));
    }
    let r = e.instant_query(&st, "m", 500_000).unwrap();
    assert!(matches!(r.value, Value::Vector(v) if v.len() == 2));
}
