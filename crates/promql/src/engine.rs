//! Evaluation. Every node is evaluated over a range of steps at once (an instant query is a
//! range of one step), the way Prometheus's engine does; selectors read one series at a
//! time from storage, so raw samples are held for the series in flight only.

use crate::error::{Error, Result};
use crate::functions::{self, RangeFn, VectorFn};
use crate::parse::parse_with;
use crate::storage::{Queryable, RawSample, SelectHints, SeriesSet};
use crate::value::{Point, QueryResult, QueryStats, Sample, Series, Value};
use crate::windows::SlidingWindows;
use promql_parser::label::MatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tsdb::chunkenc::STALE_NAN_BITS;
use tsdb::labels::{Label, Labels};
use tsdb::matchers::{MatchType, Matcher};

pub(crate) const METRIC_NAME: &str = "__name__";

/// Engine settings; the defaults are Prometheus's.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Longest a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// Step of subqueries without one (the default evaluation interval).
    pub no_step_subquery_interval_ms: i64,
    /// Range functions keep state from one window to the next instead of rescanning
    /// each window (off only to compare the two in benchmarks and tests).
    pub incremental_windows: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            no_step_subquery_interval_ms: 60_000,
            incremental_windows: true,
        }
    }
}

/// Cancels a running query from another thread (e.g. when the HTTP client goes away), and
/// may carry a deadline set before the query reached the engine (time spent queueing counts).
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    canceled: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl CancelToken {
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// A token whose query times out at `deadline` at the latest.
    pub fn with_deadline(deadline: Instant) -> Self {
        CancelToken {
            canceled: Arc::default(),
            deadline: Some(deadline),
        }
    }

    pub fn cancel(&self) {
        self.canceled.store(true, Ordering::Relaxed);
    }

    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::Relaxed)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// The PromQL engine. Cheap to share; each query runs on the calling thread.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult> {
        self.instant_query_with(storage, query, time_ms, &CancelToken::default())
    }

    pub fn instant_query_with(
        &self,
        storage: &dyn Queryable,
        query: &str,
        time_ms: i64,
        cancel: &CancelToken,
    ) -> Result<QueryResult> {
        let deadline = self.deadline(cancel);
        parse_with(query, |expr| {
            self.exec(storage, expr, time_ms, time_ms, 0, cancel, deadline)
        })
    }

    /// When a query starting now must be done: the engine's timeout or the token's deadline.
    fn deadline(&self, cancel: &CancelToken) -> Option<Instant> {
        let own = Instant::now().checked_add(self.opts.timeout);
        match (own, cancel.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`; the result is a matrix.
    pub fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        self.range_query_with(
            storage,
            query,
            start_ms,
            end_ms,
            step_ms,
            &CancelToken::default(),
        )
    }

    pub fn range_query_with(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: &CancelToken,
    ) -> Result<QueryResult> {
        let deadline = self.deadline(cancel);
        parse_with(query, |expr| {
            self.range_exec(storage, expr, start_ms, end_ms, step_ms, cancel, deadline)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn range_exec(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: &CancelToken,
        deadline: Option<Instant>,
    ) -> Result<QueryResult> {
        let ty = expr.value_type();
        if ty != ValueType::Vector && ty != ValueType::Scalar {
            return Err(Error::Parse(format!(
                "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                documented_type(ty)
            )));
        }
        if step_ms <= 0 {
            return Err(Error::Parse(
                "zero or negative query resolution step widths are not accepted".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        self.exec(storage, expr, start_ms, end_ms, step_ms, cancel, deadline)
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        cancel: &CancelToken,
        deadline: Option<Instant>,
    ) -> Result<QueryResult> {
        let ctx = Ctx {
            storage,
            lookback: self.opts.lookback_delta_ms,
            max_samples: self.opts.max_samples,
            samples: Cell::new(0),
            peak_samples: Cell::new(0),
            total_samples: Cell::new(0),
            deadline,
            cancel,
            warnings: RefCell::new(Vec::new()),
            query_start: start,
            query_end: end,
            no_step_subquery_interval: self.opts.no_step_subquery_interval_ms,
            stream_collision: Cell::new(false),
            incremental_windows: self.opts.incremental_windows,
        };
        let instant = step == 0;
        let range = StepRange {
            start,
            end,
            interval: if instant { 1 } else { step },
        };
        let ev = Evaluator { ctx: &ctx, range };
        let began = Instant::now();
        let val = ev.eval(expr)?;
        ctx.check("expression evaluation")?;
        let inner_eval = began.elapsed();
        let value = match val {
            Val::Str(s) => Value::String { t: start, s },
            Val::Scalar(v) if instant => Value::Scalar { t: start, v: v[0] },
            Val::Vector(series) if instant => Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        s.points.first().map(|p| Sample {
                            labels: s.labels,
                            t: start,
                            v: p.v,
                        })
                    })
                    .collect(),
            ),
            Val::Range(series) => Value::Matrix(series),
            Val::Scalar(v) => Value::Matrix(vec![Series {
                labels: Labels::default(),
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Point { t: range.ts(i), v })
                    .collect(),
            }]),
            Val::Vector(mut series) => {
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(series)
            }
        };
        let eval_total = began.elapsed();
        let stats = QueryStats {
            total_samples: ctx.total_samples.get(),
            peak_samples: ctx.peak_samples.get(),
            eval_total,
            inner_eval,
            result_sort: eval_total.saturating_sub(inner_eval),
        };
        let warnings = ctx.warnings.take();
        Ok(QueryResult {
            value,
            warnings,
            stats,
        })
    }
}

fn documented_type(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

/// State shared by all evaluators of one query.
struct Ctx<'a> {
    storage: &'a dyn Queryable,
    lookback: i64,
    max_samples: usize,
    samples: Cell<usize>,
    peak_samples: Cell<usize>,
    /// Samples read, counted as Prometheus's `totalQueryableSamples`.
    total_samples: Cell<u64>,
    deadline: Option<Instant>,
    cancel: &'a CancelToken,
    warnings: RefCell<Vec<String>>,
    query_start: i64,
    query_end: i64,
    no_step_subquery_interval: i64,
    /// Set when a streamed evaluation meets colliding label sets and must be redone.
    stream_collision: Cell<bool>,
    incremental_windows: bool,
}

impl Ctx<'_> {
    fn check(&self, env: &'static str) -> Result<()> {
        if self.cancel.is_canceled() {
            return Err(Error::Canceled(env));
        }
        if self.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(Error::Timeout(env));
        }
        Ok(())
    }

    /// [`Ctx::check`] every 65536th step of a step loop.
    fn check_every(&self, step: usize) -> Result<()> {
        if step & 0xFFFF == 0 {
            self.check("expression evaluation")?;
        }
        Ok(())
    }

    /// Refuses to evaluate a node over more steps than samples allowed: every such node
    /// holds per-step state for all its steps.
    fn check_steps(&self, steps: usize) -> Result<()> {
        if steps > self.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(())
    }

    fn add_samples(&self, n: usize) -> Result<()> {
        let total = self.samples.get() + n;
        if total > self.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        self.samples.set(total);
        if total > self.peak_samples.get() {
            self.peak_samples.set(total);
        }
        Ok(())
    }

    /// Counts samples read for the query's statistics.
    fn count_read(&self, n: usize) {
        self.total_samples.set(self.total_samples.get() + n as u64);
    }

    fn release_samples(&self, n: usize) {
        self.samples.set(self.samples.get().saturating_sub(n));
    }

    fn add_warnings(&self, set: &mut dyn SeriesSet) {
        let w = set.warnings();
        if !w.is_empty() {
            self.warnings.borrow_mut().extend(w);
        }
    }
}

/// The steps a node is evaluated at.
#[derive(Clone, Copy, Debug)]
struct StepRange {
    start: i64,
    end: i64,
    interval: i64,
}

impl StepRange {
    fn steps(&self) -> usize {
        let n = (self.end as i128 - self.start as i128) / self.interval as i128;
        usize::try_from(n).map_or(usize::MAX, |n| n.saturating_add(1))
    }

    fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.interval
    }

    /// The first step whose time is at or after `t` (`steps()` if none).
    fn first_step_at_or_after(&self, t: i64) -> usize {
        if t <= self.start {
            return 0;
        }
        let k =
            (t as i128 - self.start as i128 + self.interval as i128 - 1) / self.interval as i128;
        usize::try_from(k).map_or(self.steps(), |k| k.min(self.steps()))
    }

    fn index_of(&self, t: i64) -> usize {
        ((t - self.start) / self.interval) as usize
    }
}

/// A node's value over all steps.
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
    /// Series with points at step timestamps.
    Vector(Vec<Series>),
    /// Raw range vectors (only at a single evaluation time).
    Range(Vec<Series>),
}

impl Val {
    fn points(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Str(_) => 0,
            Val::Vector(s) | Val::Range(s) => s.iter().map(|s| s.points.len()).sum(),
        }
    }
}

/// Fast hashing for maps keyed by labels and indexes (FxHash).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Collects output points by label set, in first-push order, rejecting two values for
/// one label set at one step like Prometheus does.
pub(crate) struct OutBuilder {
    series: Vec<Series>,
    slots: FxMap<Labels, usize>,
    /// Per slot: position in `series` (assigned at the first push) and last step pushed.
    pos: Vec<usize>,
    last_step: Vec<usize>,
    slot_labels: Vec<Option<Labels>>,
}

const NONE: usize = usize::MAX;

impl OutBuilder {
    pub(crate) fn new() -> Self {
        OutBuilder {
            series: Vec::new(),
            slots: FxMap::default(),
            pos: Vec::new(),
            last_step: Vec::new(),
            slot_labels: Vec::new(),
        }
    }

    /// The slot of a label set (created on first use).
    pub(crate) fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&s) = self.slots.get(&labels) {
            return s;
        }
        let s = self.pos.len();
        self.slots.insert(labels.clone(), s);
        self.pos.push(NONE);
        self.last_step.push(NONE);
        self.slot_labels.push(Some(labels));
        s
    }

    pub(crate) fn push(&mut self, slot: usize, step: usize, t: i64, v: f64) -> Result<()> {
        if self.last_step[slot] == step {
            return Err(Error::exec(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        self.last_step[slot] = step;
        let p = self.pos[slot];
        if p == NONE {
            let labels = self.slot_labels[slot].take().unwrap_or_default();
            self.pos[slot] = self.series.len();
            self.series.push(Series {
                labels,
                points: vec![Point { t, v }],
            });
        } else {
            self.series[p].points.push(Point { t, v });
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<Series> {
        self.series
    }
}

/// Cursor over the points of series at successive steps.
struct StepCursor {
    next: Vec<usize>,
}

impl StepCursor {
    fn new(n: usize) -> Self {
        StepCursor { next: vec![0; n] }
    }

    /// Value of series `i` at time `t` (steps must be visited in order).
    #[inline]
    fn at(&mut self, series: &[Series], i: usize, t: i64) -> Option<f64> {
        let pts = &series[i].points;
        let j = self.next[i];
        if j < pts.len() && pts[j].t == t {
            self.next[i] = j + 1;
            Some(pts[j].v)
        } else {
            None
        }
    }
}

struct Evaluator<'a, 'c> {
    ctx: &'c Ctx<'a>,
    range: StepRange,
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Converts a parsed selector into storage matchers.
fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
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
        out.push(
            Matcher::new(kind, m.name.as_str(), m.value.as_str())
                .map_err(|e| Error::Parse(format!("parse error: {e}")))?,
        );
    }
    Ok(out)
}

impl<'a, 'c> Evaluator<'a, 'c> {
    fn with_range(&self, range: StepRange) -> Evaluator<'a, 'c> {
        Evaluator {
            ctx: self.ctx,
            range,
        }
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.ctx.query_start),
            Some(AtModifier::End) => Some(self.ctx.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Reference times of the first and last step for a selector with `at`/`offset`.
    fn ref_bounds(&self, at: Option<i64>, offset: i64) -> (i64, i64) {
        match at {
            Some(a) => (a - offset, a - offset),
            None => (self.range.start - offset, self.range.end - offset),
        }
    }

    fn eval(&self, expr: &Expr) -> Result<Val> {
        self.ctx.check("expression evaluation")?;
        if !matches!(
            expr,
            Expr::Paren(_)
                | Expr::StringLiteral(_)
                | Expr::VectorSelector(_)
                | Expr::MatrixSelector(_)
                | Expr::Subquery(_)
        ) {
            self.ctx.check_steps(self.range.steps())?;
        }
        match expr {
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.range.steps()])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, false)?)),
            Expr::MatrixSelector(ms) => {
                let at = self.at_ms(&ms.vs.at);
                let offset = offset_ms(&ms.vs.offset);
                let t = at.unwrap_or(self.range.start) - offset;
                let range = ms.range.as_millis() as i64;
                Ok(Val::Range(self.matrix_selector(
                    &ms.vs,
                    t - range,
                    t,
                    range,
                )?))
            }
            Expr::Subquery(sq) => {
                let (series, _, read) = self.subquery(sq)?;
                // Prometheus counts what a subquery read only when it is the result.
                self.ctx.count_read(read);
                Ok(Val::Range(series))
            }
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut series) => {
                    for s in &mut series {
                        s.labels.remove(METRIC_NAME);
                        s.points.iter_mut().for_each(|p| p.v = -p.v);
                    }
                    check_unique_labels(&series)?;
                    Ok(Val::Vector(series))
                }
                _ => Err(Error::exec(
                    "unary expression only allowed on scalars and vectors",
                )),
            },
            Expr::Binary(b) => self.binary(b),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Call(c) => self.call(c),
            Expr::Extension(_) => Err(Error::exec("unsupported expression")),
        }
    }

    fn select<'s>(
        &'s self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        range: i64,
        func: Option<&str>,
    ) -> Result<Box<dyn SeriesSet + 'a>> {
        let matchers = selector_matchers(vs)?;
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
        self.ctx.storage.select(&hints, &matchers)
    }

    /// An instant vector selector at every step. With `timestamps`, the values are the
    /// timestamps (s) of the samples selected and the metric name is dropped.
    fn vector_selector(&self, vs: &VectorSelector, timestamps: bool) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        self.vector_selector_each(vs, timestamps, &mut |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    fn vector_selector_each(
        &self,
        vs: &VectorSelector,
        timestamps: bool,
        sink: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<()> {
        let at = self.at_ms(&vs.at);
        let offset = offset_ms(&vs.offset);
        let (first, last) = self.ref_bounds(at, offset);
        let lookback = self.ctx.lookback;
        let mut set = self.select(vs, first - lookback, last, 0, None)?;
        let steps = self.range.steps();
        let mut buf: Vec<RawSample> = Vec::new();
        while let Some(next) = set.next_series(&mut buf) {
            let mut labels = next?;
            self.ctx.check("expression evaluation")?;
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
                    s.t >= rt - lookback && !is_stale(s.v)
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
                if timestamps {
                    labels.remove(METRIC_NAME);
                }
                sink(Series { labels, points })?;
            }
        }
        self.ctx.add_warnings(set.as_mut());
        Ok(())
    }

    /// Hands the series of a selector or of a range function over a matrix selector to
    /// `sink` one at a time (nothing else is held); false if `expr` is not such a node.
    fn stream_series(
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
                // Output label sets must be unique, as when the result is materialized.
                let mut seen: FxMap<Labels, ()> = FxMap::default();
                self.range_call_each(c, rf, &args, &mut |s| {
                    if seen.insert(s.labels.clone(), ()).is_some() {
                        return Err(Error::exec(
                            "vector cannot contain metrics with the same labelset",
                        ));
                    }
                    sink(s)
                })?;
                Ok(true)
            }
            Expr::Binary(b) => {
                // A vector and a number literal: each series maps on its own.
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
                let drop_name = drops_metric_name(op) || return_bool;
                let comparison = is_comparison(op);
                let mut seen: FxMap<Labels, ()> = FxMap::default();
                self.stream_series(vec_side, &mut |mut s| {
                    s.points.retain_mut(|p| {
                        let (lv, rv) = if swap { (num, p.v) } else { (p.v, num) };
                        let (mut value, mut keep) = vector_elem_binop(op, lv, rv);
                        if comparison && swap {
                            value = rv;
                        }
                        if return_bool {
                            value = if keep { 1.0 } else { 0.0 };
                            keep = true;
                        }
                        p.v = value;
                        keep
                    });
                    if s.points.is_empty() {
                        return Ok(());
                    }
                    if drop_name {
                        s.labels.remove(METRIC_NAME);
                        // Label sets that collide once the name is gone need the per-step
                        // check of the materialized path.
                        if seen.insert(s.labels.clone(), ()).is_some() {
                            self.ctx.stream_collision.set(true);
                            return Err(Error::exec("label sets collide"));
                        }
                    }
                    sink(s)
                })
            }
            _ => Ok(false),
        }
    }

    /// Raw samples of a matrix selector in `[mint, maxt]`, stale markers dropped.
    fn matrix_selector(
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
            let points: Vec<Point> = buf
                .iter()
                .filter(|s| s.t >= mint && s.t <= maxt && !is_stale(s.v))
                .map(|s| Point { t: s.t, v: s.v })
                .collect();
            if !points.is_empty() {
                self.ctx.add_samples(points.len())?;
                self.ctx.count_read(points.len());
                out.push(Series { labels, points });
            }
        }
        self.ctx.add_warnings(set.as_mut());
        Ok(out)
    }

    /// Evaluates a subquery's inner expression over the steps it needs for this
    /// evaluator's range; returns the series, the reference-time shift (@ and offset) and
    /// the samples the inner expression read (not counted in the query's total).
    fn subquery(&self, sq: &SubqueryExpr) -> Result<(Vec<Series>, i64, usize)> {
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
        if start < lo {
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
        let evaluated = inner.eval(&sq.expr);
        let read = (self.ctx.total_samples.replace(read_before) - read_before) as usize;
        let series = match evaluated? {
            Val::Vector(s) => s,
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
            }],
            _ => return Err(Error::exec("subquery is only allowed on instant vector")),
        };
        Ok((series, offset, read))
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Val> {
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let used = lhs.points() + rhs.points();
        let out = match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => {
                let v = l
                    .iter()
                    .zip(&r)
                    .map(|(&a, &b)| scalar_binop(op, a, b))
                    .collect();
                Val::Scalar(v)
            }
            (Val::Vector(l), Val::Scalar(r)) => {
                Val::Vector(self.vector_scalar(op, l, &r, false, return_bool)?)
            }
            (Val::Scalar(l), Val::Vector(r)) => {
                Val::Vector(self.vector_scalar(op, r, &l, true, return_bool)?)
            }
            (Val::Vector(l), Val::Vector(r)) => Val::Vector(self.vector_vector(b, l, r)?),
            _ => {
                return Err(Error::exec(
                    "binary expression must contain only scalar and instant vector types",
                ))
            }
        };
        self.ctx.release_samples(used);
        self.ctx.add_samples(out.points())?;
        Ok(out)
    }

    fn vector_scalar(
        &self,
        op: token::TokenId,
        series: Vec<Series>,
        scalar: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Result<Vec<Series>> {
        let comparison = is_comparison(op);
        let drop_name = drops_metric_name(op) || return_bool;
        let mut out = OutBuilder::new();
        let mut slots = Vec::with_capacity(series.len());
        for s in &series {
            let mut l = s.labels.clone();
            if drop_name {
                l.remove(METRIC_NAME);
            }
            slots.push(out.slot(l));
        }
        // Step-major order keeps Prometheus's per-step duplicate check and output order.
        let steps = self.range.steps();
        let mut cur = StepCursor::new(series.len());
        for step in 0..steps {
            self.ctx.check_every(step)?;
            let ts = self.range.ts(step);
            for (i, &slot) in slots.iter().enumerate() {
                let Some(v) = cur.at(&series, i, ts) else {
                    continue;
                };
                let sv = scalar[step];
                let (lv, rv) = if swap { (sv, v) } else { (v, sv) };
                let (mut value, mut keep) = vector_elem_binop(op, lv, rv);
                if comparison && swap {
                    value = rv;
                }
                if return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if keep {
                    out.push(slot, step, ts, value)?;
                }
            }
        }
        Ok(out.finish())
    }

    fn vector_vector(
        &self,
        b: &BinaryExpr,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
    ) -> Result<Vec<Series>> {
        let op = b.op.id();
        let modifier = b.modifier.clone().unwrap_or_default();
        let (on, matching): (bool, Vec<String>) = match &modifier.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let card = if b.op.is_set_operator() {
            VectorMatchCardinality::ManyToMany
        } else {
            modifier.card.clone()
        };
        // Signatures: interned matching-label sets, one id per series.
        let mut sig_ids: FxMap<Vec<Label>, u32> = FxMap::default();
        let mut sig_of = |l: &Labels| -> u32 {
            let key: Vec<Label> = if on {
                l.iter()
                    .filter(|x| matching.contains(&x.name))
                    .cloned()
                    .collect()
            } else {
                l.iter()
                    .filter(|x| x.name != METRIC_NAME && !matching.contains(&x.name))
                    .cloned()
                    .collect()
            };
            let n = sig_ids.len() as u32;
            *sig_ids.entry(key).or_insert(n)
        };
        let lsig: Vec<u32> = lhs.iter().map(|s| sig_of(&s.labels)).collect();
        let rsig: Vec<u32> = rhs.iter().map(|s| sig_of(&s.labels)).collect();
        let nsigs = sig_ids.len();
        let steps = self.range.steps();
        let mut lcur = StepCursor::new(lhs.len());
        let mut rcur = StepCursor::new(rhs.len());
        let mut lvec: Vec<(usize, f64)> = Vec::new();
        let mut rvec: Vec<(usize, f64)> = Vec::new();
        let mut out = OutBuilder::new();

        if let VectorMatchCardinality::ManyToMany = card {
            // Set operators: output series keep their labels.
            let lslots: Vec<usize> = lhs.iter().map(|s| out.slot(s.labels.clone())).collect();
            let rslots: Vec<usize> = rhs.iter().map(|s| out.slot(s.labels.clone())).collect();
            let mut seen = vec![usize::MAX; nsigs];
            for step in 0..steps {
                self.ctx.check_every(step)?;
                let ts = self.range.ts(step);
                gather(&mut lcur, &lhs, ts, &mut lvec);
                gather(&mut rcur, &rhs, ts, &mut rvec);
                match op {
                    token::T_LAND => {
                        if lvec.is_empty() || rvec.is_empty() {
                            continue;
                        }
                        for &(j, _) in &rvec {
                            seen[rsig[j] as usize] = step;
                        }
                        for &(i, v) in &lvec {
                            if seen[lsig[i] as usize] == step {
                                out.push(lslots[i], step, ts, v)?;
                            }
                        }
                    }
                    token::T_LOR => {
                        for &(i, v) in &lvec {
                            seen[lsig[i] as usize] = step;
                            out.push(lslots[i], step, ts, v)?;
                        }
                        for &(j, v) in &rvec {
                            if seen[rsig[j] as usize] != step {
                                out.push(rslots[j], step, ts, v)?;
                            }
                        }
                    }
                    token::T_LUNLESS => {
                        for &(j, _) in &rvec {
                            seen[rsig[j] as usize] = step;
                        }
                        for &(i, v) in &lvec {
                            if seen[lsig[i] as usize] != step {
                                out.push(lslots[i], step, ts, v)?;
                            }
                        }
                    }
                    _ => return Err(Error::exec("set operator expected")),
                }
            }
            return Ok(out.finish());
        }

        let return_bool = modifier.return_bool;
        let include: Vec<String> = match &card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                l.labels.clone()
            }
            _ => Vec::new(),
        };
        let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        // After a swap for group_right, "l" is the many side and "r" the one side.
        let (ls, rs, lsig, rsig, lcur, rcur) = if one_to_many {
            (&rhs, &lhs, &rsig, &lsig, &mut rcur, &mut lcur)
        } else {
            (&lhs, &rhs, &lsig, &rsig, &mut lcur, &mut rcur)
        };
        let mut right_at: Vec<(usize, usize)> = vec![(usize::MAX, 0); nsigs]; // (step, series)
        let mut matched_step: Vec<usize> = vec![usize::MAX; nsigs];
        let mut inserted: FxMap<(u32, usize), usize> = FxMap::default(); // (sig, out slot) -> step
        let mut result_slots: FxMap<(u32, u32), usize> = FxMap::default();
        for step in 0..steps {
            self.ctx.check_every(step)?;
            let ts = self.range.ts(step);
            gather(lcur, ls, ts, &mut lvec);
            gather(rcur, rs, ts, &mut rvec);
            if lvec.is_empty() || rvec.is_empty() {
                continue;
            }
            for &(j, _) in &rvec {
                let sig = rsig[j] as usize;
                if right_at[sig].0 == step {
                    let dup = right_at[sig].1;
                    let side = if one_to_many { "left" } else { "right" };
                    let matched = match_labels(&rs[j].labels, on, &matching);
                    return Err(Error::exec(format!(
                        "found duplicate series for the match group {matched} on the {side} \
                         hand-side of the operation: [{}, {}];many-to-many matching not \
                         allowed: matching labels must be unique on one side",
                        rs[j].labels, rs[dup].labels
                    )));
                }
                right_at[sig] = (step, j);
            }
            let rvals: FxMap<usize, f64> = rvec.iter().copied().collect();
            for &(i, lv) in &lvec {
                let sig = lsig[i] as usize;
                if right_at[sig].0 != step {
                    continue;
                }
                let j = right_at[sig].1;
                let rv = rvals.get(&j).copied().unwrap_or(f64::NAN);
                let (vl, vr) = if one_to_many { (rv, lv) } else { (lv, rv) };
                let (mut value, keep) = vector_elem_binop(op, vl, vr);
                if return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                let slot = match result_slots.get(&(i as u32, j as u32)) {
                    Some(&s) => s,
                    None => {
                        let mut m = result_metric(
                            &ls[i].labels,
                            &rs[j].labels,
                            op,
                            one_to_one,
                            on,
                            &matching,
                            &include,
                        );
                        if return_bool {
                            m.remove(METRIC_NAME);
                        }
                        let s = out.slot(m);
                        result_slots.insert((i as u32, j as u32), s);
                        s
                    }
                };
                if one_to_one {
                    if matched_step[sig] == step {
                        return Err(Error::exec(
                            "multiple matches for labels: many-to-one matching must be explicit \
                             (group_left/group_right)",
                        ));
                    }
                    matched_step[sig] = step;
                } else {
                    let key = (sig as u32, slot);
                    if inserted.get(&key) == Some(&step) {
                        return Err(Error::exec(
                            "multiple matches for labels: grouping labels must ensure unique matches",
                        ));
                    }
                    inserted.insert(key, step);
                }
                out.push(slot, step, ts, value)?;
            }
        }
        Ok(out.finish())
    }

    fn aggregate(&self, a: &AggregateExpr) -> Result<Val> {
        let op = a.op.id();
        let (without, mut grouping): (bool, Vec<String>) = match &a.modifier {
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
            None => (false, Vec::new()),
        };
        grouping.sort();
        grouping.dedup();
        if a.param.is_none() {
            if let Some(out) = self.stream_aggregate(op, &grouping, without, &a.expr)? {
                let n = out.iter().map(|s| s.points.len()).sum();
                self.ctx.add_samples(n)?;
                return Ok(Val::Vector(out));
            }
        }
        let param = match &a.param {
            Some(p) => Some(self.eval(p)?),
            None => None,
        };
        let input = match self.eval(&a.expr)? {
            Val::Vector(s) => s,
            _ => return Err(Error::exec("aggregation expects an instant vector")),
        };
        let used = input.iter().map(|s| s.points.len()).sum::<usize>();
        let out = crate::functions::aggregate(
            op,
            &grouping,
            without,
            param,
            &input,
            self.range.steps(),
            |i| self.range.ts(i),
            || self.ctx.check("expression evaluation"),
        )?;
        self.ctx.release_samples(used);
        let n = out.iter().map(|s| s.points.len()).sum();
        self.ctx.add_samples(n)?;
        Ok(Val::Vector(out))
    }

    /// sum/avg/count/min/max/group/stddev/stdvar folded series by series over a streamed
    /// input: memory is the groups' per-step state, not the input. `None` if not streamable.
    fn stream_aggregate(
        &self,
        op: token::TokenId,
        grouping: &[String],
        without: bool,
        inner: &Expr,
    ) -> Result<Option<Vec<Series>>> {
        use crate::functions::{StepAcc, StreamAgg};
        let Some(kind) = StreamAgg::from_op(op) else {
            return Ok(None);
        };
        let steps = self.range.steps();
        // Groups by a hash of the grouping labels, compared on a hit: no key is built for
        // a series whose group exists.
        let mut groups: FxMap<u64, Vec<usize>> = FxMap::default();
        let mut accs: Vec<(Labels, Vec<StepAcc>)> = Vec::new();
        let range = self.range;
        let read_before = self.ctx.total_samples.get();
        let kept = |x: &Label| {
            if without {
                x.name != METRIC_NAME && !grouping.contains(&x.name)
            } else {
                grouping.contains(&x.name)
            }
        };
        let streamed = self.stream_series(inner, &mut |s| {
            let mut h = FxHasher::default();
            for x in s.labels.iter().filter(|x| kept(x)) {
                h.write(x.name.as_bytes());
                h.write_u8(0xff);
                h.write(x.value.as_bytes());
                h.write_u8(0xff);
            }
            let same = groups.entry(h.finish()).or_default();
            let found = same
                .iter()
                .copied()
                .find(|&g| accs[g].0.iter().eq(s.labels.iter().filter(|x| kept(x))));
            let g = match found {
                Some(g) => g,
                None => {
                    let g = accs.len();
                    same.push(g);
                    let key = crate::functions::group_labels(&s.labels, grouping, without);
                    accs.push((key, vec![StepAcc::default(); steps]));
                    g
                }
            };
            let acc = &mut accs[g].1;
            for p in &s.points {
                acc[range.index_of(p.t)].add(kind, p.v);
            }
            self.ctx.release_samples(s.points.len());
            Ok(())
        });
        let streamed = match streamed {
            Err(_) if self.ctx.stream_collision.replace(false) => {
                // Evaluated again, materialized: what the stream read is read again.
                self.ctx.total_samples.set(read_before);
                return Ok(None);
            }
            r => r?,
        };
        if !streamed {
            return Ok(None);
        }
        let out = accs
            .into_iter()
            .filter_map(|(labels, acc)| {
                let points: Vec<Point> = acc
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.count > 0)
                    .map(|(i, a)| Point {
                        t: range.ts(i),
                        v: a.value(kind),
                    })
                    .collect();
                (!points.is_empty()).then_some(Series { labels, points })
            })
            .collect();
        Ok(Some(out))
    }

    fn call(&self, c: &Call) -> Result<Val> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
        if let Some(rf) = RangeFn::from_name(name) {
            return self.range_call(c, rf, &args);
        }
        let vf = VectorFn::from_name(name)
            .ok_or_else(|| Error::Parse(format!("unknown function with name {name:?}")))?;
        if matches!(vf, VectorFn::Timestamp) {
            if let Expr::VectorSelector(vs) = args[0] {
                return Ok(Val::Vector(self.vector_selector(vs, true)?));
            }
        }
        let mut vals = Vec::with_capacity(args.len());
        for a in &args {
            vals.push(self.eval(a)?);
        }
        let steps = self.range.steps();
        functions::vector_call(
            vf,
            &args,
            vals,
            steps,
            |i| self.range.ts(i),
            |t| self.range.index_of(t),
        )
    }

    /// A function over a range vector: a matrix selector or a subquery.
    fn range_call(&self, c: &Call, rf: RangeFn, args: &[&Expr]) -> Result<Val> {
        let mut out: Vec<Series> = Vec::new();
        let marg = self.range_call_each(c, rf, args, &mut |s| {
            out.push(s);
            Ok(())
        })?;
        if rf == RangeFn::AbsentOverTime {
            return Ok(Val::Vector(absent_over_time(out, self.range, marg)?));
        }
        check_unique_labels(&out)?;
        Ok(Val::Vector(out))
    }

    /// Evaluates a range function series by series, handing each output series to `sink`;
    /// returns the range vector argument.
    fn range_call_each<'e>(
        &self,
        c: &Call,
        rf: RangeFn,
        args: &[&'e Expr],
        sink: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<&'e Expr> {
        let (midx, marg) = args
            .iter()
            .enumerate()
            .find(|(_, a)| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_)))
            .ok_or_else(|| {
                Error::exec(format!("{}: expected a range vector argument", c.func.name))
            })?;
        // Scalar arguments, one value per step.
        let mut scalars: Vec<Vec<f64>> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i == midx {
                continue;
            }
            match self.eval(a)? {
                Val::Scalar(v) => scalars.push(v),
                _ => return Err(Error::exec("expected a scalar argument")),
            }
        }
        let steps = self.range.steps();
        let keep_name = rf == RangeFn::LastOverTime;
        let mut args_at = vec![0.0; scalars.len()];
        let mut windows = if self.ctx.incremental_windows {
            SlidingWindows::new(rf)
        } else {
            SlidingWindows::rescanning(rf)
        };
        let mut eval_series = |mut labels: Labels,
                               samples: &[RawSample],
                               at: Option<i64>,
                               offset: i64,
                               range: i64|
         -> Result<()> {
            let mut points = Vec::new();
            let (mut lo, mut hi) = (0usize, 0usize);
            let mut read = 0;
            windows.reset(samples);
            for step in 0..steps {
                self.ctx.check_every(step)?;
                let ts = self.range.ts(step);
                let rt = at.unwrap_or(ts) - offset;
                let mint = rt - range;
                while lo < samples.len() && samples[lo].t < mint {
                    lo += 1;
                }
                if hi < lo {
                    hi = lo;
                }
                while hi < samples.len() && samples[hi].t <= rt {
                    hi += 1;
                }
                if lo >= hi {
                    continue;
                }
                read += hi - lo;
                for (k, s) in scalars.iter().enumerate() {
                    args_at[k] = s[step];
                }
                let at = functions::Window {
                    start: mint,
                    end: rt,
                    range_ms: range,
                    ts,
                };
                if let Some(v) = windows.eval(samples, lo, hi, &at, &args_at)? {
                    points.push(Point { t: ts, v });
                }
            }
            self.ctx.count_read(read);
            if !points.is_empty() {
                self.ctx.add_samples(points.len())?;
                if !keep_name {
                    labels.remove(METRIC_NAME);
                }
                sink(Series { labels, points })?;
            }
            Ok(())
        };
        match marg {
            Expr::MatrixSelector(ms) => {
                let at = self.at_ms(&ms.vs.at);
                let offset = offset_ms(&ms.vs.offset);
                let range = ms.range.as_millis() as i64;
                let (first, last) = self.ref_bounds(at, offset);
                let mut set = self.select(&ms.vs, first - range, last, range, Some(c.func.name))?;
                let mut buf: Vec<RawSample> = Vec::new();
                while let Some(next) = set.next_series(&mut buf) {
                    let labels = next?;
                    self.ctx.check("expression evaluation")?;
                    buf.retain(|s| !is_stale(s.v));
                    eval_series(labels, &buf, at, offset, range)?;
                }
                self.ctx.add_warnings(set.as_mut());
            }
            Expr::Subquery(sq) => {
                let at = self.at_ms(&sq.at);
                let range = sq.range.as_millis() as i64;
                let (inner, offset, _) = self.subquery(sq)?;
                let inner_points: usize = inner.iter().map(|s| s.points.len()).sum();
                self.ctx.add_samples(inner_points)?;
                let mut buf: Vec<RawSample> = Vec::new();
                for s in inner {
                    self.ctx.check("expression evaluation")?;
                    buf.clear();
                    buf.extend(s.points.iter().map(|p| RawSample { t: p.t, v: p.v }));
                    eval_series(s.labels, &buf, at, offset, range)?;
                }
                self.ctx.release_samples(inner_points);
            }
            _ => unreachable!("matched above"),
        }
        Ok(marg)
    }
}

fn gather(cur: &mut StepCursor, series: &[Series], ts: i64, out: &mut Vec<(usize, f64)>) {
    out.clear();
    for i in 0..series.len() {
        if let Some(v) = cur.at(series, i, ts) {
            out.push((i, v));
        }
    }
}

fn check_unique_labels(series: &[Series]) -> Result<()> {
    if series.len() < 2 {
        return Ok(());
    }
    let mut seen: FxMap<&Labels, ()> = FxMap::default();
    for s in series {
        if seen.insert(&s.labels, ()).is_some() {
            return Err(Error::exec(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(())
}

fn absent_over_time(found: Vec<Series>, range: StepRange, arg: &Expr) -> Result<Vec<Series>> {
    let steps = range.steps();
    let mut present = vec![false; steps];
    for s in &found {
        for p in &s.points {
            present[range.index_of(p.t)] = true;
        }
    }
    let points: Vec<Point> = (0..steps)
        .filter(|&i| !present[i])
        .map(|i| Point {
            t: range.ts(i),
            v: 1.0,
        })
        .collect();
    if points.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Series {
        labels: absent_labels(arg),
        points,
    }])
}

/// Labels for `absent`/`absent_over_time`: the equality matchers of a selector argument.
pub(crate) fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut l = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut deleted: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            l.set(&m.name, &m.value);
            seen.push(&m.name);
        } else {
            deleted.push(&m.name);
        }
    }
    for d in deleted {
        l.remove(d);
    }
    // Empty values mean "no label" in Prometheus's label builder.
    l.retain(|x| !x.value.is_empty());
    l
}

pub(crate) fn match_labels(l: &Labels, on: bool, names: &[String]) -> Labels {
    let v: Vec<Label> = l
        .iter()
        .filter(|x| {
            if on {
                names.contains(&x.name)
            } else {
                x.name != METRIC_NAME && !names.contains(&x.name)
            }
        })
        .cloned()
        .collect();
    Labels::from_sorted(v)
}

fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    op: token::TokenId,
    one_to_one: bool,
    on: bool,
    matching: &[String],
    include: &[String],
) -> Labels {
    let mut l = lhs.clone();
    if drops_metric_name(op) {
        l.remove(METRIC_NAME);
    }
    if one_to_one {
        if on {
            l.retain(|x| matching.contains(&x.name));
        } else {
            l.retain(|x| !matching.contains(&x.name));
        }
    }
    for name in include {
        match rhs.get(name) {
            Some(v) if !v.is_empty() => l.set(name, v),
            _ => l.remove(name),
        }
    }
    l
}

pub(crate) fn is_comparison(op: token::TokenId) -> bool {
    TokenType::new(op).is_comparison_operator()
}

fn drops_metric_name(op: token::TokenId) -> bool {
    matches!(
        op,
        token::T_ADD | token::T_SUB | token::T_DIV | token::T_MUL | token::T_POW | token::T_MOD
    )
}

fn btof(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn scalar_binop(op: token::TokenId, l: f64, r: f64) -> f64 {
    match op {
        token::T_ADD => l + r,
        token::T_SUB => l - r,
        token::T_MUL => l * r,
        token::T_DIV => l / r,
        token::T_POW => l.powf(r),
        token::T_MOD => go_mod(l, r),
        token::T_EQLC => btof(l == r),
        token::T_NEQ => btof(l != r),
        token::T_GTR => btof(l > r),
        token::T_LSS => btof(l < r),
        token::T_GTE => btof(l >= r),
        token::T_LTE => btof(l <= r),
        token::T_ATAN2 => l.atan2(r),
        _ => f64::NAN,
    }
}

/// Go's math.Mod: the result has the sign of `l`.
fn go_mod(l: f64, r: f64) -> f64 {
    l % r
}

fn vector_elem_binop(op: token::TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (l.powf(r), true),
        token::T_MOD => (go_mod(l, r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        token::T_ATAN2 => (l.atan2(r), true),
        _ => (f64::NAN, false),
    }
}
