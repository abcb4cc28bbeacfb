//! Range functions over sliding windows. The windows of one series advance monotonically
//! from step to step, so a function keeps state between them: each sample is added once
//! and removed once, and the cost of a range query grows with the samples read, not with
//! samples × window ÷ step.
//!
//! Answers are those of [`range_fn`]: exactly for counts, extremes, quantiles and the
//! `rate` family (the same operations in the same order), and within a few ulps for sums,
//! averages and variances, which fall back to a fresh pass over the window whenever a
//! running value could have lost precision (non-finite values, cancellation).

use crate::error::Result;
use crate::functions::{
    extrapolate, kahan_inc, quantile_order, quantile_sorted, range_fn, RangeFn, Window,
};
use crate::storage::RawSample;
use std::collections::VecDeque;

/// Evaluates one range function over the successive windows of a series.
pub(crate) struct SlidingWindows {
    f: RangeFn,
    /// The window currently accounted for: samples `[lo, hi)` of the series.
    lo: usize,
    hi: usize,
    state: State,
}

enum State {
    /// Evaluated afresh on each window (cheap already, or inherently sequential).
    Fresh,
    /// Indices `i` where the series' value drops (`rate`, `increase`, `resets`) or changes
    /// (`changes`) from sample `i - 1`; `first` and `end` bound the events inside the window.
    Events {
        at: Vec<usize>,
        first: usize,
        end: usize,
    },
    /// Candidates for the window's extreme, earliest first (NaN never enters).
    Extreme {
        max: bool,
        deque: VecDeque<usize>,
    },
    Sums(Sums),
    /// The window's values in the order of Prometheus's quantile sort (NaN first).
    Sorted(Vec<f64>),
}

/// Running compensated sums of `v - shift` and `(v - shift)²` over the window.
#[derive(Default)]
struct Sums {
    shift: f64,
    sum: f64,
    sum_c: f64,
    squares: f64,
    squares_c: f64,
    /// Non-finite values in the window: running sums are then not used.
    non_finite: usize,
    /// Sum of |v - shift| over every value added or removed since the last rebase.
    traffic: f64,
    /// Additions and removals since the last rebase.
    ops: usize,
    /// False until the first window since the last rebase was summed.
    based: bool,
    /// Whether values are shifted (for variances: squares of small differences keep
    /// their precision).
    shifted: bool,
}

impl SlidingWindows {
    pub(crate) fn new(f: RangeFn) -> Self {
        use RangeFn::*;
        let state = match f {
            Rate | Increase | Resets | Changes => State::Events {
                at: Vec::new(),
                first: 0,
                end: 0,
            },
            MaxOverTime => State::Extreme {
                max: true,
                deque: VecDeque::new(),
            },
            MinOverTime => State::Extreme {
                max: false,
                deque: VecDeque::new(),
            },
            SumOverTime | AvgOverTime => State::Sums(Sums::default()),
            StddevOverTime | StdvarOverTime => State::Sums(Sums {
                shifted: true,
                ..Sums::default()
            }),
            QuantileOverTime => State::Sorted(Vec::new()),
            _ => State::Fresh,
        };
        SlidingWindows {
            f,
            lo: 0,
            hi: 0,
            state,
        }
    }

    /// Evaluates every window afresh (what the engine did before sliding windows).
    pub(crate) fn rescanning(f: RangeFn) -> Self {
        SlidingWindows {
            f,
            lo: 0,
            hi: 0,
            state: State::Fresh,
        }
    }

    /// Starts on a new series.
    pub(crate) fn reset(&mut self, samples: &[RawSample]) {
        self.lo = 0;
        self.hi = 0;
        match &mut self.state {
            State::Fresh => {}
            State::Events { at, first, end } => {
                at.clear();
                *first = 0;
                *end = 0;
                let changes = self.f == RangeFn::Changes;
                for i in 1..samples.len() {
                    let (prev, cur) = (samples[i - 1].v, samples[i].v);
                    let event = if changes {
                        cur != prev && !(cur.is_nan() && prev.is_nan())
                    } else {
                        cur < prev
                    };
                    if event {
                        at.push(i);
                    }
                }
            }
            State::Extreme { deque, .. } => deque.clear(),
            State::Sums(s) => s.based = false,
            State::Sorted(v) => v.clear(),
        }
    }

    /// The function's value over samples `[lo, hi)` (non-empty). Windows must not move
    /// backwards between calls for one series.
    pub(crate) fn eval(
        &mut self,
        samples: &[RawSample],
        lo: usize,
        hi: usize,
        window: &Window,
        args: &[f64],
    ) -> Result<Option<f64>> {
        debug_assert!(lo < hi && lo >= self.lo && hi >= self.hi);
        let w = &samples[lo..hi];
        let (old_lo, old_hi) = (self.lo, self.hi);
        self.lo = lo;
        self.hi = hi;
        let f = self.f;
        match &mut self.state {
            State::Fresh => range_fn(f, w, window, args),
            State::Events { at, first, end } => {
                // Events strictly inside the window: a drop or change at `lo` compares with
                // a sample before it.
                while *first < at.len() && at[*first] <= lo {
                    *first += 1;
                }
                *end = (*end).max(*first);
                while *end < at.len() && at[*end] < hi {
                    *end += 1;
                }
                let inside = &at[*first..*end];
                Ok(match f {
                    RangeFn::Resets | RangeFn::Changes => Some(inside.len() as f64),
                    _ => {
                        if w.len() < 2 {
                            return Ok(None);
                        }
                        // The same additions in the same order as a pass over the window.
                        let mut result = w[w.len() - 1].v - w[0].v;
                        for &i in inside {
                            result += samples[i - 1].v;
                        }
                        extrapolate(w, result, window, true, f == RangeFn::Rate)
                    }
                })
            }
            State::Extreme { max, deque } => {
                let better = |a: f64, b: f64| if *max { a > b } else { a < b };
                for i in old_hi.max(lo)..hi {
                    let v = samples[i].v;
                    if v.is_nan() {
                        continue;
                    }
                    while deque.back().is_some_and(|&j| better(v, samples[j].v)) {
                        deque.pop_back();
                    }
                    deque.push_back(i);
                }
                while deque.front().is_some_and(|&j| j < lo) {
                    deque.pop_front();
                }
                Ok(Some(deque.front().map_or(f64::NAN, |&j| samples[j].v)))
            }
            State::Sums(s) => {
                let fresh = || range_fn(f, w, window, args);
                let n = w.len();
                // Rebase when nothing carries over, or after enough traffic that rounding
                // could add up: a pass over the window, amortized over as many moves.
                if !s.based || lo >= old_hi || s.ops > 2 * n + 64 {
                    s.rebase(w);
                } else {
                    s.apply(&samples[old_lo..lo], -1.0);
                    s.apply(&samples[old_hi..hi], 1.0);
                }
                if s.non_finite > 0 {
                    return fresh();
                }
                let count = n as f64;
                let sum = s.sum + s.sum_c;
                match f {
                    RangeFn::SumOverTime | RangeFn::AvgOverTime => {
                        // Cancellation: the sum is small next to what went through it.
                        let total = sum;
                        if !total.is_finite() || s.traffic > total.abs() * 1e3 {
                            return fresh();
                        }
                        Ok(Some(if f == RangeFn::SumOverTime {
                            total
                        } else {
                            total / count
                        }))
                    }
                    _ => {
                        let squares = s.squares + s.squares_c;
                        let spread = squares - sum * sum / count;
                        if !spread.is_finite() || spread <= squares * 1e-4 {
                            return fresh();
                        }
                        let var = spread / count;
                        Ok(Some(if f == RangeFn::StddevOverTime {
                            var.sqrt()
                        } else {
                            var
                        }))
                    }
                }
            }
            State::Sorted(sorted) => {
                if lo >= old_hi || (lo - old_lo) + (hi - old_hi) > w.len() {
                    // Little overlap: sorting the window is cheaper than moving it.
                    sorted.clear();
                    sorted.extend(w.iter().map(|x| x.v));
                    crate::gosort::sort(sorted, quantile_order);
                } else {
                    for x in &samples[old_lo..lo] {
                        remove_sorted(sorted, x.v);
                    }
                    for x in &samples[old_hi..hi] {
                        let at = sorted.partition_point(|y| quantile_order(y, &x.v));
                        sorted.insert(at, x.v);
                    }
                }
                Ok(Some(quantile_sorted(args[0], sorted)))
            }
        }
    }
}

impl Sums {
    /// Sums the window afresh around a shift near its values.
    fn rebase(&mut self, w: &[RawSample]) {
        let shifted = self.shifted;
        let shift = if shifted {
            w.iter().map(|x| x.v).find(|v| v.is_finite()).unwrap_or(0.0)
        } else {
            0.0
        };
        *self = Sums {
            shift,
            based: true,
            shifted,
            ..Sums::default()
        };
        self.apply(w, 1.0);
        self.ops = 0;
    }

    /// Adds the values of `xs` to the sums (`sign` 1) or removes them (`sign` -1). Squares
    /// are summed only for variances (shifted sums), which alone read them.
    fn apply(&mut self, xs: &[RawSample], sign: f64) {
        if self.shifted {
            self.apply_with::<true>(xs, sign);
        } else {
            self.apply_with::<false>(xs, sign);
        }
    }

    /// [`Self::apply`] with the running values in locals (registers) over the loop.
    fn apply_with<const SQUARES: bool>(&mut self, xs: &[RawSample], sign: f64) {
        let shift = self.shift;
        let (mut sum, mut sum_c) = (self.sum, self.sum_c);
        let (mut squares, mut squares_c) = (self.squares, self.squares_c);
        let mut traffic = self.traffic;
        let mut non_finite = 0usize;
        for x in xs {
            if !x.v.is_finite() {
                non_finite += 1;
                continue;
            }
            // Multiplying by ±1 is exact: the same value as negating.
            let d = x.v - shift;
            traffic += d.abs();
            (sum, sum_c) = kahan_inc(sign * d, sum, sum_c);
            if SQUARES {
                (squares, squares_c) = kahan_inc(sign * (d * d), squares, squares_c);
            }
        }
        (self.sum, self.sum_c) = (sum, sum_c);
        (self.squares, self.squares_c) = (squares, squares_c);
        self.traffic = traffic;
        if sign > 0.0 {
            self.non_finite += non_finite;
        } else {
            self.non_finite -= non_finite;
        }
        self.ops += xs.len();
    }
}

/// Removes one occurrence of `v` (bit for bit where equal values differ, as 0 and -0 do).
fn remove_sorted(sorted: &mut Vec<f64>, v: f64) {
    if v.is_nan() {
        if sorted.first().is_some_and(|x| x.is_nan()) {
            sorted.remove(0);
        }
        return;
    }
    let start = sorted.partition_point(|y| quantile_order(y, &v));
    let end = start + sorted[start..].iter().take_while(|&&y| y == v).count();
    let at = (start..end)
        .find(|&i| sorted[i].to_bits() == v.to_bits())
        .unwrap_or(start);
    if at < end {
        sorted.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::Rng;

    fn series(values: &[f64]) -> Vec<RawSample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| RawSample {
                t: i as i64 * 15_000,
                v,
            })
            .collect()
    }

    /// Every window of every size and stride equals the fresh evaluation (within the
    /// differential tests' tolerance for sums and variances: the fresh pass rounds too).
    fn check(f: RangeFn, values: &[f64], exact: bool) {
        let s = series(values);
        let args = [0.3];
        for width in [1usize, 2, 3, 7, 40] {
            for stride in [1usize, 2, 5, 50] {
                let mut win = SlidingWindows::new(f);
                win.reset(&s);
                let mut end = 1;
                while end <= s.len() {
                    let lo = end.saturating_sub(width);
                    let (rs, re) = (s[lo].t - 1000, s[end - 1].t + 3000);
                    let at = Window {
                        start: rs,
                        end: re,
                        range_ms: re - rs,
                        ts: re,
                        v3: false,
                    };
                    let want = range_fn(f, &s[lo..end], &at, &args).unwrap();
                    let got = win.eval(&s, lo, end, &at, &args).unwrap();
                    let same = match (want, got) {
                        (Some(a), Some(b)) if exact => a.to_bits() == b.to_bits() || a == b,
                        (Some(a), Some(b)) => {
                            (a.is_nan() && b.is_nan())
                                || a == b
                                || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
                        }
                        (a, b) => a == b,
                    };
                    assert!(
                        same,
                        "{f:?} width {width} stride {stride} window {lo}..{end}: \
                         {want:?} vs {got:?}"
                    );
                    end += stride;
                }
            }
        }
    }

    fn data(rng: &mut Rng, n: usize, hostile: bool) -> Vec<f64> {
        let mut v = 0.0;
        (0..n)
            .map(|_| {
                let r = rng.below(100);
                if hostile && r < 4 {
                    return [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e308][r];
                }
                if hostile && r < 8 {
                    return [0.0, -0.0, 1e-300, -1e15][r - 4];
                }
                if r < 3 {
                    v = 0.0; // counter reset
                } else {
                    v += rng.below(1000) as f64 / 7.0;
                }
                v
            })
            .collect()
    }

    #[test]
    fn sliding_equals_fresh() {
        use RangeFn::*;
        let mut rng = Rng(11);
        for round in 0..20 {
            let hostile = round % 2 == 1;
            let values = data(&mut rng, 300, hostile);
            for f in [
                Rate,
                Increase,
                Resets,
                Changes,
                MaxOverTime,
                MinOverTime,
                QuantileOverTime,
            ] {
                check(f, &values, true);
            }
            for f in [SumOverTime, AvgOverTime, StddevOverTime, StdvarOverTime] {
                check(f, &values, false);
            }
        }
    }

    #[test]
    fn cancellation_falls_back_to_a_fresh_pass() {
        // A huge value leaves the window: the rest must not inherit its rounding.
        let mut values = vec![1e17, 1.0, 2.0, 3.0];
        values.extend([5.0; 10]);
        check(RangeFn::SumOverTime, &values, false);
        check(RangeFn::StddevOverTime, &values, false);
        // Constant windows after a change have no spread at all.
        let s = series(&[1.0, 9.0, 4.0, 4.0, 4.0]);
        let mut win = SlidingWindows::new(RangeFn::StdvarOverTime);
        win.reset(&s);
        for (lo, hi) in [(0, 3), (1, 4), (2, 5)] {
            let at = Window {
                start: 0,
                end: 1,
                range_ms: 1,
                ts: 1,
                v3: false,
            };
            let got = win.eval(&s, lo, hi, &at, &[]).unwrap();
            if (lo, hi) == (2, 5) {
                assert_eq!(got, Some(0.0));
            }
        }
    }
}
