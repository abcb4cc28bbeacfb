//! Evaluation. Every node is evaluated over a range of steps at once (an instant query is a
//! range of one step), the way Prometheus's engine does; selectors read one series at a
//! time from storage, so raw samples are held for the series in flight only.

mod aggregate;
mod binary;
mod call;
mod info;
mod native;
mod native_range;
mod select;

pub(crate) use crate::functions::absent_labels;
pub(crate) use crate::parse::unwrap_parens;
pub(crate) use binary::is_comparison;
use binary::{drops_metric_name, trim_operator, vector_scalar_elem};

use crate::annotations::{self, Notes};
use crate::error::{Error, Result};
use crate::functions::{self, RangeFn, VectorFn};
use crate::lex::QueryShape;
use crate::parse::{parse_for_query, Compat, Dialect};
use crate::positions::{Positioned, Positions};
use crate::storage::{Queryable, RawSample, SelectHints, SeriesSet};
use crate::value::{HPoint, Point, QueryResult, QueryStats, Sample, Series, Value};
use crate::windows::SlidingWindows;
use promql_parser::label::MatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};
use std::cell::{Cell, RefCell};
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tsdb::labels::{Label, Labels};
use tsdb::matchers::{MatchType, Matcher};

pub(crate) use crate::node_value::{
    is_stale, labels_hash, FxHasher, FxMap, OutBuilder, Val, METRIC_NAME,
};

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
    /// Which Prometheus's PromQL queries are parsed and evaluated as.
    pub dialect: Dialect,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            no_step_subquery_interval_ms: 60_000,
            incremental_windows: true,
            dialect: Dialect::default(),
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
        let shape = QueryShape::default();
        let text = query.as_bytes();
        parse_for_query(text, self.opts.dialect, shape, |expr, positions| {
            let src = Source { text, positions };
            self.exec(storage, expr, src, time_ms, time_ms, 0, cancel, deadline)
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
        let shape = QueryShape {
            step_ms,
            range_ms: end_ms.saturating_sub(start_ms),
        };
        let text = query.as_bytes();
        parse_for_query(text, self.opts.dialect, shape, |expr, positions| {
            let src = Source { text, positions };
            self.range_exec(
                storage, expr, src, start_ms, end_ms, step_ms, cancel, deadline,
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn range_exec(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        src: Source<'_>,
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
        self.exec(
            storage, expr, src, start_ms, end_ms, step_ms, cancel, deadline,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        src: Source<'_>,
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
            notes: RefCell::new(Notes::default()),
            positions: src.positions,
            query_start: start,
            query_end: end,
            query_step: step,
            no_step_subquery_interval: self.opts.no_step_subquery_interval_ms,
            incremental_windows: self.opts.incremental_windows,
            v3: self.opts.dialect.compat == Compat::V3,
            histogram_stats: Cell::new(false),
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
                    .filter_map(|s| match (s.points.first(), s.hists.first()) {
                        (Some(p), _) => Some(Sample {
                            labels: s.labels,
                            t: start,
                            v: p.v,
                            h: None,
                        }),
                        (None, Some(hp)) => Some(Sample {
                            labels: s.labels,
                            t: start,
                            v: 0.0,
                            h: Some(hp.h.clone()),
                        }),
                        (None, None) => None,
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
                hists: Vec::new(),
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
        let (warnings, infos) = ctx.notes.take().render(src.text);
        Ok(QueryResult {
            value,
            warnings,
            infos,
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

/// The query being run: its text and where its expressions start.
#[derive(Clone, Copy)]
struct Source<'q> {
    text: &'q [u8],
    positions: &'q Positions,
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
    /// The storage's warnings and, under 3.x, the engine's annotations.
    notes: RefCell<Notes>,
    /// Where the query's expressions start, for the annotations' positions.
    positions: &'a Positions,
    query_start: i64,
    query_end: i64,
    /// The range query's step (0 for an instant query).
    query_step: i64,
    no_step_subquery_interval: i64,
    incremental_windows: bool,
    /// Left-open windows and `.` matching newlines (Prometheus 3.x).
    v3: bool,
    /// Selectors under `histogram_count`/`histogram_sum`/`histogram_avg` read histograms
    /// as 3.x's `HistogramStatsIterator` does (see `native::stats_only`).
    histogram_stats: Cell<bool>,
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
            self.notes.borrow_mut().storage_warnings(w);
        }
    }

    /// Until the guard drops, annotations are about `node` (an expression or the node
    /// struct inside one): they carry its position.
    fn anchor<T: Positioned>(&self, node: &T) -> Anchor<'_> {
        let pos = self.positions.start(node);
        let prev = std::mem::replace(&mut self.notes.borrow_mut().anchor, pos);
        Anchor {
            notes: &self.notes,
            prev,
        }
    }

    /// Notes gathered apart, placed at the current anchor unless they say where.
    fn absorb(&self, notes: Notes) {
        if self.v3 {
            self.notes.borrow_mut().absorb(notes);
        }
    }

    /// A 3.x warning about `node` rather than the current anchor.
    fn warn_at<T: Positioned>(&self, node: &T, msg: impl Into<String>) {
        let _about = self.anchor(node);
        self.warn(msg);
    }

    /// A 3.x warning annotation (none under 2.42, whose engine had none).
    fn warn(&self, msg: impl Into<String>) {
        if self.v3 {
            self.notes.borrow_mut().warn(msg.into());
        }
    }

    /// A 3.x info annotation.
    fn info(&self, msg: impl Into<String>) {
        if self.v3 {
            self.notes.borrow_mut().info(msg.into());
        }
    }
}

/// Restores the annotations' previous anchor when dropped (see [`Ctx::anchor`]).
struct Anchor<'c> {
    notes: &'c RefCell<Notes>,
    prev: Option<usize>,
}

impl Drop for Anchor<'_> {
    fn drop(&mut self) {
        self.notes.borrow_mut().anchor = self.prev;
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
                        for p in &mut s.hists {
                            let mut h = (*p.h).clone();
                            tsdb::histogram::mul(&mut h, -1.0);
                            p.h = Arc::new(h);
                        }
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
