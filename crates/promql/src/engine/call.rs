//! Function calls: range functions window by window, and instant-vector functions.

use super::*;

impl<'a> Evaluator<'a, '_> {
    pub(super) fn call(&self, c: &Call) -> Result<Val> {
        // Prometheus places most of a function's annotations at its first argument.
        let _about = c.args.args.first().map(|a| self.ctx.anchor(&**a));
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
        if let Some(rf) = RangeFn::from_name(name) {
            return self.range_call(c, rf, &args);
        }
        let function = crate::function_table::lookup(name);
        if let Some(f) = function {
            use crate::function_table::{Eval, QueryConstant};
            // 3.x's query-shape functions are constants of the query.
            let (start, end) = (self.ctx.query_start, self.ctx.query_end);
            let constant = match f.eval {
                Eval::Info => return self.info(&args),
                Eval::Query(QueryConstant::Start) => Some(start as f64 / 1000.0),
                Eval::Query(QueryConstant::End) => Some(end as f64 / 1000.0),
                Eval::Query(QueryConstant::Range) => Some((end - start) as f64 / 1000.0),
                Eval::Query(QueryConstant::Step) => Some(self.ctx.query_step as f64 / 1000.0),
                _ => None,
            };
            if let Some(v) = constant {
                return Ok(Val::Scalar(vec![v; self.range.steps()]));
            }
        }
        let vf = VectorFn::from_name(name)
            .ok_or_else(|| Error::Parse(format!("unknown function with name {name:?}")))?;
        if matches!(vf, VectorFn::Timestamp) {
            if let Expr::VectorSelector(vs) = args[0] {
                return Ok(Val::Vector(self.vector_selector(vs, true)?));
            }
        }
        let sorts = matches!(
            vf,
            VectorFn::Sort | VectorFn::SortDesc | VectorFn::SortByLabel { .. }
        );
        if sorts && self.range.start != self.range.end {
            self.ctx.warn_at(c, annotations::SORT_IN_RANGE_QUERY);
        }
        let mut vals = Vec::with_capacity(args.len());
        let stats = match name {
            "histogram_count" | "histogram_sum" | "histogram_avg" => Some(true),
            "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => Some(false),
            _ => None,
        };
        let outer = self.ctx.histogram_stats.get();
        if let Some(s) = stats {
            self.ctx.histogram_stats.set(s);
        }
        let evaluated: Result<()> = args.iter().try_for_each(|a| {
            vals.push(self.eval(a)?);
            Ok(())
        });
        self.ctx.histogram_stats.set(outer);
        evaluated?;
        let native = self.native_histogram_args(name, &args, &mut vals)?;
        if let (VectorFn::HistogramQuantile, Some(Val::Scalar(q))) = (vf, vals.first()) {
            self.warn_invalid_quantiles(q);
        }
        if matches!(vf, VectorFn::HistogramQuantiles) {
            for v in vals.iter().skip(2) {
                if let Val::Scalar(q) = v {
                    self.warn_invalid_quantiles(q);
                }
            }
        }
        let steps = self.range.steps();
        let mut notes = Notes::default();
        let out = functions::vector_call(
            vf,
            &args,
            vals,
            steps,
            |i| self.range.ts(i),
            |t| self.range.index_of(t),
            &mut notes,
            self.ctx.v3,
        );
        // What concerns classic buckets is placed at the vector argument.
        let _about_vector = c
            .args
            .args
            .iter()
            .find(|a| a.value_type() == ValueType::Vector)
            .map(|a| self.ctx.anchor(&**a));
        self.ctx.absorb(notes);
        match out? {
            Val::Vector(mut series) if !native.is_empty() => {
                self.merge_native_output(&mut series, native)?;
                Ok(Val::Vector(series))
            }
            other => Ok(other),
        }
    }

    /// Warns once per distinct quantile outside [0, 1] (NaN included), as 3.x does.
    pub(super) fn warn_invalid_quantiles(&self, q: &[f64]) {
        let mut warned_nan = false;
        for &v in q {
            if v.is_nan() && !warned_nan {
                warned_nan = true;
                self.ctx.warn(annotations::invalid_quantile(v));
            } else if !(0.0..=1.0).contains(&v) && !v.is_nan() {
                self.ctx.warn(annotations::invalid_quantile(v));
            }
        }
    }

    /// A function over a range vector: a matrix selector or a subquery.
    pub(super) fn range_call(&self, c: &Call, rf: RangeFn, args: &[&Expr]) -> Result<Val> {
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
    pub(super) fn range_call_each<'e>(
        &self,
        c: &Call,
        rf: RangeFn,
        args: &[&'e Expr],
        sink: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<&'e Expr> {
        let _about = c.args.args.first().map(|a| self.ctx.anchor(&**a));
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
        let keep_name = matches!(rf, RangeFn::LastOverTime | RangeFn::FirstOverTime);
        let left_open = self.ctx.v3;
        let mut args_at = vec![0.0; scalars.len()];
        // The last invalid quantile warned about: a message is built once per value, not
        // per window.
        let mut warned_q: Option<u64> = None;
        let mut windows = if self.ctx.incremental_windows {
            SlidingWindows::new(rf)
        } else {
            SlidingWindows::rescanning(rf)
        };
        let mut eval_series = |mut labels: Labels,
                               samples: &[RawSample],
                               hists: &[HPoint],
                               at: Option<i64>,
                               offset: i64,
                               range: i64|
         -> Result<()> {
            if !hists.is_empty() {
                let series = self.range_with_histograms(
                    rf, labels, samples, hists, at, offset, range, &scalars, keep_name,
                )?;
                if !series.is_empty() {
                    self.ctx
                        .add_samples(series.points.len() + series.hists.len())?;
                    sink(series)?;
                }
                return Ok(());
            }
            let mut points = Vec::new();
            // 3.x: rate and increase of a name that does not look like a counter.
            if matches!(rf, RangeFn::Rate | RangeFn::Increase) && self.ctx.v3 {
                let name = labels.get(METRIC_NAME).unwrap_or("");
                let counter_like = ["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|s| name.ends_with(s));
                if !name.is_empty() && !counter_like && !samples.is_empty() {
                    self.ctx.info(annotations::possible_non_counter(name));
                }
            }
            let (mut lo, mut hi) = (0usize, 0usize);
            let mut read = 0;
            windows.reset(samples);
            for step in 0..steps {
                self.ctx.check_every(step)?;
                let ts = self.range.ts(step);
                let rt = at.unwrap_or(ts) - offset;
                let mint = rt - range;
                while lo < samples.len()
                    && (samples[lo].t < mint || (left_open && samples[lo].t == mint))
                {
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
                    v3: left_open,
                };
                if rf == RangeFn::QuantileOverTime {
                    let q = args_at[0];
                    let invalid = q.is_nan() || !(0.0..=1.0).contains(&q);
                    if invalid && warned_q != Some(q.to_bits()) {
                        warned_q = Some(q.to_bits());
                        self.ctx.warn(annotations::invalid_quantile(q));
                    }
                }
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
                sink(Series::floats(labels, points))?;
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
                    let mut hists = self.histograms_read(set.as_mut());
                    hists.retain(|p| !p.h.is_stale());
                    eval_series(labels, &buf, &hists, at, offset, range)?;
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
                    eval_series(s.labels, &buf, &s.hists, at, offset, range)?;
                }
                self.ctx.release_samples(inner_points);
            }
            _ => unreachable!("matched above"),
        }
        Ok(marg)
    }
}

impl Evaluator<'_, '_> {
    /// A range function over one series that has native histogram samples: each step's
    /// window evaluated afresh over both kinds.
    #[allow(clippy::too_many_arguments)]
    fn range_with_histograms(
        &self,
        rf: RangeFn,
        mut labels: Labels,
        floats: &[RawSample],
        hists: &[HPoint],
        at: Option<i64>,
        offset: i64,
        range: i64,
        scalars: &[Vec<f64>],
        keep_name: bool,
    ) -> Result<Series> {
        let metric = labels.get(METRIC_NAME).unwrap_or("").to_string();
        let left_open = self.ctx.v3;
        let mut out = Series::default();
        let mut args = vec![0.0; scalars.len()];
        let (mut flo, mut fhi, mut hlo, mut hhi) = (0, 0, 0, 0);
        let mut read = 0;
        for step in 0..self.range.steps() {
            self.ctx.check_every(step)?;
            let ts = self.range.ts(step);
            let rt = at.unwrap_or(ts) - offset;
            let mint = rt - range;
            let before = |t: i64| t < mint || (left_open && t == mint);
            while flo < floats.len() && before(floats[flo].t) {
                flo += 1;
            }
            while hlo < hists.len() && before(hists[hlo].t) {
                hlo += 1;
            }
            fhi = fhi.max(flo);
            hhi = hhi.max(hlo);
            while fhi < floats.len() && floats[fhi].t <= rt {
                fhi += 1;
            }
            while hhi < hists.len() && hists[hhi].t <= rt {
                hhi += 1;
            }
            if flo >= fhi && hlo >= hhi {
                continue;
            }
            read += (fhi - flo) + (hhi - hlo);
            for (k, s) in scalars.iter().enumerate() {
                args[k] = s[step];
            }
            let window = functions::Window {
                start: mint,
                end: rt,
                range_ms: range,
                ts,
                v3: left_open,
            };
            match self.histogram_window(
                rf,
                &floats[flo..fhi],
                &hists[hlo..hhi],
                &window,
                &args,
                &metric,
            )? {
                Some(native_range::Out::F(v)) => out.points.push(Point { t: ts, v }),
                Some(native_range::Out::H(mut h)) => {
                    h.t = ts;
                    out.hists.push(HPoint {
                        t: ts,
                        h: Arc::new(h),
                    });
                }
                None => {}
            }
        }
        self.ctx.count_read(read);
        if !keep_name {
            labels.remove(METRIC_NAME);
        }
        out.labels = labels;
        Ok(out)
    }
}

pub(super) fn absent_over_time(
    found: Vec<Series>,
    range: StepRange,
    arg: &Expr,
) -> Result<Vec<Series>> {
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
        hists: Vec::new(),
    }])
}
