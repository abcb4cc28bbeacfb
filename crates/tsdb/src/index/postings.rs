//! Postings: sorted lists of series references, and the set operations that turn label
//! matchers into the series of a block (Prometheus's `PostingsForMatchers`).

use super::IndexReader;
use crate::error::Result;
use crate::matchers::{MatchType, Matcher};

/// First index `i ≥ from` with `list[i] ≥ x`, by exponential then binary search.
#[inline]
fn gallop(list: &[u32], from: usize, x: u32) -> usize {
    let mut lo = from;
    let mut step = 1;
    let mut hi = from;
    while hi < list.len() && list[hi] < x {
        lo = hi + 1;
        hi += step;
        step <<= 1;
    }
    let hi = hi.min(list.len());
    lo + list[lo..hi].partition_point(|&v| v < x)
}

/// Intersection of two sorted lists, appended to `out`.
pub fn intersect_two(a: &[u32], b: &[u32], out: &mut Vec<u32>) {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.is_empty() {
        return;
    }
    if large.len() / small.len() >= 16 {
        let mut j = 0;
        for &x in small {
            j = gallop(large, j, x);
            if j == large.len() {
                break;
            }
            if large[j] == x {
                out.push(x);
            }
        }
        return;
    }
    let (mut i, mut j) = (0, 0);
    while i < small.len() && j < large.len() {
        let (x, y) = (small[i], large[j]);
        if x == y {
            out.push(x);
            i += 1;
            j += 1;
        } else if x < y {
            i += 1;
        } else {
            j += 1;
        }
    }
}

/// Intersection of sorted lists, smallest first.
pub fn intersect(mut lists: Vec<Vec<u32>>) -> Vec<u32> {
    if lists.is_empty() {
        return Vec::new();
    }
    lists.sort_by_key(Vec::len);
    let mut iter = lists.into_iter();
    let mut acc = iter.next().unwrap_or_default();
    let mut next = Vec::new();
    for l in iter {
        if acc.is_empty() {
            break;
        }
        next.clear();
        intersect_two(&acc, &l, &mut next);
        std::mem::swap(&mut acc, &mut next);
    }
    acc
}

/// Union of sorted lists.
pub fn union(mut lists: Vec<Vec<u32>>) -> Vec<u32> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists.pop().unwrap_or_default(),
        2 => {
            let (a, b) = (&lists[0], &lists[1]);
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].cmp(&b[j]) {
                    std::cmp::Ordering::Less => {
                        out.push(a[i]);
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        out.push(b[j]);
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        out.push(a[i]);
                        i += 1;
                        j += 1;
                    }
                }
            }
            out.extend_from_slice(&a[i..]);
            out.extend_from_slice(&b[j..]);
            out
        }
        _ => {
            let mut out: Vec<u32> = lists.concat();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Elements of sorted `a` not in sorted `b`.
pub fn without(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        j = gallop(b, j, x);
        if j == b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

/// The union of the postings of every value of `m.name` accepted by `accept`.
fn postings_for_values(
    ix: &IndexReader,
    m: &Matcher,
    accept: impl Fn(&str) -> bool,
) -> Result<Vec<u32>> {
    let mut offsets = Vec::new();
    match m.prefix() {
        // Prefix regexes: scan only while values can still match.
        Some(p) if m.kind == MatchType::RegexMatch => ix.for_each_value(&m.name, |v, off| {
            if v.starts_with(p) && accept(v) {
                offsets.push(off);
            }
            v < p || v.starts_with(p)
        })?,
        _ => ix.for_each_value(&m.name, |v, off| {
            if accept(v) {
                offsets.push(off);
            }
            true
        })?,
    }
    let mut lists = Vec::with_capacity(offsets.len());
    for off in offsets {
        let mut l = Vec::new();
        ix.read_postings_at(off, &mut l)?;
        lists.push(l);
    }
    Ok(union(lists))
}

/// The postings of the series that have a value of `m.name` matched by `m` (a series
/// without the label is not included).
fn postings_for_matcher(ix: &IndexReader, m: &Matcher) -> Result<Vec<u32>> {
    if let Some(values) = m.set_matches() {
        let mut lists = Vec::with_capacity(values.len());
        for v in values {
            if !v.is_empty() {
                lists.push(ix.postings(&m.name, v)?);
            }
        }
        return Ok(union(lists));
    }
    postings_for_values(ix, m, |v| m.matches(v))
}

/// The postings of series that have `m.name` with a value `m` rejects.
fn postings_rejected_by(ix: &IndexReader, m: &Matcher) -> Result<Vec<u32>> {
    let inv = m.inverse();
    if inv.kind == MatchType::Equal {
        return ix.postings(&inv.name, &inv.value);
    }
    postings_for_matcher(ix, &inv)
}

/// The sorted series references of `ix` selected by all `matchers`, with Prometheus's
/// semantics: a matcher that accepts the empty string also selects series lacking the label.
pub fn postings_for_matchers(ix: &IndexReader, matchers: &[Matcher]) -> Result<Vec<u32>> {
    let mut positive: Vec<Vec<u32>> = Vec::new();
    let mut negative: Vec<Vec<u32>> = Vec::new();
    for m in matchers {
        if m.matches("") {
            // Selects series without the label, so subtract those whose value is rejected.
            negative.push(postings_rejected_by(ix, m)?);
        } else {
            let p = postings_for_matcher(ix, m)?;
            if p.is_empty() {
                return Ok(Vec::new());
            }
            positive.push(p);
        }
    }
    if positive.is_empty() {
        positive.push(ix.all_postings()?);
    }
    let mut result = intersect(positive);
    for n in negative {
        if result.is_empty() {
            break;
        }
        if !n.is_empty() {
            result = without(&result, &n);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v.dedup();
        v
    }

    proptest! {
        #[test]
        fn set_ops_match_btreeset(a in proptest::collection::vec(0u32..2000, 0..300),
                                  b in proptest::collection::vec(0u32..2000, 0..3000),
                                  c in proptest::collection::vec(0u32..2000, 0..50)) {
            use std::collections::BTreeSet;
            let (a, b, c) = (sorted(a), sorted(b), sorted(c));
            let sa: BTreeSet<u32> = a.iter().copied().collect();
            let sb: BTreeSet<u32> = b.iter().copied().collect();
            let sc: BTreeSet<u32> = c.iter().copied().collect();
            let want: Vec<u32> = sa.intersection(&sb).copied().filter(|x| sc.contains(x)).collect();
            prop_assert_eq!(intersect(vec![a.clone(), b.clone(), c.clone()]), want);
            let want: Vec<u32> = sa.union(&sb).copied().collect();
            prop_assert_eq!(union(vec![a.clone(), b.clone()]), want);
            let want: Vec<u32> = sa.union(&sb).copied().chain(sc.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(union(vec![a.clone(), b.clone(), c.clone()]), want);
            let want: Vec<u32> = sa.difference(&sb).copied().collect();
            prop_assert_eq!(without(&a, &b), want);
        }
    }
}
