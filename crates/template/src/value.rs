//! Values flowing through a template, each standing for the Go type
//! Prometheus would have at that point (`float64`, `map[string]string`,
//! `*template.sample`, ...). The Go type matters: it decides formatting,
//! comparisons, which functions accept the value, and error texts.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::QuerySample;

/// The data Prometheus hands to alert templates (`.Labels`, `.Value`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertFields {
    pub labels: Rc<BTreeMap<String, String>>,
    pub external_labels: Rc<BTreeMap<String, String>>,
    pub external_url: Rc<str>,
    pub value: f64,
}

/// Go's name for the anonymous struct type Prometheus uses as alert data.
pub(crate) const ALERT_DATA_TYPE: &str =
    "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

/// A template value. Each variant is one Go type.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Value {
    /// No value (Go's invalid `reflect.Value` / nil interface).
    Invalid,
    Bool(bool),
    /// Go `int` (number literals, `len`, ...).
    Int(i64),
    /// Go `int64` (time methods such as `Unix`).
    Int64(i64),
    /// Go `uint8` (indexing a string).
    Uint8(u8),
    /// Go `uint64`.
    Uint64(u64),
    Float(f64),
    Complex(f64, f64),
    String(Rc<str>),
    /// `html/template.HTML`, returned by `safeHtml`.
    Html(Rc<str>),
    /// `map[string]string` (label sets).
    StrMap(Rc<BTreeMap<String, String>>),
    /// `map[string]interface{}` (returned by `args`).
    AnyMap(Rc<BTreeMap<String, Value>>),
    /// `*template.sample` (None is a nil pointer).
    Sample(Option<Rc<QuerySample>>),
    /// `template.queryResult` (`[]*sample`).
    Vector(Rc<Vec<Rc<QuerySample>>>),
    /// `*time.Time` (`ptr`) or `time.Time`, always UTC, in Unix nanoseconds.
    Time {
        ns: i64,
        ptr: bool,
    },
    /// `time.Month` (1..=12).
    Month(u8),
    /// `time.Weekday` (0 = Sunday).
    Weekday(u8),
    /// The alert data struct.
    Data(Rc<AlertFields>),
    /// A Go `error` value (only used to format error messages).
    Error(Rc<str>),
    /// A value held in an `interface{}` slot (an `args` map entry) before
    /// the template engine unwraps it; only field errors can tell.
    Iface(Rc<Value>),
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s.into())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.into())
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<BTreeMap<String, String>> for Value {
    fn from(m: BTreeMap<String, String>) -> Self {
        Value::StrMap(Rc::new(m))
    }
}

/// Go's reflect kinds, as far as the template engine distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    Complex,
    String,
    Map,
    Slice,
    Pointer,
    Struct,
    Interface,
}

impl Value {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Value::Invalid => Kind::Invalid,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) | Value::Int64(_) | Value::Month(_) | Value::Weekday(_) => Kind::Int,
            Value::Uint8(_) | Value::Uint64(_) => Kind::Uint,
            Value::Float(_) => Kind::Float,
            Value::Complex(..) => Kind::Complex,
            Value::String(_) | Value::Html(_) => Kind::String,
            Value::StrMap(_) | Value::AnyMap(_) => Kind::Map,
            Value::Vector(_) => Kind::Slice,
            Value::Sample(_) => Kind::Pointer,
            Value::Time { ptr, .. } => {
                if *ptr {
                    Kind::Pointer
                } else {
                    Kind::Struct
                }
            }
            Value::Data(_) => Kind::Struct,
            Value::Error(_) | Value::Iface(_) => Kind::Interface,
        }
    }

    /// Go's `reflect.Type.String()` of the value's type.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Uint8(_) => "uint8",
            Value::Uint64(_) => "uint64",
            Value::Float(_) => "float64",
            Value::Complex(..) => "complex128",
            Value::String(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::StrMap(_) => "map[string]string",
            Value::AnyMap(_) => "map[string]interface {}",
            Value::Sample(_) => "*template.sample",
            Value::Vector(_) => "template.queryResult",
            Value::Time { ptr: true, .. } => "*time.Time",
            Value::Time { ptr: false, .. } => "time.Time",
            Value::Month(_) => "time.Month",
            Value::Weekday(_) => "time.Weekday",
            Value::Data(_) => ALERT_DATA_TYPE,
            Value::Error(_) => "*errors.errorString",
            Value::Iface(_) => "interface {}",
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        !matches!(self, Value::Invalid)
    }

    /// Integer value for int-kinded values.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Int64(i) => Some(*i),
            Value::Month(m) | Value::Weekday(m) => Some(i64::from(*m)),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Html(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `isTrue`: the truth of a value in `if`, `with`, `and`, `or`, `not`.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Invalid => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Uint8(u) | Value::Month(u) | Value::Weekday(u) => *u != 0,
            Value::Uint64(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Complex(r, i) => *r != 0.0 || *i != 0.0,
            Value::String(s) | Value::Html(s) => !s.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::AnyMap(m) => !m.is_empty(),
            Value::Vector(v) => !v.is_empty(),
            Value::Sample(p) => p.is_some(),
            Value::Time { .. } | Value::Data(_) | Value::Error(_) => true,
            Value::Iface(v) => v.truth(),
        }
    }

    /// The value inside an interface slot (Go's `indirectInterface`).
    pub(crate) fn unwrap_iface(self) -> Value {
        match self {
            Value::Iface(v) => v.as_ref().clone(),
            other => other,
        }
    }

    /// Go's `indirect` for printing and ranging: a non-nil pointer becomes
    /// the struct it points to (only the kind changes for our types).
    pub(crate) fn deref(&self) -> Value {
        match self {
            Value::Time { ns, ptr: true } => Value::Time {
                ns: *ns,
                ptr: false,
            },
            other => other.clone(),
        }
    }

    /// A stable made-up address for pointer formatting (`%p`, pointers
    /// inside slices). Go prints real heap addresses, which no one can match.
    pub(crate) fn fake_address(&self) -> Option<u64> {
        const FAKE_HEAP: u64 = 0x00c0_0000_0000;
        match self {
            Value::Sample(Some(s)) => Some(FAKE_HEAP + (Rc::as_ptr(s) as u64 & 0xff_ffff)),
            Value::Sample(None) => Some(0),
            Value::StrMap(m) => Some(FAKE_HEAP + (Rc::as_ptr(m) as u64 & 0xff_ffff)),
            Value::AnyMap(m) => Some(FAKE_HEAP + (Rc::as_ptr(m) as u64 & 0xff_ffff)),
            Value::Vector(v) => Some(FAKE_HEAP + (Rc::as_ptr(v) as u64 & 0xff_ffff)),
            Value::Time { ptr: true, ns } => Some(FAKE_HEAP + (*ns as u64 & 0xff_ffff)),
            _ => None,
        }
    }
}
