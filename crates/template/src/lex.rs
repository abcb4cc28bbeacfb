//! Tokenizer for Go's template syntax: text between `{{ }}` actions, the
//! tokens inside actions, trim markers (`{{- `, ` -}}`) and comments.
//!
//! Positions are byte offsets into the whole input and lines are 1-based,
//! computed the way Go's lexer does so error messages carry the same numbers.

use crate::strconv::{is_print, quote};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords (printed as `<word>` in errors).
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Tok {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Tok::Block
                | Tok::Break
                | Tok::Continue
                | Tok::Dot
                | Tok::Define
                | Tok::Else
                | Tok::End
                | Tok::If
                | Tok::Nil
                | Tok::Range
                | Tok::Template
                | Tok::With
        )
    }
}

fn keyword(word: &str) -> Option<Tok> {
    Some(match word {
        "." => Tok::Dot,
        "block" => Tok::Block,
        "break" => Tok::Break,
        "continue" => Tok::Continue,
        "define" => Tok::Define,
        "else" => Tok::Else,
        "end" => Tok::End,
        "if" => Tok::If,
        "range" => Tok::Range,
        "nil" => Tok::Nil,
        "template" => Tok::Template,
        "with" => Tok::With,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub typ: Tok,
    pub pos: usize,
    pub val: String,
    pub line: usize,
}

impl std::fmt::Display for Item {
    /// How an item is named in "unexpected ..." parse errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.typ {
            Tok::Eof => f.write_str("EOF"),
            Tok::Error => f.write_str(&self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.len() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", quote(&head))
            }
            _ => f.write_str(&quote(&self.val)),
        }
    }
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space_byte(b[1])
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space_byte(b[0]) && b[1] == b'-'
}

/// Go's `%#U` rendering of a character: `U+00E9 'é'`.
fn sharp_u(c: char) -> String {
    let mut s = format!("U+{:04X}", c as u32);
    if is_print(c) {
        s.push_str(&format!(" '{c}'"));
    }
    s
}

pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    at_eof: bool,
    paren_depth: i64,
    line: usize,
    start_line: usize,
    inside_action: bool,
    /// Once an error or EOF is emitted, every later call yields EOF.
    dead: bool,
    eof_pos: usize,
    /// An error to report right after the item just returned.
    pending: Option<String>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Lexer {
            input,
            pos: 0,
            start: 0,
            at_eof: false,
            paren_depth: 0,
            line: 1,
            start_line: 1,
            inside_action: false,
            dead: false,
            eof_pos: 0,
            pending: None,
        }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn next(&mut self) -> Option<char> {
        match self.rest().chars().next() {
            None => {
                self.at_eof = true;
                None
            }
            Some(c) => {
                self.pos += c.len_utf8();
                if c == '\n' {
                    self.line += 1;
                }
                Some(c)
            }
        }
    }

    fn backup(&mut self) {
        if !self.at_eof && self.pos > 0 {
            if let Some(c) = self.input[..self.pos].chars().next_back() {
                self.pos -= c.len_utf8();
                if c == '\n' {
                    self.line -= 1;
                }
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        let c = self.next();
        self.backup();
        c
    }

    fn this_item(&mut self, typ: Tok) -> Item {
        let item = Item {
            typ,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
            line: self.start_line,
        };
        self.start = self.pos;
        self.start_line = self.line;
        item
    }

    fn ignore(&mut self) {
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while let Some(c) = self.next() {
            if !valid.contains(c) {
                break;
            }
        }
        self.backup();
    }

    fn error(&mut self, msg: String) -> Item {
        let item = Item {
            typ: Tok::Error,
            pos: self.start,
            val: msg,
            line: self.start_line,
        };
        self.dead = true;
        item
    }

    /// Returns the next item; after EOF or an error, EOF forever.
    pub(crate) fn next_item(&mut self) -> Item {
        if let Some(msg) = self.pending.take() {
            return self.error(msg);
        }
        if self.dead {
            return Item {
                typ: Tok::Eof,
                pos: self.eof_pos,
                val: String::new(),
                line: self.start_line,
            };
        }
        if self.inside_action {
            self.lex_inside_action()
        } else {
            self.lex_text()
        }
    }

    fn lex_text(&mut self) -> Item {
        loop {
            match self.rest().find(LEFT) {
                Some(x) => {
                    if x > 0 {
                        self.pos += x;
                        let delim_end = self.pos + LEFT.len();
                        let trim = if has_left_trim(&self.input[delim_end..]) {
                            let t = &self.input[self.start..self.pos];
                            t.len() - t.trim_end_matches(is_space).len()
                        } else {
                            0
                        };
                        self.pos -= trim;
                        self.line += self.input[self.start..self.pos].matches('\n').count();
                        let item = self.this_item(Tok::Text);
                        self.pos += trim;
                        self.ignore();
                        if !item.val.is_empty() {
                            return item;
                        }
                    }
                    if let Some(item) = self.lex_left_delim() {
                        return item;
                    }
                    // A comment was skipped: keep scanning text.
                }
                None => {
                    self.pos = self.input.len();
                    if self.pos > self.start {
                        self.line += self.input[self.start..self.pos].matches('\n').count();
                        return self.this_item(Tok::Text);
                    }
                    let item = self.this_item(Tok::Eof);
                    self.dead = true;
                    self.eof_pos = item.pos;
                    return item;
                }
            }
        }
    }

    /// Scans `{{`; returns None when it began a comment that was skipped
    /// (or Some(error) when the comment is malformed).
    fn lex_left_delim(&mut self) -> Option<Item> {
        self.pos += LEFT.len();
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with(LEFT_COMMENT) {
            self.pos += after;
            self.ignore();
            return self.lex_comment();
        }
        let item = self.this_item(Tok::LeftDelim);
        self.inside_action = true;
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        Some(item)
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim(rest) && rest[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (rest.starts_with(RIGHT), false)
    }

    fn lex_comment(&mut self) -> Option<Item> {
        self.pos += LEFT_COMMENT.len();
        let x = match self.rest().find(RIGHT_COMMENT) {
            Some(x) => x,
            None => return Some(self.error("unclosed comment".into())),
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return Some(self.error("comment ends before closing delimiter".into()));
        }
        self.line += self.input[self.start..self.pos].matches('\n').count();
        let _comment = self.this_item(Tok::Text);
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
        }
        self.ignore();
        None
    }

    fn lex_right_delim(&mut self) -> Item {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT.len();
        let item = self.this_item(Tok::RightDelim);
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
            self.ignore();
        }
        self.inside_action = false;
        item
    }

    fn lex_inside_action(&mut self) -> Item {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.lex_right_delim();
            }
            return self.error("unclosed left paren".into());
        }
        let c = match self.next() {
            None => return self.error("unclosed action".into()),
            Some(c) => c,
        };
        match c {
            c if is_space(c) => {
                self.backup();
                self.lex_space()
            }
            '=' => self.this_item(Tok::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.this_item(Tok::Declare)
            }
            '|' => self.this_item(Tok::Pipe),
            '"' => self.lex_quote(),
            '`' => self.lex_raw_quote(),
            '$' => self.lex_variable(),
            '\'' => self.lex_char(),
            '.' => {
                let b = self.input.as_bytes().get(self.pos).copied();
                match b {
                    Some(b) if !b.is_ascii_digit() => self.lex_field_or_variable(Tok::Field),
                    _ => {
                        self.backup();
                        self.lex_number()
                    }
                }
            }
            '+' | '-' | '0'..='9' => {
                self.backup();
                self.lex_number()
            }
            c if is_alnum(c) => {
                self.backup();
                self.lex_identifier()
            }
            '(' => {
                self.paren_depth += 1;
                self.this_item(Tok::LeftParen)
            }
            ')' => {
                // Go 1.19 emits the paren first, then the error.
                let item = self.this_item(Tok::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    self.pending = Some(format!("unexpected right paren {}", sharp_u(')')));
                }
                item
            }
            c if (c as u32) < 0x80 && is_print(c) => self.this_item(Tok::Char),
            c => self.error(format!("unrecognized character in action: {}", sharp_u(c))),
        }
    }

    fn lex_space(&mut self) -> Item {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            n += 1;
        }
        let before = &self.input[self.pos.saturating_sub(1)..];
        if has_right_trim(before) && before[2..].starts_with(RIGHT) {
            self.backup();
            if n == 1 {
                return self.lex_right_delim();
            }
        }
        self.this_item(Tok::Space)
    }

    fn lex_identifier(&mut self) -> Item {
        loop {
            match self.next() {
                Some(c) if is_alnum(c) => {}
                other => {
                    self.backup();
                    if !self.at_terminator() {
                        return self.error(format!("bad character {}", sharp_u_opt(other)));
                    }
                    let word = &self.input[self.start..self.pos];
                    if let Some(k) = keyword(word) {
                        return self.this_item(k);
                    }
                    if word.starts_with('.') {
                        return self.this_item(Tok::Field);
                    }
                    if word == "true" || word == "false" {
                        return self.this_item(Tok::Bool);
                    }
                    return self.this_item(Tok::Identifier);
                }
            }
        }
    }

    fn lex_variable(&mut self) -> Item {
        if self.at_terminator() {
            return self.this_item(Tok::Variable);
        }
        self.lex_field_or_variable(Tok::Variable)
    }

    fn lex_field_or_variable(&mut self, typ: Tok) -> Item {
        if self.at_terminator() {
            return self.this_item(if typ == Tok::Variable {
                Tok::Variable
            } else {
                Tok::Dot
            });
        }
        let mut last;
        loop {
            last = self.next();
            match last {
                Some(c) if is_alnum(c) => {}
                _ => {
                    self.backup();
                    break;
                }
            }
        }
        if !self.at_terminator() {
            return self.error(format!("bad character {}", sharp_u_opt(last)));
        }
        self.this_item(typ)
    }

    fn at_terminator(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn lex_char(&mut self) -> Item {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.error("unterminated character constant".into()),
                },
                None | Some('\n') => return self.error("unterminated character constant".into()),
                Some('\'') => break,
                _ => {}
            }
        }
        self.this_item(Tok::CharConstant)
    }

    fn lex_number(&mut self) -> Item {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_string();
            return self.error(format!("bad number syntax: {}", quote(&text)));
        }
        if let Some('+' | '-') = self.peek() {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let text = self.input[self.start..self.pos].to_string();
                return self.error(format!("bad number syntax: {}", quote(&text)));
            }
            return self.this_item(Tok::Complex);
        }
        self.this_item(Tok::Number)
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if let Some(c) = self.peek() {
            if is_alnum(c) {
                self.next();
                return false;
            }
        }
        true
    }

    fn lex_quote(&mut self) -> Item {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.error("unterminated quoted string".into()),
                },
                None | Some('\n') => return self.error("unterminated quoted string".into()),
                Some('"') => break,
                _ => {}
            }
        }
        self.this_item(Tok::String)
    }

    fn lex_raw_quote(&mut self) -> Item {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.this_item(Tok::RawString)
    }
}

/// `%#U` of the character that stopped a scan; Go prints U+FFFFFFFF for EOF.
fn sharp_u_opt(c: Option<char>) -> String {
    match c {
        Some(c) => sharp_u(c),
        None => "U+FFFFFFFFFFFFFFFF".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Tok, String)> {
        let mut l = Lexer::new(s);
        let mut out = Vec::new();
        loop {
            let it = l.next_item();
            let done = matches!(it.typ, Tok::Eof | Tok::Error);
            out.push((it.typ, it.val));
            if done {
                break;
            }
        }
        out
    }

    #[test]
    fn trims_and_comments() {
        let k = kinds("a  {{- 1 -}}  b{{/* c */}}d");
        let v: Vec<_> = k.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(v, vec!["a", "{{", "1", "}}", "b", "d", ""]);
    }

    #[test]
    fn fields_and_numbers() {
        let k = kinds("{{.Labels.x $v 1.5e3 -2 'a' `r`}}");
        let t: Vec<_> = k.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            t,
            vec![
                Tok::LeftDelim,
                Tok::Field,
                Tok::Field,
                Tok::Space,
                Tok::Variable,
                Tok::Space,
                Tok::Number,
                Tok::Space,
                Tok::Number,
                Tok::Space,
                Tok::CharConstant,
                Tok::Space,
                Tok::RawString,
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            kinds("{{").last().map(|x| x.1.clone()),
            Some("unclosed action".into())
        );
        assert_eq!(
            kinds("{{\u{a0}}}").last().map(|x| x.1.clone()),
            Some("unrecognized character in action: U+00A0".into())
        );
    }
}
