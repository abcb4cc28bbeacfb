//! Parsing with `promql-parser`, narrowed to the language of Prometheus 2.42: functions
//! added later are unknown, `holt_winters` exists, `or` inside selectors is rejected.

use crate::error::{Error, Result};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, Function};
use std::sync::Once;

/// Functions of Prometheus 2.42 (float and native-histogram ones).
const FUNCTIONS_2_42: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_sum",
    "histogram_fraction",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

fn register_holt_winters() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let f = Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        // Fails only if a later parser makes it a built-in, which is fine too.
        let _ = parser::register_extra_functions(vec![f]);
    });
}

/// Parses and checks a query as Prometheus 2.42 would.
pub fn parse(query: &str) -> Result<Expr> {
    register_holt_winters();
    let expr = parser::parse(query).map_err(|e| Error::Parse(format_parse_error(&e)))?;
    check(&expr)?;
    Ok(expr)
}

fn format_parse_error(e: &str) -> String {
    format!("parse error: {e}")
}

fn check(expr: &Expr) -> Result<()> {
    match expr {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                check(p)?;
            }
            check(&a.expr)
        }
        Expr::Unary(u) => check(&u.expr),
        Expr::Binary(b) => {
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::Paren(p) => check(&p.expr),
        Expr::Subquery(s) => check(&s.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(&vs.matchers),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs.matchers),
        Expr::Call(c) => {
            if !FUNCTIONS_2_42.contains(&c.func.name) {
                return Err(Error::Parse(format_parse_error(&format!(
                    "unknown function with name {:?}",
                    c.func.name
                ))));
            }
            for a in &c.args.args {
                check(a)?;
            }
            Ok(())
        }
        Expr::Extension(_) => Err(Error::Parse("unsupported expression".into())),
    }
}

fn check_selector(m: &promql_parser::label::Matchers) -> Result<()> {
    if !m.or_matchers.is_empty() {
        return Err(Error::Parse(format_parse_error(
            "unexpected \"or\" in label matching",
        )));
    }
    Ok(())
}
