//! Reading a histogram: its buckets with bounds in value order (Prometheus's
//! `AllBucketIterator` and `AllReverseBucketIterator`), quantiles, fractions and variance
//! as PromQL 3.x computes them, and scaling by a number.

use super::arith::bound;
use super::kahan::kahan_inc;
use super::{Histogram, Span};

/// One bucket with its bounds (Prometheus's `Bucket[float64]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

impl Bucket {
    /// The fraction of the bucket's observations below `v`, interpolated linearly or
    /// exponentially (`FractionBelow`).
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            (log_v - log_lower) / (log_upper - log_lower)
        } else {
            1.0 - ((log_v - log_upper) / (log_lower - log_upper))
        }
    }

    /// The JSON API's boundary rule: 0 open left, 1 open right, 2 open both, 3 closed both.
    pub fn boundary_rule(&self) -> u8 {
        match (self.lower_inclusive, self.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        }
    }
}

/// The buckets of one side, by index, forwards or backwards, without allocating.
#[derive(Clone, Debug)]
struct Side<'a> {
    spans: &'a [Span],
    buckets: &'a [f64],
    forward: bool,
    /// Position: span, place in it, bucket, and the bucket index.
    span: usize,
    in_span: u32,
    bucket: usize,
    idx: i32,
    started: bool,
}

impl<'a> Side<'a> {
    fn new(spans: &'a [Span], buckets: &'a [f64], forward: bool) -> Self {
        // Spans that do not describe the buckets exactly (bad input) read as no buckets.
        let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
        let spans = if total == buckets.len() as u64 {
            spans
        } else {
            &[]
        };
        Side {
            spans,
            buckets: if spans.is_empty() { &[] } else { buckets },
            forward,
            span: 0,
            in_span: 0,
            bucket: 0,
            idx: 0,
            started: false,
        }
    }

    /// The next bucket: its index and count.
    fn next(&mut self) -> Option<(i32, f64)> {
        if self.forward {
            self.next_forward()
        } else {
            self.next_backward()
        }
    }

    fn next_forward(&mut self) -> Option<(i32, f64)> {
        if self.bucket >= self.buckets.len() {
            return None;
        }
        if !self.started {
            self.started = true;
            self.idx = self.spans.first()?.offset;
        } else {
            self.idx = self.idx.wrapping_add(1);
        }
        while self.in_span >= self.spans.get(self.span)?.length {
            self.in_span = 0;
            self.span += 1;
            self.idx = self.idx.wrapping_add(self.spans.get(self.span)?.offset);
        }
        let count = self.buckets[self.bucket];
        self.in_span += 1;
        self.bucket += 1;
        Some((self.idx, count))
    }

    fn next_backward(&mut self) -> Option<(i32, f64)> {
        if !self.started {
            self.started = true;
            let mut end = 0i32;
            for s in self.spans {
                end = end.wrapping_add(s.offset).wrapping_add(s.length as i32);
            }
            self.span = self.spans.len();
            self.bucket = self.buckets.len();
            self.idx = end;
            // Positioned after the last bucket of the last span.
            self.in_span = self.spans.last().map_or(0, |s| s.length);
        }
        if self.bucket == 0 || self.span == 0 {
            return None;
        }
        while self.in_span == 0 {
            // Step to the previous span: skip the gap before the current one.
            self.idx = self.idx.wrapping_sub(self.spans[self.span - 1].offset);
            self.span -= 1;
            if self.span == 0 {
                return None;
            }
            self.in_span = self.spans[self.span - 1].length;
        }
        self.in_span -= 1;
        self.bucket -= 1;
        self.idx = self.idx.wrapping_sub(1);
        Some((self.idx, self.buckets[self.bucket]))
    }
}

/// Every bucket of a histogram in value order (or reversed): negative buckets, the zero
/// bucket when populated, positive buckets. Bounds inside the zero bucket are clamped to
/// its threshold as Prometheus does.
#[derive(Clone, Debug)]
pub struct AllBuckets<'a> {
    h: &'a Histogram,
    reverse: bool,
    /// 0: first side, 1: zero bucket, 2: second side, 3: done.
    state: u8,
    first: Side<'a>,
    second: Side<'a>,
}

impl<'a> AllBuckets<'a> {
    pub fn new(h: &'a Histogram, reverse: bool) -> Self {
        let neg = Side::new(&h.negative_spans, &h.negative_buckets, reverse);
        let pos = Side::new(&h.positive_spans, &h.positive_buckets, !reverse);
        let (first, second) = if reverse { (pos, neg) } else { (neg, pos) };
        AllBuckets {
            h,
            reverse,
            state: 0,
            first,
            second,
        }
    }

    /// Bucket `idx` of one side, its bounds clamped to the zero bucket's threshold.
    fn bucket(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let mut b = bucket_at(self.h, idx, positive, count);
        let zt = self.h.zero_threshold;
        if b.upper < 0.0 && b.upper > -zt {
            b.upper = -zt;
        } else if b.lower > 0.0 && b.lower < zt {
            b.lower = zt;
        }
        b
    }
}

/// Bucket `idx` of one side with its bounds, as Prometheus's plain bucket iterators give
/// them.
pub(super) fn bucket_at(h: &Histogram, idx: i32, positive: bool, count: f64) -> Bucket {
    let custom = h.uses_custom_buckets();
    let b = |i: i32| -> f64 {
        if custom {
            custom_bound(i, &h.custom_values)
        } else {
            bound(i, h.schema)
        }
    };
    let (lower, upper) = if positive {
        (b(idx - 1), b(idx))
    } else {
        (-b(idx), -b(idx - 1))
    };
    let (lower_inclusive, upper_inclusive) = if custom {
        (idx == 0, true)
    } else {
        (lower < 0.0, upper > 0.0)
    };
    Bucket {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        count,
    }
}

/// The bound of custom bucket `idx`: -Inf before the first, +Inf after the last.
fn custom_bound(idx: i32, custom: &[f64]) -> f64 {
    if idx < 0 {
        f64::NEG_INFINITY
    } else {
        custom.get(idx as usize).copied().unwrap_or(f64::INFINITY)
    }
}

impl Iterator for AllBuckets<'_> {
    type Item = Bucket;

    fn next(&mut self) -> Option<Bucket> {
        loop {
            match self.state {
                0 => match self.first.next() {
                    Some((idx, count)) => return Some(self.bucket(idx, count, self.reverse)),
                    None => self.state = 1,
                },
                1 => {
                    self.state = 2;
                    if self.h.zero_count > 0.0 {
                        let zt = self.h.zero_threshold;
                        return Some(Bucket {
                            lower: -zt,
                            upper: zt,
                            lower_inclusive: true,
                            upper_inclusive: true,
                            count: self.h.zero_count,
                        });
                    }
                }
                2 => match self.second.next() {
                    Some((idx, count)) => return Some(self.bucket(idx, count, !self.reverse)),
                    None => self.state = 3,
                },
                _ => return None,
            }
        }
    }
}

/// What a quantile or fraction noticed about NaN observations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NanNotes {
    /// The quantile falls among NaN observations: the answer is NaN.
    pub quantile_nan_result: bool,
    /// NaN observations skew the answer.
    pub skewed: bool,
}

/// The `q` quantile of a native histogram, as PromQL 3.x's `HistogramQuantile`.
pub fn quantile(q: f64, h: &Histogram) -> (f64, NanNotes) {
    let mut notes = NanNotes::default();
    if q < 0.0 {
        return (f64::NEG_INFINITY, notes);
    }
    if q > 1.0 {
        return (f64::INFINITY, notes);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, notes);
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let mut it = AllBuckets::new(h, !forward);
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut bucket = Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
    };
    for b in it.by_ref() {
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let custom = h.uses_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, notes);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, notes);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            notes.quantile_nan_result = true;
            return (f64::NAN, notes);
        }
        return (bucket.upper, notes);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        for b in it {
            count += b.count;
        }
        if count < h.count {
            notes.skewed = true;
        }
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            notes,
        );
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            notes,
        )
    } else {
        (
            -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
            notes,
        )
    }
}

/// The fraction of observations between `lower` and `upper`, as PromQL 3.x's
/// `HistogramFraction` (NaN observations noted in `skewed`).
pub fn fraction(lower: f64, upper: f64, h: &Histogram) -> (f64, NanNotes) {
    let mut notes = NanNotes::default();
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, notes);
    }
    if lower >= upper {
        return (0.0, notes);
    }
    let custom = h.uses_custom_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut it = AllBuckets::new(h, false);
    for mut b in it.by_ref() {
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let interpolate = |v: f64| -> f64 {
            if custom || zero_bucket {
                if b.lower == f64::NEG_INFINITY {
                    return b.count;
                }
                rank + b.count * b.fraction_below(v, true)
            } else {
                rank + b.count * b.fraction_below(v, false)
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        for b in it {
            count += b.count;
        }
        if count < h.count {
            notes.skewed = true;
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, notes)
}

/// The `q` quantile as Prometheus 2.42 computed it: buckets in value order, linear
/// interpolation within the bucket.
pub fn quantile_v2(q: f64, h: &Histogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * h.count;
    let mut count = 0.0;
    let mut bucket = None;
    for b in AllBuckets::new(h, false) {
        count += b.count;
        bucket = Some(b);
        if count >= rank {
            break;
        }
    }
    let Some(mut bucket) = bucket else {
        return f64::NAN;
    };
    if bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        return bucket.upper;
    }
    rank -= count - bucket.count;
    bucket.lower + (bucket.upper - bucket.lower) * (rank / bucket.count)
}

/// The fraction of observations between `lower` and `upper` as Prometheus 2.42 computed
/// it (linear interpolation within buckets).
pub fn fraction_v2(lower: f64, upper: f64, h: &Histogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for mut b in AllBuckets::new(h, false) {
        if b.lower < 0.0 && b.upper > 0.0 {
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = rank + b.count * (lower - b.lower) / (b.upper - b.lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = rank + b.count * (upper - b.lower) / (b.upper - b.lower);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if !lower_set || lower_rank > h.count {
        lower_rank = h.count;
    }
    if !upper_set || upper_rank > h.count {
        upper_rank = h.count;
    }
    (upper_rank - lower_rank) / h.count
}

/// The variance of the observations, each bucket taken at its (geometric, or for custom
/// buckets arithmetic) midpoint, as PromQL 3.x's `histogram_stdvar`.
pub fn variance(h: &Histogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut variance, mut c) = (0.0f64, 0.0f64);
    let custom = h.uses_custom_buckets();
    for b in AllBuckets::new(h, false) {
        if b.count == 0.0 {
            continue;
        }
        let val = if custom {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -v
            } else {
                v
            }
        };
        let delta = val - mean;
        (variance, c) = kahan_inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

/// `Mul`: scales every count and the sum; a negative factor makes it a gauge.
pub fn mul(h: &mut Histogram, factor: f64) {
    h.zero_count *= factor;
    h.count *= factor;
    h.sum *= factor;
    h.positive_buckets.iter_mut().for_each(|b| *b *= factor);
    h.negative_buckets.iter_mut().for_each(|b| *b *= factor);
    if factor < 0.0 {
        h.counter_reset_hint = super::CounterResetHint::Gauge;
    }
}

/// `Div`: divides every count and the sum; dividing by zero drops the buckets.
pub fn div(h: &mut Histogram, scalar: f64) {
    h.zero_count /= scalar;
    h.count /= scalar;
    h.sum /= scalar;
    if scalar == 0.0 {
        h.positive_buckets.clear();
        h.negative_buckets.clear();
        h.positive_spans.clear();
        h.negative_spans.clear();
        return;
    }
    h.positive_buckets.iter_mut().for_each(|b| *b /= scalar);
    h.negative_buckets.iter_mut().for_each(|b| *b /= scalar);
    if scalar < 0.0 {
        h.counter_reset_hint = super::CounterResetHint::Gauge;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(v: &[(i32, u32)]) -> Vec<Span> {
        v.iter()
            .map(|&(offset, length)| Span { offset, length })
            .collect()
    }

    fn hist() -> Histogram {
        Histogram {
            schema: 0,
            count: 4.0,
            sum: 5.0,
            positive_spans: sp(&[(0, 3)]),
            positive_buckets: vec![1.0, 2.0, 1.0],
            ..Histogram::default()
        }
    }

    #[test]
    fn buckets_in_both_directions() {
        let mut h = hist();
        h.positive_spans = sp(&[(-1, 2), (2, 1)]);
        h.negative_spans = sp(&[(0, 1), (1, 1)]);
        h.negative_buckets = vec![3.0, 4.0];
        h.zero_count = 1.0;
        h.zero_threshold = 0.001;
        let fwd: Vec<(f64, f64, f64)> = AllBuckets::new(&h, false)
            .map(|b| (b.lower, b.upper, b.count))
            .collect();
        assert_eq!(
            fwd,
            vec![
                (-4.0, -2.0, 4.0),
                (-1.0, -0.5, 3.0),
                (-0.001, 0.001, 1.0),
                (0.25, 0.5, 1.0),
                (0.5, 1.0, 2.0),
                (4.0, 8.0, 1.0),
            ]
        );
        let mut rev: Vec<(f64, f64, f64)> = AllBuckets::new(&h, true)
            .map(|b| (b.lower, b.upper, b.count))
            .collect();
        rev.reverse();
        assert_eq!(rev, fwd);
    }

    #[test]
    fn quantile_and_fraction_of_prometheus_examples() {
        let h = hist();
        assert!((quantile(0.5, &h).0 - std::f64::consts::SQRT_2).abs() < 1e-12);
        assert_eq!(fraction(1.0, 2.0, &h).0, 0.5);
        assert_eq!(fraction(0.0, 8.0, &h).0, 1.0);
        // 2.42 interpolates linearly: half way through (1, 2].
        assert_eq!(quantile_v2(0.5, &h), 1.5);
        assert_eq!(fraction_v2(1.0, 1.5, &h), 0.25);
        let empty = Histogram::default();
        assert!(quantile(0.5, &empty).0.is_nan());
        assert!(fraction(f64::NEG_INFINITY, f64::INFINITY, &empty)
            .0
            .is_nan());
    }
}
