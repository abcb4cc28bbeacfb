//! The function table: Go's builtins plus Prometheus 2.42's template
//! functions, each with its Go signature (which decides argument checks and
//! conversions), and the methods templates can call on `toTime` results.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::builtins::{self, query_escape};
use crate::gotime;
use crate::humanize;
use crate::value::Value;
use crate::{goregex, QueryFn, QuerySample};

/// Go parameter types that occur in the functions' signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `interface{}`
    Any,
    /// `reflect.Value` (builtins that inspect their arguments)
    RValue,
    Str,
    /// `*template.sample`
    SamplePtr,
    /// `template.queryResult`
    Vector,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Any => "interface {}",
            Ty::RValue => "reflect.Value",
            Ty::Str => "string",
            Ty::SamplePtr => "*template.sample",
            Ty::Vector => "template.queryResult",
        }
    }

    pub(crate) fn can_be_nil(self) -> bool {
        !matches!(self, Ty::Str)
    }

    /// The zero value a nil converts to.
    pub(crate) fn nil(self) -> Value {
        match self {
            Ty::SamplePtr => Value::Sample(None),
            Ty::Vector => Value::Vector(Rc::new(Vec::new())),
            _ => Value::Invalid,
        }
    }

    /// Go assignability of a (valid) value to this type.
    pub(crate) fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::Any | Ty::RValue => true,
            Ty::Str => matches!(v, Value::String(_)),
            Ty::SamplePtr => matches!(v, Value::Sample(_)),
            Ty::Vector => matches!(v, Value::Vector(_)),
        }
    }
}

/// A callable: function or method signature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FuncDef {
    pub name: &'static str,
    pub params: &'static [Ty],
    pub variadic: Option<Ty>,
    pub builtin: bool,
}

const fn f(
    name: &'static str,
    params: &'static [Ty],
    variadic: Option<Ty>,
    builtin: bool,
) -> FuncDef {
    FuncDef {
        name,
        params,
        variadic,
        builtin,
    }
}

use Ty::{Any, RValue, SamplePtr, Str, Vector};

static FUNCS: &[FuncDef] = &[
    // Go builtins.
    f("and", &[RValue], Some(RValue), true),
    f("or", &[RValue], Some(RValue), true),
    f("not", &[RValue], None, true),
    f("call", &[RValue], Some(RValue), true),
    f("len", &[RValue], None, true),
    f("index", &[RValue], Some(RValue), true),
    f("slice", &[RValue], Some(RValue), true),
    f("html", &[], Some(Any), true),
    f("js", &[], Some(Any), true),
    f("urlquery", &[], Some(Any), true),
    f("print", &[], Some(Any), true),
    f("println", &[], Some(Any), true),
    f("printf", &[Str], Some(Any), true),
    f("eq", &[RValue], Some(RValue), true),
    f("ne", &[RValue, RValue], None, true),
    f("lt", &[RValue, RValue], None, true),
    f("le", &[RValue, RValue], None, true),
    f("gt", &[RValue, RValue], None, true),
    f("ge", &[RValue, RValue], None, true),
    // Prometheus.
    f("query", &[Str], None, false),
    f("first", &[Vector], None, false),
    f("label", &[Str, SamplePtr], None, false),
    f("value", &[SamplePtr], None, false),
    f("strvalue", &[SamplePtr], None, false),
    f("args", &[], Some(Any), false),
    f("reReplaceAll", &[Str, Str, Str], None, false),
    f("safeHtml", &[Str], None, false),
    f("match", &[Str, Str], None, false),
    f("title", &[Str], None, false),
    f("toUpper", &[Str], None, false),
    f("toLower", &[Str], None, false),
    f("graphLink", &[Str], None, false),
    f("tableLink", &[Str], None, false),
    f("sortByLabel", &[Str, Vector], None, false),
    f("stripPort", &[Str], None, false),
    f("stripDomain", &[Str], None, false),
    f("humanize", &[Any], None, false),
    f("humanize1024", &[Any], None, false),
    f("humanizeDuration", &[Any], None, false),
    f("humanizePercentage", &[Any], None, false),
    f("humanizeTimestamp", &[Any], None, false),
    f("toTime", &[Any], None, false),
    f("pathPrefix", &[], None, false),
    f("externalURL", &[], None, false),
    f("parseDuration", &[Str], None, false),
];

pub(crate) fn lookup(name: &str) -> Option<&'static FuncDef> {
    FUNCS.iter().find(|d| d.name == name)
}

/// Whether `name` is a function a template may call (checked at parse time).
pub(crate) fn is_function(name: &str) -> bool {
    lookup(name).is_some()
}

/// What template functions can reach outside the template.
pub struct ExecEnv<'a> {
    /// Answers `query`; None behaves like Prometheus with no query engine.
    pub query: Option<QueryFn<'a>>,
    /// The external URL (`externalURL`, `pathPrefix`).
    pub external_url: &'a str,
}

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

fn str_arg(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or("")
}

fn sample_arg(args: &[Value], i: usize) -> Result<Rc<QuerySample>, String> {
    match args.get(i) {
        Some(Value::Sample(Some(s))) => Ok(s.clone()),
        _ => Err(NIL_DEREF.into()),
    }
}

fn vector_arg(args: &[Value], i: usize) -> Vec<Rc<QuerySample>> {
    match args.get(i) {
        Some(Value::Vector(v)) => v.as_ref().clone(),
        _ => Vec::new(),
    }
}

fn num_arg(args: &[Value]) -> Result<f64, String> {
    humanize::to_float(args.first().unwrap_or(&Value::Invalid))
}

/// Calls function `name` with converted arguments.
pub(crate) fn call(name: &str, args: &[Value], env: &ExecEnv) -> Result<Value, String> {
    if let Some(r) = builtins::call_builtin(name, args) {
        return r;
    }
    let s = |x: String| Ok(Value::from(x));
    match name {
        "query" => {
            let q = env.query.ok_or_else(|| NIL_DEREF.to_string())?;
            let v = q(str_arg(args, 0))?;
            Ok(Value::Vector(Rc::new(v.into_iter().map(Rc::new).collect())))
        }
        "first" => match vector_arg(args, 0).first() {
            Some(x) => Ok(Value::Sample(Some(x.clone()))),
            None => Err("first() called on vector with no elements".into()),
        },
        "label" => {
            let smp = sample_arg(args, 1)?;
            s(smp
                .labels
                .get(str_arg(args, 0))
                .cloned()
                .unwrap_or_default())
        }
        "value" => Ok(Value::Float(sample_arg(args, 0)?.value)),
        "strvalue" => s(sample_arg(args, 0)?
            .labels
            .get("__value__")
            .cloned()
            .unwrap_or_default()),
        "args" => {
            let m: BTreeMap<String, Value> = args
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("arg{i}"), a.clone()))
                .collect();
            Ok(Value::AnyMap(Rc::new(m)))
        }
        "reReplaceAll" => {
            let pattern = str_arg(args, 0);
            let re =
                goregex::compile(pattern).map_err(|e| goregex::must_compile_panic(pattern, &e))?;
            s(re.replace_all(str_arg(args, 2), str_arg(args, 1))
                .into_owned())
        }
        "safeHtml" => Ok(Value::Html(str_arg(args, 0).into())),
        "match" => {
            let re = goregex::compile(str_arg(args, 0))?;
            Ok(Value::Bool(re.is_match(str_arg(args, 1))))
        }
        "title" => s(title(str_arg(args, 0))),
        "toUpper" => s(str_arg(args, 0).chars().map(upper).collect()),
        "toLower" => s(str_arg(args, 0).chars().map(lower).collect()),
        "graphLink" => s(format!(
            "/graph?g0.expr={}&g0.tab=0",
            query_escape(str_arg(args, 0))
        )),
        "tableLink" => s(format!(
            "/graph?g0.expr={}&g0.tab=1",
            query_escape(str_arg(args, 0))
        )),
        "sortByLabel" => {
            let label = str_arg(args, 0);
            let mut v = vector_arg(args, 1);
            v.sort_by(|a, b| {
                let x = a.labels.get(label).map_or("", String::as_str);
                let y = b.labels.get(label).map_or("", String::as_str);
                x.cmp(y)
            });
            Ok(Value::Vector(Rc::new(v)))
        }
        "stripPort" => {
            let hp = str_arg(args, 0);
            s(split_host_port(hp).map_or(hp, |(h, _)| h).to_string())
        }
        "stripDomain" => s(strip_domain(str_arg(args, 0))),
        "humanize" => s(humanize::humanize(num_arg(args)?)),
        "humanize1024" => s(humanize::humanize1024(num_arg(args)?)),
        "humanizeDuration" => s(humanize::humanize_duration(num_arg(args)?)),
        "humanizePercentage" => s(humanize::humanize_percentage(num_arg(args)?)),
        "humanizeTimestamp" => s(humanize::humanize_timestamp(num_arg(args)?)?),
        "toTime" => humanize::to_time(num_arg(args)?),
        "pathPrefix" => s(url_path(env.external_url)),
        "externalURL" => s(env.external_url.to_string()),
        "parseDuration" => Ok(Value::Float(humanize::parse_duration(str_arg(args, 0))?)),
        _ => Err(format!("unknown function {name}")),
    }
}

// --- methods ------------------------------------------------------------------

static TIME_METHODS: &[FuncDef] = &[
    f("Format", &[Str], None, false),
    f("String", &[], None, false),
    f("Unix", &[], None, false),
    f("UnixMilli", &[], None, false),
    f("UnixMicro", &[], None, false),
    f("UnixNano", &[], None, false),
    f("Year", &[], None, false),
    f("YearDay", &[], None, false),
    f("Month", &[], None, false),
    f("Day", &[], None, false),
    f("Weekday", &[], None, false),
    f("Hour", &[], None, false),
    f("Minute", &[], None, false),
    f("Second", &[], None, false),
    f("Nanosecond", &[], None, false),
    f("UTC", &[], None, false),
    f("IsZero", &[], None, false),
];

static STRING_METHOD: &[FuncDef] = &[f("String", &[], None, false)];
static ERROR_METHOD: &[FuncDef] = &[f("Error", &[], None, false)];

/// The method `name` of `recv`'s type, if it has one.
pub(crate) fn method(recv: &Value, name: &str) -> Option<&'static FuncDef> {
    let table = match recv {
        Value::Time { .. } => TIME_METHODS,
        Value::Month(_) | Value::Weekday(_) => STRING_METHOD,
        Value::Error(_) => ERROR_METHOD,
        _ => return None,
    };
    table.iter().find(|d| d.name == name)
}

pub(crate) fn call_method(recv: &Value, name: &str, args: &[Value]) -> Result<Value, String> {
    match recv {
        Value::Month(m) => return Ok(Value::from(gotime::month_name(*m))),
        Value::Weekday(d) => return Ok(Value::from(gotime::weekday_name(*d))),
        Value::Error(e) => return Ok(Value::String(e.clone())),
        _ => {}
    }
    let Value::Time { ns, .. } = recv else {
        return Err(format!("unknown method {name}"));
    };
    let ns = *ns;
    let c = gotime::civil(ns);
    let secs = ns.div_euclid(1_000_000_000);
    Ok(match name {
        "Format" => Value::from(gotime::format(ns, str_arg(args, 0))),
        "String" => Value::from(gotime::time_string(ns)),
        "Unix" => Value::Int64(secs),
        "UnixMilli" => Value::Int64(ns.div_euclid(1_000_000)),
        "UnixMicro" => Value::Int64(ns.div_euclid(1_000)),
        "UnixNano" => Value::Int64(ns),
        "Year" => Value::Int(c.year),
        "YearDay" => Value::Int(i64::from(c.yday)),
        "Month" => Value::Month(c.month),
        "Day" => Value::Int(i64::from(c.day)),
        "Weekday" => Value::Weekday(c.weekday),
        "Hour" => Value::Int(i64::from(c.hour)),
        "Minute" => Value::Int(i64::from(c.minute)),
        "Second" => Value::Int(i64::from(c.second)),
        "Nanosecond" => Value::Int(i64::from(c.nanos)),
        "UTC" => Value::Time { ns, ptr: false },
        "IsZero" => Value::Bool(false),
        _ => return Err(format!("unknown method {name}")),
    })
}

// --- strings ------------------------------------------------------------------

/// Go's simple (one-to-one) upper-case mapping, as `unicode.ToUpper`.
fn upper(c: char) -> char {
    let u = c as u32;
    match u {
        // Greek with ypogegrammeni map to their title-case forms.
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
            return char::from_u32(u + 8).unwrap_or(c)
        }
        0x1F88..=0x1F8F | 0x1F98..=0x1F9F | 0x1FA8..=0x1FAF | 0x1FBC | 0x1FCC | 0x1FFC => return c,
        0x1FB3 => return '\u{1FBC}',
        0x1FC3 => return '\u{1FCC}',
        0x1FF3 => return '\u{1FFC}',
        0x01C5 | 0x01C6 => return '\u{01C4}',
        0x01C8 | 0x01C9 => return '\u{01C7}',
        0x01CB | 0x01CC => return '\u{01CA}',
        0x01F2 | 0x01F3 => return '\u{01F1}',
        _ => {}
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's simple lower-case mapping, as `unicode.ToLower`.
fn lower(c: char) -> char {
    match c as u32 {
        0x0130 => return 'i',
        0x01C4 | 0x01C5 => return '\u{01C6}',
        0x01C7 | 0x01C8 => return '\u{01C9}',
        0x01CA | 0x01CB => return '\u{01CC}',
        0x01F1 | 0x01F2 => return '\u{01F3}',
        _ => {}
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's `unicode.ToTitle`.
fn title_case(c: char) -> char {
    match c as u32 {
        0x01C4..=0x01C6 => '\u{01C5}',
        0x01C7..=0x01C9 => '\u{01C8}',
        0x01CA..=0x01CC => '\u{01CB}',
        0x01F1..=0x01F3 => '\u{01F2}',
        // Georgian letters have no distinct title case.
        0x10D0..=0x10FA | 0x10FD..=0x10FF => c,
        _ => upper(c),
    }
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphabetic() || c.is_numeric() {
        return false;
    }
    c.is_whitespace()
}

/// Go's (deprecated) `strings.Title`: upper-case the first letter of each word.
fn title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_separator(prev) { title_case(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

/// Go's `net.SplitHostPort`.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k);
    if hp.starts_with('[') {
        let end = hp.find(']')?;
        match end + 1 {
            x if x == hp.len() => return None,
            x if x == i => {}
            _ => return None,
        }
        host = &hp[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        j = 0;
        k = 0;
    }
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = match split_host_port(hp) {
        Some((h, p)) => (h, p),
        None => (hp, ""),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        return host.to_string();
    }
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The unescaped path of a URL, as Go's `url.URL.Path`.
fn url_path(u: &str) -> String {
    let mut rest = u.split(['?', '#']).next().unwrap_or("");
    if let Some(i) = rest.find("://") {
        rest = &rest[i + 3..];
        rest = rest.find('/').map_or("", |p| &rest[p..]);
    }
    let b = rest.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = rest
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(title("aa bb CC"), "Aa Bb CC");
        assert_eq!(title("hello_world foo-bar ǆx"), "Hello_world Foo-Bar ǅx");
        assert_eq!("ß".chars().map(upper).collect::<String>(), "ß");
        assert_eq!("İ".chars().map(lower).collect::<String>(), "i");
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("foo.example.com:12345"),
            Some(("foo.example.com", "12345"))
        );
        assert_eq!(
            split_host_port("[2001:0DB8::1]:12345"),
            Some(("2001:0DB8::1", "12345"))
        );
        assert_eq!(split_host_port("[2001:0DB8::1]::12345"), None);
        assert_eq!(split_host_port("2001:0DB8::1"), None);
        assert_eq!(strip_domain("foo.example.com:12345"), "foo:12345");
        assert_eq!(strip_domain("192.0.2.1:12345"), "192.0.2.1:12345");
        assert_eq!(strip_domain("[2001:0DB8::1]:12345"), "[2001:0DB8::1]:12345");
    }

    #[test]
    fn paths() {
        assert_eq!(url_path("http://testhost:9090/path/prefix"), "/path/prefix");
        assert_eq!(url_path("http://host:9090"), "");
        assert_eq!(url_path("http://h/a%20b?x=1"), "/a b");
    }
}
