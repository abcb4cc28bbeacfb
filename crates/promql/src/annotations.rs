//! Warnings and infos a query returns beside its answer, as Prometheus 3.x words them
//! (`util/annotations`): each distinct message once, in the order first met, with the
//! position of the expression it is about, as the HTTP API shows them (`msg (line:col)`).

/// One annotation.
#[derive(Debug, Clone)]
pub(crate) struct Note {
    pub(crate) msg: String,
    /// Byte offset in the query of the expression the note is about, when known.
    pub(crate) pos: Option<usize>,
    /// What a forced-monotonicity info adds, merged over every step that raised it.
    pub(crate) forced: Option<ForcedMonotonicity>,
}

/// Where classic buckets had to be made monotonic, over all occurrences of one info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForcedMonotonicity {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) min_bucket: f64,
    pub(crate) max_bucket: f64,
    pub(crate) max_diff: f64,
    pub(crate) count: usize,
}

impl ForcedMonotonicity {
    /// One step's correction at `t`.
    pub(crate) fn at(t: i64, min_bucket: f64, max_bucket: f64, max_diff: f64) -> Self {
        ForcedMonotonicity {
            min_t: t,
            max_t: t,
            min_bucket,
            max_bucket,
            max_diff,
            count: 1,
        }
    }

    fn merge(&mut self, o: &ForcedMonotonicity) {
        self.min_t = self.min_t.min(o.min_t);
        self.max_t = self.max_t.max(o.max_t);
        // Go's comparisons: a NaN never replaces a value.
        if o.min_bucket < self.min_bucket {
            self.min_bucket = o.min_bucket;
        }
        if o.max_bucket > self.max_bucket {
            self.max_bucket = o.max_bucket;
        }
        if o.max_diff > self.max_diff {
            self.max_diff = o.max_diff;
        }
        self.count += o.count;
    }
}

/// The annotations of one query.
#[derive(Default, Debug)]
pub(crate) struct Notes {
    pub(crate) warnings: Vec<Note>,
    pub(crate) infos: Vec<Note>,
    /// The position notes added now are about (see [`Note::pos`]).
    pub(crate) anchor: Option<usize>,
}

impl Notes {
    pub(crate) fn warn(&mut self, msg: String) {
        let pos = self.anchor;
        add(&mut self.warnings, msg, pos, None);
    }

    pub(crate) fn info(&mut self, msg: String) {
        let pos = self.anchor;
        add(&mut self.infos, msg, pos, None);
    }

    /// The forced-monotonicity info, whose details merge over its occurrences (met per
    /// group and step: no message is built for a repeat).
    pub(crate) fn info_forced(&mut self, forced: ForcedMonotonicity) {
        let pos = self.anchor;
        match self.infos.iter_mut().find(|n| n.msg == FORCED_MONOTONICITY) {
            Some(n) => add_to(n, pos, Some(forced)),
            None => self.infos.push(Note {
                msg: FORCED_MONOTONICITY.to_string(),
                pos,
                forced: Some(forced),
            }),
        }
    }

    /// Warnings the storage returned (they have no position).
    pub(crate) fn storage_warnings(&mut self, msgs: Vec<String>) {
        for msg in msgs {
            add(&mut self.warnings, msg, None, None);
        }
    }

    /// Adds `other`'s notes, positioned where they say or else at this set's anchor.
    pub(crate) fn absorb(&mut self, other: Notes) {
        for (list, from) in [
            (&mut self.warnings, other.warnings),
            (&mut self.infos, other.infos),
        ] {
            for n in from {
                add(list, n.msg, n.pos.or(self.anchor), n.forced);
            }
        }
    }

    /// The warnings and infos as the HTTP API shows them, for `query`.
    pub(crate) fn render(self, query: &[u8]) -> (Vec<String>, Vec<String>) {
        let render = |list: Vec<Note>| list.into_iter().map(|n| n.render(query)).collect();
        (render(self.warnings), render(self.infos))
    }
}

/// Prometheus keeps one annotation per message: a repeated one takes the later position,
/// except the forced-monotonicity info, which keeps the first and merges its details.
fn add(list: &mut Vec<Note>, msg: String, pos: Option<usize>, forced: Option<ForcedMonotonicity>) {
    match list.iter_mut().find(|n| n.msg == msg) {
        Some(n) => add_to(n, pos, forced),
        None => list.push(Note { msg, pos, forced }),
    }
}

/// A repeat of `n`'s message: see [`add`].
fn add_to(n: &mut Note, pos: Option<usize>, forced: Option<ForcedMonotonicity>) {
    match (&mut n.forced, forced) {
        (Some(have), Some(new)) => have.merge(&new),
        _ => n.pos = pos.or(n.pos),
    }
}

impl Note {
    fn render(self, query: &[u8]) -> String {
        let mut out = self.msg;
        if let Some(f) = self.forced {
            out.push_str(&format!(
                ", from buckets {} to {}, with a max diff of {}, over {} samples from {} to {}",
                go_g(f.min_bucket),
                go_g(f.max_bucket),
                crate::value::format_go_prec_g(f.max_diff, 2),
                f.count,
                rfc3339_seconds(f.min_t),
                rfc3339_seconds(f.max_t),
            ));
        }
        if let Some(pos) = self.pos {
            out.push_str(&format!(" ({})", crate::lex::line_col(query, pos)));
        }
        out
    }
}

/// Go's `time.Unix(ms/1000, 0).UTC().Format(time.RFC3339)`.
fn rfc3339_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp(ms / 1000, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// An annotation as Prometheus's test scripts compare it: without the position and the
/// merged details the HTTP API adds.
pub fn message_of(rendered: &str) -> &str {
    let mut s = rendered;
    if let Some(open) = s.rfind(" (") {
        let inner = &s[open + 2..];
        let is_pos = inner.strip_suffix(')').is_some_and(|lc| {
            lc.split_once(':').is_some_and(|(l, c)| {
                !l.is_empty()
                    && !c.is_empty()
                    && l.bytes().all(|b| b.is_ascii_digit())
                    && c.bytes().all(|b| b.is_ascii_digit())
            })
        });
        if is_pos {
            s = &s[..open];
        }
    }
    match s.find(", from buckets ") {
        Some(i) if s.starts_with(FORCED_MONOTONICITY) => &s[..i],
        _ => s,
    }
}

pub(crate) const FORCED_MONOTONICITY: &str = "PromQL info: input to histogram_quantile needed \
    to be fixed for monotonicity (see \
    https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)";

/// Go's `%g` of a float64, as the messages print values.
pub(crate) fn go_g(v: f64) -> String {
    crate::value::format_go_g(v)
}

pub(crate) fn invalid_quantile(q: f64) -> String {
    format!(
        "PromQL warning: quantile value should be between 0 and 1, got {}",
        go_g(q)
    )
}

pub(crate) fn invalid_ratio(r: f64, capped: f64) -> String {
    format!(
        "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
        go_g(r),
        go_g(capped)
    )
}

pub(crate) fn possible_non_counter(metric: &str) -> String {
    format!(
        "PromQL info: metric might not be a counter, name does not end in \
         _total/_sum/_count/_bucket: {metric:?}"
    )
}

pub(crate) const SORT_IN_RANGE_QUERY: &str = "PromQL warning: sort is ineffective for range \
    queries since results are always ordered by labels";

/// `for metric name "x"` is added only when there is a name.
fn with_metric_name(msg: String, metric: &str) -> String {
    if metric.is_empty() {
        msg
    } else {
        format!("{msg} for metric name {metric:?}")
    }
}

// The classic-histogram annotations name the metric only under delayed name removal, a
// Prometheus feature flag that is off by default (and not implemented here).

pub(crate) fn bad_bucket_label(le: &str) -> String {
    format!("PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?}")
}

pub(crate) const NATIVE_QUANTILE_NAN_RESULT: &str =
    "PromQL info: input to histogram_quantile has NaN observations, result is NaN";

pub(crate) const NATIVE_QUANTILE_NAN_SKEW: &str =
    "PromQL info: input to histogram_quantile has NaN observations, result is skewed higher";

pub(crate) const NATIVE_FRACTION_NANS: &str = "PromQL info: input to histogram_fraction has NaN \
    observations, which are excluded from all fractions";

pub(crate) fn histogram_ignored_in_aggregation(op: &str) -> String {
    format!("PromQL info: ignored histogram in {op} aggregation")
}

pub(crate) fn counter_reset_collision(operation: &str) -> String {
    format!("PromQL warning: conflicting counter resets during histogram {operation}")
}

pub(crate) fn mismatched_custom_buckets(operation: &str) -> String {
    format!("PromQL info: mismatched custom buckets were reconciled during {operation}")
}

pub(crate) fn mixed_exponential_custom(metric: &str) -> String {
    with_metric_name(
        "PromQL warning: vector contains a mix of histograms with exponential and custom \
         buckets schemas"
            .into(),
        metric,
    )
}

pub(crate) fn mixed_floats_histograms_aggregation() -> String {
    "PromQL warning: encountered a mix of histograms and floats for aggregation".into()
}

pub(crate) fn incompatible_types_in_binop(op: &str, lhs: &str, rhs: &str) -> String {
    format!(
        "PromQL info: incompatible sample types encountered for binary operator {op:?}: \
         {lhs} {op} {rhs}"
    )
}

pub(crate) fn mixed_floats_histograms(metric: &str) -> String {
    format!("PromQL warning: encountered a mix of histograms and floats for metric name {metric:?}")
}

pub(crate) fn histogram_ignored_in_mixed_range(metric: &str) -> String {
    format!(
        "PromQL info: ignored histograms in a range containing both floats and histograms \
         for metric name {metric:?}"
    )
}

pub(crate) fn native_histogram_not_counter(metric: &str) -> String {
    format!("PromQL warning: this native histogram metric is not a counter: {metric:?}")
}

pub(crate) fn native_histogram_not_gauge(metric: &str) -> String {
    format!("PromQL warning: this native histogram metric is not a gauge: {metric:?}")
}

pub(crate) fn incompatible_bucket_layout(op: &str) -> String {
    format!("PromQL warning: incompatible bucket layout encountered for binary operator {op}")
}

pub(crate) fn mixed_classic_native() -> String {
    "PromQL warning: vector contains a mix of classic and native histograms".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_render_with_positions_and_merged_details() {
        let q = b"histogram_quantile(0.9,\n  x)";
        let mut notes = Notes {
            anchor: Some(26),
            ..Notes::default()
        };
        notes.info_forced(ForcedMonotonicity::at(60_000, 2.0, 4.0, 0.5));
        notes.info_forced(ForcedMonotonicity::at(0, 1.0, 3.0, 0.25));
        notes.anchor = Some(0);
        notes.warn(invalid_quantile(1.5));
        notes.anchor = Some(19);
        notes.warn(invalid_quantile(1.5));
        notes.storage_warnings(vec!["store a is down".into()]);
        let (warnings, infos) = notes.render(q);
        assert_eq!(
            warnings,
            [
                "PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:20)",
                "store a is down"
            ]
        );
        assert_eq!(
            infos,
            [format!(
                "{FORCED_MONOTONICITY}, from buckets 1 to 4, with a max diff of 0.5, over 2 \
                 samples from 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z (2:3)"
            )]
        );
        assert_eq!(message_of(&infos[0]), FORCED_MONOTONICITY);
        assert_eq!(
            message_of(&warnings[0]),
            "PromQL warning: quantile value should be between 0 and 1, got 1.5"
        );
        assert_eq!(message_of("a (b) (1:x)"), "a (b) (1:x)");
    }

    #[test]
    fn values_print_as_go_g() {
        assert_eq!(
            invalid_quantile(1e6),
            "PromQL warning: quantile value should be between 0 and 1, got 1e+06"
        );
        assert_eq!(
            invalid_quantile(f64::NAN),
            "PromQL warning: quantile value should be between 0 and 1, got NaN"
        );
    }
}
