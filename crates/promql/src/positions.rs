//! Where each expression of a parsed query starts in the query text, as Prometheus's parser
//! records it (`PositionRange.Start`), for the `(line:col)` its annotations end with.
//!
//! The grammar parser keeps no positions, so the tree is walked in source order beside the
//! lexer's tokens of the original query: every node kind consumes the tokens it was written
//! with. A query the walk cannot follow (it never should) gets no positions rather than
//! wrong ones.

use crate::lex::{Kind, Token};
use crate::node_value::FxMap;
use promql_parser::parser::{AggregateExpr, BinaryExpr, Call, Expr};

/// Start offsets of a query's expression nodes, keyed by node address.
#[derive(Default, Debug)]
pub(crate) struct Positions {
    starts: FxMap<usize, usize>,
}

impl Positions {
    /// The positions of `expr`'s nodes in `query`, whose tokens are `tokens`.
    pub(crate) fn of(query: &[u8], tokens: &[Token], expr: &Expr) -> Positions {
        let mut w = Walk {
            b: query,
            t: tokens,
            i: 0,
            starts: FxMap::default(),
        };
        match w.expr(expr) {
            Some(()) if w.i == tokens.len() => Positions { starts: w.starts },
            _ => Positions::default(),
        }
    }

    /// Where `node` starts.
    pub(crate) fn start<T: Positioned>(&self, node: &T) -> Option<usize> {
        self.starts.get(&(node as *const T as usize)).copied()
    }
}

/// The node types whose positions are recorded: every expression, and the node structs
/// annotations are placed at (not a `Box` around them, whose address is another).
pub(crate) trait Positioned {}

impl Positioned for Expr {}
impl Positioned for AggregateExpr {}
impl Positioned for BinaryExpr {}
impl Positioned for Call {}

struct Walk<'a> {
    b: &'a [u8],
    t: &'a [Token],
    i: usize,
    starts: FxMap<usize, usize>,
}

impl Walk<'_> {
    fn peek(&self) -> Option<&Token> {
        self.t.get(self.i)
    }

    fn text(&self, k: usize) -> &[u8] {
        self.t.get(k).map_or(&[], |t| &self.b[t.start..t.end])
    }

    fn is(&self, kind: Kind) -> bool {
        self.peek().is_some_and(|t| t.kind == kind)
    }

    fn is_word(&self, words: &[&str]) -> bool {
        self.is(Kind::Ident)
            && words
                .iter()
                .any(|w| self.text(self.i).eq_ignore_ascii_case(w.as_bytes()))
    }

    fn is_sign(&self) -> bool {
        self.is(Kind::Op) && matches!(self.text(self.i), b"+" | b"-")
    }

    fn expect(&mut self, kind: Kind) -> Option<()> {
        self.is(kind).then(|| self.i += 1)
    }

    /// Skips a bracketed group starting at the current token, nested ones included.
    fn group(&mut self, open: Kind, close: Kind) -> Option<()> {
        self.expect(open)?;
        let mut depth = 1;
        while depth > 0 {
            let t = self.peek()?;
            if t.kind == open {
                depth += 1;
            } else if t.kind == close {
                depth -= 1;
            }
            self.i += 1;
        }
        Some(())
    }

    fn record<T: Positioned>(&mut self, node: &T, start: usize) {
        self.starts.insert(node as *const T as usize, start);
    }

    fn expr(&mut self, e: &Expr) -> Option<()> {
        let start = self.peek()?.start;
        self.record(e, start);
        // A unary `+` leaves no node behind, nor a `-` before a number (folded into it);
        // Prometheus's node starts at the sign. A binary expression or a subquery leaves
        // the signs to its first operand.
        if !matches!(e, Expr::Binary(_) | Expr::Subquery(_) | Expr::Unary(_)) {
            while self.is_sign()
                && (self.text(self.i) == b"+" || matches!(e, Expr::NumberLiteral(_)))
            {
                self.i += 1;
            }
        }
        match e {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {
                self.i += 1;
            }
            Expr::Unary(u) => {
                while self.is_sign() && self.text(self.i) == b"+" {
                    self.i += 1;
                }
                if !self.is_sign() {
                    return None;
                }
                self.i += 1;
                self.expr(&u.expr)?;
            }
            Expr::Paren(p) => {
                self.expect(Kind::LParen)?;
                self.expr(&p.expr)?;
                self.expect(Kind::RParen)?;
            }
            Expr::VectorSelector(_) => {
                self.selector_tokens()?;
                self.modifiers()?;
            }
            Expr::MatrixSelector(_) => {
                self.selector_tokens()?;
                self.group(Kind::LBracket, Kind::RBracket)?;
                self.modifiers()?;
            }
            Expr::Subquery(sq) => {
                self.expr(&sq.expr)?;
                self.group(Kind::LBracket, Kind::RBracket)?;
                self.modifiers()?;
            }
            Expr::Call(c) => self.call(c, start)?,
            Expr::Aggregate(a) => self.aggregate(a, start)?,
            Expr::Binary(b) => self.binary(b, start)?,
            Expr::Extension(_) => return None,
        }
        Some(())
    }

    fn selector_tokens(&mut self) -> Option<()> {
        let named = self.expect(Kind::Ident).is_some();
        if self.is(Kind::LBrace) {
            self.group(Kind::LBrace, Kind::RBrace)?;
        } else if !named {
            return None;
        }
        Some(())
    }

    /// `offset` and `@` modifiers, in either order.
    fn modifiers(&mut self) -> Option<()> {
        loop {
            if self.is_word(&["offset"]) {
                self.i += 1;
                while self.is_sign() {
                    self.i += 1;
                }
                self.duration()?;
            } else if self.is(Kind::At) {
                self.i += 1;
                while self.is_sign() {
                    self.i += 1;
                }
                if self.is_word(&["start", "end"]) {
                    self.i += 1;
                    self.group(Kind::LParen, Kind::RParen)?;
                } else if self.is(Kind::Number) || self.is(Kind::Duration) {
                    self.i += 1;
                } else {
                    return None;
                }
            } else {
                return Some(());
            }
        }
    }

    /// A duration after `offset`: a literal, a number, or a 3.x duration expression.
    fn duration(&mut self) -> Option<()> {
        if self.is(Kind::LParen) {
            return self.group(Kind::LParen, Kind::RParen);
        }
        if self.is(Kind::Ident) {
            self.i += 1;
            if self.is(Kind::LParen) {
                self.group(Kind::LParen, Kind::RParen)?;
            }
            return Some(());
        }
        if self.is(Kind::Duration) || self.is(Kind::Number) {
            self.i += 1;
            return Some(());
        }
        None
    }

    fn call(&mut self, c: &Call, start: usize) -> Option<()> {
        self.record(c, start);
        self.expect(Kind::Ident)?;
        self.expect(Kind::LParen)?;
        for (k, a) in c.args.args.iter().enumerate() {
            if k > 0 {
                self.comma()?;
            }
            self.expr(a)?;
        }
        // A trailing comma is allowed.
        let _ = self.comma();
        self.expect(Kind::RParen)
    }

    fn comma(&mut self) -> Option<()> {
        (self.is(Kind::Other) && self.text(self.i) == b",").then(|| self.i += 1)
    }

    fn grouping(&mut self) -> Option<()> {
        if self.is_word(&["by", "without"]) {
            self.i += 1;
            self.group(Kind::LParen, Kind::RParen)?;
        }
        Some(())
    }

    fn aggregate(&mut self, a: &AggregateExpr, start: usize) -> Option<()> {
        self.record(a, start);
        self.expect(Kind::Ident)?;
        self.grouping()?;
        self.expect(Kind::LParen)?;
        if let Some(p) = &a.param {
            self.expr(p)?;
            self.comma()?;
        }
        self.expr(&a.expr)?;
        let _ = self.comma();
        self.expect(Kind::RParen)?;
        self.grouping()
    }

    fn binary(&mut self, b: &BinaryExpr, start: usize) -> Option<()> {
        self.record(b, start);
        self.expr(&b.lhs)?;
        let op = self.peek()?;
        if op.kind != Kind::Op {
            return None;
        }
        let op_end = op.end;
        self.i += 1;
        // 3.x's trim operators `</` and `>/` lex as two tokens.
        if self.is(Kind::Op) && self.text(self.i) == b"/" && self.peek()?.start == op_end {
            self.i += 1;
        }
        if self.is_word(&["bool"]) {
            self.i += 1;
        }
        if self.is_word(&["on", "ignoring"]) {
            self.i += 1;
            self.group(Kind::LParen, Kind::RParen)?;
        }
        if self.is_word(&["group_left", "group_right"]) {
            self.i += 1;
            if self.is(Kind::LParen) {
                self.group(Kind::LParen, Kind::RParen)?;
            }
        }
        // `fill` without parentheses is a metric name, the right operand.
        while self.is_word(&["fill", "fill_left", "fill_right"])
            && self
                .t
                .get(self.i + 1)
                .is_some_and(|t| t.kind == Kind::LParen)
        {
            self.i += 1;
            self.group(Kind::LParen, Kind::RParen)?;
        }
        self.expr(&b.rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, Dialect};

    /// The start offsets of the nodes the test names, found through `pick`.
    fn starts(q: &str, pick: impl Fn(&Expr) -> Vec<&Expr>) -> Vec<Option<usize>> {
        let expr = parse(q, Dialect::default()).expect("parses");
        let tokens = crate::lex::tokens(q.as_bytes(), true).expect("lexes");
        let p = Positions::of(q.as_bytes(), &tokens, &expr);
        pick(&expr).into_iter().map(|e| p.start(e)).collect()
    }

    fn call_args(e: &Expr) -> Vec<&Expr> {
        match e {
            Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn function_arguments_start_where_written() {
        assert_eq!(starts("rate(foo[5m])", call_args), vec![Some(5)]);
        assert_eq!(
            starts(
                "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
                call_args
            ),
            vec![Some(19), Some(24)]
        );
        assert_eq!(
            starts("label_replace(up, 'a', \"b\", `c`, 'd')", call_args),
            vec![Some(14), Some(18), Some(23), Some(28), Some(33)]
        );
    }

    #[test]
    fn binary_expressions_start_at_their_left_operand() {
        let q = "(a + on(x) group_left(y) -b) * -2 > bool 3";
        let got = starts(q, |e| match e {
            Expr::Binary(top) => match &*top.lhs {
                Expr::Binary(mul) => vec![e, &*top.lhs, &*mul.lhs, &*mul.rhs, &*top.rhs],
                _ => vec![],
            },
            _ => vec![],
        });
        assert_eq!(got, vec![Some(0), Some(0), Some(0), Some(31), Some(41)]);
    }

    #[test]
    fn aggregations_subqueries_and_modifiers() {
        let q = "sum without (a) (quantile_over_time(0.5, x offset 5m [1h:1m] @ 100))";
        let got = starts(q, |e| match e {
            Expr::Aggregate(a) => vec![e, &*a.expr],
            _ => vec![],
        });
        assert_eq!(got, vec![Some(0), Some(17)]);
        let q = "topk by (x) (3, foo) or\n  +bar{a=\"b\"} offset -1h";
        let got = starts(q, |e| match e {
            Expr::Binary(b) => match &*b.lhs {
                Expr::Aggregate(a) => vec![&*b.lhs, a.param.as_deref().unwrap_or(e), &*b.rhs],
                _ => vec![],
            },
            _ => vec![],
        });
        assert_eq!(got, vec![Some(0), Some(13), Some(26)]);
        let q = "-a + - -1 - -(b)";
        let got = starts(q, |e| match e {
            Expr::Binary(top) => match &*top.lhs {
                Expr::Binary(inner) => vec![&*inner.lhs, &*inner.rhs, &*top.rhs],
                _ => vec![],
            },
            _ => vec![],
        });
        assert_eq!(got, vec![Some(0), Some(5), Some(12)]);
    }

    /// The walk follows every query of Prometheus's test scripts that parses.
    #[test]
    fn every_script_query_gets_positions() {
        let base = std::env::var("PROMQL_PEER_TESTS").map_or_else(
            |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-tests"),
            std::path::PathBuf::from,
        );
        let dialect = Dialect {
            experimental_functions: true,
            ..Dialect::default()
        };
        let (mut walked, mut lost) = (0, Vec::new());
        for version in ["promql-latest", "promql-v2.42"] {
            let Ok(dir) = std::fs::read_dir(base.join(version)) else {
                panic!("peer test scripts not found under {}", base.display());
            };
            for file in dir.flatten() {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                for line in text.lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let skip = match words.as_slice() {
                        [e, "instant", "at", ..] if e.starts_with("eval") => 4,
                        [e, "range", "from", _, "to", _, "step", ..] if e.starts_with("eval") => 8,
                        _ => continue,
                    };
                    let Some(q) = line
                        .split_whitespace()
                        .nth(skip)
                        .and_then(|first| line.find(first).map(|i| &line[i..]))
                    else {
                        continue;
                    };
                    let Ok(expr) = parse(q, dialect) else {
                        continue;
                    };
                    let tokens = crate::lex::tokens(q.as_bytes(), true).expect("lexes");
                    walked += 1;
                    if Positions::of(q.as_bytes(), &tokens, &expr)
                        .start(&expr)
                        .is_none()
                    {
                        lost.push(q.to_string());
                    }
                }
            }
        }
        assert!(walked > 2000, "only {walked} queries found");
        assert!(
            lost.is_empty(),
            "{} of {walked} lost: {lost:#?}",
            lost.len()
        );
    }

    #[test]
    fn an_unfollowable_walk_gives_no_positions() {
        let expr = parse("foo", Dialect::default()).expect("parses");
        let other = "bar + baz";
        let tokens = crate::lex::tokens(other.as_bytes(), true).expect("lexes");
        let p = Positions::of(other.as_bytes(), &tokens, &expr);
        assert_eq!(p.start(&expr), None);
    }
}
