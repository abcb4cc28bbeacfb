//! The storage side of the engine: a [`Queryable`] hands out series matching a selector,
//! one at a time, each with its raw samples decoded into a buffer the engine reuses.

use crate::error::{Error, Result};
use crate::value::HPoint;
use tsdb::histogram::Histogram;
use tsdb::labels::Labels;
use tsdb::matchers::Matcher;

/// What the engine is about to do with a selection, so storage can prune or pre-aggregate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SelectHints {
    /// Inclusive time range of samples the engine may read (ms).
    pub start: i64,
    pub end: i64,
    /// Query step (ms); 0 for instant queries.
    pub step: i64,
    /// Range of the enclosing matrix selector (ms), 0 for instant vector selectors.
    pub range: i64,
    /// Name of the enclosing function, if any.
    pub func: Option<String>,
    /// Grouping labels of the enclosing aggregation.
    pub grouping: Vec<String>,
    /// True when `grouping` lists the labels kept (`by`), false for `without`.
    pub by: bool,
}

/// One raw sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawSample {
    pub t: i64,
    pub v: f64,
}

/// Series of one selection, in label order.
pub trait SeriesSet: Send {
    /// Labels of the next series, with its samples within the hinted range (time order,
    /// stale markers included) written into `samples` (cleared first); `None` at the end.
    fn next_series(&mut self, samples: &mut Vec<RawSample>) -> Option<Result<Labels>>;

    /// The native histogram samples of the series `next_series` just returned (time
    /// order, stale markers included), taken out of the set.
    fn take_histograms(&mut self) -> Vec<HPoint> {
        Vec::new()
    }

    /// Warnings gathered so far (e.g. a store that did not answer under partial response).
    fn warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Something series can be selected from: blocks, the StoreAPI proxy, test data.
pub trait Queryable: Send + Sync {
    fn select<'a>(
        &'a self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + 'a>>;
}

/// In-memory series, for tests and for the test-script runner.
#[derive(Default, Debug, Clone)]
pub struct MemStorage {
    series: Vec<(Labels, Vec<RawSample>)>,
    /// Native histogram samples, parallel to `series`.
    hists: Vec<Vec<HPoint>>,
    sorted: bool,
}

impl MemStorage {
    pub fn new() -> Self {
        MemStorage::default()
    }

    /// Appends a sample; samples of one series must come in time order.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        if let Some(pos) = self.series.iter().position(|(l, _)| l == labels) {
            let s = &mut self.series[pos].1;
            match s.last() {
                Some(last) if last.t >= t => {
                    // Keep time order; an equal timestamp overwrites like an append would fail.
                    let i = s.partition_point(|x| x.t < t);
                    if i < s.len() && s[i].t == t {
                        s[i].v = v;
                    } else {
                        s.insert(i, RawSample { t, v });
                    }
                }
                _ => s.push(RawSample { t, v }),
            }
        } else {
            self.series.push((labels.clone(), vec![RawSample { t, v }]));
            self.hists.push(Vec::new());
            self.sorted = false;
        }
    }

    /// Appends a native histogram sample; samples of one series must come in time order.
    pub fn append_histogram(&mut self, labels: &Labels, h: std::sync::Arc<Histogram>) {
        let pos = match self.series.iter().position(|(l, _)| l == labels) {
            Some(p) => p,
            None => {
                self.series.push((labels.clone(), Vec::new()));
                self.hists.push(Vec::new());
                self.sorted = false;
                self.series.len() - 1
            }
        };
        let t = h.t;
        let hs = &mut self.hists[pos];
        let i = hs.partition_point(|x| x.t < t);
        if i < hs.len() && hs[i].t == t {
            hs[i].h = h;
        } else {
            hs.insert(i, HPoint { t, h });
        }
        // A float at the same time gives way, as an append of the histogram would.
        self.series[pos].1.retain(|s| s.t != t);
    }

    /// Adds a whole series at once (samples in time order).
    pub fn add_series(&mut self, labels: Labels, samples: Vec<RawSample>) {
        self.series.push((labels, samples));
        self.hists.push(Vec::new());
        self.sorted = false;
    }

    pub fn clear(&mut self) {
        self.series.clear();
        self.hists.clear();
    }

    fn ensure_sorted(&mut self) {
        if !self.sorted {
            let mut order: Vec<usize> = (0..self.series.len()).collect();
            order.sort_by(|&a, &b| self.series[a].0.cmp(&self.series[b].0));
            let mut series = std::mem::take(&mut self.series);
            let mut hists = std::mem::take(&mut self.hists);
            self.series = order
                .iter()
                .map(|&i| std::mem::take(&mut series[i]))
                .collect();
            self.hists = order
                .iter()
                .map(|&i| std::mem::take(&mut hists[i]))
                .collect();
            self.sorted = true;
        }
    }

    /// Sorts the series by labels; call once after loading, before querying.
    pub fn finish(&mut self) {
        self.ensure_sorted();
    }
}

struct MemSeriesSet<'a> {
    series: &'a [(Labels, Vec<RawSample>)],
    hists: &'a [Vec<HPoint>],
    current_hists: Vec<HPoint>,
    matchers: Vec<Matcher>,
    next: usize,
    start: i64,
    end: i64,
}

impl SeriesSet for MemSeriesSet<'_> {
    fn next_series(&mut self, samples: &mut Vec<RawSample>) -> Option<Result<Labels>> {
        while let Some((labels, data)) = self.series.get(self.next) {
            self.next += 1;
            let matches = self
                .matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")));
            if !matches {
                continue;
            }
            let lo = data.partition_point(|s| s.t < self.start);
            let hi = data.partition_point(|s| s.t <= self.end);
            let hs = &self.hists[self.next - 1];
            let hlo = hs.partition_point(|s| s.t < self.start);
            let hhi = hs.partition_point(|s| s.t <= self.end);
            if lo >= hi && hlo >= hhi {
                continue;
            }
            samples.clear();
            samples.extend_from_slice(&data[lo..hi]);
            self.current_hists.clear();
            self.current_hists.extend_from_slice(&hs[hlo..hhi]);
            return Some(Ok(labels.clone()));
        }
        None
    }

    fn take_histograms(&mut self) -> Vec<HPoint> {
        std::mem::take(&mut self.current_hists)
    }
}

impl Queryable for MemStorage {
    fn select<'a>(
        &'a self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + 'a>> {
        if !self.sorted && self.series.len() > 1 {
            return Err(Error::Storage(
                "MemStorage::finish must be called before querying".into(),
            ));
        }
        Ok(Box::new(MemSeriesSet {
            series: &self.series,
            hists: &self.hists,
            current_hists: Vec::new(),
            matchers: matchers.to_vec(),
            next: 0,
            start: hints.start,
            end: hints.end,
        }))
    }
}
