//! Go's `fmt` package for template values: `Sprint`, `Sprintln`, `Sprintf`
//! (verbs, flags, width, precision, argument indexes and the `%!verb(...)`
//! error forms), plus the way templates print an action's value.

use crate::gotime;
use crate::strconv::{can_backquote, format_float, is_print, quote_rune, quote_with};
use crate::value::{AlertFields, Value};
use crate::QuerySample;

const LDIGITS: &[u8] = b"0123456789abcdefx";
const UDIGITS: &[u8] = b"0123456789ABCDEFX";

#[derive(Clone, Copy, Default)]
struct Flags {
    wid: usize,
    prec: usize,
    wid_present: bool,
    prec_present: bool,
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
}

struct Printer {
    buf: String,
    f: Flags,
    erroring: bool,
    wrap_errs: bool,
}

fn too_large(x: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&x)
}

/// The text a Go `Stringer` or `error` would produce, if the value is one.
fn stringer(v: &Value) -> Option<String> {
    match v {
        Value::Time { ns, .. } => Some(gotime::time_string(*ns)),
        Value::Month(m) => Some(gotime::month_name(*m)),
        Value::Weekday(d) => Some(gotime::weekday_name(*d)),
        Value::Error(e) => Some(e.to_string()),
        _ => None,
    }
}

impl Printer {
    fn new(wrap_errs: bool) -> Self {
        Printer {
            buf: String::new(),
            f: Flags::default(),
            erroring: false,
            wrap_errs,
        }
    }

    // --- padding -------------------------------------------------------

    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero && !self.f.minus {
            '0'
        } else {
            ' '
        };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    fn pad(&mut self, s: &str) {
        if !self.f.wid_present || self.f.wid == 0 {
            self.buf.push_str(s);
            return;
        }
        let width = self.f.wid.saturating_sub(s.chars().count());
        if !self.f.minus {
            self.write_padding(width);
            self.buf.push_str(s);
        } else {
            self.buf.push_str(s);
            self.write_padding(width);
        }
    }

    // --- basic formatters -------------------------------------------------

    fn fmt_boolean(&mut self, v: bool) {
        self.pad(if v { "true" } else { "false" });
    }

    fn fmt_unicode(&mut self, u: u64) {
        let mut prec = 4;
        if self.f.prec_present && self.f.prec > 4 {
            prec = self.f.prec;
        }
        let mut s = format!("{u:X}");
        while s.len() < prec {
            s.insert(0, '0');
        }
        let mut out = format!("U+{s}");
        if self.f.sharp {
            if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32) {
                if is_print(c) {
                    out.push_str(&format!(" '{c}'"));
                }
            }
        }
        let old = self.f.zero;
        self.f.zero = false;
        self.pad(&out);
        self.f.zero = old;
    }

    fn fmt_integer(&mut self, u: u64, base: u64, signed: bool, verb: char, digits: &[u8]) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let mut prec = 0usize;
        if self.f.prec_present {
            prec = self.f.prec;
            if prec == 0 && u == 0 {
                let old = self.f.zero;
                self.f.zero = false;
                self.write_padding(self.f.wid);
                self.f.zero = old;
                return;
            }
        } else if self.f.zero && !self.f.minus && self.f.wid_present {
            prec = self.f.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut rev: Vec<u8> = Vec::new();
        loop {
            rev.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while rev.len() < prec {
            rev.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => {
                    rev.push(digits[16]);
                    rev.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if negative {
            rev.push(b'-');
        } else if self.f.plus {
            rev.push(b'+');
        } else if self.f.space {
            rev.push(b' ');
        }
        rev.reverse();
        let s = String::from_utf8_lossy(&rev).into_owned();
        let old = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = old;
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        if self.f.prec_present {
            if let Some((i, _)) = s.char_indices().nth(self.f.prec) {
                return &s[..i];
            }
        }
        s
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        self.pad(&s);
    }

    fn fmt_sx(&mut self, s: &str, digits: &[u8]) {
        let b = s.as_bytes();
        let mut length = b.len();
        if self.f.prec_present && self.f.prec < length {
            length = self.f.prec;
        }
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if self.f.wid_present {
                self.write_padding(self.f.wid);
            }
            return;
        }
        if self.f.wid_present && self.f.wid > width && !self.f.minus {
            self.write_padding(self.f.wid - width);
        }
        let mut out = String::new();
        if self.f.sharp {
            out.push('0');
            out.push(digits[16] as char);
        }
        for (i, &c) in b.iter().take(length).enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
                if self.f.sharp {
                    out.push('0');
                    out.push(digits[16] as char);
                }
            }
            out.push(digits[(c >> 4) as usize] as char);
            out.push(digits[(c & 0xf) as usize] as char);
        }
        self.buf.push_str(&out);
        if self.f.wid_present && self.f.wid > width && self.f.minus {
            self.write_padding(self.f.wid - width);
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        if self.f.sharp && can_backquote(&s) {
            self.pad(&format!("`{s}`"));
            return;
        }
        let q = quote_with(&s, self.f.plus);
        self.pad(&q);
    }

    fn rune_of(c: u64) -> char {
        u32::try_from(c)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}')
    }

    fn fmt_c(&mut self, c: u64) {
        let s = Self::rune_of(c).to_string();
        self.pad(&s);
    }

    fn fmt_qc(&mut self, c: u64) {
        let s = quote_rune(Self::rune_of(c), self.f.plus);
        self.pad(&s);
    }

    fn fmt_float_raw(&mut self, v: f64, verb: char, prec: i64) {
        let prec = if self.f.prec_present {
            self.f.prec as i64
        } else {
            prec
        };
        let s = format_float(v, verb, prec);
        let mut num: Vec<u8> = if s.starts_with('-') || s.starts_with('+') {
            s.into_bytes()
        } else {
            let mut n = vec![b'+'];
            n.extend_from_slice(s.as_bytes());
            n
        };
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num.len() > 1 && (num[1] == b'I' || num[1] == b'N') {
            let old = self.f.zero;
            self.f.zero = false;
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&String::from_utf8_lossy(&num));
            self.f.zero = old;
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits: i64 = 0;
            if matches!(verb, 'v' | 'g' | 'G' | 'x') {
                digits = if prec == -1 { 6 } else { prec };
            }
            let mut tail: Vec<u8> = Vec::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let mut i = 1;
            while i < num.len() {
                match num[i] {
                    b'.' => has_point = true,
                    b'p' | b'P' => {
                        tail = num.split_off(i);
                        break;
                    }
                    b'e' | b'E' if verb != 'x' && verb != 'X' => {
                        tail = num.split_off(i);
                        break;
                    }
                    c => {
                        if c != b'0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
                i += 1;
            }
            if !has_point {
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        if self.f.plus || num[0] != b'+' {
            if self.f.zero && !self.f.minus && self.f.wid_present && self.f.wid > num.len() {
                self.buf.push(num[0] as char);
                self.write_padding(self.f.wid - num.len());
                self.buf.push_str(&String::from_utf8_lossy(&num[1..]));
                return;
            }
            self.pad(&String::from_utf8_lossy(&num));
            return;
        }
        self.pad(&String::from_utf8_lossy(&num[1..]));
    }

    // --- per-type dispatch -------------------------------------------------

    fn bad_verb(&mut self, verb: char, v: &Value) {
        self.erroring = true;
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if v.is_valid() {
            self.buf.push_str(v.type_name());
            self.buf.push('=');
            self.print_arg(v, 'v');
        } else {
            self.buf.push_str("<nil>");
        }
        self.buf.push(')');
        self.erroring = false;
    }

    fn fmt_bool(&mut self, b: bool, verb: char, v: &Value) {
        match verb {
            't' | 'v' => self.fmt_boolean(b),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_0x64(&mut self, u: u64, leading: bool) {
        let sharp = self.f.sharp;
        self.f.sharp = leading;
        self.fmt_integer(u, 16, false, 'v', LDIGITS);
        self.f.sharp = sharp;
    }

    fn fmt_int(&mut self, u: u64, signed: bool, verb: char, v: &Value) {
        match verb {
            'v' => {
                if self.f.sharp_v && !signed {
                    self.fmt_0x64(u, true);
                } else {
                    self.fmt_integer(u, 10, signed, verb, LDIGITS);
                }
            }
            'd' => self.fmt_integer(u, 10, signed, verb, LDIGITS),
            'b' => self.fmt_integer(u, 2, signed, verb, LDIGITS),
            'o' | 'O' => self.fmt_integer(u, 8, signed, verb, LDIGITS),
            'x' => self.fmt_integer(u, 16, signed, verb, LDIGITS),
            'X' => self.fmt_integer(u, 16, signed, verb, UDIGITS),
            'c' => self.fmt_c(u),
            'q' => self.fmt_qc(u),
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_float(&mut self, f: f64, verb: char, v: &Value) {
        match verb {
            'v' => self.fmt_float_raw(f, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float_raw(f, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float_raw(f, verb, 6),
            'F' => self.fmt_float_raw(f, 'f', 6),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_complex(&mut self, re: f64, im: f64, verb: char, v: &Value) {
        match verb {
            'v' | 'b' | 'g' | 'G' | 'x' | 'X' | 'f' | 'F' | 'e' | 'E' => {
                let old = self.f.plus;
                self.buf.push('(');
                self.fmt_float(re, verb, v);
                self.f.plus = true;
                self.fmt_float(im, verb, v);
                self.buf.push_str("i)");
                self.f.plus = old;
            }
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.fmt_q(s);
                } else {
                    self.fmt_s(s);
                }
            }
            's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, LDIGITS),
            'X' => self.fmt_sx(s, UDIGITS),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_pointer(&mut self, v: &Value, verb: char) {
        let u = match v.fake_address() {
            Some(u) => u,
            None => {
                self.bad_verb(verb, v);
                return;
            }
        };
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.buf.push('(');
                    self.buf.push_str(v.type_name());
                    self.buf.push_str(")(");
                    if u == 0 {
                        self.buf.push_str("nil");
                    } else {
                        self.fmt_0x64(u, true);
                    }
                    self.buf.push(')');
                } else if u == 0 {
                    self.pad("<nil>");
                } else {
                    let sharp = !self.f.sharp;
                    self.fmt_0x64(u, sharp);
                }
            }
            'p' => {
                let sharp = !self.f.sharp;
                self.fmt_0x64(u, sharp);
            }
            'b' | 'o' | 'd' | 'x' | 'X' => self.fmt_int(u, false, verb, v),
            _ => self.bad_verb(verb, v),
        }
    }

    /// Go's `handleMethods`: `error` and `Stringer` values format as their text.
    fn handle_methods(&mut self, v: &Value, verb: char) -> bool {
        if self.erroring {
            return false;
        }
        let mut verb = verb;
        if verb == 'w' {
            if !(matches!(v, Value::Error(_)) && self.wrap_errs) {
                self.bad_verb('w', v);
                return true;
            }
            verb = 'v';
        }
        if self.f.sharp_v {
            if let Value::Time { ns, .. } = v {
                let text = gotime::go_string(*ns);
                self.fmt_s(&text);
                return true;
            }
            return false;
        }
        if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
            if let Some(s) = stringer(v) {
                self.fmt_string(&s, verb, v);
                return true;
            }
        }
        false
    }

    fn print_arg(&mut self, v: &Value, verb: char) {
        if !v.is_valid() {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, v),
            }
            return;
        }
        match verb {
            'T' => {
                self.fmt_s(v.type_name());
                return;
            }
            'p' => {
                self.fmt_pointer(v, 'p');
                return;
            }
            _ => {}
        }
        match v {
            Value::Bool(b) => self.fmt_bool(*b, verb, v),
            Value::Int(i) | Value::Int64(i) => self.fmt_int(*i as u64, true, verb, v),
            Value::Uint8(u) => self.fmt_int(u64::from(*u), false, verb, v),
            Value::Uint64(u) => self.fmt_int(*u, false, verb, v),
            Value::Float(f) => self.fmt_float(*f, verb, v),
            Value::Complex(re, im) => self.fmt_complex(*re, *im, verb, v),
            Value::String(s) => self.fmt_string(s, verb, v),
            _ => {
                if !self.handle_methods(v, verb) {
                    self.print_value(v, verb, 0);
                }
            }
        }
    }

    fn print_str_map<'m>(
        &mut self,
        type_name: &str,
        entries: impl Iterator<Item = (&'m String, Value)>,
        verb: char,
        depth: usize,
    ) {
        if self.f.sharp_v {
            self.buf.push_str(type_name);
            self.buf.push('{');
        } else {
            self.buf.push_str("map[");
        }
        for (i, (k, v)) in entries.enumerate() {
            if i > 0 {
                if self.f.sharp_v {
                    self.buf.push_str(", ");
                } else {
                    self.buf.push(' ');
                }
            }
            self.print_value(&Value::from(k.as_str()), verb, depth + 1);
            self.buf.push(':');
            self.print_value(&v, verb, depth + 1);
        }
        self.buf.push(if self.f.sharp_v { '}' } else { ']' });
    }

    fn print_struct(
        &mut self,
        type_name: &str,
        fields: &[(&str, Value)],
        verb: char,
        depth: usize,
    ) {
        if self.f.sharp_v {
            self.buf.push_str(type_name);
        }
        self.buf.push('{');
        for (i, (name, v)) in fields.iter().enumerate() {
            if i > 0 {
                if self.f.sharp_v {
                    self.buf.push_str(", ");
                } else {
                    self.buf.push(' ');
                }
            }
            if self.f.plus_v || self.f.sharp_v {
                self.buf.push_str(name);
                self.buf.push(':');
            }
            self.print_value(v, verb, depth + 1);
        }
        self.buf.push('}');
    }

    fn print_sample_struct(&mut self, s: &QuerySample, verb: char, depth: usize) {
        let fields = [
            ("Labels", Value::StrMap(std::rc::Rc::new(s.labels.clone()))),
            ("Value", Value::Float(s.value)),
        ];
        self.print_struct("template.sample", &fields, verb, depth);
    }

    fn print_data_struct(&mut self, d: &AlertFields, verb: char, depth: usize) {
        let fields = [
            ("Labels", Value::StrMap(d.labels.clone())),
            ("ExternalLabels", Value::StrMap(d.external_labels.clone())),
            ("ExternalURL", Value::String(d.external_url.clone())),
            ("Value", Value::Float(d.value)),
        ];
        self.print_struct(crate::value::ALERT_DATA_TYPE, &fields, verb, depth);
    }

    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        if depth > 0 && v.is_valid() && self.handle_methods(v, verb) {
            return;
        }
        match v {
            Value::Invalid => {
                if depth == 0 {
                    self.buf.push_str("<invalid reflect.Value>");
                } else if verb == 'v' {
                    self.buf.push_str(if self.f.sharp_v {
                        "interface {}(nil)"
                    } else {
                        "<nil>"
                    });
                } else {
                    self.bad_verb(verb, v);
                }
            }
            Value::Bool(_)
            | Value::Int(_)
            | Value::Int64(_)
            | Value::Uint8(_)
            | Value::Uint64(_)
            | Value::Float(_)
            | Value::Complex(..)
            | Value::String(_) => self.print_arg_basic(v, verb),
            Value::Month(m) | Value::Weekday(m) => self.fmt_int(u64::from(*m), true, verb, v),
            Value::Html(s) => self.fmt_string(s, verb, v),
            Value::StrMap(m) => self.print_str_map(
                v.type_name(),
                m.iter().map(|(k, x)| (k, Value::from(x.as_str()))),
                verb,
                depth,
            ),
            // Elements live in interface slots: a nil one prints as <nil>.
            Value::AnyMap(m) => self.print_str_map(
                v.type_name(),
                m.iter()
                    .map(|(k, x)| (k, Value::Iface(std::rc::Rc::new(x.clone())))),
                verb,
                depth,
            ),
            Value::Data(d) => self.print_data_struct(d, verb, depth),
            Value::Sample(Some(s)) if depth == 0 => {
                self.buf.push('&');
                self.print_sample_struct(s, verb, depth + 1);
            }
            Value::Sample(_) => self.fmt_pointer(v, verb),
            Value::Vector(items) => {
                if self.f.sharp_v {
                    self.buf.push_str(v.type_name());
                    self.buf.push('{');
                } else {
                    self.buf.push('[');
                }
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        if self.f.sharp_v {
                            self.buf.push_str(", ");
                        } else {
                            self.buf.push(' ');
                        }
                    }
                    self.print_value(&Value::Sample(Some(s.clone())), verb, depth + 1);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
            Value::Time { ptr: true, .. } if depth > 0 => self.fmt_pointer(v, verb),
            Value::Time { ns, ptr } => {
                // Go's time.Time fields: wall (nanoseconds), ext (seconds since
                // year 1) and loc (a nil *time.Location for UTC).
                if *ptr {
                    self.buf.push('&');
                }
                if self.f.sharp_v {
                    self.buf.push_str("time.Time");
                }
                let nsec = ns.rem_euclid(1_000_000_000) as u64;
                let ext = ns.div_euclid(1_000_000_000).saturating_add(62_135_596_800);
                let named = self.f.plus_v || self.f.sharp_v;
                let sep = if self.f.sharp_v { ", " } else { " " };
                self.buf.push('{');
                if named {
                    self.buf.push_str("wall:");
                }
                self.print_value(&Value::Uint64(nsec), verb, depth + 1);
                self.buf.push_str(sep);
                if named {
                    self.buf.push_str("ext:");
                }
                self.print_value(&Value::Int64(ext), verb, depth + 1);
                self.buf.push_str(sep);
                if named {
                    self.buf.push_str("loc:");
                }
                match verb {
                    'v' if self.f.sharp_v => self.buf.push_str("(*time.Location)(nil)"),
                    'v' => self.pad("<nil>"),
                    'p' => {
                        let sharp = !self.f.sharp;
                        self.fmt_0x64(0, sharp);
                    }
                    'b' | 'o' | 'd' | 'x' | 'X' => self.fmt_int(0, false, verb, &Value::Uint64(0)),
                    _ => {
                        self.buf.push_str("%!");
                        self.buf.push(verb);
                        self.buf.push_str("(*time.Location=");
                        self.pad("<nil>");
                        self.buf.push(')');
                    }
                }
                self.buf.push('}');
            }
            Value::Iface(inner) => {
                if inner.is_valid() {
                    self.print_value(inner, verb, depth + 1);
                } else if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            Value::Error(e) => {
                self.buf.push_str("&{");
                self.fmt_string(e, verb, &Value::String(e.clone()));
                self.buf.push('}');
            }
        }
    }

    /// Basic kinds reached through `print_value` (map keys, struct fields).
    fn print_arg_basic(&mut self, v: &Value, verb: char) {
        match v {
            Value::Bool(b) => self.fmt_bool(*b, verb, v),
            Value::Int(i) | Value::Int64(i) => self.fmt_int(*i as u64, true, verb, v),
            Value::Uint8(u) => self.fmt_int(u64::from(*u), false, verb, v),
            Value::Uint64(u) => self.fmt_int(*u, false, verb, v),
            Value::Float(f) => self.fmt_float(*f, verb, v),
            Value::Complex(re, im) => self.fmt_complex(*re, *im, verb, v),
            Value::String(s) => self.fmt_string(s, verb, v),
            _ => {}
        }
    }

    // --- Printf -------------------------------------------------------------

    fn do_printf(&mut self, format: &str, args: &[Value]) {
        let fb = format.as_bytes();
        let end = fb.len();
        let mut arg_num = 0usize;
        let mut after_index;
        let mut reordered = false;
        let mut i = 0usize;
        while i < end {
            let mut good_arg_num = true;
            let last = i;
            while i < end && fb[i] != b'%' {
                i += 1;
            }
            if i > last {
                self.buf.push_str(&format[last..i]);
            }
            if i >= end {
                break;
            }
            i += 1;
            self.f = Flags::default();
            while i < end {
                match fb[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = true,
                    b'+' => self.f.plus = true,
                    b'-' => self.f.minus = true,
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }
            // Argument index, then width.
            let (n, ni, found) = arg_number(
                arg_num,
                format,
                i,
                args.len(),
                &mut reordered,
                &mut good_arg_num,
            );
            arg_num = n;
            i = ni;
            after_index = found;
            if i < end && fb[i] == b'*' {
                i += 1;
                let (w, ok, na) = int_from_arg(args, arg_num);
                arg_num = na;
                self.f.wid_present = ok;
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                }
                if w < 0 {
                    self.f.wid = w.unsigned_abs() as usize;
                    self.f.minus = true;
                    self.f.zero = false;
                } else {
                    self.f.wid = w as usize;
                }
                after_index = false;
            } else {
                let (w, ok, ni) = parse_num(fb, i, end);
                self.f.wid = w;
                self.f.wid_present = ok;
                i = ni;
                if after_index && ok {
                    good_arg_num = false;
                }
            }
            // Precision.
            if i + 1 < end && fb[i] == b'.' {
                i += 1;
                if after_index {
                    good_arg_num = false;
                }
                let (n, ni, found) = arg_number(
                    arg_num,
                    format,
                    i,
                    args.len(),
                    &mut reordered,
                    &mut good_arg_num,
                );
                arg_num = n;
                i = ni;
                after_index = found;
                if i < end && fb[i] == b'*' {
                    i += 1;
                    let (p, ok, na) = int_from_arg(args, arg_num);
                    arg_num = na;
                    self.f.prec_present = ok;
                    if p < 0 {
                        self.f.prec = 0;
                        self.f.prec_present = false;
                    } else {
                        self.f.prec = p as usize;
                    }
                    if !self.f.prec_present {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (p, ok, ni) = parse_num(fb, i, end);
                    self.f.prec = p;
                    self.f.prec_present = ok;
                    i = ni;
                    if !ok {
                        self.f.prec = 0;
                        self.f.prec_present = true;
                    }
                }
            }
            if !after_index {
                let (n, ni, _) = arg_number(
                    arg_num,
                    format,
                    i,
                    args.len(),
                    &mut reordered,
                    &mut good_arg_num,
                );
                arg_num = n;
                i = ni;
            }
            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }
            let verb = format[i..].chars().next().unwrap_or('%');
            i += verb.len_utf8();
            if verb == '%' {
                self.buf.push('%');
            } else if !good_arg_num {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(BADINDEX)");
            } else if arg_num >= args.len() {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(MISSING)");
            } else {
                if verb == 'v' || verb == 'w' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                let arg = args[arg_num].clone();
                self.print_arg(&arg, verb);
                arg_num += 1;
            }
        }
        if !reordered && arg_num < args.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, a) in args[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                if a.is_valid() {
                    self.buf.push_str(a.type_name());
                    self.buf.push('=');
                    self.print_arg(a, 'v');
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            self.buf.push(')');
        }
    }
}

fn parse_num(fb: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let mut num: i64 = 0;
    let mut isnum = false;
    let mut i = start;
    while i < end && fb[i].is_ascii_digit() {
        if too_large(num) {
            return (0, false, end);
        }
        num = num * 10 + i64::from(fb[i] - b'0');
        isnum = true;
        i += 1;
    }
    (num as usize, isnum, i)
}

/// `[n]` argument index at `i`: returns (argNum, new i, found).
fn arg_number(
    arg_num: usize,
    format: &str,
    i: usize,
    num_args: usize,
    reordered: &mut bool,
    good: &mut bool,
) -> (usize, usize, bool) {
    let fb = format.as_bytes();
    if fb.len() <= i || fb[i] != b'[' {
        return (arg_num, i, false);
    }
    *reordered = true;
    let sub = &fb[i..];
    let (index, wid, ok) = {
        let mut res = (0i64, 1usize, false);
        if sub.len() >= 3 {
            for j in 1..sub.len() {
                if sub[j] == b']' {
                    let (w, ok, newi) = parse_num(sub, 1, j);
                    res = if !ok || newi != j {
                        (0, j + 1, false)
                    } else {
                        (w as i64 - 1, j + 1, true)
                    };
                    break;
                }
            }
        }
        res
    };
    if ok && index >= 0 && (index as usize) < num_args {
        return (index as usize, i + wid, true);
    }
    *good = false;
    (arg_num, i + wid, ok)
}

fn int_from_arg(args: &[Value], arg_num: usize) -> (i64, bool, usize) {
    if arg_num >= args.len() {
        return (0, false, arg_num);
    }
    let (mut num, mut ok) = match &args[arg_num] {
        Value::Uint8(u) => (i64::from(*u), true),
        Value::Uint64(u) => match i64::try_from(*u) {
            Ok(n) => (n, true),
            Err(_) => (0, false),
        },
        v => match v.as_int() {
            Some(n) => (n, true),
            None => (0, false),
        },
    };
    if too_large(num) {
        num = 0;
        ok = false;
    }
    (num, ok, arg_num + 1)
}

/// Go's `fmt.Sprintf` (a `%w` verb is a bad verb, as in Sprintf).
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::new(false);
    p.do_printf(format, args);
    p.buf
}

/// Go's `fmt.Errorf` text: like Sprintf but `%w` accepts an error.
pub(crate) fn sprintf_error(format: &str, args: &[Value]) -> String {
    let mut p = Printer::new(true);
    p.do_printf(format, args);
    p.buf
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut p = Printer::new(false);
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = a.as_str().is_some();
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.f = Flags::default();
        p.print_arg(a, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// Go's `fmt.Sprintln`: always spaces, plus a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::new(false);
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.f = Flags::default();
        p.print_arg(a, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// What a template action writes for its value: pointers are followed,
/// missing values show as `<no value>`, then `fmt.Fprint`.
pub(crate) fn template_print(v: &Value) -> String {
    match v {
        Value::Iface(inner) if inner.is_valid() => template_print(inner),
        Value::Iface(_) => "<nil>".into(),
        Value::Invalid => "<no value>".into(),
        Value::Sample(Some(s)) => {
            let mut p = Printer::new(false);
            p.print_sample_struct(s, 'v', 0);
            p.buf
        }
        other => sprint(std::slice::from_ref(other)),
    }
}

/// Go's `printableValue` + `Sprint` as used by `html`, `js` and `urlquery`
/// when given several (or non-string) arguments.
pub(crate) fn eval_args(args: &[Value]) -> String {
    if let [Value::String(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Invalid => Value::from("<no value>"),
            other => other.clone(),
        })
        .collect();
    let mut p = Printer::new(false);
    let mut prev_string = false;
    for (i, a) in printable.iter().enumerate() {
        let is_string = a.as_str().is_some();
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        match (a, &args[i]) {
            (_, Value::Sample(Some(s))) => p.print_sample_struct(s, 'v', 0),
            _ => p.print_arg(a, 'v'),
        }
        prev_string = is_string;
    }
    p.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[Value]) -> String {
        sprintf(fmt, args)
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(f("%.2f", &[Value::Float(1.23456)]), "1.23");
        assert_eq!(f("%5.2f|", &[Value::Float(1.23456)]), " 1.23|");
        assert_eq!(f("%d", &[Value::Int(5)]), "5");
        assert_eq!(f("%s", &[Value::Float(1.5)]), "%!s(float64=1.5)");
        assert_eq!(f("%-10s|", &[Value::from("ab")]), "ab        |");
        assert_eq!(f("%q", &[Value::from("a\"b")]), "\"a\\\"b\"");
        assert_eq!(f("%x", &[Value::from("hi")]), "6869");
        assert_eq!(f("%x", &[Value::Int(255)]), "ff");
        assert_eq!(f("%05d", &[Value::Int(-42)]), "-0042");
        assert_eq!(f("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(f("%g", &[Value::Float(1e21)]), "1e+21");
        assert_eq!(f("%v%%", &[Value::Float(0.5)]), "0.5%");
        assert_eq!(f("%d", &[]), "%!d(MISSING)");
        assert_eq!(f("x", &[Value::Int(1)]), "x%!(EXTRA int=1)");
        assert_eq!(f("%", &[]), "%!(NOVERB)");
        assert_eq!(f("%[2]d %[1]d", &[Value::Int(1), Value::Int(2)]), "2 1");
        assert_eq!(f("%*d", &[Value::Int(4), Value::Int(7)]), "   7");
        assert_eq!(f("%T", &[Value::Float(1.0)]), "float64");
        assert_eq!(f("%v", &[Value::Invalid]), "<nil>");
        assert_eq!(f("%d", &[Value::Invalid]), "%!d(<nil>)");
        assert_eq!(f("%+.3e", &[Value::Float(0.0)]), "+0.000e+00");
        assert_eq!(f("%.4g", &[Value::Float(f64::INFINITY)]), "+Inf");
        assert_eq!(f("%5.1f|", &[Value::Float(f64::NAN)]), "  NaN|");
        assert_eq!(f("%#g", &[Value::Float(1.0)]), "1.00000");
        assert_eq!(
            f("%c|%U", &[Value::Int(65), Value::Int(0x1F600)]),
            "A|U+1F600"
        );
    }

    #[test]
    fn print_rules() {
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                Value::from("a"),
                Value::Int(3)
            ]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::from("a"), Value::Int(2)]), "a 2\n");
        let mut m = std::collections::BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(sprint(&[Value::from(m.clone())]), "map[a:1 b:2]");
        assert_eq!(
            f("%d", &[Value::from(m)]),
            "map[%!d(string=a):%!d(string=1) %!d(string=b):%!d(string=2)]"
        );
    }
}
