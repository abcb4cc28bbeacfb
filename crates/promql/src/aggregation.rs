//! Aggregation operators (`sum`, `topk`, `quantile`, `count_values`, …) over an instant
//! vector at every step, materialised, and the per-step accumulator of the streamed path.

use crate::engine::{FxMap, OutBuilder, Val, METRIC_NAME};
use crate::error::{Error, Result};
use crate::functions::{go_sort, quantile, valid_label_name};
use crate::value::{format_value, Series};
use promql_parser::parser::token;
use tsdb::labels::Labels;

/// One group's running state at one step.
#[derive(Clone, Default)]
struct Acc {
    value: f64,
    mean: f64,
    count: usize,
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

fn heap_push(h: &mut Vec<(usize, f64)>, x: (usize, f64), less: &impl Fn(f64, f64) -> bool) {
    h.push(x);
    let n = h.len() - 1;
    heap_up(h, n, less);
}

fn heap_pop(h: &mut Vec<(usize, f64)>, less: &impl Fn(f64, f64) -> bool) {
    let n = h.len() - 1;
    h.swap(0, n);
    heap_down(h, 0, n, less);
    h.pop();
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

/// One group's state at one step, with the same arithmetic as [`aggregate`].
#[derive(Clone, Copy, Default)]
pub(crate) struct StepAcc {
    value: f64,
    mean: f64,
    pub(crate) count: u32,
}

impl StepAcc {
    #[inline]
    pub(crate) fn add(&mut self, kind: StreamAgg, v: f64) {
        if self.count == 0 {
            self.count = 1;
            self.mean = v;
            self.value = match kind {
                StreamAgg::Stddev | StreamAgg::Stdvar => 0.0,
                StreamAgg::Group => 1.0,
                _ => v,
            };
            return;
        }
        match kind {
            StreamAgg::Sum => self.value += v,
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

    pub(crate) fn value(&self, kind: StreamAgg) -> f64 {
        match kind {
            StreamAgg::Avg => self.mean,
            StreamAgg::Count => self.count as f64,
            StreamAgg::Stdvar => self.value / self.count as f64,
            StreamAgg::Stddev => (self.value / self.count as f64).sqrt(),
            _ => self.value,
        }
    }
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
) -> Result<Vec<Series>> {
    let is_topk = op == token::T_TOPK;
    let is_bottomk = op == token::T_BOTTOMK;
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
        if !valid_label_name(l) {
            return Err(Error::exec(format!("invalid label name {l:?}")));
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
                group_slot.push(if is_topk || is_bottomk {
                    usize::MAX
                } else {
                    out.slot(g)
                });
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
    for step in 0..steps {
        check()?;
        let ts = ts_of(step);
        order.clear();
        let mut k = 0i64;
        if is_topk || is_bottomk {
            let f = scalar_param.as_ref().map_or(f64::NAN, |p| p[step]);
            if !(f > -9.223_372_036_854_776e18 && f < 9.223_372_036_854_776e18) {
                return Err(Error::exec(format!(
                    "Scalar value {} overflows int64",
                    crate::value::format_go_v(f)
                )));
            }
            k = f as i64;
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
                a.value = v;
                a.mean = v;
                a.count = 1;
                a.heap.clear();
                match op {
                    token::T_STDDEV | token::T_STDVAR => a.value = 0.0,
                    token::T_TOPK | token::T_BOTTOMK | token::T_QUANTILE => a.heap.push((i, v)),
                    token::T_GROUP => a.value = 1.0,
                    _ => {}
                }
                continue;
            }
            let a = &mut accs[g];
            match op {
                token::T_SUM => a.value += v,
                token::T_AVG => {
                    a.count += 1;
                    let c = a.count as f64;
                    if a.mean.is_infinite() {
                        if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                            continue;
                        }
                        if !v.is_infinite() && !v.is_nan() {
                            continue;
                        }
                    }
                    a.mean += v / c - a.mean / c;
                }
                token::T_GROUP => {}
                token::T_MAX => {
                    if a.value < v || a.value.is_nan() {
                        a.value = v;
                    }
                }
                token::T_MIN => {
                    if a.value > v || a.value.is_nan() {
                        a.value = v;
                    }
                }
                token::T_COUNT | token::T_COUNT_VALUES => a.count += 1,
                token::T_STDDEV | token::T_STDVAR => {
                    a.count += 1;
                    let delta = v - a.mean;
                    a.mean += delta / a.count as f64;
                    a.value += delta * (v - a.mean);
                }
                token::T_TOPK | token::T_BOTTOMK => {
                    let less: &dyn Fn(f64, f64) -> bool =
                        if is_topk { &less_top } else { &less_bottom };
                    let top = a.heap[0].1;
                    let better = if is_topk { top < v } else { top > v };
                    if (a.heap.len() as i64) < k || better || top.is_nan() {
                        if a.heap.len() as i64 == k {
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
                _ => return Err(Error::exec("unknown aggregation operator")),
            }
        }
        for &g in &order {
            let a = &mut accs[g];
            let value = match op {
                token::T_AVG => a.mean,
                token::T_COUNT | token::T_COUNT_VALUES => a.count as f64,
                token::T_STDVAR => a.value / a.count as f64,
                token::T_STDDEV => (a.value / a.count as f64).sqrt(),
                token::T_QUANTILE => {
                    let mut vals: Vec<f64> = a.heap.iter().map(|x| x.1).collect();
                    quantile(q, &mut vals)
                }
                token::T_TOPK | token::T_BOTTOMK => {
                    // sort.Reverse of the heap order.
                    if is_topk {
                        go_sort(&mut a.heap, |x, y| less_top(y.1, x.1));
                    } else {
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
                _ => a.value,
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
