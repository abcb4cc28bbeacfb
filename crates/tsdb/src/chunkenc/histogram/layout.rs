//! Writing the chunk layout and fields, and the span algebra of appending: which buckets a
//! new sample adds to the chunk (forward inserts) and which buckets of the chunk it lacks
//! (backward inserts). Facts from Prometheus's `histogram_meta.go` and `varbit.go`.

use super::super::bstream::BitWriter;
use super::{Span, CUSTOM_BUCKETS_SCHEMA};

/// Whether `x` fits Prometheus's `bitRange(x, nbits)`: -(2^(n-1)-1) ≤ x ≤ 2^(n-1).
#[inline]
fn bit_range(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// A varbit signed integer, written field by field as Prometheus does (so the open byte at
/// the end of the stream matches).
pub(super) fn put_varbit_int(bw: &mut BitWriter, v: i64) {
    const CASES: [(u64, u32, u32); 7] = [
        (0b10, 2, 3),
        (0b110, 3, 6),
        (0b1110, 4, 9),
        (0b11110, 5, 12),
        (0b111110, 6, 18),
        (0b1111110, 7, 25),
        (0b1111_1110, 8, 56),
    ];
    if v == 0 {
        bw.write_bit(false);
        return;
    }
    for (prefix, plen, width) in CASES {
        if bit_range(v, width) {
            bw.write_bits(prefix, plen);
            bw.write_bits(v as u64, width);
            return;
        }
    }
    bw.write_bits(0b1111_1111, 8);
    bw.write_bits(v as u64, 64);
}

/// A varbit unsigned integer.
pub(super) fn put_varbit_uint(bw: &mut BitWriter, v: u64) {
    const CASES: [(u64, u32, u32); 7] = [
        (0b10, 2, 3),
        (0b110, 3, 6),
        (0b1110, 4, 9),
        (0b11110, 5, 12),
        (0b111110, 6, 18),
        (0b1111110, 7, 25),
        (0b1111_1110, 8, 56),
    ];
    if v == 0 {
        bw.write_bit(false);
        return;
    }
    for (prefix, plen, width) in CASES {
        if v.leading_zeros() >= 64 - width {
            bw.write_bits(prefix, plen);
            bw.write_bits(v, width);
            return;
        }
    }
    bw.write_bits(0b1111_1111, 8);
    bw.write_bits(v, 64);
}

/// XOR state of one float field on the writing side.
#[derive(Clone, Copy, Debug)]
pub(super) struct XorState {
    pub bits: u64,
    pub leading: u8,
    pub trailing: u8,
}

impl Default for XorState {
    fn default() -> Self {
        XorState {
            bits: 0,
            leading: 0xff,
            trailing: 0,
        }
    }
}

impl XorState {
    pub fn new(bits: u64) -> Self {
        XorState {
            bits,
            ..XorState::default()
        }
    }

    /// Prometheus's `xorWrite` of `v` against the previous value, then remembers `v`.
    pub fn write(&mut self, bw: &mut BitWriter, v: u64) {
        let delta = v ^ self.bits;
        self.bits = v;
        if delta == 0 {
            bw.write_bit(false);
            return;
        }
        bw.write_bit(true);
        let mut leading = delta.leading_zeros() as u8;
        let trailing = delta.trailing_zeros() as u8;
        if leading >= 32 {
            leading = 31;
        }
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            bw.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            bw.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        bw.write_bit(true);
        bw.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 significant bits are written as 0 in the 6-bit field.
        bw.write_bits(u64::from(sig), 6);
        bw.write_bits(delta >> trailing, sig);
    }
}

/// Zero threshold: 0 as a zero byte, powers of two from 2^-243 to 2^10 as one byte, anything
/// else as 255 and the f64.
fn put_zero_threshold(bw: &mut BitWriter, zt: f64) {
    if zt == 0.0 {
        bw.write_byte(0);
        return;
    }
    let bits = zt.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1u64 << 52) - 1);
    // Go's math.Frexp: zt = 0.5 * 2^exp for a positive normal power of two.
    let exp = biased - 1022;
    if zt > 0.0 && zt.is_normal() && mantissa == 0 && (-242..=11).contains(&exp) {
        bw.write_byte((exp + 243) as u8);
    } else {
        bw.write_byte(255);
        bw.write_bits(bits, 64);
    }
}

fn put_spans(bw: &mut BitWriter, spans: &[Span]) {
    put_varbit_uint(bw, spans.len() as u64);
    for s in spans {
        put_varbit_uint(bw, u64::from(s.length));
        put_varbit_int(bw, i64::from(s.offset));
    }
}

/// A custom bound: multiples of 0.001 from 0 to 33554.43 as `x*1000+1` in varbit (its first
/// bit is then 1), anything else as a 0 bit and the f64.
fn put_custom_bound(bw: &mut BitWriter, f: f64) {
    let tf = f * 1000.0;
    let whole = || (tf.round() / 1000.0) == f;
    if !(0.0..=33_554_430.0).contains(&tf) || !whole() {
        bw.write_bit(false);
        bw.write_bits(f.to_bits(), 64);
        return;
    }
    put_varbit_uint(bw, tf.round() as u64 + 1);
}

pub(super) fn write_layout(
    bw: &mut BitWriter,
    schema: i32,
    zero_threshold: f64,
    positive: &[Span],
    negative: &[Span],
    custom_values: &[f64],
) {
    put_zero_threshold(bw, zero_threshold);
    put_varbit_int(bw, i64::from(schema));
    put_spans(bw, positive);
    put_spans(bw, negative);
    if schema == CUSTOM_BUCKETS_SCHEMA {
        put_varbit_uint(bw, custom_values.len() as u64);
        for &v in custom_values {
            put_custom_bound(bw, v);
        }
    }
}

/// Walks the bucket indices the spans cover (Prometheus's chunk-side `bucketIterator`).
struct BucketIndices<'a> {
    spans: &'a [Span],
    span: usize,
    bucket: i64,
    idx: i64,
}

impl<'a> BucketIndices<'a> {
    fn new(spans: &'a [Span]) -> Self {
        let idx = spans.first().map_or(-1, |s| -1 + i64::from(s.offset));
        BucketIndices {
            spans,
            span: 0,
            bucket: -1,
            idx,
        }
    }

    fn next(&mut self) -> Option<i64> {
        if self.span >= self.spans.len() {
            return None;
        }
        if self.bucket < i64::from(self.spans[self.span].length) - 1 {
            self.bucket += 1;
            self.idx += 1;
            return Some(self.idx);
        }
        while self.span + 1 < self.spans.len() {
            self.span += 1;
            self.idx += i64::from(self.spans[self.span].offset) + 1;
            self.bucket = 0;
            if self.spans[self.span].length == 0 {
                self.idx -= 1;
                continue;
            }
            return Some(self.idx);
        }
        // Exhausted: stay exhausted.
        self.span = self.spans.len();
        None
    }
}

/// `num` new buckets to put before the `pos`th bucket of the original slice; `bucket_idx`
/// is the index of the first of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Insert {
    pub pos: usize,
    pub num: usize,
    pub bucket_idx: i64,
}

fn add_insert(inserts: &mut Vec<Insert>, cur: &mut Insert, other_idx: i64) {
    if cur.num == 0 {
        cur.bucket_idx = other_idx;
    } else if cur.bucket_idx + cur.num as i64 != other_idx {
        inserts.push(*cur);
        cur.num = 0;
        cur.bucket_idx = other_idx;
    }
    cur.num += 1;
}

/// For a counter chunk: the inserts that widen the chunk layout `a` (last absolute counts
/// `a_counts`) to cover `b` (`forward`), and those that give `b` the empty buckets of `a`
/// it lacks (`backward`). False on a counter reset: a bucket whose count went down, or a
/// populated bucket of `a` that `b` lacks.
pub(super) fn expand_spans_and_buckets(
    a: &[Span],
    b: &[Span],
    a_counts: &[f64],
    b_counts: &[f64],
    forward: &mut Vec<Insert>,
    backward: &mut Vec<Insert>,
) -> bool {
    forward.clear();
    backward.clear();
    let mut ai = BucketIndices::new(a);
    let mut bi = BucketIndices::new(b);
    let (mut a_inter, mut b_inter) = (Insert::default(), Insert::default());
    let (mut a_idx, mut b_idx) = (ai.next(), bi.next());
    let (mut a_pos, mut b_pos) = (0usize, 0usize);
    let count = |c: &[f64], i: usize| c.get(i).copied().unwrap_or(0.0);
    loop {
        match (a_idx, b_idx) {
            (Some(x), Some(y)) if x == y => {
                if count(a_counts, a_pos) > count(b_counts, b_pos) {
                    return false;
                }
                if a_inter.num > 0 {
                    forward.push(a_inter);
                    a_inter.num = 0;
                }
                a_idx = ai.next();
                a_inter.pos += 1;
                a_pos += 1;
                if b_inter.num > 0 {
                    backward.push(b_inter);
                    b_inter.num = 0;
                }
                b_idx = bi.next();
                b_inter.pos += 1;
                b_pos += 1;
            }
            (Some(x), Some(y)) if x > y => {
                add_insert(forward, &mut a_inter, y);
                if b_inter.num > 0 {
                    backward.push(b_inter);
                    b_inter.num = 0;
                }
                b_idx = bi.next();
                b_inter.pos += 1;
                b_pos += 1;
            }
            (Some(x), _) => {
                // b lacks a bucket of a: fine only if it is empty in a.
                if count(a_counts, a_pos) != 0.0 {
                    return false;
                }
                add_insert(backward, &mut b_inter, x);
                if a_inter.num > 0 {
                    forward.push(a_inter);
                    a_inter.num = 0;
                }
                a_idx = ai.next();
                a_inter.pos += 1;
                a_pos += 1;
            }
            (None, Some(y)) => {
                add_insert(forward, &mut a_inter, y);
                if b_inter.num > 0 {
                    backward.push(b_inter);
                    b_inter.num = 0;
                }
                b_idx = bi.next();
                b_inter.pos += 1;
                b_pos += 1;
            }
            (None, None) => {
                if a_inter.num > 0 {
                    forward.push(a_inter);
                }
                if b_inter.num > 0 {
                    backward.push(b_inter);
                }
                return true;
            }
        }
    }
}

/// Appends a bucket at index `b` to spans being built, `last` being the previous one.
fn add_bucket(merged: &mut Vec<Span>, last: &mut i64, b: i64) {
    let mut offset = b - *last - 1;
    if offset == 0 && !merged.is_empty() {
        if let Some(s) = merged.last_mut() {
            s.length += 1;
        }
    } else {
        if merged.is_empty() {
            offset += 1;
        }
        merged.push(Span {
            offset: offset as i32,
            length: 1,
        });
    }
    *last = b;
}

/// For a gauge chunk: like [`expand_spans_and_buckets`] with no reset check, and the union
/// layout in `merged`.
pub(super) fn expand_spans_both_ways(
    a: &[Span],
    b: &[Span],
    forward: &mut Vec<Insert>,
    backward: &mut Vec<Insert>,
    merged: &mut Vec<Span>,
) {
    forward.clear();
    backward.clear();
    merged.clear();
    let mut ai = BucketIndices::new(a);
    let mut bi = BucketIndices::new(b);
    let (mut f_inter, mut b_inter) = (Insert::default(), Insert::default());
    let mut last = 0i64;
    let (mut av, mut bv) = (ai.next(), bi.next());
    loop {
        match (av, bv) {
            (Some(x), Some(y)) if x == y => {
                if f_inter.num > 0 {
                    forward.push(f_inter);
                    f_inter.num = 0;
                }
                if b_inter.num > 0 {
                    backward.push(b_inter);
                    b_inter.num = 0;
                }
                add_bucket(merged, &mut last, x);
                av = ai.next();
                bv = bi.next();
                f_inter.pos += 1;
                b_inter.pos += 1;
            }
            (Some(x), Some(y)) if x < y => {
                b_inter.num += 1;
                if f_inter.num > 0 {
                    forward.push(f_inter);
                    f_inter.num = 0;
                }
                add_bucket(merged, &mut last, x);
                f_inter.pos += 1;
                av = ai.next();
            }
            (Some(_), Some(y)) => {
                f_inter.num += 1;
                if b_inter.num > 0 {
                    backward.push(b_inter);
                    b_inter.num = 0;
                }
                add_bucket(merged, &mut last, y);
                b_inter.pos += 1;
                bv = bi.next();
            }
            (Some(x), None) => {
                b_inter.num += 1;
                add_bucket(merged, &mut last, x);
                av = ai.next();
            }
            (None, Some(y)) => {
                f_inter.num += 1;
                add_bucket(merged, &mut last, y);
                bv = bi.next();
            }
            (None, None) => {
                if f_inter.num > 0 {
                    forward.push(f_inter);
                }
                if b_inter.num > 0 {
                    backward.push(b_inter);
                }
                return;
            }
        }
    }
}

/// Writes `input` (absolute counts) into `out` with zero buckets inserted as `inserts` say.
pub(super) fn insert_buckets(input: &[f64], out: &mut Vec<f64>, inserts: &[Insert]) {
    out.clear();
    let mut ii = 0;
    for (i, &v) in input.iter().enumerate() {
        while ii < inserts.len() && inserts[ii].pos == i {
            out.extend(std::iter::repeat_n(0.0, inserts[ii].num));
            ii += 1;
        }
        out.push(v);
    }
    for ins in &inserts[ii..] {
        out.extend(std::iter::repeat_n(0.0, ins.num));
    }
}

/// The spans of `spans` with the buckets of `inserts` (by bucket index) added, as
/// Prometheus's `adjustForInserts`.
pub(super) fn adjust_for_inserts(spans: &[Span], inserts: &[Insert], out: &mut Vec<Span>) {
    out.clear();
    if inserts.is_empty() {
        out.extend_from_slice(spans);
        return;
    }
    let mut it = BucketIndices::new(spans);
    let mut last = 0i64;
    let mut i = 0usize;
    let mut insert_idx = inserts[0].bucket_idx;
    let mut insert_num = inserts[0].num;
    let consume = |i: &mut usize, insert_idx: &mut i64, insert_num: &mut usize| {
        *insert_num -= 1;
        if *insert_num == 0 {
            *i += 1;
            if let Some(ins) = inserts.get(*i) {
                *insert_idx = ins.bucket_idx;
                *insert_num = ins.num;
            }
        } else {
            *insert_idx += 1;
        }
    };
    let mut bucket = it.next();
    while let Some(b) = bucket {
        if i < inserts.len() && insert_idx < b {
            add_bucket(out, &mut last, insert_idx);
            consume(&mut i, &mut insert_idx, &mut insert_num);
        } else {
            add_bucket(out, &mut last, b);
            bucket = it.next();
        }
    }
    while i < inserts.len() {
        add_bucket(out, &mut last, insert_idx);
        consume(&mut i, &mut insert_idx, &mut insert_num);
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

    #[test]
    fn prometheus_expand_example() {
        // The example of Prometheus's expandIntSpansAndBuckets doc comment.
        let a = sp(&[(0, 2), (2, 1), (3, 2), (3, 1), (1, 1)]);
        let b = sp(&[(0, 3), (1, 1), (1, 4), (3, 3)]);
        let a_counts = [6.0, 3.0, 3.0, 2.0, 4.0, 5.0, 1.0];
        let b_counts = [6.0, 3.0, 0.0, 3.0, 0.0, 0.0, 2.0, 4.0, 5.0, 0.0, 1.0];
        let (mut f, mut bw) = (Vec::new(), Vec::new());
        assert!(expand_spans_and_buckets(
            &a, &b, &a_counts, &b_counts, &mut f, &mut bw
        ));
        assert_eq!(
            f,
            vec![
                Insert {
                    pos: 2,
                    num: 1,
                    bucket_idx: 2
                },
                Insert {
                    pos: 3,
                    num: 2,
                    bucket_idx: 6
                },
                Insert {
                    pos: 6,
                    num: 1,
                    bucket_idx: 14
                },
            ]
        );
        assert!(bw.is_empty());
        let mut out = Vec::new();
        insert_buckets(&a_counts, &mut out, &f);
        assert_eq!(out, b_counts);
        // A decrease is a reset.
        let mut lower = b_counts;
        lower[7] = 3.0;
        assert!(!expand_spans_and_buckets(
            &a, &b, &a_counts, &lower, &mut f, &mut bw
        ));
    }

    #[test]
    fn both_ways_merges_layouts() {
        let a = sp(&[(0, 2), (3, 1)]); // 0 1 5
        let b = sp(&[(1, 2), (4, 1)]); // 1 2 7
        let (mut f, mut bw, mut m) = (Vec::new(), Vec::new(), Vec::new());
        expand_spans_both_ways(&a, &b, &mut f, &mut bw, &mut m);
        assert_eq!(m, sp(&[(0, 3), (2, 1), (1, 1)])); // 0 1 2 5 7
        let mut out = Vec::new();
        insert_buckets(&[1.0, 2.0, 3.0], &mut out, &f);
        assert_eq!(out, vec![1.0, 2.0, 0.0, 3.0, 0.0]);
        insert_buckets(&[4.0, 5.0, 6.0], &mut out, &bw);
        assert_eq!(out, vec![0.0, 4.0, 5.0, 0.0, 6.0]);
    }

    #[test]
    fn backward_inserts_adjust_spans() {
        // The chunk has 0, 1 (empty) and 2; the sample has 0, 2 and a new 4.
        let a = sp(&[(0, 3)]);
        let b = sp(&[(0, 1), (1, 1), (1, 1)]);
        let (mut f, mut bw) = (Vec::new(), Vec::new());
        assert!(expand_spans_and_buckets(
            &a,
            &b,
            &[1.0, 0.0, 2.0],
            &[1.0, 2.0, 5.0],
            &mut f,
            &mut bw
        ));
        assert_eq!(
            bw,
            vec![Insert {
                pos: 1,
                num: 1,
                bucket_idx: 1
            }]
        );
        assert_eq!(f.len(), 1);
        let mut adj = Vec::new();
        adjust_for_inserts(&b, &bw, &mut adj);
        assert_eq!(adj, sp(&[(0, 3), (1, 1)]));
        let mut out = Vec::new();
        insert_buckets(&[1.0, 2.0, 5.0], &mut out, &bw);
        assert_eq!(out, vec![1.0, 0.0, 2.0, 5.0]);
    }
}
