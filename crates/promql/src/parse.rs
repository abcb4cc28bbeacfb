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

/// Most expression nodes a query may have on one path from the root: deeper queries are
/// refused before parsing, since the parser's type checks take time quadratic in the depth.
pub const MAX_NESTING: usize = 20_000;

/// Queries whose nesting bound is at most this are parsed and evaluated on the caller's
/// stack; deeper ones on a thread with a stack sized for them (see [`on_stack_for`]).
const INLINE_NESTING: usize = 64;

/// Stack bytes one level of nesting may take across parsing, checking, evaluation and drop.
const STACK_PER_LEVEL: usize = 16 * 1024;

/// Lexes the query as Prometheus does, reporting its lexing and literal errors, and refuses
/// one nested deeper than [`MAX_NESTING`]; returns its nesting bound.
pub fn pre_lex(query: &[u8]) -> Result<usize> {
    lex_checked(query).map(|l| l.nesting)
}

fn lex_checked(query: &[u8]) -> Result<crate::lex::Lexed> {
    let lexed = crate::lex::lex(query).map_err(|e| Error::Parse(e.render(query)))?;
    if lexed.nesting > MAX_NESTING {
        return Err(Error::Parse(format!(
            "query too complex: it nests up to {} operators, brackets and calls, more than the limit of {MAX_NESTING}",
            lexed.nesting
        )));
    }
    Ok(lexed)
}

/// An upper bound on how deeply `query` nests (operators, opening brackets and calls).
pub fn nesting_bound(query: &str) -> usize {
    crate::lex::lex(query.as_bytes()).map_or(0, |l| l.nesting)
}

/// Runs `f`, which parses and evaluates a query of nesting bound `nesting`, on a stack deep
/// enough for it: the caller's for shallow queries, else a scoped thread's.
pub(crate) fn on_stack_for<T: Send>(
    nesting: usize,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    if nesting <= INLINE_NESTING {
        return f();
    }
    let size = 4 * 1024 * 1024 + nesting * STACK_PER_LEVEL;
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("promql-deep".into())
            .stack_size(size)
            .spawn_scoped(s, f)
            .map_err(|e| Error::exec(format!("cannot start a thread for a deep query: {e}")))?;
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Parses and checks a query as Prometheus 2.42 would, then hands the tree to `f`, all on a
/// stack deep enough for the query's nesting; the tree is dropped there too, since dropping
/// nested boxes recurses.
pub fn parse_with<T: Send>(query: &str, f: impl FnOnce(&Expr) -> Result<T> + Send) -> Result<T> {
    parse_bytes_with(query.as_bytes(), f)
}

/// [`parse_with`] for query bytes as they came (not necessarily UTF-8): bytes Prometheus
/// refuses get its error; bytes it ignores (in comments) are ignored.
pub fn parse_bytes_with<T: Send>(
    query: &[u8],
    f: impl FnOnce(&Expr) -> Result<T> + Send,
) -> Result<T> {
    let lexed = lex_checked(query)?;
    let text = match lexed.rewritten {
        Some(t) => t,
        None => String::from_utf8_lossy(query).into_owned(),
    };
    on_stack_for(lexed.nesting, || f(&parse_checked(&text)?))
}

/// Parses and checks a query as Prometheus 2.42 would. The tree is returned to the caller's
/// stack: use [`parse_with`] for queries that may nest deeply.
pub fn parse(query: &str) -> Result<Expr> {
    match lex_checked(query.as_bytes())?.rewritten {
        Some(t) => parse_checked(&t),
        None => parse_checked(query),
    }
}

/// Parses and checks `query`; the caller made sure the stack is deep enough.
pub(crate) fn parse_checked(query: &str) -> Result<Expr> {
    register_holt_winters();
    // The parser may panic on input its checks do not foresee (e.g. a duration too large for
    // its arithmetic): that is a parse error of the query, not the end of the process.
    let parsed = std::panic::catch_unwind(|| parser::parse(query)).map_err(|_| {
        Error::Parse(format_parse_error(
            "the query cannot be parsed (the parser failed on it)",
        ))
    })?;
    let expr = parsed.map_err(|e| Error::Parse(format_parse_error(&e)))?;
    check(&expr)?;
    Ok(expr)
}

fn format_parse_error(e: &str) -> String {
    // Prometheus gives every parse error a position; ours has one where it is certain.
    if e == "no expression found in input" {
        return format!("1:1: parse error: {e}");
    }
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
