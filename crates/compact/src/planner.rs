//! Which blocks of a group to compact next: Thanos's planner (Prometheus's leveled planner
//! with no-compact marks), as pure functions over the group's metas.
//!
//! In order: the first run of overlapping blocks (vertical compaction); otherwise, leaving
//! the newest block out, the first aligned range (2h, 8h, 2d, 14d) holding at least two
//! blocks that either fills the range or lies wholly before the newest block; otherwise one
//! large block with more than 5% tombstones, rewritten alone. Blocks marked no-compact are
//! left out without opening gaps, and a range with a block whose compaction failed is
//! skipped.

use std::collections::HashSet;

use tsdb::meta::BlockMeta;

/// Thanos's compaction levels (ms): 1h, 2h, 8h, 2d, 14d; the planner targets all but the first.
pub const DEFAULT_RANGES: [i64; 5] = [3_600_000, 7_200_000, 28_800_000, 172_800_000, 1_209_600_000];

/// The ranges up to `--debug.max-compaction-level` (0 = 1h only, 4 = all).
pub fn ranges_for_level(max_level: usize) -> Result<Vec<i64>, String> {
    if max_level >= DEFAULT_RANGES.len() {
        return Err(format!(
            "level {max_level} is bigger than the default set of {} levels",
            DEFAULT_RANGES.len()
        ));
    }
    Ok(DEFAULT_RANGES[..=max_level].to_vec())
}

/// The next blocks of a group to compact together, in min-time order; empty when there is
/// nothing to do. `metas` must be sorted by min time; `no_compact` holds marked ULIDs.
pub fn plan<'a>(
    ranges: &[i64],
    metas: &[&'a BlockMeta],
    no_compact: &HashSet<String>,
) -> Vec<&'a BlockMeta> {
    if metas.is_empty() {
        return Vec::new();
    }
    let mut not_excluded: Vec<&BlockMeta> = metas
        .iter()
        .filter(|m| !no_compact.contains(&m.ulid))
        .copied()
        .collect();
    let overlapping = select_overlapping(&not_excluded);
    if !overlapping.is_empty() {
        return overlapping;
    }
    // The newest block is left out: it may still be growing (unless it is marked, in which
    // case it is not among the candidates anyway).
    let newest = metas[metas.len() - 1];
    if !no_compact.contains(&newest.ulid) {
        not_excluded.pop();
    }
    let rest = &metas[..metas.len() - 1];
    let selected = select_metas(ranges, no_compact, rest);
    if !selected.is_empty() {
        return selected;
    }
    // A large block with many deletions is rewritten alone.
    if let Some(&middle) = ranges.get(ranges.len() / 2) {
        for m in not_excluded.iter().rev() {
            if m.max_time - m.min_time < middle {
                break;
            }
            if m.stats.num_tombstones as f64 / (m.stats.num_series as f64 + 1.0) > 0.05 {
                return vec![m];
            }
        }
    }
    Vec::new()
}

/// The first run of blocks overlapping in time, or nothing.
pub fn select_overlapping<'a>(metas: &[&'a BlockMeta]) -> Vec<&'a BlockMeta> {
    let mut out = Vec::new();
    let Some(first) = metas.first() else {
        return out;
    };
    let mut global_max = first.max_time;
    for i in 1..metas.len() {
        let m = metas[i];
        if m.min_time < global_max {
            if out.is_empty() {
                out.push(metas[i - 1]);
            }
            out.push(m);
        } else if !out.is_empty() {
            break;
        }
        global_max = global_max.max(m.max_time);
    }
    out
}

/// Groups consecutive blocks by the aligned range of `tr` they fall in; a block wider than
/// its range belongs to none.
pub fn split_by_range<'a>(metas: &[&'a BlockMeta], tr: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < metas.len() {
        let m = metas[i];
        let t0 = tr * m.min_time.div_euclid(tr);
        if m.max_time > t0 + tr {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < metas.len() && metas[i].max_time <= t0 + tr {
            group.push(metas[i]);
            i += 1;
        }
        if !group.is_empty() {
            out.push(group);
        }
    }
    out
}

/// The first range (smallest first, from `ranges[1]` up) whose blocks can be compacted: at
/// least two, none failed, filling the range or lying wholly before the newest block; marked
/// blocks split the run without leaving gaps.
fn select_metas<'a>(
    ranges: &[i64],
    no_compact: &HashSet<String>,
    metas: &[&'a BlockMeta],
) -> Vec<&'a BlockMeta> {
    if ranges.len() < 2 || metas.is_empty() {
        return Vec::new();
    }
    let high_time = metas[metas.len() - 1].min_time;
    for &iv in &ranges[1..] {
        for part in split_by_range(metas, iv) {
            if part.iter().any(|m| m.compaction.failed) || part.len() < 2 {
                continue;
            }
            let (mint, maxt) = (part[0].min_time, part[part.len() - 1].max_time);
            if maxt - mint != iv && maxt > high_time {
                continue;
            }
            let mut last_excluded = 0;
            for i in 0..part.len() {
                if no_compact.contains(&part[i].ulid) {
                    if i - last_excluded > 1 {
                        return part[last_excluded..i].to_vec();
                    }
                    last_excluded = i + 1;
                }
            }
            if part.len() - last_excluded > 1 {
                return part[last_excluded..].to_vec();
            }
        }
    }
    Vec::new()
}

/// Groups of blocks that overlap, as Prometheus's `OverlappingBlocks` finds them (blocks
/// sorted by min time): each group with the time range all its blocks share.
pub fn overlapping_groups<'a>(metas: &[&'a BlockMeta]) -> Vec<Vec<&'a BlockMeta>> {
    let mut groups: Vec<Vec<&BlockMeta>> = Vec::new();
    let Some(first) = metas.first() else {
        return groups;
    };
    let mut pending: Vec<&BlockMeta> = vec![first];
    let mut continuous = false;
    for &b in &metas[1..] {
        let mut still: Vec<&BlockMeta> = Vec::new();
        for &p in &pending {
            if b.min_time < p.max_time {
                still.push(p);
            } else {
                continuous = false;
            }
        }
        if !still.is_empty() {
            if continuous {
                if let Some(g) = groups.last_mut() {
                    g.push(b);
                }
            } else {
                let mut g = still.clone();
                g.push(b);
                groups.push(g);
                continuous = true;
            }
        }
        still.push(b);
        pending = still;
    }
    groups
}

/// Thanos's text for overlapping blocks, naming each block and its time range.
pub fn describe_overlaps(groups: &[Vec<&BlockMeta>]) -> String {
    let dur = |ms: i64| tsdb::time::go_duration_string(ms);
    groups
        .iter()
        .map(|g| {
            let min = g.iter().map(|m| m.min_time).max().unwrap_or(0);
            let max = g.iter().map(|m| m.max_time).min().unwrap_or(0);
            let blocks: Vec<String> = g
                .iter()
                .map(|m| {
                    format!(
                        "<ulid: {}, mint: {}, maxt: {}, range: {}>",
                        m.ulid,
                        m.min_time,
                        m.max_time,
                        dur(m.max_time - m.min_time)
                    )
                })
                .collect();
            format!(
                "[mint: {min}, maxt: {max}, range: {}, blocks: {}]: {}",
                dur(max - min),
                g.len(),
                blocks.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: usize, min: i64, max: i64) -> BlockMeta {
        let ulid = format!("{:0>26}", id);
        let mut m = BlockMeta::new(ulid::Ulid::nil(), min, max);
        m.ulid = ulid;
        m
    }

    fn ids(v: &[&BlockMeta]) -> Vec<(i64, i64)> {
        v.iter().map(|m| (m.min_time, m.max_time)).collect()
    }

    /// Prometheus's and Thanos's planner test ranges.
    const R: [i64; 5] = [20, 60, 180, 540, 1620];

    fn run(blocks: &[(i64, i64)], marked: &[usize]) -> Vec<(i64, i64)> {
        let metas: Vec<BlockMeta> = blocks
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| meta(i, a, b))
            .collect();
        let refs: Vec<&BlockMeta> = metas.iter().collect();
        let marks: HashSet<String> = marked.iter().map(|&i| metas[i].ulid.clone()).collect();
        ids(&plan(&R, &refs, &marks))
    }

    #[test]
    fn leveled_plans_as_prometheus_and_thanos() {
        type Case = (&'static str, Vec<(i64, i64)>, Vec<usize>, Vec<(i64, i64)>);
        let cases: Vec<Case> = vec![
            ("one block", vec![(0, 20)], vec![], vec![]),
            (
                "waits for a full range",
                vec![(0, 20), (20, 40)],
                vec![],
                vec![],
            ),
            (
                "three before the newest fill 60",
                vec![(0, 20), (20, 40), (40, 60), (60, 80)],
                vec![],
                vec![(0, 20), (20, 40), (40, 60)],
            ),
            (
                "a gap still compacts the range",
                vec![(0, 20), (40, 60), (60, 80)],
                vec![],
                vec![(0, 20), (40, 60)],
            ),
            (
                "bigger ranges once the smaller are done",
                vec![(0, 60), (60, 120), (120, 180), (180, 200)],
                vec![],
                vec![(0, 60), (60, 120), (120, 180)],
            ),
            (
                "overlapping blocks first, the newest included",
                vec![(0, 20), (19, 40), (40, 60)],
                vec![],
                vec![(0, 20), (19, 40)],
            ),
            (
                "first marked",
                vec![(0, 20), (20, 40), (40, 60), (60, 80)],
                vec![0],
                vec![(20, 40), (40, 60)],
            ),
            (
                "second marked",
                vec![(0, 20), (20, 40), (40, 60), (60, 80)],
                vec![1],
                vec![],
            ),
            (
                "newest marked",
                vec![(0, 20), (20, 40), (40, 60), (60, 80)],
                vec![3],
                vec![(0, 20), (20, 40), (40, 60)],
            ),
            (
                "all marked",
                vec![(0, 20), (20, 40), (40, 60), (60, 80)],
                vec![0, 1, 2, 3],
                vec![],
            ),
            (
                "marked overlap is not an overlap",
                vec![(0, 20), (19, 40), (40, 60)],
                vec![0],
                vec![],
            ),
            (
                "a block spanning ranges is left alone",
                vec![(0, 20), (10, 70), (80, 100)],
                vec![],
                vec![(0, 20), (10, 70)],
            ),
        ];
        for (name, blocks, marked, want) in cases {
            assert_eq!(run(&blocks, &marked), want, "{name}");
        }
    }

    #[test]
    fn split_by_range_as_prometheus() {
        let metas: Vec<BlockMeta> = [(0, 10), (10, 20), (50, 60), (90, 100)]
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| meta(i, a, b))
            .collect();
        let refs: Vec<&BlockMeta> = metas.iter().collect();
        let parts: Vec<Vec<(i64, i64)>> =
            split_by_range(&refs, 30).iter().map(|p| ids(p)).collect();
        assert_eq!(
            parts,
            vec![vec![(0, 10), (10, 20)], vec![(50, 60)], vec![(90, 100)]]
        );
    }

    #[test]
    fn tombstones_make_a_large_block_rewrite_alone() {
        let mut metas = [meta(0, 0, 540), meta(1, 540, 560)];
        metas[0].stats.num_series = 100;
        metas[0].stats.num_tombstones = 10;
        let refs: Vec<&BlockMeta> = metas.iter().collect();
        assert_eq!(ids(&plan(&R, &refs, &HashSet::new())), vec![(0, 540)]);
        metas[0].stats.num_tombstones = 2;
        let refs: Vec<&BlockMeta> = metas.iter().collect();
        assert!(plan(&R, &refs, &HashSet::new()).is_empty());
    }

    #[test]
    fn failed_compactions_skip_their_range() {
        let mut metas: Vec<BlockMeta> = [(0, 20), (20, 40), (40, 60), (60, 80)]
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| meta(i, a, b))
            .collect();
        metas[1].compaction.failed = true;
        let refs: Vec<&BlockMeta> = metas.iter().collect();
        assert!(plan(&R, &refs, &HashSet::new()).is_empty());
    }

    #[test]
    fn overlaps_are_described_with_their_blocks() {
        let metas: Vec<BlockMeta> = [(0, 7_200_000), (3_600_000, 10_800_000)]
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| meta(i, a, b))
            .collect();
        let refs: Vec<&BlockMeta> = metas.iter().collect();
        let groups = overlapping_groups(&refs);
        assert_eq!(groups.len(), 1);
        let text = describe_overlaps(&groups);
        assert!(
            text.starts_with("[mint: 3600000, maxt: 7200000, range: 1h0m0s, blocks: 2]"),
            "{text}"
        );
        assert!(text.contains(&metas[1].ulid));
    }
}
