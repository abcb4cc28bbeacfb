//! Float histogram arithmetic as Prometheus's `model/histogram.FloatHistogram` does it, for
//! what Thanos's histogram aggregator uses: `CopyToSchema`, `DetectReset`, `Add` and `Sub`
//! (with their counter reset hint rules and zero bucket reconciliation). Exponential
//! schemas only: histograms with custom buckets are refused before they get here.

use crate::chunkenc::histogram::{
    copy_vec, CounterResetHint, Histogram, Span, CUSTOM_BUCKETS_SCHEMA,
};

use super::bounds::EXPONENTIAL_BOUNDS;

/// A borrowed float histogram: an owned [`Histogram`] or a sample in a [`super::hist`]
/// sample buffer.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub p_spans: &'a [Span],
    pub p_buckets: &'a [f64],
    pub n_spans: &'a [Span],
    pub n_buckets: &'a [f64],
    /// Upper bounds of custom buckets (schema -53), empty otherwise.
    pub custom_values: &'a [f64],
}

pub fn view(h: &Histogram) -> View<'_> {
    View {
        hint: h.counter_reset_hint,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        count: h.count,
        sum: h.sum,
        p_spans: &h.positive_spans,
        p_buckets: &h.positive_buckets,
        n_spans: &h.negative_spans,
        n_buckets: &h.negative_buckets,
        custom_values: &h.custom_values,
    }
}

/// `Copy`: a deep copy into `dst`, reusing its buffers (`t` is left alone).
pub fn copy_into(dst: &mut Histogram, src: &View<'_>) {
    dst.counter_reset_hint = src.hint;
    dst.schema = src.schema;
    dst.zero_threshold = src.zero_threshold;
    dst.zero_count = src.zero_count;
    dst.count = src.count;
    dst.sum = src.sum;
    copy_vec(&mut dst.positive_spans, src.p_spans);
    copy_vec(&mut dst.positive_buckets, src.p_buckets);
    copy_vec(&mut dst.negative_spans, src.n_spans);
    copy_vec(&mut dst.negative_buckets, src.n_buckets);
    copy_vec(&mut dst.custom_values, src.custom_values);
}

/// `CopyToSchema` (`target < src.schema`): the copy has the lower resolution, and, as in
/// Prometheus, an unknown counter reset hint.
pub fn copy_to_schema(dst: &mut Histogram, src: &View<'_>, target: i32) {
    if target == src.schema {
        copy_into(dst, src);
        return;
    }
    dst.counter_reset_hint = CounterResetHint::Unknown;
    dst.schema = target;
    dst.zero_threshold = src.zero_threshold;
    dst.zero_count = src.zero_count;
    dst.count = src.count;
    dst.sum = src.sum;
    dst.custom_values.clear();
    reduce_resolution(
        src.p_spans,
        src.p_buckets,
        src.schema,
        target,
        &mut dst.positive_spans,
        &mut dst.positive_buckets,
    );
    reduce_resolution(
        src.n_spans,
        src.n_buckets,
        src.schema,
        target,
        &mut dst.negative_spans,
        &mut dst.negative_buckets,
    );
}

/// The index in schema `target` of bucket `idx` of schema `origin` (`target <= origin`).
#[inline]
fn target_idx(idx: i32, origin: i32, target: i32) -> i32 {
    // Schemas are -4..=8 here; a wider gap (bad input) must not overflow the shift.
    let shift = origin.saturating_sub(target).clamp(0, 31);
    (idx.wrapping_sub(1) >> shift).wrapping_add(1)
}

/// Merges absolute bucket counts into a lower resolution (Prometheus's `reduceResolution`).
/// Stops quietly at spans that do not match the buckets.
fn reduce_resolution(
    spans: &[Span],
    buckets: &[f64],
    origin: i32,
    target: i32,
    out_spans: &mut Vec<Span>,
    out_buckets: &mut Vec<f64>,
) {
    out_spans.clear();
    out_buckets.clear();
    let mut bucket_idx = 0i32;
    let mut count_idx = 0usize;
    let mut last_target = 0i32;
    for span in spans {
        bucket_idx = bucket_idx.wrapping_add(span.offset);
        for _ in 0..span.length {
            let Some(&v) = buckets.get(count_idx) else {
                return;
            };
            let t = target_idx(bucket_idx, origin, target);
            if out_spans.is_empty() {
                out_spans.push(Span {
                    offset: t,
                    length: 1,
                });
                out_buckets.push(v);
                last_target = t;
            } else if last_target == t {
                if let Some(b) = out_buckets.last_mut() {
                    *b += v;
                }
            } else if last_target + 1 == t {
                if let Some(s) = out_spans.last_mut() {
                    s.length += 1;
                }
                last_target += 1;
                out_buckets.push(v);
            } else if last_target + 1 < t {
                out_spans.push(Span {
                    offset: t - last_target - 1,
                    length: 1,
                });
                last_target = t;
                out_buckets.push(v);
            }
            bucket_idx = bucket_idx.wrapping_add(1);
            count_idx += 1;
        }
    }
}

/// `math.Ldexp(frac, exp)`, correctly rounded.
fn ldexp(frac: f64, exp: i64) -> f64 {
    let exp = exp.clamp(-2200, 2200) as i32;
    let mut x = frac;
    let mut e = exp;
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// The upper bound of bucket `idx` in an exponential schema (`getBoundExponential`).
pub fn bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = i64::from(idx) << -schema;
        if exp == 1024 {
            // The last bucket before the one for ±Inf.
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let schema = schema.min(8);
    let frac_idx = (idx & ((1 << schema) - 1)) as usize;
    let frac = EXPONENTIAL_BOUNDS[schema as usize][frac_idx];
    let exp = i64::from(idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

fn is_exponential(schema: i32) -> bool {
    (-4..=8).contains(&schema)
}

/// Prometheus's `floatBucketIterator`: the buckets of one side, merged into `target`
/// schema (≤ the histogram's), skipping those with an upper bound ≤ `start` until one is
/// above it.
struct Buckets<'a> {
    spans: &'a [Span],
    buckets: &'a [f64],
    schema: i32,
    target: i32,
    start: f64,
    reached_start: bool,
    spans_idx: usize,
    idx_in_span: u32,
    buckets_idx: usize,
    orig_idx: i32,
    /// Current bucket: index (in `target`) and count.
    idx: i32,
    count: f64,
}

impl<'a> Buckets<'a> {
    fn new(spans: &'a [Span], buckets: &'a [f64], schema: i32, start: f64, target: i32) -> Self {
        Buckets {
            spans,
            buckets,
            schema,
            target,
            start,
            reached_start: start == 0.0,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            orig_idx: 0,
            idx: 0,
            count: 0.0,
        }
    }

    fn positive(h: &View<'a>, start: f64, target: i32) -> Self {
        Self::new(h.p_spans, h.p_buckets, h.schema, start, target)
    }

    fn negative(h: &View<'a>, start: f64, target: i32) -> Self {
        Self::new(h.n_spans, h.n_buckets, h.schema, start, target)
    }

    fn next(&mut self) -> bool {
        loop {
            if !self.step() {
                return false;
            }
            if !self.reached_start
                && is_exponential(self.target)
                && bound(self.idx, self.target) <= self.start
            {
                continue;
            }
            self.reached_start = true;
            return true;
        }
    }

    fn step(&mut self) -> bool {
        let Some(mut span) = self.spans.get(self.spans_idx).copied() else {
            return false;
        };
        if self.schema == self.target {
            if self.buckets_idx == 0 {
                self.idx = span.offset;
            } else {
                self.idx = self.idx.wrapping_add(1);
            }
            if self.buckets_idx >= self.buckets.len() {
                return false;
            }
            while self.idx_in_span >= span.length {
                self.idx_in_span = 0;
                self.spans_idx += 1;
                let Some(s) = self.spans.get(self.spans_idx) else {
                    return false;
                };
                span = *s;
                self.idx = self.idx.wrapping_add(span.offset);
            }
            self.count = self.buckets[self.buckets_idx];
            self.idx_in_span += 1;
            self.buckets_idx += 1;
            return true;
        }
        // Merge the buckets that fall into one bucket of the target schema.
        let (mut orig_idx, mut spans_idx, mut idx_in_span) =
            (self.orig_idx, self.spans_idx, self.idx_in_span);
        let mut first = true;
        self.count = 0.0;
        loop {
            if self.buckets_idx == 0 {
                orig_idx = span.offset;
            } else {
                orig_idx = orig_idx.wrapping_add(1);
            }
            if self.buckets_idx >= self.buckets.len() {
                return !first;
            }
            while idx_in_span >= span.length {
                idx_in_span = 0;
                spans_idx += 1;
                let Some(s) = self.spans.get(spans_idx) else {
                    return !first;
                };
                span = *s;
                orig_idx = orig_idx.wrapping_add(span.offset);
            }
            let cur = target_idx(orig_idx, self.schema, self.target);
            if first {
                self.idx = cur;
                first = false;
            } else if cur != self.idx {
                return true;
            }
            self.count += self.buckets[self.buckets_idx];
            idx_in_span += 1;
            self.buckets_idx += 1;
            self.orig_idx = orig_idx;
            self.spans_idx = spans_idx;
            self.idx_in_span = idx_in_span;
        }
    }
}

/// `zeroCountForLargerThreshold`: the zero count `h` would have with the (larger)
/// threshold, and the threshold itself, raised to a bucket boundary when it falls inside a
/// populated bucket.
fn zero_count_for_larger_threshold(h: &View<'_>, larger: f64) -> (f64, f64) {
    let mut larger = larger;
    if larger == h.zero_threshold || larger.is_nan() {
        return (h.zero_count, larger);
    }
    'outer: loop {
        let mut count = h.zero_count;
        let mut it = Buckets::positive(h, 0.0, h.schema);
        while it.next() {
            let (lower, upper) = (bound(it.idx - 1, h.schema), bound(it.idx, h.schema));
            if lower >= larger {
                break;
            }
            count += it.count;
            if upper > larger {
                if it.count != 0.0 {
                    larger = upper;
                }
                break;
            }
        }
        let mut it = Buckets::negative(h, 0.0, h.schema);
        while it.next() {
            let (lower, upper) = (-bound(it.idx, h.schema), -bound(it.idx - 1, h.schema));
            if upper <= -larger {
                break;
            }
            count += it.count;
            if lower < -larger {
                if it.count != 0.0 {
                    larger = -lower;
                    continue 'outer;
                }
                break;
            }
        }
        return (count, larger);
    }
}

/// The zero count `h` has with the (larger or equal) zero threshold `zt`: its zero bucket
/// and the buckets now inside it.
pub(super) fn zero_count_in_threshold(h: &Histogram, zt: f64) -> f64 {
    if zt <= h.zero_threshold {
        return h.zero_count;
    }
    zero_count_for_larger_threshold(&view(h), zt).0
}

/// `DetectReset`: whether `h` shows a counter reset after `prev` (the hint decides when it
/// says reset or no reset).
pub fn detect_reset(h: &View<'_>, prev: &View<'_>) -> bool {
    match h.hint {
        CounterResetHint::CounterReset => return true,
        CounterResetHint::NotCounterReset => return false,
        _ => {}
    }
    if h.count < prev.count {
        return true;
    }
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    if custom != (prev.schema == CUSTOM_BUCKETS_SCHEMA) {
        // A change of bucket kind: something changed, or the application restarted.
        return true;
    }
    if custom && !bounds_match(h.custom_values, prev.custom_values) {
        return custom_buckets_reset(h, prev);
    }
    if h.schema > prev.schema {
        return true;
    }
    if h.zero_threshold < prev.zero_threshold {
        return true;
    }
    let (prev_zero_count, threshold) = zero_count_for_larger_threshold(prev, h.zero_threshold);
    if threshold != h.zero_threshold {
        return true;
    }
    if h.zero_count < prev_zero_count {
        return true;
    }
    let mut cur = Buckets::positive(h, h.zero_threshold, h.schema);
    let mut old = Buckets::positive(prev, h.zero_threshold, h.schema);
    if buckets_reset(&mut cur, &mut old) {
        return true;
    }
    let mut cur = Buckets::negative(h, h.zero_threshold, h.schema);
    let mut old = Buckets::negative(prev, h.zero_threshold, h.schema);
    buckets_reset(&mut cur, &mut old)
}

/// `detectResetWithMismatchedCustomBounds`: a bucket went down once both are mapped onto
/// the bounds they share.
fn custom_buckets_reset(h: &View<'_>, prev: &View<'_>) -> bool {
    let common = intersect_bounds(h.custom_values, prev.custom_values);
    let mut cur = vec![0.0; common.len() + 1];
    let mut old = vec![0.0; common.len() + 1];
    map_custom_buckets(
        h.p_spans,
        h.p_buckets,
        h.custom_values,
        &common,
        1.0,
        &mut cur,
    );
    map_custom_buckets(
        prev.p_spans,
        prev.p_buckets,
        prev.custom_values,
        &common,
        1.0,
        &mut old,
    );
    cur.iter().zip(&old).any(|(c, o)| c < o)
}

/// Prometheus's `detectReset` over one side: a bucket of `prev` that went down or is
/// missing while populated.
///
/// When `cur` runs out first, Prometheus looks only at the `prev` bucket it stopped at (its
/// loop advances the iterator but keeps checking the bucket it had read): a populated bucket
/// after an empty one is not seen. Kept as is.
fn buckets_reset(cur: &mut Buckets<'_>, prev: &mut Buckets<'_>) -> bool {
    if !prev.next() {
        return false;
    }
    if !cur.next() {
        return prev.count != 0.0;
    }
    loop {
        while cur.idx < prev.idx {
            if !cur.next() {
                return prev.count != 0.0;
            }
        }
        if cur.idx > prev.idx {
            if prev.count != 0.0 {
                return true;
            }
        } else if cur.count < prev.count {
            return true;
        }
        if !prev.next() {
            return false;
        }
    }
}

/// One hint says counter reset, the other says none.
fn hint_collision(a: CounterResetHint, b: CounterResetHint) -> bool {
    use CounterResetHint::*;
    matches!(
        (a, b),
        (CounterReset, NotCounterReset) | (NotCounterReset, CounterReset)
    )
}

/// `adjustCounterReset` for `h + other` or `h - other`.
fn adjust_counter_reset(h: &mut Histogram, other: CounterResetHint) -> bool {
    use CounterResetHint::*;
    let mine = h.counter_reset_hint;
    let collision = hint_collision(mine, other);
    h.counter_reset_hint = match (mine, other) {
        _ if mine == other => mine,
        (Gauge, _) => Gauge,
        (_, Gauge) => Gauge,
        (Unknown, _) => Unknown,
        (_, Unknown) => Unknown,
        // A collision of CounterReset and NotCounterReset.
        _ => Unknown,
    };
    collision
}

/// `trimBucketsInZeroBucket`: zeroes the buckets now inside the zero bucket and drops the
/// empty buckets (`Compact(0)`).
fn trim_buckets_in_zero_bucket(h: &mut Histogram) {
    let zt = h.zero_threshold;
    let n = {
        let v = view(h);
        let mut it = Buckets::positive(&v, 0.0, v.schema);
        let mut n = 0;
        while it.next() {
            if bound(it.idx - 1, v.schema) >= zt {
                break;
            }
            n += 1;
        }
        n
    };
    h.positive_buckets.iter_mut().take(n).for_each(|b| *b = 0.0);
    let n = {
        let v = view(h);
        let mut it = Buckets::negative(&v, 0.0, v.schema);
        let mut n = 0;
        while it.next() {
            if -bound(it.idx - 1, v.schema) <= -zt {
                break;
            }
            n += 1;
        }
        n
    };
    h.negative_buckets.iter_mut().take(n).for_each(|b| *b = 0.0);
    compact(&mut h.positive_spans, &mut h.positive_buckets);
    compact(&mut h.negative_spans, &mut h.negative_buckets);
}

/// `Compact(0)`: drops every empty bucket and normalises the spans (no empty spans, no
/// zero gaps), leaving exactly the runs of consecutive populated buckets.
fn compact(spans: &mut Vec<Span>, buckets: &mut Vec<f64>) {
    let mut out_spans: Vec<Span> = Vec::with_capacity(spans.len());
    let mut w = 0usize;
    let mut idx = 0i32;
    let mut last: Option<i32> = None;
    let mut r = 0usize;
    for s in spans.iter() {
        idx = idx.wrapping_add(s.offset);
        for _ in 0..s.length {
            let Some(&v) = buckets.get(r) else {
                break;
            };
            r += 1;
            if v != 0.0 {
                match (last, out_spans.last_mut()) {
                    (Some(l), Some(span)) if l + 1 == idx => span.length += 1,
                    (Some(l), _) => out_spans.push(Span {
                        offset: idx - l - 1,
                        length: 1,
                    }),
                    (None, _) => out_spans.push(Span {
                        offset: idx,
                        length: 1,
                    }),
                }
                buckets[w] = v;
                w += 1;
                last = Some(idx);
            }
            idx = idx.wrapping_add(1);
        }
    }
    buckets.truncate(w);
    *spans = out_spans;
}

/// `reconcileZeroBuckets`: widens the zero bucket of `h` or (virtually) of `other` until
/// both agree; returns the zero count `other` has with the common threshold.
fn reconcile_zero_buckets(h: &mut Histogram, other: &View<'_>) -> f64 {
    let mut other_count = other.zero_count;
    let mut other_threshold = other.zero_threshold;
    // Go loops forever on NaN thresholds; stop instead.
    while other_threshold != h.zero_threshold
        && !other_threshold.is_nan()
        && !h.zero_threshold.is_nan()
    {
        if h.zero_threshold > other_threshold {
            (other_count, other_threshold) =
                zero_count_for_larger_threshold(other, h.zero_threshold);
        }
        if other_threshold > h.zero_threshold {
            let (c, t) = zero_count_for_larger_threshold(&view(h), other_threshold);
            h.zero_count = c;
            h.zero_threshold = t;
            trim_buckets_in_zero_bucket(h);
        }
    }
    other_count
}

/// `h += other` (`Add`).
pub fn add(h: &mut Histogram, other: &View<'_>) {
    add_or_sub(h, other, false);
}

/// `h -= other` (`Sub`).
pub fn sub(h: &mut Histogram, other: &View<'_>) {
    add_or_sub(h, other, true);
}

fn add_or_sub(h: &mut Histogram, other: &View<'_>, negative: bool) {
    adjust_counter_reset(h, other.hint);
    let other_zero = reconcile_zero_buckets(h, other);
    if negative {
        h.zero_count -= other_zero;
        h.count -= other.count;
        h.sum -= other.sum;
    } else {
        h.zero_count += other_zero;
        h.count += other.count;
        h.sum += other.sum;
    }
    if other.schema < h.schema {
        let (mut s, mut b) = (Vec::new(), Vec::new());
        reduce_resolution(
            &h.positive_spans,
            &h.positive_buckets,
            h.schema,
            other.schema,
            &mut s,
            &mut b,
        );
        h.positive_spans = s;
        h.positive_buckets = b;
        let (mut s, mut b) = (Vec::new(), Vec::new());
        reduce_resolution(
            &h.negative_spans,
            &h.negative_buckets,
            h.schema,
            other.schema,
            &mut s,
            &mut b,
        );
        h.negative_spans = s;
        h.negative_buckets = b;
        h.schema = other.schema;
    }
    let (schema, threshold) = (h.schema, h.zero_threshold);
    if other.schema > schema {
        let mut r = Histogram::default();
        copy_to_schema(&mut r, other, schema);
        let o = view(&r);
        add_buckets(
            schema,
            threshold,
            negative,
            &mut h.positive_spans,
            &mut h.positive_buckets,
            o.p_spans,
            o.p_buckets,
        );
        add_buckets(
            schema,
            threshold,
            negative,
            &mut h.negative_spans,
            &mut h.negative_buckets,
            o.n_spans,
            o.n_buckets,
        );
    } else {
        add_buckets(
            schema,
            threshold,
            negative,
            &mut h.positive_spans,
            &mut h.positive_buckets,
            other.p_spans,
            other.p_buckets,
        );
        add_buckets(
            schema,
            threshold,
            negative,
            &mut h.negative_spans,
            &mut h.negative_buckets,
            other.n_spans,
            other.n_buckets,
        );
    }
}

/// Adding a histogram with custom buckets to one with exponential buckets, or the
/// reverse: Prometheus refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncompatibleSchemas;

/// What adding or subtracting two histograms noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Combined {
    /// One said counter reset, the other not: the result's hint is unknown.
    pub counter_reset_collision: bool,
    /// Custom bucket bounds differed: the result has the bounds both have.
    pub custom_bounds_reconciled: bool,
}

/// `h += other` with custom buckets supported (`FloatHistogram.Add`).
pub fn try_add(h: &mut Histogram, other: &Histogram) -> Result<Combined, IncompatibleSchemas> {
    try_add_or_sub(h, other, false)
}

/// `h -= other` with custom buckets supported (`FloatHistogram.Sub`).
pub fn try_sub(h: &mut Histogram, other: &Histogram) -> Result<Combined, IncompatibleSchemas> {
    try_add_or_sub(h, other, true)
}

fn try_add_or_sub(
    h: &mut Histogram,
    other: &Histogram,
    negative: bool,
) -> Result<Combined, IncompatibleSchemas> {
    if h.uses_custom_buckets() != other.uses_custom_buckets() {
        return Err(IncompatibleSchemas);
    }
    if !h.uses_custom_buckets() {
        let collision = hint_collision(h.counter_reset_hint, other.counter_reset_hint);
        add_or_sub(h, &view(other), negative);
        return Ok(Combined {
            counter_reset_collision: collision,
            custom_bounds_reconciled: false,
        });
    }
    let collision = adjust_counter_reset(h, other.counter_reset_hint);
    let sign = if negative { -1.0 } else { 1.0 };
    h.count += sign * other.count;
    h.sum += sign * other.sum;
    if bounds_match(&h.custom_values, &other.custom_values) {
        add_buckets(
            h.schema,
            h.zero_threshold,
            negative,
            &mut h.positive_spans,
            &mut h.positive_buckets,
            &other.positive_spans,
            &other.positive_buckets,
        );
        return Ok(Combined {
            counter_reset_collision: collision,
            custom_bounds_reconciled: false,
        });
    }
    let common = intersect_bounds(&h.custom_values, &other.custom_values);
    let mut target = vec![0.0; common.len() + 1];
    map_custom_buckets(
        &h.positive_spans,
        &h.positive_buckets,
        &h.custom_values,
        &common,
        1.0,
        &mut target,
    );
    map_custom_buckets(
        &other.positive_spans,
        &other.positive_buckets,
        &other.custom_values,
        &common,
        sign,
        &mut target,
    );
    h.positive_spans.clear();
    h.positive_buckets.clear();
    let mut last: Option<i32> = None;
    for (i, &v) in target.iter().enumerate() {
        if v == 0.0 {
            continue;
        }
        let idx = i as i32;
        match (last, h.positive_spans.last_mut()) {
            (Some(l), Some(span)) if l + 1 == idx => span.length += 1,
            (Some(l), _) => h.positive_spans.push(Span {
                offset: idx - l - 1,
                length: 1,
            }),
            (None, _) => h.positive_spans.push(Span {
                offset: idx,
                length: 1,
            }),
        }
        h.positive_buckets.push(v);
        last = Some(idx);
    }
    h.custom_values = common;
    Ok(Combined {
        counter_reset_collision: collision,
        custom_bounds_reconciled: true,
    })
}

/// Custom bounds equal bit for bit (`CustomBucketBoundsMatch`).
pub fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The bounds both sorted lists have (`intersectCustomBucketBounds`).
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Adds `sign ×` each custom bucket of `h` into the bucket of `common` bounds holding it.
pub(super) fn map_custom_buckets(
    spans: &[Span],
    buckets: &[f64],
    bounds: &[f64],
    common: &[f64],
    sign: f64,
    target: &mut [f64],
) {
    let mut src_idx: i64 = 0;
    let mut b = 0usize;
    let mut k = 0usize;
    for span in spans {
        src_idx += i64::from(span.offset);
        for _ in 0..span.length {
            let Some(&v) = buckets.get(b) else {
                return;
            };
            let mut t = target.len() - 1;
            if let Some(&bound) = usize::try_from(src_idx).ok().and_then(|i| bounds.get(i)) {
                while k < common.len() {
                    if common[k] >= bound {
                        t = k;
                        break;
                    }
                    k += 1;
                }
            }
            target[t] += sign * v;
            src_idx += 1;
            b += 1;
        }
    }
}

/// `Equals`: the same observations in the same layout (time and hint aside; a NaN sum
/// equals a NaN sum of the same bits).
pub fn equals(a: &Histogram, b: &Histogram) -> bool {
    let same_floats =
        |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p == q);
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.zero_count == b.zero_count
        && a.count == b.count
        && a.sum.to_bits() == b.sum.to_bits()
        && (!a.uses_custom_buckets() || bounds_match(&a.custom_values, &b.custom_values))
        && spans_equal(&a.positive_spans, &b.positive_spans)
        && spans_equal(&a.negative_spans, &b.negative_spans)
        && same_floats(&a.positive_buckets, &b.positive_buckets)
        && same_floats(&a.negative_buckets, &b.negative_buckets)
}

/// Spans describing the same buckets: empty spans and zero-length ones folded away.
fn spans_equal(a: &[Span], b: &[Span]) -> bool {
    fn normal(spans: &[Span]) -> impl Iterator<Item = (i32, u32)> + '_ {
        let mut carry = 0i32;
        spans.iter().filter_map(move |s| {
            if s.length == 0 {
                carry = carry.wrapping_add(s.offset);
                None
            } else {
                let off = carry.wrapping_add(s.offset);
                carry = 0;
                Some((off, s.length))
            }
        })
    }
    normal(a).eq(normal(b))
}

/// `Compact(0)`: drops the empty buckets of both sides.
pub fn compact_buckets(h: &mut Histogram) {
    compact(&mut h.positive_spans, &mut h.positive_buckets);
    compact(&mut h.negative_spans, &mut h.negative_buckets);
}

/// Prometheus's `addBuckets`: adds (or subtracts) the buckets `b` into `a`, creating
/// missing buckets in `a`; buckets of `b` with an upper bound ≤ `threshold` (below the
/// first one above it) are left out, being in the zero bucket.
fn add_buckets(
    schema: i32,
    threshold: f64,
    negative: bool,
    spans_a: &mut Vec<Span>,
    buckets_a: &mut Vec<f64>,
    spans_b: &[Span],
    buckets_b: &[f64],
) {
    let mut i_span: isize = -1;
    let mut i_bucket: isize = -1;
    let mut i_in_span: i32 = 0;
    let mut index_a: i32 = 0;
    let mut index_b: i32 = 0;
    let mut b_idx: usize = 0;
    let mut lower_than_threshold = true;
    for span_b in spans_b {
        index_b = index_b.wrapping_add(span_b.offset);
        for _ in 0..span_b.length {
            'bucket: {
                if lower_than_threshold
                    && is_exponential(schema)
                    && bound(index_b, schema) <= threshold
                {
                    break 'bucket;
                }
                lower_than_threshold = false;
                let Some(&v) = buckets_b.get(b_idx) else {
                    return;
                };
                let bucket_b = if negative { -v } else { v };
                if i_span == -1 {
                    if spans_a.is_empty() || spans_a[0].offset > index_b {
                        // Before all others.
                        buckets_a.insert(0, bucket_b);
                        if !spans_a.is_empty() && spans_a[0].offset == index_b + 1 {
                            spans_a[0].length += 1;
                            spans_a[0].offset -= 1;
                            break 'bucket;
                        }
                        spans_a.insert(
                            0,
                            Span {
                                offset: index_b,
                                length: 1,
                            },
                        );
                        if spans_a.len() > 1 {
                            spans_a[1].offset -= index_b + 1;
                        }
                        break 'bucket;
                    } else if spans_a[0].offset == index_b {
                        buckets_a[0] += bucket_b;
                        break 'bucket;
                    }
                    i_span = 0;
                    i_bucket = 0;
                    i_in_span = 0;
                    index_a = spans_a[0].offset;
                }
                let mut delta = index_b - index_a;
                loop {
                    let remaining = spans_a[i_span as usize].length as i32 - i_in_span;
                    if delta < remaining {
                        i_bucket += delta as isize;
                        i_in_span += delta;
                        buckets_a[i_bucket as usize] += bucket_b;
                        break 'bucket;
                    }
                    delta -= remaining;
                    i_bucket += remaining as isize;
                    i_span += 1;
                    let ns = i_span as usize;
                    if ns == spans_a.len() || delta < spans_a[ns].offset {
                        // In the gap after the previous span (or after all spans).
                        buckets_a.insert(i_bucket as usize, bucket_b);
                        if delta == 0 {
                            // Right after the previous span: extend it.
                            if ns < spans_a.len() {
                                spans_a[ns].offset -= 1;
                            }
                            i_span -= 1;
                            let ps = i_span as usize;
                            i_in_span = spans_a[ps].length as i32;
                            spans_a[ps].length += 1;
                        } else if ns < spans_a.len() && delta == spans_a[ns].offset - 1 {
                            // Right before the next span: extend it.
                            i_in_span = 0;
                            spans_a[ns].offset -= 1;
                            spans_a[ns].length += 1;
                        } else {
                            i_in_span = 0;
                            if ns < spans_a.len() {
                                spans_a[ns].offset -= delta + 1;
                            }
                            spans_a.insert(
                                ns,
                                Span {
                                    offset: delta,
                                    length: 1,
                                },
                            );
                        }
                        break 'bucket;
                    }
                    delta -= spans_a[ns].offset;
                    i_in_span = 0;
                }
            }
            index_a = index_b;
            index_b = index_b.wrapping_add(1);
            b_idx += 1;
        }
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

    fn fh(schema: i32, zt: f64, zc: f64, p: &[(i32, u32)], pb: &[f64]) -> Histogram {
        Histogram {
            schema,
            zero_threshold: zt,
            zero_count: zc,
            count: zc + pb.iter().sum::<f64>(),
            sum: 1.0,
            positive_spans: sp(p),
            positive_buckets: pb.to_vec(),
            ..Histogram::default()
        }
    }

    #[test]
    fn bounds_match_prometheus() {
        assert_eq!(bound(0, 0), 1.0);
        assert_eq!(bound(1, 0), 2.0);
        assert_eq!(bound(-1, 0), 0.5);
        // Prometheus's tabulated 2^(-1/2), doubled (not f64's own sqrt(2)).
        assert_eq!(bound(1, 1), 2.0 * 0.7071067811865475);
        assert_eq!(bound(1, -1), 4.0);
        assert_eq!(bound(256, -2), f64::MAX);
        assert_eq!(bound(1024, 0), f64::MAX);
        assert_eq!(bound(1025, 0), f64::INFINITY);
        assert_eq!(bound(3, 3), 2.0 * 0.6484197773255048);
        assert_eq!(bound(-9, 3), 0.5 * 0.9170040432046711);
    }

    #[test]
    fn reduce_merges_buckets() {
        // Schema 1 buckets 1..4 (indices) into schema 0: (1,2)→1, (3,4)→2.
        let h = fh(1, 0.0, 0.0, &[(1, 4)], &[1.0, 2.0, 3.0, 4.0]);
        let mut r = Histogram::default();
        copy_to_schema(&mut r, &view(&h), 0);
        assert_eq!(r.positive_spans, sp(&[(1, 2)]));
        assert_eq!(r.positive_buckets, vec![3.0, 7.0]);
        // With gaps.
        let h = fh(2, 0.0, 0.0, &[(-3, 1), (8, 1)], &[1.0, 2.0]);
        copy_to_schema(&mut r, &view(&h), 0);
        assert_eq!(r.positive_spans, sp(&[(0, 1), (1, 1)]));
        assert_eq!(r.positive_buckets, vec![1.0, 2.0]);
    }

    #[test]
    fn add_creates_missing_buckets() {
        let mut a = fh(0, 0.0, 1.0, &[(0, 2), (3, 1)], &[1.0, 2.0, 3.0]); // 0 1 5
        let b = fh(
            0,
            0.0,
            2.0,
            &[(-2, 1), (2, 3), (1, 2)],
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        ); // -2 1 2 3 5 6
        add(&mut a, &view(&b));
        assert_eq!(a.positive_spans, sp(&[(-2, 1), (1, 4), (1, 2)]));
        assert_eq!(a.positive_buckets, vec![1.0, 1.0, 3.0, 1.0, 1.0, 4.0, 1.0]);
        assert_eq!(a.zero_count, 3.0);
        sub(&mut a, &view(&b));
        assert_eq!(a.positive_buckets, vec![0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 0.0]);
    }

    #[test]
    fn zero_threshold_reconciliation() {
        // Widening the zero bucket to 1.0 swallows the buckets up to 1.0 (indices ≤ 0).
        let mut a = fh(0, 0.5, 1.0, &[(0, 3)], &[1.0, 2.0, 3.0]); // (0.5,1] (1,2] (2,4]
        let b = fh(0, 1.0, 5.0, &[(1, 1)], &[1.0]);
        add(&mut a, &view(&b));
        assert_eq!(a.zero_threshold, 1.0);
        assert_eq!(a.zero_count, 1.0 + 1.0 + 5.0);
        assert_eq!(a.positive_spans, sp(&[(1, 2)]));
        assert_eq!(a.positive_buckets, vec![3.0, 3.0]);
    }

    #[test]
    fn detect_reset_cases() {
        let a = fh(0, 0.0, 1.0, &[(0, 2)], &[1.0, 2.0]);
        let mut b = fh(0, 0.0, 1.0, &[(0, 3)], &[1.0, 2.0, 0.0]);
        assert!(!detect_reset(&view(&b), &view(&a)));
        b.positive_buckets[1] = 1.5;
        assert!(detect_reset(&view(&b), &view(&a)));
        b.counter_reset_hint = CounterResetHint::NotCounterReset;
        assert!(!detect_reset(&view(&b), &view(&a)));
        // A populated bucket missing.
        let c = fh(0, 0.0, 1.0, &[(1, 1)], &[9.0]);
        assert!(detect_reset(&view(&c), &view(&a)));
        // Prometheus's quirk: once the current buckets run out, only the previous bucket
        // reached then counts; a populated one after an empty one goes unseen.
        let p = fh(0, 0.0, 0.0, &[(0, 2), (2, 1)], &[1.0, 0.0, 5.0]);
        let q = fh(0, 0.0, 0.0, &[(0, 1)], &[9.0]);
        assert!(!detect_reset(&view(&q), &view(&p)));
        // A higher schema is a reset, a lower one merges the previous buckets.
        let d = fh(1, 0.0, 1.0, &[(0, 2)], &[1.0, 2.0]);
        assert!(detect_reset(&view(&d), &view(&a)));
        // Schema 0 buckets 0 and 1 are buckets 0 and 1 of schema -1 too.
        let e = fh(-1, 0.0, 1.0, &[(0, 2)], &[1.0, 2.0]);
        assert!(!detect_reset(&view(&e), &view(&a)));
        let e = fh(-1, 0.0, 1.0, &[(0, 1)], &[3.0]);
        assert!(detect_reset(&view(&e), &view(&a)));
    }
}
