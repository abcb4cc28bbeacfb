//! What the engine and the querier know about each PromQL function, in one table: which
//! Prometheus has it, how the engine evaluates it, the aggregate of downsampled data it
//! reads, and what it does with native histogram samples. (Argument and return types are
//! the grammar parser's.)

use crate::functions::{DateFn, RangeFn, VectorFn};

/// How the engine evaluates a function.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Eval {
    /// Over a range vector, window by window.
    Range(RangeFn),
    /// Over instant vectors and scalars, step by step.
    Vector(VectorFn),
    /// A constant of the query (3.12's `start()`, `end()`, `range()`, `step()`).
    Query(QueryConstant),
    /// `info()`, which selects the info series itself.
    Info,
}

/// The query shape functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueryConstant {
    Start,
    End,
    Range,
    Step,
}

/// The aggregates of downsampled data a function reads, as Thanos chooses them
/// (`aggrsFromFunc`): the one it summarizes by, the counter for counter functions, and
/// count and sum (for the average) otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Downsampled {
    Min,
    Max,
    Count,
    Sum,
    Counter,
    CountAndSum,
}

/// What an instant-vector function does with native histogram samples (range functions
/// deal with them window by window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Histograms {
    /// Left out, as 3.x does.
    Ignore,
    /// Passed through (label functions, `absent`).
    Keep,
    /// `histogram_count` and the other statistics, a float per histogram.
    Count,
    Sum,
    Avg,
    Stddev,
    Stdvar,
    Quantile,
    Quantiles,
    Fraction,
    /// A range function.
    Range,
}

/// One function.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Function {
    pub(crate) name: &'static str,
    /// Prometheus 2.42 has it (the `v2` dialect).
    pub(crate) in_2_42: bool,
    /// Prometheus 3.x has it (the `v3` dialect; experimental ones only when enabled).
    pub(crate) in_3: bool,
    pub(crate) eval: Eval,
    pub(crate) downsampled: Downsampled,
    pub(crate) histograms: Histograms,
}

const fn f(
    name: &'static str,
    in_2_42: bool,
    in_3: bool,
    eval: Eval,
    downsampled: Downsampled,
    histograms: Histograms,
) -> Function {
    Function {
        name,
        in_2_42,
        in_3,
        eval,
        downsampled,
        histograms,
    }
}

fn radians(v: f64) -> f64 {
    v * std::f64::consts::PI / 180.0
}

fn degrees(v: f64) -> f64 {
    v * 180.0 / std::f64::consts::PI
}

/// Go's `math.Signbit`-based sign: -1, 0 (keeping the zero's sign), 1, NaN.
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

use Eval::*;

static FUNCTIONS: &[Function] = &[
    f(
        "rate",
        true,
        true,
        Range(RangeFn::Rate),
        Downsampled::Counter,
        Histograms::Range,
    ),
    f(
        "increase",
        true,
        true,
        Range(RangeFn::Increase),
        Downsampled::Counter,
        Histograms::Range,
    ),
    f(
        "delta",
        true,
        true,
        Range(RangeFn::Delta),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "irate",
        true,
        true,
        Range(RangeFn::Irate),
        Downsampled::Counter,
        Histograms::Range,
    ),
    f(
        "idelta",
        true,
        true,
        Range(RangeFn::Idelta),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "deriv",
        true,
        true,
        Range(RangeFn::Deriv),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "predict_linear",
        true,
        true,
        Range(RangeFn::PredictLinear),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "holt_winters",
        true,
        false,
        Range(RangeFn::HoltWinters),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "double_exponential_smoothing",
        false,
        true,
        Range(RangeFn::HoltWinters),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "resets",
        true,
        true,
        Range(RangeFn::Resets),
        Downsampled::Counter,
        Histograms::Range,
    ),
    f(
        "changes",
        true,
        true,
        Range(RangeFn::Changes),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "avg_over_time",
        true,
        true,
        Range(RangeFn::AvgOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "count_over_time",
        true,
        true,
        Range(RangeFn::CountOverTime),
        Downsampled::Count,
        Histograms::Range,
    ),
    f(
        "last_over_time",
        true,
        true,
        Range(RangeFn::LastOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "max_over_time",
        true,
        true,
        Range(RangeFn::MaxOverTime),
        Downsampled::Max,
        Histograms::Range,
    ),
    f(
        "min_over_time",
        true,
        true,
        Range(RangeFn::MinOverTime),
        Downsampled::Min,
        Histograms::Range,
    ),
    f(
        "sum_over_time",
        true,
        true,
        Range(RangeFn::SumOverTime),
        Downsampled::Sum,
        Histograms::Range,
    ),
    f(
        "quantile_over_time",
        true,
        true,
        Range(RangeFn::QuantileOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "stddev_over_time",
        true,
        true,
        Range(RangeFn::StddevOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "stdvar_over_time",
        true,
        true,
        Range(RangeFn::StdvarOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "present_over_time",
        true,
        true,
        Range(RangeFn::PresentOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "absent_over_time",
        true,
        true,
        Range(RangeFn::AbsentOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "first_over_time",
        false,
        true,
        Range(RangeFn::FirstOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "ts_of_first_over_time",
        false,
        true,
        Range(RangeFn::TsOfFirstOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "ts_of_last_over_time",
        false,
        true,
        Range(RangeFn::TsOfLastOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "ts_of_min_over_time",
        false,
        true,
        Range(RangeFn::TsOfMinOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "ts_of_max_over_time",
        false,
        true,
        Range(RangeFn::TsOfMaxOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "mad_over_time",
        false,
        true,
        Range(RangeFn::MadOverTime),
        Downsampled::CountAndSum,
        Histograms::Range,
    ),
    f(
        "abs",
        true,
        true,
        Vector(VectorFn::Math(f64::abs)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "ceil",
        true,
        true,
        Vector(VectorFn::Math(f64::ceil)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "floor",
        true,
        true,
        Vector(VectorFn::Math(f64::floor)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "exp",
        true,
        true,
        Vector(VectorFn::Math(f64::exp)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "sqrt",
        true,
        true,
        Vector(VectorFn::Math(f64::sqrt)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "ln",
        true,
        true,
        Vector(VectorFn::Math(f64::ln)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "log2",
        true,
        true,
        Vector(VectorFn::Math(f64::log2)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "log10",
        true,
        true,
        Vector(VectorFn::Math(f64::log10)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "sin",
        true,
        true,
        Vector(VectorFn::Math(f64::sin)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "cos",
        true,
        true,
        Vector(VectorFn::Math(f64::cos)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "tan",
        true,
        true,
        Vector(VectorFn::Math(f64::tan)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "asin",
        true,
        true,
        Vector(VectorFn::Math(f64::asin)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "acos",
        true,
        true,
        Vector(VectorFn::Math(f64::acos)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "atan",
        true,
        true,
        Vector(VectorFn::Math(f64::atan)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "sinh",
        true,
        true,
        Vector(VectorFn::Math(f64::sinh)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "cosh",
        true,
        true,
        Vector(VectorFn::Math(f64::cosh)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "tanh",
        true,
        true,
        Vector(VectorFn::Math(f64::tanh)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "asinh",
        true,
        true,
        Vector(VectorFn::Math(f64::asinh)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "acosh",
        true,
        true,
        Vector(VectorFn::Math(f64::acosh)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "atanh",
        true,
        true,
        Vector(VectorFn::Math(f64::atanh)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "rad",
        true,
        true,
        Vector(VectorFn::Math(radians)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "deg",
        true,
        true,
        Vector(VectorFn::Math(degrees)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "sgn",
        true,
        true,
        Vector(VectorFn::Math(sgn)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "timestamp",
        true,
        true,
        Vector(VectorFn::Timestamp),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "clamp",
        true,
        true,
        Vector(VectorFn::Clamp),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "clamp_min",
        true,
        true,
        Vector(VectorFn::ClampMin),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "clamp_max",
        true,
        true,
        Vector(VectorFn::ClampMax),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "round",
        true,
        true,
        Vector(VectorFn::Round),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "scalar",
        true,
        true,
        Vector(VectorFn::Scalar),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "vector",
        true,
        true,
        Vector(VectorFn::Vector),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "time",
        true,
        true,
        Vector(VectorFn::Time),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "pi",
        true,
        true,
        Vector(VectorFn::Pi),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "absent",
        true,
        true,
        Vector(VectorFn::Absent),
        Downsampled::CountAndSum,
        Histograms::Keep,
    ),
    f(
        "label_replace",
        true,
        true,
        Vector(VectorFn::LabelReplace),
        Downsampled::CountAndSum,
        Histograms::Keep,
    ),
    f(
        "label_join",
        true,
        true,
        Vector(VectorFn::LabelJoin),
        Downsampled::CountAndSum,
        Histograms::Keep,
    ),
    f(
        "sort",
        true,
        true,
        Vector(VectorFn::Sort),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "sort_desc",
        true,
        true,
        Vector(VectorFn::SortDesc),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "sort_by_label",
        false,
        true,
        Vector(VectorFn::SortByLabel { desc: false }),
        Downsampled::CountAndSum,
        Histograms::Keep,
    ),
    f(
        "sort_by_label_desc",
        false,
        true,
        Vector(VectorFn::SortByLabel { desc: true }),
        Downsampled::CountAndSum,
        Histograms::Keep,
    ),
    f(
        "min_of",
        false,
        true,
        Vector(VectorFn::ScalarExtreme { max: false }),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "max_of",
        false,
        true,
        Vector(VectorFn::ScalarExtreme { max: true }),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "histogram_quantile",
        true,
        true,
        Vector(VectorFn::HistogramQuantile),
        Downsampled::CountAndSum,
        Histograms::Quantile,
    ),
    f(
        "histogram_quantiles",
        false,
        true,
        Vector(VectorFn::HistogramQuantiles),
        Downsampled::CountAndSum,
        Histograms::Quantiles,
    ),
    f(
        "histogram_fraction",
        true,
        true,
        Vector(VectorFn::HistogramFraction),
        Downsampled::CountAndSum,
        Histograms::Fraction,
    ),
    f(
        "histogram_count",
        true,
        true,
        Vector(VectorFn::NativeHistogramOnly),
        Downsampled::CountAndSum,
        Histograms::Count,
    ),
    f(
        "histogram_sum",
        true,
        true,
        Vector(VectorFn::NativeHistogramOnly),
        Downsampled::CountAndSum,
        Histograms::Sum,
    ),
    f(
        "histogram_avg",
        false,
        true,
        Vector(VectorFn::NativeHistogramOnly),
        Downsampled::CountAndSum,
        Histograms::Avg,
    ),
    f(
        "histogram_stddev",
        false,
        true,
        Vector(VectorFn::NativeHistogramOnly),
        Downsampled::CountAndSum,
        Histograms::Stddev,
    ),
    f(
        "histogram_stdvar",
        false,
        true,
        Vector(VectorFn::NativeHistogramOnly),
        Downsampled::CountAndSum,
        Histograms::Stdvar,
    ),
    f(
        "days_in_month",
        true,
        true,
        Vector(VectorFn::Date(DateFn::DaysInMonth)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "day_of_month",
        true,
        true,
        Vector(VectorFn::Date(DateFn::DayOfMonth)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "day_of_week",
        true,
        true,
        Vector(VectorFn::Date(DateFn::DayOfWeek)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "day_of_year",
        true,
        true,
        Vector(VectorFn::Date(DateFn::DayOfYear)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "hour",
        true,
        true,
        Vector(VectorFn::Date(DateFn::Hour)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "minute",
        true,
        true,
        Vector(VectorFn::Date(DateFn::Minute)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "month",
        true,
        true,
        Vector(VectorFn::Date(DateFn::Month)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "year",
        true,
        true,
        Vector(VectorFn::Date(DateFn::Year)),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "start",
        false,
        true,
        Query(QueryConstant::Start),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "end",
        false,
        true,
        Query(QueryConstant::End),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "range",
        false,
        true,
        Query(QueryConstant::Range),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "step",
        false,
        true,
        Query(QueryConstant::Step),
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
    f(
        "info",
        false,
        true,
        Info,
        Downsampled::CountAndSum,
        Histograms::Ignore,
    ),
];

/// The function called `name`, if the engine has it.
pub(crate) fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// The downsampled aggregates a selector under `func` reads (Thanos's choice; count and
/// sum outside a function).
pub fn downsampled_aggregate(func: Option<&str>) -> Downsampled {
    func.and_then(lookup)
        .map_or(Downsampled::CountAndSum, |f| f.downsampled)
}

/// Whether `func` reads its range as a counter (Thanos corrects deduplicated replicas
/// for these).
pub fn reads_counter(func: Option<&str>) -> bool {
    downsampled_aggregate(func) == Downsampled::Counter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampled_aggregates_follow_thanos_naming() {
        // Thanos picks by name: min*/max*/count*/sum_* and the counter functions.
        for f in FUNCTIONS {
            let n = f.name;
            let is = |p: &str| n == p || n.strip_prefix(p).is_some_and(|r| r.starts_with('_'));
            let thanos = if is("min") {
                Downsampled::Min
            } else if is("max") {
                Downsampled::Max
            } else if is("count") {
                Downsampled::Count
            } else if n.starts_with("sum_") {
                Downsampled::Sum
            } else if matches!(n, "rate" | "increase" | "irate" | "resets") {
                Downsampled::Counter
            } else {
                Downsampled::CountAndSum
            };
            let ours = match f.eval {
                // Only range functions put a hint on their selector.
                Range(_) => f.downsampled,
                _ => thanos,
            };
            assert_eq!(ours, thanos, "{n}");
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert!(
                FUNCTIONS[i + 1..].iter().all(|g| g.name != f.name),
                "{}",
                f.name
            );
        }
    }
}
