//! Alert templating as Prometheus 2.42 does it.
//!
//! Prometheus expands alerting-rule labels and annotations with Go's
//! `text/template` plus its own function set (`humanize`, `query`, ...).
//! This crate reimplements the part of Go's template language those
//! templates use, Go's `fmt` formatting of the values involved, and
//! Prometheus's functions, aiming at byte-for-byte identical output —
//! including the text of error messages, which Prometheus stores in the
//! annotation (`<error expanding template: ...>`).
//!
//! Supported: text and actions with `{{-`/`-}}` trimming and comments,
//! pipelines, variables (`:=`, `=`), fields and map keys, `if`/`else if`/
//! `else`, `range` (maps in key order, query results; `break`/`continue`),
//! `with`, `define`/`template`/`block`, all literals, Go's builtins (`and`,
//! `or`, `not`, `len`, `index`, `slice`, `print`, `printf`, `println`, `eq`,
//! `ne`, `lt`, `le`, `gt`, `ge`, `html`, `js`, `urlquery`, `call`), and every
//! function Prometheus 2.42 registers for alert templates.
//!
//! Go version: the behaviour is Go 1.19's (the toolchain Debian's
//! Prometheus 2.42 is built with) where later versions differ — no `range`
//! over integers, no `{{else with}}`, no `(?<name>...)` in regexps, and
//! 1.19's wording of `eq`/`call` errors.
//!
//! Not supported, or knowingly different:
//! - Pointer values print as made-up addresses (`%p`, or printing a `query`
//!   result list directly); Go prints heap addresses that differ per run.
//! - Nesting is capped at 100 levels of parentheses/blocks (Go: 10000 and
//!   unlimited) and `{{template}}` recursion at 100 calls (Go: 100000, whose
//!   error text is reported), to bound stack use.
//! - Strings are UTF-8: byte escapes or `slice`/`index` cuts that would
//!   produce invalid UTF-8 in Go become U+FFFD.
//! - `sortByLabel` returns a sorted copy; Go sorts the query result in place
//!   (visible only when the same result is reused through a variable).
//! - Character classes (Go's `unicode.IsPrint`, letters and digits) use
//!   Rust's Unicode tables, which differ for unassigned code points.
//! - Regexps are translated to the `regex` crate: Unicode class names it
//!   knows but Go does not are accepted.
//! - Only the time methods listed in `funcs.rs` exist on `toTime` results
//!   (`Format`, `Unix`, `UnixMilli`, `Year`, `Month`, ...; no `Local`, `Add`).
//! - HTML-mode expansion (Prometheus's console templates, `tmpl`) is not
//!   provided; alert templates are plain text.
//! - [`QueryFn`] receives only the query text; the evaluation time is the
//!   caller's to bind into the closure.
//!
//! Typical use:
//! ```
//! use std::collections::BTreeMap;
//! let labels: BTreeMap<String, String> = [("instance".to_string(), "a:9100".to_string())].into();
//! let none = BTreeMap::new();
//! let data = template::AlertData { labels: &labels, external_labels: &none, external_url: "http://p:9090", value: 0.25 };
//! let out = template::expand_alert("__alert_Up", "{{ $labels.instance }} at {{ $value | humanizePercentage }}",
//!     &data, &|_q: &str| Ok(vec![]), 0);
//! assert_eq!(out.as_deref(), Ok("a:9100 at 25%"));
//! ```

mod ast;
mod builtins;
mod exec;
mod format;
mod funcs;
pub mod gofloat;
mod goregex;
mod gotime;
mod humanize;
mod lex;
mod parse;
mod strconv;
mod value;

use std::collections::BTreeMap;

pub use funcs::ExecEnv;
pub use parse::Template;
pub use value::{AlertFields, Value};

/// One element of a `query` result, as templates see it (`.Labels`, `.Value`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Runs a PromQL query for the `query` template function. The closure is
/// expected to evaluate at the rule's evaluation time; an `Err` becomes the
/// template error `error calling query: <message>`.
pub type QueryFn<'a> = &'a dyn Fn(&str) -> Result<Vec<QuerySample>, String>;

/// The data Prometheus passes to alert templates.
#[derive(Clone, Copy, Debug)]
pub struct AlertData<'a> {
    /// The alert's labels (`$labels`, `.Labels`).
    pub labels: &'a BTreeMap<String, String>,
    /// Configured external labels (`$externalLabels`).
    pub external_labels: &'a BTreeMap<String, String>,
    /// The external URL (`$externalURL`, `externalURL`, `pathPrefix`).
    pub external_url: &'a str,
    /// The alert's sample value (`$value`, `.Value`).
    pub value: f64,
}

impl From<&AlertData<'_>> for Value {
    /// The alert data as a template value (dot), for [`Template::execute`].
    fn from(d: &AlertData<'_>) -> Value {
        exec::alert_value(d)
    }
}

/// The definitions Prometheus prepends to every alert label/annotation.
pub const ALERT_PRELUDE: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The template name Prometheus uses for a rule's labels and annotations.
pub fn alert_template_name(rule_name: &str) -> String {
    format!("__alert_{rule_name}")
}

/// Parses an alert label/annotation (prelude included) for repeated use.
/// The error is Go's parse error, e.g. `template: __alert_X:1: function "foo" not defined`.
pub fn parse_alert(name: &str, text: &str) -> Result<Template, String> {
    Template::parse(name, &format!("{ALERT_PRELUDE}{text}"))
}

/// Parses `text` with the alert prelude, as Prometheus validates rule files;
/// the error is the message `promtool check rules` shows after
/// `annotation "x": `, and names the template (`name`).
pub fn check(name: &str, text: &str) -> Result<(), String> {
    parse_alert(name, text).map(|_| ())
}

/// Executes a template from [`parse_alert`] on alert data. The error reads
/// like Prometheus's: `error executing template NAME: template: ...`.
pub fn execute_alert(
    tmpl: &Template,
    data: &AlertData,
    query: QueryFn,
    _ts_ms: i64,
) -> Result<String, String> {
    let env = ExecEnv {
        query: Some(query),
        external_url: data.external_url,
    };
    tmpl.execute(&Value::from(data), &env)
        .map_err(|e| format!("error executing template {}: {e}", tmpl.name()))
}

/// Expands as Prometheus's alerting rule does (prelude included). `ts_ms` is
/// the evaluation time; `query` should evaluate at that time. Errors read
/// `error parsing template NAME: ...` or `error executing template NAME: ...`.
pub fn expand_alert(
    name: &str,
    text: &str,
    data: &AlertData,
    query: QueryFn,
    ts_ms: i64,
) -> Result<String, String> {
    let tmpl =
        parse_alert(name, text).map_err(|e| format!("error parsing template {name}: {e}"))?;
    execute_alert(&tmpl, data, query, ts_ms)
}

/// The label or annotation value Prometheus stores: the expansion, or
/// `<error expanding template: ...>` when expansion fails.
pub fn expand_alert_text(
    name: &str,
    text: &str,
    data: &AlertData,
    query: QueryFn,
    ts_ms: i64,
) -> String {
    match expand_alert(name, text, data, query, ts_ms) {
        Ok(s) => s,
        Err(e) => error_text(&e),
    }
}

/// Prometheus's wording for a failed expansion.
pub fn error_text(err: &str) -> String {
    format!("<error expanding template: {err}>")
}
