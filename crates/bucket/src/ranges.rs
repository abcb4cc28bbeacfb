//! Merging nearby byte ranges into fewer GETs (Thanos's partitioner: ranges closer than
//! 512 KiB are read together).

use std::ops::Range;

pub const MAX_GAP: u64 = 512 * 1024;

/// Groups sorted-or-not ranges into parts; returns (part, indices of the ranges it covers).
pub fn partition(ranges: &[Range<u64>], max_gap: u64) -> Vec<(Range<u64>, Vec<usize>)> {
    partition_within(ranges, max_gap, u64::MAX)
}

/// [`partition`], a range joining a part only while the part stays at most `max_part`
/// long (a range longer than that is a part of its own).
pub fn partition_within(
    ranges: &[Range<u64>],
    max_gap: u64,
    max_part: u64,
) -> Vec<(Range<u64>, Vec<usize>)> {
    let mut idx: Vec<usize> = (0..ranges.len()).collect();
    idx.sort_by_key(|&i| (ranges[i].start, ranges[i].end));
    let mut parts: Vec<(Range<u64>, Vec<usize>)> = Vec::new();
    for i in idx {
        let r = &ranges[i];
        match parts.last_mut() {
            Some((p, members))
                if r.start <= p.end.saturating_add(max_gap)
                    && (r.end <= p.end || r.end - p.start <= max_part) =>
            {
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

    #[test]
    fn parts_stop_growing_at_the_limit() {
        let r = vec![0..40, 40..80, 80..120, 120..300, 100..110];
        let p = partition_within(&r, 0, 120);
        // 120..300 would make the part 300 long; 100..110 lies inside the first part.
        assert_eq!(p[0].0, 0..120);
        assert_eq!(p[0].1, vec![0, 1, 2, 4]);
        assert_eq!(p[1].0, 120..300);
        assert_eq!(p.len(), 2);
    }
}
