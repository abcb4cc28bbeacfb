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
