//! Parsing with `promql-parser`, narrowed to the language of the chosen [`Dialect`]: under
//! [`Compat::V2`] that of Prometheus 2.42 (functions added later are unknown, `holt_winters`
//! exists); under [`Compat::V3`] that of Prometheus 3.x (experimental functions only when
//! enabled). `or` inside selectors is rejected in both.

use crate::error::{Error, Result};
use crate::lex::{line_col, QueryShape, Token};
use crate::positions::Positions;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, Function};
use std::sync::Once;

/// Which Prometheus's PromQL a query is parsed and evaluated as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compat {
    /// Prometheus 2.42: closed windows, `.` not matching newlines, `holt_winters`.
    V2,
    /// Prometheus 3.x: left-open windows, `.` matching newlines, the functions of 3.x.
    #[default]
    V3,
}

impl std::str::FromStr for Compat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "v2" => Ok(Compat::V2),
            "v3" => Ok(Compat::V3),
            _ => Err(format!(
                "unknown PromQL compatibility {s:?} (expected v2 or v3)"
            )),
        }
    }
}

/// The language a query is parsed as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dialect {
    pub compat: Compat,
    /// Functions and aggregations Prometheus marks experimental
    /// (`--enable-feature=promql-experimental-functions`); 3.x only.
    pub experimental_functions: bool,
    /// `fill()`, `fill_left()` and `fill_right()` after a binary operator, which 3.14 marks
    /// experimental (`--enable-feature=promql-binop-fill-modifiers`); 3.x only.
    pub binop_fill_modifiers: bool,
}

impl Dialect {
    pub const V2: Dialect = Dialect {
        compat: Compat::V2,
        experimental_functions: false,
        binop_fill_modifiers: false,
    };
}

/// Aggregation operators Prometheus 3.x marks experimental.
const EXPERIMENTAL_AGGREGATIONS: &[&str] = &["limitk", "limit_ratio"];

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
pub fn pre_lex(query: &[u8], dialect: Dialect) -> Result<usize> {
    lex_checked(query, dialect, CHECK_SHAPE).map(|l| l.nesting)
}

/// What `step()` and `range()` stand for when a query is only checked, not run: positive,
/// so that no duration is refused that a real run may accept.
const CHECK_SHAPE: QueryShape = QueryShape {
    step_ms: 1000,
    range_ms: 1000,
};

fn lex_checked(query: &[u8], dialect: Dialect, shape: QueryShape) -> Result<crate::lex::Lexed> {
    let shape = (dialect.compat == Compat::V3).then_some(shape);
    let lexed = crate::lex::lex_as(query, shape).map_err(|e| Error::Parse(e.render(query)))?;
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
pub fn parse_with<T: Send>(
    query: &str,
    dialect: Dialect,
    f: impl FnOnce(&Expr) -> Result<T> + Send,
) -> Result<T> {
    parse_bytes_with(query.as_bytes(), dialect, f)
}

/// [`parse_with`] for query bytes as they came (not necessarily UTF-8): bytes Prometheus
/// refuses get its error; bytes it ignores (in comments) are ignored.
pub fn parse_bytes_with<T: Send>(
    query: &[u8],
    dialect: Dialect,
    f: impl FnOnce(&Expr) -> Result<T> + Send,
) -> Result<T> {
    parse_for_query(query, dialect, CHECK_SHAPE, |expr, _| f(expr))
}

fn parser_text(query: &[u8], rewritten: Option<String>) -> String {
    rewritten.unwrap_or_else(|| String::from_utf8_lossy(query).into_owned())
}

/// [`parse_bytes_with`] for a query about to run with `shape` (3.x duration expressions
/// read its step and range); `f` also gets where each node starts in the query.
pub(crate) fn parse_for_query<T: Send>(
    query: &[u8],
    dialect: Dialect,
    shape: QueryShape,
    f: impl FnOnce(&Expr, &Positions) -> Result<T> + Send,
) -> Result<T> {
    // The shape changes the parse only where 3.x duration expressions may read it.
    let shape = if dialect.compat == Compat::V3 {
        shape
    } else {
        QueryShape::default()
    };
    if let Some(p) = crate::parse_cache::get(query, dialect, shape) {
        return on_stack_for(p.nesting, || f(&p.expr, &p.positions));
    }
    let lexed = lex_checked(query, dialect, shape)?;
    let text = parser_text(query, lexed.rewritten);
    let tokens = lexed.tokens;
    let nesting = lexed.nesting;
    on_stack_for(nesting, || {
        let expr = Box::new(parse_checked(&text, dialect, query, &tokens)?);
        let positions = Positions::of(query, &tokens, &expr);
        if query.len() > crate::parse_cache::MAX_TEXT || nesting > INLINE_NESTING {
            return f(&expr, &positions);
        }
        let parsed = std::sync::Arc::new(crate::parse_cache::Parsed {
            expr,
            positions,
            nesting,
        });
        crate::parse_cache::put(query, dialect, shape, parsed.clone());
        f(&parsed.expr, &parsed.positions)
    })
}

/// Parses and checks a query in `dialect`. The tree is returned to the caller's stack: use
/// [`parse_with`] for queries that may nest deeply.
pub fn parse(query: &str, dialect: Dialect) -> Result<Expr> {
    let lexed = lex_checked(query.as_bytes(), dialect, CHECK_SHAPE)?;
    let text = lexed.rewritten.as_deref().unwrap_or(query);
    parse_checked(text, dialect, query.as_bytes(), &lexed.tokens)
}

/// Parses and checks `text` (the lexer's rewriting of `query`, whose tokens are `tokens`);
/// the caller made sure the stack is deep enough.
fn parse_checked(text: &str, dialect: Dialect, query: &[u8], tokens: &[Token]) -> Result<Expr> {
    register_holt_winters();
    // The parser may panic on input its checks do not foresee (e.g. a duration too large for
    // its arithmetic): that is a parse error of the query, not the end of the process.
    let parsed = std::panic::catch_unwind(|| parser::parse(text)).map_err(|_| {
        Error::Parse(format_parse_error(
            "the query cannot be parsed (the parser failed on it)",
        ))
    })?;
    let expr = parsed.map_err(|e| Error::Parse(format_parse_error(&e)))?;
    // Errors placed at a node, as Prometheus places them (positions found only then).
    let at = |node: &Expr| {
        Positions::of(query, tokens, &expr)
            .start(node)
            .map_or_else(String::new, |p| format!("{}: ", line_col(query, p)))
    };
    check(&expr, dialect, &at)?;
    Ok(expr)
}

fn format_parse_error(e: &str) -> String {
    // Prometheus gives every parse error a position; ours has one where it is certain.
    if e == "no expression found in input" {
        return format!("1:1: parse error: {e}");
    }
    format!("parse error: {e}")
}

/// `at` gives the `line:col: ` prefix of an error at a node.
fn check(expr: &Expr, d: Dialect, at: &dyn Fn(&Expr) -> String) -> Result<()> {
    match expr {
        Expr::Aggregate(a) => {
            let name = a.op.to_string();
            let experimental = EXPERIMENTAL_AGGREGATIONS.contains(&name.as_str());
            if experimental && (d.compat == Compat::V2 || !d.experimental_functions) {
                return Err(Error::Parse(format_parse_error(&match d.compat {
                    Compat::V2 => format!("unexpected identifier {name:?}"),
                    Compat::V3 => {
                        "limitk() and limit_ratio() are experimental and must be enabled \
                                   with --enable-feature=promql-experimental-functions"
                            .to_string()
                    }
                })));
            }
            if let Some(p) = &a.param {
                check(p, d, at)?;
            }
            check(&a.expr, d, at)
        }
        Expr::Unary(u) => check(&u.expr, d, at),
        Expr::Binary(b) => {
            if let Some(msg) = refused_fill(b, d) {
                return Err(Error::Parse(format!("{}parse error: {msg}", at(expr))));
            }
            check(&b.lhs, d, at)?;
            check(&b.rhs, d, at)
        }
        Expr::Paren(p) => check(&p.expr, d, at),
        Expr::Subquery(s) => check(&s.expr, d, at),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(&vs.matchers),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs.matchers),
        Expr::Call(c) => {
            check_function(&c.func, d)?;
            for a in &c.args.args {
                check(a, d, at)?;
            }
            Ok(())
        }
        Expr::Extension(_) => Err(Error::Parse("unsupported expression".into())),
    }
}

/// Why 3.14 refuses the fill modifiers of `b`, if it has any: they are experimental and
/// off unless `d` enables them, and only fill in series between two vectors of a
/// non-set operation.
fn refused_fill(b: &promql_parser::parser::BinaryExpr, d: Dialect) -> Option<&'static str> {
    let fill = &b.modifier.as_ref()?.fill_values;
    if fill.lhs.is_none() && fill.rhs.is_none() {
        return None;
    }
    let vectors =
        b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
    if d.compat == Compat::V2 || !d.binop_fill_modifiers {
        Some("binop fill modifiers are experimental and not enabled")
    } else if !vectors {
        Some("filling in missing series only allowed between instant vectors")
    } else if b.op.is_set_operator() {
        Some("filling in missing series not allowed for set operators")
    } else {
        None
    }
}

fn check_function(f: &Function, d: Dialect) -> Result<()> {
    let name = f.name;
    // The parser's table also has Thanos's extensions (`xrate`, …), which we do not.
    let known = crate::function_table::lookup(name).is_some_and(|f| match d.compat {
        Compat::V2 => f.in_2_42,
        Compat::V3 => f.in_3,
    });
    if !known {
        return Err(Error::Parse(format_parse_error(&format!(
            "unknown function with name {name:?}"
        ))));
    }
    if d.compat == Compat::V3 && f.experimental && !d.experimental_functions {
        return Err(Error::Parse(format_parse_error(&format!(
            "function {name:?} is not enabled"
        ))));
    }
    Ok(())
}

fn check_selector(m: &promql_parser::label::Matchers) -> Result<()> {
    if !m.or_matchers.is_empty() {
        return Err(Error::Parse(format_parse_error(
            "unexpected \"or\" in label matching",
        )));
    }
    Ok(())
}

/// The expression inside any parentheses.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}
