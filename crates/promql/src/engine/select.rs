//! Selection: vector and matrix selectors, subqueries, and the streamed series of a
//! selector (or a range function or scalar arithmetic over one) for streamed aggregation.

use super::*;
use tsdb::histogram::{CounterResetHint, Histogram};

impl<'a> Evaluator<'a, '_> {
    pub(super) fn select<'s>(
        &'s self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        range: i64,
        func: Option<&str>,
    ) -> Result<Box<dyn SeriesSet + 'a>> {
        let matchers = selector_matchers(vs, self.ctx.v3)?;
        self.select_matchers(&matchers, mint, maxt, range, func)
    }

    pub(super) fn select_matchers(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        range: i64,
        func: Option<&str>,
    ) -> Result<Box<dyn SeriesSet + 'a>> {
        let hints = SelectHints {
            start: mint,
            end: maxt,
            step: if self.range.start == self.range.end {
                0
            } else {
                self.range.interval
            },
            range,
            func: func.map(str::to_string),
            grouping: Vec::new(),
            by: false,
        };
        self.ctx.storage.select(&hints, matchers)
    }

    /// An instant vector selector at every step. With `timestamps`, the values are the
    /// timestamps (s) of the samples selected and the metric name is dropped.
    pub(super) fn vector_selector(
        &self,
        vs: &VectorSelector,
        timestamps: bool,
    ) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        self.vector_selector_each(vs, timestamps, &mut |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    pub(super) fn vector_selector_each(
        &self,
        vs: &VectorSelector,
        timestamps: bool,
        sink: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<()> {
        let matchers = selector_matchers(vs, self.ctx.v3)?;
        let at = self.at_ms(&vs.at);
        let offset = offset_ms(&vs.offset);
        self.lookback_each(&matchers, at, offset, timestamps, &mut |mut s| {
            if timestamps {
                s.labels.remove(METRIC_NAME);
            }
            sink(s)
        })
    }

    /// The series `matchers` select, as an instant selector sees them at every step (with
    /// `at` and `offset`): each step's latest sample within the lookback, or its time (s)
    /// with `timestamps`.
    pub(super) fn lookback_each(
        &self,
        matchers: &[Matcher],
        at: Option<i64>,
        offset: i64,
        timestamps: bool,
        sink: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<()> {
        let (first, last) = self.ref_bounds(at, offset);
        let lookback = self.ctx.lookback;
        let left_open = self.ctx.v3;
        let mut set = self.select_matchers(matchers, first - lookback, last, 0, None)?;
        let steps = self.range.steps();
        let mut buf: Vec<RawSample> = Vec::new();
        while let Some(next) = set.next_series(&mut buf) {
            let labels = next?;
            self.ctx.check("expression evaluation")?;
            let hists = self.histograms_read(set.as_mut());
            if !hists.is_empty() {
                let s = self.lookback_mixed(labels, &buf, &hists, at, offset, timestamps)?;
                if !s.is_empty() {
                    sink(s)?;
                }
                continue;
            }
            let mut points = Vec::new();
            let mut counted = 0;
            let (mut i, mut j) = (0, 0);
            while i < steps {
                let ts = self.range.ts(i);
                let rt = at.unwrap_or(ts) - offset;
                while j < buf.len() && buf[j].t <= rt {
                    j += 1;
                }
                let visible = j > 0 && {
                    let s = buf[j - 1];
                    (s.t > rt - lookback || (!left_open && s.t == rt - lookback)) && !is_stale(s.v)
                };
                if !visible {
                    // Nothing shows until the next sample: jump to the first step that sees it.
                    match buf.get(j) {
                        Some(next) if at.is_none() => {
                            i = self
                                .range
                                .first_step_at_or_after(next.t + offset)
                                .max(i + 1)
                        }
                        _ => break,
                    }
                    continue;
                }
                let s = buf[j - 1];
                let v = if timestamps { s.t as f64 / 1000.0 } else { s.v };
                points.push(Point { t: ts, v });
                if points.len() - counted == 65536 {
                    self.ctx.add_samples(65536)?;
                    self.ctx.check("expression evaluation")?;
                    counted = points.len();
                }
                i += 1;
            }
            if !points.is_empty() {
                self.ctx.add_samples(points.len() - counted)?;
                self.ctx.count_read(points.len());
                sink(Series::floats(labels, points))?;
            }
        }
        self.ctx.add_warnings(set.as_mut());
        Ok(())
    }

    /// [`Self::lookback_each`] for a series with native histogram samples: at each step the
    /// latest sample of either kind within the lookback.
    fn lookback_mixed(
        &self,
        labels: Labels,
        floats: &[RawSample],
        hists: &[HPoint],
        at: Option<i64>,
        offset: i64,
        timestamps: bool,
    ) -> Result<Series> {
        let lookback = self.ctx.lookback;
        let left_open = self.ctx.v3;
        let mut out = Series::floats(labels, Vec::new());
        let (mut j, mut k) = (0, 0);
        for i in 0..self.range.steps() {
            self.ctx.check_every(i)?;
            let ts = self.range.ts(i);
            let rt = at.unwrap_or(ts) - offset;
            while j < floats.len() && floats[j].t <= rt {
                j += 1;
            }
            while k < hists.len() && hists[k].t <= rt {
                k += 1;
            }
            let float = j.checked_sub(1).map(|j| floats[j]);
            let hist = k.checked_sub(1).map(|k| &hists[k]);
            let in_window = |t: i64| t > rt - lookback || (!left_open && t == rt - lookback);
            let latest = match (float, hist) {
                (Some(f), h) if h.is_none_or(|h| h.t < f.t) => Some((f.t, Some(f.v), None)),
                (_, Some(h)) => Some((h.t, None, Some(h))),
                _ => None,
            };
            let Some((t, float, hist)) = latest else {
                continue;
            };
            if !in_window(t) {
                continue;
            }
            match (float, hist) {
                (Some(v), _) if !is_stale(v) => {
                    let v = if timestamps { t as f64 / 1000.0 } else { v };
                    out.points.push(Point { t: ts, v });
                }
                (None, Some(h)) if !h.h.is_stale() && timestamps => out.points.push(Point {
                    t: ts,
                    v: t as f64 / 1000.0,
                }),
                (None, Some(h)) if !h.h.is_stale() => out.hists.push(HPoint {
                    t: ts,
                    h: h.h.clone(),
                }),
                _ => {}
            }
        }
        let n = out.points.len() + out.hists.len();
        self.ctx.add_samples(n)?;
        self.ctx.count_read(n);
        Ok(out)
    }

    /// Hands the series of a selector or of a range function over a matrix selector to
    /// `sink` one at a time (nothing else is held); false if `expr` is not such a node.
    pub(super) fn stream_series(
        &self,
        expr: &Expr,
        sink: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<bool> {
        match unwrap_parens(expr) {
            Expr::VectorSelector(vs) => {
                self.vector_selector_each(vs, false, sink)?;
                Ok(true)
            }
            Expr::Call(c) => {
                let Some(rf) = RangeFn::from_name(c.func.name) else {
                    return Ok(false);
                };
                let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
                let over_selector = args.iter().any(|a| matches!(a, Expr::MatrixSelector(_)));
                if rf == RangeFn::AbsentOverTime || !over_selector {
                    return Ok(false);
                }
                // Output label sets must be unique, as when the result is materialized
                // (told apart by their hashes, as Prometheus does).
                let mut seen: FxMap<u64, ()> = FxMap::default();
                let mut buf = Vec::new();
                self.range_call_each(c, rf, &args, &mut |s| {
                    if seen.insert(labels_hash(&s.labels, &mut buf), ()).is_some() {
                        return Err(Error::exec(
                            "vector cannot contain metrics with the same labelset",
                        ));
                    }
                    sink(s)
                })?;
                Ok(true)
            }
            Expr::Binary(b) => {
                // A vector and a number literal: each series maps on its own (a trim
                // written as a comparison is not one).
                if trim_operator(b).is_some() {
                    return Ok(false);
                }
                let (vec_side, num, swap) = match (unwrap_parens(&b.lhs), unwrap_parens(&b.rhs)) {
                    (l, Expr::NumberLiteral(n)) if l.value_type() == ValueType::Vector => {
                        (l, n.val, false)
                    }
                    (Expr::NumberLiteral(n), r) if r.value_type() == ValueType::Vector => {
                        (r, n.val, true)
                    }
                    _ => return Ok(false),
                };
                let op = b.op.id();
                let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
                let drop_name = drops_metric_name(op, self.ctx.v3) || return_bool;
                let comparison = is_comparison(op);
                // Without the name, label sets may repeat: an error only where two have a
                // sample at the same step, as on the materialized path.
                let mut taken = StepsTaken::new(self.range);
                self.stream_series(vec_side, &mut |mut s| {
                    s.points.retain_mut(|p| {
                        let (value, keep) =
                            vector_scalar_elem(op, p.v, num, swap, comparison, return_bool);
                        p.v = value;
                        keep
                    });
                    let hists = std::mem::take(&mut s.hists);
                    if !hists.is_empty() {
                        s.hists = self
                            .scale_histograms(op, hists, swap, |_| num)
                            .unwrap_or_default();
                    }
                    if s.is_empty() {
                        return Ok(());
                    }
                    if drop_name {
                        s.labels.remove(METRIC_NAME);
                        taken.claim(&s)?;
                    }
                    sink(s)
                })
            }
            _ => Ok(false),
        }
    }

    /// Raw samples of a matrix selector in `[mint, maxt]`, stale markers dropped.
    pub(super) fn matrix_selector(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        range: i64,
    ) -> Result<Vec<Series>> {
        let mut set = self.select(vs, mint, maxt, range, None)?;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(next) = set.next_series(&mut buf) {
            let labels = next?;
            self.ctx.check("expression evaluation")?;
            let inside = |t: i64| (t > mint || (!self.ctx.v3 && t == mint)) && t <= maxt;
            let points: Vec<Point> = buf
                .iter()
                .filter(|s| inside(s.t) && !is_stale(s.v))
                .map(|s| Point { t: s.t, v: s.v })
                .collect();
            let mut hists = self.histograms_read(set.as_mut());
            hists.retain(|p| inside(p.t) && !p.h.is_stale());
            let series = Series {
                labels,
                points,
                hists,
            };
            if !series.is_empty() {
                let n = series.points.len() + series.hists.len();
                self.ctx.add_samples(n)?;
                self.ctx.count_read(n);
                out.push(series);
            }
        }
        self.ctx.add_warnings(set.as_mut());
        Ok(out)
    }

    /// Evaluates a subquery's inner expression over the steps it needs for this
    /// evaluator's range; returns the series, the reference-time shift (@ and offset) and
    /// the samples the inner expression read (not counted in the query's total).
    pub(super) fn subquery(&self, sq: &SubqueryExpr) -> Result<(Vec<Series>, i64, usize)> {
        let at = self.at_ms(&sq.at);
        let offset = offset_ms(&sq.offset);
        let (first, last) = self.ref_bounds(at, offset);
        let range = sq.range.as_millis() as i64;
        let interval = match sq.step {
            Some(s) if !s.is_zero() => s.as_millis() as i64,
            _ => self.ctx.no_step_subquery_interval,
        };
        let lo = first - range;
        let mut start = interval * (lo / interval);
        // The first step after the window's start: in 3.x a step at the start is outside.
        if start < lo || (self.ctx.v3 && start == lo) {
            start += interval;
        }
        let inner = self.with_range(StepRange {
            start,
            end: last,
            interval,
        });
        if start > last {
            return Ok((Vec::new(), offset, 0));
        }
        let read_before = self.ctx.total_samples.get();
        let stats = self.ctx.histogram_stats.replace(false);
        let evaluated = inner.eval(&sq.expr);
        self.ctx.histogram_stats.set(stats);
        let read = (self.ctx.total_samples.replace(read_before) - read_before) as usize;
        let series = match evaluated? {
            Val::Vector(mut s) => {
                // As 3.x: a subquery may skip or repeat samples, so the counter reset
                // hints of its histograms say nothing; resets are detected afresh.
                // A sample repeated over steps is one `Arc`: it is converted once.
                for series in s.iter_mut() {
                    let mut last: Option<(Arc<Histogram>, Arc<Histogram>)> = None;
                    for p in series.hists.iter_mut() {
                        if !matches!(
                            p.h.counter_reset_hint,
                            CounterResetHint::NotCounterReset | CounterResetHint::CounterReset
                        ) {
                            continue;
                        }
                        match &last {
                            Some((from, to)) if Arc::ptr_eq(from, &p.h) => p.h = to.clone(),
                            _ => {
                                let mut h = (*p.h).clone();
                                h.counter_reset_hint = CounterResetHint::Unknown;
                                let to = Arc::new(h);
                                last = Some((std::mem::replace(&mut p.h, to.clone()), to));
                            }
                        }
                    }
                }
                s
            }
            Val::Scalar(v) => vec![Series {
                labels: Labels::default(),
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Point {
                        t: inner.range.ts(i),
                        v,
                    })
                    .collect(),
                hists: Vec::new(),
            }],
            _ => return Err(Error::exec("subquery is only allowed on instant vector")),
        };
        Ok((series, offset, read))
    }
}

/// Converts a parsed selector into storage matchers. With `dot_all` (Prometheus 3.x), `.` in regular expressions matches newlines too: such
/// regexes are sent as `(?s:…)`, which every store (ours, Thanos's, Prometheus's) reads the
/// same way.
pub(super) fn selector_matchers(vs: &VectorSelector, dot_all: bool) -> Result<Vec<Matcher>> {
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.as_str()));
    }
    for m in &vs.matchers.matchers {
        let kind = match m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::RegexMatch,
            MatchOp::NotRe(_) => MatchType::RegexNoMatch,
        };
        let regex = matches!(kind, MatchType::RegexMatch | MatchType::RegexNoMatch);
        let value = if regex && dot_all && m.value.contains('.') {
            format!("(?s:{})", m.value)
        } else {
            m.value.clone()
        };
        out.push(
            Matcher::new(kind, m.name.as_str(), value)
                .map_err(|e| Error::Parse(format!("parse error: {e}")))?,
        );
    }
    Ok(out)
}

/// The steps at which each output label set of a streamed operation has a sample: a bitset
/// per label set, all in one growing arena (no allocation per series beyond the key).
struct StepsTaken {
    range: StepRange,
    words: usize,
    /// Per label set (by its hash, as Prometheus tells series apart), where its steps'
    /// bits start.
    offsets: FxMap<u64, usize>,
    bits: Vec<u64>,
    buf: Vec<u8>,
}

impl StepsTaken {
    fn new(range: StepRange) -> Self {
        StepsTaken {
            range,
            words: range.steps().div_ceil(64),
            offsets: FxMap::default(),
            bits: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Records `s`'s steps under its labels; an error if another series of the same
    /// labels had a sample at one of them.
    fn claim(&mut self, s: &Series) -> Result<()> {
        let next = self.bits.len();
        let hash = labels_hash(&s.labels, &mut self.buf);
        let at = *self.offsets.entry(hash).or_insert(next);
        if at == next {
            self.bits.resize(next + self.words, 0);
        }
        for t in s.times() {
            let step = self.range.index_of(t);
            let (word, bit) = (at + step / 64, 1u64 << (step % 64));
            if self.bits[word] & bit != 0 {
                return Err(Error::exec(
                    "vector cannot contain metrics with the same labelset",
                ));
            }
            self.bits[word] |= bit;
        }
        Ok(())
    }
}
