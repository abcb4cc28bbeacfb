//! Prometheus 3.x duration expressions: arithmetic in range brackets, subquery steps and
//! offsets (`x[5m+step()]`, `offset -(2*1m)`), with `step()`, `range()`, `min_of` and
//! `max_of`. The lexer evaluates them for the query at hand and hands the parser plain
//! durations, as Prometheus's engine fills them in before evaluation.
//!
//! Values are seconds as float64 (a duration literal is its seconds, a bare number is
//! seconds), as in Prometheus's `durationVisitor`.

use crate::lex::{Kind, LexError, Token};

/// What `step()` and `range()` stand for in the query being parsed (ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryShape {
    pub step_ms: i64,
    pub range_ms: i64,
}

struct Eval<'a> {
    input: &'a [u8],
    toks: &'a [Token],
    i: usize,
    shape: QueryShape,
}

fn fail<T>(pos: usize, msg: impl Into<String>) -> Result<T, LexError> {
    Err(LexError {
        pos,
        msg: msg.into(),
    })
}

impl Eval<'_> {
    fn text(&self, k: usize) -> &[u8] {
        &self.input[self.toks[k].start..self.toks[k].end]
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .map_or_else(|| self.toks.last().map_or(0, |t| t.end), |t| t.start)
    }

    fn peek_op(&self, ops: &[u8]) -> Option<u8> {
        let t = self.toks.get(self.i)?;
        let s = self.text(self.i);
        (t.kind == Kind::Op && s.len() == 1 && ops.contains(&s[0])).then_some(s[0])
    }

    fn expect(&mut self, kind: Kind, what: &str) -> Result<(), LexError> {
        match self.toks.get(self.i) {
            Some(t) if t.kind == kind => {
                self.i += 1;
                Ok(())
            }
            _ => fail(
                self.pos(),
                format!("unexpected token in duration expression, expected {what}"),
            ),
        }
    }

    fn sum(&mut self) -> Result<f64, LexError> {
        let mut v = self.product()?;
        while let Some(op) = self.peek_op(b"+-") {
            self.i += 1;
            let r = self.product()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, LexError> {
        let mut v = self.unary()?;
        while let Some(op) = self.peek_op(b"*/%") {
            let at = self.pos();
            self.i += 1;
            let r = self.unary()?;
            v = match op {
                b'*' => v * r,
                b'/' if r == 0.0 => return fail(at, "division by zero"),
                b'/' => v / r,
                _ if r == 0.0 => return fail(at, "modulo by zero"),
                _ => v % r,
            };
        }
        Ok(v)
    }

    /// Unary signs bind like `*`, below `^`: `-2^2` is -4.
    fn unary(&mut self) -> Result<f64, LexError> {
        match self.peek_op(b"+-") {
            Some(op) => {
                self.i += 1;
                let v = self.unary()?;
                Ok(if op == b'-' { -v } else { v })
            }
            None => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64, LexError> {
        let base = self.atom()?;
        if self.peek_op(b"^").is_some() {
            self.i += 1;
            let exp = self.unary()?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, LexError> {
        let Some(t) = self.toks.get(self.i) else {
            return fail(self.pos(), "unexpected end of duration expression");
        };
        let at = t.start;
        let text = String::from_utf8_lossy(self.text(self.i)).into_owned();
        match t.kind {
            Kind::Number => {
                self.i += 1;
                crate::lex::go_number(&text).ok_or_else(|| LexError {
                    pos: at,
                    msg: format!("bad number in duration expression: {text:?}"),
                })
            }
            Kind::Duration => {
                self.i += 1;
                match tsdb::time::parse_duration(&text) {
                    Ok(ms) => Ok(ms as f64 / 1000.0),
                    Err(e) => fail(at, e.to_string()),
                }
            }
            Kind::LParen => {
                self.i += 1;
                let v = self.sum()?;
                self.expect(Kind::RParen, "\")\"")?;
                Ok(v)
            }
            Kind::Ident => {
                let name = text.to_ascii_lowercase();
                self.i += 1;
                self.expect(Kind::LParen, "\"(\"")?;
                let v = match name.as_str() {
                    "step" => self.shape.step_ms as f64 / 1000.0,
                    "range" => self.shape.range_ms as f64 / 1000.0,
                    "min_of" | "max_of" => {
                        let a = self.sum()?;
                        match self.toks.get(self.i) {
                            Some(t) if t.kind == Kind::Other && self.text(self.i) == b"," => {
                                self.i += 1
                            }
                            _ => return fail(self.pos(), "expected \",\" in duration expression"),
                        }
                        let b = self.sum()?;
                        if name == "min_of" {
                            go_min(a, b)
                        } else {
                            go_max(a, b)
                        }
                    }
                    _ => {
                        return fail(
                            at,
                            format!("unexpected function {text:?} in duration expression"),
                        )
                    }
                };
                self.expect(Kind::RParen, "\")\"")?;
                Ok(v)
            }
            _ => fail(at, "unexpected token in duration expression"),
        }
    }
}

/// Go's `math.Min`/`math.Max`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The end (exclusive token index) of the offset duration starting at token `i`: a
/// literal, a call, or a parenthesised expression, with an optional sign. What follows
/// belongs to the enclosing expression (`x offset 2 ^ 2` is `(x offset 2) ^ 2`).
pub(crate) fn offset_extent(input: &[u8], toks: &[Token], mut i: usize) -> Option<usize> {
    let text = |k: usize| &input[toks[k].start..toks[k].end];
    if toks.get(i)?.kind == Kind::Op && matches!(text(i), b"+" | b"-") {
        i += 1;
    }
    let t = toks.get(i)?;
    let close = |mut k: usize| -> Option<usize> {
        let mut depth = 0;
        while k < toks.len() {
            match toks[k].kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(k + 1);
                    }
                }
                _ => {}
            }
            k += 1;
        }
        None
    };
    match t.kind {
        Kind::Number | Kind::Duration => Some(i + 1),
        Kind::LParen => close(i),
        Kind::Ident if toks.get(i + 1)?.kind == Kind::LParen => close(i + 1),
        _ => None,
    }
}

/// Evaluates tokens `toks` as one duration expression; returns milliseconds, checked as
/// Prometheus checks them (`allow_negative` for offsets).
pub(crate) fn evaluate(
    input: &[u8],
    toks: &[Token],
    shape: QueryShape,
    allow_negative: bool,
) -> Result<i64, LexError> {
    let start = toks.first().map_or(0, |t| t.start);
    let mut e = Eval {
        input,
        toks,
        i: 0,
        shape,
    };
    let secs = e.sum()?;
    if e.i != toks.len() {
        return fail(e.pos(), "unexpected token after duration expression");
    }
    if !secs.is_finite() {
        return fail(start, "duration is NaN or infinite");
    }
    if secs <= 0.0 && !allow_negative {
        return fail(start, "duration must be greater than 0");
    }
    if secs.abs() > 9.223_372_036_854_776e9 {
        return fail(start, "duration is out of range");
    }
    Ok((secs * 1000.0).trunc() as i64)
}
