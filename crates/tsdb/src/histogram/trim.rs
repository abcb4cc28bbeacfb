//! The histogram trim operators of PromQL 3.11+: `h </ x` keeps the observations at or
//! below `x`, `h >/ x` those at or above it (Prometheus's `FloatHistogram.TrimBuckets`):
//! buckets across `x` keep the interpolated part of their count, and the sum is rebuilt
//! from bucket midpoints when anything was trimmed.

use super::arith::compact_buckets;
use super::stats::{bucket_at, Bucket};
use super::{Histogram, Span, CUSTOM_BUCKETS_SCHEMA};

/// The bucket indexes a side's spans describe, in order.
fn indexes(spans: &[Span]) -> impl Iterator<Item = i32> + '_ {
    let mut idx = 0i32;
    spans.iter().flat_map(move |s| {
        idx = idx.wrapping_add(s.offset);
        let start = idx;
        idx = idx.wrapping_add(s.length as i32);
        (0..s.length as i32).map(move |k| start.wrapping_add(k))
    })
}

/// The buckets of one side with their bounds, in index order, as Prometheus's
/// `PositiveBucketIterator`/`NegativeBucketIterator` give them (empty ones included).
pub fn side_buckets(h: &Histogram, positive: bool) -> impl Iterator<Item = Bucket> + '_ {
    let (spans, buckets) = if positive {
        (&h.positive_spans, &h.positive_buckets)
    } else {
        (&h.negative_spans, &h.negative_buckets)
    };
    indexes(spans)
        .zip(buckets.iter())
        .map(move |(idx, &c)| bucket_at(h, idx, positive, c))
}

/// `h </ rhs` (`upper`) or `h >/ rhs`, in place.
pub fn trim_buckets(h: &mut Histogram, rhs: f64, upper: bool) {
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    let (mut count, mut sum) = (0.0, 0.0);
    let mut trimmed = false;
    let (mut has_positive, mut has_negative) = (false, false);
    for positive in [true, false] {
        let idxs: Vec<i32> = if positive {
            indexes(&h.positive_spans).collect()
        } else {
            indexes(&h.negative_spans).collect()
        };
        for (i, idx) in idxs.into_iter().enumerate() {
            let Some(&c) = (if positive {
                h.positive_buckets.get(i)
            } else {
                h.negative_buckets.get(i)
            }) else {
                break;
            };
            if c == 0.0 {
                continue;
            }
            if positive {
                has_positive = true;
            } else {
                has_negative = true;
            }
            let b = bucket_at(h, idx, positive, c);
            let keep_whole = if upper {
                b.upper <= rhs
            } else {
                b.lower >= rhs
            };
            let partly = if upper { b.lower < rhs } else { b.upper > rhs };
            let new = if keep_whole {
                count += c;
                sum += midpoint(b.lower, b.upper, positive, custom) * c;
                continue;
            } else if partly {
                let (keep, mid) = bucket_trim(&b, rhs, upper, positive, custom);
                count += keep;
                sum += mid * keep;
                keep
            } else {
                0.0
            };
            let slot = if positive {
                &mut h.positive_buckets[i]
            } else {
                &mut h.negative_buckets[i]
            };
            if *slot != new {
                *slot = new;
                trimmed = true;
            }
        }
    }
    if h.zero_count > 0.0 {
        let (keep, mid) = zero_bucket_trim(h, rhs, has_negative, has_positive, upper);
        if h.zero_count != keep {
            h.zero_count = keep;
            trimmed = true;
        }
        sum += mid * keep;
        count += keep;
    }
    if trimmed {
        h.count = count;
        h.sum = sum;
        compact_buckets(h);
    }
}

/// `computeMidpoint`: where the surviving part of a bucket is taken to sit.
fn midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let geo = (lower * upper).abs().sqrt();
    if positive {
        geo
    } else {
        -geo
    }
}

/// `computeBucketTrim`: the count kept of a bucket across `rhs`, and its midpoint.
fn bucket_trim(b: &Bucket, rhs: f64, upper: bool, positive: bool, custom: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return infinity_bucket_trim(b, rhs, upper);
    }
    let under = if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(rhs, custom)
    };
    if upper {
        (under, midpoint(b.lower, rhs, positive, custom))
    } else {
        (b.count - under, midpoint(rhs, b.upper, positive, custom))
    }
}

/// `handleInfinityBuckets`: a bucket with an infinite bound.
fn infinity_bucket_trim(b: &Bucket, rhs: f64, upper: bool) -> (f64, f64) {
    let finite = |x: f64| if x.is_infinite() { 0.0 } else { x };
    if b.lower == f64::NEG_INFINITY {
        if upper {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper != f64::INFINITY {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, finite(b.upper));
        }
        if rhs <= b.lower {
            return (b.count, 0.0);
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper != f64::INFINITY {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, finite(b.upper));
    }
    // The upper bound is +Inf.
    if upper {
        return (0.0, finite(b.lower));
    }
    if rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, finite(b.lower))
}

/// `computeZeroBucketTrim`.
fn zero_bucket_trim(
    h: &Histogram,
    rhs: f64,
    has_negative: bool,
    has_positive: bool,
    upper_trim: bool,
) -> (f64, f64) {
    let (mut lower, mut upper) = (-h.zero_threshold, h.zero_threshold);
    if has_negative && !has_positive {
        upper = 0.0;
    }
    if has_positive && !has_negative {
        lower = 0.0;
    }
    let count = h.zero_count;
    if upper_trim {
        if rhs <= lower {
            return (0.0, 0.0);
        }
        if rhs >= upper {
            return (count, (lower + upper) / 2.0);
        }
        (count * (rhs - lower) / (upper - lower), (lower + rhs) / 2.0)
    } else {
        if rhs <= lower {
            return (count, (lower + upper) / 2.0);
        }
        if rhs >= upper {
            return (0.0, 0.0);
        }
        (count * (upper - rhs) / (upper - lower), (rhs + upper) / 2.0)
    }
}
