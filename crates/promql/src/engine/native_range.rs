//! Range functions over windows holding native histogram samples, as Prometheus 3.x
//! evaluates them: `rate`/`increase`/`delta` (reset-aware histogram subtraction, then the
//! float extrapolation), `irate`/`idelta`, `sum`/`avg`/`count`/`last`/`first`/`present_over_time`,
//! `resets` and `changes`. The float-only functions ignore histograms.

use super::*;
use crate::functions::{range_fn, Window};
use tsdb::histogram::{self, CounterResetHint, Histogram};

/// One window's result: a float or a histogram.
pub(super) enum Out {
    F(f64),
    H(Histogram),
}

impl Evaluator<'_, '_> {
    /// Evaluates `rf` over one window of floats `fs` and histograms `hs` (both in time
    /// order, stale markers removed, at least one non-empty).
    pub(super) fn histogram_window(
        &self,
        rf: RangeFn,
        fs: &[RawSample],
        hs: &[HPoint],
        at: &Window,
        args: &[f64],
        metric: &str,
    ) -> Result<Option<Out>> {
        use RangeFn::*;
        if hs.is_empty() {
            return Ok(range_fn(rf, fs, at, args)?.map(Out::F));
        }
        let mixed = !fs.is_empty();
        Ok(match rf {
            Rate | Increase | Delta => {
                if mixed {
                    self.ctx.warn(annotations::mixed_floats_histograms(metric));
                    return Ok(None);
                }
                let counter = rf != Delta;
                self.histogram_rate(hs, at, counter, rf == Rate, metric)
                    .map(Out::H)
            }
            Irate | Idelta => self.histogram_instant(fs, hs, rf == Irate, metric),
            CountOverTime => Some(Out::F((fs.len() + hs.len()) as f64)),
            PresentOverTime | AbsentOverTime => Some(Out::F(1.0)),
            LastOverTime | TsOfLastOverTime => {
                let last_h = hs.last().map(|p| p.t);
                let last_f = fs.last().map(|p| p.t);
                let hist_wins = last_f.is_none_or(|f| last_h.is_some_and(|h| h > f));
                match (rf, hist_wins) {
                    (TsOfLastOverTime, true) => last_h.map(|t| Out::F(t as f64 / 1000.0)),
                    (TsOfLastOverTime, false) => last_f.map(|t| Out::F(t as f64 / 1000.0)),
                    (_, true) => hs.last().map(|p| Out::H((*p.h).clone())),
                    (_, false) => fs.last().map(|p| Out::F(p.v)),
                }
            }
            FirstOverTime | TsOfFirstOverTime => {
                let first_h = hs.first().map(|p| p.t);
                let first_f = fs.first().map(|p| p.t);
                let hist_wins = first_f.is_none_or(|f| first_h.is_some_and(|h| h < f));
                match (rf, hist_wins) {
                    (TsOfFirstOverTime, true) => first_h.map(|t| Out::F(t as f64 / 1000.0)),
                    (TsOfFirstOverTime, false) => first_f.map(|t| Out::F(t as f64 / 1000.0)),
                    (_, true) => hs.first().map(|p| Out::H((*p.h).clone())),
                    (_, false) => fs.first().map(|p| Out::F(p.v)),
                }
            }
            SumOverTime | AvgOverTime => {
                if mixed {
                    self.ctx.warn(annotations::mixed_floats_histograms(metric));
                    return Ok(None);
                }
                self.histogram_sum(hs, rf == AvgOverTime, metric)
                    .map(Out::H)
            }
            Resets | Changes => Some(Out::F(resets_or_changes(fs, hs, rf == Resets) as f64)),
            _ => {
                // Float functions: histograms are left out.
                if mixed {
                    self.ctx
                        .info(annotations::histogram_ignored_in_mixed_range(metric));
                    range_fn(rf, fs, at, args)?.map(Out::F)
                } else {
                    None
                }
            }
        })
    }

    /// `histogramRate` and the extrapolation of `extrapolatedRate`.
    fn histogram_rate(
        &self,
        hs: &[HPoint],
        at: &Window,
        counter: bool,
        is_rate: bool,
        metric: &str,
    ) -> Option<Histogram> {
        if hs.len() < 2 {
            return None;
        }
        let first = &hs[0].h;
        let last = &hs[hs.len() - 1].h;
        let gauge = |h: &Histogram| h.counter_reset_hint == CounterResetHint::Gauge;
        if counter && (gauge(first) || gauge(last)) {
            self.ctx
                .warn(annotations::native_histogram_not_counter(metric));
        }
        let empty;
        let mut prev: &Histogram = first;
        if counter && histogram::detect_reset(&histogram::view(&hs[1].h), &histogram::view(prev)) {
            empty = Histogram {
                schema: hs[1].h.schema,
                custom_values: hs[1].h.custom_values.clone(),
                ..Histogram::default()
            };
            prev = &empty;
        }
        if last.uses_custom_buckets() != prev.uses_custom_buckets() {
            self.ctx.warn(annotations::mixed_exponential_custom(metric));
            return None;
        }
        let mut min_schema = last.schema.min(prev.schema);
        for p in &hs[1..hs.len() - 1] {
            if !counter {
                continue;
            }
            if gauge(&p.h) {
                self.ctx
                    .warn(annotations::native_histogram_not_counter(metric));
            }
            min_schema = min_schema.min(p.h.schema);
            if p.h.uses_custom_buckets() != prev.uses_custom_buckets() {
                self.ctx.warn(annotations::mixed_exponential_custom(metric));
                return None;
            }
        }
        let mut h = Histogram::default();
        if last.uses_custom_buckets() {
            h.clone_from(last);
        } else {
            histogram::copy_to_schema(&mut h, &histogram::view(last), min_schema);
        }
        match histogram::try_sub(&mut h, prev) {
            Err(_) => {
                self.ctx.warn(annotations::mixed_exponential_custom(metric));
                return None;
            }
            Ok(c) if c.custom_bounds_reconciled => {
                self.ctx
                    .info(annotations::mismatched_custom_buckets("subtraction"));
            }
            Ok(_) => {}
        }
        if counter {
            let mut previous: &Histogram = prev;
            for p in &hs[1..] {
                if histogram::detect_reset(&histogram::view(&p.h), &histogram::view(previous)) {
                    match histogram::try_add(&mut h, previous) {
                        Err(_) => {
                            self.ctx.warn(annotations::mixed_exponential_custom(metric));
                            return None;
                        }
                        Ok(c) if c.custom_bounds_reconciled => {
                            self.ctx
                                .info(annotations::mismatched_custom_buckets("addition"));
                        }
                        Ok(_) => {}
                    }
                }
                previous = &p.h;
            }
        } else if !gauge(first) || !gauge(last) {
            self.ctx
                .warn(annotations::native_histogram_not_gauge(metric));
        }
        h.counter_reset_hint = CounterResetHint::Gauge;
        histogram::compact_buckets(&mut h);
        // The extrapolation of extrapolatedRate, with the count as the zero point.
        let (first_t, last_t) = (hs[0].t, hs[hs.len() - 1].t);
        let samples_minus_one = (hs.len() - 1) as f64;
        let mut to_start = (first_t - at.start) as f64 / 1000.0;
        let mut to_end = (at.end - last_t) as f64 / 1000.0;
        let sampled = (last_t - first_t) as f64 / 1000.0;
        let avg = sampled / samples_minus_one;
        let threshold = avg * 1.1;
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if counter {
            let mut to_zero = to_start;
            if h.count > 0.0 && first.count >= 0.0 {
                to_zero = sampled * (first.count / h.count);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg / 2.0;
        }
        let mut factor = if sampled != 0.0 {
            (sampled + to_start + to_end) / sampled
        } else {
            1.0
        };
        if is_rate {
            factor /= at.range_ms as f64 / 1000.0;
        }
        histogram::mul(&mut h, factor);
        Some(h)
    }

    /// `instantValue` (irate, idelta) over the last two samples of either kind.
    fn histogram_instant(
        &self,
        fs: &[RawSample],
        hs: &[HPoint],
        is_rate: bool,
        metric: &str,
    ) -> Option<Out> {
        if fs.len() + hs.len() < 2 {
            return None;
        }
        // The last two samples by time.
        let mut last: Vec<(i64, Option<f64>, Option<&Histogram>)> = Vec::with_capacity(4);
        last.extend(fs.iter().rev().take(2).map(|s| (s.t, Some(s.v), None)));
        last.extend(hs.iter().rev().take(2).map(|p| (p.t, None, Some(&*p.h))));
        last.sort_by_key(|x| std::cmp::Reverse(x.0));
        let (cur, prev) = (last[0], last[1]);
        let interval = cur.0 - prev.0;
        if interval == 0 {
            return None;
        }
        let secs = interval as f64 / 1000.0;
        match (prev, cur) {
            ((_, Some(p), None), (_, Some(c), None)) => {
                let mut v = c;
                if !is_rate || c >= p {
                    v = c - p;
                }
                Some(Out::F(if is_rate { v / secs } else { v }))
            }
            ((_, None, Some(p)), (_, None, Some(c))) => {
                let gauge = |h: &Histogram| h.counter_reset_hint == CounterResetHint::Gauge;
                if is_rate && (gauge(c) || gauge(p)) {
                    self.ctx
                        .warn(annotations::native_histogram_not_counter(metric));
                }
                if !is_rate && (!gauge(c) || !gauge(p)) {
                    self.ctx
                        .warn(annotations::native_histogram_not_gauge(metric));
                }
                let mut h = c.clone();
                if !is_rate || !histogram::detect_reset(&histogram::view(c), &histogram::view(p)) {
                    match histogram::try_sub(&mut h, p) {
                        Err(_) => {
                            self.ctx.warn(annotations::mixed_exponential_custom(metric));
                            return None;
                        }
                        Ok(r) if r.custom_bounds_reconciled => {
                            self.ctx
                                .info(annotations::mismatched_custom_buckets("subtraction"));
                        }
                        Ok(_) => {}
                    }
                }
                h.counter_reset_hint = CounterResetHint::Gauge;
                histogram::compact_buckets(&mut h);
                if is_rate {
                    histogram::div(&mut h, secs);
                }
                Some(Out::H(h))
            }
            _ => {
                self.ctx.warn(annotations::mixed_floats_histograms(metric));
                None
            }
        }
    }

    /// `sum_over_time` and `avg_over_time` of histograms (compensated sums).
    fn histogram_sum(&self, hs: &[HPoint], avg: bool, metric: &str) -> Option<Histogram> {
        let (mut reset_seen, mut not_reset_seen) = (false, false);
        for p in hs {
            match p.h.counter_reset_hint {
                CounterResetHint::CounterReset => reset_seen = true,
                CounterResetHint::NotCounterReset => not_reset_seen = true,
                _ => {}
            }
        }
        if reset_seen && not_reset_seen {
            self.ctx
                .warn(annotations::counter_reset_collision("aggregation"));
        }
        let refs: Vec<&Histogram> = hs.iter().map(|p| p.h.as_ref()).collect();
        let mut sum = self.sum_histograms(&refs, avg, metric)?;
        histogram::compact_buckets(&mut sum);
        Some(sum)
    }
}

/// `resets` or `changes` over floats and histograms taken together in time order: a
/// switch between the kinds counts as one.
fn resets_or_changes(fs: &[RawSample], hs: &[HPoint], resets: bool) -> usize {
    let (mut i, mut j) = (0, 0);
    let mut prev: Option<(Option<f64>, Option<&Histogram>)> = None;
    let mut n = 0;
    while i < fs.len() || j < hs.len() {
        let take_float = j >= hs.len() || (i < fs.len() && fs[i].t < hs[j].t);
        let cur = if take_float {
            i += 1;
            (Some(fs[i - 1].v), None)
        } else {
            j += 1;
            (None, Some(&*hs[j - 1].h))
        };
        if let Some(p) = prev {
            let counted = match (p, cur) {
                ((Some(a), None), (Some(b), None)) => {
                    if resets {
                        b < a
                    } else {
                        b != a && !(a.is_nan() && b.is_nan())
                    }
                }
                ((None, Some(a)), (None, Some(b))) => {
                    if resets {
                        histogram::detect_reset(&histogram::view(b), &histogram::view(a))
                    } else {
                        !histogram::equals(a, b)
                    }
                }
                _ => true,
            };
            n += usize::from(counted);
        }
        prev = Some(cur);
    }
    n
}
