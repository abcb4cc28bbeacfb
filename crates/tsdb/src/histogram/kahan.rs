//! Compensated (Kahan-Babuška-Neumaier) sums of histograms, as PromQL 3.x sums them in
//! `sum`, `avg`, `sum_over_time` and `avg_over_time` (`FloatHistogram.KahanAdd`): counts
//! of very different magnitudes do not swallow each other.
//!
//! The result's layout (schema, zero threshold, spans, custom bounds) is the one plain
//! addition gives; each input is then brought into that layout and every count summed
//! with a compensation term.

use super::arith::{
    bound, bounds_match, map_custom_buckets, try_add, view, zero_count_in_threshold, Combined,
    IncompatibleSchemas,
};
use super::{copy_to_schema, Histogram, Span, CUSTOM_BUCKETS_SCHEMA};

/// One step of Kahan-Babuška-Neumaier summation (Prometheus's `kahansum.Inc`).
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A sum with its compensation.
#[derive(Clone, Copy, Default)]
struct Acc {
    sum: f64,
    c: f64,
}

impl Acc {
    fn add(&mut self, v: f64) {
        (self.sum, self.c) = kahan_inc(v, self.sum, self.c);
    }

    fn value(self) -> f64 {
        self.sum + self.c
    }
}

/// The bucket indexes a side's spans describe, in order.
fn indexes(spans: &[Span]) -> Vec<i32> {
    let mut out = Vec::new();
    let mut idx = 0i32;
    for s in spans {
        idx = idx.wrapping_add(s.offset);
        for _ in 0..s.length {
            out.push(idx);
            idx = idx.wrapping_add(1);
        }
    }
    out
}

/// Adds one side's buckets (`spans`, `buckets`, in the result's schema) into `row`, the
/// result's buckets at `target` indexes; buckets inside the zero
/// bucket (upper bound at most `zero_threshold`) are left out, being counted there.
fn add_side(
    spans: &[Span],
    buckets: &[f64],
    schema: i32,
    zero_threshold: f64,
    target: &[i32],
    row: &mut [f64],
) {
    for (idx, &v) in indexes(spans).into_iter().zip(buckets) {
        if schema != CUSTOM_BUCKETS_SCHEMA && bound(idx, schema) <= zero_threshold {
            continue;
        }
        if let Ok(pos) = target.binary_search(&idx) {
            row[pos] += v;
        }
    }
}

/// The compensated sum of `hists`, with what the additions noticed.
pub fn kahan_sum(hists: &[&Histogram]) -> Result<(Histogram, Combined), IncompatibleSchemas> {
    let (mut layout, noticed, rows) = components(hists)?;
    if let Some(rows) = rows {
        let values: Vec<f64> = (0..rows[0].len())
            .map(|k| {
                let mut acc = Acc::default();
                rows.iter().for_each(|r| acc.add(r[k]));
                acc.value()
            })
            .collect();
        set_components(&mut layout, &values);
    }
    Ok((layout, noticed))
}

/// The mean of `hists` as PromQL 3.x's `avg` and `avg_over_time` compute it: a
/// compensated sum divided by the count, or, once the sum overflows, an incremental mean
/// from that point on.
pub fn kahan_mean(hists: &[&Histogram]) -> Result<(Histogram, Combined), IncompatibleSchemas> {
    let (mut layout, noticed, rows) = components(hists)?;
    let Some(rows) = rows else {
        return Ok((layout, noticed));
    };
    let width = rows[0].len();
    // Where the running sum of any component first overflows (as a whole histogram).
    let mut accs = vec![Acc::default(); width];
    let mut switch = None;
    for (i, r) in rows.iter().enumerate() {
        let next: Vec<Acc> = accs
            .iter()
            .zip(r)
            .map(|(a, &v)| {
                let mut a = *a;
                a.add(v);
                a
            })
            .collect();
        if i > 0 && next.iter().any(|a| a.sum.is_infinite()) {
            switch = Some(i);
            break;
        }
        accs = next;
    }
    let n = rows.len() as f64;
    let values: Vec<f64> = (0..width)
        .map(|k| match switch {
            None => accs[k].sum / n + accs[k].c / n,
            Some(first) => {
                let mut mean = accs[k].sum / first as f64;
                let mut c = accs[k].c / first as f64;
                for (i, r) in rows.iter().enumerate().skip(first) {
                    let count = (i + 1) as f64;
                    let q = (count - 1.0) / count;
                    (mean, c) = kahan_inc(r[k] / count, q * mean, q * c);
                }
                mean + c
            }
        })
        .collect();
    set_components(&mut layout, &values);
    Ok((layout, noticed))
}

/// The layout plain addition of `hists` gives, what the additions noticed, and (for more
/// than one histogram) each one's counts in that layout: count, sum, zero count, then
/// the positive and the negative buckets.
#[allow(clippy::type_complexity)]
fn components(
    hists: &[&Histogram],
) -> Result<(Histogram, Combined, Option<Vec<Vec<f64>>>), IncompatibleSchemas> {
    let Some((first, rest)) = hists.split_first() else {
        return Ok((Histogram::default(), Combined::default(), None));
    };
    let mut layout = (*first).clone();
    let mut noticed = Combined::default();
    for h in rest {
        let c = try_add(&mut layout, h)?;
        noticed.counter_reset_collision |= c.counter_reset_collision;
        noticed.custom_bounds_reconciled |= c.custom_bounds_reconciled;
    }
    if rest.is_empty() {
        return Ok((layout, noticed, None));
    }
    let custom = layout.schema == CUSTOM_BUCKETS_SCHEMA;
    let pos_idx = indexes(&layout.positive_spans);
    let neg_idx = indexes(&layout.negative_spans);
    if pos_idx.len() != layout.positive_buckets.len()
        || neg_idx.len() != layout.negative_buckets.len()
    {
        // Spans that do not describe the buckets (bad input): the plain sum stands.
        return Ok((layout, noticed, None));
    }
    let mut rows = Vec::with_capacity(hists.len());
    let mut converted = Histogram::default();
    for h in hists {
        let mut row = vec![0.0; 3 + pos_idx.len() + neg_idx.len()];
        row[0] = h.count;
        row[1] = h.sum;
        let (pos, neg) = row[3..].split_at_mut(pos_idx.len());
        if custom {
            if bounds_match(&h.custom_values, &layout.custom_values) {
                add_side(
                    &h.positive_spans,
                    &h.positive_buckets,
                    CUSTOM_BUCKETS_SCHEMA,
                    0.0,
                    &pos_idx,
                    pos,
                );
            } else {
                let mut mapped = vec![0.0; layout.custom_values.len() + 1];
                map_custom_buckets(
                    &h.positive_spans,
                    &h.positive_buckets,
                    &h.custom_values,
                    &layout.custom_values,
                    1.0,
                    &mut mapped,
                );
                for (i, v) in mapped.into_iter().enumerate() {
                    if let Ok(p) = pos_idx.binary_search(&(i as i32)) {
                        pos[p] += v;
                    }
                }
            }
            rows.push(row);
            continue;
        }
        let src: &Histogram = if h.schema > layout.schema {
            copy_to_schema(&mut converted, &view(h), layout.schema);
            &converted
        } else {
            h
        };
        let zt = layout.zero_threshold;
        add_side(
            &src.positive_spans,
            &src.positive_buckets,
            layout.schema,
            zt,
            &pos_idx,
            pos,
        );
        add_side(
            &src.negative_spans,
            &src.negative_buckets,
            layout.schema,
            zt,
            &neg_idx,
            neg,
        );
        row[2] = zero_count_in_threshold(src, zt);
        rows.push(row);
    }
    Ok((layout, noticed, Some(rows)))
}

/// Writes count, sum, zero count and buckets (in [`components`] order) into `h`.
fn set_components(h: &mut Histogram, values: &[f64]) {
    h.count = values[0];
    h.sum = values[1];
    if h.schema != CUSTOM_BUCKETS_SCHEMA {
        h.zero_count = values[2];
    }
    let (pos, neg) = values[3..].split_at(h.positive_buckets.len());
    h.positive_buckets.copy_from_slice(pos);
    let n = h.negative_buckets.len();
    h.negative_buckets.copy_from_slice(&neg[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sum: f64, zero: f64, buckets: &[f64]) -> Histogram {
        Histogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: zero,
            count: zero + buckets.iter().sum::<f64>(),
            sum,
            positive_spans: vec![Span {
                offset: 0,
                length: buckets.len() as u32,
            }],
            positive_buckets: buckets.to_vec(),
            ..Histogram::default()
        }
    }

    #[test]
    fn small_values_survive_large_ones() {
        let (a, b, c) = (
            h(1e20, 1.0, &[1.0]),
            h(1.5, 1.0, &[2.0]),
            h(-1e20, 1.0, &[1.0]),
        );
        let (s, _) = kahan_sum(&[&a, &b, &c]).unwrap();
        assert_eq!(s.sum, 1.5);
        assert_eq!(s.zero_count, 3.0);
        assert_eq!(s.positive_buckets, vec![4.0]);
        // Plain addition loses it.
        let mut plain = a.clone();
        try_add(&mut plain, &b).unwrap();
        try_add(&mut plain, &c).unwrap();
        assert_eq!(plain.sum, 0.0);
    }

    #[test]
    fn layouts_are_reconciled_as_plain_addition_does() {
        let a = h(1.0, 0.0, &[1.0, 2.0]);
        let mut b = h(2.0, 0.0, &[4.0, 4.0, 4.0, 4.0]);
        b.schema = 1;
        b.positive_spans[0].offset = 1;
        let (s, _) = kahan_sum(&[&a, &b]).unwrap();
        let mut plain = a.clone();
        try_add(&mut plain, &b).unwrap();
        assert_eq!(s, plain);
    }
}
