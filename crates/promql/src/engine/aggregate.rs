//! Aggregation nodes: streamed when the input can be read series by series, otherwise
//! materialised (see `crate::aggregation`).

use super::*;

impl<'a> Evaluator<'a, '_> {
    pub(super) fn aggregate(&self, a: &AggregateExpr) -> Result<Val> {
        // Prometheus places an aggregation's annotations at its operand, those about the
        // parameter at the parameter.
        let _about = self.ctx.anchor(&*a.expr);
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
        let about_param = a.param.as_ref().map(|p| self.ctx.anchor(&**p));
        if let (token::T_LIMIT_RATIO, Some(Val::Scalar(r))) = (op, &param) {
            let max = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = r.iter().copied().fold(f64::INFINITY, f64::min);
            if max > 1.0 {
                self.ctx.warn(annotations::invalid_ratio(max, 1.0));
            }
            if min < -1.0 {
                self.ctx.warn(annotations::invalid_ratio(min, -1.0));
            }
        }
        if let (token::T_QUANTILE, Some(Val::Scalar(q))) = (op, &param) {
            if q.iter().any(|v| v.is_nan()) {
                self.ctx.warn(annotations::invalid_quantile(f64::NAN));
            }
            let max = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = q.iter().copied().fold(f64::INFINITY, f64::min);
            if max > 1.0 {
                self.ctx.warn(annotations::invalid_quantile(max));
            }
            if min < 0.0 {
                self.ctx.warn(annotations::invalid_quantile(min));
            }
        }
        drop(about_param);
        let mut input = match self.eval(&a.expr)? {
            Val::Vector(s) => s,
            _ => return Err(Error::exec("aggregation expects an instant vector")),
        };
        let value_label = match &param {
            Some(Val::Str(s)) => Some(s.as_str()),
            _ => None,
        };
        let hists = self.aggregate_histograms(
            op,
            a.op.to_string(),
            value_label,
            &grouping,
            without,
            &mut input,
        );
        // limitk and limit_ratio pick series whatever their samples: histograms go
        // through boxed.
        let boxes = binary::HistBoxes::default();
        let boxed = matches!(op, token::T_LIMITK | token::T_LIMIT_RATIO)
            && input.iter().any(|s| !s.hists.is_empty());
        if boxed {
            input = boxes.pack(input)?;
        }
        let used = input.iter().map(|s| s.points.len()).sum::<usize>();
        let out = crate::aggregation::aggregate(
            op,
            &grouping,
            without,
            param,
            &input,
            self.range.steps(),
            |i| self.range.ts(i),
            || self.ctx.check("expression evaluation"),
            self.ctx.v3,
        )?;
        self.ctx.release_samples(used);
        let mut out = if boxed { boxes.unpack(out) } else { out };
        if let Some(h) = hists {
            // topk and bottomk place theirs at the aggregation itself.
            let _about = matches!(op, token::T_TOPK | token::T_BOTTOMK).then(|| self.ctx.anchor(a));
            self.finish_histogram_aggregation(h, &mut out)?;
        }
        let n = out.iter().map(|s| s.points.len() + s.hists.len()).sum();
        self.ctx.add_samples(n)?;
        Ok(Val::Vector(out))
    }

    /// sum/avg/count/min/max/group/stddev/stdvar folded series by series over a streamed
    /// input: memory is the groups' per-step state, not the input. `None` if not streamable.
    pub(super) fn stream_aggregate(
        &self,
        op: token::TokenId,
        grouping: &[String],
        without: bool,
        inner: &Expr,
    ) -> Result<Option<Vec<Series>>> {
        use crate::aggregation::{StepAcc, StreamAgg};
        let Some(kind) = StreamAgg::from_op(op) else {
            return Ok(None);
        };
        let steps = self.range.steps();
        // Groups by a hash of the grouping labels, compared on a hit: no key is built for
        // a series whose group exists.
        let mut groups: FxMap<u64, Vec<usize>> = FxMap::default();
        let mut accs: Vec<(Labels, Vec<StepAcc>)> = Vec::new();
        let range = self.range;
        let v3 = self.ctx.v3;
        let kept = |x: &Label| {
            if without {
                x.name != METRIC_NAME && !grouping.contains(&x.name)
            } else {
                grouping.contains(&x.name)
            }
        };
        // Histogram points are set aside and folded at the end (they are few next to the
        // floats, and their folding needs them all at once).
        let mut hists: Vec<Series> = Vec::new();
        let streamed = self.stream_series(inner, &mut |mut s| {
            if !s.hists.is_empty() {
                hists.push(Series {
                    labels: s.labels.clone(),
                    points: Vec::new(),
                    hists: std::mem::take(&mut s.hists),
                });
            }
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
                    let key = crate::aggregation::group_labels(&s.labels, grouping, without);
                    accs.push((key, vec![StepAcc::default(); steps]));
                    g
                }
            };
            let acc = &mut accs[g].1;
            for p in &s.points {
                acc[range.index_of(p.t)].add(kind, p.v, v3);
            }
            self.ctx.release_samples(s.points.len());
            Ok(())
        });
        if !streamed? {
            return Ok(None);
        }
        let mut out: Vec<Series> = accs
            .into_iter()
            .filter_map(|(labels, acc)| {
                let points: Vec<Point> = acc
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.count > 0)
                    .map(|(i, a)| Point {
                        t: range.ts(i),
                        v: a.value(kind, v3),
                    })
                    .collect();
                (!points.is_empty()).then_some(Series::floats(labels, points))
            })
            .collect();
        let name = TokenType::new(op).to_string();
        if let Some(h) = self.aggregate_histograms(op, name, None, grouping, without, &mut hists) {
            self.finish_histogram_aggregation(h, &mut out)?;
        }
        Ok(Some(out))
    }
}
