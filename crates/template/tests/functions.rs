//! Table tests: each row is a template, the alert data it runs on, and the
//! exact text Prometheus 2.42 produces (facts from Prometheus's own template
//! tests and from running Prometheus 2.42 itself).

use std::collections::BTreeMap;

use template::{expand_alert, expand_alert_text, AlertData, QuerySample};

const NAME: &str = "__alert_Test";

fn labels() -> BTreeMap<String, String> {
    [
        ("instance", "host-1.example.com:9100"),
        ("job", "node"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn ext() -> BTreeMap<String, String> {
    [("cluster", "eu-1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sample(pairs: &[(&str, &str)], value: f64) -> QuerySample {
    QuerySample {
        labels: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

/// A fixed query engine: a few canned answers, an error otherwise.
fn query(q: &str) -> Result<Vec<QuerySample>, String> {
    match q {
        "up" | "missing" => Ok(vec![]),
        "vector(42)" => Ok(vec![sample(&[], 42.0)]),
        "1.5" => Ok(vec![sample(&[], 1.5)]),
        "metric" => Ok(vec![
            sample(&[("__name__", "metric"), ("instance", "b")], 21.0),
            sample(&[("__name__", "metric"), ("instance", "a")], 11.0),
        ]),
        "strval" => Ok(vec![sample(
            &[("__name__", "metric"), ("__value__", "a")],
            11.0,
        )]),
        _ => Err(format!("parse error: unknown query {q:?}")),
    }
}

fn run_with(text: &str, value: f64, url: &str) -> String {
    let l = labels();
    let e = ext();
    let data = AlertData {
        labels: &l,
        external_labels: &e,
        external_url: url,
        value,
    };
    expand_alert_text(NAME, text, &data, &query, 0)
}

fn run(text: &str) -> String {
    run_with(text, 1.0, "http://testhost:9090/path/prefix")
}

fn check_table(rows: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (text, want) in rows {
        let got = run(text);
        if got != *want {
            failures.push(format!(
                "template {text:?}\n   want {want:?}\n    got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Error columns count from the start of the 112-byte prelude.
fn exec_err(col: usize, at: &str, msg: &str) -> String {
    format!(
        "<error expanding template: error executing template {NAME}: template: {NAME}:1:{col}: executing \"{NAME}\" at <{at}>: {msg}>"
    )
}

#[test]
fn plain_text_and_data() {
    check_table(&[
        ("plain text", "plain text"),
        ("{{ 1 }}", "1"),
        ("{{ $value }}", "1"),
        ("{{ .Value }}", "1"),
        ("{{ $labels.instance }}", "host-1.example.com:9100"),
        ("{{ .Labels.job }}", "node"),
        ("[{{ $labels.missing }}]", "[]"),
        ("{{ $labels }}", "map[instance:host-1.example.com:9100 job:node severity:critical]"),
        ("{{ $externalLabels.cluster }} {{ $externalURL }}", "eu-1 http://testhost:9090/path/prefix"),
        (
            "{{ . }}",
            "{map[instance:host-1.example.com:9100 job:node severity:critical] map[cluster:eu-1] http://testhost:9090/path/prefix 1}",
        ),
        ("{{ \"<b>\" }}", "<b>"),
        ("{{ `raw\\n` }}", "raw\\n"),
        ("{{ \"a\\tb\\u00e9\\x41\" }}", "a\tbéA"),
        ("{{ true }} {{ false }} {{ 'a' }} {{ 0x10 }} {{ 1e3 }} {{ 1_000 }}", "true false 97 16 1000 1000"),
        ("{{ 1.5 }} {{ 1e6 }} {{ 123456789.0 }} {{ 0.00001 }} {{ 1e21 }}", "1.5 1e+06 1.23456789e+08 1e-05 1e+21"),
        ("{{ 1i }} {{ 1+2i }}", "(0+1i) (1+2i)"),
        ("a  {{- 1 -}}  b", "a1b"),
        ("x {{/* a comment */}} y", "x  y"),
        ("x {{- /* trimmed */ -}} y", "xy"),
    ]);
}

#[test]
fn control_structures() {
    check_table(&[
        ("{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}", "high"),
        ("{{ if eq $labels.severity \"warning\" \"critical\" }}page{{ end }}", "page"),
        ("{{ with $labels.missing }}x{{ else }}none{{ end }}", "none"),
        ("{{ with $labels.job }}{{ . }}{{ end }}", "node"),
        ("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", "instance=host-1.example.com:9100;job=node;severity=critical;"),
        ("{{ range $externalLabels }}{{ . }}{{ end }}", "eu-1"),
        ("{{ range query \"up\" }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ range $i, $s := query \"metric\" }}{{ $i }}:{{ $s.Labels.instance }} {{ end }}", "0:b 1:a "),
        ("{{ range $i, $s := query \"metric\" }}{{ if $i }}{{ break }}{{ end }}{{ $i }}{{ end }}", "0"),
        ("{{ range $i, $s := query \"metric\" }}{{ if not $i }}{{ continue }}{{ end }}{{ $i }}{{ end }}", "1"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ("{{ define \"x\" }}{{ .arg0 }} {{ .arg1 }}{{ end }}{{ template \"x\" (args 1 \"2\") }}", "1 2"),
        ("{{ block \"b\" $labels }}{{ .job }}{{ end }}", "node"),
    ]);
}

#[test]
fn builtins() {
    check_table(&[
        ("{{ and 1 0 2 }} {{ and 1 2 }} {{ or \"\" 0 \"x\" }} {{ or 0 \"\" }}|", "0 2 x |"),
        ("{{ not 0 }} {{ not \"x\" }} {{ not $labels }}", "true false false"),
        ("{{ len $labels }} {{ len \"héllo\" }} {{ len (query \"metric\") }}", "3 6 2"),
        ("{{ index $labels \"job\" }} [{{ index $labels \"zzz\" }}] {{ index \"abc\" 1 }}", "node [] 98"),
        ("{{ (index (query \"metric\") 1).Value }}", "11"),
        ("{{ slice \"abcdef\" 1 3 }} {{ slice \"abcdef\" 2 }} {{ len (slice (query \"metric\") 1) }}", "bc cdef 1"),
        ("{{ print 1 2 \"a\" 3 \"b\" \"c\" nil }} {{ print nil 1 }}", "1 2a3bc<nil> <nil> 1"),
        ("{{ println 1 \"a\" }}", "1 a\n"),
        ("{{ eq 1 1 }} {{ ne 1 2 }} {{ lt \"a\" \"b\" }} {{ le 2 2 }} {{ gt 1.5 2.5 }} {{ ge 3 3 }}", "true true true true false true"),
        ("{{ eq nil nil }} {{ eq (safeHtml \"a\") \"a\" }}", "true true"),
        ("{{ html \"<a href='x'>&\\\"\" }}", "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"),
        ("{{ js \"a'b\\\"<>=&\\n\" }}", "a\\'b\\\"\\u003C\\u003E\\u003D\\u0026\\u000A"),
        ("{{ urlquery \"a b&c=d/é\" }}", "a+b%26c%3Dd%2F%C3%A9"),
        ("{{ html 1 2 \"x\" }}", "1 2x"),
    ]);
}

#[test]
fn printf_verbs() {
    check_table(&[
        ("{{ printf \"%.2f\" $value }}", "1.00"),
        ("{{ printf \"%d\" 5 }}", "5"),
        ("{{ printf \"%s\" 1.5 }}", "%!s(float64=1.5)"),
        ("{{ printf \"%d\" 1.5 }}", "%!d(float64=1.5)"),
        (
            "{{ printf \"%5.2f|%-10s|%q|%x|%X|%o|%b\" 3.14159 \"ab\" \"q\\\"\" 255 255 8 5 }}",
            " 3.14|ab        |\"q\\\"\"|ff|FF|10|101",
        ),
        (
            "{{ printf \"%e|%E|%g|%G|%v|%%\" 1234.5678 1234.5678 0.000012345 1e21 .Value }}",
            "1.234568e+03|1.234568E+03|1.2345e-05|1E+21|1|%",
        ),
        (
            "{{ printf \"%v\" $labels }}",
            "map[instance:host-1.example.com:9100 job:node severity:critical]",
        ),
        ("{{ printf \"%d %s\" }}", "%!d(MISSING) %!s(MISSING)"),
        (
            "{{ printf \"x\" 1 \"a\" nil }}",
            "x%!(EXTRA int=1, string=a, <nil>)",
        ),
        ("{{ printf \"%[2]d %[1]s\" \"a\" 2 }}", "2 a"),
        (
            "{{ printf \"%*d|%-*d|%.*f\" 5 1 5 2 2 3.14159 }}",
            "    1|2    |3.14",
        ),
        (
            "{{ printf \"%T %T %T %T\" $value 1 \"s\" (safeHtml \"h\") }}",
            "float64 int string template.HTML",
        ),
        (
            "{{ printf \"%08.3f|%+d|% d|%x\" -3.14159 5 5 \"hi\" }}",
            "-003.142|+5| 5|6869",
        ),
        ("{{ printf \"%t %t\" true 1 }}", "true %!t(int=1)"),
        ("{{ printf \"%c %U %q\" 65 0x1F600 'x' }}", "A U+1F600 'x'"),
        (
            "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}",
            "3720.01",
        ),
        ("{{ .Value | printf \"%.1f\" }}", "1.0"),
    ]);
}

#[test]
fn prometheus_query_functions() {
    check_table(&[
        ("{{ query \"1.5\" | first | value }}", "1.5"),
        ("{{ query \"metric\" | first | value }}", "21"),
        ("{{ query \"metric\" | first | label \"instance\" }}", "b"),
        ("{{ query \"strval\" | first | strvalue }}", "a"),
        ("[{{ query \"metric\" | first | label \"foo\" }}]", "[]"),
        ("[{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}]", "[]"),
        (
            "{{ range query \"metric\" | sortByLabel \"instance\" }}{{ .Labels.instance }}:{{ .Value }}: {{ end }}",
            "a:11: b:21: ",
        ),
        ("{{ query \"vector(42)\" | first }}", "{map[] 42}"),
        ("{{ with query \"vector(42)\" }}{{ len . }}{{ end }}", "1"),
        ("{{ args 1 \"2\" 3.5 }}", "map[arg0:1 arg1:2 arg2:3.5]"),
        ("{{ (args 1 \"2\").arg1 }} {{ (args).x }}", "2 <no value>"),
    ]);
}

#[test]
fn prometheus_string_functions() {
    check_table(&[
        ("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", "xa"),
        (
            "{{ reReplaceAll \"^(.*):\\\\d+$\" \"$1\" $labels.instance }}",
            "host-1.example.com",
        ),
        ("{{ reReplaceAll \"a*\" \"X\" \"baaac\" }}", "XbXcX"),
        ("{{ reReplaceAll \"\\\\w+\" \"_\" \"héllo\" }}", "_é_"),
        (
            "{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}",
            "true false",
        ),
        ("{{ \"aa bb CC\" | title }}", "Aa Bb CC"),
        ("{{ \"aa bb CC\" | toUpper }}", "AA BB CC"),
        ("{{ \"aA bB CC\" | toLower }}", "aa bb cc"),
        ("{{ graphLink \"up\" }}", "/graph?g0.expr=up&g0.tab=0"),
        ("{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1"),
        (
            "{{ graphLink \"rate(x{a=\\\"b\\\"}[5m])\" }}",
            "/graph?g0.expr=rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29&g0.tab=0",
        ),
        ("{{ \"<b>\" | safeHtml }}", "<b>"),
        ("{{ pathPrefix }}", "/path/prefix"),
        ("{{ externalURL }}", "http://testhost:9090/path/prefix"),
        ("{{ \"foo.example.com\" | stripPort }}", "foo.example.com"),
        (
            "{{ \"foo.example.com:12345\" | stripPort }}",
            "foo.example.com",
        ),
        ("{{ \"192.0.2.1:12345\" | stripPort }}", "192.0.2.1"),
        ("{{ \"2001:0DB8::1\" | stripPort }}", "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]:12345\" | stripPort }}", "2001:0DB8::1"),
        (
            "{{ \"[2001:0DB8::1]::12345\" | stripPort }}",
            "[2001:0DB8::1]::12345",
        ),
        ("{{ \"foo.example.com\" | stripDomain }}", "foo"),
        ("{{ \"foo.example.com:12345\" | stripDomain }}", "foo:12345"),
        ("{{ \"192.0.2.1:12345\" | stripDomain }}", "192.0.2.1:12345"),
        (
            "{{ \"[2001:0DB8::1]:12345\" | stripDomain }}",
            "[2001:0DB8::1]:12345",
        ),
    ]);
}

#[test]
fn prometheus_humanize_functions() {
    check_table(&[
        ("{{ range args 0.0 1.0 1234567.0 .12 }}{{ humanize . }}:{{ end }}", "0:1:1.235M:120m:"),
        ("{{ range args \"0.0\" \"1.0\" \"1234567.0\" \".12\" }}{{ humanize . }}:{{ end }}", "0:1:1.235M:120m:"),
        ("{{ range args 0 -1 1 1234567 9223372036854775807 }}{{ humanize . }}:{{ end }}", "0:-1:1:1.235M:9.223E:"),
        ("{{ humanize 1e30 }} {{ humanize 1e-30 }} {{ humanize -1234 }}", "1e+06Y 1e-06y -1.234k"),
        ("{{ range args 0.0 1.0 1048576.0 .12 }}{{ humanize1024 . }}:{{ end }}", "0:1:1Mi:0.12:"),
        ("{{ range args 0 -1 1 1234567 9223372036854775807 }}{{ humanize1024 . }}:{{ end }}", "0:-1:1:1.177Mi:8Ei:"),
        (
            "{{ range args 0 1 60 3600 86400 90000 -183845 899.99 }}{{ humanizeDuration . }}:{{ end }}",
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
        ),
        (
            "{{ range args .1 .0001 .12345 60.1 60.5 1.2345 12.345 }}{{ humanizeDuration . }}:{{ end }}",
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
        ),
        ("{{ range args \"0\" \"1\" \"60\" \"3600\" \"86400\" }}{{ humanizeDuration . }}:{{ end }}", "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
        ("{{ range args 0 -1 1 1234567 }}{{ humanizeDuration . }}:{{ end }}", "0s:-1s:1s:14d 6h 56m 7s:"),
        (
            "{{ range args \"+Inf\" \"-Inf\" \"NaN\" }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{ humanizeTimestamp . }}:{{ end }}",
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
        ),
        (
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
            "-22.22%:0%:12.35%:123.5%",
        ),
        ("{{ range args 0 -1 1 1234567 9223372036854775807 }}{{ humanizePercentage . }}:{{ end }}", "0%:-100%:100%:1.235e+08%:9.223e+20%:"),
        (
            "{{ range args 0 -1 1 1234567 9223372036 }}{{ humanizeTimestamp . }}:{{ end }}",
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
        ),
        ("{{ 1435065584.128 | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ \"1435065584.128\" | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ humanizeTimestamp $value }}", "1970-01-01 00:00:01 +0000 UTC"),
        ("{{ (1435065584.128 | toTime).Format \"2006\" }}", "2015"),
        ("{{ (\"1435065584.128\" | toTime).Format \"2006-01-02T15:04:05.000Z07:00 Mon Jan _2\" }}", "2015-06-23T13:19:44.128Z Tue Jun 23"),
        ("{{ toTime 1435065584 }} {{ (toTime 1435065584).Unix }}", "2015-06-23 13:19:44 +0000 UTC 1435065584"),
        ("{{ parseDuration \"1h2m10ms\" }} {{ parseDuration \"1d\" }} {{ parseDuration \"0\" }}", "3720.01 86400 0"),
    ]);
}

#[test]
fn error_cases() {
    let parse_prefix =
        format!("<error expanding template: error parsing template {NAME}: template: {NAME}:1: ");
    check_table(&[
        ("{{", &format!("{parse_prefix}unclosed action>")),
        ("{{ foo }}", &format!("{parse_prefix}function \"foo\" not defined>")),
        ("{{ $nope }}", &format!("{parse_prefix}undefined variable \"$nope\">")),
        ("{{ if 1 }}", &format!("{parse_prefix}unexpected EOF>")),
        ("{{ \u{a0} }}", &format!("{parse_prefix}unrecognized character in action: U+00A0>")),
        ("{{ 1 | 2 }}", &format!("{parse_prefix}non executable command in pipeline stage 2>")),
        ("{{ humanize \"one\" }}", &exec_err(115, "humanize \"one\"", "error calling humanize: strconv.ParseFloat: parsing \"one\": invalid syntax")),
        ("{{ \"one\" | humanizePercentage }}", &exec_err(123, "humanizePercentage", "error calling humanizePercentage: strconv.ParseFloat: parsing \"one\": invalid syntax")),
        ("{{ humanize $labels }}", &exec_err(115, "humanize $labels", "error calling humanize: can't convert map[string]string to float")),
        ("{{ humanize }}", &exec_err(115, "humanize", "wrong number of args for humanize: want 1 got 0")),
        ("{{ humanize 1 2 }}", &exec_err(115, "humanize", "wrong number of args for humanize: want 1 got 2")),
        ("{{ query \"missing\" | first }}", &exec_err(133, "first", "error calling first: first() called on vector with no elements")),
        ("{{ (query \"missing\").banana }}", &exec_err(122, "\"missing\"", "can't evaluate field banana in type template.queryResult")),
        ("{{ query \"bogus(\" }}", &exec_err(115, "query \"bogus(\"", "error calling query: parse error: unknown query \"bogus(\"")),
        ("{{ humanizeTimestamp 1e20 }}", &exec_err(115, "humanizeTimestamp 1e20", "error calling humanizeTimestamp: 1e+20 cannot be represented as a nanoseconds timestamp since it overflows int64")),
        ("{{ toTime \"NaN\" }}", &exec_err(115, "toTime \"NaN\"", "error calling toTime: value is NaN or Inf")),
        ("{{ parseDuration \"1x\" }}", &exec_err(115, "parseDuration \"1x\"", "error calling parseDuration: not a valid duration string: \"1x\"")),
        ("{{ reReplaceAll \"(\" \"x\" \"y\" }}", &exec_err(115, "reReplaceAll \"(\" \"x\" \"y\"", "error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`")),
        ("{{ match \"[\" \"x\" }}", &exec_err(115, "match \"[\" \"x\"", "error calling match: error parsing regexp: missing closing ]: `[`")),
        ("{{ eq 1 \"a\" }}", &exec_err(115, "eq 1 \"a\"", "error calling eq: incompatible types for comparison")),
        ("{{ toUpper (safeHtml \"x\") }}", &exec_err(133, "\"x\"", "wrong type for value; expected string; got template.HTML")),
        ("{{ value 1 }}", &exec_err(121, "1", "can't handle 1 for arg of type *template.sample")),
        ("{{ range 5 }}{{ end }}", &exec_err(121, "5", "range can't iterate over 5")),
        ("{{ template \"nope\" }}", &exec_err(124, "{{template \"nope\"}}", "template \"nope\" not defined")),
        ("{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}", &format!(
            "<error expanding template: error executing template {NAME}: template: {NAME}:1:140: executing \"r\" at <{{{{template \"r\"}}}}>: exceeded maximum template depth (100000)>"
        )),
    ]);
}

/// Behaviour of Go 1.19 (what Debian's Prometheus 2.42 is built with) where
/// later Go versions differ; each confirmed against the real binary.
#[test]
fn go_1_19_specifics() {
    let parse_prefix =
        format!("<error expanding template: error parsing template {NAME}: template: {NAME}:1: ");
    check_table(&[
        ("{{ if 1 }}a{{ else with 2 }}b{{ end }}", &format!("{parse_prefix}unexpected <with> in else>")),
        ("{{)", &format!("{parse_prefix}unexpected \")\" in command>")),
        ("{{ call .Value }}", &exec_err(115, "call .Value", "error calling call: non-function of type float64")),
        (
            "{{ eq .Labels .Labels }}",
            &exec_err(
                115,
                "eq .Labels .Labels",
                "error calling eq: non-comparable type map[instance:host-1.example.com:9100 job:node severity:critical]: map[string]string",
            ),
        ),
        (
            "{{ match \"(?<n>a)\" \"a\" }}",
            &exec_err(115, "match \"(?<n>a)\" \"a\"", "error calling match: error parsing regexp: invalid or unsupported Perl syntax: `(?<`"),
        ),
        ("{{ js \"<>&=\" }}", "\\u003C\\u003E\\u0026\\u003D"),
    ]);
}

#[test]
fn regexp_follows_go_syntax() {
    check_table(&[
        // Flags between an item and its repetition: `(?U)` makes `*?` greedy.
        ("{{ reReplaceAll \"\\\\s(?U)*?\" \"_\" \"a  b\" }}", "_a_b_"),
        ("{{ reReplaceAll \"a(?i)*\" \"X\" \"aaAb\" }}", "XAXbX"),
        ("{{ match \"\\\\bé\" \"aé\" }} {{ match \"\\\\w\" \"é\" }} {{ match \"\\\\d\" \"٣\" }}", "true false false"),
        ("{{ match \"[a&&b]\" \"&\" }} {{ match \"\\\\<\" \"<\" }} {{ match \"\\\\Q.*\\\\E\" \"x.*\" }}", "true true true"),
        ("{{ reReplaceAll \"(?P<first>\\\\w+) (?P<last>\\\\w+)\" \"${last} $first\" \"John Smith\" }}", "Smith John"),
        ("{{ reReplaceAll \"(a)(b)?\" \"[$1|$2|${1}x|$1x|$$]\" \"ab a\" }}", "[a|b|ax||$] [a||ax||$]"),
    ]);
}

#[test]
fn check_reports_parse_errors_by_name() {
    assert_eq!(template::check("__alert_X", "{{ $labels.job }}"), Ok(()));
    assert_eq!(
        template::check("__alert_X", "{{ nope }}"),
        Err("template: __alert_X:1: function \"nope\" not defined".into())
    );
    assert_eq!(
        template::check("__alert_X", "a\n{{ if }}"),
        Err("template: __alert_X:2: missing value for if".into())
    );
}

#[test]
fn expand_alert_errors_are_unwrapped() {
    let l = labels();
    let e = ext();
    let data = AlertData {
        labels: &l,
        external_labels: &e,
        external_url: "",
        value: 0.5,
    };
    assert_eq!(
        expand_alert(NAME, "{{ $value }}", &data, &query, 0),
        Ok("0.5".into())
    );
    let err = expand_alert(NAME, "{{ humanize \"x\" }}", &data, &query, 0).unwrap_err();
    assert!(
        err.starts_with("error executing template __alert_Test: template: __alert_Test:1:115:"),
        "{err}"
    );
}

#[test]
fn parsed_templates_are_reusable() {
    let t = template::parse_alert(NAME, "{{ $value | humanize }}").expect("parses");
    let l = labels();
    let e = ext();
    for (v, want) in [(1234.0, "1.234k"), (0.001, "1m"), (0.0, "0")] {
        let data = AlertData {
            labels: &l,
            external_labels: &e,
            external_url: "",
            value: v,
        };
        assert_eq!(
            template::execute_alert(&t, &data, &query, 0).as_deref(),
            Ok(want)
        );
    }
}

#[test]
fn value_formats() {
    for (v, want) in [
        (1.0, "1"),
        (0.5, "0.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1.5e-7, "1.5e-07"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(run_with("{{ $value }}", v, ""), want);
    }
}
