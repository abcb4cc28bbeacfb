//! Query results: scalars, strings, instant vectors and range vectors (matrices).

use std::sync::Arc;
use tsdb::histogram::Histogram;
use tsdb::labels::Labels;

/// One point of a series (time in ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// One native histogram point of a series (time in ms). Shared: an instant selector
/// repeats one sample at every step it sees.
#[derive(Clone, Debug, PartialEq)]
pub struct HPoint {
    pub t: i64,
    pub h: Arc<Histogram>,
}

/// An instant-vector element: a float, or a native histogram when `h` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    pub h: Option<Arc<Histogram>>,
}

/// A range-vector element: float points and native histogram points, each in time
/// order (one series has at most one of the two at a time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
    pub hists: Vec<HPoint>,
}

impl Series {
    /// A series of float points.
    pub fn floats(labels: Labels, points: Vec<Point>) -> Self {
        Series {
            labels,
            points,
            hists: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.hists.is_empty()
    }

    /// The times of its float points, then of its histogram points.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        let floats = self.points.iter().map(|p| p.t);
        floats.chain(self.hists.iter().map(|p| p.t))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, s: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus's name of the value type (`resultType` in the HTTP API).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query's answer with its annotations: warnings (the storage's and the engine's) and
/// infos, as Prometheus's API returns them.
#[derive(Clone, Debug)]
pub struct QueryResult {
    pub value: Value,
    /// The storage's warnings, then the engine's (3.x only), each ending with the
    /// `(line:col)` of the expression it is about; [`crate::message_of`] strips that.
    pub warnings: Vec<String>,
    /// The engine's infos (3.x only), positioned as the warnings are.
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// Results are equal when their values and warnings are: statistics are not the answer.
impl PartialEq for QueryResult {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.warnings == other.warnings && self.infos == other.infos
    }
}

/// What evaluating a query took, as Prometheus reports it with the API's `stats` parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Samples read, each counted once per step that uses it: an instant selector counts
    /// one per series and step, a range selector under a function the samples of each
    /// window (Prometheus's `totalQueryableSamples`).
    pub total_samples: u64,
    /// Most samples held at once during the evaluation.
    pub peak_samples: usize,
    /// The whole evaluation, from the parsed expression to the sorted result.
    pub eval_total: std::time::Duration,
    /// Evaluating the expression tree (selection included: series are read lazily).
    pub inner_eval: std::time::Duration,
    /// Sorting the result.
    pub result_sort: std::time::Duration,
}

/// Formats a float the way Prometheus's JSON API does (Go's `strconv.FormatFloat(v, 'f', -1, 64)`
/// is what the API uses; special values are `NaN`, `+Inf`, `-Inf`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip formatting equals Go's 'f' with precision -1.
        let s = format!("{v}");
        if s == "-0" {
            "-0".into()
        } else {
            s
        }
    }
}

/// Formats a float like Go's `%v` (used in error messages): shortest digits, exponent form
/// below 1e-4 and from 1e21 (`1e+100`, `1.5e-07`).
pub fn format_go_v(v: f64) -> String {
    format_go_shortest(v, 21)
}

/// Formats a float like Go's `%g`: shortest digits, exponent form below 1e-4 and from 1e6
/// (`1e+06`).
pub fn format_go_g(v: f64) -> String {
    format_go_shortest(v, 6)
}

/// Formats a float like Go's `%.<prec>g`: `prec` significant digits, trailing zeros
/// dropped, the exponent form below 1e-4 and from 10^`prec`.
pub fn format_go_prec_g(v: f64, prec: usize) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_value(v);
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let prec = prec.max(1);
    let e = format!("{:.*e}", prec - 1, v.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = prec as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let decimals = (nd - dp).max(0) as usize;
    format!("{sign}{:.*}", decimals, v.abs())
}

/// Go's shortest `%g`-style formatting with the exponent form from 10^`max_exp`.
fn format_go_shortest(v: f64, max_exp: i32) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_value(v);
    }
    let abs = v.abs();
    let exp = if abs == 0.0 {
        0
    } else {
        format!("{abs:e}")
            .split_once('e')
            .and_then(|(_, e)| e.parse::<i32>().ok())
            .unwrap_or(0)
    };
    if abs != 0.0 && (exp < -4 || exp >= max_exp) {
        let e = format!("{v:e}");
        if let Some((mantissa, exp)) = e.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return format!("{mantissa}e{sign}{digits:0>2}");
        }
    }
    format_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_g_formats_as_go() {
        for (v, go) in [
            (0.5, "0.5"),
            (5.0, "5"),
            (12.0, "12"),
            (1.5, "1.5"),
            (0.123, "0.12"),
            (123.0, "1.2e+02"),
            (99.5, "1e+02"),
            (100.0, "1e+02"),
            (1e-5, "1e-05"),
            (0.0, "0"),
            (-0.25, "-0.25"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_go_prec_g(v, 2), go, "{v}");
        }
    }
}
