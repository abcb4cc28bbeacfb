//! Go's RE2 regular-expression syntax on top of the `regex` crate.
//!
//! The pattern is walked once, left to right like Go's parser: Go-only
//! rules are checked there (with Go's error texts), and the pattern is
//! rewritten where the two dialects differ — Go's `\d \w \s \b` are ASCII,
//! `\<` is a literal, `\Q..\E` quotes, octal escapes exist, and inside a
//! class `&&`, `--`, `~~` and `[` are plain characters.

use regex::Regex;

fn err(code: &str, expr: &str) -> String {
    format!("error parsing regexp: {code}: `{expr}`")
}

/// Hex escape of one character, safe in and out of classes.
fn lit(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == '_' {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", c as u32)
    }
}

const PERL_D: &str = "0-9";
const PERL_S: &str = "\\t\\n\\x0C\\r ";
const PERL_W: &str = "0-9A-Za-z_";

fn perl_class(c: char) -> Option<(&'static str, bool)> {
    match c {
        'd' => Some((PERL_D, false)),
        'D' => Some((PERL_D, true)),
        's' => Some((PERL_S, false)),
        'S' => Some((PERL_S, true)),
        'w' => Some((PERL_W, false)),
        'W' => Some((PERL_W, true)),
        _ => None,
    }
}

struct Walker<'a> {
    src: &'a str,
    pos: usize,
    out: String,
    /// Open groups.
    depth: usize,
    /// Whether the last item can take a repetition operator.
    have_operand: bool,
    /// Start offset of the previous repetition operator, if the last item was one.
    last_repeat: Option<usize>,
    /// Whether `U` (swap greediness) is in effect for Go at this point, and
    /// in the emitted pattern (they differ while a flag group is pending).
    go_ungreedy: bool,
    out_ungreedy: bool,
    /// Flag groups not yet emitted: Go lets `a(?i)*` repeat `a`, which the
    /// regex crate rejects, so flags are emitted just before the next item.
    pending_flags: String,
    /// Saved (go_ungreedy, out_ungreedy, output offset) per open group.
    saved: Vec<(bool, bool, usize)>,
    /// Output offset where the last item (with its repetitions) starts.
    item_start: usize,
    /// Whether the output ends with a repetition operator.
    out_repeated: bool,
}

impl<'a> Walker<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn flush_flags(&mut self) {
        if !self.pending_flags.is_empty() {
            let f = std::mem::take(&mut self.pending_flags);
            self.out.push_str(&f);
        }
        self.out_ungreedy = self.go_ungreedy;
    }

    fn open_group(&mut self, text: &str) {
        self.flush_flags();
        self.saved
            .push((self.go_ungreedy, self.out_ungreedy, self.out.len()));
        self.out.push_str(text);
        self.out_repeated = false;
        self.depth += 1;
        self.have_operand = false;
        self.last_repeat = None;
    }

    fn operand(&mut self, text: &str) {
        self.flush_flags();
        self.item_start = self.out.len();
        self.out_repeated = false;
        self.out.push_str(text);
        self.have_operand = true;
        self.last_repeat = None;
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                '(' => {
                    self.bump();
                    if self.peek() == Some('?') {
                        self.perl_flags(start)?;
                    } else {
                        self.open_group("(");
                    }
                }
                ')' => {
                    self.bump();
                    if self.depth == 0 {
                        return Err(err("unexpected )", self.src));
                    }
                    self.depth -= 1;
                    self.operand(")");
                    if let Some((g, o, at)) = self.saved.pop() {
                        self.go_ungreedy = g;
                        self.out_ungreedy = o;
                        self.item_start = at;
                    }
                }
                '|' => {
                    self.bump();
                    self.flush_flags();
                    self.out.push('|');
                    self.out_repeated = false;
                    self.have_operand = false;
                    self.last_repeat = None;
                }
                '^' | '$' | '.' => {
                    self.bump();
                    self.operand(&c.to_string());
                }
                '[' => {
                    let class = self.class()?;
                    self.operand(&class);
                }
                '*' | '+' | '?' => {
                    self.bump();
                    self.repeat(start, &c.to_string())?;
                }
                '{' => {
                    self.bump();
                    match self.repeat_count(start)? {
                        Some(text) => self.repeat(start, &text)?,
                        None => self.operand("\\{"),
                    }
                }
                '\\' => self.escape()?,
                c => {
                    self.bump();
                    self.operand(&lit(c));
                }
            }
        }
        if self.depth > 0 {
            return Err(err("missing closing )", self.src));
        }
        self.flush_flags();
        Ok(())
    }

    fn repeat(&mut self, start: usize, op: &str) -> Result<(), String> {
        let mut op = op.to_string();
        let mut question = false;
        if self.peek() == Some('?') {
            self.bump();
            question = true;
        }
        // Laziness as Go decides it, spelled for the emitted flag state.
        if (self.go_ungreedy != question) != self.out_ungreedy {
            op.push('?');
        }
        if let Some(prev) = self.last_repeat {
            return Err(err(
                "invalid nested repetition operator",
                &self.src[prev..self.pos],
            ));
        }
        if !self.have_operand {
            return Err(err(
                "missing argument to repetition operator",
                &self.src[start..self.pos],
            ));
        }
        if self.out_repeated {
            // Go allows `a*(?i)?` (flags reset the nesting check): repeat the
            // repetition as a group, not as a laziness marker.
            let inner = self.out.split_off(self.item_start);
            self.out.push_str("(?:");
            self.out.push_str(&inner);
            self.out.push(')');
        }
        self.out.push_str(&op);
        self.out_repeated = true;
        self.last_repeat = Some(start);
        Ok(())
    }

    /// After `{`: a valid `{n}`, `{n,}` or `{n,m}` (returned), or None when
    /// the brace is a literal.
    fn repeat_count(&mut self, start: usize) -> Result<Option<String>, String> {
        let rest = self.rest();
        let close = match rest.find('}') {
            Some(i) => i,
            None => return Ok(None),
        };
        let inner = &rest[..close];
        let (lo, hi) = match inner.split_once(',') {
            Some((a, b)) => (a, Some(b)),
            None => (inner, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || hi.is_some_and(|h| !h.is_empty() && !digits(h)) {
            return Ok(None);
        }
        self.pos += close + 1;
        let n: u64 = lo.parse().unwrap_or(u64::MAX);
        let m: Option<u64> = match hi {
            None => Some(n),
            Some("") => None,
            Some(h) => Some(h.parse().unwrap_or(u64::MAX)),
        };
        if n > 1000 || m.is_some_and(|m| m > 1000 || m < n) {
            return Err(err("invalid repeat count", &self.src[start..self.pos]));
        }
        Ok(Some(self.src[start..self.pos].to_string()))
    }

    /// `(?` constructs: named groups and flag groups.
    fn perl_flags(&mut self, start: usize) -> Result<(), String> {
        let rest = self.rest();
        if rest.starts_with("?P<") && rest.len() > 3 {
            let end = match rest.find('>') {
                Some(e) => e,
                None => return Err(err("invalid named capture", &self.src[start..])),
            };
            let name = &rest[3..end];
            let full_end = self.pos + end + 1;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err("invalid named capture", &self.src[start..full_end]));
            }
            let text = &self.src[start..full_end];
            self.pos = full_end;
            self.open_group(text);
            return Ok(());
        }
        // Flags: (?i) (?-s) (?im:...)
        self.bump(); // '?'
        let mut seen_minus = false;
        let mut any = false;
        let mut ungreedy = self.go_ungreedy;
        loop {
            let c = match self.bump() {
                Some(c) => c,
                None => {
                    return Err(err(
                        "invalid or unsupported Perl syntax",
                        &self.src[start..self.pos],
                    ))
                }
            };
            match c {
                'i' | 'm' | 's' | 'U' => {
                    any = true;
                    if c == 'U' {
                        ungreedy = !seen_minus;
                    }
                }
                '-' => {
                    if seen_minus {
                        return Err(err(
                            "invalid or unsupported Perl syntax",
                            &self.src[start..self.pos],
                        ));
                    }
                    seen_minus = true;
                    any = false;
                }
                ':' | ')' => {
                    if seen_minus && !any {
                        return Err(err(
                            "invalid or unsupported Perl syntax",
                            &self.src[start..self.pos],
                        ));
                    }
                    let text = &self.src[start..self.pos];
                    if c == ':' {
                        self.open_group(text);
                        self.go_ungreedy = ungreedy;
                        self.out_ungreedy = ungreedy;
                    } else {
                        self.pending_flags.push_str(text);
                        self.go_ungreedy = ungreedy;
                    }
                    self.last_repeat = None;
                    return Ok(());
                }
                _ => {
                    return Err(err(
                        "invalid or unsupported Perl syntax",
                        &self.src[start..self.pos],
                    ))
                }
            }
        }
    }

    fn escape(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.bump(); // '\'
        let c = match self.bump() {
            Some(c) => c,
            None => return Err(err("trailing backslash at end of expression", "")),
        };
        match c {
            'A' | 'z' => self.operand(&format!("\\{c}")),
            'b' | 'B' => self.operand(&format!("(?-u:\\{c})")),
            'Q' => {
                let rest = self.rest();
                let (quoted, skip) = match rest.find("\\E") {
                    Some(i) => (&rest[..i], i + 2),
                    None => (rest, rest.len()),
                };
                let text: String = quoted.chars().map(lit).collect();
                self.pos += skip;
                if !text.is_empty() {
                    self.operand(&format!("(?:{text})"));
                }
            }
            'p' | 'P' => {
                let cls = self.unicode_class(start, c)?;
                self.operand(&cls);
            }
            c => {
                if let Some((set, neg)) = perl_class(c) {
                    let s = format!("[{}{}]", if neg { "^" } else { "" }, set);
                    self.operand(&s);
                } else {
                    let ch = self.escape_char(start, c)?;
                    self.operand(&lit(ch));
                }
            }
        }
        Ok(())
    }

    /// `\pL`, `\p{Greek}`, `\P{^L}`: passed through to the regex crate.
    fn unicode_class(&mut self, start: usize, c: char) -> Result<String, String> {
        match self.bump() {
            Some('{') => match self.rest().find('}') {
                Some(i) => {
                    self.pos += i + 1;
                }
                None => return Err(err("invalid character class range", &self.src[start..])),
            },
            Some(_) => {}
            None => return Err(err("invalid character class range", &self.src[start..])),
        }
        let text = &self.src[start..self.pos];
        let mut inner = text[2..]
            .trim_start_matches('{')
            .trim_end_matches('}')
            .to_string();
        let mut neg = c == 'P';
        if let Some(x) = inner.strip_prefix('^') {
            inner = x.to_string();
            neg = !neg;
        }
        let candidate = format!("\\{}{{{}}}", if neg { 'P' } else { 'p' }, inner);
        if Regex::new(&candidate).is_err() {
            return Err(err("invalid character class range", text));
        }
        Ok(candidate)
    }

    /// The character an escape stands for (after the backslash and `c`).
    fn escape_char(&mut self, start: usize, c: char) -> Result<char, String> {
        let invalid = |w: &Self| Err(err("invalid escape sequence", &w.src[start..w.pos]));
        match c {
            '1'..='7' => {
                // A single digit would be a backreference: not supported.
                if !matches!(self.peek(), Some('0'..='7')) {
                    return invalid(self);
                }
                self.octal(c)
            }
            '0' => self.octal(c),
            'x' => {
                if self.peek() == Some('{') {
                    self.bump();
                    let rest = self.rest();
                    let end = match rest.find('}') {
                        Some(e) => e,
                        None => {
                            self.pos = self.src.len();
                            return invalid(self);
                        }
                    };
                    let hex = &rest[..end];
                    self.pos += end + 1;
                    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return invalid(self);
                    }
                    return match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) => Ok(ch),
                        None => invalid(self),
                    };
                }
                let mut v = 0u32;
                for _ in 0..2 {
                    match self.bump().and_then(|d| d.to_digit(16)) {
                        Some(d) => v = v * 16 + d,
                        None => return invalid(self),
                    }
                }
                Ok(char::from_u32(v).unwrap_or('\u{FFFD}'))
            }
            'a' => Ok('\x07'),
            'f' => Ok('\x0c'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\x0b'),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c),
            _ => invalid(self),
        }
    }

    fn octal(&mut self, first: char) -> Result<char, String> {
        let mut v = first.to_digit(8).unwrap_or(0);
        for _ in 0..2 {
            match self.peek().and_then(|d| d.to_digit(8)) {
                Some(d) => {
                    self.bump();
                    v = v * 8 + d;
                }
                None => break,
            }
        }
        Ok(char::from_u32(v).unwrap_or('\u{FFFD}'))
    }

    /// A bracketed class, rewritten with every member spelled out.
    fn class(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.bump(); // '['
        let mut out = String::from("[");
        if self.peek() == Some('^') {
            self.bump();
            out.push('^');
        }
        let mut first = true;
        loop {
            let c = match self.peek() {
                Some(c) => c,
                None => return Err(err("missing closing ]", &self.src[start..])),
            };
            if c == ']' && !first {
                self.bump();
                break;
            }
            first = false;
            let item_start = self.pos;
            // POSIX class [:name:].
            if self.rest().starts_with("[:") {
                if let Some(end) = self.rest()[2..].find(":]") {
                    let name = &self.rest()[2..2 + end];
                    let text = format!("[:{name}:]");
                    let valid = matches!(
                        name.trim_start_matches('^'),
                        "alnum"
                            | "alpha"
                            | "ascii"
                            | "blank"
                            | "cntrl"
                            | "digit"
                            | "graph"
                            | "lower"
                            | "print"
                            | "punct"
                            | "space"
                            | "upper"
                            | "word"
                            | "xdigit"
                    );
                    if !valid {
                        return Err(err("invalid character class range", &text));
                    }
                    self.pos += text.len();
                    out.push_str(&text);
                    continue;
                }
            }
            if c == '\\' {
                let next = self.rest()[1..].chars().next();
                if let Some(pc) = next.filter(|&n| perl_class(n).is_some()) {
                    self.pos += 2;
                    if let Some((set, neg)) = perl_class(pc) {
                        if neg {
                            out.push_str(&format!("[^{set}]"));
                        } else {
                            out.push_str(set);
                        }
                    }
                    continue;
                }
                if let Some(pc @ ('p' | 'P')) = next {
                    let esc = self.pos;
                    self.pos += 2;
                    let cls = self.unicode_class(esc, pc)?;
                    out.push_str(&cls);
                    continue;
                }
            }
            let lo = self.class_char(start)?;
            let mut hi = lo;
            if self.rest().starts_with('-')
                && !self.rest().starts_with("-]")
                && self.rest().len() > 1
            {
                self.bump();
                hi = self.class_char(start)?;
                if hi < lo {
                    return Err(err(
                        "invalid character class range",
                        &self.src[item_start..self.pos],
                    ));
                }
            }
            out.push_str(&lit(lo));
            if hi != lo {
                out.push('-');
                out.push_str(&lit(hi));
            }
        }
        out.push(']');
        Ok(out)
    }

    fn class_char(&mut self, class_start: usize) -> Result<char, String> {
        match self.bump() {
            None => Err(err("missing closing ]", &self.src[class_start..])),
            Some('\\') => {
                let esc = self.pos - 1;
                match self.bump() {
                    None => Err(err("trailing backslash at end of expression", "")),
                    Some(c) => self.escape_char(esc, c),
                }
            }
            Some(c) => Ok(c),
        }
    }
}

/// Compiles a Go regular expression; the error is Go's message.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let mut w = Walker {
        src: pattern,
        pos: 0,
        out: String::new(),
        depth: 0,
        have_operand: false,
        last_repeat: None,
        go_ungreedy: false,
        out_ungreedy: false,
        pending_flags: String::new(),
        saved: Vec::new(),
        item_start: 0,
        out_repeated: false,
    };
    w.run()?;
    Regex::new(&w.out).map_err(|e| {
        let first = e.to_string();
        let msg = first
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        format!("error parsing regexp: {msg}: `{pattern}`")
    })
}

/// The text of the panic `regexp.MustCompile` raises for a bad pattern.
pub(crate) fn must_compile_panic(pattern: &str, e: &str) -> String {
    let q = if crate::strconv::can_backquote(pattern) {
        format!("`{pattern}`")
    } else {
        crate::strconv::quote(pattern)
    };
    format!("regexp: Compile({q}): {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: &str) -> String {
        compile(p).err().unwrap_or_default()
    }

    #[test]
    fn go_errors() {
        assert_eq!(
            e("a**"),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
        assert_eq!(
            e("a{2}{3}"),
            "error parsing regexp: invalid nested repetition operator: `{2}{3}`"
        );
        assert_eq!(
            e("a{1001}"),
            "error parsing regexp: invalid repeat count: `{1001}`"
        );
        assert_eq!(e("("), "error parsing regexp: missing closing ): `(`");
        assert_eq!(e(")"), "error parsing regexp: unexpected ): `)`");
        assert_eq!(e("[a"), "error parsing regexp: missing closing ]: `[a`");
        assert_eq!(
            e("\\q"),
            "error parsing regexp: invalid escape sequence: `\\q`"
        );
        assert_eq!(
            e("*"),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert_eq!(
            e("a\\"),
            "error parsing regexp: trailing backslash at end of expression: ``"
        );
        assert_eq!(
            e("[z-a]"),
            "error parsing regexp: invalid character class range: `z-a`"
        );
        assert_eq!(
            e("x{2,1}"),
            "error parsing regexp: invalid repeat count: `{2,1}`"
        );
        assert_eq!(
            e("(?z)"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?z`"
        );
        assert_eq!(
            e("\\8"),
            "error parsing regexp: invalid escape sequence: `\\8`"
        );
        assert_eq!(
            e("a|*"),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
    }

    #[test]
    fn go_semantics() {
        let m = |p: &str, s: &str| compile(p).map(|r| r.is_match(s)).unwrap_or(false);
        assert!(m("\\bé", "aé"));
        assert!(!m("\\w", "é"));
        assert!(m("\\<", "<"));
        assert!(m("[a&&b]", "&"));
        assert!(m("[]a]", "]"));
        assert!(m("\\Q.*\\E", ".*"));
        assert!(m("\\101", "A"));
        assert!(m("a{,2}", "a{,2}"));
        assert!(m("(?i)K", "k"));
    }
}
