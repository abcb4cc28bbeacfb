//! Runs Prometheus's PromQL test scripts (`../shared/peer-tests/promql-v2.42/*.test`)
//! against our engine, with the semantics of Prometheus 2.42's `promql/test.go`: `load`,
//! `clear`, `eval[_fail|_ordered] instant at <t> <expr>` with expected samples; each eval is
//! also checked in range mode and, when step invariant, with `@` added to its selectors.
//! `promql-latest` (Prometheus 3.14) runs under `Compat::V3` with its own skip list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use promql::{Compat, Dialect, Engine, EngineOptions, MemStorage, Value};

/// The 3.x scripts run with experimental functions and fill modifiers on, as Prometheus's
/// harness does.
const LATEST: Dialect = Dialect {
    compat: Compat::V3,
    experimental_functions: true,
    binop_fill_modifiers: true,
};
use promql_parser::parser::{self as pp, AtModifier, Expr};
use tsdb::labels::Labels;

#[path = "support/hist_notation.rs"]
mod hist_notation;
use hist_notation::ScriptHistogram;

/// A value of a series or expectation: a float or a native histogram.
#[derive(Clone, Debug)]
enum SV {
    F(f64),
    H(Box<ScriptHistogram>),
}

impl std::fmt::Display for SV {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SV::F(v) => write!(f, "{v}"),
            SV::H(h) => write!(f, "{:?}", h.h),
        }
    }
}

const STALE_NAN: u64 = 0x7ff0000000000002;

fn peer_dir(version: &str) -> PathBuf {
    let base = std::env::var("PROMQL_PEER_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-tests")
        });
    let dir = base.join(version);
    assert!(
        dir.is_dir(),
        "PromQL peer test scripts not found at {} (set PROMQL_PEER_TESTS to the peer-tests dir)",
        dir.display()
    );
    dir
}

fn parse_duration_ms(s: &str) -> Result<i64, String> {
    tsdb::time::parse_duration(s).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// Go's strconv.ParseFloat for the forms the scripts use.
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        _ => {
            if body.is_empty()
                || !body
                    .chars()
                    .all(|c| c.is_ascii_digit() || ".eE+-_".contains(c))
            {
                return None;
            }
            body.parse::<f64>().ok()?
        }
    };
    Some(if neg { -v } else { v })
}

/// Parses `name{a="b", ...}` / `{...}` / `name`; returns the labels and the rest of the line.
fn parse_metric(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim_start();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    if name_end > 0 {
        pairs.push(("__name__".into(), line[..name_end].to_string()));
    }
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut r = r;
        loop {
            r = r.trim_start();
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let n_end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .ok_or("unterminated label set")?;
            let name = r[..n_end].to_string();
            r = r[n_end..].trim_start();
            r = r
                .strip_prefix('=')
                .ok_or_else(|| format!("expected = after {name}"))?;
            r = r.trim_start();
            let quote = r.chars().next().ok_or("missing label value")?;
            if quote != '"' && quote != '\'' && quote != '`' {
                return Err(format!("label value of {name} not quoted"));
            }
            let mut value = String::new();
            let mut chars = r[1..].char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == quote {
                    end = Some(i + 2);
                    break;
                }
                if c == '\\' && quote != '`' {
                    match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, '\'')) => value.push('\''),
                        Some((_, o)) => {
                            value.push('\\');
                            value.push(o);
                        }
                        None => return Err("unterminated escape".into()),
                    }
                } else {
                    value.push(c);
                }
            }
            let end = end.ok_or("unterminated label value")?;
            r = r[end..].trim_start();
            r = r.strip_prefix(',').unwrap_or(r);
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
        }
    }
    pairs.retain(|(_, v)| !v.is_empty());
    pairs.sort();
    Ok((Labels::from_pairs(pairs), rest))
}

/// Values of a series description: `1 2 _ stale 1+2x3 _x4 3x2 {{…}} {{…}}+{{…}}x3`.
/// `None` is an omitted value.
fn parse_values(s: &str) -> Result<Vec<Option<SV>>, String> {
    let mut out = Vec::new();
    for item in hist_notation::split_items(s) {
        if item.starts_with("{{") {
            out.extend(
                hist_notation::expand(item)?
                    .into_iter()
                    .map(|h| Some(SV::H(Box::new(h)))),
            );
            continue;
        }
        let (head, times) = match item.rfind('x') {
            Some(i) if item[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < item.len() => {
                let n: usize = item[i + 1..]
                    .parse()
                    .map_err(|_| format!("bad count in {item}"))?;
                (&item[..i], Some(n))
            }
            _ => (item, None),
        };
        if head == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // Split a trailing signed increment: the last + or - not at the start and not
        // part of an exponent.
        let bytes = head.as_bytes();
        let mut split = None;
        for i in (1..bytes.len()).rev() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let value = |s: &str| -> Result<f64, String> {
            if s == "stale" {
                return Ok(f64::from_bits(STALE_NAN));
            }
            parse_number(s).ok_or_else(|| format!("bad value {s:?}"))
        };
        match (split, times) {
            (Some(i), Some(n)) => {
                let mut v = value(&head[..i])?;
                let inc = value(&head[i..])?;
                for _ in 0..=n {
                    out.push(Some(SV::F(v)));
                    v += inc;
                }
            }
            (None, Some(n)) => {
                let v = value(head)?;
                out.extend(std::iter::repeat_n(Some(SV::F(v)), n + 1));
            }
            (_, None) => out.push(Some(SV::F(value(head)?))),
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Command {
    Clear,
    Load {
        interval: i64,
        /// `load_with_nhcb`: classic histograms also stored as custom-bucket histograms.
        with_nhcb: bool,
        series: Vec<(Labels, Vec<Option<SV>>)>,
    },
    Eval(Box<Eval>),
}

/// Start, end, step and the expected series (value per step, `None` for no point).
type RangeEval = (i64, i64, i64, Vec<(Labels, Vec<Option<SV>>)>);

#[derive(Debug, Clone)]
struct Eval {
    line: usize,
    expr: String,
    time: i64,
    fail: bool,
    ordered: bool,
    scalar: Option<f64>,
    /// Expected labels and value, in order.
    expected: Vec<(Labels, SV)>,
    /// `eval range from .. to .. step ..` (3.x scripts).
    range: Option<RangeEval>,
    /// 3.x `expect` lines about annotations, a string result or a range vector result.
    expect: Expect,
}

/// What a 3.x script's `expect` lines ask besides `fail` and `ordered`.
#[derive(Debug, Clone, Default)]
struct Expect {
    /// `warn`/`info`, each with an optional exact message (`msg:`) or regex (`regex:`).
    warn: Vec<Option<String>>,
    info: Vec<Option<String>>,
    no_warn: bool,
    no_info: bool,
    string: Option<String>,
    /// `range vector from <s> to <e> step <d>`: the instant query's matrix.
    range_vector: Option<(i64, i64, i64)>,
    /// Expected series of a range vector, one value per step.
    series: Vec<(Labels, Vec<Option<SV>>)>,
}

/// Applies one `expect` line (the text after `expect`) to `ev`.
fn parse_expect(ev: &mut Eval, line: &str) -> Result<(), String> {
    let line = line.trim();
    let (kind, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let matcher = || -> Option<String> {
        let r = rest
            .strip_prefix("msg:")
            .or_else(|| rest.strip_prefix("regex:"))?;
        Some(r.trim().to_string())
    };
    match kind {
        "fail" => ev.fail = true,
        "ordered" => ev.ordered = true,
        "warn" => ev.expect.warn.push(matcher()),
        "info" => ev.expect.info.push(matcher()),
        "no_warn" => ev.expect.no_warn = true,
        "no_info" => ev.expect.no_info = true,
        "string" => {
            let s = rest.trim();
            let unq = s
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| s.strip_prefix('`').and_then(|s| s.strip_suffix('`')))
                .ok_or_else(|| format!("bad expect string {s:?}"))?;
            ev.expect.string = Some(unq.replace("\\\"", "\""));
        }
        "range" => {
            let w: Vec<&str> = rest.split_whitespace().collect();
            if w.len() != 7 || w[0] != "vector" || w[1] != "from" || w[3] != "to" || w[5] != "step"
            {
                return Err(format!("bad expect range vector {rest:?}"));
            }
            ev.expect.range_vector = Some((
                parse_duration_ms(w[2])?,
                parse_duration_ms(w[4])?,
                parse_duration_ms(w[6])?,
            ));
        }
        _ => return Err(format!("unknown expect {kind:?}")),
    }
    Ok(())
}

/// Parses a script; with `tolerant`, a command that does not parse becomes an error entry
/// and parsing goes on (for the 3.x scripts, whose syntax is partly newer).
fn parse_script_tolerant(text: &str) -> Vec<Result<Command, (usize, String)>> {
    let mut out = Vec::new();
    let mut block = String::new();
    let mut block_line = 0;
    let flush =
        |block: &mut String, line: usize, out: &mut Vec<Result<Command, (usize, String)>>| {
            if block.trim().is_empty() {
                block.clear();
                return;
            }
            let padded = "\n".repeat(line) + block;
            match parse_script(&padded) {
                Ok(cmds) => out.extend(cmds.into_iter().map(Ok)),
                Err(e) => out.push(Err((line + 1, e))),
            }
            block.clear();
        };
    for (i, l) in text.lines().enumerate() {
        let starts_command = !l.starts_with(char::is_whitespace)
            && !l.trim().is_empty()
            && !l.trim_start().starts_with('#');
        if starts_command || l.trim().is_empty() {
            flush(&mut block, block_line, &mut out);
            block_line = i;
        }
        if !l.trim().is_empty() {
            block.push_str(l);
            block.push('\n');
        }
    }
    flush(&mut block, block_line, &mut out);
    out
}

fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                ""
            } else {
                t
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let lineno = i + 1;
        i += 1;
        if l.is_empty() {
            continue;
        }
        if l == "clear" {
            cmds.push(Command::Clear);
        } else if let Some(rest) = l
            .strip_prefix("load ")
            .or(l.strip_prefix("load_with_nhcb "))
        {
            let with_nhcb = l.starts_with("load_with_nhcb");
            let interval = parse_duration_ms(rest.trim())?;
            let mut series = Vec::new();
            while i < lines.len() && !lines[i].is_empty() {
                // Start timestamps (`@st`) are not loaded yet: the series of the block
                // still are.
                if lines[i]
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.ends_with("@st"))
                {
                    i += 1;
                    continue;
                }
                let (labels, rest) =
                    parse_metric(lines[i]).map_err(|e| format!("line {}: {e}", i + 1))?;
                let vals = parse_values(rest).map_err(|e| format!("line {}: {e}", i + 1))?;
                series.push((labels, vals));
                i += 1;
            }
            cmds.push(Command::Load {
                interval,
                with_nhcb,
                series,
            });
        } else if l.starts_with("eval") {
            let (kind, rest) = l.split_once(char::is_whitespace).ok_or("bad eval")?;
            let (fail, ordered) = match kind {
                "eval" => (false, false),
                "eval_fail" => (true, false),
                "eval_ordered" => (false, true),
                _ => return Err(format!("line {lineno}: unknown command {kind}")),
            };
            let rest = rest.trim_start();
            let mut ev = Eval {
                line: lineno,
                expr: String::new(),
                time: 0,
                fail,
                ordered,
                scalar: None,
                expected: Vec::new(),
                range: None,
                expect: Expect::default(),
            };
            if let Some(r) = rest.strip_prefix("range") {
                // range from <t> to <t> step <d> <expr>
                let words: Vec<&str> = r.split_whitespace().collect();
                if words.len() < 7 || words[0] != "from" || words[2] != "to" || words[4] != "step" {
                    return Err(format!("line {lineno}: bad eval range"));
                }
                let (start, end, step) = (
                    parse_duration_ms(words[1])?,
                    parse_duration_ms(words[3])?,
                    parse_duration_ms(words[5])?,
                );
                // The expression is what follows the sixth word.
                let mut rest = r;
                for w in &words[..6] {
                    rest = rest.trim_start().strip_prefix(w).unwrap_or(rest);
                }
                ev.expr = rest.trim().to_string();
                let mut series = Vec::new();
                while i < lines.len() && !lines[i].is_empty() {
                    let l = lines[i];
                    i += 1;
                    if let Some(e) = l.strip_prefix("expect ") {
                        parse_expect(&mut ev, e)?;
                        continue;
                    }
                    let (labels, rest) = parse_metric(l).map_err(|e| format!("line {i}: {e}"))?;
                    series.push((
                        labels,
                        parse_values(rest).map_err(|e| format!("line {i}: {e}"))?,
                    ));
                }
                ev.range = Some((start, end, step, series));
                cmds.push(Command::Eval(Box::new(ev)));
                continue;
            }
            let rest = rest
                .strip_prefix("instant")
                .ok_or_else(|| format!("line {lineno}: unknown eval kind"))?
                .trim_start();
            let rest = rest.strip_prefix("at").ok_or("expected at")?.trim_start();
            let (at, expr) = rest.split_once(char::is_whitespace).ok_or("missing expr")?;
            ev.time = parse_duration_ms(at)?;
            ev.expr = expr.trim().to_string();
            while i < lines.len() && !lines[i].is_empty() {
                if let Some(e) = lines[i].strip_prefix("expect ") {
                    parse_expect(&mut ev, e)?;
                    i += 1;
                    continue;
                }
                if let Some(f) = parse_number(lines[i]) {
                    ev.scalar = Some(f);
                    i += 1;
                    break;
                }
                let (labels, rest) =
                    parse_metric(lines[i]).map_err(|e| format!("line {}: {e}", i + 1))?;
                let vals = parse_values(rest).map_err(|e| format!("line {}: {e}", i + 1))?;
                if ev.expect.range_vector.is_some() {
                    ev.expect.series.push((labels, vals));
                    i += 1;
                    continue;
                }
                if vals.len() != 1 {
                    return Err(format!("line {}: expected one value", i + 1));
                }
                let v = vals.into_iter().next().flatten().unwrap_or(SV::F(f64::NAN));
                ev.expected.push((labels, v));
                i += 1;
            }
            cmds.push(Command::Eval(Box::new(ev)));
        } else {
            return Err(format!("line {lineno}: unknown command {l:?}"));
        }
    }
    Ok(cmds)
}

fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 0.000001;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()) < EPSILON
}

/// Compares an instant result to the expectation like test.go's compareResult.
fn compare(ev: &Eval, got: &Value) -> Result<(), String> {
    match got {
        Value::Matrix(_) => Err("received range result on instant evaluation".into()),
        Value::String { .. } => Err("received a string result".into()),
        Value::Scalar { v, .. } => match ev.scalar {
            Some(exp) if almost_equal(exp, *v) => Ok(()),
            Some(exp) => Err(format!("expected scalar {exp} but got {v}")),
            None => Err(format!("expected a vector but got scalar {v}")),
        },
        Value::Vector(samples) => {
            if let Some(s) = ev.scalar {
                return Err(format!(
                    "expected scalar {s} but got a vector of {}",
                    samples.len()
                ));
            }
            let expected: HashMap<&Labels, (usize, &SV)> = ev
                .expected
                .iter()
                .enumerate()
                .map(|(i, (l, v))| (l, (i + 1, v)))
                .collect();
            let mut seen = 0;
            for (pos, s) in samples.iter().enumerate() {
                let Some(&(exp_pos, exp_v)) = expected.get(&s.labels) else {
                    return Err(format!("unexpected metric {} in result", s.labels));
                };
                if ev.ordered && exp_pos != pos + 1 {
                    return Err(format!(
                        "expected metric {} at position {exp_pos} but was at {}",
                        s.labels,
                        pos + 1
                    ));
                }
                let matches = match (exp_v, &s.h) {
                    (SV::F(v), None) => almost_equal(*v, s.v),
                    (SV::H(h), Some(got)) => hist_notation::histograms_match(h, got),
                    _ => false,
                };
                if !matches {
                    let got = match &s.h {
                        Some(h) => format!("{h:?}"),
                        None => s.v.to_string(),
                    };
                    return Err(format!("expected {exp_v} for {} but got {got}", s.labels));
                }
                seen += 1;
            }
            if seen != expected.len() {
                let missing: Vec<String> = ev
                    .expected
                    .iter()
                    .filter(|(l, _)| !samples.iter().any(|s| &s.labels == l))
                    .map(|(l, v)| format!("{l} {v}"))
                    .collect();
                return Err(format!(
                    "expected metrics not found: {}",
                    missing.join(", ")
                ));
            }
            Ok(())
        }
    }
}

const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// The expression with `@ t` on every selector and subquery outside subqueries that lack
/// one, as test.go's atModifierTestCases; `None` when a function depends on the time.
fn with_at_modifier(expr: &str, t: i64, dialect: Dialect) -> Option<String> {
    let mut e = promql::parse(expr, dialect).ok()?;
    fn at_of(t: i64) -> AtModifier {
        AtModifier::try_from(t as f64 / 1000.0).expect("finite")
    }
    fn walk(e: &mut Expr, t: i64, unsafe_fn: &mut bool) {
        match e {
            Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = Some(at_of(t)),
            Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = Some(at_of(t)),
            Expr::Subquery(sq) => {
                if sq.at.is_none() {
                    sq.at = Some(at_of(t));
                }
                // Selectors inside a subquery with @ keep their times; time-dependent
                // functions inside still count.
                check_unsafe(&sq.expr, unsafe_fn);
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &mut a.param {
                    walk(p, t, unsafe_fn);
                }
                walk(&mut a.expr, t, unsafe_fn);
            }
            Expr::Unary(u) => walk(&mut u.expr, t, unsafe_fn),
            Expr::Binary(b) => {
                walk(&mut b.lhs, t, unsafe_fn);
                walk(&mut b.rhs, t, unsafe_fn);
            }
            Expr::Paren(p) => walk(&mut p.expr, t, unsafe_fn),
            Expr::Call(c) => {
                if AT_UNSAFE.contains(&c.func.name) {
                    *unsafe_fn = true;
                }
                for a in &mut c.args.args {
                    walk(a, t, unsafe_fn);
                }
            }
            _ => {}
        }
    }
    fn check_unsafe(e: &Expr, unsafe_fn: &mut bool) {
        match e {
            Expr::Call(c) => {
                if AT_UNSAFE.contains(&c.func.name) {
                    *unsafe_fn = true;
                }
                c.args.args.iter().for_each(|a| check_unsafe(a, unsafe_fn));
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    check_unsafe(p, unsafe_fn);
                }
                check_unsafe(&a.expr, unsafe_fn);
            }
            Expr::Unary(u) => check_unsafe(&u.expr, unsafe_fn),
            Expr::Binary(b) => {
                check_unsafe(&b.lhs, unsafe_fn);
                check_unsafe(&b.rhs, unsafe_fn);
            }
            Expr::Paren(p) => check_unsafe(&p.expr, unsafe_fn),
            Expr::Subquery(s) => check_unsafe(&s.expr, unsafe_fn),
            _ => {}
        }
    }
    let mut unsafe_fn = false;
    walk(&mut e, t, &mut unsafe_fn);
    if unsafe_fn {
        return None;
    }
    let _ = pp::parse; // the printed form is parsed again by the engine
    restore_trim_operators(&e.to_string())
}

/// Our parser reads `</` and `>/` as comparisons with a marker group label; printed back,
/// they are written as the trim operators again (`None` for forms not handled here).
fn restore_trim_operators(printed: &str) -> Option<String> {
    let re = regex::Regex::new(
        r"([<>]) ((?:bool )?(?:(?:on|ignoring) \([^)]*\) )?)group_right \(__trim_(?:upper|lower)__\) ",
    )
    .ok()?;
    let s = re.replace_all(printed, "$1/ $2").into_owned();
    (!s.contains("__trim_")).then_some(s)
}

struct Runner {
    engine: Engine,
    storage: MemStorage,
    /// (eval line, what went wrong).
    failures: Vec<(usize, String)>,
    /// Evals in the skip list that passed (when skipped evals are run anyway).
    unexpected_passes: Vec<usize>,
    run_skipped: bool,
    passed: usize,
    skipped: usize,
    skips: Vec<(String, usize)>,
    file: String,
}

impl Runner {
    fn new(skips: Vec<(String, usize)>, dialect: Dialect) -> Self {
        Runner {
            engine: Engine::new(EngineOptions {
                no_step_subquery_interval_ms: 60_000,
                dialect,
                ..Default::default()
            }),
            storage: MemStorage::new(),
            failures: Vec::new(),
            unexpected_passes: Vec::new(),
            run_skipped: false,
            passed: 0,
            skipped: 0,
            skips,
            file: String::new(),
        }
    }

    fn run_file(&mut self, path: &Path, tolerant: bool) {
        self.file = path.file_name().unwrap().to_string_lossy().to_string();
        self.storage = MemStorage::new();
        let text = std::fs::read_to_string(path).unwrap();
        let cmds: Vec<Command> = if tolerant {
            let mut ok = Vec::new();
            for c in parse_script_tolerant(&text) {
                match c {
                    Ok(c) => ok.push(c),
                    Err((line, _)) if self.is_skipped(line) => self.skipped += 1,
                    Err((line, e)) => self.failures.push((line, format!("parse: {e}"))),
                }
            }
            ok
        } else {
            match parse_script(&text) {
                Ok(c) => c,
                Err(e) => {
                    self.failures.push((0, format!("parse: {e}")));
                    return;
                }
            }
        };
        for c in cmds {
            match c {
                Command::Clear => self.storage = MemStorage::new(),
                Command::Load {
                    interval,
                    with_nhcb,
                    series,
                } => {
                    if with_nhcb {
                        let floats: Vec<(Labels, Vec<(i64, f64)>)> = series
                            .iter()
                            .map(|(l, vals)| {
                                let pts = vals
                                    .iter()
                                    .enumerate()
                                    .filter_map(|(i, v)| match v {
                                        Some(SV::F(f)) => Some((i as i64 * interval, *f)),
                                        _ => None,
                                    })
                                    .collect();
                                (l.clone(), pts)
                            })
                            .collect();
                        match hist_notation::classic_to_nhcb(&floats) {
                            Ok(hists) => {
                                for (labels, hs) in hists {
                                    for h in hs {
                                        self.storage.append_histogram(&labels, Arc::new(h));
                                    }
                                }
                            }
                            Err(e) => self.failures.push((0, format!("load_with_nhcb: {e}"))),
                        }
                    }
                    for (labels, vals) in series {
                        let mut hists = Vec::new();
                        for (i, v) in vals.iter().enumerate() {
                            let t = i as i64 * interval;
                            match v {
                                Some(SV::F(v)) => self.storage.append(&labels, t, *v),
                                Some(SV::H(h)) => {
                                    let mut h = h.h.clone();
                                    h.t = t;
                                    hists.push(h);
                                }
                                None => {}
                            }
                        }
                        match hist_notation::as_head_reads(hists) {
                            Ok(hs) => {
                                for h in hs {
                                    self.storage.append_histogram(&labels, Arc::new(h));
                                }
                            }
                            Err(e) => self.failures.push((0, format!("{labels}: {e}"))),
                        }
                    }
                    self.storage.finish();
                }
                Command::Eval(ev) => {
                    if self.is_skipped(ev.line) {
                        self.skipped += 1;
                        if self.run_skipped && self.eval(&ev).is_ok() {
                            self.unexpected_passes.push(ev.line);
                        }
                        continue;
                    }
                    match self.eval(&ev) {
                        Ok(()) => self.passed += 1,
                        Err(e) => self
                            .failures
                            .push((ev.line, format!("{}\n      {e}", ev.expr))),
                    }
                }
            }
        }
    }

    fn is_skipped(&self, line: usize) -> bool {
        self.skips
            .iter()
            .any(|(f, l)| *f == self.file && *l == line)
    }

    /// Failures as `file:line: message` lines.
    fn failure_lines(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|(l, e)| format!("{}:{l}: {e}", self.file))
            .collect()
    }

    fn eval(&self, ev: &Eval) -> Result<(), String> {
        if let Some(range) = &ev.range {
            return self.eval_range(ev, range);
        }
        let mut cases = vec![(ev.expr.clone(), ev.time)];
        // Our parser writes duration expressions as the durations they evaluate to, so a
        // query reading its own shape cannot be printed back with `@` added.
        let lower = ev.expr.to_ascii_lowercase().replace(' ', "");
        let reads_shape = ["step()", "range()", "start()", "end()"]
            .iter()
            .any(|f| lower.contains(f));
        let dialect = self.engine.options().dialect;
        let at_variant = (!reads_shape)
            .then(|| with_at_modifier(&ev.expr, ev.time, dialect))
            .flatten();
        if let Some(at_expr) = at_variant {
            let ts = ev.time;
            let times: Vec<i64> = if ts == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * ts, 0, ts / 5, ts, 10 * ts]
            };
            cases.extend(times.into_iter().map(|t| (at_expr.clone(), t)));
        }
        for (i, (expr, t)) in cases.into_iter().enumerate() {
            let res = self.engine.instant_query(&self.storage, &expr, t);
            let res = match (res, ev.fail) {
                (Err(_), true) => continue,
                (Ok(_), true) => return Err(format!("expected an error for {expr} at {t}")),
                (Err(e), false) => return Err(format!("error evaluating {expr} at {t}: {e}")),
                (Ok(r), false) => r,
            };
            if i == 0 {
                check_annotations(&ev.expect, &res)?;
            }
            if let Some(want) = &ev.expect.string {
                return match &res.value {
                    Value::String { s, .. } if s == want => Ok(()),
                    other => Err(format!("expected string {want:?}, got {other:?}")),
                };
            }
            if let Some((start, _end, step)) = ev.expect.range_vector {
                let Value::Matrix(got) = &res.value else {
                    return Err(format!("expected a range vector, got {:?}", res.value));
                };
                return compare_matrix(got, start, step, &ev.expect.series);
            }
            compare(ev, &res.value).map_err(|e| format!("{expr} at {t}: {e}"))?;
            // 3.x's harness does not compare range mode where the query's shape is read.
            let lower = expr.to_ascii_lowercase().replace(' ', "");
            if ["step()", "range()", "start()", "end()"]
                .iter()
                .any(|f| lower.contains(f))
            {
                continue;
            }
            let range = self
                .engine
                .range_query(&self.storage, &expr, t - 60_000, t + 60_000, 60_000)
                .map_err(|e| format!("{expr} at {t} in range mode: {e}"))?;
            if ev.ordered {
                continue;
            }
            let Value::Matrix(series) = range.value else {
                return Err("range query returned no matrix".into());
            };
            let picked: Vec<promql::Sample> = series
                .iter()
                .filter_map(|s| {
                    let float = s.points.iter().find(|p| p.t == t).map(|p| p.v);
                    let hist = s.hists.iter().find(|p| p.t == t).map(|p| p.h.clone());
                    (float.is_some() || hist.is_some()).then(|| promql::Sample {
                        labels: s.labels.clone(),
                        t,
                        v: float.unwrap_or(0.0),
                        h: hist,
                    })
                })
                .collect();
            let as_value = if matches!(res.value, Value::Scalar { .. }) {
                Value::Scalar {
                    t,
                    v: picked.first().map_or(f64::NAN, |s| s.v),
                }
            } else {
                Value::Vector(picked)
            };
            compare(ev, &as_value).map_err(|e| format!("{expr} at {t} in range mode: {e}"))?;
        }
        Ok(())
    }
}

impl Runner {
    fn eval_range(
        &self,
        ev: &Eval,
        (start, end, step, expected): &RangeEval,
    ) -> Result<(), String> {
        let res = self
            .engine
            .range_query(&self.storage, &ev.expr, *start, *end, *step);
        let res = match (res, ev.fail) {
            (Err(_), true) => return Ok(()),
            (Ok(_), true) => return Err("expected an error".into()),
            (Err(e), false) => return Err(format!("error: {e}")),
            (Ok(r), false) => r,
        };
        check_annotations(&ev.expect, &res)?;
        let Value::Matrix(got) = res.value else {
            return Err("no matrix".into());
        };
        compare_matrix(&got, *start, *step, expected)
    }
}

/// Checks a 3.x eval's `expect warn|info|no_warn|no_info` lines against the annotations,
/// compared as Prometheus's test scripts compare them (without position and details).
///
/// Prometheus runs its scripts with delayed name removal on, which adds `for metric name
/// "x"` to the classic-histogram and native-quantile annotations; its server does not by
/// default, nor do we: those expectations also match without the name.
fn check_annotations(x: &Expect, res: &promql::QueryResult) -> Result<(), String> {
    for (kind, want, none, got) in [
        ("warn", &x.warn, x.no_warn, &res.warnings),
        ("info", &x.info, x.no_info, &res.infos),
    ] {
        if none && !got.is_empty() {
            return Err(format!("expected no {kind} annotations, got {got:?}"));
        }
        if !want.is_empty() && got.is_empty() {
            return Err(format!("expected {kind} annotations, got none"));
        }
        let got: Vec<&str> = got.iter().map(|g| promql::message_of(g)).collect();
        for w in want.iter().flatten() {
            let unnamed = NAMED_UNDER_DELAYED_NAME_REMOVAL
                .iter()
                .any(|p| w.starts_with(p))
                .then(|| w.split(" for metric name \"").next().unwrap_or(w));
            let matches = |g: &&str| {
                *g == w
                    || unnamed == Some(*g)
                    || regex::Regex::new(&format!("^(?:{w})$")).is_ok_and(|r| r.is_match(g))
            };
            if !got.iter().any(matches) {
                return Err(format!("expected {kind} annotation {w:?}, got {got:?}"));
            }
        }
    }
    Ok(())
}

/// Annotations that name the metric only under delayed name removal.
const NAMED_UNDER_DELAYED_NAME_REMOVAL: &[&str] = &[
    "PromQL warning: bucket label \"le\" is missing or has a malformed value",
    "PromQL warning: vector contains a mix of classic and native histograms",
    "PromQL info: input to histogram_quantile",
    "PromQL info: input to histogram_fraction",
];

/// Compares a matrix to expected series (one value per step from `start`, `None` for none).
fn compare_matrix(
    got: &[promql::Series],
    start: i64,
    step: i64,
    expected: &[(Labels, Vec<Option<SV>>)],
) -> Result<(), String> {
    {
        if got.len() != expected.len() {
            return Err(format!(
                "expected {} series, got {}",
                expected.len(),
                got.len()
            ));
        }
        for (labels, vals) in expected {
            let Some(s) = got.iter().find(|s| &s.labels == labels) else {
                return Err(format!("series {labels} missing"));
            };
            let want: Vec<(i64, &SV)> = vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_ref().map(|v| (start + i as i64 * step, v)))
                .collect();
            let mut have: Vec<(i64, Option<f64>, Option<&tsdb::histogram::Histogram>)> = s
                .points
                .iter()
                .map(|p| (p.t, Some(p.v), None))
                .chain(s.hists.iter().map(|p| (p.t, None, Some(&*p.h))))
                .collect();
            have.sort_by_key(|x| x.0);
            let same =
                |a: &(i64, &SV), b: &(i64, Option<f64>, Option<&tsdb::histogram::Histogram>)| {
                    a.0 == b.0
                        && match (a.1, b.1, b.2) {
                            (SV::F(x), Some(y), None) => almost_equal(*x, y),
                            (SV::H(x), None, Some(y)) => hist_notation::histograms_match(x, y),
                            _ => false,
                        }
                };
            if want.len() != have.len() || want.iter().zip(&have).any(|(a, b)| !same(a, b)) {
                return Err(format!("series {labels}: expected {want:?}, got {have:?}"));
            }
        }
        Ok(())
    }
}

fn skips() -> Vec<(String, usize)> {
    skip_list("tests/script-skips.txt")
}

/// `<file>:<line> <reason>` entries of a skip list in this crate.
fn skip_list(path: &str) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (loc, _reason) = l.split_once(char::is_whitespace)?;
            let (f, line) = loc.split_once(':')?;
            Some((f.to_string(), line.parse().ok()?))
        })
        .collect()
}

fn run_v242(name: &str) {
    let path = peer_dir("promql-v2.42").join(name);
    let mut r = Runner::new(skips(), Dialect::V2);
    r.run_file(&path, false);
    println!(
        "{name}: {} passed, {} skipped, {} failed",
        r.passed,
        r.skipped,
        r.failures.len()
    );
    assert!(
        r.failures.is_empty(),
        "{} failing evals:\n{}",
        r.failures.len(),
        r.failure_lines().join("\n")
    );
}

macro_rules! script_tests {
    ($($f:ident),*) => {$(
        #[test]
        fn $f() {
            run_v242(concat!(stringify!($f), ".test"));
        }
    )*};
}

script_tests!(
    aggregators,
    at_modifier,
    collision,
    functions,
    histograms,
    literals,
    operators,
    selectors,
    staleness,
    subquery,
    trig_functions
);

#[test]
fn every_v242_script_has_a_test() {
    let known = [
        "aggregators",
        "at_modifier",
        "collision",
        "functions",
        "histograms",
        "literals",
        "operators",
        "selectors",
        "staleness",
        "subquery",
        "trig_functions",
    ];
    for e in std::fs::read_dir(peer_dir("promql-v2.42")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let stem = name.trim_end_matches(".test");
        assert!(known.contains(&stem), "no test runs {name}");
    }
}

/// Prometheus 3.14's scripts under `Compat::V3`: every eval passes except those listed, with
/// the reason, in `tests/latest-skips.txt`; a listed eval that passes fails the test too,
/// so the list only shrinks. `LATEST_SHOW=<file>` prints that file's failures and skips.
#[test]
fn promql_latest() {
    let dir = peer_dir("promql-latest");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let skips = skip_list("tests/latest-skips.txt");
    let (mut passed, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    let mut unexpected = Vec::new();
    for f in files {
        let mut r = Runner::new(skips.clone(), LATEST);
        r.run_skipped = true;
        r.run_file(&f, true);
        println!(
            "{}: {} passed, {} skipped, {} failed",
            r.file,
            r.passed,
            r.skipped,
            r.failures.len()
        );
        if std::env::var("LATEST_SHOW").is_ok_and(|f| r.file.contains(f.as_str())) {
            for f in r.failure_lines() {
                println!("  {f}");
            }
        }
        passed += r.passed;
        skipped += r.skipped;
        failures.extend(r.failure_lines());
        unexpected.extend(
            r.unexpected_passes
                .iter()
                .map(|l| format!("{}:{l}", r.file)),
        );
    }
    println!(
        "promql-latest: {passed} passed, {skipped} skipped (tests/latest-skips.txt), {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} evals fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        unexpected.is_empty(),
        "listed in tests/latest-skips.txt but passing now (remove them): {}",
        unexpected.join(" ")
    );
}
