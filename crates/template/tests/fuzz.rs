//! Robustness: expanding many random and garbage templates must never
//! panic, and deep nesting must end in an error rather than a stack overflow.

use std::collections::BTreeMap;

use template::{check, expand_alert_text, AlertData, QuerySample};

use testkit::Rng;

const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    "{{/*",
    "*/}}",
    "(",
    ")",
    "|",
    "$",
    ".",
    "\"",
    "'",
    "`",
    ":=",
    "=",
    ",",
    " ",
    "\n",
    "\t",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
    "nil",
    "true",
    "false",
    "$x",
    "$labels",
    "$value",
    "$externalURL",
    ".Labels",
    ".Value",
    ".job",
    "x",
    "é",
    "\u{a0}",
    "0",
    "1",
    "-1",
    "1.5",
    "1e400",
    "0x",
    "9223372036854775808",
    "'a'",
    "\"s\"",
    "\"%d %s %v %.2f %!\"",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "parseDuration",
    "printf",
    "print",
    "println",
    "len",
    "index",
    "slice",
    "and",
    "or",
    "not",
    "eq",
    "lt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "stripPort",
    "stripDomain",
    "pathPrefix",
    "externalURL",
    "\"up\"",
    "\"vector(42)\"",
    "\"(\"",
    "\"[a-\"",
    "\"a**\"",
    "\"5m\"",
    "\"NaN\"",
    ".Format",
    "\"2006\"",
];

/// Well-formed actions that exercise evaluation paths with odd arguments.
const ACTIONS: &[&str] = &[
    "{{ humanize %A }}",
    "{{ printf %F %A %A }}",
    "{{ index %A %A }}",
    "{{ slice %A %A %A }}",
    "{{ eq %A %A }}",
    "{{ lt %A %A }}",
    "{{ len %A }}",
    "{{ range %A }}{{ . }}{{ else }}e{{ end }}",
    "{{ with %A }}{{ . }}{{ end }}",
    "{{ if %A }}y{{ end }}",
    "{{ %A | humanizeDuration }}",
    "{{ toTime %A }}",
    "{{ (toTime %A).Format %A }}",
    "{{ reReplaceAll %A %A %A }}",
    "{{ match %A %A }}",
    "{{ label %A (first (query %A)) }}",
    "{{ and %A %A }}",
    "{{ or %A %A }}",
    "{{ call %A }}",
    "{{ html %A %A }}",
    "{{ js %A }}",
    "{{ args %A %A }}",
    "{{ %A.x }}",
    "{{ parseDuration %A }}",
    "{{ humanizeTimestamp %A }}",
    "{{ title %A }}",
    "{{ stripDomain %A }}",
];

const ATOMS: &[&str] = &[
    "1",
    "-1",
    "0",
    "1.5",
    "1e300",
    "-1e300",
    "'x'",
    "0x7f",
    "\"\"",
    "\"abc\"",
    "\"1.5\"",
    "\"one\"",
    "\"+Inf\"",
    "\"(a\"",
    "\"a*\"",
    "\"[[:foo:]]\"",
    "\"\\\\Q\"",
    "\"9999999999999999999s\"",
    "\"2006-01-02 15:04:05.000\"",
    "nil",
    "true",
    "$labels",
    "$value",
    "$",
    ".",
    ".Labels",
    "(query \"up\")",
    "(query \"vector(42)\")",
    "(first (query \"vector(42)\"))",
    "(args 1 nil)",
    "(safeHtml \"<b>\")",
    "(toTime 1)",
    "\"%v %d %!\"",
];

const FORMATS: &[&str] = &[
    "\"%d\"",
    "\"%s %v\"",
    "\"%-*.*f\"",
    "\"%[3]x %[9]v\"",
    "\"%#v %T %p\"",
    "\"%q%U%c\"",
    "\"%\"",
];

fn expand(text: &str) -> String {
    let labels: BTreeMap<String, String> = [("job".to_string(), "node".to_string())].into();
    let ext = BTreeMap::new();
    let data = AlertData {
        labels: &labels,
        external_labels: &ext,
        external_url: "http://localhost:9090/p",
        value: 0.75,
    };
    let query = |q: &str| -> Result<Vec<QuerySample>, String> {
        match q {
            "vector(42)" => Ok(vec![QuerySample {
                labels: BTreeMap::new(),
                value: 42.0,
            }]),
            "up" => Ok(vec![]),
            _ => Err("bad query".into()),
        }
    };
    expand_alert_text("__alert_Fuzz", text, &data, &query, 0)
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let n = 1 + rng.below(24);
        let text: String = (0..n).map(|_| rng.pick(PIECES)).collect();
        let _ = check("__alert_Fuzz", &text);
        let _ = expand(&text);
    }
}

#[test]
fn odd_arguments_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..1 + rng.below(3) {
            let mut action = rng.pick(ACTIONS).to_string();
            while let Some(i) = action.find("%A") {
                action.replace_range(i..i + 2, rng.pick(ATOMS));
            }
            while let Some(i) = action.find("%F") {
                action.replace_range(i..i + 2, rng.pick(FORMATS));
            }
            text.push_str(&action);
        }
        let _ = expand(&text);
    }
}

#[test]
fn deep_nesting_is_an_error() {
    for depth in [50usize, 98, 99, 100, 101, 102, 1000, 20_000] {
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
        let out = expand(&parens);
        if depth < 99 {
            assert_eq!(out, "1", "depth {depth}");
        } else if depth > 101 {
            assert!(
                out.contains("max expression depth exceeded"),
                "depth {depth}: {out}"
            );
        }
        let ifs = format!(
            "{}x{}",
            "{{ if 1 }}".repeat(depth),
            "{{ end }}".repeat(depth)
        );
        let out = expand(&ifs);
        if depth < 99 {
            assert_eq!(out, "x", "depth {depth}");
        } else if depth > 101 {
            assert!(
                out.contains("max expression depth exceeded"),
                "depth {depth}: {out}"
            );
        }
    }
}

#[test]
fn runaway_recursion_is_an_error() {
    let texts = [
        "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
        "{{ define \"r\" }}{{ if 1 }}{{ if 1 }}{{ with . }}{{ template \"r\" (((.))) }}{{ end }}{{ end }}{{ end }}{{ end }}{{ template \"r\" . }}",
    ];
    for t in texts {
        assert!(
            expand(t).contains("exceeded maximum template depth (100000)"),
            "{t}"
        );
    }
    // Deeply nested bodies inside recursion still stop cleanly.
    let body = format!(
        "{}{{{{ template \"r\" . }}}}{}",
        "{{ if 1 }}".repeat(90),
        "{{ end }}".repeat(90)
    );
    let t = format!("{{{{ define \"r\" }}}}{body}{{{{ end }}}}{{{{ template \"r\" . }}}}");
    assert!(expand(&t).contains("exceeded maximum template depth"));
}
