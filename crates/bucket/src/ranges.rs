//! Merging nearby byte ranges into fewer GETs (Thanos's partitioner: ranges closer than
//! 512 KiB are read together).

use std::ops::Range;

pub const MAX_GAP: u64 = 512 * 1024;

/// Groups sorted-or-not ranges into parts; returns (part, indices of the ranges it covers).
pub fn partition(ranges: &[Range<u64>], max_gap: u64) -> Vec<(Range<u64>, Vec<usize>)> {
    let mut idx: Vec<usize> = (0..ranges.len()).collect();
    idx.sort_by_key(|&i| (ranges[i].start, ranges[i].end));
    let mut parts: Vec<(Range<u64>, Vec<usize>)> = Vec::new();
    for i in idx {
        let r = &ranges[i];
        match parts.last_mut() {
            Some((p, members)) if r.start <= p.end.saturating_add(max_gap) => {
                p.end = p.end.max(r.end);
                members.push(i);
            }
            _ => parts.push((r.clone(), vec![i])),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_close_ranges() {
        let r = vec![100..200, 0..50, 10_000_000..10_000_100, 250..300];
        let p = partition(&r, 100);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, 0..300);
        assert_eq!(p[0].1, vec![1, 0, 3]);
        assert_eq!(p[1].0, 10_000_000..10_000_100);
    }
}
