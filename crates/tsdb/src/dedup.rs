//! Deduplication of HA replicas, as Thanos's `penalty` algorithm does it.
//!
//! Replicas of one series (same labels once replica labels are dropped) are merged pairwise:
//! the output follows one replica and switches to the other only when the current one has a
//! gap (filled from half a scrape step after the last sample emitted, the step measured
//! within one replica). After emitting a sample at `t` from one replica, the other is only
//! considered from
//! `t + 1 + penalty`, the penalty being twice the last step (5 s before any step is known),
//! so interleaving two replicas never raises the sample rate. For counters (rate, increase,
//! irate, resets), switching to a replica whose value is lower than the last emitted one adds
//! the difference to that replica, so a switch does not look like a counter reset.

use std::collections::VecDeque;

/// Timestamp and value of one float sample.
pub type Sample = (i64, f64);

const INITIAL_PENALTY: i64 = 5000;

/// One replica read forward, keeping the samples after the last emitted timestamp: the
/// gap fill moves back among those (never further), so the lookback stays within about
/// two scrape steps.
struct Replica<I: Iterator<Item = Sample>> {
    src: I,
    /// Samples pulled from `src` and not yet forgotten, in time order.
    buf: VecDeque<Sample>,
    /// Index in `buf` of the current sample; at `buf.len()` one is pulled when needed.
    pos: usize,
    adjust: f64,
}

impl<I: Iterator<Item = Sample>> Replica<I> {
    fn new(src: I) -> Self {
        Replica {
            src,
            buf: VecDeque::new(),
            pos: 0,
            adjust: 0.0,
        }
    }

    /// Whether there is a current sample (pulling it from the source if need be).
    fn has_current(&mut self) -> bool {
        while self.pos >= self.buf.len() {
            match self.src.next() {
                Some(s) => self.buf.push_back(s),
                None => return false,
            }
        }
        true
    }

    /// The current sample's time; only after [`Self::has_current`] said there is one.
    fn t(&self) -> i64 {
        self.buf[self.pos].0
    }

    fn at(&self) -> Sample {
        let (t, v) = self.buf[self.pos];
        (t, v + self.adjust)
    }

    /// Moves forward to the first sample at or after `t`; false when there is none.
    fn seek(&mut self, t: i64) -> bool {
        while self.has_current() {
            if self.t() >= t {
                return true;
            }
            self.pos += 1;
        }
        false
    }

    /// Moves to the first sample at or after `t`, backwards too (`t` must lie after the
    /// last forgotten time); false when there is none.
    fn seek_from_start(&mut self, t: i64) -> bool {
        self.pos = 0;
        self.seek(t)
    }

    /// Drops the samples at or before `t`: no seek goes back that far.
    fn forget_through(&mut self, t: i64) {
        while self.buf.front().is_some_and(|s| s.0 <= t) {
            self.buf.pop_front();
            self.pos = self.pos.saturating_sub(1);
        }
    }
}

/// Two replicas merged by the penalty algorithm, as an iterator over the merged samples.
pub struct PenaltyDedup<A: Iterator<Item = Sample>, B: Iterator<Item = Sample>> {
    a: Replica<A>,
    b: Replica<B>,
    counter: bool,
    a_ok: bool,
    b_ok: bool,
    pen_a: i64,
    pen_b: i64,
    last_t: i64,
    last_v: Option<f64>,
    last_delta: i64,
    use_a: bool,
    first: bool,
    ended: bool,
}

impl<A: Iterator<Item = Sample>, B: Iterator<Item = Sample>> PenaltyDedup<A, B> {
    pub fn new(a: A, b: B, counter: bool) -> Self {
        let (mut a, mut b) = (Replica::new(a), Replica::new(b));
        let (a_ok, b_ok) = (a.has_current(), b.has_current());
        PenaltyDedup {
            a,
            b,
            counter,
            a_ok,
            b_ok,
            pen_a: 0,
            pen_b: 0,
            last_t: i64::MIN,
            last_v: None,
            last_delta: 0,
            use_a: true,
            first: true,
            ended: false,
        }
    }
}

impl<A: Iterator<Item = Sample>, B: Iterator<Item = Sample>> Iterator for PenaltyDedup<A, B> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.ended {
            return None;
        }
        let last_t = self.last_t;
        if !self.first {
            self.a.forget_through(last_t);
            self.b.forget_through(last_t);
            if self.a_ok {
                self.a_ok = self
                    .a
                    .seek(last_t.saturating_add(1).saturating_add(self.pen_a));
            }
            if self.b_ok {
                self.b_ok = self
                    .b
                    .seek(last_t.saturating_add(1).saturating_add(self.pen_b));
            }
        }
        // Unlike Thanos, a gap in the replica in use is filled from the other one from half
        // a step after the last sample, not only after the penalty: with replicas scraping
        // in step, the penalty would drop up to two samples at every switch.
        if !self.first && self.last_delta > 0 {
            let from = last_t.saturating_add(1 + self.last_delta / 2);
            let limit = last_t.saturating_add(2 * self.last_delta);
            if self.use_a {
                let gap = !self.a_ok || self.a.t() > limit;
                if gap && self.b_ok {
                    self.b_ok = self.b.seek_from_start(from);
                }
            } else {
                let gap = !self.b_ok || self.b.t() > limit;
                if gap && self.a_ok {
                    self.a_ok = self.a.seek_from_start(from);
                }
            }
        }
        self.first = false;
        let prev_use_a = self.use_a;
        let chosen = match (self.a_ok, self.b_ok) {
            (false, false) => {
                self.ended = true;
                return None;
            }
            (false, true) => {
                self.use_a = false;
                self.pen_b = 0;
                self.b.t()
            }
            (true, false) => {
                self.use_a = true;
                self.pen_a = 0;
                self.a.t()
            }
            (true, true) => {
                let (ta, tb) = (self.a.t(), self.b.t());
                self.use_a = ta <= tb;
                let t = if self.use_a { ta } else { tb };
                let pen = if last_t != i64::MIN {
                    2 * (t - last_t)
                } else {
                    INITIAL_PENALTY
                };
                if self.use_a {
                    (self.pen_a, self.pen_b) = (0, pen);
                } else {
                    (self.pen_a, self.pen_b) = (pen, 0);
                }
                t
            }
        };
        // Only the replica switched to is corrected, by its sample about to be emitted.
        // (Thanos corrects both; the other one's current sample may lie beyond a gap and
        // after a real counter reset, and correcting by it inflates every later value.)
        if self.counter && self.use_a != prev_use_a {
            if let Some(last) = self.last_v {
                if self.use_a {
                    let v = self.a.at().1;
                    if last > v {
                        self.a.adjust += last - v;
                    }
                } else {
                    let v = self.b.at().1;
                    if last > v {
                        self.b.adjust += last - v;
                    }
                }
            }
        }
        // The scrape step, measured within one replica: a delta across a switch mixes two
        // replicas' phases and would let a later gap fill crowd the samples.
        if last_t != i64::MIN && self.use_a == prev_use_a {
            self.last_delta = chosen - last_t;
        }
        self.last_t = chosen;
        let out = if self.use_a { self.a.at() } else { self.b.at() };
        self.last_v = Some(out.1);
        Some(out)
    }
}

/// Any number of replicas merged by the penalty algorithm, pairwise left to right as
/// Thanos chains them.
pub fn dedup_iter<'a>(
    replicas: impl IntoIterator<Item = impl Iterator<Item = Sample> + 'a>,
    counter: bool,
) -> Box<dyn Iterator<Item = Sample> + 'a> {
    let mut replicas = replicas.into_iter();
    let Some(first) = replicas.next() else {
        return Box::new(std::iter::empty());
    };
    let mut acc: Box<dyn Iterator<Item = Sample> + 'a> = Box::new(first);
    for r in replicas {
        acc = Box::new(PenaltyDedup::new(acc, r, counter));
    }
    acc
}

/// Merges two replicas with the penalty algorithm.
pub fn dedup_pair(a: &[Sample], b: &[Sample], counter: bool) -> Vec<Sample> {
    PenaltyDedup::new(a.iter().copied(), b.iter().copied(), counter).collect()
}

/// Merges any number of replicas, pairwise left to right, as Thanos chains them.
pub fn dedup_replicas(replicas: &[Vec<Sample>], counter: bool) -> Vec<Sample> {
    dedup_iter(replicas.iter().map(|r| r.iter().copied()), counter).collect()
}

/// The union of time-ordered sample lists, in time order; at equal times the earliest
/// list's sample.
pub struct MergeByTime<I: Iterator<Item = Sample>> {
    lists: Vec<std::iter::Peekable<I>>,
}

impl<I: Iterator<Item = Sample>> MergeByTime<I> {
    pub fn new(lists: impl IntoIterator<Item = I>) -> Self {
        MergeByTime {
            lists: lists.into_iter().map(Iterator::peekable).collect(),
        }
    }
}

impl<I: Iterator<Item = Sample>> Iterator for MergeByTime<I> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let mut best: Option<(usize, i64)> = None;
        for (i, l) in self.lists.iter_mut().enumerate() {
            if let Some(&(t, _)) = l.peek() {
                if best.is_none_or(|(_, b)| t < b) {
                    best = Some((i, t));
                }
            }
        }
        let (i, t) = best?;
        let out = self.lists[i].next();
        for l in &mut self.lists {
            while l.next_if(|s| s.0 <= t).is_some() {}
        }
        out
    }
}

/// A pseudo-replica being built by [`split_replicas`]: its merged timestamps and chunks.
struct ReplicaGroup {
    ts: Vec<i64>,
    members: Vec<usize>,
}

impl ReplicaGroup {
    fn last(&self) -> i64 {
        self.ts.last().copied().unwrap_or(i64::MIN)
    }

    /// The last step between two of its samples.
    fn step(&self) -> Option<i64> {
        let n = self.ts.len();
        (n >= 2).then(|| self.ts[n - 1] - self.ts[n - 2])
    }

    fn take(&mut self, index: usize, chunk: &[i64]) {
        let last = self.last();
        let new = chunk.partition_point(|&t| t <= last);
        self.ts.extend_from_slice(&chunk[new..]);
        self.members.push(index);
    }
}

/// The mean step between a chunk's samples, when it has at least two.
fn chunk_step(chunk: &[i64]) -> Option<i64> {
    match chunk {
        [first, .., last] => Some((last - first) / (chunk.len() as i64 - 1)),
        _ => None,
    }
}

/// Splits one series' chunks, given by the ranges of their sample timestamps in `ts` and
/// sorted by their first, into pseudo-replicas (Thanos's overlap split), returning each one's chunk indices.
///
/// A chunk that overlaps a group and starts at one of its timestamps is a copy of that
/// replica (the same samples from another source, cut into chunks elsewhere) and joins it.
/// Otherwise it continues the group it follows at the scrape step (the gap to the group's
/// last sample closest to the step); where replicas run side by side, never one it would
/// continue less than half a step after its last sample or off its scrape phase by more than
/// a quarter step. So a group follows one replica rather than alternating between replicas
/// at chunk boundaries, and the chunks of a lone series stay one group. Empty chunks join
/// no group.
pub fn split_replicas(ts: &[i64], chunk_ranges: &[std::ops::Range<usize>]) -> Vec<Vec<usize>> {
    let chunk = |i: usize| &ts[chunk_ranges[i].clone()];
    // For chunks of one sample: the series' scrape step, the smallest any chunk shows.
    let series_step = (0..chunk_ranges.len())
        .filter_map(|i| chunk_step(chunk(i)))
        .filter(|&s| s > 0)
        .min();
    let mut groups: Vec<ReplicaGroup> = Vec::new();
    for i in 0..chunk_ranges.len() {
        let c = chunk(i);
        let (Some(&first), Some(&last)) = (c.first(), c.last()) else {
            continue;
        };
        if let Some(g) = groups
            .iter_mut()
            .find(|g| first <= g.last() && g.ts.binary_search(&first).is_ok())
        {
            g.take(i, c);
            continue;
        }
        // Where replicas run side by side (this chunk overlaps the next one or a group),
        // a continuation must also keep the group's scrape phase; elsewhere any group may
        // continue (a lone series' chunks must stay one group).
        let side_by_side = (i + 1 < chunk_ranges.len())
            .then(|| chunk(i + 1).first())
            .flatten()
            .is_some_and(|&n| n <= last)
            || groups.iter().any(|g| g.last() >= first);
        let mut best: Option<(usize, i64)> = None;
        for (g, group) in groups.iter().enumerate() {
            if group.last() >= first {
                continue;
            }
            let gap = first - group.last();
            let step = group.step().or(chunk_step(c)).or(series_step);
            // Closer than half a step, or off the group's scrape phase by more than a
            // quarter step: another replica's samples, not this one's next ones.
            if let Some(step) = step.filter(|&s| s > 0 && side_by_side) {
                let phase = gap.rem_euclid(step);
                if gap < step / 2 || phase.min(step - phase) > step / 4 {
                    continue;
                }
            }
            // Distance from a continuation at the step; unknown steps rank as first fit.
            let miss = step.map_or(0, |step| (gap - step).abs());
            if best.is_none_or(|(_, m)| miss < m) {
                best = Some((g, miss));
            }
        }
        match best {
            Some((g, _)) => groups[g].take(i, c),
            None => {
                let mut group = ReplicaGroup {
                    ts: Vec::with_capacity(c.len()),
                    members: Vec::new(),
                };
                group.take(i, c);
                groups.push(group);
            }
        }
    }
    groups.into_iter().map(|g| g.members).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(from: i64, to: i64, step: i64, offset: i64, gaps: &[(i64, i64)]) -> Vec<Sample> {
        (from..to)
            .step_by(step as usize)
            .map(|t| t + offset)
            .filter(|t| !gaps.iter().any(|(a, b)| *t >= *a && *t < *b))
            .map(|t| (t, (t / 1000) as f64))
            .collect()
    }

    #[test]
    fn a_reset_inside_the_other_replicas_gap_is_not_corrected_away_later() {
        // Identical counters; it resets at 600 s, while replica `b` has a gap (500..700 s);
        // pseudo-replica `a` ends at 900 s, so the output goes back to `b` there.
        let value = |t: i64| {
            if t < 600_000 {
                t as f64
            } else {
                (t - 600_000) as f64
            }
        };
        let series = |from: i64, to: i64, gap: Option<(i64, i64)>| -> Vec<Sample> {
            (from..to)
                .step_by(15_000)
                .filter(|t| gap.is_none_or(|(a, b)| *t < a || *t >= b))
                .map(|t| (t, value(t)))
                .collect()
        };
        let b = series(0, 1_500_000, Some((500_000, 700_000)));
        let a = series(0, 900_000, None);
        let out = dedup_pair(&b, &a, true);
        for (t, v) in &out {
            assert_eq!(*v, value(*t), "at {t}: {out:?}");
        }
        assert!(out.last().is_some_and(|s| s.0 == 1_485_000));
    }

    #[test]
    fn a_chunk_half_a_step_after_another_is_another_replica() {
        // Replica a's first block holds one sample; b's first chunk starts 545 ms after it,
        // a's next chunk one step (1 s) after it.
        let chunks = [run(0, 1), run(545, 120), run(1_000, 120)];
        assert_eq!(split(&chunks), vec![vec![0, 2], vec![1]]);
        // A lone series with irregular gaps stays one group.
        let lone = [run(0, 3), run(2_545, 3), run(9_100, 5)];
        assert_eq!(split(&lone), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn fills_gaps_without_doubling_samples() {
        // Two replicas scraping every 15s, 3s apart, each with its own gap.
        let a = scrape(0, 3_600_000, 15_000, 0, &[(600_000, 900_000)]);
        let b = scrape(0, 3_600_000, 15_000, 3_000, &[(1_800_000, 2_100_000)]);
        let d = dedup_pair(&a, &b, false);
        // Strictly increasing, no two samples closer than half the interval.
        assert!(
            d.windows(2).all(|w| w[1].0 - w[0].0 >= 7_500),
            "{:?}",
            d.windows(2).find(|w| w[1].0 - w[0].0 < 7_500)
        );
        // Both gaps are filled from the other replica; at a switch the penalty (twice the last
        // step) may skip up to two of the other replica's samples, never more.
        assert!(d.windows(2).all(|w| w[1].0 - w[0].0 <= 45_000));
        assert!(
            d.iter()
                .filter(|s| (600_000..900_000).contains(&s.0))
                .count()
                >= 18
        );
        assert!(
            d.iter()
                .filter(|s| (1_800_000..2_100_000).contains(&s.0))
                .count()
                >= 18
        );
        assert_eq!(d.first().unwrap().0, 0);
        // Sticks to replica a outside its gap.
        assert!(d
            .iter()
            .filter(|s| s.0 < 600_000)
            .all(|s| s.0 % 15_000 == 0));
    }

    #[test]
    fn jittery_replicas_with_missed_scrapes_stay_half_a_step_apart() {
        // Two replicas scraping every second, out of phase, with jitter and missed scrapes
        // (single ones and runs), as busy Prometheus servers do.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for phase in [100, 300, 500, 700, 900] {
            let mut replicas = [Vec::new(), Vec::new()];
            for (r, out) in replicas.iter_mut().enumerate() {
                let mut skip = 0;
                for k in 0..2_000i64 {
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    match rand(100) {
                        0..=4 => skip = rand(6),
                        5..=9 => continue,
                        _ => {}
                    }
                    let t = k * 1000 + r as i64 * phase + rand(60) as i64;
                    out.push((t, t as f64));
                }
            }
            let d = dedup_pair(&replicas[0], &replicas[1], false);
            let closest = d.windows(2).map(|w| w[1].0 - w[0].0).min().unwrap();
            assert!(closest >= 440, "phase {phase}: samples {closest} ms apart");
        }
    }

    #[test]
    fn one_replica_empty_or_identical() {
        let a = scrape(0, 60_000, 15_000, 0, &[]);
        assert_eq!(dedup_pair(&a, &[], false), a);
        assert_eq!(dedup_pair(&[], &a, false), a);
        assert_eq!(dedup_pair(&a, &a, false), a);
        assert_eq!(dedup_replicas(&[a.clone(), a.clone(), a.clone()], false), a);
    }

    #[test]
    fn counter_switch_is_not_a_reset() {
        // Replica b's counter runs 100 lower; a has a gap, so output switches to b and back.
        let a: Vec<Sample> = (0..20)
            .filter(|i| !(8..12).contains(i))
            .map(|i| (i * 10_000, 1000.0 + i as f64))
            .collect();
        let b: Vec<Sample> = (0..20)
            .map(|i| (i * 10_000 + 1000, 900.0 + i as f64))
            .collect();
        let d = dedup_pair(&a, &b, true);
        assert!(d.windows(2).all(|w| w[1].1 >= w[0].1), "{d:?}");
        let raw = dedup_pair(&a, &b, false);
        assert!(raw.windows(2).any(|w| w[1].1 < w[0].1));
    }

    /// `n` timestamps a second apart from `from`.
    fn run(from: i64, n: i64) -> Vec<i64> {
        (0..n).map(|i| from + i * 1_000).collect()
    }

    fn split(chunks: &[Vec<i64>]) -> Vec<Vec<usize>> {
        let mut ts = Vec::new();
        let mut ranges = Vec::new();
        for c in chunks {
            ranges.push(ts.len()..ts.len() + c.len());
            ts.extend_from_slice(c);
        }
        split_replicas(&ts, &ranges)
    }

    #[test]
    fn overlap_split() {
        // Replica a at .000, b at .500, each cut into chunks at other times.
        let g = split(&[
            run(0, 10),
            run(5_500, 6),
            run(10_000, 6),
            run(11_500, 10),
            run(16_000, 3),
        ]);
        assert_eq!(g, vec![vec![0, 2, 4], vec![1, 3]]);
    }

    #[test]
    fn copies_of_a_replica_cut_elsewhere_join_it() {
        // Replica a from two sources (a block and a head, cut at other samples), b between.
        let g = split(&[
            run(0, 30),
            run(10_000, 40),
            run(10_300, 40),
            run(30_000, 30),
        ]);
        assert_eq!(g, vec![vec![0, 1, 3], vec![2]]);
        // Without the copy check the head chunk (1) would have to be its own group.
    }

    #[test]
    fn overlap_split_follows_each_replicas_scrape_phase() {
        // Replica a scrapes every second at .841, b at .617; both cut chunks at 130 000.
        // b's second chunk starts after a's first ends, but continues b's first at the step.
        let g = split(&[
            run(125_841, 5),  // a
            run(126_617, 4),  // b
            run(130_617, 11), // b
            run(130_841, 11), // a
        ]);
        assert_eq!(g, vec![vec![0, 3], vec![1, 2]]);
    }

    /// Cuts `samples` into chunks of the given sizes (cycled).
    fn cut(samples: &[Sample], sizes: &[usize]) -> Vec<Vec<Sample>> {
        let mut out = Vec::new();
        let mut i = 0;
        for size in sizes.iter().cycle() {
            if i >= samples.len() {
                break;
            }
            let end = (i + size.max(&1)).min(samples.len());
            out.push(samples[i..end].to_vec());
            i = end;
        }
        out
    }

    /// The querier's path for one deduplicated series: chunks sorted by time, split into
    /// pseudo-replicas, each decoded forward in time, merged by the penalty algorithm.
    fn dedup_chunks(mut chunks: Vec<Vec<Sample>>) -> Vec<Sample> {
        chunks.sort_by_key(|c| (c[0].0, c[c.len() - 1].0));
        chunks.dedup();
        let ts: Vec<Vec<i64>> = chunks
            .iter()
            .map(|c| c.iter().map(|s| s.0).collect())
            .collect();
        let groups: Vec<Vec<Sample>> = split(&ts)
            .into_iter()
            .map(|members| {
                let mut out: Vec<Sample> = Vec::new();
                for s in members.iter().flat_map(|&i| &chunks[i]) {
                    if out.last().is_none_or(|l| s.0 > l.0) {
                        out.push(*s);
                    }
                }
                out
            })
            .collect();
        dedup_replicas(&groups, false)
    }

    /// One replica's samples with a read position and a counter correction.
    struct RefReplica<'a> {
        samples: &'a [Sample],
        pos: usize,
        adjust: f64,
    }

    impl RefReplica<'_> {
        fn done(&self) -> bool {
            self.pos >= self.samples.len()
        }

        fn t(&self) -> i64 {
            self.samples[self.pos].0
        }

        fn at(&self) -> Sample {
            let (t, v) = self.samples[self.pos];
            (t, v + self.adjust)
        }

        /// Moves to the first sample at or after `t`, backwards too; false when there is none.
        fn seek_from_start(&mut self, t: i64) -> bool {
            self.pos = self.samples.partition_point(|s| s.0 < t);
            !self.done()
        }

        /// Moves to the first sample at or after `t`; false when there is none.
        fn seek(&mut self, t: i64) -> bool {
            if self.done() {
                return false;
            }
            if self.t() < t {
                self.pos += self.samples[self.pos..].partition_point(|s| s.0 < t);
            }
            !self.done()
        }
    }

    /// The slice implementation the iterator replaced: the property test's reference.
    fn reference_pair(a: &[Sample], b: &[Sample], counter: bool) -> Vec<Sample> {
        let mut a = RefReplica {
            samples: a,
            pos: 0,
            adjust: 0.0,
        };
        let mut b = RefReplica {
            samples: b,
            pos: 0,
            adjust: 0.0,
        };
        let mut out = Vec::with_capacity(a.samples.len().max(b.samples.len()));
        let (mut a_ok, mut b_ok) = (!a.done(), !b.done());
        let (mut pen_a, mut pen_b) = (0i64, 0i64);
        let mut last_t = i64::MIN;
        let mut last_delta = 0i64;
        let mut use_a = true;
        let mut first = true;
        loop {
            if !first {
                if a_ok {
                    a_ok = a.seek(last_t.saturating_add(1).saturating_add(pen_a));
                }
                if b_ok {
                    b_ok = b.seek(last_t.saturating_add(1).saturating_add(pen_b));
                }
            }
            // Unlike Thanos, a gap in the replica in use is filled from the other one from half
            // a step after the last sample, not only after the penalty: with replicas scraping
            // in step, the penalty would drop up to two samples at every switch.
            if !first && last_delta > 0 {
                let (cur_ok, cur, other_ok, other) = if use_a {
                    (a_ok, &a, &mut b_ok, &mut b)
                } else {
                    (b_ok, &b, &mut a_ok, &mut a)
                };
                let gap = !cur_ok || cur.t() > last_t.saturating_add(2 * last_delta);
                if gap && *other_ok {
                    *other_ok = other.seek_from_start(last_t.saturating_add(1 + last_delta / 2));
                }
            }
            first = false;
            let prev_use_a = use_a;
            let last_v = out.last().map(|s: &Sample| s.1);
            let chosen = match (a_ok, b_ok) {
                (false, false) => break,
                (false, true) => {
                    use_a = false;
                    pen_b = 0;
                    b.t()
                }
                (true, false) => {
                    use_a = true;
                    pen_a = 0;
                    a.t()
                }
                (true, true) => {
                    let (ta, tb) = (a.t(), b.t());
                    use_a = ta <= tb;
                    let t = if use_a { ta } else { tb };
                    let pen = if last_t != i64::MIN {
                        2 * (t - last_t)
                    } else {
                        INITIAL_PENALTY
                    };
                    if use_a {
                        pen_b = pen;
                        pen_a = 0;
                    } else {
                        pen_a = pen;
                        pen_b = 0;
                    }
                    t
                }
            };
            // Only the replica switched to is corrected, by its sample about to be emitted.
            // (Thanos corrects both; the other one's current sample may lie beyond a gap and
            // after a real counter reset, and correcting by it inflates every later value.)
            if counter && use_a != prev_use_a {
                if let Some(last) = last_v {
                    let r = if use_a { &mut a } else { &mut b };
                    if !r.done() && last > r.at().1 {
                        r.adjust += last - r.at().1;
                    }
                }
            }
            // The scrape step, measured within one replica: a delta across a switch mixes two
            // replicas' phases and would let a later gap fill crowd the samples.
            if last_t != i64::MIN && use_a == prev_use_a {
                last_delta = chosen - last_t;
            }
            last_t = chosen;
            out.push(if use_a { a.at() } else { b.at() });
        }
        out
    }

    /// Replicas as a scraper writes them: a step, a phase, jitter, missed scrapes, runs
    /// of missed scrapes, and (for counters) resets; strictly increasing times.
    fn random_replica(seed: u64, step: i64, phase: i64, len: usize) -> Vec<Sample> {
        let mut x = seed | 1;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut out, mut v) = (Vec::new(), 0.0);
        let mut skip = 0;
        for k in 0..len as i64 {
            v += rand(10) as f64;
            if rand(200) == 0 {
                v = 0.0;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            match rand(100) {
                0..=3 => skip = rand(12),
                4..=8 => continue,
                _ => {}
            }
            let t = k * step + phase + rand(step as u64 / 10 + 1) as i64;
            if out.last().is_none_or(|l: &Sample| l.0 < t) {
                out.push((t, v));
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn dedup_over_iterators_equals_dedup_over_vectors(
            seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 1..5),
            step in 1_000i64..30_000,
            phases in proptest::collection::vec(0i64..30_000, 4),
            len in 0usize..400,
            counter in proptest::prelude::any::<bool>(),
        ) {
            let replicas: Vec<Vec<Sample>> = seeds
                .iter()
                .zip(&phases)
                .map(|(&seed, &phase)| random_replica(seed, step, phase % step, len))
                .collect();
            let mut want = replicas[0].clone();
            for r in &replicas[1..] {
                want = reference_pair(&want, r, counter);
            }
            let got: Vec<Sample> = dedup_iter(replicas.iter().map(|r| r.iter().copied()), counter).collect();
            proptest::prop_assert_eq!(got, want);
            let merged: Vec<Sample> = MergeByTime::new(replicas.iter().map(|r| r.iter().copied())).collect();
            let mut all: Vec<Sample> = replicas.iter().flatten().copied().collect();
            all.sort_by_key(|s| s.0);
            all.dedup_by_key(|s| s.0);
            proptest::prop_assert_eq!(merged, all);
        }

        /// Two complete replicas of one series, each served by two sources that cut its
        /// samples into chunks differently (a block in the bucket and the sidecar's head),
        /// deduplicate to exactly one replica's samples, however close their scrape phases.
        #[test]
        fn complete_replicas_served_twice_dedup_to_one_of_them(
            phase_b in 10i64..990,
            jitter in proptest::collection::vec(-3i64..=3, 64),
            sizes in proptest::collection::vec(
                // Chunks of one sample only (no step to tell) are left out: one chunk
                // size of each source is at least two.
                (2usize..130, proptest::collection::vec(1usize..130, 0..5), 0usize..200),
                4,
            ),
        ) {
            let replica = |phase: i64, seed: usize| -> Vec<Sample> {
                (0..240i64)
                    .map(|i| {
                        let j = jitter[(i as usize * 7 + seed) % jitter.len()];
                        (1_000_000 + i * 1_000 + phase + j, 1.0)
                    })
                    .collect()
            };
            let (a, b) = (replica(0, 0), replica(phase_b, 3));
            let mut chunks = Vec::new();
            for (k, (first, rest, from)) in sizes.iter().enumerate() {
                let cuts: Vec<usize> = std::iter::once(*first).chain(rest.iter().copied()).collect();
                let r = if k < 2 { &a } else { &b };
                // The second source of each replica may cover only its later part.
                let from = if k % 2 == 1 { *from } else { 0 };
                chunks.extend(cut(&r[from..], &cuts));
            }
            let out = dedup_chunks(chunks);
            let diverges = |r: &[Sample]| {
                let i = out.iter().zip(r).position(|(x, y)| x != y).unwrap_or(out.len().min(r.len()));
                format!("at {i}: {:?} vs {:?}", &out[i.saturating_sub(2)..(i + 3).min(out.len())], &r[i.saturating_sub(2)..(i + 3).min(r.len())])
            };
            // One replica throughout; where it ends first, some of the other's later
            // samples may follow.
            let one_of = |r: &[Sample], other: &[Sample]| {
                let end = r[r.len() - 1].0;
                out.len() >= r.len()
                    && out[..r.len()] == *r
                    && out[r.len()..].iter().all(|s| s.0 > end && other.contains(s))
            };
            proptest::prop_assert!(one_of(&a, &b) || one_of(&b, &a), "a {}; b {}", diverges(&a), diverges(&b));
        }
    }
}
