//! Aggregation operators (`sum`, `topk`, `quantile`, `count_values`, …) over an instant
//! vector at every step, materialised, and the per-step accumulator of the streamed path.

use crate::error::{Error, Result};
use crate::functions::{go_sort, kahan_inc, quantile, valid_label_name};
use crate::node_value::{FxMap, OutBuilder, Val, METRIC_NAME};
use crate::value::{format_value, Series};
use promql_parser::parser::token;
use tsdb::labels::Labels;

/// One group's running state at one step.
#[derive(Clone, Default)]
struct Acc {
    /// sum, avg, count, min, max, group, stddev, stdvar and count_values.
    fold: StepAcc,
    /// topk/bottomk heap and quantile values: (input series index, value).
    heap: Vec<(usize, f64)>,
}

/// Go's container/heap with a `less` over (series, value) pairs.
fn heap_up(h: &mut [(usize, f64)], mut j: usize, less: &impl Fn(f64, f64) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [(usize, f64)], i0: usize, n: usize, less: &impl Fn(f64, f64) -> bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(h[j2].1, h[j1].1) {
            j = j2;
        }
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

fn heap_pop(h: &mut Vec<(usize, f64)>, less: &impl Fn(f64, f64) -> bool) {
    let n = h.len() - 1;
    h.swap(0, n);
    heap_down(h, 0, n, less);
    h.pop();
}

fn heap_push(h: &mut Vec<(usize, f64)>, x: (usize, f64), less: &impl Fn(f64, f64) -> bool) {
    h.push(x);
    let n = h.len() - 1;
    heap_up(h, n, less);
}

pub(crate) fn group_labels(l: &Labels, grouping: &[String], without: bool) -> Labels {
    let mut out = l.clone();
    if without {
        out.retain(|x| x.name != METRIC_NAME && !grouping.contains(&x.name));
    } else {
        out.retain(|x| grouping.contains(&x.name));
    }
    out
}

/// Aggregations that fold one value at a time with O(1) state per group and step.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamAgg {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
}

impl StreamAgg {
    pub(crate) fn from_op(op: token::TokenId) -> Option<Self> {
        Some(match op {
            token::T_SUM => StreamAgg::Sum,
            token::T_AVG => StreamAgg::Avg,
            token::T_COUNT => StreamAgg::Count,
            token::T_MIN => StreamAgg::Min,
            token::T_MAX => StreamAgg::Max,
            token::T_GROUP => StreamAgg::Group,
            token::T_STDDEV => StreamAgg::Stddev,
            token::T_STDVAR => StreamAgg::Stdvar,
            _ => return None,
        })
    }
}

/// One group's state at one step for the aggregations that fold one value at a time: the
/// streamed path keeps one per group and step, [`aggregate`] one per group. `v3` selects
/// Prometheus 3.x's arithmetic: Kahan-compensated sums and means, and NaN deviations for
/// groups with non-finite values.
#[derive(Clone, Copy, Default)]
pub(crate) struct StepAcc {
    /// Sum, extreme, or sum of squared deviations.
    value: f64,
    mean: f64,
    /// Kahan compensation of `value` or, once `incremental`, of `mean` (3.x).
    c: f64,
    pub(crate) count: u32,
    /// 3.x avg: the sum overflowed, so the mean is kept incrementally from there on.
    incremental: bool,
}

impl StepAcc {
    #[inline]
    pub(crate) fn add(&mut self, kind: StreamAgg, v: f64, v3: bool) {
        if self.count == 0 {
            *self = StepAcc {
                value: match kind {
                    StreamAgg::Stddev | StreamAgg::Stdvar if v3 && !v.is_finite() => f64::NAN,
                    StreamAgg::Stddev | StreamAgg::Stdvar => 0.0,
                    StreamAgg::Group => 1.0,
                    _ => v,
                },
                mean: v,
                c: 0.0,
                count: 1,
                incremental: false,
            };
            return;
        }
        match kind {
            StreamAgg::Sum if v3 => (self.value, self.c) = kahan_inc_v3(v, self.value, self.c),
            StreamAgg::Sum => self.value += v,
            StreamAgg::Avg if v3 => {
                self.count += 1;
                let n = self.count as f64;
                if !self.incremental {
                    let (sum, c) = kahan_inc_v3(v, self.value, self.c);
                    if !sum.is_infinite() {
                        (self.value, self.c) = (sum, c);
                        return;
                    }
                    // The sum would overflow: keep the mean incrementally from here on.
                    self.incremental = true;
                    self.mean = self.value / (n - 1.0);
                    self.c /= n - 1.0;
                }
                let q = (n - 1.0) / n;
                (self.mean, self.c) = kahan_inc_v3(v / n, q * self.mean, q * self.c);
            }
            StreamAgg::Avg => {
                self.count += 1;
                let c = self.count as f64;
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                self.mean += v / c - self.mean / c;
            }
            StreamAgg::Count => self.count += 1,
            StreamAgg::Group => {}
            StreamAgg::Max => {
                if self.value < v || self.value.is_nan() {
                    self.value = v;
                }
            }
            StreamAgg::Min => {
                if self.value > v || self.value.is_nan() {
                    self.value = v;
                }
            }
            StreamAgg::Stddev | StreamAgg::Stdvar => {
                self.count += 1;
                let delta = v - self.mean;
                self.mean += delta / self.count as f64;
                self.value += delta * (v - self.mean);
            }
        }
    }

    pub(crate) fn value(&self, kind: StreamAgg, v3: bool) -> f64 {
        let n = self.count as f64;
        match kind {
            StreamAgg::Sum if v3 => self.value + self.c,
            StreamAgg::Avg if v3 && self.incremental => self.mean + self.c,
            StreamAgg::Avg if v3 => self.value / n + self.c / n,
            StreamAgg::Avg => self.mean,
            StreamAgg::Count => n,
            StreamAgg::Stdvar => self.value / n,
            StreamAgg::Stddev => (self.value / n).sqrt(),
            _ => self.value,
        }
    }
}

/// Prometheus 3.x's Kahan–Neumaier step: the compensation is dropped once the sum is
/// infinite.
#[inline]
pub(crate) fn kahan_inc_v3(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    if t.is_infinite() {
        return (t, 0.0);
    }
    kahan_inc(inc, sum, c)
}

/// Whether `limit_ratio(ratio, …)` keeps a series: its label hash, as a fraction of the
/// hash space, is below `ratio` (or, for a negative ratio, at or above `1 + ratio`), so the
/// same series are kept at every step and `r` and `-(1 - r)` split the input.
fn in_ratio_sample(ratio: f64, offset: f64) -> bool {
    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
}

/// A series' place in the hash space for `limit_ratio`: the xxhash of its labels as
/// Prometheus hashes them, over the largest hash. `buf` is scratch.
fn ratio_offset(labels: &Labels, buf: &mut Vec<u8>) -> f64 {
    crate::node_value::labels_hash(labels, buf) as f64 / u64::MAX as f64
}

/// An aggregation operator over an instant vector at every step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn aggregate(
    op: token::TokenId,
    grouping: &[String],
    without: bool,
    param: Option<Val>,
    input: &[Series],
    steps: usize,
    ts_of: impl Fn(usize) -> i64,
    check: impl Fn() -> Result<()>,
    v3: bool,
) -> Result<Vec<Series>> {
    // count_values counts per value group.
    let fold = match op {
        token::T_COUNT_VALUES => Some(StreamAgg::Count),
        _ => StreamAgg::from_op(op),
    };
    let is_topk = op == token::T_TOPK;
    let is_bottomk = op == token::T_BOTTOMK;
    let is_limitk = op == token::T_LIMITK;
    let is_limit_ratio = op == token::T_LIMIT_RATIO;
    // Operators whose output is a subset of the input series.
    let selects = is_topk || is_bottomk || is_limitk || is_limit_ratio;
    let count_values = op == token::T_COUNT_VALUES;
    let scalar_param: Option<Vec<f64>> = match &param {
        Some(Val::Scalar(v)) => Some(v.clone()),
        _ => None,
    };
    let value_label = match &param {
        Some(Val::Str(s)) => Some(s.clone()),
        _ => None,
    };
    if count_values {
        let l = value_label.as_deref().unwrap_or("");
        if !valid_label_name(l, v3) {
            let quoted = crate::lex::go_quote(l);
            return Err(Error::exec(format!("invalid label name {quoted}")));
        }
    }
    let mut grouping: Vec<String> = grouping.to_vec();
    if let (true, Some(l), false) = (count_values, &value_label, without) {
        grouping.push(l.clone());
        grouping.sort();
    }
    let mut out = OutBuilder::new();
    // Static groups (all but count_values): group id per input series.
    let mut group_ids: FxMap<Labels, usize> = FxMap::default();
    let mut group_slot: Vec<usize> = Vec::new();
    let mut series_group: Vec<usize> = Vec::with_capacity(input.len());
    if !count_values {
        for s in input {
            let g = group_labels(&s.labels, &grouping, without);
            let n = group_ids.len();
            let id = *group_ids.entry(g.clone()).or_insert(n);
            if id == n {
                group_slot.push(if selects { usize::MAX } else { out.slot(g) });
            }
            series_group.push(id);
        }
    }
    let mut series_slot: Vec<usize> = vec![usize::MAX; input.len()];
    let mut accs: Vec<Acc> = vec![Acc::default(); group_ids.len()];
    let mut acc_step: Vec<usize> = vec![usize::MAX; group_ids.len()];
    let mut order: Vec<usize> = Vec::new();
    let mut next = vec![0usize; input.len()];
    let less_top = |a: f64, b: f64| a.is_nan() || a < b;
    let less_bottom = |a: f64, b: f64| a.is_nan() || a > b;
    let mut cv_groups: FxMap<Labels, usize> = FxMap::default();
    let mut cv_labels: Vec<Labels> = Vec::new();
    if v3 && selects {
        let p = scalar_param.as_deref().unwrap_or(&[]);
        let nan = p.iter().any(|v| v.is_nan());
        let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = p.iter().copied().fold(f64::INFINITY, f64::min);
        // A NaN makes Go's running max and min NaN, so it is met before the other checks.
        if is_limit_ratio {
            if nan {
                return Err(Error::exec("Ratio value is NaN"));
            }
            if max == 0.0 && min == 0.0 {
                return Ok(Vec::new());
            }
        } else {
            if nan {
                return Err(Error::exec("Parameter value is NaN"));
            }
            if max < 1.0 {
                return Ok(Vec::new());
            }
        }
    }
    // Hashed once per series, not per step.
    let offsets: Vec<f64> = if is_limit_ratio {
        let mut buf = Vec::new();
        input
            .iter()
            .map(|s| ratio_offset(&s.labels, &mut buf))
            .collect()
    } else {
        Vec::new()
    };
    let mut ratio = 0.0;
    for step in 0..steps {
        check()?;
        let ts = ts_of(step);
        order.clear();
        let mut k = 0i64;
        if is_limit_ratio {
            ratio = scalar_param
                .as_ref()
                .map_or(0.0, |p| p[step])
                .clamp(-1.0, 1.0);
            if ratio == 0.0 {
                continue;
            }
        }
        if is_topk || is_bottomk || is_limitk {
            let f = scalar_param.as_ref().map_or(f64::NAN, |p| p[step]);
            if !(f > -9.223_372_036_854_776e18 && f < 9.223_372_036_854_776e18) {
                return Err(Error::exec(format!(
                    "Scalar value {} overflows int64",
                    crate::value::format_go_v(f)
                )));
            }
            k = f as i64;
            if v3 {
                k = k.min(input.len() as i64);
            }
            if k < 1 {
                continue;
            }
        }
        let q = scalar_param.as_ref().map_or(f64::NAN, |p| p[step]);
        if count_values {
            cv_groups.clear();
            cv_labels.clear();
        }
        for (i, s) in input.iter().enumerate() {
            let j = next[i];
            if j >= s.points.len() || s.points[j].t != ts {
                continue;
            }
            next[i] += 1;
            let v = s.points[j].v;
            let g = if count_values {
                let mut m = s.labels.clone();
                m.set(value_label.as_deref().unwrap_or(""), &format_value(v));
                let gl = group_labels(&m, &grouping, without);
                let n = cv_groups.len();
                let id = *cv_groups.entry(gl.clone()).or_insert(n);
                if id == n {
                    cv_labels.push(gl);
                    if accs.len() <= id {
                        accs.push(Acc::default());
                        acc_step.push(usize::MAX);
                    }
                    acc_step[id] = usize::MAX;
                }
                id
            } else {
                series_group[i]
            };
            if acc_step[g] != step {
                acc_step[g] = step;
                order.push(g);
                let a = &mut accs[g];
                a.fold = StepAcc::default();
                a.heap.clear();
                match fold {
                    Some(kind) => a.fold.add(kind, v, v3),
                    None if is_limit_ratio && !in_ratio_sample(ratio, offsets[i]) => {}
                    None => a.heap.push((i, v)),
                }
                continue;
            }
            let a = &mut accs[g];
            if let Some(kind) = fold {
                a.fold.add(kind, v, v3);
                continue;
            }
            match op {
                token::T_TOPK | token::T_BOTTOMK => {
                    let less: &dyn Fn(f64, f64) -> bool =
                        if is_topk { &less_top } else { &less_bottom };
                    let top = a.heap[0].1;
                    let better = if is_topk { top < v } else { top > v };
                    let full = a.heap.len() as i64 >= k;
                    if v3 {
                        // 3.x: `h[0] = x; heap.Fix(h, 0)`. Which of equal values stay
                        // depends on the heap's shape, so each version's is kept exactly.
                        if !full {
                            heap_push(&mut a.heap, (i, v), &less);
                        } else if better || (top.is_nan() && !v.is_nan()) {
                            a.heap[0] = (i, v);
                            let n = a.heap.len();
                            heap_down(&mut a.heap, 0, n, &less);
                        }
                    } else if !full || better || top.is_nan() {
                        // 2.42: pop the root, push the new sample.
                        if full {
                            if k == 1 {
                                a.heap[0] = (i, v);
                                continue;
                            }
                            heap_pop(&mut a.heap, &less);
                        }
                        heap_push(&mut a.heap, (i, v), &less);
                    }
                }
                token::T_QUANTILE => a.heap.push((i, v)),
                token::T_LIMITK => {
                    if (a.heap.len() as i64) < k {
                        a.heap.push((i, v));
                    }
                }
                token::T_LIMIT_RATIO => {
                    if in_ratio_sample(ratio, offsets[i]) {
                        a.heap.push((i, v));
                    }
                }
                _ => return Err(Error::exec("unknown aggregation operator")),
            }
        }
        for &g in &order {
            let a = &mut accs[g];
            let value = match (fold, op) {
                (Some(kind), _) => a.fold.value(kind, v3),
                (None, token::T_QUANTILE) => {
                    let mut vals: Vec<f64> = a.heap.iter().map(|x| x.1).collect();
                    quantile(q, &mut vals)
                }
                (
                    None,
                    token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO,
                ) => {
                    // sort.Reverse of the heap order; limits keep the input order.
                    if is_topk {
                        go_sort(&mut a.heap, |x, y| less_top(y.1, x.1));
                    } else if is_bottomk {
                        go_sort(&mut a.heap, |x, y| less_bottom(y.1, x.1));
                    }
                    for &(i, v) in &a.heap {
                        if series_slot[i] == usize::MAX {
                            series_slot[i] = out.slot(input[i].labels.clone());
                        }
                        out.push(series_slot[i], step, ts, v)?;
                    }
                    continue;
                }
                _ => return Err(Error::exec("unknown aggregation operator")),
            };
            let slot = if count_values {
                out.slot(cv_labels[g].clone())
            } else {
                group_slot[g]
            };
            out.push(slot, step, ts, value)?;
        }
    }
    Ok(out.finish())
}
