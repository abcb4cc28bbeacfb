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

/// Which postings lists one matcher needs: the union of the lists at `offsets`, to
/// intersect with (`negative` false) or subtract from (`negative` true) the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatcherLists {
    pub negative: bool,
    pub offsets: Vec<u64>,
}

/// Postings offsets of the values of `m.name` accepted by `accept`.
fn offsets_for_values(
    ix: &IndexReader,
    m: &Matcher,
    accept: impl Fn(&str) -> bool,
) -> Result<Vec<u64>> {
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
    Ok(offsets)
}

/// Offsets of the lists of series having a value of `m.name` that `m` accepts.
fn offsets_for_matcher(ix: &IndexReader, m: &Matcher) -> Result<Vec<u64>> {
    if let Some(values) = m.set_matches() {
        let mut offsets = Vec::with_capacity(values.len());
        for v in values {
            if !v.is_empty() {
                if let Some(off) = ix.postings_offset(&m.name, v)? {
                    offsets.push(off);
                }
            }
        }
        return Ok(offsets);
    }
    offsets_for_values(ix, m, |v| m.matches(v))
}

/// Plans the postings lists `matchers` need, with Prometheus's semantics: a matcher that
/// accepts the empty string also selects series lacking the label, so it becomes a list to
/// subtract (of the values it rejects). Returns None when the result is certainly empty.
pub fn plan_matchers(ix: &IndexReader, matchers: &[Matcher]) -> Result<Option<Vec<MatcherLists>>> {
    let mut plan = Vec::with_capacity(matchers.len());
    for m in matchers {
        if m.matches("") {
            let offsets = offsets_for_matcher(ix, &m.inverse())?;
            plan.push(MatcherLists {
                negative: true,
                offsets,
            });
        } else {
            let offsets = offsets_for_matcher(ix, m)?;
            if offsets.is_empty() {
                return Ok(None);
            }
            plan.push(MatcherLists {
                negative: false,
                offsets,
            });
        }
    }
    Ok(Some(plan))
}

/// Combines fetched lists (`lists[i][j]` = list `j` of `plan[i]`) into the selected series;
/// `all` supplies every series when no matcher is positive.
pub fn combine(
    plan: &[MatcherLists],
    lists: Vec<Vec<Vec<u32>>>,
    all: impl FnOnce() -> Result<Vec<u32>>,
) -> Result<Vec<u32>> {
    let mut positive = Vec::new();
    let mut negative = Vec::new();
    for (p, l) in plan.iter().zip(lists) {
        if p.negative {
            negative.push(union(l));
        } else {
            positive.push(union(l));
        }
    }
    if positive.is_empty() {
        positive.push(all()?);
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

/// The sorted series references of `ix` selected by all `matchers`.
pub fn postings_for_matchers(ix: &IndexReader, matchers: &[Matcher]) -> Result<Vec<u32>> {
    let Some(plan) = plan_matchers(ix, matchers)? else {
        return Ok(Vec::new());
    };
    let mut lists = Vec::with_capacity(plan.len());
    for p in &plan {
        let mut group = Vec::with_capacity(p.offsets.len());
        for &off in &p.offsets {
            let mut l = Vec::new();
            ix.read_postings_at(off, &mut l)?;
            group.push(l);
        }
        lists.push(group);
    }
    combine(&plan, lists, || ix.all_postings())
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
