//! Process-wide metrics: library crates register counters, gauges and histograms by name
//! (Thanos's names where one exists) and update them through cheap handles; the binary
//! renders them all on `/metrics` in Prometheus's text format.
//!
//! A metric is a family (name, type, help) with one series per label set. Handles are
//! atomics shared with the registry, so updating one takes no lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A float value in an atomic (its bits).
#[derive(Clone, Debug, Default)]
pub struct Value(Arc<AtomicU64>);

impl Value {
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, v: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f64::from_bits(b) + v).to_bits())
            });
    }

    pub fn inc(&self) {
        self.add(1.0);
    }
}

/// A counter: only goes up.
pub type Counter = Value;
/// A gauge: set to the current value.
pub type Gauge = Value;

/// A histogram with fixed upper bounds.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramState>);

#[derive(Debug)]
struct HistogramState {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum: Value,
}

impl HistogramState {
    /// The bucket `v` falls in (none above the last bound: only count and sum see it).
    fn bucket_of(&self, v: f64) -> Option<usize> {
        self.bounds.iter().position(|&b| v <= b)
    }
}

impl Histogram {
    pub fn observe(&self, v: f64) {
        let s = &self.0;
        if let Some(i) = s.bucket_of(v) {
            s.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        s.sum.add(v);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// A tally of this histogram's observations kept by one owner and added to it when
    /// dropped: for loops that observe per item, one atomic add per bucket instead of
    /// several per observation.
    pub fn local(&self) -> LocalHistogram {
        LocalHistogram {
            counts: vec![0; self.0.bounds.len()],
            count: 0,
            sum: 0.0,
            shared: self.clone(),
        }
    }
}

/// See [`Histogram::local`].
#[derive(Debug)]
pub struct LocalHistogram {
    shared: Histogram,
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl LocalHistogram {
    pub fn observe(&mut self, v: f64) {
        if let Some(i) = self.shared.0.bucket_of(v) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += v;
    }
}

impl Drop for LocalHistogram {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        let s = &self.shared.0;
        for (shared, &n) in s.counts.iter().zip(&self.counts) {
            if n > 0 {
                shared.fetch_add(n, Ordering::Relaxed);
            }
        }
        s.count.fetch_add(self.count, Ordering::Relaxed);
        s.sum.add(self.sum);
    }
}

/// Prometheus client_golang's default buckets (seconds).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug)]
enum Series {
    Value(Value),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Family {
    kind: &'static str,
    help: String,
    /// Rendered label set (`a="1",b="2"`) to series.
    series: BTreeMap<String, Series>,
}

fn registry() -> &'static Mutex<BTreeMap<String, Family>> {
    static R: OnceLock<Mutex<BTreeMap<String, Family>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Appends `v` escaped as a label value of the text format.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Writes the rendered label set (`a="1",b="2"`) into `out`.
fn write_label_key(out: &mut String, labels: &[(&str, &str)]) {
    out.clear();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        push_escaped(out, v);
        out.push('"');
    }
}

/// The series `name` with `labels`, registered on first use. Called per request by many
/// callers, so a lookup of an existing series allocates nothing.
fn series(
    name: &str,
    kind: &'static str,
    help: &str,
    labels: &[(&str, &str)],
    make: impl FnOnce() -> Series,
) -> Series {
    thread_local! {
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    KEY.with_borrow_mut(|key| {
        write_label_key(key, labels);
        let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
        if !r.contains_key(name) {
            r.insert(
                name.to_string(),
                Family {
                    kind,
                    help: help.to_string(),
                    series: BTreeMap::new(),
                },
            );
        }
        let Some(fam) = r.get_mut(name) else {
            unreachable!("inserted above");
        };
        if !fam.series.contains_key(key.as_str()) {
            fam.series.insert(key.clone(), make());
        }
        match fam.series.get(key.as_str()) {
            Some(Series::Value(v)) => Series::Value(v.clone()),
            Some(Series::Histogram(h)) => Series::Histogram(h.clone()),
            None => unreachable!("inserted above"),
        }
    })
}

fn value(name: &str, kind: &'static str, help: &str, labels: &[(&str, &str)]) -> Value {
    match series(name, kind, help, labels, || Series::Value(Value::default())) {
        Series::Value(v) => v,
        // A name registered as a histogram cannot be a plain value; hand out a detached one.
        Series::Histogram(_) => Value::default(),
    }
}

/// The counter `name` with `labels` (registered on first use).
pub fn counter(name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
    value(name, "counter", help, labels)
}

/// The gauge `name` with `labels` (registered on first use).
pub fn gauge(name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
    value(name, "gauge", help, labels)
}

/// The summary `name` with `labels`: its count and sum (no quantiles).
pub fn summary(name: &str, help: &str, labels: &[(&str, &str)]) -> Histogram {
    observed(name, "summary", help, labels, &[])
}

/// The histogram `name` with `labels` and bucket upper bounds `bounds`.
pub fn histogram(name: &str, help: &str, labels: &[(&str, &str)], bounds: &[f64]) -> Histogram {
    observed(name, "histogram", help, labels, bounds)
}

fn observed(
    name: &str,
    kind: &'static str,
    help: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
) -> Histogram {
    let make = || {
        Series::Histogram(Histogram(Arc::new(HistogramState {
            bounds: bounds.to_vec(),
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: Value::default(),
        })))
    };
    match series(name, kind, help, labels, make) {
        Series::Histogram(h) => h,
        Series::Value(_) => match make() {
            Series::Histogram(h) => h,
            Series::Value(_) => unreachable!("make builds a histogram"),
        },
    }
}

fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn with_labels(name: &str, key: &str, extra: Option<(&str, &str)>) -> String {
    let mut parts = Vec::new();
    if !key.is_empty() {
        parts.push(key.to_string());
    }
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", parts.join(","))
    }
}

/// Every registered metric in Prometheus's text exposition format.
pub fn render() -> String {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    for (name, fam) in r.iter() {
        let _ = writeln!(out, "# HELP {name} {}", fam.help.replace('\n', " "));
        let _ = writeln!(out, "# TYPE {name} {}", fam.kind);
        for (key, s) in &fam.series {
            match s {
                Series::Value(v) => {
                    let _ = writeln!(
                        out,
                        "{} {}",
                        with_labels(name, key, None),
                        fmt_float(v.get())
                    );
                }
                Series::Histogram(h) => {
                    let st = &h.0;
                    let mut cumulative = 0;
                    let buckets = fam.kind == "histogram";
                    for (b, c) in st.bounds.iter().zip(&st.counts) {
                        cumulative += c.load(Ordering::Relaxed);
                        let le = fmt_float(*b);
                        let _ = writeln!(
                            out,
                            "{} {cumulative}",
                            with_labels(&format!("{name}_bucket"), key, Some(("le", &le)))
                        );
                    }
                    let count = st.count.load(Ordering::Relaxed);
                    if buckets {
                        let _ = writeln!(
                            out,
                            "{} {count}",
                            with_labels(&format!("{name}_bucket"), key, Some(("le", "+Inf")))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{} {}",
                        with_labels(&format!("{name}_sum"), key, None),
                        fmt_float(st.sum.get())
                    );
                    let _ = writeln!(
                        out,
                        "{} {count}",
                        with_labels(&format!("{name}_count"), key, None)
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_once_with_all_series() {
        let a = counter("t_requests_total", "Requests.", &[("code", "200")]);
        let b = counter("t_requests_total", "Requests.", &[("code", "500")]);
        a.inc();
        a.inc();
        b.add(3.0);
        gauge("t_up", "Up.", &[]).set(1.0);
        let h = histogram("t_seconds", "Time.", &[("op", "x")], &[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let text = render();
        assert_eq!(text.matches("# HELP t_requests_total").count(), 1);
        assert!(text.contains("t_requests_total{code=\"200\"} 2\n"));
        assert!(text.contains("t_requests_total{code=\"500\"} 3\n"));
        assert!(text.contains("t_up 1\n"));
        assert!(text.contains("t_seconds_bucket{op=\"x\",le=\"0.1\"} 1\n"));
        assert!(text.contains("t_seconds_bucket{op=\"x\",le=\"1\"} 2\n"));
        assert!(text.contains("t_seconds_bucket{op=\"x\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("t_seconds_count{op=\"x\"} 3\n"));
        summary("t_items", "Items.", &[("kind", "a")]).observe(4.0);
        let text = render();
        assert!(text.contains(
            "# TYPE t_items summary\nt_items_sum{kind=\"a\"} 4\nt_items_count{kind=\"a\"} 1\n"
        ));
    }

    #[test]
    fn label_values_are_escaped_and_a_series_is_found_again() {
        let odd = "a\"b\\c\nd";
        counter("t_escaped_total", "Escaped.", &[("path", odd), ("x", "1")]).inc();
        counter("t_escaped_total", "Escaped.", &[("path", odd), ("x", "1")]).inc();
        let text = render();
        assert!(
            text.contains("t_escaped_total{path=\"a\\\"b\\\\c\\nd\",x=\"1\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn a_local_tally_adds_up_like_direct_observations() {
        let direct = histogram("t_direct", "Sizes.", &[], &[10.0, 100.0]);
        let tallied = histogram("t_tallied", "Sizes.", &[], &[10.0, 100.0]);
        let values = [1.0, 50.0, 50.0, 500.0, 10.0];
        {
            let mut local = tallied.local();
            for v in values {
                direct.observe(v);
                local.observe(v);
            }
            assert_eq!(tallied.count(), 0, "added when dropped");
        }
        let text = render();
        for line in [
            "_bucket{le=\"10\"} 2",
            "_bucket{le=\"100\"} 4",
            "_count 5",
            "_sum 611",
        ] {
            assert!(text.contains(&format!("t_direct{line}\n")), "{text}");
            assert!(text.contains(&format!("t_tallied{line}\n")), "{text}");
        }
    }
}
