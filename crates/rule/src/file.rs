//! Rule files as Prometheus reads them (`groups:` of recording and alerting rules), plus
//! Thanos's per-group `partial_response_strategy`. Unknown fields are errors; every check
//! failure names the file, the group and the rule (by index and name), in the words of
//! Prometheus's `rulefmt` where it has them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    partial_response_strategy: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// Thanos's partial response strategy of a group: `abort` (the default) fails the
/// evaluation when a store is missing; `warn` evaluates on what answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PartialResponse {
    #[default]
    Abort,
    Warn,
}

impl PartialResponse {
    pub fn name(self) -> &'static str {
        match self {
            PartialResponse::Abort => "ABORT",
            PartialResponse::Warn => "WARN",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Record,
    Alert,
}

/// One rule, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    pub kind: Kind,
    pub name: String,
    pub expr: String,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// One group, checked. `interval_ms` is `None` when the file leaves it to `--eval-interval`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub file: String,
    pub name: String,
    pub interval_ms: Option<i64>,
    pub query_offset_ms: Option<i64>,
    pub limit: usize,
    pub partial_response: PartialResponse,
    pub rules: Vec<RuleSpec>,
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn duration(s: &Option<String>) -> Result<Option<i64>, String> {
    match s {
        None => Ok(None),
        Some(s) => tsdb::time::parse_duration(s)
            .map(Some)
            .map_err(|_| format!("not a valid duration string: {s:?}")),
    }
}

/// Parses and checks one rule file's bytes; `file` names it in errors.
/// Expressions are checked as `dialect` parses them.
pub fn parse(
    file: &str,
    bytes: &[u8],
    dialect: promql::Dialect,
) -> Result<Vec<GroupSpec>, Vec<String>> {
    let raw: RawFile = if bytes.iter().all(u8::is_ascii_whitespace) {
        RawFile { groups: Vec::new() }
    } else {
        serde_yaml::from_slice(bytes).map_err(|e| vec![format!("{file}: {e}")])?
    };
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut names = HashSet::new();
    for g in raw.groups {
        let group_err = |msg: String| format!("{file}: group {:?}: {msg}", g.name);
        if g.name.is_empty() {
            errors.push(format!("{file}: Groupname must not be empty"));
            continue;
        }
        if !names.insert(g.name.clone()) {
            errors.push(format!(
                "{file}: groupname: \"{}\" is repeated in the same file",
                g.name
            ));
            continue;
        }
        let interval_ms = match duration(&g.interval) {
            Ok(Some(0)) => None,
            Ok(v) => v,
            Err(e) => {
                errors.push(group_err(format!("interval: {e}")));
                None
            }
        };
        let query_offset_ms = duration(&g.query_offset).unwrap_or_else(|e| {
            errors.push(group_err(format!("query_offset: {e}")));
            None
        });
        if g.limit < 0 {
            errors.push(group_err(format!(
                "limit must not be negative, got {}",
                g.limit
            )));
        }
        let partial_response = match g.partial_response_strategy.as_deref() {
            None | Some("") => PartialResponse::Abort,
            Some(s) if s.eq_ignore_ascii_case("abort") => PartialResponse::Abort,
            Some(s) if s.eq_ignore_ascii_case("warn") => PartialResponse::Warn,
            Some(s) => {
                errors.push(group_err(format!(
                    "partial_response_strategy must be warn or abort, got {s:?}"
                )));
                PartialResponse::Abort
            }
        };
        let mut rules = Vec::new();
        let mut seen: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let name = r.record.clone().or(r.alert.clone()).unwrap_or_default();
            match check_rule(r, dialect) {
                Ok(spec) => {
                    let key = (
                        spec.name.clone(),
                        spec.labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    );
                    if !seen.insert(key) {
                        errors.push(format!(
                            "{file}: group {:?}, rule {}, {name:?}: duplicate rule: a rule with the same name and labels comes earlier in the group",
                            g.name,
                            i + 1
                        ));
                    }
                    rules.push(spec);
                }
                Err(msgs) => {
                    for m in msgs {
                        errors.push(format!(
                            "{file}: group {:?}, rule {}, {name:?}: {m}",
                            g.name,
                            i + 1
                        ));
                    }
                }
            }
        }
        groups.push(GroupSpec {
            file: file.to_string(),
            name: g.name,
            interval_ms,
            query_offset_ms,
            limit: g.limit.max(0) as usize,
            partial_response,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// Checks one rule as Prometheus's `RuleNode.Validate` does, plus its templates.
fn check_rule(r: RawRule, dialect: promql::Dialect) -> Result<RuleSpec, Vec<String>> {
    let mut errs = Vec::new();
    let (kind, name) = match (&r.record, &r.alert) {
        (Some(n), None) if !n.is_empty() => (Kind::Record, n.clone()),
        (None, Some(n)) if !n.is_empty() => (Kind::Alert, n.clone()),
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
            errs.push("only one of 'record' and 'alert' must be set".to_string());
            (Kind::Record, a.clone())
        }
        _ => {
            errs.push("one of 'record' or 'alert' must be set".to_string());
            (Kind::Record, String::new())
        }
    };
    let expr = r.expr.clone().unwrap_or_default();
    if expr.is_empty() {
        errs.push("field 'expr' must be set in rule".to_string());
    } else if let Err(e) = promql::parse_with(&expr, dialect, |_| Ok(())) {
        errs.push(format!("could not parse expression: {e}"));
    }
    let for_ms = duration(&r.for_).unwrap_or_else(|e| {
        errs.push(format!("for: {e}"));
        None
    });
    let keep_ms = duration(&r.keep_firing_for).unwrap_or_else(|e| {
        errs.push(format!("keep_firing_for: {e}"));
        None
    });
    let labels = r.labels.unwrap_or_default();
    let annotations = r.annotations.unwrap_or_default();
    if kind == Kind::Record {
        if !annotations.is_empty() {
            errs.push("invalid field 'annotations' in recording rule".to_string());
        }
        if r.for_.is_some() {
            errs.push("invalid field 'for' in recording rule".to_string());
        }
        if r.keep_firing_for.is_some() {
            errs.push("invalid field 'keep_firing_for' in recording rule".to_string());
        }
        if !name.is_empty() && !is_metric_name(&name) {
            errs.push(format!("invalid recording rule name: {name}"));
        }
    }
    for k in labels.keys() {
        if !is_label_name(k) {
            errs.push(format!("invalid label name: {k}"));
        }
        if k == tsdb::labels::METRIC_NAME {
            errs.push(format!(
                "invalid label name: {k} (the metric name is set by the rule)"
            ));
        }
    }
    for k in annotations.keys() {
        if !is_label_name(k) {
            errs.push(format!("invalid annotation name: {k}"));
        }
    }
    if kind == Kind::Alert {
        for (what, map) in [("label", &labels), ("annotation", &annotations)] {
            for (k, v) in map {
                let tmpl_name = format!("__alert_{name}");
                if let Err(e) = template::check(&tmpl_name, v) {
                    errs.push(format!("{what} {k:?}: invalid template: {e}"));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(RuleSpec {
            kind,
            name,
            expr,
            for_ms: for_ms.unwrap_or(0),
            keep_firing_for_ms: keep_ms.unwrap_or(0),
            labels,
            annotations,
        })
    } else {
        Err(errs)
    }
}

/// Expands `--rule-file` patterns (globs; a directory means the files in it) into files,
/// sorted and deduplicated. A pattern that matches nothing is not an error.
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let path = Path::new(p);
        if path.is_dir() {
            let rd =
                std::fs::read_dir(path).map_err(|e| format!("read rule directory {p}: {e}"))?;
            for e in rd.flatten() {
                if e.path().is_file() {
                    out.push(e.path());
                }
            }
            continue;
        }
        out.extend(tsdb::glob::expand(path).into_iter().filter(|f| f.is_file()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads and checks every file the patterns name. Errors of all files are returned together.
pub fn load(patterns: &[String], dialect: promql::Dialect) -> Result<Vec<GroupSpec>, Vec<String>> {
    let files = expand_patterns(patterns).map_err(|e| vec![e])?;
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read(&f) {
            Ok(b) => match parse(&name, &b, dialect) {
                Ok(g) => groups.extend(g),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql::Dialect;

    fn errs(y: &str) -> Vec<String> {
        parse("r.yml", y.as_bytes(), Dialect::default()).unwrap_err()
    }

    #[test]
    fn parses_groups_and_rules() {
        let g = parse(
            "r.yml",
            br#"
groups:
  - name: g1
    interval: 30s
    partial_response_strategy: warn
    limit: 10
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {team: a}
      - alert: Down
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.instance }} is down"}
"#,
            Dialect::default(),
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].interval_ms, Some(30_000));
        assert_eq!(g[0].partial_response, PartialResponse::Warn);
        assert_eq!(g[0].limit, 10);
        assert_eq!(g[0].rules[0].kind, Kind::Record);
        assert_eq!(g[0].rules[1].for_ms, 300_000);
        assert_eq!(g[0].rules[1].keep_firing_for_ms, 60_000);
        assert!(parse("empty.yml", b"\n", Dialect::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn errors_name_file_group_and_rule() {
        let e = errs("groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum(\n");
        assert!(
            e[0].starts_with("r.yml: group \"g\", rule 1, \"x\": could not parse expression"),
            "{e:?}"
        );
        let e = errs("groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n    bogus: 1\n");
        assert!(
            e[0].contains("r.yml") && e[0].contains("unknown field `bogus`"),
            "{e:?}"
        );
        let e = errs("groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n  - record: x\n    expr: up\n");
        assert!(e[0].contains("rule 2, \"x\": duplicate rule"), "{e:?}");
        let e = errs("groups:\n- name: g\n  rules:\n  - record: x\n    alert: y\n    expr: up\n");
        assert!(
            e[0].contains("only one of 'record' and 'alert' must be set"),
            "{e:?}"
        );
        let e = errs("groups:\n- name: g\n  rules:\n  - expr: up\n");
        assert!(
            e[0].contains("one of 'record' or 'alert' must be set"),
            "{e:?}"
        );
        let e =
            errs("groups:\n- name: g\n  rules:\n  - record: 'a-b'\n    expr: up\n    for: 1m\n");
        assert!(
            e.iter()
                .any(|m| m.contains("invalid recording rule name: a-b")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("invalid field 'for' in recording rule")),
            "{e:?}"
        );
        let e = errs("groups:\n- name: g\n- name: g\n");
        assert!(
            e[0].contains("groupname: \"g\" is repeated in the same file"),
            "{e:?}"
        );
        let e = errs("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ .Foo'\n");
        assert!(
            e[0].contains("rule 1, \"A\": annotation \"s\": invalid template"),
            "{e:?}"
        );
        let e = errs("groups: [1");
        assert!(e[0].starts_with("r.yml: "), "{e:?}");
        let e = errs("groups:\n- name: g\n  partial_response_strategy: maybe\n");
        assert!(e[0].contains("partial_response_strategy"), "{e:?}");
    }

    #[test]
    fn globs_expand() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.yml", "b.yaml", "c.txt"] {
            std::fs::write(d.path().join(n), "groups: []\n").unwrap();
        }
        let p = |s: &str| d.path().join(s).display().to_string();
        assert_eq!(expand_patterns(&[p("*.y*ml")]).unwrap().len(), 2);
        assert_eq!(
            expand_patterns(&[d.path().display().to_string()])
                .unwrap()
                .len(),
            3
        );
        assert!(expand_patterns(&[p("none-*.yml")]).unwrap().is_empty());
    }

    #[test]
    fn expressions_are_checked_in_the_rulers_dialect() {
        let file =
            |expr: &str| format!("groups:\n- name: g\n  rules:\n  - record: r\n    expr: {expr}\n");
        let v3 = Dialect::default();
        let experimental = Dialect {
            experimental_functions: true,
            ..v3
        };
        let hw = file("holt_winters(x[5m], 0.5, 0.5)");
        assert!(parse("r.yml", hw.as_bytes(), Dialect::V2).is_ok());
        let e = parse("r.yml", hw.as_bytes(), v3).unwrap_err();
        assert!(e[0].contains("unknown function"), "{e:?}");
        let sorted = file("sort_by_label(x, \"a\")");
        let e = parse("r.yml", sorted.as_bytes(), v3).unwrap_err();
        assert!(e[0].contains("is not enabled"), "{e:?}");
        assert!(parse("r.yml", sorted.as_bytes(), experimental).is_ok());
        assert!(parse("r.yml", file("rate(x[5m+1m])").as_bytes(), v3).is_ok());
    }
}
