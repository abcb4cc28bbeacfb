//! Go `strconv` behaviour the template engine depends on: quoting, unquoting
//! literals, parsing numbers and formatting floats digit-for-digit like Go.

/// Whether Go's `unicode.IsPrint` would accept `c` (approximated with Rust's
/// character properties plus the format and private-use ranges Go rejects).
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let not_print: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x206F),
        (0xD800, 0xF8FF),
        (0xFEFF, 0xFEFF),
        (0xFFF0, 0xFFFB),
        (0xFFFE, 0xFFFF),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0000, 0xE0FFF),
        (0xF0000, 0x10FFFF),
    ];
    !not_print.iter().any(|&(lo, hi)| u >= lo && u <= hi)
}

fn push_escaped_rune(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if (c as u32) < 0x80 && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ => {
            let u = c as u32;
            if u < 0x20 || u == 0x7f {
                out.push_str(&format!("\\x{u:02x}"));
            } else if u < 0x10000 {
                out.push_str(&format!("\\u{u:04x}"));
            } else {
                out.push_str(&format!("\\U{u:08x}"));
            }
        }
    }
}

/// Go's `strconv.Quote` (or `QuoteToASCII` when `ascii_only`).
pub(crate) fn quote_with(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped_rune(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

/// Go's `strconv.Quote`, as used by `%q`.
pub(crate) fn quote(s: &str) -> String {
    quote_with(s, false)
}

/// Go's `strconv.QuoteRune` / `QuoteRuneToASCII`.
pub(crate) fn quote_rune(c: char, ascii_only: bool) -> String {
    let mut out = String::from("'");
    push_escaped_rune(&mut out, c, '\'', ascii_only);
    out.push('\'');
    out
}

/// Go's `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !(c < ' ' || c == '\x7f')))
}

/// One decoded unit of a quoted literal: a character, or a raw byte written
/// with a `\x` or octal escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Char(char),
    Byte(u8),
}

/// Decodes one (possibly escaped) character from the front of `s`, as Go's
/// `strconv.UnquoteChar`; returns the unit and the rest.
pub(crate) fn unquote_char(s: &str, quote: char) -> Result<(Unit, &str), ()> {
    let mut it = s.chars();
    let c = it.next().ok_or(())?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(());
    }
    if c != '\\' {
        return Ok((Unit::Char(c), it.as_str()));
    }
    let e = it.next().ok_or(())?;
    let rest = it.as_str();
    let simple = match e {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' => Some('\\'),
        '\'' | '"' => {
            if e != quote {
                return Err(());
            }
            Some(e)
        }
        _ => None,
    };
    if let Some(c) = simple {
        return Ok((Unit::Char(c), rest));
    }
    match e {
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..n).ok_or(())?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            let v = u32::from_str_radix(digits, 16).map_err(|_| ())?;
            let rest = &rest[n..];
            if e == 'x' {
                return Ok((Unit::Byte(v as u8), rest));
            }
            let c = char::from_u32(v).ok_or(())?;
            Ok((Unit::Char(c), rest))
        }
        '0'..='7' => {
            let digits = s.get(1..4).ok_or(())?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(());
            }
            let v = u32::from_str_radix(digits, 8).map_err(|_| ())?;
            if v > 255 {
                return Err(());
            }
            Ok((Unit::Byte(v as u8), &s[4..]))
        }
        _ => Err(()),
    }
}

/// Go's `strconv.Unquote` for the three literal forms ("...", `...`, '.').
/// Byte escapes that do not form valid UTF-8 become U+FFFD.
pub(crate) fn unquote(s: &str) -> Result<String, ()> {
    let first = s.chars().next().ok_or(())?;
    if !matches!(first, '"' | '`' | '\'') || s.len() < 2 || !s.ends_with(first) {
        return Err(());
    }
    let body = &s[1..s.len() - 1];
    match first {
        '`' => {
            if body.contains('`') {
                return Err(());
            }
            Ok(body.replace('\r', ""))
        }
        '"' => {
            if body.contains('\n') {
                return Err(());
            }
            let mut out: Vec<u8> = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (u, r) = unquote_char(rest, first)?;
                match u {
                    Unit::Char(c) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    Unit::Byte(b) => out.push(b),
                }
                rest = r;
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        '\'' => {
            let (u, rest) = unquote_char(body, first)?;
            if !rest.is_empty() {
                return Err(());
            }
            Ok(match u {
                Unit::Char(c) => c.to_string(),
                Unit::Byte(b) => char::from(b).to_string(),
            })
        }
        _ => Err(()),
    }
}

/// Go's rule for where `_` may appear in a number literal.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if !b.is_empty() && (b[0] == b'-' || b[0] == b'+') {
        i = 1;
    }
    let mut saw = b'^';
    let mut hex = false;
    if b.len() >= i + 2 && b[i] == b'0' {
        let p = b[i + 1].to_ascii_lowercase();
        if p == b'x' || p == b'o' || p == b'b' {
            hex = p == b'x';
            i += 2;
            saw = b'0';
        }
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Why a Go number parse failed; the text matches `strconv.NumError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumErr {
    Syntax,
    Range,
}

impl NumErr {
    pub(crate) fn message(self, func: &str, input: &str) -> String {
        let why = match self {
            NumErr::Syntax => "invalid syntax",
            NumErr::Range => "value out of range",
        };
        format!("strconv.{func}: parsing {}: {why}", quote(input))
    }
}

/// Go's `strconv.ParseFloat(s, 64)`.
pub(crate) fn parse_float(s: &str) -> Result<f64, NumErr> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Ok(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" && body.len() == s.len() {
        return Ok(f64::NAN);
    }
    if body.contains('_') && !underscore_ok(s) {
        return Err(NumErr::Syntax);
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let v = if clean.len() > 2 && (clean.starts_with("0x") || clean.starts_with("0X")) {
        parse_hex_float(&clean[2..])?
    } else {
        if !decimal_syntax_ok(&clean) {
            return Err(NumErr::Syntax);
        }
        clean.parse::<f64>().map_err(|_| NumErr::Syntax)?
    };
    if v.is_infinite() {
        return Err(NumErr::Range);
    }
    Ok(if neg { -v } else { v })
}

fn decimal_syntax_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Hexadecimal mantissa with a mandatory binary exponent (`1.8p+3`).
fn parse_hex_float(s: &str) -> Result<f64, NumErr> {
    let (mant, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => return Err(NumErr::Syntax),
    };
    let mut value: f64 = 0.0;
    let mut scale: i64 = 0;
    let mut seen_dot = false;
    let mut digits = 0;
    for c in mant.chars() {
        if c == '.' {
            if seen_dot {
                return Err(NumErr::Syntax);
            }
            seen_dot = true;
            continue;
        }
        let d = c.to_digit(16).ok_or(NumErr::Syntax)?;
        digits += 1;
        value = value * 16.0 + f64::from(d);
        if seen_dot {
            scale -= 4;
        }
    }
    if digits == 0 {
        return Err(NumErr::Syntax);
    }
    let e: i64 = match exp.strip_prefix('+') {
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) => {
            rest.parse().unwrap_or(i64::MAX / 4)
        }
        _ => {
            let digits_only = exp.strip_prefix('-').unwrap_or(exp);
            if digits_only.is_empty() || !digits_only.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NumErr::Syntax);
            }
            exp.parse().unwrap_or(if exp.starts_with('-') {
                -(i64::MAX / 4)
            } else {
                i64::MAX / 4
            })
        }
    };
    let total = (e.saturating_add(scale)).clamp(-4000, 4000) as i32;
    Ok(value * 2f64.powi(total))
}

/// Go's `strconv.ParseInt(s, 0, 64)` (base prefixes, underscores).
pub(crate) fn parse_int_base0(s: &str) -> Result<i64, NumErr> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint_digits(body, s)?;
    if neg {
        if u > (i64::MAX as u64) + 1 {
            return Err(NumErr::Range);
        }
        Ok((u as i64).wrapping_neg())
    } else {
        i64::try_from(u).map_err(|_| NumErr::Range)
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
pub(crate) fn parse_uint_base0(s: &str) -> Result<u64, NumErr> {
    if s.starts_with(['+', '-']) {
        return Err(NumErr::Syntax);
    }
    parse_uint_digits(s, s)
}

fn parse_uint_digits(body: &str, whole: &str) -> Result<u64, NumErr> {
    if body.is_empty() {
        return Err(NumErr::Syntax);
    }
    let b = body.as_bytes();
    let (base, digits, prefixed) = if b[0] == b'0' && b.len() > 1 {
        match b[1].to_ascii_lowercase() {
            b'x' => (16, &body[2..], true),
            b'o' => (8, &body[2..], true),
            b'b' => (2, &body[2..], true),
            _ => (8, &body[1..], false),
        }
    } else {
        (10, body, false)
    };
    if digits.contains('_') && !underscore_ok(whole) {
        return Err(NumErr::Syntax);
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() && (prefixed || base == 10) {
        return Err(NumErr::Syntax);
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for c in clean.chars() {
        let d = c.to_digit(base).ok_or(NumErr::Syntax)?;
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(NumErr::Range);
    }
    Ok(v)
}

/// Decimal digits of |v| (no leading zeros, no trailing zeros) and the
/// position of the decimal point: value = 0.d1d2d3... * 10^dp.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// Parses Rust's `{:e}` rendering (`d.ddde[-]x`) into digits.
fn digits_from_exp(s: &str) -> Digits {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return Digits { d, dp: 0 };
    }
    Digits { d, dp: exp + 1 }
}

fn shortest_digits(a: f64) -> Digits {
    let s = crate::gofloat::Shortest::of(a);
    if s.is_zero() {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    Digits {
        d: s.digits().to_vec(),
        dp: s.point(),
    }
}

fn rounded_digits(a: f64, sig: usize) -> Digits {
    let sig = sig.max(1);
    digits_from_exp(&format!("{:.*e}", sig - 1, a))
}

fn fmt_e(out: &mut String, dg: &Digits, prec: usize, upper: bool) {
    let first = dg.d.first().copied().unwrap_or(b'0');
    out.push(first as char);
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(dg.d.get(i).copied().unwrap_or(b'0') as char);
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if dg.d.is_empty() { 0 } else { dg.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
}

fn fmt_f(out: &mut String, dg: &Digits, prec: usize) {
    if dg.dp > 0 {
        for i in 0..dg.dp as usize {
            out.push(dg.d.get(i).copied().unwrap_or(b'0') as char);
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i64 {
            let j = i64::from(dg.dp) + i - 1;
            let c = if j >= 0 {
                dg.d.get(j as usize).copied()
            } else {
                None
            };
            out.push(c.unwrap_or(b'0') as char);
        }
    }
}

/// Go's `strconv.FormatFloat(v, verb, prec, 64)` for verbs e, E, f, g, G, b,
/// x, X; `prec < 0` means "shortest that round-trips".
pub(crate) fn format_float(v: f64, verb: char, prec: i64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    match verb {
        'e' | 'E' => {
            let dg = if prec < 0 {
                shortest_digits(a)
            } else {
                rounded_digits(a, prec as usize + 1)
            };
            let p = if prec < 0 {
                dg.d.len().saturating_sub(1)
            } else {
                prec as usize
            };
            fmt_e(&mut out, &dg, p, verb == 'E');
        }
        'f' | 'F' => {
            if prec < 0 {
                let dg = shortest_digits(a);
                let p = (dg.d.len() as i64 - i64::from(dg.dp)).max(0) as usize;
                fmt_f(&mut out, &dg, p);
            } else {
                out.push_str(&format!("{:.*}", prec as usize, a));
            }
        }
        'g' | 'G' => {
            let shortest = prec < 0;
            let dg = if shortest {
                shortest_digits(a)
            } else {
                rounded_digits(a, prec.max(1) as usize)
            };
            let nd = dg.d.len() as i64;
            let dp = i64::from(dg.dp);
            let mut p = if shortest { nd } else { prec.max(1) };
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&mut out, &dg, (p - 1).max(0) as usize, verb == 'G');
            } else {
                if p > dp {
                    p = nd;
                }
                fmt_f(&mut out, &dg, (p - dp).max(0) as usize);
            }
        }
        'x' | 'X' => out.push_str(&format_hex_float(a, prec, verb == 'X')),
        _ => {
            // 'b': mantissa p exponent, decimal.
            let bits = a.to_bits();
            let exp = ((bits >> 52) & 0x7ff) as i64;
            let mut mant = bits & ((1u64 << 52) - 1);
            let e = if exp == 0 {
                -1074
            } else {
                mant |= 1u64 << 52;
                exp - 1075
            };
            out.push_str(&format!("{mant}p{}{}", if e >= 0 { "+" } else { "" }, e));
        }
    }
    out
}

/// `%x` of a float: 0x1.hhhhp±dd.
fn format_hex_float(a: f64, prec: i64, upper: bool) -> String {
    let bits = a.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    let mut exp;
    if a == 0.0 {
        exp = 0;
    } else if raw_exp == 0 {
        exp = -1022;
        while mant & (1u64 << 52) == 0 {
            mant <<= 1;
            exp -= 1;
        }
        mant &= (1u64 << 52) - 1;
    } else {
        exp = raw_exp - 1023;
    }
    // 52 fraction bits = 13 hex digits.
    let mut frac = mant;
    let mut lead = if a == 0.0 { 0u64 } else { 1u64 };
    let mut ndig = 13usize;
    if prec >= 0 && (prec as usize) < 13 {
        let drop = (13 - prec as usize) * 4;
        let half = 1u64 << (drop - 1);
        let rem = frac & ((1u64 << drop) - 1);
        frac >>= drop;
        // Ties go to even; with no fraction digits the leading digit decides.
        let odd = if prec == 0 {
            lead & 1 == 1
        } else {
            frac & 1 == 1
        };
        if rem > half || (rem == half && odd) {
            frac += 1;
            if frac >> (prec as usize * 4) != 0 {
                frac = 0;
                lead += 1;
            }
        }
        ndig = prec as usize;
        if lead == 2 {
            lead = 1;
            exp += 1;
        }
    }
    let mut hex = if ndig > 0 {
        format!("{:0width$x}", frac, width = ndig)
    } else {
        String::new()
    };
    if prec < 0 {
        while hex.ends_with('0') {
            hex.pop();
        }
    } else {
        while hex.len() < prec as usize {
            hex.push('0');
        }
    }
    let mut s = format!("0x{lead}");
    if !hex.is_empty() {
        s.push('.');
        s.push_str(&hex);
    }
    s.push('p');
    s.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        s.push('0');
    }
    s.push_str(&e.to_string());
    if upper {
        s = s.to_uppercase();
    }
    s
}

/// Go's `%v` of a float64: `strconv.FormatFloat(f, 'g', -1, 64)`.
pub(crate) fn format_float_v(v: f64) -> String {
    format_float(v, 'g', -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        assert_eq!(format_float_v(1.0), "1");
        assert_eq!(format_float_v(0.5), "0.5");
        assert_eq!(format_float_v(1e6), "1e+06");
        assert_eq!(format_float_v(123456.0), "123456");
        assert_eq!(format_float_v(1.5e-7), "1.5e-07");
        assert_eq!(format_float_v(0.0001), "0.0001");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(-0.0), "-0");
        assert_eq!(format_float(1234567.0, 'g', 4), "1.235e+06");
        assert_eq!(format_float(100.0, 'g', 4), "100");
        assert_eq!(format_float(0.0, 'g', 4), "0");
        assert_eq!(format_float(1e6, 'g', 4), "1e+06");
        assert_eq!(format_float(1.5, 'e', 6), "1.500000e+00");
        assert_eq!(format_float(0.125, 'f', 2), "0.12");
        assert_eq!(format_float(1.0, 'x', -1), "0x1p+00");
        assert_eq!(format_float(3.0, 'x', -1), "0x1.8p+01");
    }

    #[test]
    fn parse_like_go() {
        assert_eq!(parse_float("1_000"), Ok(1000.0));
        assert_eq!(parse_float("0x1p-2"), Ok(0.25));
        assert_eq!(parse_float("+nan"), Err(NumErr::Syntax));
        assert_eq!(parse_float("1e400"), Err(NumErr::Range));
        assert_eq!(parse_float(" 1"), Err(NumErr::Syntax));
        assert_eq!(parse_float("0x10"), Err(NumErr::Syntax));
        assert_eq!(parse_float("5."), Ok(5.0));
        assert_eq!(parse_int_base0("0x_1F"), Ok(31));
        assert_eq!(parse_int_base0("010"), Ok(8));
        assert_eq!(parse_int_base0("08"), Err(NumErr::Syntax));
        assert_eq!(parse_int_base0("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_uint_base0("-0"), Err(NumErr::Syntax));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\\n\u{a0}é"), "\"a\\\"b\\\\\\n\\u00a0é\"");
        assert_eq!(unquote("\"a\\tb\\u00e9\""), Ok("a\tbé".to_string()));
        assert_eq!(unquote("`x\\n`"), Ok("x\\n".to_string()));
        assert!(unquote("\"\\q\"").is_err());
    }
}
