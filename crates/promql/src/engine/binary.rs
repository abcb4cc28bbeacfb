//! Binary operators: scalar/scalar, vector/scalar and vector/vector with label matching
//! and set operators.

use super::*;

impl<'a> Evaluator<'a, '_> {
    pub(super) fn binary(&self, b: &BinaryExpr) -> Result<Val> {
        let _about = self.ctx.anchor(b);
        // Trims need the buckets: no statistics-only reading below them.
        let trim = trim_operator(b).is_some();
        let outer = self.ctx.histogram_stats.get();
        if trim {
            self.ctx.histogram_stats.set(false);
        }
        let sides = self.eval(&b.lhs).and_then(|l| Ok((l, self.eval(&b.rhs)?)));
        self.ctx.histogram_stats.set(outer);
        let (lhs, rhs) = sides?;
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let used = lhs.points() + rhs.points();
        if let Some((upper, b)) = trim_operator(b) {
            let b = &b;
            if return_bool {
                return Err(Error::Parse(
                    "bool modifier can only be used on comparison operators".into(),
                ));
            }
            let out = match (lhs, rhs) {
                (Val::Vector(l), Val::Scalar(r)) => Val::Vector(self.vector_trim(l, &r, upper)),
                (Val::Scalar(_), Val::Vector(r)) => {
                    let text = trim_text(upper);
                    if r.iter().any(|s| !s.points.is_empty()) {
                        self.ctx.info(annotations::incompatible_types_in_binop(
                            text, "float", "float",
                        ));
                    }
                    if r.iter().any(|s| !s.hists.is_empty()) {
                        self.ctx.info(annotations::incompatible_types_in_binop(
                            text,
                            "float",
                            "histogram",
                        ));
                    }
                    Val::Vector(Vec::new())
                }
                (Val::Vector(l), Val::Vector(r)) => {
                    let boxes = HistBoxes {
                        trim: Some(upper),
                        ..HistBoxes::default()
                    };
                    let l = boxes.pack(l)?;
                    let r = boxes.pack(r)?;
                    let out = self.vector_vector_matched(b, l, r, Some(&boxes))?;
                    Val::Vector(boxes.unpack(out))
                }
                _ => {
                    return Err(Error::exec(format!(
                        "operator {:?} not allowed for Scalar operations",
                        trim_text(upper)
                    )))
                }
            };
            self.ctx.release_samples(used);
            self.ctx.add_samples(out.points())?;
            return Ok(out);
        }
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

    pub(super) fn vector_scalar(
        &self,
        op: token::TokenId,
        series: Vec<Series>,
        scalar: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Result<Vec<Series>> {
        let comparison = is_comparison(op);
        let drop_name = drops_metric_name(op, self.ctx.v3) || return_bool;
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
                let (value, keep) =
                    vector_scalar_elem(op, v, scalar[step], swap, comparison, return_bool);
                if keep {
                    out.push(slot, step, ts, value)?;
                }
            }
        }
        let mut result = out.finish();
        if series.iter().any(|s| !s.hists.is_empty()) {
            self.vector_scalar_histograms(op, series, scalar, swap, drop_name, &mut result)?;
        }
        Ok(result)
    }

    /// The native histogram points of a vector/scalar operation (see
    /// [`Self::scale_histograms`]), merged into the float output `out`.
    fn vector_scalar_histograms(
        &self,
        op: token::TokenId,
        series: Vec<Series>,
        scalar: &[f64],
        swap: bool,
        drop_name: bool,
        out: &mut Vec<Series>,
    ) -> Result<()> {
        let mut index: FxMap<Labels, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for s in series {
            if s.hists.is_empty() {
                continue;
            }
            let Some(hists) =
                self.scale_histograms(op, s.hists, swap, |t| scalar[self.range.index_of(t)])
            else {
                continue;
            };
            let mut labels = s.labels;
            if drop_name {
                labels.remove(METRIC_NAME);
            }
            match index.get(&labels) {
                Some(&i) => {
                    let o = &mut out[i];
                    let clash = hists.iter().any(|h| {
                        o.points.binary_search_by_key(&h.t, |p| p.t).is_ok()
                            || o.hists.binary_search_by_key(&h.t, |p| p.t).is_ok()
                    });
                    if clash {
                        return Err(Error::exec(
                            "vector cannot contain metrics with the same labelset",
                        ));
                    }
                    o.hists.extend(hists);
                    o.hists.sort_by_key(|p| p.t);
                }
                None => {
                    index.insert(labels.clone(), out.len());
                    out.push(Series {
                        labels,
                        points: Vec::new(),
                        hists,
                    });
                }
            }
        }
        Ok(())
    }

    /// One series' histogram points under a vector/scalar operation (`scalar_at` gives the
    /// number at a time): `*` scales them, a histogram `/` a number divides them; other
    /// operators drop them (`None`) with 3.x's info.
    pub(super) fn scale_histograms(
        &self,
        op: token::TokenId,
        hists: Vec<HPoint>,
        swap: bool,
        scalar_at: impl Fn(i64) -> f64,
    ) -> Option<Vec<HPoint>> {
        let scales = op == token::T_MUL || (op == token::T_DIV && !swap);
        if !scales {
            let op_text = token::TokenType::new(op).to_string();
            let (l, r) = if swap {
                ("float", "histogram")
            } else {
                ("histogram", "float")
            };
            self.ctx
                .info(annotations::incompatible_types_in_binop(&op_text, l, r));
            return None;
        }
        let scaled = hists
            .into_iter()
            .map(|p| {
                let k = scalar_at(p.t);
                let mut h = Arc::unwrap_or_clone(p.h);
                if op == token::T_MUL {
                    tsdb::histogram::mul(&mut h, k);
                } else {
                    tsdb::histogram::div(&mut h, k);
                }
                tsdb::histogram::compact_buckets(&mut h);
                HPoint {
                    t: p.t,
                    h: Arc::new(h),
                }
            })
            .collect();
        Some(scaled)
    }

    /// `v </ s` or `v >/ s`: histograms trimmed, floats dropped with 3.x's info.
    fn vector_trim(&self, series: Vec<Series>, scalar: &[f64], upper: bool) -> Vec<Series> {
        let text = trim_text(upper);
        if series.iter().any(|s| !s.points.is_empty()) {
            self.ctx.info(annotations::incompatible_types_in_binop(
                text, "float", "float",
            ));
        }
        let mut out = Vec::new();
        for s in series {
            if s.hists.is_empty() {
                continue;
            }
            let hists = s
                .hists
                .into_iter()
                .map(|p| {
                    let mut h = Arc::unwrap_or_clone(p.h);
                    tsdb::histogram::trim_buckets(&mut h, scalar[self.range.index_of(p.t)], upper);
                    HPoint {
                        t: p.t,
                        h: Arc::new(h),
                    }
                })
                .collect();
            out.push(Series {
                labels: s.labels,
                points: Vec::new(),
                hists,
            });
        }
        out
    }

    pub(super) fn vector_vector(
        &self,
        b: &BinaryExpr,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
    ) -> Result<Vec<Series>> {
        if lhs.iter().chain(&rhs).all(|s| s.hists.is_empty()) {
            return self.vector_vector_matched(b, lhs, rhs, None);
        }
        let boxes = HistBoxes::default();
        let lhs = boxes.pack(lhs)?;
        let rhs = boxes.pack(rhs)?;
        let out = self.vector_vector_matched(b, lhs, rhs, Some(&boxes))?;
        Ok(boxes.unpack(out))
    }

    /// Vector/vector matching over float points; histogram points, when there are any,
    /// travel through it boxed (see [`HistBoxes`]).
    fn vector_vector_matched(
        &self,
        b: &BinaryExpr,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
        boxes: Option<&HistBoxes>,
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
        // The step each signature last took part in an operation (for `fill_left`).
        let mut touched_step: Vec<usize> = vec![usize::MAX; nsigs];
        let mut inserted: FxMap<(u32, usize), usize> = FxMap::default(); // (sig, out slot) -> step
        let mut result_slots: FxMap<(u32, u32), usize> = FxMap::default();
        // 3.x's fill modifiers, as its engine applies them: after a group_right swap the
        // right fill still completes the side iterated second.
        let fill = modifier.fill_values;
        let filled = fill.lhs.is_some() || fill.rhs.is_some();
        const FILLED: u32 = u32::MAX;
        let mut pairs: Vec<MatchedPair> = Vec::new();
        for step in 0..steps {
            self.ctx.check_every(step)?;
            let ts = self.range.ts(step);
            gather(lcur, ls, ts, &mut lvec);
            gather(rcur, rs, ts, &mut rvec);
            if (lvec.is_empty() || rvec.is_empty()) && !filled || lvec.is_empty() && rvec.is_empty()
            {
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
            for phase in 0..2 {
                pairs.clear();
                if phase == 0 {
                    for &(i, lv) in &lvec {
                        let sig = lsig[i] as usize;
                        if right_at[sig].0 == step {
                            let j = right_at[sig].1;
                            let rv = rvals.get(&j).copied().unwrap_or(f64::NAN);
                            pairs.push((Some(i), Some(j), lv, rv, sig));
                        } else if let Some(f) = fill.rhs {
                            pairs.push((Some(i), None, lv, f, sig));
                        }
                    }
                } else if let Some(f) = fill.lhs {
                    for &(j, rv) in &rvec {
                        let sig = rsig[j] as usize;
                        if touched_step[sig] != step {
                            pairs.push((None, Some(j), f, rv, sig));
                        }
                    }
                }
                for &(i, j, lv, rv, sig) in &pairs {
                    touched_step[sig] = step;
                    let (vl, vr) = if one_to_many { (rv, lv) } else { (lv, rv) };
                    let (mut value, keep) = match boxes {
                        Some(bx)
                            if bx.trim.is_some()
                                || HistBoxes::is_box(vl)
                                || HistBoxes::is_box(vr) =>
                        {
                            // Pairs of kinds an operator cannot combine give no element.
                            match bx.combine(op, vl, vr, self.ctx) {
                                Some(r) => r,
                                None => continue,
                            }
                        }
                        _ => vector_elem_binop(op, vl, vr),
                    };
                    // 3.x checks the matching before a comparison filters the pair out.
                    let filtered = !keep && !return_bool;
                    if return_bool {
                        value = if keep { 1.0 } else { 0.0 };
                    } else if filtered && !self.ctx.v3 {
                        continue;
                    }
                    let key = (
                        i.map_or(FILLED, |i| i as u32),
                        j.map_or(FILLED, |j| j as u32),
                    );
                    let slot = match result_slots.get(&key) {
                        Some(&s) => s,
                        None => {
                            // A filled side's labels are the present side's matching
                            // labels (a pair has at least one side present).
                            let filled;
                            let (l_labels, r_labels) = match (i, j) {
                                (Some(i), Some(j)) => (&ls[i].labels, &rs[j].labels),
                                (Some(i), None) => {
                                    filled = match_labels(&ls[i].labels, on, &matching);
                                    (&ls[i].labels, &filled)
                                }
                                (None, Some(j)) => {
                                    filled = match_labels(&rs[j].labels, on, &matching);
                                    (&filled, &rs[j].labels)
                                }
                                (None, None) => continue,
                            };
                            let mut m = result_metric(
                                l_labels,
                                r_labels,
                                drops_metric_name(op, self.ctx.v3),
                                one_to_one,
                                on,
                                &matching,
                                &include,
                            );
                            if return_bool {
                                m.remove(METRIC_NAME);
                            }
                            let s = out.slot(m);
                            result_slots.insert(key, s);
                            s
                        }
                    };
                    if one_to_one {
                        if matched_step[sig] == step {
                            return Err(Error::exec(
                                "multiple matches for labels: many-to-one matching must be \
                                 explicit (group_left/group_right)",
                            ));
                        }
                        matched_step[sig] = step;
                    } else {
                        let key = (sig as u32, slot);
                        if inserted.get(&key) == Some(&step) {
                            return Err(Error::exec(
                                "multiple matches for labels: grouping labels must ensure \
                                 unique matches",
                            ));
                        }
                        inserted.insert(key, step);
                    }
                    if filtered {
                        continue;
                    }
                    out.push(slot, step, ts, value)?;
                }
            }
        }
        Ok(out.finish())
    }
}

/// One operation of a vector/vector step: the many-side series, the one-side series (`None`
/// for a side filled in), their values, and the signature they match on.
type MatchedPair = (Option<usize>, Option<usize>, f64, f64, usize);

/// Native histogram points carried through vector/vector matching as floats: each is a
/// quiet NaN whose low 32 bits index a table, so the matching (signatures, cardinality,
/// set operators, duplicate checks) is the one floats use. A float whose bits look like
/// a box (a NaN with this exact payload tag) is refused rather than misread.
#[derive(Default)]
pub(super) struct HistBoxes {
    table: RefCell<Vec<Arc<tsdb::histogram::Histogram>>>,
    /// The operator is a trim (`</` when true, `>/` when false), not the comparison the
    /// parser saw.
    trim: Option<bool>,
}

impl HistBoxes {
    const TAG: u64 = 0x7ffc_4e48_0000_0000;
    const TAG_MASK: u64 = 0xffff_ffff_0000_0000;

    fn is_box(v: f64) -> bool {
        v.to_bits() & Self::TAG_MASK == Self::TAG
    }

    fn boxed(&self, h: Arc<tsdb::histogram::Histogram>) -> f64 {
        let mut t = self.table.borrow_mut();
        t.push(h);
        f64::from_bits(Self::TAG | (t.len() - 1) as u64)
    }

    fn get(&self, v: f64) -> Option<Arc<tsdb::histogram::Histogram>> {
        let idx = (v.to_bits() & !Self::TAG_MASK) as usize;
        self.table.borrow().get(idx).cloned()
    }

    /// Moves each series' histogram points into its float points, boxed.
    pub(super) fn pack(&self, series: Vec<Series>) -> Result<Vec<Series>> {
        let mut out = Vec::with_capacity(series.len());
        for mut s in series {
            if s.points.iter().any(|p| Self::is_box(p.v)) {
                return Err(Error::exec(
                    "a float sample's NaN payload collides with the engine's histogram marker",
                ));
            }
            if !s.hists.is_empty() {
                for p in std::mem::take(&mut s.hists) {
                    let v = self.boxed(p.h);
                    s.points.push(Point { t: p.t, v });
                }
                s.points.sort_by_key(|p| p.t);
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Moves boxed points back out into histogram points.
    pub(super) fn unpack(&self, mut series: Vec<Series>) -> Vec<Series> {
        for s in &mut series {
            if !s.points.iter().any(|p| Self::is_box(p.v)) {
                continue;
            }
            let mut floats = Vec::with_capacity(s.points.len());
            for p in std::mem::take(&mut s.points) {
                match Self::is_box(p.v).then(|| self.get(p.v)).flatten() {
                    Some(h) => s.hists.push(HPoint { t: p.t, h }),
                    None => floats.push(p),
                }
            }
            s.points = floats;
        }
        series.retain(|s| !s.is_empty());
        series
    }

    /// `l op r` where at least one side is a boxed histogram, as 3.x's `vectorElemBinop`:
    /// the value (a box for a histogram result) and whether the pair is kept; `None` when
    /// the operator cannot combine them (an annotation says why).
    fn combine(&self, op: token::TokenId, l: f64, r: f64, ctx: &Ctx<'_>) -> Option<(f64, bool)> {
        use tsdb::histogram as th;
        let lh = Self::is_box(l).then(|| self.get(l)).flatten();
        let rh = Self::is_box(r).then(|| self.get(r)).flatten();
        let op_text = match self.trim {
            Some(upper) => trim_text(upper).to_string(),
            None => TokenType::new(op).to_string(),
        };
        let incompatible = |lt: &str, rt: &str| {
            ctx.info(annotations::incompatible_types_in_binop(&op_text, lt, rt));
            None
        };
        if let Some(upper) = self.trim {
            return match (lh, rh) {
                (Some(h), None) => {
                    let mut h = (*h).clone();
                    th::trim_buckets(&mut h, r, upper);
                    Some((self.boxed(Arc::new(h)), true))
                }
                (None, None) => incompatible("float", "float"),
                (None, Some(_)) => incompatible("float", "histogram"),
                (Some(_), Some(_)) => incompatible("histogram", "histogram"),
            };
        }
        match (lh, rh) {
            (None, Some(h)) => match op {
                token::T_MUL => {
                    let mut h = (*h).clone();
                    th::mul(&mut h, l);
                    th::compact_buckets(&mut h);
                    Some((self.boxed(Arc::new(h)), true))
                }
                _ => incompatible("float", "histogram"),
            },
            (Some(h), None) => match op {
                token::T_MUL | token::T_DIV => {
                    let mut h = (*h).clone();
                    if op == token::T_MUL {
                        th::mul(&mut h, r);
                    } else {
                        th::div(&mut h, r);
                    }
                    th::compact_buckets(&mut h);
                    Some((self.boxed(Arc::new(h)), true))
                }
                _ => incompatible("histogram", "float"),
            },
            (Some(a), Some(b)) => match op {
                token::T_ADD | token::T_SUB => {
                    let mut h = (*a).clone();
                    let (res, operation) = if op == token::T_ADD {
                        (th::try_add(&mut h, &b), "addition")
                    } else {
                        (th::try_sub(&mut h, &b), "subtraction")
                    };
                    match res {
                        Err(_) => {
                            ctx.warn(annotations::incompatible_bucket_layout(&op_text));
                            return None;
                        }
                        Ok(c) => {
                            if c.counter_reset_collision {
                                ctx.warn(annotations::counter_reset_collision(operation));
                            }
                            if c.custom_bounds_reconciled {
                                ctx.info(annotations::mismatched_custom_buckets(operation));
                            }
                        }
                    }
                    if op == token::T_SUB {
                        h.counter_reset_hint = th::CounterResetHint::Gauge;
                    }
                    th::compact_buckets(&mut h);
                    Some((self.boxed(Arc::new(h)), true))
                }
                token::T_EQLC => Some((l, th::equals(&a, &b))),
                token::T_NEQ => Some((l, !th::equals(&a, &b))),
                _ => incompatible("histogram", "histogram"),
            },
            (None, None) => Some(vector_elem_binop(op, l, r)),
        }
    }
}

/// Whether a comparison is a histogram trim operator written for the parser (see
/// `lex::trim_rewrites`): `</` (true) or `>/` (false), with the expression as the query
/// had it (the marker gone from the group labels, a group the rewrite added gone).
pub(super) fn trim_operator(b: &BinaryExpr) -> Option<(bool, BinaryExpr)> {
    use crate::lex::{
        TRIM_LOWER_GROUPED_MARK, TRIM_LOWER_MARK, TRIM_UPPER_GROUPED_MARK, TRIM_UPPER_MARK,
    };
    let op = b.op.id();
    let (mark, grouped_mark) = match op {
        token::T_LSS => (TRIM_UPPER_MARK, TRIM_UPPER_GROUPED_MARK),
        token::T_GTR => (TRIM_LOWER_MARK, TRIM_LOWER_GROUPED_MARK),
        _ => return None,
    };
    let modifier = b.modifier.as_ref()?;
    let include = match &modifier.card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => l,
        _ => return None,
    };
    let mut restored = b.clone();
    let m = restored.modifier.as_mut()?;
    if include.labels.iter().any(|l| l == mark) {
        m.card = VectorMatchCardinality::OneToOne;
    } else if include.labels.iter().any(|l| l == grouped_mark) {
        if let VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) =
            &mut m.card
        {
            l.labels.retain(|x| x != grouped_mark);
        }
    } else {
        return None;
    }
    Some((op == token::T_LSS, restored))
}

fn trim_text(upper: bool) -> &'static str {
    if upper {
        "</"
    } else {
        ">/"
    }
}

/// `v op s` (or `s op v` when `swap`) for one vector element: the value and whether the
/// element stays (comparisons filter unless `bool`; a swapped comparison keeps the vector's
/// value).
pub(super) fn vector_scalar_elem(
    op: token::TokenId,
    v: f64,
    s: f64,
    swap: bool,
    comparison: bool,
    return_bool: bool,
) -> (f64, bool) {
    let (lv, rv) = if swap { (s, v) } else { (v, s) };
    let (mut value, mut keep) = vector_elem_binop(op, lv, rv);
    if comparison && swap {
        value = rv;
    }
    if return_bool {
        value = if keep { 1.0 } else { 0.0 };
        keep = true;
    }
    (value, keep)
}

pub(super) fn gather(
    cur: &mut StepCursor,
    series: &[Series],
    ts: i64,
    out: &mut Vec<(usize, f64)>,
) {
    out.clear();
    for i in 0..series.len() {
        if let Some(v) = cur.at(series, i, ts) {
            out.push((i, v));
        }
    }
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

pub(super) fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    drop_name: bool,
    one_to_one: bool,
    on: bool,
    matching: &[String],
    include: &[String],
) -> Labels {
    let mut l = lhs.clone();
    if drop_name {
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

/// Whether an operator's result loses the metric name (3.x adds `atan2`).
pub(super) fn drops_metric_name(op: token::TokenId, v3: bool) -> bool {
    matches!(
        op,
        token::T_ADD | token::T_SUB | token::T_DIV | token::T_MUL | token::T_POW | token::T_MOD
    ) || (v3 && op == token::T_ATAN2)
}

pub(super) fn btof(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

pub(super) fn scalar_binop(op: token::TokenId, l: f64, r: f64) -> f64 {
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
pub(super) fn go_mod(l: f64, r: f64) -> f64 {
    l % r
}

pub(super) fn vector_elem_binop(op: token::TokenId, l: f64, r: f64) -> (f64, bool) {
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
