//! Native histogram samples in function calls: the `histogram_*` functions read them; the
//! other instant-vector functions ignore them, as Prometheus 3.x does (label functions
//! keep them).

use super::*;
use tsdb::histogram::{self, CounterResetHint};

/// What a function does with the native histogram samples of its vector argument.
enum NativeUse {
    /// A float per histogram: `histogram_count` and friends.
    Stat(fn(&Histogram) -> f64),
    /// `histogram_quantile(q, v)`.
    Quantile,
    /// `histogram_quantiles(v, "label", q…)`.
    Quantiles,
    /// `histogram_fraction(lower, upper, v)`.
    Fraction,
    /// Passed through with new labels.
    Keep,
    /// Dropped.
    Ignore,
}

use tsdb::histogram::Histogram;

fn native_use(name: &str) -> NativeUse {
    use crate::function_table::Histograms as H;
    let Some(f) = crate::function_table::lookup(name) else {
        return NativeUse::Ignore;
    };
    match f.histograms {
        H::Count => NativeUse::Stat(|h| h.count),
        H::Sum => NativeUse::Stat(|h| h.sum),
        H::Avg => NativeUse::Stat(|h| h.sum / h.count),
        H::Stddev => NativeUse::Stat(|h| histogram::variance(h).sqrt()),
        H::Stdvar => NativeUse::Stat(histogram::variance),
        H::Quantile => NativeUse::Quantile,
        H::Quantiles => NativeUse::Quantiles,
        H::Fraction => NativeUse::Fraction,
        H::Keep => NativeUse::Keep,
        H::Ignore | H::Range => NativeUse::Ignore,
    }
}

impl Evaluator<'_, '_> {
    /// Takes the native histogram points out of a call's vector arguments (series left
    /// without points go), and returns what the function makes of them: output series
    /// to merge into the float function's output.
    pub(super) fn native_histogram_args(
        &self,
        name: &str,
        args: &[&Expr],
        vals: &mut [Val],
    ) -> Result<Vec<Series>> {
        let use_ = native_use(name);
        if matches!(use_, NativeUse::Keep) {
            return Ok(Vec::new());
        }
        let mut taken = Vec::new();
        for val in vals.iter_mut() {
            let Val::Vector(series) = val else {
                continue;
            };
            if series.iter().all(|s| s.hists.is_empty()) {
                continue;
            }
            series.retain_mut(|s| {
                if !s.hists.is_empty() {
                    taken.push((s.labels.clone(), std::mem::take(&mut s.hists)));
                }
                !s.points.is_empty()
            });
        }
        let mut out = Vec::new();
        for (labels, hists) in taken {
            if let Some(s) = self.native_series(&use_, args, vals, labels, &hists)? {
                out.extend(s);
            }
        }
        Ok(out)
    }

    fn native_series(
        &self,
        use_: &NativeUse,
        args: &[&Expr],
        vals: &[Val],
        mut labels: Labels,
        hists: &[HPoint],
    ) -> Result<Option<Vec<Series>>> {
        let scalar = |k: usize, step: usize| -> f64 {
            match vals.get(k) {
                Some(Val::Scalar(v)) => v.get(step).copied().unwrap_or(f64::NAN),
                _ => f64::NAN,
            }
        };
        labels.remove(METRIC_NAME);
        let step_of = |t: i64| self.range.index_of(t);
        let points = |f: &dyn Fn(usize, &Histogram) -> f64| -> Vec<Point> {
            hists
                .iter()
                .map(|p| Point {
                    t: p.t,
                    v: f(step_of(p.t), &p.h),
                })
                .collect()
        };
        let series = match use_ {
            NativeUse::Stat(f) => vec![Series::floats(labels, points(&|_, h| f(h)))],
            NativeUse::Quantile => {
                let pts = points(&|step, h| {
                    if !self.ctx.v3 {
                        return histogram::quantile_v2(scalar(0, step), h);
                    }
                    let (v, notes) = histogram::quantile(scalar(0, step), h);
                    self.note_nans(notes);
                    v
                });
                vec![Series::floats(labels, pts)]
            }
            NativeUse::Fraction => {
                let pts = points(&|step, h| {
                    if !self.ctx.v3 {
                        return histogram::fraction_v2(scalar(0, step), scalar(1, step), h);
                    }
                    let (v, notes) = histogram::fraction(scalar(0, step), scalar(1, step), h);
                    if notes.skewed {
                        self.ctx.info(annotations::NATIVE_FRACTION_NANS);
                    }
                    v
                });
                vec![Series::floats(labels, pts)]
            }
            NativeUse::Quantiles => {
                let label = match args.get(1) {
                    Some(Expr::StringLiteral(s)) => s.val.clone(),
                    _ => return Ok(None),
                };
                let mut out = Vec::new();
                for k in 2..vals.len() {
                    let mut by_q: Vec<(u64, Series)> = Vec::new();
                    for p in hists {
                        let step = step_of(p.t);
                        let q = scalar(k, step);
                        let (v, notes) = histogram::quantile(q, &p.h);
                        self.note_nans(notes);
                        let pos = match by_q.iter().position(|(b, _)| *b == q.to_bits()) {
                            Some(i) => i,
                            None => {
                                let mut l = labels.clone();
                                l.set(&label, &crate::functions::openmetrics_float(q));
                                by_q.push((q.to_bits(), Series::floats(l, Vec::new())));
                                by_q.len() - 1
                            }
                        };
                        by_q[pos].1.points.push(Point { t: p.t, v });
                    }
                    out.extend(by_q.into_iter().map(|(_, s)| s));
                }
                out
            }
            NativeUse::Keep | NativeUse::Ignore => return Ok(None),
        };
        Ok(Some(series))
    }

    fn note_nans(&self, notes: histogram::NanNotes) {
        if notes.quantile_nan_result {
            self.ctx.info(annotations::NATIVE_QUANTILE_NAN_RESULT);
        }
        if notes.skewed {
            self.ctx.info(annotations::NATIVE_QUANTILE_NAN_SKEW);
        }
    }
}

impl Evaluator<'_, '_> {
    /// Merges series computed from native histograms into a function's float output
    /// (series of one label set from both become one). A native and a classic histogram
    /// answering for the same labels at the same time give nothing there and a warning,
    /// as 3.x does.
    pub(super) fn merge_native_output(
        &self,
        out: &mut Vec<Series>,
        native: Vec<Series>,
    ) -> Result<()> {
        // Native results by label set; two at one time are the usual collision.
        let mut by_labels: FxMap<Labels, Vec<Point>> = FxMap::default();
        for n in native {
            by_labels.entry(n.labels).or_default().extend(n.points);
        }
        let mut index: FxMap<Labels, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for (labels, mut points) in by_labels {
            points.sort_by_key(|p| p.t);
            if points.windows(2).any(|w| w[0].t == w[1].t) {
                return Err(Error::exec(
                    "vector cannot contain metrics with the same labelset",
                ));
            }
            let Some(&i) = index.get(&labels) else {
                index.insert(labels.clone(), out.len());
                out.push(Series::floats(labels, points));
                continue;
            };
            // Both sorted by time: merged in one pass, times present in both left out.
            let floats = std::mem::take(&mut out[i].points);
            let mut merged = Vec::with_capacity(floats.len() + points.len());
            let (mut f, mut n, mut clashed) = (0, 0, false);
            while f < floats.len() || n < points.len() {
                match (floats.get(f), points.get(n)) {
                    (Some(a), Some(b)) if a.t == b.t => {
                        clashed = true;
                        f += 1;
                        n += 1;
                    }
                    (Some(a), Some(b)) if a.t < b.t => {
                        merged.push(*a);
                        f += 1;
                    }
                    (Some(a), None) => {
                        merged.push(*a);
                        f += 1;
                    }
                    (_, Some(b)) => {
                        merged.push(*b);
                        n += 1;
                    }
                    (None, None) => break,
                }
            }
            if clashed {
                self.ctx.warn(annotations::mixed_classic_native());
            }
            out[i].points = merged;
        }
        out.retain(|s| !s.is_empty());
        Ok(())
    }
}

impl Evaluator<'_, '_> {
    /// The native histogram part of an aggregation: takes the histogram points out of
    /// `input` and folds them per group and step into `out` (the float aggregation's
    /// output). `sum` and `avg` add histograms; `count` and `group` count them with the
    /// floats; the other operators ignore them, as 3.x does.
    pub(super) fn aggregate_histograms(
        &self,
        op: token::TokenId,
        op_name: String,
        value_label: Option<&str>,
        grouping: &[String],
        without: bool,
        input: &mut Vec<Series>,
    ) -> Option<HistAggregation> {
        // limitk and limit_ratio pick series, histograms or not.
        if matches!(op, token::T_LIMITK | token::T_LIMIT_RATIO)
            || input.iter().all(|s| s.hists.is_empty())
        {
            return None;
        }
        let mut taken = Vec::new();
        input.retain_mut(|s| {
            if !s.hists.is_empty() {
                taken.push((s.labels.clone(), std::mem::take(&mut s.hists)));
            }
            !s.points.is_empty()
        });
        Some(HistAggregation {
            op,
            op_name,
            value_label: value_label.map(str::to_string),
            grouping: grouping.to_vec(),
            without,
            taken,
        })
    }

    /// Merges a [`HistAggregation`] into the float aggregation's output.
    pub(super) fn finish_histogram_aggregation(
        &self,
        agg: HistAggregation,
        out: &mut Vec<Series>,
    ) -> Result<()> {
        let HistAggregation {
            op,
            op_name,
            value_label,
            grouping,
            without,
            taken,
        } = agg;
        if let (token::T_COUNT_VALUES, Some(label)) = (op, value_label) {
            count_histogram_values(&label, &grouping, without, taken, out);
            return Ok(());
        }
        let name = match op {
            token::T_SUM => "sum",
            token::T_AVG => "avg",
            token::T_COUNT => "count",
            token::T_GROUP => "group",
            _ => {
                self.ctx
                    .info(annotations::histogram_ignored_in_aggregation(&op_name));
                return Ok(());
            }
        };
        // Per group and step: the histograms met, and the group's metric name.
        let mut groups: Vec<(Labels, StepHists, String)> = Vec::new();
        let mut index: FxMap<Labels, usize> = FxMap::default();
        for (labels, hists) in taken {
            let key = crate::aggregation::group_labels(&labels, &grouping, without);
            let g = *index.entry(key.clone()).or_insert_with(|| {
                let metric = labels.get(METRIC_NAME).unwrap_or("").to_string();
                groups.push((key, FxMap::default(), metric));
                groups.len() - 1
            });
            for p in hists {
                groups[g].1.entry(p.t).or_default().push(p.h);
            }
        }
        for (labels, steps, metric) in groups {
            let pos = match out.iter().position(|s| s.labels == labels) {
                Some(p) => p,
                None => {
                    out.push(Series::floats(labels, Vec::new()));
                    out.len() - 1
                }
            };
            let series = &mut out[pos];
            let mut ts: Vec<i64> = steps.keys().copied().collect();
            ts.sort_unstable();
            for t in ts {
                let Some(hists) = steps.get(&t) else {
                    continue;
                };
                let n = hists.len();
                let float = series.points.iter().position(|p| p.t == t);
                match (name, float) {
                    ("count", Some(i)) => series.points[i].v += n as f64,
                    ("group", Some(_)) => {}
                    ("count", None) => series.points.push(Point { t, v: n as f64 }),
                    ("group", None) => series.points.push(Point { t, v: 1.0 }),
                    (_, Some(i)) => {
                        series.points.remove(i);
                        self.ctx
                            .warn(annotations::mixed_floats_histograms_aggregation());
                    }
                    (_, None) => {
                        let refs: Vec<&Histogram> = hists.iter().map(|h| h.as_ref()).collect();
                        let Some(mut h) = self.sum_histograms(&refs, name == "avg", &metric) else {
                            continue;
                        };
                        histogram::compact_buckets(&mut h);
                        h.t = t;
                        series.hists.push(HPoint { t, h: Arc::new(h) });
                    }
                }
            }
            series.points.sort_by_key(|p| p.t);
        }
        out.retain(|s| !s.is_empty());
        Ok(())
    }
}

/// Per step: the histograms to fold.
type StepHists = FxMap<i64, Vec<Arc<Histogram>>>;

impl Evaluator<'_, '_> {
    /// The compensated sum (or with `mean`, the mean) of histograms, with 3.x's
    /// annotations; `None` (and a warning) when exponential and custom buckets meet.
    pub(super) fn sum_histograms(
        &self,
        hists: &[&Histogram],
        mean: bool,
        metric: &str,
    ) -> Option<Histogram> {
        let folded = if mean {
            histogram::kahan_mean(hists)
        } else {
            histogram::kahan_sum(hists)
        };
        match folded {
            Ok((h, noticed)) => {
                if noticed.counter_reset_collision {
                    self.ctx
                        .warn(annotations::counter_reset_collision("aggregation"));
                }
                if noticed.custom_bounds_reconciled {
                    self.ctx
                        .info(annotations::mismatched_custom_buckets("aggregation"));
                }
                Some(h)
            }
            Err(_) => {
                self.ctx.warn(annotations::mixed_exponential_custom(metric));
                None
            }
        }
    }
}

/// Histogram points taken out of an aggregation's input, to fold after the floats.
pub(super) struct HistAggregation {
    op: token::TokenId,
    op_name: String,
    /// `count_values`'s label.
    value_label: Option<String>,
    grouping: Vec<String>,
    without: bool,
    taken: Vec<(Labels, Vec<HPoint>)>,
}

/// `count_values` over histograms: each distinct histogram, written as Go prints it,
/// is a value.
fn count_histogram_values(
    label: &str,
    grouping: &[String],
    without: bool,
    taken: Vec<(Labels, Vec<HPoint>)>,
    out: &mut Vec<Series>,
) {
    let mut counts: FxMap<(Labels, i64), f64> = FxMap::default();
    for (labels, hists) in taken {
        for p in hists {
            let mut key = crate::aggregation::group_labels(&labels, grouping, without);
            key.set(label, &histogram_go_string(&p.h));
            *counts.entry((key, p.t)).or_default() += 1.0;
        }
    }
    let mut by_labels: FxMap<Labels, Vec<Point>> = FxMap::default();
    for ((labels, t), v) in counts {
        by_labels.entry(labels).or_default().push(Point { t, v });
    }
    for (labels, mut points) in by_labels {
        points.sort_by_key(|p| p.t);
        match out.iter_mut().find(|s| s.labels == labels) {
            Some(s) => {
                s.points.extend(points);
                s.points.sort_by_key(|p| p.t);
            }
            None => out.push(Series::floats(labels, points)),
        }
    }
}

/// A histogram as Go's `FloatHistogram.String` prints it: `{count:N, sum:N, buckets…}`,
/// negative buckets first, each `(lower,upper]:count`.
pub(crate) fn histogram_go_string(h: &Histogram) -> String {
    use crate::value::{format_go_g, format_go_v};
    use tsdb::histogram::Bucket;
    let bucket = |b: &Bucket| {
        format!(
            "{}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            format_go_g(b.lower),
            format_go_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            format_go_v(b.count)
        )
    };
    let mut s = format!(
        "{{count:{}, sum:{}",
        format_go_g(h.count),
        format_go_g(h.sum)
    );
    let mut negative: Vec<Bucket> = Vec::new();
    let mut positive: Vec<Bucket> = Vec::new();
    for b in histogram::side_buckets(h, false) {
        if b.count != 0.0 {
            negative.push(b);
        }
    }
    for b in histogram::side_buckets(h, true) {
        if b.count != 0.0 {
            positive.push(b);
        }
    }
    for b in negative.iter().rev() {
        s.push_str(", ");
        s.push_str(&bucket(b));
    }
    if h.zero_count != 0.0 {
        let zt = h.zero_threshold;
        s.push_str(", ");
        s.push_str(&bucket(&Bucket {
            lower: -zt,
            upper: zt,
            lower_inclusive: true,
            upper_inclusive: true,
            count: h.zero_count,
        }));
    }
    for b in &positive {
        s.push_str(", ");
        s.push_str(&bucket(b));
    }
    s.push('}');
    s
}

impl Evaluator<'_, '_> {
    /// The histogram samples of the series a set just returned, as the selector reads
    /// them: under `histogram_count`/`histogram_sum`/`histogram_avg` only their count and
    /// sum, with counter reset hints detected sample by sample, as 3.x's
    /// `HistogramStatsIterator` gives them.
    pub(super) fn histograms_read(&self, set: &mut dyn SeriesSet) -> Vec<HPoint> {
        let hists = set.take_histograms();
        if !self.ctx.histogram_stats.get() || hists.is_empty() {
            return hists;
        }
        stats_only(hists)
    }
}

/// `HistogramStatsIterator`: each sample reduced to schema, count and sum; an unknown
/// counter reset hint replaced by what comparing with the previous sample finds.
fn stats_only(hists: Vec<HPoint>) -> Vec<HPoint> {
    let mut last: Option<Arc<Histogram>> = None;
    hists
        .into_iter()
        .map(|p| {
            if p.h.is_stale() {
                return p;
            }
            let hint = match (p.h.counter_reset_hint, &last) {
                (CounterResetHint::Unknown, Some(prev)) => {
                    if histogram::detect_reset(&histogram::view(&p.h), &histogram::view(prev)) {
                        CounterResetHint::CounterReset
                    } else {
                        CounterResetHint::NotCounterReset
                    }
                }
                (hint, _) => hint,
            };
            let stats = Histogram {
                t: p.h.t,
                counter_reset_hint: hint,
                schema: p.h.schema,
                count: p.h.count,
                sum: p.h.sum,
                ..Histogram::default()
            };
            last = Some(p.h);
            HPoint {
                t: p.t,
                h: Arc::new(stats),
            }
        })
        .collect()
}
