//! A PromQL lexer with Prometheus's error messages and positions, run over the raw query
//! bytes before the grammar parser sees the text.
//!
//! It reports what Prometheus's lexer and its literal parsing report, with the same
//! `line:col: parse error: msg` prefix (1-based line, byte column): invalid UTF-8 (and
//! U+FFFD) in strings, stray characters, unbalanced parentheses and brackets, bad escapes,
//! unterminated strings, numbers Go cannot parse (`1e309`), durations out of range
//! (`[10000000y]`), `@` timestamps out of bounds, and regular expressions Go's regexp refuses
//! for their repeat counts (`a{0,30000}`). Along the way it bounds how deeply the expression
//! can nest, from the operators and brackets it saw.
//!
//! It is not a parser: grammar errors are left to the parser that follows.

use std::fmt::Write as _;

pub use crate::durations::QueryShape;

/// A lexing or literal error at a byte offset of the query.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub pos: usize,
    pub msg: String,
}

impl LexError {
    /// Prometheus's rendering: `line:col: parse error: msg`.
    pub fn render(&self, input: &[u8]) -> String {
        format!("{}: parse error: {}", line_col(input, self.pos), self.msg)
    }
}

/// Prometheus's `line:col` of a byte offset in a query (1-based line; the column counted
/// from the last line break, 1-based on the first line).
pub(crate) fn line_col(query: &[u8], pos: usize) -> String {
    let before = &query[..pos.min(query.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    format!("{line}:{col}")
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Ident,
    Number,
    Duration,
    Str,
    Op,
    /// `=`, `!=`, `=~`, `!~` inside braces.
    MatchOp,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    At,
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// What the lexer found out about a query that lexes cleanly.
#[derive(Debug, Clone, Default)]
pub struct Lexed {
    /// An upper bound on the depth of the expression tree.
    pub nesting: usize,
    /// The query with raw (backtick) strings written as double-quoted ones, for a parser
    /// that would otherwise read escapes in them; `None` when there are none.
    pub rewritten: Option<String>,
    /// The tokens of the query as given.
    pub(crate) tokens: Vec<Token>,
}

/// `input` with each raw string token written as an equivalent double-quoted string, and
/// the `replaced` byte ranges (in order) written as given.
fn rewrite(
    input: &[u8],
    tokens: &[Token],
    replaced: Vec<(usize, usize, String)>,
) -> Option<String> {
    let mut edits: Vec<(usize, usize, Vec<u8>)> = tokens
        .iter()
        .filter(|t| t.kind == Kind::Str && input[t.start] == b'`')
        .map(|t| {
            let mut q = vec![b'"'];
            for &c in &input[t.start + 1..t.end - 1] {
                match c {
                    b'"' => q.extend_from_slice(b"\\\""),
                    b'\\' => q.extend_from_slice(b"\\\\"),
                    b'\n' => q.extend_from_slice(b"\\n"),
                    c => q.push(c),
                }
            }
            q.push(b'"');
            (t.start, t.end, q)
        })
        .collect();
    edits.extend(replaced.into_iter().map(|(s, e, r)| (s, e, r.into_bytes())));
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut last = 0;
    for (start, end, with) in edits {
        out.extend_from_slice(&input[last..start]);
        out.extend_from_slice(&with);
        last = end;
    }
    out.extend_from_slice(&input[last..]);
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, LexError> {
    Err(LexError {
        pos,
        msg: msg.into(),
    })
}

/// Decodes the rune at `i` as Go does: an invalid byte is U+FFFD of width 1.
fn rune_at(b: &[u8], i: usize) -> (char, usize) {
    let end = (i + 4).min(b.len());
    for w in 1..=end - i {
        if let Ok(s) = std::str::from_utf8(&b[i..i + w]) {
            if let Some(c) = s.chars().next() {
                return (c, w);
            }
        }
    }
    ('\u{FFFD}', 1)
}

fn is_alpha(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: u8) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

/// Go's `%q` of a rune.
pub(crate) fn quote_rune(c: char) -> String {
    let mut s = String::from("'");
    match c {
        '\'' => s.push_str("\\'"),
        '\\' => s.push_str("\\\\"),
        '\x07' => s.push_str("\\a"),
        '\x08' => s.push_str("\\b"),
        '\x0c' => s.push_str("\\f"),
        '\n' => s.push_str("\\n"),
        '\r' => s.push_str("\\r"),
        '\t' => s.push_str("\\t"),
        '\x0b' => s.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(s, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            let _ = write!(s, "\\u{:04x}", c as u32);
        }
        c => s.push(c),
    }
    s.push('\'');
    s
}

/// Go's `%q` of a byte string (`strconv.Quote`).
pub fn quote_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    let mut i = 0;
    while i < b.len() {
        let (c, w) = rune_at(b, i);
        if c == '\u{FFFD}' && w == 1 {
            let _ = write!(s, "\\x{:02x}", b[i]);
        } else {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\x07' => s.push_str("\\a"),
                '\x08' => s.push_str("\\b"),
                '\x0c' => s.push_str("\\f"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                '\x0b' => s.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(s, "\\u{:04x}", c as u32);
                }
                c => s.push(c),
            }
        }
        i += w;
    }
    s.push('"');
    s
}

/// Go strings may hold bytes that are not UTF-8 (from `\x` and octal escapes); the
/// parser's strings cannot, so each such byte travels as one character of
/// U+10FF80..=U+10FFFF, counted from this base.
const RAW_BYTE_BASE: u32 = 0x10FF00;

fn raw_byte_char(b: u8) -> char {
    char::from_u32(RAW_BYTE_BASE + b as u32).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn raw_byte_of(c: char) -> Option<u8> {
    let v = c as u32;
    (v >= RAW_BYTE_BASE + 0x80).then(|| (v - RAW_BYTE_BASE) as u8)
}

/// Whether a string from the query holds bytes that are not UTF-8 in Prometheus's eyes.
pub(crate) fn has_raw_bytes(s: &str) -> bool {
    s.chars().any(|c| raw_byte_of(c).is_some())
}

/// Go's `%q` of a string from the query, its non-UTF-8 bytes shown as Go shows them.
pub(crate) fn go_quote(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    for c in s.chars() {
        match raw_byte_of(c) {
            Some(b) => bytes.push(b),
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    quote_bytes(&bytes)
}

/// A double-quoted literal the grammar parser reads as the Go string `bytes`: characters
/// written as themselves, bytes that are not UTF-8 as their stand-in characters.
fn parser_literal(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.extend(chunk.invalid().iter().map(|&b| raw_byte_char(b)));
    }
    out.push('"');
    out
}

/// Rewrites of quoted strings whose escapes make bytes beyond ASCII: Go reads `"\xc3\xa9"`
/// as `é` (and `"\xc5"` as a byte that is not UTF-8), the grammar parser as two (one)
/// Latin-1 characters.
fn byte_escape_rewrites(input: &[u8], tokens: &[Token]) -> Vec<(usize, usize, String)> {
    tokens
        .iter()
        .filter(|t| t.kind == Kind::Str && input[t.start] != b'`')
        .filter_map(|t| {
            let text = &input[t.start..t.end];
            if !text.contains(&b'\\') {
                return None;
            }
            let bytes = unquote(text);
            bytes
                .iter()
                .any(|&b| b >= 0x80)
                .then(|| (t.start, t.end, parser_literal(&bytes)))
        })
        .collect()
}

/// Go's `%#U` of a rune: `U+0071 'q'`.
fn unicode_format(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
    paren_depth: i64,
    bracket_open: bool,
    got_colon: bool,
    /// Prometheus 3.x: a plain number stands for seconds where a duration is expected.
    v3: bool,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn push(&mut self, kind: Kind, start: usize) {
        self.tokens.push(Token {
            kind,
            start,
            end: self.pos,
        });
    }

    fn accept(&mut self, set: &[u8]) -> bool {
        match self.peek() {
            Some(c) if set.contains(&c) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, set: &[u8]) {
        while self.accept(set) {}
    }

    /// Prometheus's `scanNumber`: true when what follows is not alphanumeric.
    fn scan_number(&mut self) -> bool {
        let mut digits: &[u8] = b"0123456789";
        if self.accept(b"0") && self.accept(b"xX") {
            digits = b"0123456789abcdefABCDEF";
        }
        self.accept_run(digits);
        if self.accept(b".") {
            self.accept_run(digits);
        }
        if self.accept(b"eE") {
            self.accept(b"+-");
            self.accept_run(b"0123456789");
        }
        !self.peek().is_some_and(is_alnum)
    }

    /// Prometheus's `acceptRemainingDuration`, leaving `pos` after the duration.
    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept(b"smhdwy") {
            return false;
        }
        self.accept(b"s");
        while self.accept(b"0123456789") {
            self.accept_run(b"0123456789");
            if !self.accept(b"smhdw") {
                return false;
            }
            self.accept(b"s");
        }
        // Go's `!isAlphaNumeric(l.next())`: the character is consumed either way; callers
        // step back over it on success.
        let next = self.peek();
        if next.is_some() {
            self.pos += 1;
        }
        if next.is_some_and(is_alnum) {
            return false;
        }
        if next.is_some() {
            self.pos -= 1;
        }
        true
    }

    fn string(&mut self, quote: u8) -> Result<(), LexError> {
        let start = self.pos;
        self.pos += 1;
        loop {
            let Some(c) = self.peek() else {
                return err(start, "unterminated quoted string");
            };
            let (r, w) = rune_at(self.b, self.pos);
            if r == '\u{FFFD}' {
                return err(start, "invalid UTF-8 rune");
            }
            self.pos += w;
            match c {
                b'\\' if quote != b'`' => self.escape(start, quote)?,
                b'\n' if quote != b'`' => return err(start, "unterminated quoted string"),
                c if c == quote => break,
                _ => {}
            }
        }
        self.push(Kind::Str, start);
        Ok(())
    }

    /// Checks the escape after a backslash as Prometheus's `lexEscape`.
    fn escape(&mut self, start: usize, quote: u8) -> Result<(), LexError> {
        let Some(c) = self.peek() else {
            return err(start, "escape sequence not terminated");
        };
        let (r, w) = rune_at(self.b, self.pos);
        self.pos += w;
        let (n, base, max): (usize, u32, u32) = match c {
            b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' => return Ok(()),
            c if c == quote => return Ok(()),
            b'0'..=b'7' => {
                self.pos -= 1;
                (3, 8, 255)
            }
            b'x' => (2, 16, 255),
            b'u' => (4, 16, 0x10FFFF),
            b'U' => (8, 16, 0x10FFFF),
            _ => {
                return err(
                    start,
                    format!("unknown escape sequence {}", unicode_format(r)),
                )
            }
        };
        let mut x: u32 = 0;
        for _ in 0..n {
            let Some(d) = self.peek() else {
                return err(start, "escape sequence not terminated");
            };
            let (r, w) = rune_at(self.b, self.pos);
            let Some(v) = r.to_digit(base) else {
                return err(
                    start,
                    format!("illegal character {} in escape sequence", unicode_format(r)),
                );
            };
            let _ = d;
            self.pos += w;
            x = x * base + v;
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return err(start, "escape sequence is an invalid Unicode code point");
        }
        Ok(())
    }

    fn inside_braces(&mut self) -> Result<(), LexError> {
        loop {
            let Some(c) = self.peek() else {
                return err(self.pos, "unexpected end of input inside braces");
            };
            let start = self.pos;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => self.comment(),
                b',' => {
                    self.pos += 1;
                    self.push(Kind::Other, start);
                }
                b'"' | b'\'' | b'`' => self.string(c)?,
                b'=' | b'!' => {
                    self.pos += 1;
                    if c == b'!' && !matches!(self.peek(), Some(b'=' | b'~')) {
                        let (r, _) = rune_at(self.b, self.pos);
                        return err(
                            start,
                            format!(
                                "unexpected character after '!' inside braces: {}",
                                quote_rune(r)
                            ),
                        );
                    }
                    self.accept(b"=~");
                    self.push(Kind::MatchOp, start);
                }
                b'}' => {
                    self.pos += 1;
                    self.push(Kind::RBrace, start);
                    return Ok(());
                }
                c if is_alpha(c) => {
                    while self.peek().is_some_and(is_alnum) {
                        self.pos += 1;
                    }
                    self.push(Kind::Ident, start);
                }
                _ => {
                    let (r, _) = rune_at(self.b, self.pos);
                    return err(
                        start,
                        format!("unexpected character inside braces: {}", quote_rune(r)),
                    );
                }
            }
        }
    }

    /// A comment runs to the end of the line (`\n` or `\r`, as Prometheus's lexer ends it).
    fn comment(&mut self) {
        while self.peek().is_some_and(|c| c != b'\n' && c != b'\r') {
            self.pos += 1;
        }
    }

    fn duration_in_brackets(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        if self.scan_number() {
            if self.v3 {
                self.push(Kind::Number, start);
                return Ok(());
            }
            return err(start, "missing unit character in duration");
        }
        if !self.accept_remaining_duration() {
            return err(
                start,
                format!(
                    "bad duration syntax: {}",
                    quote_bytes(&self.b[start..self.pos.min(self.b.len())])
                ),
            );
        }
        self.push(Kind::Duration, start);
        Ok(())
    }

    fn run(&mut self) -> Result<(), LexError> {
        loop {
            let Some(c) = self.peek() else {
                if self.paren_depth != 0 {
                    return err(self.pos, "unclosed left parenthesis");
                }
                if self.bracket_open {
                    return err(self.pos, "unclosed left bracket");
                }
                return Ok(());
            };
            let start = self.pos;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => self.comment(),
                b',' => {
                    self.pos += 1;
                    self.push(Kind::Other, start);
                }
                b'+' | b'-' | b'*' | b'/' | b'%' | b'^' => {
                    self.pos += 1;
                    self.push(Kind::Op, start);
                }
                b'=' => {
                    self.pos += 1;
                    if self.peek() == Some(b'~') {
                        return err(start, "unexpected character after '=': '~'");
                    }
                    self.accept(b"=");
                    self.push(Kind::Op, start);
                }
                b'!' => {
                    self.pos += 1;
                    if !self.accept(b"=") {
                        let (r, _) = rune_at(self.b, self.pos);
                        let r = if self.pos >= self.b.len() {
                            '\u{FFFD}'
                        } else {
                            r
                        };
                        return err(
                            start,
                            format!("unexpected character after '!': {}", quote_rune(r)),
                        );
                    }
                    self.push(Kind::Op, start);
                }
                b'<' | b'>' => {
                    self.pos += 1;
                    self.accept(b"=");
                    self.push(Kind::Op, start);
                }
                b'0'..=b'9' => self.number_or_duration()?,
                b'.' if self.b.get(self.pos + 1).is_some_and(u8::is_ascii_digit) => {
                    self.number_or_duration()?
                }
                b'"' | b'\'' | b'`' => self.string(c)?,
                c if is_alpha(c) || c == b':' => {
                    if !self.bracket_open {
                        while self.peek().is_some_and(|c| is_alnum(c) || c == b':') {
                            self.pos += 1;
                        }
                        let word = &self.b[start..self.pos];
                        let kind = if word.eq_ignore_ascii_case(b"inf")
                            || word.eq_ignore_ascii_case(b"nan")
                        {
                            Kind::Number
                        } else if ["and", "or", "unless", "atan2"]
                            .iter()
                            .any(|k| word.eq_ignore_ascii_case(k.as_bytes()))
                        {
                            Kind::Op
                        } else {
                            Kind::Ident
                        };
                        self.push(kind, start);
                    } else if self.v3 && c != b':' {
                        // Duration expressions call step(), range(), min_of(), max_of().
                        while self.peek().is_some_and(is_alnum) {
                            self.pos += 1;
                        }
                        self.push(Kind::Ident, start);
                    } else {
                        if self.got_colon || c != b':' {
                            let (r, _) = rune_at(self.b, self.pos);
                            return err(start, format!("unexpected character: {}", quote_rune(r)));
                        }
                        self.pos += 1;
                        self.got_colon = true;
                        self.push(Kind::Other, start);
                    }
                }
                b'(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.push(Kind::LParen, start);
                }
                b')' => {
                    self.pos += 1;
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        // Reported after the token, as Prometheus's lexer has moved on.
                        return err(self.pos, "unexpected right parenthesis ')'");
                    }
                    self.push(Kind::RParen, start);
                }
                b'{' => {
                    self.pos += 1;
                    self.push(Kind::LBrace, start);
                    self.inside_braces()?;
                }
                b'[' => {
                    if self.bracket_open {
                        return err(start, "unexpected left bracket '['");
                    }
                    self.pos += 1;
                    self.got_colon = false;
                    self.push(Kind::LBracket, start);
                    while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                        self.pos += 1;
                    }
                    self.bracket_open = true;
                    if !self.v3 {
                        self.duration_in_brackets()?;
                    }
                }
                b']' => {
                    if !self.bracket_open {
                        return err(start, "unexpected right bracket ']'");
                    }
                    self.pos += 1;
                    self.bracket_open = false;
                    self.push(Kind::RBracket, start);
                }
                b'@' => {
                    self.pos += 1;
                    self.push(Kind::At, start);
                }
                _ => {
                    let (r, _) = rune_at(self.b, self.pos);
                    return err(start, format!("unexpected character: {}", quote_rune(r)));
                }
            }
        }
    }

    fn number_or_duration(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        if self.scan_number() {
            self.push(Kind::Number, start);
            return Ok(());
        }
        // Prometheus goes on from where the number scan stopped.
        if self.accept_remaining_duration() {
            self.push(Kind::Duration, start);
            return Ok(());
        }
        err(
            start,
            format!(
                "bad number or duration syntax: {}",
                quote_bytes(&self.b[start..self.pos.min(self.b.len())])
            ),
        )
    }
}

/// The value of a number token as Prometheus reads it (integers in Go's bases, then floats).
pub(crate) fn go_number(s: &str) -> Option<f64> {
    match go_parse_int(s) {
        Some(v) => Some(v as f64),
        None => s.parse().ok(),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` for what the lexer accepts as a number.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (h, 16)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` error for a number token, if it has one.
fn go_float_error(s: &str) -> Option<String> {
    if go_parse_int(s).is_some() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower == "inf" || lower == "nan" || lower == "+inf" || lower == "-inf" {
        return None;
    }
    if lower.starts_with("0x") {
        // Go wants a 'p' exponent for hexadecimal floats, which the lexer never takes.
        return Some(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            quote_bytes(s.as_bytes())
        ));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() => Some(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote_bytes(s.as_bytes())
        )),
        Ok(_) => None,
        Err(_) => Some(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            quote_bytes(s.as_bytes())
        )),
    }
}

/// Prometheus's duration parsing (`model.ParseDuration` plus the zero check) as an error.
fn go_duration_error(s: &str) -> Option<String> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365),
        ("w", 1000 * 60 * 60 * 24 * 7),
        ("d", 1000 * 60 * 60 * 24),
        ("h", 1000 * 60 * 60),
        ("m", 1000 * 60),
        ("s", 1000),
        ("ms", 1),
    ];
    if s == "0" {
        return Some("duration must be greater than 0".into());
    }
    // Split into (digits, unit) parts and check the unit order of model.ParseDuration's regex.
    let b = s.as_bytes();
    let (mut i, mut next_unit, mut parts) = (0, 0, Vec::new());
    while i < b.len() {
        let ds = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[us..i];
        let Some(k) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Some(format!("not a valid duration string: {}", quote_bytes(b)));
        };
        if ds == us || k < next_unit {
            return Some(format!("not a valid duration string: {}", quote_bytes(b)));
        }
        next_unit = k + 1;
        parts.push((&s[ds..us], UNITS[k].1));
    }
    let mut dur: i64 = 0;
    let mut overflow = false;
    for (digits, mult) in parts {
        let n: i64 = digits.parse().unwrap_or(i64::MAX);
        if n > i64::MAX / mult {
            overflow = true;
        }
        let d = n.wrapping_mul(1_000_000);
        dur = dur.wrapping_add(d.wrapping_mul(mult));
        if dur < 0 {
            overflow = true;
        }
    }
    if overflow {
        return Some("duration out of range".into());
    }
    if dur == 0 {
        return Some("duration must be greater than 0".into());
    }
    None
}

/// Unquotes a string token's text (quotes included) to bytes, as Prometheus's `strutil.Unquote`.
fn unquote(s: &[u8]) -> Vec<u8> {
    let quote = s[0];
    let inner = &s[1..s.len().saturating_sub(1)];
    if quote == b'`' {
        return inner.to_vec();
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] != b'\\' || i + 1 >= inner.len() {
            out.push(inner[i]);
            i += 1;
            continue;
        }
        let c = inner[i + 1];
        i += 2;
        let simple = match c {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            continue;
        }
        let (n, base) = match c {
            b'x' => (2, 16),
            b'u' => (4, 16),
            b'U' => (8, 16),
            _ => {
                i -= 1;
                (3, 8)
            }
        };
        let end = (i + n).min(inner.len());
        let v = std::str::from_utf8(&inner[i..end])
            .ok()
            .and_then(|d| u32::from_str_radix(d, base).ok())
            .unwrap_or(0);
        i = end;
        if c == b'x' || base == 8 {
            out.push(v as u8);
        } else if let Some(ch) = char::from_u32(v) {
            let mut buf = [0; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// Go's regexp refuses repeat counts over 1000 and `{n,m}` with m < n; the repeat text as Go
/// quotes it, for the first such repeat.
fn go_regex_repeat_error(re: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut in_class = false;
    while i < re.len() {
        match re[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'{' if !in_class => {
                let rest = &re[i + 1..];
                if let Some(close) = rest.iter().position(|&c| c == b'}') {
                    let body = &rest[..close];
                    let text = String::from_utf8_lossy(body);
                    let (lo, hi) = match text.split_once(',') {
                        Some((a, b)) => (a.to_string(), Some(b.to_string())),
                        None => (text.to_string(), None),
                    };
                    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                    let valid =
                        digits(&lo) && hi.as_deref().is_none_or(|h| h.is_empty() || digits(h));
                    if valid {
                        let n: u64 = lo.parse().unwrap_or(u64::MAX);
                        let m: Option<u64> = hi
                            .as_deref()
                            .filter(|h| !h.is_empty())
                            .map(|h| h.parse().unwrap_or(u64::MAX));
                        if n > 1000 || m.is_some_and(|m| m > 1000 || m < n) {
                            let repeat = String::from_utf8_lossy(&re[i..i + close + 2]);
                            return Some(format!(
                                "error parsing regexp: invalid repeat count: `{repeat}`"
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Start of the expression an `@` at token index `at` applies to.
fn at_target_start(tokens: &[Token], at: usize) -> usize {
    let mut i = at;
    let matching = |i: &mut usize, open: Kind, close: Kind| {
        let mut depth = 0;
        while *i > 0 {
            *i -= 1;
            if tokens[*i].kind == close {
                depth += 1;
            } else if tokens[*i].kind == open {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
        }
    };
    let Some(mut k) = i.checked_sub(1) else {
        return tokens.get(at).map_or(0, |t| t.start);
    };
    // Skip an `offset <duration>` between the expression and `@`.
    if k >= 1 && tokens[k].kind == Kind::Duration && tokens[k - 1].kind == Kind::Ident {
        k -= 1;
        k = k.saturating_sub(1);
    }
    i = k + 1;
    while let Some(prev) = i.checked_sub(1) {
        match tokens[prev].kind {
            Kind::RBracket => {
                i = prev + 1;
                matching(&mut i, Kind::LBracket, Kind::RBracket);
            }
            Kind::RBrace => {
                i = prev + 1;
                matching(&mut i, Kind::LBrace, Kind::RBrace);
            }
            Kind::RParen => {
                i = prev + 1;
                matching(&mut i, Kind::LParen, Kind::RParen);
                if i > 0 && tokens[i - 1].kind == Kind::Ident {
                    i -= 1;
                }
                break;
            }
            Kind::Ident => {
                i = prev;
                break;
            }
            _ => break,
        }
    }
    tokens.get(i).map_or(0, |t| t.start)
}

/// Plain durations for 3.x's duration expressions: each range or subquery part in
/// brackets and each offset that is not a plain duration already.
fn duration_rewrites(
    input: &[u8],
    tokens: &[Token],
    shape: QueryShape,
) -> Result<Vec<(usize, usize, String)>, LexError> {
    let text = |k: usize| &input[tokens[k].start..tokens[k].end];
    let mut out = Vec::new();
    // `offset` is the token before an offset's duration: a zero offset is written as none,
    // since the parser takes no zero duration.
    let mut rewrite = |from: usize, to: usize, offset: Option<usize>| -> Result<(), LexError> {
        let part = &tokens[from..to];
        if part.is_empty() {
            return Ok(());
        }
        let plain = part.len() == 1 && part[0].kind == Kind::Duration;
        let ms = crate::durations::evaluate(input, part, shape, offset.is_some())?;
        let end = part[part.len() - 1].end;
        match offset {
            Some(o) if ms == 0 => out.push((tokens[o].start, end, " ".to_string())),
            _ if plain => {}
            _ => out.push((part[0].start, end, format!("{ms}ms"))),
        }
        Ok(())
    };
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].kind {
            Kind::LBracket => {
                let close = (i + 1..tokens.len())
                    .find(|&k| tokens[k].kind == Kind::RBracket)
                    .unwrap_or(tokens.len());
                let colon = (i + 1..close)
                    .find(|&k| tokens[k].kind == Kind::Other && text(k) == b":")
                    .unwrap_or(close);
                rewrite(i + 1, colon, None)?;
                if colon < close {
                    rewrite(colon + 1, close, None)?;
                }
                i = close;
            }
            Kind::Ident if text(i).eq_ignore_ascii_case(b"offset") => {
                if let Some(end) = crate::durations::offset_extent(input, tokens, i + 1) {
                    rewrite(i + 1, end, Some(i))?;
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(out)
}

/// Where the number token `i` stands in place of a duration: after `offset` (signed or
/// not), or as a subquery's step; the parser's context and expectation for the error.
fn duration_expected(
    input: &[u8],
    tokens: &[Token],
    i: usize,
    in_brackets: bool,
) -> Option<&'static str> {
    let text = |k: usize| &input[tokens[k].start..tokens[k].end];
    let is_offset =
        |k: usize| tokens[k].kind == Kind::Ident && text(k).eq_ignore_ascii_case(b"offset");
    let signed = i >= 2 && tokens[i - 1].kind == Kind::Op && matches!(text(i - 1), b"-" | b"+");
    if (i >= 1 && is_offset(i - 1)) || (signed && is_offset(i - 2)) {
        return Some("offset, expected duration");
    }
    let after_colon = i >= 1 && tokens[i - 1].kind == Kind::Other && text(i - 1) == b":";
    if after_colon && in_brackets {
        return Some("subquery selector, expected duration or \"]\"");
    }
    None
}

/// Lexes `input` as Prometheus 2.42 would and checks its literals.
pub fn lex(input: &[u8]) -> Result<Lexed, LexError> {
    lex_as(input, None)
}

/// The tokens of a query that lexes cleanly (as 3.x when `v3`).
#[cfg(test)]
pub(crate) fn tokens(input: &[u8], v3: bool) -> Option<Vec<Token>> {
    let shape = v3.then_some(QueryShape {
        step_ms: 1000,
        range_ms: 1000,
    });
    lex_as(input, shape).ok().map(|l| l.tokens)
}

/// [`lex`], or with a query shape as Prometheus 3.x: durations in brackets and after
/// `offset` may be numbers (seconds) or duration expressions, evaluated for the shape and
/// written as plain durations for the parser.
pub fn lex_as(input: &[u8], shape: Option<QueryShape>) -> Result<Lexed, LexError> {
    let v3 = shape.is_some();
    let mut l = Lexer {
        b: input,
        pos: 0,
        tokens: Vec::new(),
        paren_depth: 0,
        bracket_open: false,
        got_colon: false,
        v3,
    };
    l.run()?;
    let tokens = l.tokens;
    let mut nesting = 0;
    let mut in_brackets = false;
    for (i, t) in tokens.iter().enumerate() {
        let text = &input[t.start..t.end];
        match t.kind {
            Kind::LBracket => {
                nesting += 1;
                in_brackets = true;
            }
            Kind::RBracket => in_brackets = false,
            Kind::Op | Kind::LParen => nesting += 1,
            Kind::Number => {
                let s = std::str::from_utf8(text).unwrap_or_default();
                // 3.x reads numbers there as seconds: see `duration_rewrites`.
                let context = duration_expected(input, &tokens, i, in_brackets);
                if v3 && (in_brackets || context.is_some()) {
                    continue;
                }
                if let Some(context) = context {
                    // Prometheus's parser wants a duration here; it names the number as its
                    // `Item.String` does (ten characters at most).
                    let shown = if s.len() > 10 {
                        format!("{}...", quote_bytes(&text[..10]))
                    } else {
                        quote_bytes(text)
                    };
                    return err(t.start, format!("unexpected number {shown} in {context}"));
                }
                if let Some(e) = go_float_error(s) {
                    return err(t.start, format!("error parsing number: {e}"));
                }
                let sign = |k: usize| {
                    tokens[k].kind == Kind::Op
                        && matches!(&input[tokens[k].start..tokens[k].end], b"-" | b"+")
                };
                let at = if i >= 1 && tokens[i - 1].kind == Kind::At {
                    Some((i - 1, false))
                } else if i >= 2 && tokens[i - 2].kind == Kind::At && sign(i - 1) {
                    Some((
                        i - 2,
                        &input[tokens[i - 1].start..tokens[i - 1].end] == b"-",
                    ))
                } else {
                    None
                };
                if let Some((at, neg)) = at {
                    let v: f64 =
                        go_parse_int(s).map_or_else(|| s.parse().unwrap_or(f64::NAN), |v| v as f64);
                    let v = if neg { -v } else { v };
                    if !v.is_finite() || v >= i64::MAX as f64 || v <= i64::MIN as f64 {
                        let shown = if v.is_nan() {
                            "NaN".to_string()
                        } else if v.is_infinite() {
                            if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
                        } else {
                            format!("{v:.6}")
                        };
                        return err(
                            at_target_start(&tokens, at),
                            format!("timestamp out of bounds for @ modifier: {shown}"),
                        );
                    }
                }
            }
            // 3.x checks bracketed durations as whole expressions (`[30m+0s]`).
            Kind::Duration if v3 && in_brackets => {}
            Kind::Duration => {
                let s = std::str::from_utf8(text).unwrap_or_default();
                if let Some(e) = go_duration_error(s) {
                    return err(t.start, e);
                }
            }
            // A regex matcher: label name, `=~`/`!~`, string.
            Kind::Str
                if i >= 2
                    && tokens[i - 1].kind == Kind::MatchOp
                    && tokens[i - 2].kind == Kind::Ident
                    && matches!(
                        &input[tokens[i - 1].start..tokens[i - 1].end],
                        b"=~" | b"!~"
                    ) =>
            {
                if let Some(e) = go_regex_repeat_error(&unquote(text)) {
                    return err(tokens[i - 2].start, e);
                }
            }
            _ => {}
        }
    }
    let mut edits = match shape {
        Some(shape) => duration_rewrites(input, &tokens, shape)?,
        None => Vec::new(),
    };
    if v3 {
        edits.extend(trim_rewrites(input, &tokens));
    }
    edits.extend(byte_escape_rewrites(input, &tokens));
    let rewritten = rewrite(input, &tokens, edits);
    Ok(Lexed {
        nesting,
        rewritten,
        tokens,
    })
}

/// Labels a trim operator leaves in the `group_right` list of the comparison it is written
/// as (see [`trim_rewrites`]): the first two mark a group the rewrite added (the operator
/// is one-to-one), the last two one the query had. No series has them, so nothing else
/// changes; the engine reads them back as the operator.
pub(crate) const TRIM_UPPER_MARK: &str = "__trim_upper__";
pub(crate) const TRIM_LOWER_MARK: &str = "__trim_lower__";
pub(crate) const TRIM_UPPER_GROUPED_MARK: &str = "__trim_upper_grouped__";
pub(crate) const TRIM_LOWER_GROUPED_MARK: &str = "__trim_lower_grouped__";

/// 3.11's histogram trim operators `</` and `>/`, which the grammar parser does not know,
/// written as `<` and `>` with a marker group label: `a </ b` becomes
/// `a < ignoring() group_right(__trim_upper__) b` (an empty `ignoring()` is allowed with a
/// number operand too), `a >/ on(x) b` becomes `a > on(x) group_right(__trim_lower__) b`,
/// and a group the query has gets the marker first in its list.
fn trim_rewrites(input: &[u8], tokens: &[Token]) -> Vec<(usize, usize, String)> {
    let text = |t: &Token| &input[t.start..t.end];
    let word = |k: usize, w: &[u8]| {
        tokens
            .get(k)
            .is_some_and(|t| t.kind == Kind::Ident && text(t).eq_ignore_ascii_case(w))
    };
    let kind_at = |k: usize, kind: Kind| tokens.get(k).is_some_and(|t| t.kind == kind);
    let mut out = Vec::new();
    for (i, w) in tokens.windows(2).enumerate() {
        let (op, slash) = (&w[0], &w[1]);
        if op.kind != Kind::Op || slash.kind != Kind::Op || slash.start != op.end {
            continue;
        }
        let (sign, mark, grouped_mark) = match (text(op), text(slash)) {
            (b"<", b"/") => ("<", TRIM_UPPER_MARK, TRIM_UPPER_GROUPED_MARK),
            (b">", b"/") => (">", TRIM_LOWER_MARK, TRIM_LOWER_GROUPED_MARK),
            _ => continue,
        };
        out.push((op.start, slash.end, sign.to_string()));
        // bool (refused later by the engine), on/ignoring (...), group_left/right [(...)].
        let mut j = i + 2;
        let mut insert_at = slash.end;
        if word(j, b"bool") {
            insert_at = tokens[j].end;
            j += 1;
        }
        let matching = (word(j, b"on") || word(j, b"ignoring")) && kind_at(j + 1, Kind::LParen);
        if matching {
            let close = (j + 2..tokens.len()).find(|&k| tokens[k].kind == Kind::RParen);
            match close {
                Some(k) => {
                    insert_at = tokens[k].end;
                    j = k + 1;
                }
                None => continue,
            }
        }
        if matching && (word(j, b"group_left") || word(j, b"group_right")) {
            if kind_at(j + 1, Kind::LParen) {
                let lparen = &tokens[j + 1];
                let insert = if kind_at(j + 2, Kind::RParen) {
                    grouped_mark.to_string()
                } else {
                    format!("{grouped_mark}, ")
                };
                out.push((lparen.end, lparen.end, insert));
            } else {
                out.push((tokens[j].end, tokens[j].end, format!("({grouped_mark})")));
            }
        } else if matching {
            out.push((insert_at, insert_at, format!(" group_right({mark})")));
        } else {
            out.push((
                insert_at,
                insert_at,
                format!(" ignoring() group_right({mark})"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_escapes_reach_the_parser_as_go_reads_them() {
        let rewritten = |q: &str| lex(q.as_bytes()).unwrap().rewritten;
        assert_eq!(
            rewritten(r#"x{a="\xc3\xa9\303\251"}"#).unwrap(),
            "x{a=\"éé\"}"
        );
        let parsed = crate::parse::parse(r#"count_values('a\xc5"z', x)"#, Default::default());
        let Ok(promql_parser::parser::Expr::Aggregate(a)) = parsed else {
            panic!("{parsed:?}");
        };
        let Some(promql_parser::parser::Expr::StringLiteral(label)) = a.param.as_deref() else {
            panic!("{:?}", a.param);
        };
        assert!(has_raw_bytes(&label.val));
        assert_eq!(go_quote(&label.val), r#""a\xc5\"z""#);
        // Escapes within ASCII are left to the parser, which reads them as Go does.
        assert_eq!(rewritten(r#"x{a="\x41\n"}"#), None);
        assert!(!has_raw_bytes("é\u{10FF7F}"));
    }

    #[test]
    fn trim_operators_are_written_as_marked_comparisons() {
        let shape = Some(QueryShape::default());
        let rewritten = |q: &str| lex_as(q.as_bytes(), shape).unwrap().rewritten.unwrap();
        assert_eq!(
            rewritten("h </ 5"),
            "h < ignoring() group_right(__trim_upper__) 5"
        );
        assert_eq!(
            rewritten("h >/ on(a) x"),
            "h > on(a) group_right(__trim_lower__) x"
        );
        assert_eq!(
            rewritten("h </ ignoring(a) group_left(b) x"),
            "h < ignoring(a) group_left(__trim_upper_grouped__, b) x"
        );
        assert_eq!(
            rewritten("h </ on() group_left x"),
            "h < on() group_left(__trim_upper_grouped__) x"
        );
        // A comparison followed by a division is not a trim.
        assert!(lex_as(b"h < /x/", shape).is_ok_and(|l| l.rewritten.is_none()));
        // 2.42 has no trims.
        assert!(lex(b"h </ 5").unwrap().rewritten.is_none());
    }

    fn error_of(q: &[u8]) -> String {
        match lex(q) {
            Ok(_) => String::new(),
            Err(e) => e.render(q),
        }
    }

    #[test]
    fn errors_as_prometheus() {
        let cases: &[(&[u8], &str)] = &[
            (b"1e309", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e309\": value out of range"),
            (b"x @ 1e309", "1:5: parse error: error parsing number: strconv.ParseFloat: parsing \"1e309\": value out of range"),
            (b"x[10000000y]", "1:3: parse error: duration out of range"),
            (b"x @ 1e30", "1:1: parse error: timestamp out of bounds for @ modifier: 1000000000000000019884624838656.000000"),
            (b"sum(rate(x[5m] @ Inf))", "1:10: parse error: timestamp out of bounds for @ modifier: +Inf"),
            (br#"up{a=~"a{0,30000}"}"#, "1:4: parse error: error parsing regexp: invalid repeat count: `{0,30000}`"),
            (b"foo{a=\"\xff\"}", "1:7: parse error: invalid UTF-8 rune"),
            ("foo{a=\"\u{FFFD}\"}".as_bytes(), "1:7: parse error: invalid UTF-8 rune"),
            (b"up\xff", "1:3: parse error: unexpected character: '\u{FFFD}'"),
            (b"sum(up", "1:7: parse error: unclosed left parenthesis"),
            (b"up)", "1:4: parse error: unexpected right parenthesis ')'"),
            (b"x offset 1h2y", "1:10: parse error: bad number or duration syntax: \"1h2\""),
            (b"m[5m:10]", "1:6: parse error: unexpected number \"10\" in subquery selector, expected duration or \"]\""),
            (
                b"m[5m:4444444444444444444444444444444444444444440]",
                "1:6: parse error: unexpected number \"4444444444\"... in subquery selector, expected duration or \"]\"",
            ),
            (b"m offset 10", "1:10: parse error: unexpected number \"10\" in offset, expected duration"),
            (b"m offset -1e80", "1:11: parse error: unexpected number \"1e80\" in offset, expected duration"),
            (b"1_000", "1:1: parse error: bad number or duration syntax: \"1\""),
            (b"x[5]", "1:3: parse error: missing unit character in duration"),
            (b"x[0s]", "1:3: parse error: duration must be greater than 0"),
            (b"x[1h2y]", "1:3: parse error: bad duration syntax: \"1h2\""),
            (b"x[1h1d]", "1:3: parse error: not a valid duration string: \"1h1d\""),
            (b"\"abc", "1:1: parse error: unterminated quoted string"),
            (b"\"\\q\"", "1:1: parse error: unknown escape sequence U+0071 'q'"),
            (b"a\n  $", "2:3: parse error: unexpected character: '$'"),
            (b"#\rx[6e1045]m", "1:5: parse error: missing unit character in duration"),
            (b"{a=~\"x\" ; }", "1:9: parse error: unexpected character inside braces: ';'"),
        ];
        for (q, want) in cases {
            assert_eq!(&error_of(q), want, "query {:?}", String::from_utf8_lossy(q));
        }
    }

    #[test]
    fn accepts_ordinary_queries() {
        for q in [
            "sum by (job) (rate(http_requests_total{job=~\"a|b\", x!=\"\"}[5m] offset 1h @ 100))",
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
            "max_over_time(rate(x[5m])[1h:1m]) # comment",
            "x{a=~'b{2,3}'} and on(a) y or z unless w",
            "0x1F + 010 + .5 + 1e3 + Inf + NaN",
            "`raw\\q`",
            "x[1h30m] offset -5m",
        ] {
            assert!(lex(q.as_bytes()).is_ok(), "{q}: {:?}", lex(q.as_bytes()));
        }
    }

    #[test]
    fn nesting_counts_operators_and_brackets() {
        let q = vec!["1"; 2000].join("+");
        assert_eq!(lex(q.as_bytes()).unwrap().nesting, 1999);
        let q = format!("{}x{}", "abs(".repeat(5000), ")".repeat(5000));
        assert_eq!(lex(q.as_bytes()).unwrap().nesting, 5000);
        assert_eq!(lex(b"x{a=\"+-*\"}").unwrap().nesting, 0);
    }
}

/// A series selector as `ParseMetricSelector` reads it: an optional metric name and label
/// matchers (`=`, `!=`, `=~`, `!~`) with their values unquoted.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<(String, String, Vec<u8>)>,
}

/// Reads `input` as a plain series selector, without the checks a query's selector gets
/// (`{}` and `{a=""}` pass, as in Prometheus's `ParseMetricSelector`): lexing errors and Go's
/// regexp repeat limits are errors; `Ok(None)` when it is not a selector (the caller then
/// takes the parser's error).
pub fn parse_selector(input: &[u8]) -> Result<Option<Selector>, LexError> {
    let mut l = Lexer {
        b: input,
        pos: 0,
        tokens: Vec::new(),
        paren_depth: 0,
        bracket_open: false,
        got_colon: false,
        v3: false,
    };
    l.run()?;
    let toks = l.tokens;
    let text = |t: &Token| &input[t.start..t.end];
    let mut i = 0;
    let mut sel = Selector {
        name: None,
        matchers: Vec::new(),
    };
    if let Some(t) = toks.first() {
        if t.kind == Kind::Ident {
            sel.name = Some(String::from_utf8_lossy(text(t)).into_owned());
            i = 1;
        }
    }
    if i < toks.len() {
        if toks[i].kind != Kind::LBrace {
            return Ok(None);
        }
        i += 1;
        loop {
            let Some(tok) = toks.get(i) else {
                return Ok(None);
            };
            match tok.kind {
                Kind::RBrace => {
                    i += 1;
                    break;
                }
                // A quoted name alone is the metric name (3.x UTF-8 names).
                Kind::Str if toks.get(i + 1).is_none_or(|t| t.kind != Kind::MatchOp) => {
                    sel.matchers.push((
                        "__name__".to_string(),
                        "=".to_string(),
                        unquote(text(tok)),
                    ));
                    i += 1;
                    match toks.get(i).map(|t| t.kind) {
                        Some(Kind::Other) if text(&toks[i]) == b"," => i += 1,
                        Some(Kind::RBrace) => {}
                        _ => return Ok(None),
                    }
                }
                Kind::Ident | Kind::Str => {
                    let (Some(op), Some(val)) = (toks.get(i + 1), toks.get(i + 2)) else {
                        return Ok(None);
                    };
                    if op.kind != Kind::MatchOp || val.kind != Kind::Str {
                        return Ok(None);
                    }
                    if matches!(text(op), b"=~" | b"!~") {
                        if let Some(e) = go_regex_repeat_error(&unquote(text(val))) {
                            return err(toks[i].start, e);
                        }
                    }
                    let name = match tok.kind {
                        Kind::Str => String::from_utf8_lossy(&unquote(text(tok))).into_owned(),
                        _ => String::from_utf8_lossy(text(tok)).into_owned(),
                    };
                    sel.matchers.push((
                        name,
                        String::from_utf8_lossy(text(op)).into_owned(),
                        unquote(text(val)),
                    ));
                    i += 3;
                    match toks.get(i).map(|t| t.kind) {
                        Some(Kind::Other) if text(&toks[i]) == b"," => i += 1,
                        Some(Kind::RBrace) => {}
                        _ => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        }
    }
    Ok((i == toks.len() && (sel.name.is_some() || i > 0)).then_some(sel))
}
