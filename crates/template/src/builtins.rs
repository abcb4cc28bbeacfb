//! Go text/template's predefined functions (as of Go 1.19): comparison,
//! `len`, `index`, `slice`, `not`, the escapers and the `print` family.
//! `and`, `or` and `call` need unevaluated arguments and live in `exec.rs`.

use std::rc::Rc;

use crate::format::{eval_args, sprint, sprintf, sprintln};
use crate::value::{Kind, Value};

type R = Result<Value, String>;

/// Type name after following a pointer (Go's `indirect`).
fn deref_type_name(v: &Value) -> &'static str {
    match v {
        Value::Sample(Some(_)) => "template.sample",
        Value::Time { .. } => "time.Time",
        other => other.type_name(),
    }
}

pub(crate) fn not(args: &[Value]) -> R {
    Ok(Value::Bool(!args.first().is_some_and(Value::truth)))
}

pub(crate) fn len(args: &[Value]) -> R {
    let v = args.first().cloned().unwrap_or(Value::Invalid);
    let n = match &v {
        Value::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        Value::Sample(None) => return Err("len of nil pointer".into()),
        Value::String(s) | Value::Html(s) => s.len(),
        Value::StrMap(m) => m.len(),
        Value::AnyMap(m) => m.len(),
        Value::Vector(x) => x.len(),
        other => return Err(format!("len of type {}", deref_type_name(other))),
    };
    Ok(Value::Int(n as i64))
}

/// Go's `indexArg`: an integer index within `0..=cap`.
fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x: i64 = match index {
        Value::Uint8(u) => i64::from(*u),
        Value::Uint64(u) => *u as i64,
        Value::Invalid => return Err("cannot index slice/array with nil".into()),
        v => match v.as_int() {
            Some(i) => i,
            None => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    v.type_name()
                ))
            }
        },
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

/// Map keys must be (assignable to) `string`.
fn map_key(index: &Value) -> Result<&str, String> {
    match index {
        Value::String(s) => Ok(s),
        Value::Invalid => Err("value is nil; should be of type string".into()),
        v => Err(format!(
            "value has type {}; should be string",
            v.type_name()
        )),
    }
}

pub(crate) fn index(args: &[Value]) -> R {
    let mut item = args.first().cloned().unwrap_or(Value::Invalid);
    if !item.is_valid() {
        return Err("index of untyped nil".into());
    }
    for idx in args.iter().skip(1) {
        item = match &item {
            Value::Invalid | Value::Sample(None) => return Err("index of nil pointer".into()),
            Value::String(s) | Value::Html(s) => {
                let x = index_arg(idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Uint8(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Vector(v) => {
                let x = index_arg(idx, v.len())?;
                match v.get(x) {
                    Some(s) => Value::Sample(Some(s.clone())),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::StrMap(m) => {
                let k = map_key(idx)?;
                Value::from(m.get(k).map_or("", String::as_str))
            }
            Value::AnyMap(m) => {
                let k = map_key(idx)?;
                m.get(k).cloned().unwrap_or(Value::Invalid)
            }
            other => {
                return Err(format!(
                    "can't index item of type {}",
                    deref_type_name(other)
                ))
            }
        };
    }
    Ok(item)
}

pub(crate) fn slice(args: &[Value]) -> R {
    let item = args.first().cloned().unwrap_or(Value::Invalid);
    let indexes = args.get(1..).unwrap_or(&[]);
    if !item.is_valid() {
        return Err("slice of untyped nil".into());
    }
    if let Value::Sample(None) = item {
        return Err("slice of nil pointer".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &item {
        Value::String(s) | Value::Html(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Vector(v) => v.len(),
        other => {
            return Err(format!(
                "can't slice item of type {}",
                deref_type_name(other)
            ))
        }
    };
    let mut idx = [0usize, len, len];
    for (i, x) in indexes.iter().enumerate() {
        idx[i] = index_arg(x, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match &item {
        Value::String(s) => {
            Value::from(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::Html(s) => {
            Value::Html(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into())
        }
        Value::Vector(v) => Value::Vector(Rc::new(v[idx[0]..idx[1]].to_vec())),
        _ => Value::Invalid,
    })
}

// --- comparisons ------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Basic {
    Invalid,
    Bool,
    Complex,
    Int,
    Float,
    String,
    Uint,
}

fn basic_kind(v: &Value) -> Basic {
    match v.kind() {
        Kind::Bool => Basic::Bool,
        Kind::Int => Basic::Int,
        Kind::Uint => Basic::Uint,
        Kind::Float => Basic::Float,
        Kind::Complex => Basic::Complex,
        Kind::String => Basic::String,
        _ => Basic::Invalid,
    }
}

fn comparable(v: &Value) -> bool {
    !matches!(
        v,
        Value::StrMap(_) | Value::AnyMap(_) | Value::Vector(_) | Value::Data(_)
    )
}

fn uint_of(v: &Value) -> u64 {
    match v {
        Value::Uint8(u) => u64::from(*u),
        Value::Uint64(u) => *u,
        _ => 0,
    }
}

fn int_of(v: &Value) -> i64 {
    v.as_int().unwrap_or(0)
}

fn float_of(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

fn is_nil(v: &Value) -> bool {
    matches!(v, Value::Invalid | Value::Sample(None))
}

/// Pointer or value identity for non-basic comparable values.
fn same_object(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Sample(Some(x)), Value::Sample(Some(y))) => Rc::ptr_eq(x, y),
        (Value::Time { ns: x, ptr: false }, Value::Time { ns: y, ptr: false }) => x == y,
        (Value::Error(x), Value::Error(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

fn basic_eq(k: Basic, a: &Value, b: &Value) -> bool {
    match k {
        Basic::Bool => a.truth() == b.truth(),
        Basic::Complex => match (a, b) {
            (Value::Complex(r1, i1), Value::Complex(r2, i2)) => r1 == r2 && i1 == i2,
            _ => false,
        },
        Basic::Float => float_of(a) == float_of(b),
        Basic::Int => int_of(a) == int_of(b),
        Basic::String => a.as_str() == b.as_str(),
        Basic::Uint => uint_of(a) == uint_of(b),
        Basic::Invalid => false,
    }
}

pub(crate) fn eq(args: &[Value]) -> Result<bool, String> {
    let arg1 = args.first().cloned().unwrap_or(Value::Invalid);
    let rest = args.get(1..).unwrap_or(&[]);
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(&arg1);
    for arg in rest {
        let k2 = basic_kind(arg);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Basic::Int, Basic::Uint) => {
                    int_of(&arg1) >= 0 && int_of(&arg1) as u64 == uint_of(arg)
                }
                (Basic::Uint, Basic::Int) => {
                    int_of(arg) >= 0 && uint_of(&arg1) == int_of(arg) as u64
                }
                _ => {
                    if arg1.is_valid() && arg.is_valid() {
                        return Err("incompatible types for comparison".into());
                    }
                    false
                }
            }
        } else if k1 != Basic::Invalid {
            basic_eq(k1, &arg1, arg)
        } else {
            let can_compare = arg1.kind() == arg.kind() || !arg1.is_valid() || !arg.is_valid();
            if !can_compare {
                return Err(sprintf(
                    "non-comparable types %s: %v, %s: %v",
                    &[
                        arg1.clone(),
                        Value::from(arg1.type_name()),
                        Value::from(arg.type_name()),
                        arg.clone(),
                    ],
                ));
            }
            if is_nil(&arg1) || is_nil(arg) {
                is_nil(arg) == is_nil(&arg1)
            } else {
                if !comparable(arg) {
                    return Err(sprintf(
                        "non-comparable type %s: %v",
                        &[arg.clone(), Value::from(arg.type_name())],
                    ));
                }
                arg1.type_name() == arg.type_name() && same_object(&arg1, arg)
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let k1 = basic_kind(a);
    let k2 = basic_kind(b);
    if k1 == Basic::Invalid || k2 == Basic::Invalid {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Basic::Int, Basic::Uint) => Ok(int_of(a) < 0 || (int_of(a) as u64) < uint_of(b)),
            (Basic::Uint, Basic::Int) => Ok(int_of(b) >= 0 && uint_of(a) < int_of(b) as u64),
            _ => Err("incompatible types for comparison".into()),
        };
    }
    Ok(match k1 {
        Basic::Bool | Basic::Complex | Basic::Invalid => {
            return Err("invalid type for comparison".into())
        }
        Basic::Float => float_of(a) < float_of(b),
        Basic::Int => int_of(a) < int_of(b),
        Basic::String => a.as_str() < b.as_str(),
        Basic::Uint => uint_of(a) < uint_of(b),
    })
}

fn two(args: &[Value]) -> (Value, Value) {
    (
        args.first().cloned().unwrap_or(Value::Invalid),
        args.get(1).cloned().unwrap_or(Value::Invalid),
    )
}

/// `eq`, `ne`, `lt`, `le`, `gt`, `ge`.
pub(crate) fn compare(name: &str, args: &[Value]) -> R {
    let r = match name {
        "eq" => eq(args)?,
        "ne" => !eq(args)?,
        "lt" => {
            let (a, b) = two(args);
            lt(&a, &b)?
        }
        "le" => {
            let (a, b) = two(args);
            lt(&a, &b)? || eq(args)?
        }
        "gt" => {
            let (a, b) = two(args);
            !(lt(&a, &b)? || eq(args)?)
        }
        _ => {
            let (a, b) = two(args);
            !lt(&a, &b)?
        }
    };
    Ok(Value::Bool(r))
}

// --- escapers -----------------------------------------------------------------

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if (c as u32) < 0x80 || crate::strconv::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Dispatches the builtins that take already-evaluated arguments.
pub(crate) fn call_builtin(name: &str, args: &[Value]) -> Option<R> {
    Some(match name {
        "not" => not(args),
        "len" => len(args),
        "index" => index(args),
        "slice" => slice(args),
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, args),
        "html" => Ok(Value::from(html_escape(&eval_args(args)))),
        "js" => Ok(Value::from(js_escape(&eval_args(args)))),
        "urlquery" => Ok(Value::from(query_escape(&eval_args(args)))),
        "print" => Ok(Value::from(sprint(args))),
        "println" => Ok(Value::from(sprintln(args))),
        "printf" => {
            let fmt = args
                .first()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Ok(Value::from(sprintf(&fmt, args.get(1..).unwrap_or(&[]))))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        assert!(eq(&[Value::Int(1), Value::Int(2), Value::Int(1)]).unwrap_or(false));
        assert_eq!(
            eq(&[Value::Int(1), Value::from("a")]),
            Err("incompatible types for comparison".into())
        );
        assert_eq!(lt(&Value::Float(1.0), &Value::Float(2.0)), Ok(true));
        assert_eq!(
            lt(&Value::Bool(true), &Value::Bool(false)),
            Err("invalid type for comparison".into())
        );
        assert_eq!(eq(&[Value::Invalid, Value::Invalid]), Ok(true));
    }

    #[test]
    fn escapers() {
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
        );
        assert_eq!(js_escape("a'b\"<=\n"), "a\\'b\\\"\\u003C\\u003D\\u000A");
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
