//! Warnings and infos a query returns beside its answer, as Prometheus 3.x words them
//! (`util/annotations`): each distinct message once, in the order first met.

/// The annotations of one query.
#[derive(Default, Debug)]
pub(crate) struct Notes {
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
}

impl Notes {
    pub(crate) fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub(crate) fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }
}

/// Go's `%g` of a float64, as the messages print values.
pub(crate) fn go_g(v: f64) -> String {
    crate::value::format_go_v(v)
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

pub(crate) fn bad_bucket_label(metric: &str, le: &str) -> String {
    with_metric_name(
        format!(
            "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?}"
        ),
        metric,
    )
}

pub(crate) fn forced_monotonicity(metric: &str) -> String {
    with_metric_name(
        "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see \
         https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)"
            .to_string(),
        metric,
    )
}

pub(crate) fn native_histogram_quantile_nan_result(metric: &str) -> String {
    with_metric_name(
        "PromQL info: input to histogram_quantile has NaN observations, result is NaN".into(),
        metric,
    )
}

pub(crate) fn native_histogram_quantile_nan_skew(metric: &str) -> String {
    with_metric_name(
        "PromQL info: input to histogram_quantile has NaN observations, result is skewed higher"
            .into(),
        metric,
    )
}

pub(crate) fn native_histogram_fraction_nans(metric: &str) -> String {
    with_metric_name(
        "PromQL info: input to histogram_fraction has NaN observations, which are excluded \
         from all fractions"
            .into(),
        metric,
    )
}

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

pub(crate) fn mixed_classic_native(metric: &str) -> String {
    with_metric_name(
        "PromQL warning: vector contains a mix of classic and native histograms".into(),
        metric,
    )
}
