//! Runs the real Prometheus 2.42 with one always-firing alert whose
//! annotations use every template function, and checks that our expansion
//! of each annotation (and of a templated label) is byte-for-byte the same.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};
use template::{alert_template_name, expand_alert_text, AlertData, QuerySample};

const ALERT: &str = "GauntletPeer";

/// Queries used by the annotations, with the answers Prometheus gives for
/// them on an empty TSDB (no scrape targets).
const TWO_SERIES: &str = "label_replace(vector(1), \"x\", \"b\", \"\", \"\") or label_replace(vector(2), \"x\", \"a\", \"\", \"\")";
const ONE_LABELLED: &str =
    "label_replace(vector(7), \"instance\", \"db-1.example.com:5432\", \"\", \"\")";

fn query(q: &str) -> Result<Vec<QuerySample>, String> {
    let s = |pairs: &[(&str, &str)], value: f64| QuerySample {
        labels: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    };
    match q {
        "vector(42)" => Ok(vec![s(&[], 42.0)]),
        "up" => Ok(vec![]),
        TWO_SERIES => Ok(vec![s(&[("x", "b")], 1.0), s(&[("x", "a")], 2.0)]),
        ONE_LABELLED => Ok(vec![s(&[("instance", "db-1.example.com:5432")], 7.0)]),
        _ => Err(format!("test has no answer for query {q:?}")),
    }
}

/// Annotation name → template.
fn annotations() -> Vec<(&'static str, String)> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let rows: Vec<(&str, String)> = vec![
        ("plain", "value {{ $value }} on {{ $labels.instance }} ({{ $labels.job }})".into()),
        ("labels_map", "{{ $labels }} | {{ .Labels }} | {{ $externalLabels }} | {{ . }}".into()),
        ("external", "{{ $externalURL }} | {{ externalURL }} | [{{ pathPrefix }}] | {{ .ExternalURL }}".into()),
        ("missing_key", "[{{ $labels.nope }}][{{ index $labels \"nope\" }}][{{ (args).nope }}]".into()),
        ("humanize", "{{ humanize $value }} {{ humanize 1234567 }} {{ humanize 0.000123 }} {{ humanize \"2.5e9\" }} {{ humanize -1e30 }}".into()),
        ("humanize1024", "{{ humanize1024 1048576 }} {{ humanize1024 0.5 }} {{ humanize1024 \"3e12\" }} {{ humanize1024 9223372036854775807 }}".into()),
        ("humanizeDuration", "{{ humanizeDuration 0 }} {{ humanizeDuration 0.5 }} {{ humanizeDuration 1.2345 }} {{ humanizeDuration 90061 }} {{ humanizeDuration -3601 }} {{ humanizeDuration \"1e-7\" }}".into()),
        ("humanizePercentage", "{{ humanizePercentage 0.1234567 }} {{ humanizePercentage $value }} {{ humanizePercentage \"-0.5\" }}".into()),
        ("humanizeTimestamp", "{{ humanizeTimestamp $value }} | {{ humanizeTimestamp 1435065584.128 }} | {{ humanizeTimestamp \"NaN\" }} | {{ humanizeTimestamp -1.5 }}".into()),
        ("toTime", "{{ (toTime 1435065584.128).Format \"2006-01-02T15:04:05.000Z07:00 Mon Jan _2 3:04PM\" }} | {{ toTime 86400 }} | {{ (toTime 1e9).Unix }} {{ (toTime 1e9).Year }} {{ (toTime 1e9).Month }}".into()),
        ("parseDuration", "{{ parseDuration \"1h2m10ms\" }} {{ parseDuration \"1w\" }} {{ printf \"%.3f\" (parseDuration \"90s\") }}".into()),
        ("query_first_value", "{{ query \"vector(42)\" | first | value }} {{ with query \"vector(42)\" }}{{ (index . 0).Value }}{{ end }}".into()),
        ("query_up", "{{ len (query \"up\") }} {{ range query \"up\" }}x{{ else }}no targets{{ end }}".into()),
        ("query_labels", format!(
            "{{{{ with query {} }}}}{{{{ . | first | label \"instance\" }}}} {{{{ . | first | value }}}} {{{{ . | first | label \"instance\" | stripPort }}}}{{{{ end }}}}",
            q(ONE_LABELLED)
        )),
        ("sortByLabel", format!("{{{{ range query {} | sortByLabel \"x\" }}}}{{{{ .Labels.x }}}}={{{{ .Value }}}};{{{{ end }}}}", q(TWO_SERIES))),
        ("strvalue", "[{{ query \"vector(42)\" | first | strvalue }}]".into()),
        ("args", "{{ define \"pair\" }}{{ .arg0 }}={{ .arg1 }}{{ end }}{{ template \"pair\" (args \"k\" 3.5) }} {{ args 1 \"two\" }}".into()),
        ("reReplaceAll", "{{ reReplaceAll \"^(.*):\\\\d+$\" \"$1\" $labels.instance }} {{ reReplaceAll \"(a)(b)?\" \"[$1|$2]\" \"ab a\" }}".into()),
        ("safeHtml", "{{ safeHtml \"<b>bold</b>\" }} {{ \"<i>\" | safeHtml | len }}".into()),
        ("match", "{{ match \"^host-\\\\d\" $labels.instance }} {{ match \"\\\\bnode$\" $labels.job }} {{ if match \"^db\" $labels.instance }}db{{ else }}not-db{{ end }}".into()),
        ("title_upper_lower", "{{ title \"disk almost full-ish\" }} {{ toUpper $labels.job }} {{ toLower \"MiXeD\" }}".into()),
        ("links", "{{ graphLink \"rate(http_requests_total{job=\\\"api\\\"}[5m]) > 0\" }} {{ tableLink \"up\" }}".into()),
        ("stripDomain", "{{ stripDomain $labels.instance }} {{ stripDomain \"10.0.0.1:80\" }} {{ stripPort \"[::1]:9090\" }}".into()),
        ("printf", "{{ printf \"%.2f|%d|%s|%5.1f|%-6s|%q|%x|%e|%g|%v|%T\" $value 5 \"s\" 3.14159 \"ab\" \"q\" 255 1234.5 0.00001 $labels $value }}".into()),
        ("printf_bad", "{{ printf \"%s %d %!\" 1.5 \"x\" }} {{ printf \"%d\" }} {{ printf \"x\" 1 }}".into()),
        ("builtins", "{{ len $labels }} {{ index $labels \"job\" }} {{ slice \"abcdef\" 1 3 }} {{ html \"<a&b>\" }} {{ js \"it's <x>\" }} {{ urlquery \"a b/c\" }} {{ print 1 2 \"x\" }} {{ println \"end\" }}".into()),
        ("compare", "{{ eq $value 1.0 }} {{ ne $labels.job \"x\" }} {{ lt 1 2 }} {{ le \"a\" \"b\" }} {{ gt $value 0.5 }} {{ ge 2.5 2.5 }} {{ and 1 \"\" }}|{{ or 0 \"y\" }} {{ not true }}".into()),
        ("control", "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }} {{ with $labels.job }}job={{ . }}{{ end }} {{ if gt $value 10.0 }}big{{ else if gt $value 0.5 }}medium{{ else }}small{{ end }}".into()),
        ("trim", "a  {{- \" b \" -}}  c {{/* comment */}}d".into()),
        ("err_humanize", "{{ humanize \"one\" }}".into()),
        ("err_compare", "{{ eq 1 \"a\" }}".into()),
        ("err_first", "{{ query \"up\" | first }}".into()),
        ("err_args", "{{ humanize 1 2 }}".into()),
        ("err_field", "{{ $value.Foo }}".into()),
    ];
    rows
}

fn rule_labels() -> Vec<(&'static str, &'static str)> {
    vec![
        ("severity", "critical"),
        ("team", "{{ $labels.job | toUpper }}-{{ humanize $value }}"),
    ]
}

const EXPR: &str = "label_replace(label_replace(vector(1), \"instance\", \"host-1.example.com:9100\", \"\", \"\"), \"job\", \"node\", \"\", \"\")";

fn find_on_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Kills Prometheus and removes the scratch directory, even on panic.
struct Peer {
    child: Child,
    dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn http_get(port: u16, path: &str) -> Option<Json> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let body = text.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn write_config(dir: &Path, ext: &BTreeMap<String, String>) -> PathBuf {
    let ann: serde_json::Map<String, Json> = annotations()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let labels: serde_json::Map<String, Json> = rule_labels()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let rules = json!({"groups": [{"name": "peer", "interval": "1s", "rules": [
        {"alert": ALERT, "expr": EXPR, "labels": labels, "annotations": ann}
    ]}]});
    let rules_path = dir.join("rules.yml");
    std::fs::write(&rules_path, rules.to_string()).expect("write rules");
    let config = json!({
        "global": {"evaluation_interval": "1s", "external_labels": ext},
        "rule_files": [rules_path.to_string_lossy()],
    });
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config.to_string()).expect("write config");
    config_path
}

/// Prometheus's default external URL (`http://<hostname>:<port>/`) with the
/// trailing slash of the path trimmed, as it does.
fn external_url(port: u16, flag: &str) -> String {
    let raw = if flag.is_empty() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("http://{host}:{port}/")
    } else {
        flag.to_string()
    };
    let scheme_end = raw.find("://").map_or(0, |i| i + 3);
    match raw[scheme_end..].find('/') {
        Some(p) => {
            let (base, path) = raw.split_at(scheme_end + p);
            format!("{base}{}", path.trim_end_matches('/'))
        }
        None => raw,
    }
}

#[test]
fn prometheus_242_peer() {
    let Some(bin) = find_on_path("prometheus") else {
        if std::env::var_os("CI").is_some() {
            panic!("the prometheus binary (Debian's 2.42) is not on PATH; scripts/install-deps.sh installs it");
        }
        eprintln!("prometheus_242_peer: skipped, no prometheus binary on PATH");
        return;
    };
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    eprintln!(
        "prometheus_242_peer: using {} ({})",
        bin.display(),
        version.lines().next().unwrap_or("?")
    );

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("template-peer-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let ext: BTreeMap<String, String> = [("cluster", "eu-1"), ("replica", "a")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = write_config(&dir, &ext);
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let peer = Peer { child, dir };

    let deadline = Instant::now() + Duration::from_secs(15);
    let alert = loop {
        let found = http_get(port, "/api/v1/alerts").and_then(|r| {
            r["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == ALERT)
                .cloned()
        });
        if let Some(a) = found {
            break a;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(peer.dir.join("prometheus.log")).unwrap_or_default();
            panic!("alert never showed up in /api/v1/alerts; prometheus log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let flag = http_get(port, "/api/v1/status/flags")
        .and_then(|f| f["data"]["web.external-url"].as_str().map(str::to_string))
        .unwrap_or_default();
    let url = external_url(port, &flag);

    // The labels the template saw: the alert's, minus alertname and rule labels.
    let rule_label_names: Vec<&str> = rule_labels().iter().map(|(k, _)| *k).collect();
    let labels: BTreeMap<String, String> = alert["labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| {
                    k.as_str() != "alertname" && !rule_label_names.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let value: f64 = alert["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert_eq!(value, 1.0, "alert value");
    let data = AlertData {
        labels: &labels,
        external_labels: &ext,
        external_url: &url,
        value,
    };
    let name = alert_template_name(ALERT);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);

    let mut checked = 0;
    let mut mismatches = Vec::new();
    let mut compare = |what: String, text: &str, theirs: &str| {
        let ours = expand_alert_text(&name, text, &data, &query, now_ms);
        checked += 1;
        if ours != theirs {
            mismatches.push(format!(
                "{what}: template {text:?}\n  prometheus {theirs:?}\n  ours       {ours:?}"
            ));
        }
    };
    for (key, text) in annotations() {
        let theirs = alert["annotations"][key]
            .as_str()
            .unwrap_or("<missing>")
            .to_string();
        compare(format!("annotation {key}"), &text, &theirs);
    }
    for (key, text) in rule_labels() {
        let theirs = alert["labels"][key]
            .as_str()
            .unwrap_or("<missing>")
            .to_string();
        compare(format!("label {key}"), text, &theirs);
    }
    drop(peer);
    assert!(
        mismatches.is_empty(),
        "{} of {checked} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    eprintln!("prometheus_242_peer: {checked} expansions identical");
}
