//! PromQL functions over instant and range vectors, with Prometheus 2.42's arithmetic.

use crate::annotations::{self, Notes};
use crate::error::{Error, Result};
use crate::node_value::{FxMap, OutBuilder, Val, METRIC_NAME};
use crate::parse::unwrap_parens;
use crate::storage::RawSample;
use crate::value::{Point, Series};
use chrono::{Datelike, NaiveDate, Timelike};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use tsdb::labels::Labels;

/// Functions that take a range vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    HoltWinters,
    Resets,
    Changes,
    AvgOverTime,
    CountOverTime,
    LastOverTime,
    MaxOverTime,
    MinOverTime,
    SumOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
    PresentOverTime,
    AbsentOverTime,
    // Prometheus 3.x.
    FirstOverTime,
    TsOfFirstOverTime,
    TsOfLastOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    MadOverTime,
}

impl RangeFn {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match crate::function_table::lookup(name)?.eval {
            crate::function_table::Eval::Range(f) => Some(f),
            _ => None,
        }
    }
}

/// Functions over instant vectors and scalars.
#[derive(Clone, Copy, Debug)]
pub(crate) enum VectorFn {
    Math(fn(f64) -> f64),
    Timestamp,
    Clamp,
    ClampMin,
    ClampMax,
    Round,
    Scalar,
    Vector,
    Time,
    Pi,
    Absent,
    LabelReplace,
    LabelJoin,
    Sort,
    SortDesc,
    SortByLabel {
        desc: bool,
    },
    /// `min_of`/`max_of` of two scalars (3.x).
    ScalarExtreme {
        max: bool,
    },
    HistogramQuantile,
    /// `histogram_quantiles(v, "label", q1, q2, …)` (3.11).
    HistogramQuantiles,
    HistogramFraction,
    NativeHistogramOnly,
    Date(DateFn),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DateFn {
    DaysInMonth,
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Month,
    Year,
}

impl VectorFn {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match crate::function_table::lookup(name)?.eval {
            crate::function_table::Eval::Vector(f) => Some(f),
            _ => None,
        }
    }
}

/// Go's math.Max: NaN wins, +Inf wins over NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's math.Min: NaN wins, -Inf wins over NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Where one window of a range function lies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// First and last time (ms) the window covers.
    pub start: i64,
    pub end: i64,
    /// The range as written in the query (ms).
    pub range_ms: i64,
    /// The evaluation step's time.
    pub ts: i64,
    /// Prometheus 3.x's arithmetic where it differs (rate extrapolation).
    pub v3: bool,
}

/// Evaluates a range function on one window of samples (non-empty, stale markers removed).
/// `args` are the scalar arguments in call order, without the range vector.
pub(crate) fn range_fn(
    f: RangeFn,
    w: &[RawSample],
    at: &Window,
    args: &[f64],
) -> Result<Option<f64>> {
    let ts = at.ts;
    use RangeFn::*;
    Ok(match f {
        Rate => extrapolated_rate(w, at, true, true),
        Increase => extrapolated_rate(w, at, true, false),
        Delta => extrapolated_rate(w, at, false, false),
        Irate => instant_value(w, true),
        Idelta => instant_value(w, false),
        Deriv => {
            if w.len() < 2 {
                None
            } else {
                Some(linear_regression(w, w[0].t).0)
            }
        }
        PredictLinear => {
            if w.len() < 2 {
                None
            } else {
                let (slope, intercept) = linear_regression(w, ts);
                Some(slope * args[0] + intercept)
            }
        }
        HoltWinters => holt_winters(w, args[0], args[1])?,
        Resets => {
            let mut n = 0;
            for p in w.windows(2) {
                if p[1].v < p[0].v {
                    n += 1;
                }
            }
            Some(n as f64)
        }
        Changes => {
            let mut n = 0;
            for p in w.windows(2) {
                if p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()) {
                    n += 1;
                }
            }
            Some(n as f64)
        }
        AvgOverTime if at.v3 => Some(avg_over_time_v3(w)),
        AvgOverTime => {
            let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
            for s in w {
                count += 1.0;
                if mean.is_infinite() {
                    if s.v.is_infinite() && (mean > 0.0) == (s.v > 0.0) {
                        continue;
                    }
                    if !s.v.is_infinite() && !s.v.is_nan() {
                        continue;
                    }
                }
                (mean, c) = kahan_inc(s.v / count - mean / count, mean, c);
            }
            Some(if mean.is_infinite() { mean } else { mean + c })
        }
        CountOverTime => Some(w.len() as f64),
        LastOverTime => Some(w[w.len() - 1].v),
        MaxOverTime => {
            let mut m = w[0].v;
            for s in w {
                if s.v > m || m.is_nan() {
                    m = s.v;
                }
            }
            Some(m)
        }
        MinOverTime => {
            let mut m = w[0].v;
            for s in w {
                if s.v < m || m.is_nan() {
                    m = s.v;
                }
            }
            Some(m)
        }
        SumOverTime => {
            let (mut sum, mut c) = (0.0, 0.0);
            for s in w {
                (sum, c) = kahan_inc(s.v, sum, c);
            }
            Some(if f64::is_infinite(sum) { sum } else { sum + c })
        }
        QuantileOverTime => {
            let mut values: Vec<f64> = w.iter().map(|s| s.v).collect();
            Some(quantile(args[0], &mut values))
        }
        StddevOverTime => Some(variance_over_time(w).sqrt()),
        StdvarOverTime => Some(variance_over_time(w)),
        PresentOverTime | AbsentOverTime => Some(1.0),
        FirstOverTime => Some(w[0].v),
        TsOfFirstOverTime => Some(w[0].t as f64 / 1000.0),
        TsOfLastOverTime => Some(w[w.len() - 1].t as f64 / 1000.0),
        // The last sample holding the extreme (NaN yields to anything).
        TsOfMinOverTime => Some(ts_of_extreme(w, |cur, m| cur <= m || m.is_nan())),
        TsOfMaxOverTime => Some(ts_of_extreme(w, |cur, m| cur >= m || m.is_nan())),
        MadOverTime => {
            if w.iter().any(|s| s.v.is_nan()) {
                return Ok(Some(f64::NAN));
            }
            let mut values: Vec<f64> = w.iter().map(|s| s.v).collect();
            let median = quantile(0.5, &mut values);
            values.iter_mut().for_each(|v| *v = (*v - median).abs());
            Some(quantile(0.5, &mut values))
        }
    })
}

/// Prometheus 3.x's mean: a compensated sum divided by the count, or, once the sum would
/// overflow, a compensated incremental mean.
fn avg_over_time_v3(w: &[RawSample]) -> f64 {
    use crate::aggregation::kahan_inc_v3;
    let (mut sum, mut c, mut mean) = (w[0].v, 0.0, 0.0);
    let mut incremental = false;
    let mut count = 1.0;
    for s in &w[1..] {
        count += 1.0;
        if !incremental {
            let (next, next_c) = kahan_inc_v3(s.v, sum, c);
            if !next.is_infinite() {
                (sum, c) = (next, next_c);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc_v3(s.v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// The time (s) of the sample `better` prefers over the extreme so far, scanning in order.
fn ts_of_extreme(w: &[RawSample], better: impl Fn(f64, f64) -> bool) -> f64 {
    let (mut m, mut t) = (w[0].v, w[0].t);
    for s in w {
        if better(s.v, m) {
            (m, t) = (s.v, s.t);
        }
    }
    t as f64 / 1000.0
}

fn variance_over_time(w: &[RawSample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in w {
        count += 1.0;
        let delta = s.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (s.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn extrapolated_rate(w: &[RawSample], at: &Window, is_counter: bool, is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = first.v;
        for s in &w[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    extrapolate(w, result, at, is_counter, is_rate)
}

/// Extrapolates the change `result` seen over window `w` (two samples at least) to the
/// whole range, as Prometheus's `rate`, `increase` and `delta` do.
pub(crate) fn extrapolate(
    w: &[RawSample],
    result: f64,
    at: &Window,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let first = w[0];
    let last = w[w.len() - 1];
    let mut duration_to_start = (first.t - at.start) as f64 / 1000.0;
    let duration_to_end = (at.end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (w.len() - 1) as f64;
    if at.v3 {
        // 3.x: the usual extrapolation first, then no further back than the counter's zero.
        let threshold = avg_between * 1.1;
        if duration_to_start >= threshold {
            duration_to_start = avg_between / 2.0;
        }
        if is_counter && result > 0.0 && first.v >= 0.0 {
            duration_to_start = duration_to_start.min(sampled_interval * (first.v / result));
        }
        let duration_to_end = if duration_to_end >= threshold {
            avg_between / 2.0
        } else {
            duration_to_end
        };
        let mut factor =
            (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
        if is_rate {
            factor /= at.range_ms as f64 / 1000.0;
        }
        return Some(result * factor);
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg_between / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg_between / 2.0
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= at.range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(w: &[RawSample], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut result = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn linear_regression(w: &[RawSample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].v;
    let mut const_y = true;
    for (i, s) in w.iter().enumerate() {
        if const_y && i > 0 && s.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t - intercept_time) as f64 / 1e3;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(s.v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * s.v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Go's `%f`.
fn go_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:.6}")
    }
}

fn holt_winters(w: &[RawSample], sf: f64, tf: f64) -> Result<Option<f64>> {
    if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
        return Err(Error::exec(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
            go_f(sf)
        )));
    }
    if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
        return Err(Error::exec(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {}",
            go_f(tf)
        )));
    }
    if w.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, w[0].v);
    let mut b = w[1].v - w[0].v;
    for i in 1..w.len() {
        let x = sf * w[i].v;
        b = if i - 1 == 0 {
            b
        } else {
            tf * (s1 - s0) + (1.0 - tf) * b
        };
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// Natural order of label values, as Prometheus's `natsort.Compare`: runs of digits compare
/// as numbers, other runs as strings.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(p), Ok(q)) => p.cmp(&q),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

pub(crate) fn go_sort<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    crate::gosort::sort(v, less)
}

/// The q-quantile of values (Prometheus's `quantile`), sorting `values` in place.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() || !(0.0..=1.0).contains(&q) {
        return quantile_sorted(q, values);
    }
    go_sort(values, quantile_order);
    quantile_sorted(q, values)
}

/// The order of values for quantiles: NaN first, then ascending.
pub(crate) fn quantile_order(a: &f64, b: &f64) -> bool {
    a.is_nan() || a < b
}

/// The `q` quantile of values sorted by [`quantile_order`] (`q` within 0 and 1 or NaN).
pub(crate) fn quantile_sorted(q: f64, values: &[f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (n - 1.0).min(lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Where [`bucket_quantile`] had to make counts monotonic: the lowest and highest upper
/// bound it corrected and the largest decrease it removed (3.x reports them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Forced {
    pub(crate) min_bucket: f64,
    pub(crate) max_bucket: f64,
    pub(crate) max_diff: f64,
}

/// Prometheus 3.x treats bucket counts this close (relatively) as equal.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Go's `almost.Equal` for the bucket counts (no stale markers among them).
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Makes bucket counts monotonic: 2.42 raises each to the running maximum; 3.x also
/// evens out differences within [`SMALL_DELTA_TOLERANCE`] and says what it corrected.
fn make_monotonic(buckets: &mut [Bucket], v3: bool) -> Option<Forced> {
    let mut forced = Forced {
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        max_diff: 0.0,
    };
    let mut any = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if v3 && almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            any = true;
            if b.upper < forced.min_bucket {
                forced.min_bucket = b.upper;
            }
            if b.upper > forced.max_bucket {
                forced.max_bucket = b.upper;
            }
            if prev - curr > forced.max_diff {
                forced.max_diff = prev - curr;
            }
            continue;
        }
        if v3 || curr > prev {
            prev = curr;
        }
    }
    any.then_some(forced)
}

/// The quantile of classic buckets, and where their counts had to be made monotonic.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>, v3: bool) -> (f64, Option<Forced>) {
    if q.is_nan() {
        return (f64::NAN, None);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    go_sort(buckets, |a, b| a.upper < b.upper);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, None);
    }
    coalesce(buckets);
    let forced = make_monotonic(buckets, v3);
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return (buckets[n - 1].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// A label name Prometheus accepts: 2.42's legacy names, or any non-empty UTF-8 in 3.x.
pub(crate) fn valid_label_name(s: &str, v3: bool) -> bool {
    if v3 {
        return !s.is_empty() && !crate::lex::has_raw_bytes(s);
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn string_arg(e: &Expr) -> Result<String> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(Error::exec("expected a string literal argument")),
    }
}

fn take_vector(v: Val) -> Result<Vec<Series>> {
    match v {
        Val::Vector(s) => Ok(s),
        _ => Err(Error::exec("expected an instant vector argument")),
    }
}

fn take_scalar(v: &Val) -> Result<&[f64]> {
    match v {
        Val::Scalar(s) => Ok(s),
        _ => Err(Error::exec("expected a scalar argument")),
    }
}

/// Applies a per-element function: output labels per input series, values per point
/// (`None` drops the point). Keeps input order; detects label-set collisions per step.
fn map_series(
    input: Vec<Series>,
    steps: usize,
    ts_of: &dyn Fn(usize) -> i64,
    mut labels_of: impl FnMut(&Labels) -> Labels,
    value: impl Fn(usize, f64) -> Option<f64>,
    step_index: &dyn Fn(i64) -> usize,
) -> Result<Vec<Series>> {
    let out_labels: Vec<Labels> = input.iter().map(|s| labels_of(&s.labels)).collect();
    let unique = {
        let mut seen: FxMap<&Labels, ()> = FxMap::default();
        out_labels.iter().all(|l| seen.insert(l, ()).is_none())
    };
    if unique {
        let mut out = Vec::with_capacity(input.len());
        for (mut s, l) in input.into_iter().zip(out_labels) {
            s.points.retain_mut(|p| match value(step_index(p.t), p.v) {
                Some(v) => {
                    p.v = v;
                    true
                }
                None => false,
            });
            if !s.points.is_empty() {
                out.push(Series {
                    labels: l,
                    points: s.points,
                    hists: Vec::new(),
                });
            }
        }
        return Ok(out);
    }
    let mut b = OutBuilder::new();
    let slots: Vec<usize> = out_labels.into_iter().map(|l| b.slot(l)).collect();
    let mut next = vec![0usize; input.len()];
    for step in 0..steps {
        let ts = ts_of(step);
        for (i, s) in input.iter().enumerate() {
            let j = next[i];
            if j < s.points.len() && s.points[j].t == ts {
                next[i] += 1;
                if let Some(v) = value(step, s.points[j].v) {
                    b.push(slots[i], step, ts, v)?;
                }
            }
        }
    }
    Ok(b.finish())
}

fn drop_name(l: &Labels) -> Labels {
    let mut l = l.clone();
    l.remove(METRIC_NAME);
    l
}

fn date_value(f: DateFn, secs: f64) -> f64 {
    let Some(t) = chrono::DateTime::from_timestamp(secs as i64, 0) else {
        return f64::NAN;
    };
    match f {
        DateFn::DaysInMonth => {
            let (y, m) = (t.year(), t.month());
            let first = NaiveDate::from_ymd_opt(y, m, 1);
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)
            };
            match (first, next) {
                (Some(a), Some(b)) => (b - a).num_days() as f64,
                _ => f64::NAN,
            }
        }
        DateFn::DayOfMonth => t.day() as f64,
        DateFn::DayOfWeek => t.weekday().num_days_from_sunday() as f64,
        DateFn::DayOfYear => t.ordinal() as f64,
        DateFn::Hour => t.hour() as f64,
        DateFn::Minute => t.minute() as f64,
        DateFn::Month => t.month() as f64,
        DateFn::Year => t.year() as f64,
    }
}

/// Evaluates a function over instant vectors and scalars at every step; annotations go to
/// `notes`, and `v3` selects 3.x behaviour where it differs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn vector_call(
    f: VectorFn,
    args: &[&Expr],
    vals: Vec<Val>,
    steps: usize,
    ts_of: impl Fn(usize) -> i64,
    step_index: impl Fn(i64) -> usize,
    notes: &mut Notes,
    v3: bool,
) -> Result<Val> {
    use VectorFn::*;
    let mut vals = vals;
    let ts_of = &ts_of as &dyn Fn(usize) -> i64;
    let step_index = &step_index as &dyn Fn(i64) -> usize;
    match f {
        Math(m) => {
            let input = take_vector(vals.remove(0))?;
            Ok(Val::Vector(map_series(
                input,
                steps,
                ts_of,
                drop_name,
                |_, v| Some(m(v)),
                step_index,
            )?))
        }
        Timestamp => {
            let input = take_vector(vals.remove(0))?;
            let out = map_series(
                input,
                steps,
                ts_of,
                drop_name,
                |i, _| Some(ts_of(i) as f64 / 1000.0),
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
        Clamp => {
            let (min, max) = (
                take_scalar(&vals[1])?.to_vec(),
                take_scalar(&vals[2])?.to_vec(),
            );
            let input = take_vector(vals.remove(0))?;
            let out = map_series(
                input,
                steps,
                ts_of,
                drop_name,
                // Only max < min drops the sample; NaN bounds do not.
                |i, v| {
                    (max[i] >= min[i] || max[i].is_nan() || min[i].is_nan())
                        .then(|| go_max(min[i], go_min(max[i], v)))
                },
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
        ClampMin | ClampMax => {
            let bound = take_scalar(&vals[1])?.to_vec();
            let input = take_vector(vals.remove(0))?;
            let is_min = matches!(f, ClampMin);
            let out = map_series(
                input,
                steps,
                ts_of,
                drop_name,
                |i, v| {
                    Some(if is_min {
                        go_max(bound[i], v)
                    } else {
                        go_min(bound[i], v)
                    })
                },
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
        Round => {
            let to_nearest = if vals.len() > 1 {
                take_scalar(&vals[1])?.to_vec()
            } else {
                vec![1.0; steps]
            };
            let input = take_vector(vals.remove(0))?;
            let out = map_series(
                input,
                steps,
                ts_of,
                drop_name,
                |i, v| {
                    let inv = 1.0 / to_nearest[i];
                    Some((v * inv + 0.5).floor() / inv)
                },
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
        Scalar => {
            let input = take_vector(vals.remove(0))?;
            let mut count = vec![0u32; steps];
            let mut value = vec![f64::NAN; steps];
            for s in &input {
                for p in &s.points {
                    let i = step_index(p.t);
                    count[i] += 1;
                    value[i] = p.v;
                }
            }
            Ok(Val::Scalar(
                (0..steps)
                    .map(|i| if count[i] == 1 { value[i] } else { f64::NAN })
                    .collect(),
            ))
        }
        Vector => {
            let s = take_scalar(&vals[0])?;
            let points = s
                .iter()
                .enumerate()
                .map(|(i, &v)| Point { t: ts_of(i), v })
                .collect();
            Ok(Val::Vector(vec![Series {
                labels: Labels::default(),
                points,
                hists: Vec::new(),
            }]))
        }
        Time => Ok(Val::Scalar(
            (0..steps).map(|i| ts_of(i) as f64 / 1000.0).collect(),
        )),
        Pi => Ok(Val::Scalar(vec![std::f64::consts::PI; steps])),
        Absent => {
            let input = take_vector(vals.remove(0))?;
            let mut present = vec![false; steps];
            for t in input.iter().flat_map(Series::times) {
                present[step_index(t)] = true;
            }
            let points: Vec<Point> = (0..steps)
                .filter(|&i| !present[i])
                .map(|i| Point {
                    t: ts_of(i),
                    v: 1.0,
                })
                .collect();
            if points.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Series {
                labels: absent_labels(args[0]),
                points,
                hists: Vec::new(),
            }]))
        }
        LabelReplace => {
            let dst = string_arg(args[1])?;
            let repl = string_arg(args[2])?;
            let src = string_arg(args[3])?;
            let re_str = string_arg(args[4])?;
            let re = regex::Regex::new(&format!("^(?s:{re_str})$")).map_err(|_| {
                Error::exec(format!(
                    "invalid regular expression in label_replace(): {re_str}"
                ))
            })?;
            if !valid_label_name(&dst, v3) {
                return Err(Error::exec(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let input = take_vector(vals.remove(0))?;
            let out = map_series(
                input,
                steps,
                ts_of,
                |l| {
                    let src_val = l.get(&src).unwrap_or("");
                    match re.captures(src_val) {
                        None => l.clone(),
                        Some(caps) => {
                            let mut res = String::new();
                            caps.expand(&repl, &mut res);
                            let mut out = l.clone();
                            out.remove(&dst);
                            if !res.is_empty() {
                                out.set(&dst, &res);
                            }
                            out
                        }
                    }
                },
                |_, v| Some(v),
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
        LabelJoin => {
            let dst = string_arg(args[1])?;
            let sep = string_arg(args[2])?;
            let mut srcs = Vec::new();
            for a in &args[3..] {
                let s = string_arg(a)?;
                if !valid_label_name(&s, v3) {
                    return Err(Error::exec(format!(
                        "invalid source label name in label_join(): {s}"
                    )));
                }
                srcs.push(s);
            }
            if !valid_label_name(&dst, v3) {
                return Err(Error::exec(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let input = take_vector(vals.remove(0))?;
            let out = map_series(
                input,
                steps,
                ts_of,
                |l| {
                    let joined = srcs
                        .iter()
                        .map(|s| l.get(s).unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(&sep);
                    let mut out = l.clone();
                    if joined.is_empty() {
                        out.remove(&dst);
                    } else {
                        out.set(&dst, &joined);
                    }
                    out
                },
                |_, v| Some(v),
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
        Sort | SortDesc => {
            let mut input = take_vector(vals.remove(0))?;
            if steps == 1 {
                // Only an instant result has an observable order.
                let key = |s: &Series| s.points.first().map_or(f64::NAN, |p| p.v);
                if matches!(f, Sort) {
                    go_sort(&mut input, |a, b| {
                        let (a, b) = (key(a), key(b));
                        b.is_nan() || b > a
                    });
                } else {
                    go_sort(&mut input, |a, b| {
                        let (a, b) = (key(a), key(b));
                        b.is_nan() || b < a
                    });
                }
            }
            Ok(Val::Vector(input))
        }
        ScalarExtreme { max } => {
            let (a, b) = (take_scalar(&vals[0])?, take_scalar(&vals[1])?);
            let pick = if max { go_max } else { go_min };
            Ok(Val::Scalar(
                a.iter().zip(b).map(|(&x, &y)| pick(x, y)).collect(),
            ))
        }
        SortByLabel { desc } => {
            let mut input = take_vector(vals.remove(0))?;
            let names = args[1..]
                .iter()
                .map(|a| string_arg(a))
                .collect::<Result<Vec<String>>>()?;
            if steps == 1 {
                input.sort_by(|a, b| {
                    let by_labels = names.iter().find_map(|n| {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        (x != y).then(|| natural_order(x, y))
                    });
                    let o = by_labels.unwrap_or_else(|| a.labels.cmp(&b.labels));
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
            }
            Ok(Val::Vector(input))
        }
        HistogramQuantile => {
            let q = take_scalar(&vals[0])?.to_vec();
            let input = take_vector(vals.remove(1))?;
            let groups = BucketGroups::new(&input, notes);
            let mut out = OutBuilder::new();
            let slots: Vec<usize> = groups.labels.iter().map(|l| out.slot(l.clone())).collect();
            groups.each_step(steps, ts_of, |g, step, ts, b| {
                let (v, forced) = bucket_quantile(q[step], b, v3);
                note_forced(notes, forced, ts);
                out.push(slots[g], step, ts, v)
            })?;
            Ok(Val::Vector(out.finish()))
        }
        HistogramQuantiles => {
            let input = take_vector(vals.remove(0))?;
            let label = string_arg(args[1])?;
            let qs: Vec<Vec<f64>> = vals[1..]
                .iter()
                .map(|v| take_scalar(v).map(<[f64]>::to_vec))
                .collect::<Result<_>>()?;
            let groups = BucketGroups::new(&input, notes);
            let mut out = OutBuilder::new();
            let mut slots: FxMap<(usize, u64), usize> = FxMap::default();
            groups.each_step(steps, ts_of, |g, step, ts, b| {
                for q in &qs {
                    let q = q[step];
                    // The first call sorts, merges and makes the buckets monotonic in
                    // place; the later ones find them so.
                    let (v, forced) = bucket_quantile(q, b, v3);
                    note_forced(notes, forced, ts);
                    let slot = match slots.get(&(g, q.to_bits())) {
                        Some(&s) => s,
                        None => {
                            let mut l = groups.labels[g].clone();
                            l.set(&label, &openmetrics_float(q));
                            let s = out.slot(l);
                            slots.insert((g, q.to_bits()), s);
                            s
                        }
                    };
                    out.push(slot, step, ts, v)?;
                }
                Ok(())
            })?;
            Ok(Val::Vector(out.finish()))
        }
        HistogramFraction if !v3 => Ok(Val::Vector(Vec::new())),
        HistogramFraction => {
            let lower = take_scalar(&vals[0])?.to_vec();
            let upper = take_scalar(&vals[1])?.to_vec();
            let input = take_vector(vals.remove(2))?;
            let groups = BucketGroups::new(&input, notes);
            let mut out = OutBuilder::new();
            let slots: Vec<usize> = groups.labels.iter().map(|l| out.slot(l.clone())).collect();
            groups.each_step(steps, ts_of, |g, step, ts, b| {
                out.push(
                    slots[g],
                    step,
                    ts,
                    bucket_fraction(lower[step], upper[step], b),
                )
            })?;
            Ok(Val::Vector(out.finish()))
        }
        NativeHistogramOnly => Ok(Val::Vector(Vec::new())),
        Date(df) => {
            if vals.is_empty() {
                let points = (0..steps)
                    .map(|i| {
                        let t = ts_of(i);
                        Point {
                            t,
                            v: date_value(df, (t / 1000) as f64),
                        }
                    })
                    .collect();
                return Ok(Val::Vector(vec![Series {
                    labels: Labels::default(),
                    points,
                    hists: Vec::new(),
                }]));
            }
            let input = take_vector(vals.remove(0))?;
            let out = map_series(
                input,
                steps,
                ts_of,
                drop_name,
                |_, v| Some(date_value(df, v)),
                step_index,
            )?;
            Ok(Val::Vector(out))
        }
    }
}

/// 3.x's info when a group's buckets had to be made monotonic at `t`.
fn note_forced(notes: &mut Notes, forced: Option<Forced>, t: i64) {
    if let Some(f) = forced {
        let at = annotations::ForcedMonotonicity::at(t, f.min_bucket, f.max_bucket, f.max_diff);
        notes.info_forced(at);
    }
}

/// Classic histogram buckets (series with an `le` label) grouped by their other labels.
struct BucketGroups<'a> {
    input: &'a [Series],
    /// Each group's output labels (no `le`, no name).
    labels: Vec<Labels>,
    /// Per input series: its group and upper bound, if its `le` is valid.
    members: Vec<Option<(usize, f64)>>,
}

impl<'a> BucketGroups<'a> {
    /// Series without a valid `le` are left out with 3.x's warning.
    fn new(input: &'a [Series], notes: &mut Notes) -> Self {
        let mut groups: FxMap<Labels, usize> = FxMap::default();
        let mut labels: Vec<Labels> = Vec::new();
        let mut members = Vec::with_capacity(input.len());
        for s in input {
            let Some(upper) = s.labels.get("le").and_then(parse_go_float) else {
                let le = s.labels.get("le").unwrap_or("");
                notes.warn(annotations::bad_bucket_label(le));
                members.push(None);
                continue;
            };
            let mut key = s.labels.clone();
            key.remove("le");
            let n = groups.len();
            let g = *groups.entry(key.clone()).or_insert_with(|| {
                let mut out = key;
                out.remove(METRIC_NAME);
                labels.push(out);
                n
            });
            members.push(Some((g, upper)));
        }
        BucketGroups {
            input,
            labels,
            members,
        }
    }

    /// Hands `each` every group's buckets at every step where it has some: (group, step,
    /// time, buckets).
    fn each_step(
        &self,
        steps: usize,
        ts_of: &dyn Fn(usize) -> i64,
        mut each: impl FnMut(usize, usize, i64, &mut Vec<Bucket>) -> Result<()>,
    ) -> Result<()> {
        let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); self.labels.len()];
        let mut next = vec![0usize; self.input.len()];
        let mut touched: Vec<usize> = Vec::new();
        for step in 0..steps {
            let ts = ts_of(step);
            touched.clear();
            for (i, s) in self.input.iter().enumerate() {
                let j = next[i];
                if j < s.points.len() && s.points[j].t == ts {
                    next[i] += 1;
                    if let Some((g, upper)) = self.members[i] {
                        if buckets[g].is_empty() {
                            touched.push(g);
                        }
                        buckets[g].push(Bucket {
                            upper,
                            count: s.points[j].v,
                        });
                    }
                }
            }
            for &g in &touched {
                each(g, step, ts, &mut buckets[g])?;
                buckets[g].clear();
            }
        }
        Ok(())
    }
}

/// The fraction of observations between `lower` and `upper` in classic buckets, as 3.x's
/// `BucketFraction` interpolates it.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    go_sort(buckets, |a, b| a.upper < b.upper);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Merges buckets with equal bounds (sorted), adding their counts.
fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// A float as OpenMetrics writes it in labels (`0.5`, `1.0`, `+Inf`).
pub(crate) fn openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = crate::value::format_go_v(f);
    if s.contains(['e', '.']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Parses a float like Go's strconv.ParseFloat for the forms used in `le` labels.
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    s.replace('_', "")
        .parse::<f64>()
        .ok()
        .filter(|_| !s.contains("__"))
}

/// Labels for `absent`/`absent_over_time`: the equality matchers of a selector argument.
pub(crate) fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut l = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut deleted: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            l.set(&m.name, &m.value);
            seen.push(&m.name);
        } else {
            deleted.push(&m.name);
        }
    }
    for d in deleted {
        l.remove(d);
    }
    // Empty values mean "no label" in Prometheus's label builder.
    l.retain(|x| !x.value.is_empty());
    l
}
